/* cria-eval.h: what the parts of `cria eval` share. */
#pragma once

#include "cria-cli-model.h"

typedef struct {
  char *data, *out_dir;
  gboolean compare, as_json;
  int limit;
  double beta;             /* of the DPO rewards reported for preference pairs */
  GPtrArray *metric_specs; /* char* */
  CriaCliSampling sampling;
} EvalOptions;

/* One model evaluated: the base, or the base with an adapter. */
typedef struct {
  char *label;
  CriaLm *lm;
  gboolean own_lm;
  /* --compare's base opened on its own (eval_open_base); NULL when the arm
   * runs on the command's model. */
  CriaCliModel *model;
  GPtrArray *metrics;  /* CriaMetric* */
  GPtrArray *corpus;   /* CriaScores*, one per metric, after the last example */
  gboolean needs_text; /* some metric scores generated text */
} EvalArm;

/* One record, ready for the model. */
typedef struct {
  char *prompt, *response;
  GPtrArray *refs;    /* char* */
  GArray *prompt_ids; /* gint32 */
  GArray *ids;        /* prompt and response */
  GArray *labels;     /* the next token on response positions, CRIA_IGNORE_INDEX elsewhere */
} EvalExample;

/* The prompt, chosen as cria generate, chat and serve choose it
 * (cria_cli_sampling_resolve_format): -p, else the format the adapter (or
 * a full fine-tune) recorded, else the model's chat template ("auto").
 * *format: the prompt format records are rendered with, or NULL when a
 * chat template renders them (cria_cli_render_prompt). */
gboolean eval_resolve_format (EvalOptions *o, CriaCliModel *m, CriaPromptFormat **format, GError **error);
/* --compare's base model. The adapter's low-rank weights sit beside the
 * base's, so the base is a second runtime on the same model; but modules it
 * saved whole (modules_to_save, a resized vocabulary) replaced the base's,
 * and then *base is the base model opened a second time, with its own
 * tokenizer and the adapted arm's chat template. NULL otherwise. */
gboolean eval_open_base (CriaCliModel *m, CriaCliModel **base, GError **error);
void eval_close_base (CriaCliModel *base);
gboolean eval_open_arms (EvalOptions *o, CriaCliModel *m, GPtrArray *arms, GError **error);
gboolean eval_prepare (EvalOptions *o, CriaCliModel *m, CriaPromptFormat *format, const CriaRecord *r, guint index,
                       EvalExample *ex, GError **error);
void eval_example_clear (EvalExample *ex);
/* Preference pairs (every record has chosen and rejected): log-prob
 * accuracy and margin per model, DPO rewards of adapted against base. */
gboolean eval_preferences (EvalOptions *o, CriaCliModel *m, GPtrArray *records, GError **error);
/* Prints the summary table (or JSON) and writes summary.json and summary.txt under --out. */
gboolean eval_report (EvalOptions *o, GPtrArray *arms, guint n_examples, GError **error);
