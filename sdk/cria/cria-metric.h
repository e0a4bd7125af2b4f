/* cria-metric.h: metrics that score generated text against references.
 *
 *   cria metric bleu --ref refs.txt --hyp generated.txt -p smoothing=method1
 *
 * A metric provider (kind CRIA_KIND_METRIC) is fed one segment at a time: a
 * hypothesis and its references. It may give each segment its own scores
 * (sentence BLEU, per-answer F1) and gives corpus scores at the end, which
 * need not be the mean of the segment scores (corpus BLEU sums n-gram counts
 * first). Scores are named numbers in a fixed order: "bleu", "rouge1_f",
 * "rougeL_p", "exact", "f1", ... */
#pragma once

#include <cria/cria-props.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

/* Named scores, kept in the order they were first set. */
typedef struct _CriaScores CriaScores;

CriaScores *cria_scores_new (void);
void cria_scores_free (CriaScores *scores);
/* Sets a score, replacing a value of the same name in its place. */
void cria_scores_set (CriaScores *scores, const char *name, double value);
void cria_scores_clear (CriaScores *scores);
guint cria_scores_get_n (const CriaScores *scores);
const char *cria_scores_get_name (const CriaScores *scores, guint i);
double cria_scores_get_value (const CriaScores *scores, guint i);
/* FALSE when there is no score of that name. */
gboolean cria_scores_lookup (const CriaScores *scores, const char *name, double *value);
/* {"name": value, ...} in the scores' order; transfer full. */
JsonObject *cria_scores_to_json (const CriaScores *scores);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaScores, cria_scores_free)

typedef enum {
  CRIA_METRIC_FLAG_NONE = 0,
  /* Scores hypotheses alone (distinct-n): references are accepted and ignored. */
  CRIA_METRIC_FLAG_NO_REFERENCES = 1 << 0,
  /* Scores a model's loss rather than text (perplexity): fed through
   * add_loss by a driver that runs the model, never through add. */
  CRIA_METRIC_FLAG_NEEDS_MODEL = 1 << 1,
  /* A segment may have no reference at all (SQuAD v2.0: unanswerable). */
  CRIA_METRIC_FLAG_EMPTY_REFERENCES = 1 << 2,
} CriaMetricFlags;

struct _CriaMetricVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaMetricVTable) */
  CriaMetricFlags flags;

  /* Creates an accumulator from validated properties. */
  gpointer (*create) (const CriaProps *props, GError **error);
  void (*destroy) (gpointer self);

  /* Text metrics: adds one segment. Strings are valid UTF-8; `references`
   * holds n_references strings (at least one unless NO_REFERENCES). When
   * `segment` is not NULL the segment's own scores are set in it. A failure
   * concerns this segment only (CRIA_RECORD_ERROR). */
  gboolean (*add) (gpointer self, const char *hypothesis, const char *const *references, guint n_references,
                   CriaScores *segment, GError **error);

  /* Model-based metrics (NEEDS_MODEL), NULL for text metrics: adds one
   * example from the model's summed negative log-likelihood, in nats, over
   * its n_tokens scored (response) tokens. The metric never sees the model:
   * the driver (cria eval) runs it and masks the prompt. */
  gboolean (*add_loss) (gpointer self, double nll_sum, guint64 n_tokens, CriaScores *segment, GError **error);

  /* Sets the corpus scores over every segment added. */
  gboolean (*finish) (gpointer self, CriaScores *corpus, GError **error);
};

/* One running metric: a provider's accumulator with its properties. */
typedef struct _CriaMetric CriaMetric;

/* Fails when the provider is not a metric or a required property is unset. */
CriaMetric *cria_metric_new (const CriaProvider *provider, const CriaProps *props, GError **error);
void cria_metric_free (CriaMetric *metric);
const char *cria_metric_get_name (const CriaMetric *metric);
CriaMetricFlags cria_metric_get_flags (const CriaMetric *metric);
/* Checks the text is UTF-8 and that references are given when needed. */
gboolean cria_metric_add (CriaMetric *metric, const char *hypothesis, const char *const *references, guint n_references,
                          CriaScores *segment, GError **error);
gboolean cria_metric_add_loss (CriaMetric *metric, double nll_sum, guint64 n_tokens, CriaScores *segment,
                               GError **error);
/* The corpus scores; the metric takes no more segments after it. */
CriaScores *cria_metric_finish (CriaMetric *metric, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaMetric, cria_metric_free)

G_END_DECLS
