/* distinct: distinct-n (Li et al. 2016), the share of n-grams that are
 * unique, a measure of how varied generations are.
 *
 *   cria metric distinct --hyp generated.txt -p max-n=3
 *
 * The corpus score counts distinct n-grams over all hypotheses together,
 * divided by the number of n-grams; a segment's score does the same within
 * it. A text without n-grams of that order scores 0. References are ignored. */
#include "config.h"

#include "text.h"

#define DISTINCT_MAX_N 9

static const CriaPropSpec distinct_props[] = {
  { "max-n", CRIA_PROP_INT, "2", 1, DISTINCT_MAX_N, NULL, "distinct-n is reported for every n from 1 to max-n" },
  { "lowercase", CRIA_PROP_BOOL, "false", 0, 0, NULL, "count lower-cased tokens" },
  TEXT_TOKENIZE_PROP ("mixed"),
  CRIA_PROP_END
};

typedef struct {
  guint max_n;
  gboolean lowercase;
  TextTokenize tokenize;
  GHashTable *seen[DISTINCT_MAX_N]; /* n-gram set over the corpus */
  guint64 total[DISTINCT_MAX_N];
} Distinct;

static gpointer
distinct_create (const CriaProps *props, GError **error)
{
  Distinct *self = g_new0 (Distinct, 1);
  self->max_n = (guint) cria_props_get_int (props, "max-n");
  self->lowercase = cria_props_get_bool (props, "lowercase");
  self->tokenize = text_tokenize_from_props (props);
  for (guint i = 0; i < self->max_n; i++)
    self->seen[i] = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return self;
}

static void
distinct_destroy (gpointer data)
{
  Distinct *self = data;
  for (guint i = 0; i < self->max_n; i++)
    g_hash_table_unref (self->seen[i]);
  g_free (self);
}

static double
ratio (guint64 distinct, guint64 total)
{
  return total ? (double) distinct / (double) total : 0;
}

static gboolean
distinct_add (gpointer data, const char *hypothesis, const char *const *references, guint n_references,
              CriaScores *segment, GError **error)
{
  Distinct *self = data;
  g_autoptr (GPtrArray) tokens = text_tokenize (hypothesis, self->tokenize, self->lowercase);
  for (guint n = 1; n <= self->max_n; n++) {
    g_autoptr (GHashTable) counts = text_ngram_counts (tokens, n);
    guint64 total = tokens->len >= n ? tokens->len - n + 1 : 0;
    self->total[n - 1] += total;
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, counts);
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_hash_table_add (self->seen[n - 1], g_strdup (key));
    if (segment) {
      g_autofree char *name = g_strdup_printf ("distinct_%u", n);
      cria_scores_set (segment, name, ratio (g_hash_table_size (counts), total));
    }
  }
  return TRUE;
}

static gboolean
distinct_finish (gpointer data, CriaScores *corpus, GError **error)
{
  Distinct *self = data;
  for (guint n = 1; n <= self->max_n; n++) {
    g_autofree char *name = g_strdup_printf ("distinct_%u", n);
    cria_scores_set (corpus, name, ratio (g_hash_table_size (self->seen[n - 1]), self->total[n - 1]));
  }
  return TRUE;
}

static const CriaMetricVTable distinct_vtable = {
  CRIA_VTABLE_INIT (CriaMetricVTable),
  .flags = CRIA_METRIC_FLAG_NO_REFERENCES,
  .create = distinct_create,
  .destroy = distinct_destroy,
  .add = distinct_add,
  .finish = distinct_finish,
};

static const CriaProviderInfo cria_distinct_info = {
  .name = "distinct",
  .description = "distinct-n: the share of unique n-grams over the generations",
  .example = "cria metric distinct --hyp generated.txt",
  .props = distinct_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_distinct_register (CriaPlugin *plugin);

void
cria_distinct_register (CriaPlugin *plugin)
{
  cria_plugin_add_metric (plugin, &cria_distinct_info, &distinct_vtable);
}
