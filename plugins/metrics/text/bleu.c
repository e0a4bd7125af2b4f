/* bleu: corpus and sentence BLEU, the numbers of nltk 3.8's corpus_bleu and
 * sentence_bleu with its SmoothingFunction methods.
 *
 *   cria metric bleu --ref refs.txt --hyp out.txt -p smoothing=method3 -p tokenize=char
 *
 * nltk takes token lists; cria tokenizes first (tokenize=word is Python's
 * str.split(), tokenize=char the characters but whitespace: BLEU over
 * characters is what is reported for Chinese). Corpus BLEU sums the clipped
 * n-gram counts of every segment before dividing (Papineni et al. 2002).
 * nltk's quirks are kept on purpose so scores equal it: at corpus level
 * method5 and method6 look at the last segment alone, and a precision that is
 * zero after smoothing drops out of the geometric mean. */
#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "text.h"

#define BLEU_MAX_ORDER 9

static const CriaPropSpec bleu_props[] = {
  { "weights", CRIA_PROP_STRING, "0.25,0.25,0.25,0.25", 0, 0, NULL,
    "comma-separated n-gram weights, unigrams first; their count is the maximum n-gram order (1 to 9)" },
  { "smoothing", CRIA_PROP_ENUM, "method0", 0, 0, "method0|method1|method2|method3|method4|method5|method6|method7",
    "nltk SmoothingFunction method (Chen and Cherry 2014); method0 is none" },
  { "epsilon", CRIA_PROP_DOUBLE, "0.1", 0, 1e9, NULL, "count added to zero matches by method1" },
  { "alpha", CRIA_PROP_DOUBLE, "5", 0, 1e9, NULL, "weight of the prior in method6" },
  { "k", CRIA_PROP_INT, "5", 1, 1e9, NULL, "the K of method4 and method7" },
  { "auto-reweigh", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "with the default weights and fewer than 4 hypothesis tokens, weigh the orders that fit uniformly" },
  TEXT_TOKENIZE_PROP ("word"),
  CRIA_PROP_END
};

/* Clipped n-gram matches and totals of one segment or of the corpus. */
typedef struct {
  guint64 num[BLEU_MAX_ORDER];
  guint64 den[BLEU_MAX_ORDER];
  guint64 hyp_len;
  guint64 ref_len;
  /* method5 and method6 read the last segment: its length and its 5-gram precision. */
  guint64 last_hyp_len;
  guint64 last_num5, last_den5;
} BleuStats;

typedef struct {
  double weights[BLEU_MAX_ORDER];
  guint n;
  int method;
  double epsilon, alpha;
  gint64 k;
  gboolean auto_reweigh;
  TextTokenize tokenize;
  BleuStats corpus;
} Bleu;

static gpointer
bleu_create (const CriaProps *props, GError **error)
{
  g_autoptr (GError) perr = NULL;
  g_auto (GStrv) parts = g_strsplit (cria_props_get_string (props, "weights"), ",", -1);
  guint n = g_strv_length (parts);
  if (n < 1 || n > BLEU_MAX_ORDER) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "bleu: weights takes 1 to %d numbers, not %u",
                 BLEU_MAX_ORDER, n);
    return NULL;
  }
  g_autofree Bleu *self = g_new0 (Bleu, 1);
  for (guint i = 0; i < n; i++) {
    char *end;
    const char *s = g_strstrip (parts[i]);
    self->weights[i] = g_ascii_strtod (s, &end);
    if (!*s || *end || !isfinite (self->weights[i]) || self->weights[i] < 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "bleu: weight %u ('%s') is not a non-negative number", i + 1, s);
      return NULL;
    }
  }
  self->n = n;
  self->method = cria_props_get_string (props, "smoothing")[6] - '0';
  self->epsilon = cria_props_get_double (props, "epsilon");
  self->alpha = cria_props_get_double (props, "alpha");
  self->k = cria_props_get_int (props, "k");
  self->auto_reweigh = cria_props_get_bool (props, "auto-reweigh");
  self->tokenize = text_tokenize_from_props (props);
  return g_steal_pointer (&self);
}

/* Python's math.fsum: the correctly rounded sum (Shewchuk's exact partials),
 * so that a sum of logs rounds as nltk's does. */
static double
fsum (const double *x, guint n)
{
  double p[BLEU_MAX_ORDER + 2];
  guint np = 0;
  for (guint k = 0; k < n; k++) {
    double v = x[k];
    guint i = 0;
    for (guint j = 0; j < np; j++) {
      double y = p[j];
      if (fabs (v) < fabs (y)) {
        double t = v;
        v = y;
        y = t;
      }
      double hi = v + y;
      double lo = y - (hi - v);
      if (lo != 0.0)
        p[i++] = lo;
      v = hi;
    }
    p[i++] = v;
    np = i;
  }
  if (!np)
    return 0.0;
  guint i = np - 1;
  double hi = p[i], lo = 0.0;
  while (i > 0) {
    double v = hi, y = p[--i];
    hi = v + y;
    lo = y - (hi - v);
    if (lo != 0.0)
      break;
  }
  /* Round half to even across the remaining partials. */
  if (i > 0 && ((lo < 0 && p[i - 1] < 0) || (lo > 0 && p[i - 1] > 0))) {
    double y = lo * 2, v = hi + y;
    if (y == v - hi)
      hi = v;
  }
  return hi;
}

/* The smoothed precisions p[0..n-1]; FALSE when method6 cannot apply. */
static gboolean
smooth (const Bleu *self, const BleuStats *st, int method, double *p, GError **error)
{
  guint n = self->n;
  guint64 hyp_len = st->hyp_len ? st->hyp_len : st->last_hyp_len;
  guint inc = 1;
  switch (method) {
    case 0:
      for (guint i = 0; i < n; i++)
        p[i] = st->num[i] ? (double) st->num[i] / (double) st->den[i] : DBL_MIN;
      return TRUE;
    case 1:
      for (guint i = 0; i < n; i++)
        p[i] = st->num[i] ? (double) st->num[i] / (double) st->den[i] : self->epsilon / (double) st->den[i];
      return TRUE;
    case 2:
      for (guint i = 0; i < n; i++)
        p[i] = i == 0 ? (double) st->num[0] / (double) st->den[0]
                      : (double) (st->num[i] + 1) / (double) (st->den[i] + 1);
      return TRUE;
    case 3:
      for (guint i = 0; i < n; i++) {
        p[i] = (double) st->num[i] / (double) st->den[i];
        if (!st->num[i])
          p[i] = 1.0 / (double) ((G_GUINT64_CONSTANT (1) << inc++) * st->den[i]);
      }
      return TRUE;
    case 4:
      for (guint i = 0; i < n; i++) {
        p[i] = (double) st->num[i] / (double) st->den[i];
        if (!st->num[i] && hyp_len > 1) {
          double scaled = (double) ((gint64) (G_GUINT64_CONSTANT (1) << inc++) * self->k) / log ((double) hyp_len);
          p[i] = (1.0 / scaled) / (double) st->den[i];
        }
      }
      return TRUE;
    case 5:
    case 7: {
      /* method7 averages method4's precisions, method5 the raw ones. */
      if (method == 7)
        smooth (self, st, 4, p, NULL);
      else
        for (guint i = 0; i < n; i++)
          p[i] = (double) st->num[i] / (double) st->den[i];
      double next[BLEU_MAX_ORDER + 1];
      memcpy (next, p, n * sizeof (double));
      next[n] = (double) st->last_num5 / (double) st->last_den5;
      double m = p[0] + 1;
      for (guint i = 0; i < n; i++) {
        p[i] = (m + next[i] + next[i + 1]) / 3;
        m = p[i];
      }
      return TRUE;
    }
    case 6:
      if (n < 3 || !st->num[2]) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                     "bleu: smoothing method6 needs three or more weights and a trigram match");
        return FALSE;
      }
      for (guint i = 0; i < n; i++) {
        p[i] = (double) st->num[i] / (double) st->den[i];
        if (i < 2)
          continue;
        double pi0 = p[i - 2] == 0 ? 0 : p[i - 1] * p[i - 1] / p[i - 2];
        double l = st->last_hyp_len > i ? (double) (st->last_hyp_len - i) : 0;
        p[i] = ((double) st->num[i] + self->alpha * pi0) / (l + self->alpha);
      }
      return TRUE;
    default:
      g_assert_not_reached ();
  }
}

static gboolean
bleu_score (const Bleu *self, const BleuStats *st, double *score, GError **error)
{
  if (st->num[0] == 0) {
    *score = 0;
    return TRUE;
  }
  double bp = st->hyp_len > st->ref_len ? 1.0 : exp (1.0 - (double) st->ref_len / (double) st->hyp_len);
  double p[BLEU_MAX_ORDER];
  if (!smooth (self, st, self->method, p, error))
    return FALSE;
  const double *w = self->weights;
  guint nw = self->n;
  double uniform[BLEU_MAX_ORDER];
  if (self->auto_reweigh && st->hyp_len < 4 && nw == 4 && w[0] == 0.25 && w[1] == 0.25 && w[2] == 0.25 &&
      w[3] == 0.25) {
    nw = (guint) st->hyp_len;
    for (guint i = 0; i < nw; i++)
      uniform[i] = 1.0 / (double) st->hyp_len;
    w = uniform;
  }
  double terms[BLEU_MAX_ORDER];
  guint nt = 0;
  for (guint i = 0; i < MIN (nw, self->n); i++)
    if (p[i] > 0)
      terms[nt++] = w[i] * log (p[i]);
  *score = bp * exp (fsum (terms, nt));
  return TRUE;
}

static void
modified_precision (GPtrArray *hyp, GPtrArray **refs, guint n_refs, guint n, guint64 *num, guint64 *den)
{
  g_autoptr (GHashTable) counts = text_ngram_counts (hyp, n);
  guint64 total = hyp->len >= n ? hyp->len - n + 1 : 0;
  g_autoptr (GHashTable) max_ref = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint r = 0; r < n_refs; r++) {
    g_autoptr (GHashTable) rc = text_ngram_counts (refs[r], n);
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, counts);
    while (g_hash_table_iter_next (&it, &key, &value))
      if (text_count (rc, key) > text_count (max_ref, key))
        g_hash_table_insert (max_ref, key, GUINT_TO_POINTER (text_count (rc, key)));
  }
  *num = text_ngram_overlap (counts, max_ref);
  *den = MAX (1, total);
}

static gboolean
bleu_add (gpointer data, const char *hypothesis, const char *const *references, guint n_references, CriaScores *segment,
          GError **error)
{
  Bleu *self = data;
  g_autoptr (GPtrArray) hyp = text_tokenize (hypothesis, self->tokenize, FALSE);
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  for (guint r = 0; r < n_references; r++)
    g_ptr_array_add (owned, text_tokenize (references[r], self->tokenize, FALSE));
  GPtrArray **refs = (GPtrArray **) owned->pdata;

  BleuStats seg = { 0 };
  for (guint i = 0; i < self->n; i++)
    modified_precision (hyp, refs, n_references, i + 1, &seg.num[i], &seg.den[i]);
  if (self->method == 5 || self->method == 7)
    modified_precision (hyp, refs, n_references, 5, &seg.last_num5, &seg.last_den5);
  seg.hyp_len = seg.last_hyp_len = hyp->len;
  /* The closest reference length; the shorter one on a tie. */
  guint64 best = G_MAXUINT64, best_diff = G_MAXUINT64;
  for (guint r = 0; r < n_references; r++) {
    guint64 len = refs[r]->len;
    guint64 diff = len > hyp->len ? len - hyp->len : hyp->len - len;
    if (diff < best_diff || (diff == best_diff && len < best)) {
      best = len;
      best_diff = diff;
    }
  }
  seg.ref_len = best;

  BleuStats *c = &self->corpus;
  for (guint i = 0; i < self->n; i++) {
    c->num[i] += seg.num[i];
    c->den[i] += seg.den[i];
  }
  c->hyp_len += seg.hyp_len;
  c->ref_len += seg.ref_len;
  c->last_hyp_len = seg.last_hyp_len;
  c->last_num5 = seg.last_num5;
  c->last_den5 = seg.last_den5;

  if (!segment)
    return TRUE;
  double score;
  if (!bleu_score (self, &seg, &score, error))
    return FALSE;
  cria_scores_set (segment, "bleu", score);
  return TRUE;
}

static gboolean
bleu_finish (gpointer data, CriaScores *corpus, GError **error)
{
  Bleu *self = data;
  const BleuStats *c = &self->corpus;
  double score;
  if (!bleu_score (self, c, &score, error))
    return FALSE;
  cria_scores_set (corpus, "bleu", score);
  double bp = c->hyp_len > c->ref_len ? 1.0 : c->hyp_len ? exp (1.0 - (double) c->ref_len / (double) c->hyp_len) : 0;
  cria_scores_set (corpus, "brevity_penalty", bp);
  for (guint i = 0; i < self->n; i++) {
    g_autofree char *name = g_strdup_printf ("precision_%u", i + 1);
    cria_scores_set (corpus, name, c->den[i] ? (double) c->num[i] / (double) c->den[i] : 0);
  }
  cria_scores_set (corpus, "hyp_len", (double) c->hyp_len);
  cria_scores_set (corpus, "ref_len", (double) c->ref_len);
  return TRUE;
}

static const CriaMetricVTable bleu_vtable = {
  CRIA_VTABLE_INIT (CriaMetricVTable), .create = bleu_create, .destroy = g_free, .add = bleu_add, .finish = bleu_finish,
};

static const CriaProviderInfo cria_bleu_info = {
  .name = "bleu",
  .description = "Corpus and sentence BLEU as nltk 3.8 computes them, with its smoothing methods",
  .example = "cria metric bleu --ref refs.txt --hyp out.txt -p smoothing=method1",
  .props = bleu_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_bleu_register (CriaPlugin *plugin);

void
cria_bleu_register (CriaPlugin *plugin)
{
  cria_plugin_add_metric (plugin, &cria_bleu_info, &bleu_vtable);
}
