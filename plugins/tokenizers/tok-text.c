/* tok-text.c: aligned text and the normalizers of tokenizer.json.
 *
 *   cria tokenize --tokenizer llama2/tokenizer.json input.txt   (Prepend, Replace)
 *
 * Each normalizer rebuilds the text character by character so that every
 * output byte keeps the original span of the character it came from. */
#include "config.h"

#include <string.h>

#include "tok.h"

void
tokstr_init (TokStr *t, gsize cap)
{
  t->cap = MAX (cap, 16);
  t->len = 0;
  t->s = g_malloc (t->cap + 1);
  t->os = g_new (guint32, t->cap);
  t->oe = g_new (guint32, t->cap);
}

void
tokstr_clear (TokStr *t)
{
  g_free (t->s);
  g_free (t->os);
  g_free (t->oe);
  memset (t, 0, sizeof *t);
}

static void
reserve (TokStr *t, gsize n)
{
  if (t->len + n <= t->cap)
    return;
  t->cap = MAX (t->cap * 2, t->len + n);
  t->s = g_realloc (t->s, t->cap + 1);
  t->os = g_renew (guint32, t->os, t->cap);
  t->oe = g_renew (guint32, t->oe, t->cap);
}

void
tokstr_append (TokStr *t, const char *s, gsize n, guint32 os, guint32 oe)
{
  reserve (t, n);
  memcpy (t->s + t->len, s, n);
  for (gsize i = 0; i < n; i++) {
    t->os[t->len + i] = os;
    t->oe[t->len + i] = oe;
  }
  t->len += n;
  t->s[t->len] = '\0';
}

void
tokstr_append_slice (TokStr *t, const TokStr *src, gsize a, gsize b)
{
  reserve (t, b - a);
  memcpy (t->s + t->len, src->s + a, b - a);
  memcpy (t->os + t->len, src->os + a, (b - a) * sizeof (guint32));
  memcpy (t->oe + t->len, src->oe + a, (b - a) * sizeof (guint32));
  t->len += b - a;
  t->s[t->len] = '\0';
}

static void
swap_in (TokStr *t, TokStr *fresh)
{
  tokstr_clear (t);
  *t = *fresh;
}

/* Unicode normalization per run of a starter and its combining marks, so each
 * run keeps its own span; when composition crosses runs (Hangul jamo), the
 * whole text gets the whole span. */
static void
unicode_normalize (TokStr *t, GNormalizeMode mode)
{
  gboolean ascii = TRUE;
  for (gsize i = 0; i < t->len && ascii; i++)
    ascii = !((guchar) t->s[i] & 0x80);
  if (ascii || t->len == 0)
    return;
  g_autofree char *whole = g_utf8_normalize (t->s, (gssize) t->len, mode);
  if (!whole || (strlen (whole) == t->len && memcmp (whole, t->s, t->len) == 0))
    return;
  TokStr out;
  tokstr_init (&out, strlen (whole));
  gsize i = 0;
  while (i < t->len) {
    gsize j = g_utf8_next_char (t->s + i) - t->s;
    while (j < t->len && g_unichar_combining_class (g_utf8_get_char (t->s + j)) != 0)
      j = g_utf8_next_char (t->s + j) - t->s;
    g_autofree char *part = g_utf8_normalize (t->s + i, (gssize) (j - i), mode);
    tokstr_append (&out, part, strlen (part), t->os[i], t->oe[j - 1]);
    i = j;
  }
  if (out.len != strlen (whole) || memcmp (out.s, whole, out.len) != 0) {
    guint32 os = t->os[0], oe = t->oe[t->len - 1];
    out.len = 0;
    tokstr_append (&out, whole, strlen (whole), os, oe);
  }
  swap_in (t, &out);
}

/* The characters BERT treats as punctuation: ASCII symbols and Unicode P*. */
gboolean
tok_is_bert_punct (gunichar c)
{
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
    return TRUE;
  switch (g_unichar_type (c)) {
    case G_UNICODE_CONNECT_PUNCTUATION:
    case G_UNICODE_DASH_PUNCTUATION:
    case G_UNICODE_CLOSE_PUNCTUATION:
    case G_UNICODE_FINAL_PUNCTUATION:
    case G_UNICODE_INITIAL_PUNCTUATION:
    case G_UNICODE_OTHER_PUNCTUATION:
    case G_UNICODE_OPEN_PUNCTUATION:
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
is_cjk (gunichar c)
{
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static gboolean
is_other (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_CONTROL:
    case G_UNICODE_FORMAT:
    case G_UNICODE_UNASSIGNED:
    case G_UNICODE_PRIVATE_USE:
    case G_UNICODE_SURROGATE:
      return TRUE;
    default:
      return FALSE;
  }
}

static void
append_lower (TokStr *out, const char *p, gsize n, guint32 os, guint32 oe)
{
  if (n == 1) {
    char c = g_ascii_tolower (*p);
    tokstr_append (out, &c, 1, os, oe);
    return;
  }
  g_autofree char *low = g_utf8_strdown (p, (gssize) n);
  tokstr_append (out, low, strlen (low), os, oe);
}

/* Drops nonspacing marks after NFD: what BERT's and HF's StripAccents do. */
static void
strip_accents (TokStr *t)
{
  unicode_normalize (t, G_NORMALIZE_NFD);
  TokStr out;
  tokstr_init (&out, t->len);
  for (gsize i = 0; i < t->len;) {
    gsize j = g_utf8_next_char (t->s + i) - t->s;
    if (g_unichar_type (g_utf8_get_char (t->s + i)) != G_UNICODE_NON_SPACING_MARK)
      tokstr_append_slice (&out, t, i, j);
    i = j;
  }
  swap_in (t, &out);
}

/* Lowercasing is per character, but capital sigma needs its context (the
 * Final_Sigma rule that Rust's and JavaScript's lowercasing apply). */
static void
lowercase (TokStr *t)
{
  TokStr out;
  tokstr_init (&out, t->len);
  gboolean prev_alpha = FALSE;
  for (gsize i = 0; i < t->len;) {
    gsize j = g_utf8_next_char (t->s + i) - t->s;
    gunichar c = g_utf8_get_char (t->s + i);
    if (c == 0x03A3) {
      gboolean final = prev_alpha && !(j < t->len && g_unichar_isalpha (g_utf8_get_char (t->s + j)));
      tokstr_append (&out, final ? "\xCF\x82" : "\xCF\x83", 2, t->os[i], t->oe[j - 1]);
    } else
      append_lower (&out, t->s + i, j - i, t->os[i], t->oe[j - 1]);
    prev_alpha = g_unichar_isalpha (c);
    i = j;
  }
  swap_in (t, &out);
}

static void
bert_normalize (const TokNorm *n, TokStr *t)
{
  TokStr out;
  tokstr_init (&out, t->len + t->len / 2);
  for (gsize i = 0; i < t->len;) {
    gsize j = g_utf8_next_char (t->s + i) - t->s;
    gunichar c = g_utf8_get_char (t->s + i);
    guint32 os = t->os[i], oe = t->oe[j - 1];
    if (n->a && (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other (c)))) {
      i = j;
      continue;
    }
    if (n->a && (c == '\t' || c == '\n' || c == '\r' || g_unichar_isspace (c) ||
                 g_unichar_type (c) == G_UNICODE_SPACE_SEPARATOR))
      tokstr_append (&out, " ", 1, os, oe);
    else if (n->b && is_cjk (c)) {
      tokstr_append (&out, " ", 1, os, oe);
      tokstr_append_slice (&out, t, i, j);
      tokstr_append (&out, " ", 1, os, oe);
    } else
      tokstr_append_slice (&out, t, i, j);
    i = j;
  }
  swap_in (t, &out);
  if (n->c)
    strip_accents (t);
  if (n->d)
    lowercase (t);
}

static void
replace (const TokNorm *n, TokStr *t)
{
  g_autoptr (GMatchInfo) mi = NULL;
  if (!g_regex_match_full (n->regex, t->s, (gssize) t->len, 0, 0, &mi, NULL))
    return;
  TokStr out;
  tokstr_init (&out, t->len + 16);
  gsize last = 0, clen = strlen (n->str);
  while (g_match_info_matches (mi)) {
    int a, b;
    g_match_info_fetch_pos (mi, 0, &a, &b);
    if (b > a) {
      tokstr_append_slice (&out, t, last, (gsize) a);
      /* The replacement spans what it replaced. */
      tokstr_append (&out, n->str, clen, t->os[a], t->oe[b - 1]);
      last = (gsize) b;
    }
    g_match_info_next (mi, NULL);
  }
  tokstr_append_slice (&out, t, last, t->len);
  swap_in (t, &out);
}

static void
strip (const TokNorm *n, TokStr *t)
{
  gsize a = 0, b = t->len;
  while (n->a && a < b && g_unichar_isspace (g_utf8_get_char (t->s + a)))
    a = g_utf8_next_char (t->s + a) - t->s;
  while (n->b && b > a) {
    const char *prev = g_utf8_find_prev_char (t->s + a, t->s + b);
    if (!prev || !g_unichar_isspace (g_utf8_get_char (prev)))
      break;
    b = prev - t->s;
  }
  TokStr out;
  tokstr_init (&out, b - a);
  tokstr_append_slice (&out, t, a, b);
  swap_in (t, &out);
}

void
tok_normalize (const Tok *tok, TokStr *t)
{
  for (guint k = 0; k < tok->norms->len; k++) {
    const TokNorm *n = &g_array_index (tok->norms, TokNorm, k);
    switch (n->kind) {
      case NORM_NFC:
        unicode_normalize (t, G_NORMALIZE_NFC);
        break;
      case NORM_NFD:
        unicode_normalize (t, G_NORMALIZE_NFD);
        break;
      case NORM_NFKC:
        unicode_normalize (t, G_NORMALIZE_NFKC);
        break;
      case NORM_NFKD:
        unicode_normalize (t, G_NORMALIZE_NFKD);
        break;
      case NORM_LOWERCASE:
        lowercase (t);
        break;
      case NORM_STRIP_ACCENTS:
        strip_accents (t);
        break;
      case NORM_BERT:
        bert_normalize (n, t);
        break;
      case NORM_REPLACE:
        replace (n, t);
        break;
      case NORM_STRIP:
        strip (n, t);
        break;
      case NORM_PREPEND:
        if (t->len > 0) {
          TokStr out;
          tokstr_init (&out, t->len + strlen (n->str));
          tokstr_append (&out, n->str, strlen (n->str), t->os[0], t->os[0]);
          tokstr_append_slice (&out, t, 0, t->len);
          swap_in (t, &out);
        }
        break;
    }
  }
}

void
tok_norm_clear (TokNorm *n)
{
  g_free (n->str);
  if (n->regex)
    g_regex_unref (n->regex);
}
