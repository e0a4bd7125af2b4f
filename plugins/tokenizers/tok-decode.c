/* tok-decode.c: the decoders of tokenizer.json, run in their order over the
 * tokens' strings (ByteLevel, Replace, ByteFallback, Fuse, Strip, WordPiece,
 * Metaspace).
 *
 *   cria tokenize --tokenizer llama2 --decode ids.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

static void
set (GPtrArray *toks, guint i, char *s)
{
  g_free (toks->pdata[i]);
  toks->pdata[i] = s;
}

static void
fuse (GPtrArray *toks)
{
  GString *all = g_string_new (NULL);
  for (guint i = 0; i < toks->len; i++)
    g_string_append (all, toks->pdata[i]);
  g_ptr_array_set_size (toks, 0);
  g_ptr_array_add (toks, g_string_free (all, FALSE));
}

static void
byte_level (GPtrArray *toks)
{
  static gint16 inv[324];
  static gsize once;
  if (g_once_init_enter (&once)) {
    int n = 0;
    memset (inv, 0xff, sizeof inv);
    for (int b = 0; b < 256; b++) {
      gboolean keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      inv[keep ? b : 256 + n++] = (gint16) b;
    }
    g_once_init_leave (&once, 1);
  }
  GString *bytes = g_string_new (NULL);
  for (guint i = 0; i < toks->len; i++) {
    const char *t = toks->pdata[i];
    gsize mark = bytes->len;
    gboolean ok = TRUE;
    for (const char *p = t; *p && ok; p = g_utf8_next_char (p)) {
      gunichar c = g_utf8_get_char (p);
      ok = c < G_N_ELEMENTS (inv) && inv[c] >= 0;
      if (ok)
        g_string_append_c (bytes, (char) inv[c]);
    }
    if (!ok) {
      g_string_truncate (bytes, mark);
      g_string_append (bytes, t);
    }
  }
  g_ptr_array_set_size (toks, 0);
  g_ptr_array_add (toks, cria_utf8_make_valid (bytes->str, (gssize) bytes->len, NULL));
  g_string_free (bytes, TRUE);
}

static int
byte_token (const char *t)
{
  if (strlen (t) != 6 || strncmp (t, "<0x", 3) != 0 || t[5] != '>' || !g_ascii_isxdigit (t[3]) ||
      !g_ascii_isxdigit (t[4]))
    return -1;
  return g_ascii_xdigit_value (t[3]) * 16 + g_ascii_xdigit_value (t[4]);
}

/* Runs of <0xXX> become their text, or one U+FFFD per byte when invalid. */
static void
byte_fallback (GPtrArray *toks)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < toks->len;) {
    if (byte_token (toks->pdata[i]) < 0) {
      g_ptr_array_add (out, g_strdup (toks->pdata[i++]));
      continue;
    }
    GString *run = g_string_new (NULL);
    guint j = i;
    for (; j < toks->len && byte_token (toks->pdata[j]) >= 0; j++)
      g_string_append_c (run, (char) byte_token (toks->pdata[j]));
    if (g_utf8_validate_len (run->str, run->len, NULL))
      g_ptr_array_add (out, g_strdup (run->str));
    else
      for (guint k = i; k < j; k++)
        g_ptr_array_add (out, g_strdup ("\xEF\xBF\xBD"));
    g_string_free (run, TRUE);
    i = j;
  }
  g_ptr_array_set_size (toks, 0);
  for (guint i = 0; i < out->len; i++)
    g_ptr_array_add (toks, g_strdup (out->pdata[i]));
}

static char *
replace_all (const char *s, const char *pattern, const char *content)
{
  if (!*pattern)
    return g_strdup (s);
  g_auto (GStrv) parts = g_strsplit (s, pattern, -1);
  return g_strjoinv (content, parts);
}

static char *
strip (const char *t, const char *content, int start, int stop)
{
  gsize cl = strlen (content);
  const char *a = t, *b = t + strlen (t);
  for (int k = 0; k < start && cl && (gsize) (b - a) >= cl && memcmp (a, content, cl) == 0; k++)
    a += cl;
  for (int k = 0; k < stop && cl && (gsize) (b - a) >= cl && memcmp (b - cl, content, cl) == 0; k++)
    b -= cl;
  return g_strndup (a, (gsize) (b - a));
}

static char *
wordpiece_cleanup (const char *t)
{
  static const char *const pairs[][2] = {
    { " .", "." },   { " ?", "?" },           { " !", "!" },   { " ,", "," },     { " ' ", "'" },    { " n't", "n't" },
    { " 'm", "'m" }, { " do not", " don't" }, { " 's", "'s" }, { " 've", "'ve" }, { " 're", "'re" },
  };
  char *s = g_strdup (t);
  for (guint k = 0; k < G_N_ELEMENTS (pairs); k++) {
    char *r = replace_all (s, pairs[k][0], pairs[k][1]);
    g_free (s);
    s = r;
  }
  return s;
}

static void
run_decoder (const TokDec *d, GPtrArray *toks)
{
  switch (d->kind) {
    case DEC_BYTELEVEL:
      byte_level (toks);
      return;
    case DEC_BYTEFALLBACK:
      byte_fallback (toks);
      return;
    case DEC_FUSE:
      fuse (toks);
      return;
    default:
      break;
  }
  for (guint i = 0; i < toks->len; i++) {
    const char *t = toks->pdata[i];
    if (d->kind == DEC_REPLACE)
      set (toks, i, replace_all (t, d->pattern, d->content));
    else if (d->kind == DEC_STRIP)
      set (toks, i, strip (t, d->content, d->start, d->stop));
    else if (d->kind == DEC_WORDPIECE) {
      char *w;
      if (i == 0)
        w = g_strdup (t);
      else if (g_str_has_prefix (t, d->content))
        w = g_strdup (t + strlen (d->content));
      else
        w = g_strconcat (" ", t, NULL);
      if (d->cleanup) {
        char *c = wordpiece_cleanup (w);
        g_free (w);
        w = c;
      }
      set (toks, i, w);
    } else if (d->kind == DEC_METASPACE) {
      char *w = replace_all (t, d->content, " ");
      if (i == 0 && d->cleanup && w[0] == ' ')
        memmove (w, w + 1, strlen (w));
      set (toks, i, w);
    }
  }
}

char *
tok_decode (Tok *tok, const gint32 *ids, gsize n, gboolean skip_special, GError **error)
{
  g_autoptr (GPtrArray) toks = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; i < n; i++) {
    if (ids[i] < 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "id %d at position %" G_GSIZE_FORMAT " is negative",
                   ids[i], i);
      return NULL;
    }
    /* An id without a token (a model's vocabulary padded past its
     * tokenizer's, as Qwen2's or a resized one) decodes to nothing, as
     * Hugging Face's tokenizers decode it; generation can sample one. */
    if ((guint) ids[i] >= tok->n_ids || !tok->tokens[ids[i]])
      continue;
    if (skip_special && tok->special[ids[i]])
      continue;
    g_ptr_array_add (toks, g_strdup (tok->tokens[ids[i]]));
  }
  if (tok->decs->len == 0) {
    g_ptr_array_add (toks, NULL);
    return g_strjoinv (" ", (char **) toks->pdata);
  }
  for (guint k = 0; k < tok->decs->len; k++)
    run_decoder (&g_array_index (tok->decs, TokDec, k), toks);
  GString *all = g_string_new (NULL);
  for (guint i = 0; i < toks->len; i++)
    g_string_append (all, toks->pdata[i]);
  return g_string_free (all, FALSE);
}
