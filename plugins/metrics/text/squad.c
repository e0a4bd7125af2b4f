/* squad: exact match and F1 under the rules of the official SQuAD v2.0
 * evaluation.
 *
 *   cria metric squad --ref answers1.txt --ref answers2.txt --hyp predictions.txt
 *
 * Answers are normalized (lower case, ASCII punctuation removed, the articles
 * a/an/the removed, whitespace collapsed); F1 is over the bag of normalized
 * tokens; a question scores its best gold answer. Gold answers that normalize
 * to nothing do not count, and a question left with none is unanswerable:
 * only an empty prediction scores on it. Corpus scores are percentages, split
 * into has_ans_* and no_ans_* as the official script does; segment scores
 * are its raw 0/1 exact match and 0..1 F1. */
#include "config.h"

#include <string.h>

#include "text.h"

typedef struct {
  double exact[2], f1[2]; /* [0]: answerable, [1]: unanswerable */
  guint64 total[2];
} Squad;

static gpointer
squad_create (const CriaProps *props, GError **error)
{
  return g_new0 (Squad, 1);
}

/* Python's \w once punctuation (and with it '_') is gone. */
static gboolean
is_word_char (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return TRUE;
    default:
      return g_unichar_isalpha (c);
  }
}

/* The normalized answer's tokens. */
static GPtrArray *
answer_tokens (const char *text)
{
  g_autofree char *lower = g_utf8_strdown (text, -1);
  g_autoptr (GString) s = g_string_new (NULL);
  for (const char *p = lower; *p; p++)
    if (!(g_ascii_ispunct (*p)))
      g_string_append_c (s, *p);
  /* Articles are whole words: maximal runs of word characters. */
  g_autoptr (GString) out = g_string_new (NULL);
  const char *p = s->str;
  while (*p) {
    const char *q = p;
    while (*q && is_word_char (g_utf8_get_char (q)))
      q = g_utf8_next_char (q);
    if (q == p) {
      q = g_utf8_next_char (p);
      g_string_append_len (out, p, q - p);
    } else {
      gsize n = (gsize) (q - p);
      gboolean article = (n == 1 && *p == 'a') || (n == 2 && !strncmp (p, "an", 2)) ||
                         (n == 3 && !strncmp (p, "the", 3));
      if (article)
        g_string_append_c (out, ' ');
      else
        g_string_append_len (out, p, (gssize) n);
    }
    p = q;
  }
  return text_tokenize (out->str, TEXT_TOKENIZE_WORD, FALSE);
}

static gboolean
same_tokens (GPtrArray *a, GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (strcmp (g_ptr_array_index (a, i), g_ptr_array_index (b, i)))
      return FALSE;
  return TRUE;
}

static double
token_f1 (GPtrArray *gold, GPtrArray *pred)
{
  if (!gold->len || !pred->len)
    return same_tokens (gold, pred);
  g_autoptr (GHashTable) gc = text_ngram_counts (gold, 1);
  g_autoptr (GHashTable) pc = text_ngram_counts (pred, 1);
  guint64 same = text_ngram_overlap (pc, gc);
  if (!same)
    return 0;
  double precision = (double) same / pred->len;
  double recall = (double) same / gold->len;
  return 2 * precision * recall / (precision + recall);
}

static gboolean
squad_add (gpointer data, const char *hypothesis, const char *const *references, guint n_references,
           CriaScores *segment, GError **error)
{
  Squad *self = data;
  g_autoptr (GPtrArray) pred = answer_tokens (hypothesis);
  double exact = 0, f1 = 0;
  gboolean answerable = FALSE;
  for (guint r = 0; r < n_references; r++) {
    g_autoptr (GPtrArray) gold = answer_tokens (references[r]);
    if (!gold->len)
      continue;
    answerable = TRUE;
    exact = MAX (exact, same_tokens (gold, pred) ? 1.0 : 0.0);
    f1 = MAX (f1, token_f1 (gold, pred));
  }
  if (!answerable) /* the official script's gold [''] */
    exact = f1 = pred->len == 0;
  guint k = answerable ? 0 : 1;
  self->exact[k] += exact;
  self->f1[k] += f1;
  self->total[k]++;
  if (segment) {
    cria_scores_set (segment, "exact", exact);
    cria_scores_set (segment, "f1", f1);
  }
  return TRUE;
}

static double
percent (double sum, guint64 n)
{
  return n ? 100.0 * sum / (double) n : 0;
}

static gboolean
squad_finish (gpointer data, CriaScores *corpus, GError **error)
{
  Squad *self = data;
  guint64 total = self->total[0] + self->total[1];
  cria_scores_set (corpus, "exact", percent (self->exact[0] + self->exact[1], total));
  cria_scores_set (corpus, "f1", percent (self->f1[0] + self->f1[1], total));
  cria_scores_set (corpus, "total", (double) total);
  static const char *const names[2][3] = { { "has_ans_exact", "has_ans_f1", "has_ans_total" },
                                           { "no_ans_exact", "no_ans_f1", "no_ans_total" } };
  for (guint k = 0; k < 2; k++) {
    if (!self->total[k])
      continue;
    cria_scores_set (corpus, names[k][0], percent (self->exact[k], self->total[k]));
    cria_scores_set (corpus, names[k][1], percent (self->f1[k], self->total[k]));
    cria_scores_set (corpus, names[k][2], (double) self->total[k]);
  }
  return TRUE;
}

static const CriaMetricVTable squad_vtable = {
  CRIA_VTABLE_INIT (CriaMetricVTable),
  .flags = CRIA_METRIC_FLAG_EMPTY_REFERENCES,
  .create = squad_create,
  .destroy = g_free,
  .add = squad_add,
  .finish = squad_finish,
};

static const CriaProviderInfo cria_squad_info = {
  .name = "squad",
  .description = "SQuAD v1.1/v2.0 exact match and F1 with the official answer normalization",
  .example = "cria metric squad --ref gold.txt --hyp predictions.txt",
  .props = NULL,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_squad_register (CriaPlugin *plugin);

void
cria_squad_register (CriaPlugin *plugin)
{
  cria_plugin_add_metric (plugin, &cria_squad_info, &squad_vtable);
}
