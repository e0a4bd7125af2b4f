/* text.c: tokenization and n-gram counts of the text metrics. */
#include "config.h"

#include <string.h>

#include "text.h"

TextTokenize
text_tokenize_from_props (const CriaProps *props)
{
  const char *mode = cria_props_get_string (props, "tokenize");
  if (!g_strcmp0 (mode, "char"))
    return TEXT_TOKENIZE_CHAR;
  if (!g_strcmp0 (mode, "mixed"))
    return TEXT_TOKENIZE_MIXED;
  return TEXT_TOKENIZE_WORD;
}

gboolean
text_is_space (gunichar c)
{
  /* Python's definition (bidi class WS, B or S, or category Zs), so that
   * word tokens equal what reference scripts get from str.split(). */
  if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20))
    return TRUE;
  switch (c) {
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return TRUE;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

static void
flush (GPtrArray *tokens, GString *cur, gboolean lowercase)
{
  if (!cur->len)
    return;
  g_ptr_array_add (tokens, lowercase ? g_utf8_strdown (cur->str, (gssize) cur->len) : g_strdup (cur->str));
  g_string_truncate (cur, 0);
}

GPtrArray *
text_tokenize (const char *text, TextTokenize mode, gboolean lowercase)
{
  GPtrArray *tokens = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) cur = g_string_new (NULL);
  for (const char *p = text; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (text_is_space (c)) {
      flush (tokens, cur, lowercase);
      continue;
    }
    gboolean alone = mode == TEXT_TOKENIZE_CHAR || (mode == TEXT_TOKENIZE_MIXED && g_unichar_iswide (c));
    if (alone)
      flush (tokens, cur, lowercase);
    g_string_append_unichar (cur, c);
    if (alone)
      flush (tokens, cur, lowercase);
  }
  flush (tokens, cur, lowercase);
  return tokens;
}

GHashTable *
text_ngram_counts (GPtrArray *tokens, guint n)
{
  GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GString) key = g_string_new (NULL);
  for (guint i = 0; n > 0 && i + n <= tokens->len; i++) {
    g_string_truncate (key, 0);
    for (guint j = 0; j < n; j++) {
      if (j)
        g_string_append_c (key, ' ');
      g_string_append (key, g_ptr_array_index (tokens, i + j));
    }
    guint c = text_count (counts, key->str);
    g_hash_table_replace (counts, g_strdup (key->str), GUINT_TO_POINTER (c + 1));
  }
  return counts;
}

guint64
text_ngram_overlap (GHashTable *a, GHashTable *b)
{
  guint64 overlap = 0;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, a);
  while (g_hash_table_iter_next (&it, &key, &value))
    overlap += MIN (GPOINTER_TO_UINT (value), text_count (b, key));
  return overlap;
}
