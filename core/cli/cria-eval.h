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

gboolean eval_open_arms (EvalOptions *o, CriaCliModel *m, GPtrArray *arms, GError **error);
gboolean eval_prepare (EvalOptions *o, CriaCliModel *m, CriaPromptFormat *format, const CriaRecord *r, guint index,
                       EvalExample *ex, GError **error);
void eval_example_clear (EvalExample *ex);
/* Preference pairs (every record has chosen and rejected): log-prob
 * accuracy and margin per model, DPO rewards of adapted against base. */
gboolean eval_preferences (EvalOptions *o, CriaCliModel *m, GPtrArray *records, GError **error);
/* Prints the summary table (or JSON) and writes summary.json and summary.txt under --out. */
gboolean eval_report (EvalOptions *o, GPtrArray *arms, guint n_examples, GError **error);
