/* cria-metric.c: named scores and the running form of metric providers. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-metric.h>

typedef struct {
  char *name;
  double value;
} Score;

struct _CriaScores {
  GArray *items; /* Score */
};

static void
score_clear (gpointer data)
{
  g_free (((Score *) data)->name);
}

CriaScores *
cria_scores_new (void)
{
  CriaScores *s = g_new0 (CriaScores, 1);
  s->items = g_array_new (FALSE, FALSE, sizeof (Score));
  g_array_set_clear_func (s->items, score_clear);
  return s;
}

void
cria_scores_free (CriaScores *scores)
{
  if (!scores)
    return;
  g_array_unref (scores->items);
  g_free (scores);
}

void
cria_scores_set (CriaScores *scores, const char *name, double value)
{
  g_return_if_fail (scores != NULL);
  g_return_if_fail (name != NULL);
  for (guint i = 0; i < scores->items->len; i++) {
    Score *s = &g_array_index (scores->items, Score, i);
    if (!strcmp (s->name, name)) {
      s->value = value;
      return;
    }
  }
  Score s = { g_strdup (name), value };
  g_array_append_val (scores->items, s);
}

void
cria_scores_clear (CriaScores *scores)
{
  g_array_set_size (scores->items, 0);
}

guint
cria_scores_get_n (const CriaScores *scores)
{
  g_return_val_if_fail (scores != NULL, 0);
  return scores->items->len;
}

const char *
cria_scores_get_name (const CriaScores *scores, guint i)
{
  g_return_val_if_fail (scores != NULL, NULL);
  g_return_val_if_fail (i < scores->items->len, NULL);
  return g_array_index (scores->items, Score, i).name;
}

double
cria_scores_get_value (const CriaScores *scores, guint i)
{
  g_return_val_if_fail (scores != NULL, 0);
  g_return_val_if_fail (i < scores->items->len, 0);
  return g_array_index (scores->items, Score, i).value;
}

gboolean
cria_scores_lookup (const CriaScores *scores, const char *name, double *value)
{
  g_return_val_if_fail (scores != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  for (guint i = 0; i < scores->items->len; i++) {
    const Score *s = &g_array_index (scores->items, Score, i);
    if (!strcmp (s->name, name)) {
      if (value)
        *value = s->value;
      return TRUE;
    }
  }
  return FALSE;
}

JsonObject *
cria_scores_to_json (const CriaScores *scores)
{
  g_return_val_if_fail (scores != NULL, NULL);
  JsonObject *o = json_object_new ();
  for (guint i = 0; i < scores->items->len; i++) {
    const Score *s = &g_array_index (scores->items, Score, i);
    json_object_set_double_member (o, s->name, s->value);
  }
  return o;
}

struct _CriaMetric {
  const CriaProviderInfo *info;
  const CriaMetricVTable *vtable;
  gpointer self;
  gboolean finished;
};

CriaMetric *
cria_metric_new (const CriaProvider *provider, const CriaProps *props, GError **error)
{
  g_return_val_if_fail (provider != NULL, NULL);
  g_return_val_if_fail (props != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProviderInfo *info = cria_provider_get_info (provider);
  if (cria_provider_get_kind (provider) != CRIA_KIND_METRIC) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s is a %s, not a metric", info->name,
                 cria_kind_name (cria_provider_get_kind (provider)));
    return NULL;
  }
  if (!cria_props_check_required (props, error))
    return NULL;
  const CriaMetricVTable *vt = cria_provider_get_vtable (provider);
  gpointer self = vt->create (props, error);
  if (!self)
    return NULL;
  CriaMetric *m = g_new0 (CriaMetric, 1);
  m->info = info;
  m->vtable = vt;
  m->self = self;
  return m;
}

void
cria_metric_free (CriaMetric *metric)
{
  if (!metric)
    return;
  metric->vtable->destroy (metric->self);
  g_free (metric);
}

const char *
cria_metric_get_name (const CriaMetric *metric)
{
  g_return_val_if_fail (metric != NULL, NULL);
  return metric->info->name;
}

CriaMetricFlags
cria_metric_get_flags (const CriaMetric *metric)
{
  g_return_val_if_fail (metric != NULL, 0);
  return metric->vtable->flags;
}

static gboolean
check_open (CriaMetric *metric, gboolean model, GError **error)
{
  if (metric->finished) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: no segment may be added after finish", metric->info->name);
    return FALSE;
  }
  gboolean needs_model = (metric->vtable->flags & CRIA_METRIC_FLAG_NEEDS_MODEL) != 0;
  if (model != needs_model || (model ? !metric->vtable->add_loss : !metric->vtable->add)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 needs_model ? "%s scores a model's loss, not text" : "%s scores text, not a model's loss",
                 metric->info->name);
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_metric_add (CriaMetric *metric, const char *hypothesis, const char *const *references, guint n_references,
                 CriaScores *segment, GError **error)
{
  g_return_val_if_fail (metric != NULL, FALSE);
  g_return_val_if_fail (hypothesis != NULL, FALSE);
  g_return_val_if_fail (references != NULL || n_references == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!check_open (metric, FALSE, error))
    return FALSE;
  if (!g_utf8_validate (hypothesis, -1, NULL)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "the hypothesis is not valid UTF-8");
    return FALSE;
  }
  for (guint i = 0; i < n_references; i++) {
    if (!g_utf8_validate (references[i], -1, NULL)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "reference %u is not valid UTF-8", i + 1);
      return FALSE;
    }
  }
  if (n_references == 0 &&
      !(metric->vtable->flags & (CRIA_METRIC_FLAG_NO_REFERENCES | CRIA_METRIC_FLAG_EMPTY_REFERENCES))) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s needs at least one reference",
                 metric->info->name);
    return FALSE;
  }
  return metric->vtable->add (metric->self, hypothesis, references, n_references, segment, error);
}

gboolean
cria_metric_add_loss (CriaMetric *metric, double nll_sum, guint64 n_tokens, CriaScores *segment, GError **error)
{
  g_return_val_if_fail (metric != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!check_open (metric, TRUE, error))
    return FALSE;
  return metric->vtable->add_loss (metric->self, nll_sum, n_tokens, segment, error);
}

CriaScores *
cria_metric_finish (CriaMetric *metric, GError **error)
{
  g_return_val_if_fail (metric != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (metric->finished) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: finished twice", metric->info->name);
    return NULL;
  }
  metric->finished = TRUE;
  g_autoptr (CriaScores) corpus = cria_scores_new ();
  if (!metric->vtable->finish (metric->self, corpus, error))
    return NULL;
  return g_steal_pointer (&corpus);
}
