/* text.h: what the text metrics share: tokenization and n-gram counts. */
#pragma once

#include <cria/cria.h>

typedef enum {
  TEXT_TOKENIZE_WORD,  /* split at whitespace, as Python's str.split() */
  TEXT_TOKENIZE_CHAR,  /* every character but whitespace is a token */
  TEXT_TOKENIZE_MIXED, /* wide (CJK) characters alone, other runs split at whitespace */
} TextTokenize;

/* The property entry every text metric declares, with its default. */
#define TEXT_TOKENIZE_PROP(default_)                                                                                   \
  {                                                                                                                    \
    "tokenize", CRIA_PROP_ENUM, default_, 0, 0, "word|char|mixed",                                                     \
        "word: split at whitespace (Python str.split); char: each non-space character (Chinese); "                     \
        "mixed: each CJK character alone, other text split at whitespace"                                              \
  }

TextTokenize text_tokenize_from_props (const CriaProps *props);
/* Python's str.isspace() for one character. */
gboolean text_is_space (gunichar c);
/* Tokens of valid UTF-8 text; element type char*, transfer full. */
GPtrArray *text_tokenize (const char *text, TextTokenize mode, gboolean lowercase);
/* Counts of the n-grams of `tokens`, keyed by the tokens joined with spaces
 * (no token holds whitespace); values are counts as GUINT_TO_POINTER. */
GHashTable *text_ngram_counts (GPtrArray *tokens, guint n);
/* Sum over n-grams of min(count in a, count in b). */
guint64 text_ngram_overlap (GHashTable *a, GHashTable *b);
static inline guint
text_count (GHashTable *counts, gconstpointer key)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (counts, key));
}
