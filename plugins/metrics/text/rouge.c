/* rouge: ROUGE-N, ROUGE-L and ROUGE-Lsum (Lin 2004): precision, recall and F1.
 *
 *   cria metric rouge --ref summaries.txt --hyp generated.txt -p tokenize=mixed
 *
 * ROUGE-N counts clipped n-gram overlaps; ROUGE-L is the longest common
 * subsequence of the two token sequences; ROUGE-Lsum is the summary-level
 * LCS: each reference sentence is matched against every hypothesis sentence
 * and the union of the matched reference tokens counts, each token no more
 * often than it occurs in either text. Sentences end after a token ending in
 * . ! ? or their full-width forms, since segments are single lines; then
 * punctuation is stripped from tokens (strip-punctuation), so "mat." matches
 * "mat" as in common ROUGE packages. With
 * several references a segment keeps, per ROUGE type, the reference with the
 * best F1; corpus scores are the means over segments. The default tokenizer
 * (mixed) splits CJK text into characters, so Chinese gets character ROUGE. */
#include "config.h"

#include <string.h>

#include "text.h"

static const CriaPropSpec rouge_props[] = {
  { "max-n", CRIA_PROP_INT, "2", 1, 9, NULL, "ROUGE-N is reported for every n from 1 to max-n" },
  { "lowercase", CRIA_PROP_BOOL, "true", 0, 0, NULL, "compare lower-cased tokens" },
  { "strip-punctuation", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "remove Unicode punctuation (categories P*) from tokens, dropping tokens left empty" },
  TEXT_TOKENIZE_PROP ("mixed"),
  CRIA_PROP_END
};

typedef struct {
  double p, r, f;
} Prf;

typedef struct {
  guint max_n;
  gboolean lowercase;
  gboolean strip_punctuation;
  TextTokenize tokenize;
  guint n_types; /* max_n + 2: rouge1..N, rougeL, rougeLsum */
  double *sums;  /* n_types * 3 running sums of p, r, f */
  guint64 segments;
} Rouge;

static gpointer
rouge_create (const CriaProps *props, GError **error)
{
  Rouge *self = g_new0 (Rouge, 1);
  self->max_n = (guint) cria_props_get_int (props, "max-n");
  self->lowercase = cria_props_get_bool (props, "lowercase");
  self->strip_punctuation = cria_props_get_bool (props, "strip-punctuation");
  self->tokenize = text_tokenize_from_props (props);
  self->n_types = self->max_n + 2;
  self->sums = g_new0 (double, self->n_types * 3);
  return self;
}

static void
rouge_destroy (gpointer data)
{
  Rouge *self = data;
  g_free (self->sums);
  g_free (self);
}

static Prf
prf (guint64 hits, guint64 hyp_total, guint64 ref_total)
{
  Prf s;
  s.p = (double) hits / (double) MAX (hyp_total, 1);
  s.r = (double) hits / (double) MAX (ref_total, 1);
  s.f = s.p + s.r > 0 ? 2 * s.p * s.r / (s.p + s.r) : 0;
  return s;
}

/* Full LCS tables are kept for ROUGE-Lsum's backtracking only, sentence by
 * sentence; past this many cells (100 MB) a segment is refused, not swapped. */
#define LCS_MAX_CELLS (25u * 1000 * 1000)
/* ROUGE-L's length needs two rows; this bounds its time (seconds). */
#define LCS_MAX_PAIRS (2000.0 * 1000 * 1000)

static guint
lcs_length (const char *const *a, guint la, const char *const *b, guint lb)
{
  g_autofree guint *prev = g_new0 (guint, lb + 1);
  g_autofree guint *cur = g_new0 (guint, lb + 1);
  for (guint i = 1; i <= la; i++) {
    for (guint j = 1; j <= lb; j++)
      cur[j] = !strcmp (a[i - 1], b[j - 1]) ? prev[j - 1] + 1 : MAX (prev[j], cur[j - 1]);
    guint *t = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb];
}

/* The LCS table of a and b, (la+1) x (lb+1), row-major. */
static guint *
lcs_table (const char *const *a, guint la, const char *const *b, guint lb)
{
  guint w = lb + 1;
  guint *t = g_new0 (guint, (gsize) (la + 1) * w);
  for (guint i = 1; i <= la; i++)
    for (guint j = 1; j <= lb; j++)
      t[i * w + j] = !strcmp (a[i - 1], b[j - 1]) ? t[(i - 1) * w + j - 1] + 1
                                                  : MAX (t[(i - 1) * w + j], t[i * w + j - 1]);
  return t;
}

/* Marks in `in_lcs` the tokens of a on one LCS with b. On a tie it steps
 * back in a first, which the reference script does the same way. */
static void
lcs_mark (const char *const *a, guint la, const char *const *b, guint lb, gboolean *in_lcs)
{
  g_autofree guint *t = lcs_table (a, la, b, lb);
  guint w = lb + 1, i = la, j = lb;
  while (i > 0 && j > 0) {
    if (!strcmp (a[i - 1], b[j - 1])) {
      in_lcs[--i] = TRUE;
      j--;
    } else if (t[(i - 1) * w + j] >= t[i * w + j - 1]) {
      i--;
    } else {
      j--;
    }
  }
}

static gboolean
ends_sentence (const char *token)
{
  static const char *const ends[] = { ".", "!", "?", "\xe3\x80\x82", "\xef\xbc\x81", "\xef\xbc\x9f" };
  for (guint i = 0; i < G_N_ELEMENTS (ends); i++)
    if (g_str_has_suffix (token, ends[i]))
      return TRUE;
  return FALSE;
}

static gboolean
is_punctuation (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_CONNECT_PUNCTUATION:
    case G_UNICODE_DASH_PUNCTUATION:
    case G_UNICODE_OPEN_PUNCTUATION:
    case G_UNICODE_CLOSE_PUNCTUATION:
    case G_UNICODE_INITIAL_PUNCTUATION:
    case G_UNICODE_FINAL_PUNCTUATION:
    case G_UNICODE_OTHER_PUNCTUATION:
      return TRUE;
    default:
      return FALSE;
  }
}

/* The tokens ROUGE compares, and in *starts the offsets where sentences
 * start, then the token count. Sentences are found before punctuation is
 * stripped, since it is what ends them. */
static GPtrArray *
rouge_tokens (const Rouge *self, const char *text, GArray **starts)
{
  g_autoptr (GPtrArray) raw = text_tokenize (text, self->tokenize, self->lowercase);
  GPtrArray *tokens = g_ptr_array_new_with_free_func (g_free);
  *starts = g_array_new (FALSE, FALSE, sizeof (guint));
  guint last = 0;
  g_array_append_val (*starts, last);
  for (guint i = 0; i < raw->len; i++) {
    const char *t = g_ptr_array_index (raw, i);
    GString *kept = g_string_new (NULL);
    for (const char *p = t; *p; p = g_utf8_next_char (p))
      if (!self->strip_punctuation || !is_punctuation (g_utf8_get_char (p)))
        g_string_append_unichar (kept, g_utf8_get_char (p));
    if (kept->len)
      g_ptr_array_add (tokens, g_string_free (kept, FALSE));
    else
      g_string_free (kept, TRUE);
    if (ends_sentence (t) && tokens->len > last) {
      last = tokens->len;
      g_array_append_val (*starts, last);
    }
  }
  if (tokens->len > last || (*starts)->len == 1)
    g_array_append_val (*starts, tokens->len);
  return tokens;
}

static GHashTable *
token_counts (GPtrArray *tokens)
{
  return text_ngram_counts (tokens, 1);
}

static gboolean
rouge_lsum (GPtrArray *hyp, GArray *hs, GPtrArray *ref, GArray *rs, Prf *out, GError **error)
{
  g_autoptr (GHashTable) hyp_left = token_counts (hyp);
  g_autoptr (GHashTable) ref_left = token_counts (ref);
  const char *const *h = (const char *const *) hyp->pdata;
  const char *const *r = (const char *const *) ref->pdata;
  guint64 hits = 0;
  for (guint s = 0; s + 1 < rs->len; s++) {
    guint r0 = g_array_index (rs, guint, s), r1 = g_array_index (rs, guint, s + 1);
    g_autofree gboolean *in_union = g_new0 (gboolean, r1 - r0 + 1);
    for (guint c = 0; c + 1 < hs->len; c++) {
      guint h0 = g_array_index (hs, guint, c), h1 = g_array_index (hs, guint, c + 1);
      if ((double) (r1 - r0 + 1) * (h1 - h0 + 1) > LCS_MAX_CELLS) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                     "rouge: sentences of %u and %u tokens are too long for ROUGE-Lsum", r1 - r0, h1 - h0);
        return FALSE;
      }
      lcs_mark (r + r0, r1 - r0, h + h0, h1 - h0, in_union);
    }
    for (guint i = r0; i < r1; i++) {
      if (!in_union[i - r0])
        continue;
      guint hl = text_count (hyp_left, r[i]), rl = text_count (ref_left, r[i]);
      if (hl > 0 && rl > 0) {
        hits++;
        g_hash_table_replace (hyp_left, g_strdup (r[i]), GUINT_TO_POINTER (hl - 1));
        g_hash_table_replace (ref_left, g_strdup (r[i]), GUINT_TO_POINTER (rl - 1));
      }
    }
  }
  *out = prf (hits, hyp->len, ref->len);
  return TRUE;
}

/* Every ROUGE type of one hypothesis against one reference, in type order. */
static gboolean
rouge_pair (Rouge *self, GPtrArray *hyp, GArray *hs, GPtrArray *ref, GArray *rs, Prf *out, GError **error)
{
  if ((double) hyp->len * ref->len > LCS_MAX_PAIRS) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "rouge: a hypothesis of %u and a reference of %u tokens are too long for ROUGE-L", hyp->len, ref->len);
    return FALSE;
  }
  for (guint n = 1; n <= self->max_n; n++) {
    g_autoptr (GHashTable) hc = text_ngram_counts (hyp, n);
    g_autoptr (GHashTable) rc = text_ngram_counts (ref, n);
    guint64 hn = hyp->len >= n ? hyp->len - n + 1 : 0;
    guint64 rn = ref->len >= n ? ref->len - n + 1 : 0;
    out[n - 1] = prf (text_ngram_overlap (hc, rc), hn, rn);
  }
  guint lcs = lcs_length ((const char *const *) hyp->pdata, hyp->len, (const char *const *) ref->pdata, ref->len);
  out[self->max_n] = prf (lcs, hyp->len, ref->len);
  return rouge_lsum (hyp, hs, ref, rs, &out[self->max_n + 1], error);
}

static char *
type_name (const Rouge *self, guint type)
{
  if (type < self->max_n)
    return g_strdup_printf ("rouge%u", type + 1);
  return g_strdup (type == self->max_n ? "rougeL" : "rougeLsum");
}

static gboolean
rouge_add (gpointer data, const char *hypothesis, const char *const *references, guint n_references,
           CriaScores *segment, GError **error)
{
  Rouge *self = data;
  g_autoptr (GArray) hs = NULL;
  g_autoptr (GPtrArray) hyp = rouge_tokens (self, hypothesis, &hs);
  g_autofree Prf *best = g_new0 (Prf, self->n_types);
  g_autofree Prf *cur = g_new0 (Prf, self->n_types);
  for (guint r = 0; r < n_references; r++) {
    g_autoptr (GArray) rs = NULL;
    g_autoptr (GPtrArray) ref = rouge_tokens (self, references[r], &rs);
    if (!rouge_pair (self, hyp, hs, ref, rs, cur, error))
      return FALSE;
    for (guint t = 0; t < self->n_types; t++)
      if (r == 0 || cur[t].f > best[t].f)
        best[t] = cur[t];
  }
  self->segments++;
  for (guint t = 0; t < self->n_types; t++) {
    self->sums[t * 3] += best[t].p;
    self->sums[t * 3 + 1] += best[t].r;
    self->sums[t * 3 + 2] += best[t].f;
  }
  if (!segment)
    return TRUE;
  for (guint t = 0; t < self->n_types; t++) {
    g_autofree char *type = type_name (self, t);
    const double v[3] = { best[t].p, best[t].r, best[t].f };
    for (guint k = 0; k < 3; k++) {
      g_autofree char *name = g_strdup_printf ("%s_%c", type, "prf"[k]);
      cria_scores_set (segment, name, v[k]);
    }
  }
  return TRUE;
}

static gboolean
rouge_finish (gpointer data, CriaScores *corpus, GError **error)
{
  Rouge *self = data;
  for (guint t = 0; t < self->n_types; t++) {
    g_autofree char *type = type_name (self, t);
    for (guint k = 0; k < 3; k++) {
      g_autofree char *name = g_strdup_printf ("%s_%c", type, "prf"[k]);
      cria_scores_set (corpus, name, self->segments ? self->sums[t * 3 + k] / (double) self->segments : 0);
    }
  }
  return TRUE;
}

static const CriaMetricVTable rouge_vtable = {
  CRIA_VTABLE_INIT (CriaMetricVTable),
  .create = rouge_create,
  .destroy = rouge_destroy,
  .add = rouge_add,
  .finish = rouge_finish,
};

static const CriaProviderInfo cria_rouge_info = {
  .name = "rouge",
  .description = "ROUGE-N, ROUGE-L and summary-level ROUGE-Lsum: precision, recall and F1",
  .example = "cria metric rouge --ref refs.txt --hyp out.txt",
  .props = rouge_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_rouge_register (CriaPlugin *plugin);

void
cria_rouge_register (CriaPlugin *plugin)
{
  cria_plugin_add_metric (plugin, &cria_rouge_info, &rouge_vtable);
}
