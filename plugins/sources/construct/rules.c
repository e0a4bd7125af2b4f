/* rules.c: parsing and filtering model output for automatic data construction. */
#include "config.h"

#include <string.h>

#include "rules.h"

static gboolean
is_cjk (gunichar c)
{
  GUnicodeScript s = g_unichar_get_script (c);
  return s == G_UNICODE_SCRIPT_HAN || s == G_UNICODE_SCRIPT_HIRAGANA || s == G_UNICODE_SCRIPT_KATAKANA ||
         s == G_UNICODE_SCRIPT_HANGUL;
}

guint
rules_count_words (const char *text)
{
  guint n = 0;
  gboolean in_word = FALSE;
  for (const char *p = text; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (is_cjk (c)) {
      n++;
      in_word = FALSE;
    } else if (g_unichar_isspace (c)) {
      in_word = FALSE;
    } else if (!in_word) {
      n++;
      in_word = TRUE;
    }
  }
  return n;
}

/* "12. text", "12、text", "12) text"; returns the number, or -1. */
static int
numbered (const char *line, const char **rest)
{
  const char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  if (!g_ascii_isdigit (*p))
    return -1;
  int n = 0;
  while (g_ascii_isdigit (*p) && n < 100000)
    n = n * 10 + (*p++ - '0');
  while (*p == ' ')
    p++;
  if (*p == '.' || *p == ')')
    p++;
  else if (g_str_has_prefix (p, "、") || g_str_has_prefix (p, "．"))
    p += 3;
  else
    return -1;
  *rest = p;
  return n;
}

GPtrArray *
rules_parse_numbered_list (const char *text, guint first_number)
{
  GPtrArray *items = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  GString *current = g_string_new (NULL);
  guint expect = first_number;
  gboolean started = FALSE; /* inside an item (the first may be unnumbered) */
  for (char **l = lines; *l; l++) {
    const char *rest = NULL;
    int n = numbered (*l, &rest);
    if (n >= 0) {
      if (started || current->len) {
        g_strstrip (current->str);
        if (!*current->str)
          break;
        g_ptr_array_add (items, g_strdup (current->str));
        g_string_truncate (current, 0);
        expect++;
      }
      if ((guint) n != expect)
        goto done;
      started = TRUE;
      g_string_append (current, rest);
    } else if (started || items->len == 0) {
      /* A continuation line, or the unnumbered first item. */
      const char *t = *l;
      while (*t == ' ' || *t == '\t')
        t++;
      if (*t) {
        if (current->len)
          g_string_append_c (current, ' ');
        g_string_append (current, t);
      }
    }
  }
  g_strstrip (current->str);
  if (*current->str)
    g_ptr_array_add (items, g_strdup (current->str));
done:
  g_string_free (current, TRUE);
  return items;
}

/* A phrase found as whole words (ASCII), or anywhere (other scripts). */
static gboolean
contains_phrase (const char *lower, const char *phrase)
{
  gboolean ascii = TRUE;
  for (const char *q = phrase; *q; q++)
    ascii &= !((guchar) *q & 0x80);
  gsize len = strlen (phrase);
  for (const char *hit = strstr (lower, phrase); hit; hit = strstr (hit + 1, phrase)) {
    if (!ascii)
      return TRUE;
    gboolean left = hit == lower || !g_ascii_isalnum (hit[-1]);
    gboolean right = !g_ascii_isalnum (hit[len]);
    if (left && right)
      return TRUE;
  }
  return FALSE;
}

const char *
rules_check_instruction (const RulesInstructionFilter *f, const char *instruction)
{
  g_autofree char *text = g_strstrip (g_strdup (instruction));
  if (!*text)
    return "empty";
  guint words = rules_count_words (text);
  if (words < f->min_words)
    return "too-short";
  if (f->max_words && words > f->max_words)
    return "too-long";
  g_autofree char *lower = g_utf8_strdown (text, -1);
  for (char **b = f->blocklist; b && *b; b++)
    if (**b && contains_phrase (lower, *b))
      return "blocklist";
  gunichar first = g_utf8_get_char (text);
  if (g_unichar_ispunct (first))
    return "punctuation-start";
  if (f->ascii_start && first >= 0x80)
    return "non-ascii-start";
  return NULL;
}

struct _RulesPool {
  CriaMetric *rouge;
  CriaScores *scores;
  GPtrArray *items;
};

RulesPool *
rules_pool_new (CriaRegistry *registry, GError **error)
{
  const CriaProvider *provider = NULL;
  g_autoptr (CriaProps) props = NULL;
  if (!cria_registry_parse_spec (registry, CRIA_KIND_METRIC, "rouge max-n=1 tokenize=mixed", &provider, &props,
                                 error)) {
    g_prefix_error (error, "the similarity filter needs the rouge metric: ");
    return NULL;
  }
  CriaMetric *rouge = cria_metric_new (provider, props, error);
  if (!rouge)
    return NULL;
  RulesPool *pool = g_new0 (RulesPool, 1);
  pool->rouge = rouge;
  pool->scores = cria_scores_new ();
  pool->items = g_ptr_array_new_with_free_func (g_free);
  return pool;
}

void
rules_pool_free (RulesPool *pool)
{
  if (!pool)
    return;
  cria_metric_free (pool->rouge);
  cria_scores_free (pool->scores);
  g_ptr_array_unref (pool->items);
  g_free (pool);
}

void
rules_pool_add (RulesPool *pool, const char *instruction)
{
  g_ptr_array_add (pool->items, g_strdup (instruction));
}

guint
rules_pool_size (RulesPool *pool)
{
  return pool->items->len;
}

const char *
rules_pool_get (RulesPool *pool, guint i)
{
  return g_ptr_array_index (pool->items, i);
}

double
rules_pool_similarity (RulesPool *pool, const char *a, const char *b)
{
  double f = 0;
  cria_scores_clear (pool->scores);
  /* Only this pair's scores are read; the metric's corpus sums are never used. */
  if (!cria_metric_add (pool->rouge, a, &b, 1, pool->scores, NULL))
    return 0;
  cria_scores_lookup (pool->scores, "rougeL_f", &f);
  return f;
}

double
rules_pool_max_similarity (RulesPool *pool, const char *text, int *most_similar)
{
  double best = 0;
  *most_similar = -1;
  for (guint i = 0; i < pool->items->len; i++) {
    double f = rules_pool_similarity (pool, text, g_ptr_array_index (pool->items, i));
    if (*most_similar < 0 || f > best) {
      best = f;
      *most_similar = (int) i;
    }
  }
  return best;
}

/* The position of the first of the markers (case-insensitive), and its end. */
static const char *
find_marker (const char *lower, const char *const *markers, gsize *marker_len)
{
  const char *best = NULL;
  for (const char *const *m = markers; *m; m++) {
    const char *hit = strstr (lower, *m);
    if (hit && (!best || hit < best)) {
      best = hit;
      *marker_len = strlen (*m);
    }
  }
  return best;
}

static char *
clean_field (const char *start, gsize len)
{
  char *s = g_strstrip (g_strndup (start, len));
  static const char *const empty[] = { "<noinput>", "<no input>", "null", "none", "n/a", "无", "空", NULL };
  g_autofree char *lower = g_utf8_strdown (s, -1);
  for (const char *const *e = empty; *e; e++)
    if (strcmp (lower, *e) == 0)
      s[0] = '\0';
  return s;
}

gboolean
rules_parse_instance (const char *text, gboolean output_first, char **input, char **output)
{
  static const char *const in_markers[] = { "input:", "输入：", "输入:", NULL };
  static const char *const out_markers[] = { "output:", "输出：", "输出:", NULL };
  static const char *const label_markers[] = { "class label:", "label:", "类别：", "类别:", "标签：", "标签:", NULL };
  /* Lower-casing keeps byte offsets for the ASCII markers; CJK text is unchanged. */
  g_autofree char *lower = g_ascii_strdown (text, -1);
  gsize in_len = 0, out_len = 0;
  const char *in = find_marker (lower, in_markers, &in_len);
  const char *out = find_marker (lower, output_first ? label_markers : out_markers, &out_len);
  if (!out)
    return FALSE;
  gsize out_at = (gsize) (out - lower) + out_len;
  if (!output_first) {
    if (in && in > out)
      return FALSE; /* an Output before its Input is not an instance */
    gsize in_at = in ? (gsize) (in - lower) + in_len : 0;
    *input = clean_field (text + in_at, (gsize) (out - lower) - in_at);
    *output = clean_field (text + out_at, strlen (text) - out_at);
  } else {
    if (!in || in < out)
      return FALSE;
    gsize in_at = (gsize) (in - lower) + in_len;
    *output = clean_field (text + out_at, (gsize) (in - lower) - out_at);
    *input = clean_field (text + in_at, strlen (text) - in_at);
  }
  if (!**output) {
    g_clear_pointer (input, g_free);
    g_clear_pointer (output, g_free);
    return FALSE;
  }
  return TRUE;
}

gboolean
rules_parse_yes_no (const char *text, gboolean *yes)
{
  g_autofree char *t = g_strstrip (g_ascii_strdown (text, -1));
  if (g_str_has_prefix (t, "yes") || g_str_has_prefix (t, "是")) {
    *yes = TRUE;
    return TRUE;
  }
  if (g_str_has_prefix (t, "no") || g_str_has_prefix (t, "否") || g_str_has_prefix (t, "不是")) {
    *yes = FALSE;
    return TRUE;
  }
  return FALSE;
}

static gboolean
only_punctuation_and_stop_words (const char *text)
{
  static const char *const stop[] = {
    "a",   "an",  "the",  "and",  "or", "but", "of",   "to",   "in",    "on",    "at", "for", "with",
    "is",  "are", "was",  "were", "be", "it",  "this", "that", "these", "those", "i",  "you", "he",
    "she", "we",  "they", "as",   "by", "so",  "not",  "的",   "了",    "是",    "在", "和",  "也",
    "就",  "都",  "而",   "及",   "与", "着",  "或",   "一个", "这",    "那",    NULL,
  };
  g_autofree char *lower = g_utf8_strdown (text, -1);
  GString *word = g_string_new (NULL);
  gboolean only = TRUE;
  for (const char *p = lower;; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    gboolean boundary = !c || g_unichar_isspace (c) || g_unichar_ispunct (c) || is_cjk (c);
    if (boundary && word->len) {
      only &= g_strv_contains ((const char *const *) stop, word->str);
      g_string_truncate (word, 0);
    }
    if (!c || !only)
      break;
    if (is_cjk (c)) {
      char buf[8] = { 0 };
      g_unichar_to_utf8 (c, buf);
      only &= g_strv_contains ((const char *const *) stop, buf);
    } else if (!boundary) {
      g_string_append_unichar (word, c);
    }
  }
  g_string_free (word, TRUE);
  return only;
}

const char *
rules_check_evolution (RulesPool *scratch, const char *original, const char *evolved, const char *response,
                       double max_similarity)
{
  static const char *const leaks[] = {
    "#given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#the given prompt#",
    "给定提示",
    "改写后的提示",
    "重写的提示",
    NULL,
  };
  static const char *const apologies[] = { "sorry", "i apologize", "as an ai",         "i cannot", "i can't",
                                           "抱歉",  "对不起",      "作为一个人工智能", "我无法",   NULL };
  g_autofree char *evo = g_strstrip (g_strdup (evolved ? evolved : ""));
  g_autofree char *resp = g_strstrip (g_strdup (response ? response : ""));
  if (!*evo || !*resp)
    return "empty";
  g_autofree char *lower = g_utf8_strdown (evo, -1);
  for (const char *const *l = leaks; *l; l++)
    if (strstr (lower, *l))
      return "prompt-leak";
  g_autofree char *orig = g_strstrip (g_strdup (original ? original : ""));
  if (strcmp (orig, evo) == 0 || rules_pool_similarity (scratch, evo, orig) >= max_similarity)
    return "no-information-gain";
  g_autofree char *rlower = g_utf8_strdown (resp, -1);
  if (rules_count_words (resp) < 80)
    for (const char *const *a = apologies; *a; a++)
      if (strstr (rlower, *a))
        return "apology";
  if (only_punctuation_and_stop_words (resp))
    return "punctuation-and-stop-words";
  return NULL;
}
