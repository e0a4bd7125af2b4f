/* dedup: drops exact and near-duplicate records, keeping the first of each cluster.
 *
 *   cria data 'file location=mixed.jsonl ! dedup threshold=0.8 report=clusters.jsonl ! jsonl location=unique.jsonl'
 *
 * Exact: the named fields, normalized (NFKC, case-folded, whitespace
 * collapsed), hashed. Near: MinHash over character n-grams of the normalized
 * text (characters, not words, so Chinese works), with locality-sensitive
 * banding to find candidates and the estimated Jaccard similarity checked
 * against the threshold. Holds one signature per kept record (num-perm x 4
 * bytes), not the records: records stream. */
#include "config.h"

#include <string.h>

#include "curate.h"

static const CriaPropSpec dedup_props[] = {
  FIELDS_PROP ("instruction,input,output,messages"),
  { "mode", CRIA_PROP_ENUM, "near", 0, 0, "exact|near",
    "exact: identical after normalization; near: also MinHash near-duplicates" },
  { "threshold", CRIA_PROP_DOUBLE, "0.8", 0, 1, NULL,
    "estimated Jaccard similarity of n-gram sets at which two records are near-duplicates" },
  { "ngram", CRIA_PROP_INT, "5", 1, 64, NULL, "length of the character n-grams" },
  { "num-perm", CRIA_PROP_INT, "128", 8, 1024, NULL, "number of MinHash functions (a multiple of bands)" },
  { "bands", CRIA_PROP_INT, "32", 1, 1024, NULL, "LSH bands the signature is cut into to find candidates" },
  { "report", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "write the clusters found as JSON lines ({kept, duplicates, kind}) to this file" },
  CRIA_PROP_END
};

typedef struct {
  char *name;
  GPtrArray *dups; /* char* names */
  gboolean near;
} Cluster;

typedef struct {
  char **fields;
  gboolean near;
  double threshold;
  guint ngram, perm, bands, rows;
  GHashTable *exact;        /* hash -> cluster index + 1 */
  GArray *sigs;             /* guint32 x perm per kept record */
  GHashTable **band_tables; /* band hash -> GArray of kept indices */
  GPtrArray *clusters;      /* Cluster*, one per kept record */
  guint64 position;
  char *report;
  guint64 n_clusters;
} Dedup;

static void
cluster_free (Cluster *c)
{
  g_free (c->name);
  if (c->dups)
    g_ptr_array_unref (c->dups);
  g_free (c);
}

static gpointer
dedup_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  guint perm = (guint) cria_props_get_int (props, "num-perm"), bands = (guint) cria_props_get_int (props, "bands");
  if (perm % bands) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "num-perm (%u) must be a multiple of bands (%u)", perm,
                 bands);
    return NULL;
  }
  Dedup *self = g_new0 (Dedup, 1);
  self->fields = curate_fields (props);
  self->near = !strcmp (cria_props_get_string (props, "mode"), "near");
  self->threshold = cria_props_get_double (props, "threshold");
  self->ngram = (guint) cria_props_get_int (props, "ngram");
  self->perm = perm;
  self->bands = bands;
  self->rows = perm / bands;
  self->exact = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  self->sigs = g_array_new (FALSE, FALSE, sizeof (guint32));
  self->band_tables = g_new0 (GHashTable *, bands);
  for (guint b = 0; b < bands; b++)
    self->band_tables[b] = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, (GDestroyNotify) g_array_unref);
  self->clusters = g_ptr_array_new_with_free_func ((GDestroyNotify) cluster_free);
  self->report = g_strdup (cria_props_get_string (props, "report"));
  return self;
}

static void
dedup_destroy (gpointer data)
{
  Dedup *self = data;
  g_strfreev (self->fields);
  g_hash_table_unref (self->exact);
  g_array_unref (self->sigs);
  for (guint b = 0; b < self->bands; b++)
    g_hash_table_unref (self->band_tables[b]);
  g_free (self->band_tables);
  g_ptr_array_unref (self->clusters);
  g_free (self->report);
  g_free (self);
}

/* Signature: for each of `perm` seeded hash functions, the least hash of any n-gram. */
static void
minhash (Dedup *self, const char *text, guint32 *sig)
{
  for (guint k = 0; k < self->perm; k++)
    sig[k] = G_MAXUINT32;
  glong n = g_utf8_strlen (text, -1);
  const char *start = text;
  glong count = n < (glong) self->ngram ? 1 : n - self->ngram + 1;
  for (glong i = 0; i < count; i++) {
    const char *end = start;
    for (guint j = 0; j < self->ngram && *end; j++)
      end = g_utf8_next_char (end);
    guint64 base = cria_hash64 (start, end - start, 0);
    for (guint k = 0; k < self->perm; k++) {
      /* Derived hash functions: h_k(x) = mix(base ^ k-th constant). */
      guint32 h = (guint32) (cria_hash64 (&base, sizeof base, k + 1) >> 32);
      if (h < sig[k])
        sig[k] = h;
    }
    start = g_utf8_next_char (start);
  }
}

static gint64
find_near (Dedup *self, const guint32 *sig, guint64 *band_keys)
{
  gint64 best = -1;
  double best_sim = 0;
  for (guint b = 0; b < self->bands; b++) {
    band_keys[b] = cria_hash64 (sig + b * self->rows, self->rows * sizeof (guint32), b);
    GArray *cands = g_hash_table_lookup (self->band_tables[b], &band_keys[b]);
    for (guint c = 0; cands && c < cands->len; c++) {
      guint idx = g_array_index (cands, guint, c);
      const guint32 *other = &g_array_index (self->sigs, guint32, (gsize) idx * self->perm);
      guint same = 0;
      for (guint k = 0; k < self->perm; k++)
        same += sig[k] == other[k];
      double sim = (double) same / self->perm;
      if (sim >= self->threshold && sim > best_sim) {
        best_sim = sim;
        best = idx;
      }
    }
  }
  return best;
}

static void
add_dup (Dedup *self, guint idx, const CriaRecord *r, gboolean near)
{
  Cluster *c = g_ptr_array_index (self->clusters, idx);
  if (!c->dups) {
    c->dups = g_ptr_array_new_with_free_func (g_free);
    self->n_clusters++;
  }
  c->near |= near;
  g_ptr_array_add (c->dups, curate_record_name (r, self->position));
}

static gboolean
dedup_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Dedup *self = data;
  self->position++;
  g_autofree char *text = curate_record_text (record, self->fields);
  g_autofree char *norm = cria_text_normalize (text);
  guint64 h = cria_hash64 (norm, strlen (norm), 0);
  gpointer hit = g_hash_table_lookup (self->exact, &h);
  if (hit) {
    add_dup (self, GPOINTER_TO_UINT (hit) - 1, record, FALSE);
    cria_record_free (record);
    cria_emit_skip (out, "duplicate");
    return TRUE;
  }
  guint idx = self->clusters->len;
  if (self->near) {
    g_autofree guint32 *sig = g_new (guint32, self->perm);
    g_autofree guint64 *keys = g_new (guint64, self->bands);
    minhash (self, norm, sig);
    gint64 near = find_near (self, sig, keys);
    if (near >= 0) {
      add_dup (self, (guint) near, record, TRUE);
      cria_record_free (record);
      cria_emit_skip (out, "near-duplicate");
      return TRUE;
    }
    g_array_append_vals (self->sigs, sig, self->perm);
    for (guint b = 0; b < self->bands; b++) {
      GArray *cands = g_hash_table_lookup (self->band_tables[b], &keys[b]);
      if (!cands) {
        cands = g_array_new (FALSE, FALSE, sizeof (guint));
        g_hash_table_insert (self->band_tables[b], g_memdup2 (&keys[b], sizeof (guint64)), cands);
      }
      g_array_append_val (cands, idx);
    }
  }
  g_hash_table_insert (self->exact, g_memdup2 (&h, sizeof h), GUINT_TO_POINTER (idx + 1));
  Cluster *c = g_new0 (Cluster, 1);
  c->name = curate_record_name (record, self->position);
  g_ptr_array_add (self->clusters, c);
  return cria_emit (out, record, error);
}

static gboolean
dedup_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Dedup *self = data;
  if (!self->report)
    return TRUE;
  g_autoptr (CriaOutput) o = cria_output_open (self->report, error);
  if (!o)
    return FALSE;
  for (guint i = 0; i < self->clusters->len; i++) {
    Cluster *c = g_ptr_array_index (self->clusters, i);
    if (!c->dups)
      continue;
    g_autoptr (GString) line = g_string_new ("{\"kept\":");
    g_string_append (line, c->name);
    g_string_append (line, ",\"duplicates\":[");
    for (guint d = 0; d < c->dups->len; d++)
      g_string_append_printf (line, "%s%s", d ? "," : "", (char *) g_ptr_array_index (c->dups, d));
    g_string_append_printf (line, "],\"kind\":\"%s\"}\n", c->near ? "near" : "exact");
    if (!cria_output_write (o, line->str, line->len, error))
      return FALSE;
  }
  return cria_output_commit (g_steal_pointer (&o), error);
}

static const CriaStageVTable dedup_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = dedup_create,
  .destroy = dedup_destroy,
  .push = dedup_push,
  .finish = dedup_finish,
};

static const CriaProviderInfo cria_dedup_info = {
  .name = "dedup",
  .description = "Drops exact and MinHash near-duplicate records; reports the clusters (holds signatures)",
  .example = "file location=mixed.jsonl ! dedup threshold=0.8 report=clusters.jsonl ! jsonl location=unique.jsonl",
  .props = dedup_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_dedup_register (CriaPlugin *plugin);

void
cria_dedup_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_dedup_info, &dedup_vtable);
}
