/* pairs: turns records into preference pairs with a generator: k sampled
 * answers per prompt, each scored by a metric against the record's output,
 * the best kept as chosen and the worst as rejected when their scores differ
 * by at least the margin.
 *
 *   cria data 'file location=train.jsonl ! pairs generator="openai model=m" k=4 metric=rouge margin=0.1 ! jsonl location=pairs.jsonl'
 *
 * The answers go through the generation cache like those of the other
 * construction stages, so a run stopped half-way and started again asks only
 * what it had not. A record without an instruction or output (nothing to
 * score against), or a conversation, passes through unchanged; a prompt
 * whose answers are too close is dropped (reason: no-margin). The pair keeps
 * the record's metadata and adds score_chosen and score_rejected. Streams. */
#include "config.h"

#include <string.h>

#include "construct.h"

static const CriaPropSpec pairs_props[] = {
  CONSTRUCT_GENERATOR_PROP (CRIA_PROP_FLAG_REQUIRED, "samples the answers"),
  { "k", CRIA_PROP_INT, "4", 2, 1000, NULL, "answers sampled per prompt" },
  { "metric", CRIA_PROP_STRING, "rouge", 0, 0, NULL,
    "the metric scoring each answer against the record's output, with its properties: \"bleu smoothing=method1\"" },
  { "score", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "which of the metric's scores ranks the answers (default: its first)" },
  { "margin", CRIA_PROP_DOUBLE, "0", 0, 1e9, NULL,
    "least difference between the best and the worst answer's score for a pair to be kept" },
  CONSTRUCT_COMMON_PROPS,
  CRIA_PROP_END
};

typedef struct {
  Construct c;
  CriaMetric *metric;
  char *score;
  guint k;
  double margin;
} Pairs;

static void
pairs_destroy (gpointer data)
{
  Pairs *self = data;
  construct_clear (&self->c);
  g_clear_pointer (&self->metric, cria_metric_free);
  g_free (self->score);
  g_free (self);
}

static gpointer
pairs_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Pairs *self = g_new0 (Pairs, 1);
  self->k = (guint) cria_props_get_int (props, "k");
  self->margin = cria_props_get_double (props, "margin");
  self->score = g_strdup (cria_props_get_string (props, "score"));
  const CriaProvider *provider;
  g_autoptr (CriaProps) mprops = NULL;
  if (!construct_init (&self->c, props, ctx, error) ||
      !cria_registry_parse_spec (cria_context_get_registry (ctx), CRIA_KIND_METRIC,
                                 cria_props_get_string (props, "metric"), &provider, &mprops, error) ||
      !(self->metric = cria_metric_new (provider, mprops, error))) {
    pairs_destroy (self);
    return NULL;
  }
  if (cria_metric_get_flags (self->metric) & CRIA_METRIC_FLAG_NEEDS_MODEL) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "metric %s scores a model, not an answer's text",
                 cria_metric_get_name (self->metric));
    pairs_destroy (self);
    return NULL;
  }
  return self;
}

static gboolean
score_of (Pairs *self, const char *answer, const char *reference, double *score, GError **error)
{
  g_autoptr (CriaScores) seg = cria_scores_new ();
  const char *refs[] = { reference };
  if (!cria_metric_add (self->metric, answer, refs, 1, seg, error))
    return FALSE;
  if (self->score ? cria_scores_lookup (seg, self->score, score) : cria_scores_get_n (seg) > 0) {
    if (!self->score)
      *score = cria_scores_get_value (seg, 0);
    return TRUE;
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "metric %s gives no score %s",
               cria_metric_get_name (self->metric), self->score ? self->score : "at all");
  return FALSE;
}

static gboolean
pairs_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Pairs *self = data;
  if (record->messages || !record->instruction || !*record->instruction || !record->output ||
      cria_record_is_preference (record))
    return cria_emit (out, record, error);
  g_autoptr (CriaRecord) r = record;
  g_autofree char *prompt = r->input && *r->input ? g_strconcat (r->instruction, "\n\n", r->input, NULL)
                                                  : g_strdup (r->instruction);
  g_autofree char **texts = g_new (char *, self->k);
  g_autofree guint64 *salts = g_new (guint64, self->k);
  for (guint i = 0; i < self->k; i++) {
    texts[i] = prompt;
    salts[i] = i; /* k samples of one prompt */
  }
  CriaGenResult *answers = construct_ask (&self->c, texts, self->k, salts, NULL, error);
  if (!answers)
    return FALSE;
  guint best = 0, worst = 0;
  g_autofree double *scores = g_new (double, self->k);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < self->k; i++) {
    g_strstrip (answers[i].text);
    ok = score_of (self, answers[i].text, r->output, &scores[i], error);
    best = ok && scores[i] > scores[best] ? i : best;
    worst = ok && scores[i] < scores[worst] ? i : worst;
  }
  if (ok && (best == worst || scores[best] - scores[worst] < self->margin)) {
    cria_emit_skip (out, "no-margin");
  } else if (ok) {
    CriaRecord *pair = cria_record_copy (r);
    g_clear_pointer (&pair->output, g_free);
    pair->chosen = g_strdup (answers[best].text);
    pair->rejected = g_strdup (answers[worst].text);
    json_object_set_double_member (pair->meta, "score_chosen", scores[best]);
    json_object_set_double_member (pair->meta, "score_rejected", scores[worst]);
    ok = cria_emit (out, pair, error);
  }
  construct_results_free (answers, self->k);
  return ok;
}

static const CriaStageVTable pairs_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = pairs_create,
  .destroy = pairs_destroy,
  .push = pairs_push,
};

static const CriaProviderInfo cria_pairs_info = {
  .name = "pairs",
  .description = "Preference pairs: k sampled answers per prompt scored by a metric, best as chosen, worst as rejected",
  .example = "file location=train.jsonl ! pairs generator=\"openai model=m\" k=4 metric=rouge margin=0.1 ! jsonl "
             "location=pairs.jsonl",
  .props = pairs_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_pairs_register (CriaPlugin *plugin);

void
cria_pairs_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_pairs_info, &pairs_vtable);
}
