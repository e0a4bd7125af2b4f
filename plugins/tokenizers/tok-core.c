/* tok-core.c: the vocabulary, added tokens, and the encode and decode runs.
 *
 *   cria tokenize --tokenizer llama3 --ids input.txt
 *
 * Added tokens are cut out of the raw text first (leftmost, longest), the
 * text between them goes through normalizers, pre-tokenizers and the model;
 * decoding runs the decoders over the tokens' strings. */
#include "config.h"

#include <string.h>

#include "tok.h"

Tok *
tok_new (void)
{
  static guint64 serials;
  Tok *tok = g_new0 (Tok, 1);
  tok->serial = (guint64) g_atomic_pointer_add (&serials, 1) + 1;
  tok->ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  tok->norms = g_array_new (FALSE, TRUE, sizeof (TokNorm));
  tok->pres = g_array_new (FALSE, TRUE, sizeof (TokPre));
  tok->decs = g_array_new (FALSE, TRUE, sizeof (TokDec));
  tok->added = g_array_new (FALSE, TRUE, sizeof (TokAdded));
  tok->prefix_ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  tok->suffix_ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  tok->unk_id = -1;
  tok->wp_max_chars = 100;
  for (int i = 0; i < 256; i++)
    tok->byte_ids[i] = -1;
  return tok;
}

void
tok_free (Tok *tok)
{
  if (!tok)
    return;
  for (guint i = 0; i < tok->n_ids; i++) {
    g_free (tok->tokens[i]);
    if (tok->raw)
      g_free (tok->raw[i]);
  }
  g_free (tok->tokens);
  g_free (tok->raw);
  g_free (tok->raw_len);
  g_free (tok->special);
  g_hash_table_unref (tok->ids);
  if (tok->raw_ids)
    g_hash_table_unref (tok->raw_ids);
  tok_merges_clear (&tok->merges);
  for (guint i = 0; i < tok->norms->len; i++)
    tok_norm_clear (&g_array_index (tok->norms, TokNorm, i));
  for (guint i = 0; i < tok->pres->len; i++)
    tok_pre_clear (&g_array_index (tok->pres, TokPre, i));
  for (guint i = 0; i < tok->decs->len; i++) {
    g_free (g_array_index (tok->decs, TokDec, i).pattern);
    g_free (g_array_index (tok->decs, TokDec, i).content);
  }
  for (guint i = 0; i < tok->added->len; i++)
    g_free (g_array_index (tok->added, TokAdded, i).content);
  g_array_unref (tok->norms);
  g_array_unref (tok->pres);
  g_array_unref (tok->decs);
  g_array_unref (tok->added);
  g_array_unref (tok->prefix_ids);
  g_array_unref (tok->suffix_ids);
  g_free (tok->wp_prefix);
  for (int i = 0; i < CRIA_N_SPECIAL; i++)
    g_free (tok->default_special[i]);
  g_free (tok);
}

void
tok_set_token (Tok *tok, gint32 id, const char *token)
{
  if ((guint) id >= tok->n_ids) {
    /* Geometric growth: vocabularies come one id at a time, and a realloc
     * per id copied both arrays each time (always, under ASan). */
    if ((guint) id >= tok->cap_ids) {
      guint cap = MAX ((guint) id + 1, tok->cap_ids * 2);
      tok->tokens = g_renew (char *, tok->tokens, cap);
      tok->special = g_renew (guint8, tok->special, cap);
      tok->cap_ids = cap;
    }
    for (guint i = tok->n_ids; i <= (guint) id; i++) {
      tok->tokens[i] = NULL;
      tok->special[i] = 0;
    }
    tok->n_ids = (guint) id + 1;
  }
  g_free (tok->tokens[id]);
  tok->tokens[id] = g_strdup (token);
  g_hash_table_replace (tok->ids, g_strdup (token), GINT_TO_POINTER (id + 1));
}

gint32
tok_lookup (const Tok *tok, const char *token, gssize len)
{
  if (len >= 0 && token[len] != '\0') {
    char buf[256];
    g_autofree char *heap = NULL;
    char *key = (gsize) len < sizeof buf ? buf : (heap = g_malloc ((gsize) len + 1));
    memcpy (key, token, (gsize) len);
    key[len] = '\0';
    return GPOINTER_TO_INT (g_hash_table_lookup (tok->ids, key)) - 1;
  }
  return GPOINTER_TO_INT (g_hash_table_lookup (tok->ids, token)) - 1;
}

void
tok_add_added (Tok *tok, const TokAdded *a)
{
  TokAdded copy = *a;
  copy.content = g_strdup (a->content);
  copy.len = strlen (a->content);
  g_array_append_val (tok->added, copy);
  tok_set_token (tok, a->id, a->content);
  tok->special[a->id] = a->special;
}

/* GPT-2's map of bytes to printable characters: printable Latin-1 stays,
 * the rest goes to U+0100 and up, in byte order. */
static void
byte_map (gunichar map[256])
{
  int n = 0;
  for (int b = 0; b < 256; b++) {
    gboolean keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    map[b] = keep ? (gunichar) b : (gunichar) (256 + n++);
  }
}

static int
cmp_added (gconstpointer a, gconstpointer b)
{
  const TokAdded *x = a, *y = b;
  return x->len == y->len ? 0 : x->len > y->len ? -1 : 1;
}

gboolean
tok_finish (Tok *tok, GError **error)
{
  g_array_sort (tok->added, cmp_added);
  for (guint i = 0; i < tok->added->len; i++) {
    const TokAdded *a = &g_array_index (tok->added, TokAdded, i);
    if (a->len)
      tok->added_first[(guchar) a->content[0]] = 1;
  }
  if (tok->model == MODEL_WORDPIECE)
    return TRUE;
  if (!tok->byte_level) {
    for (int b = 0; b < 256; b++) {
      char name[8];
      g_snprintf (name, sizeof name, "<0x%02X>", b);
      tok->byte_ids[b] = tok_lookup (tok, name, -1);
    }
    return TRUE;
  }
  /* Byte level: every token also as the bytes it stands for. */
  gunichar map[256];
  gint16 inv[324];
  byte_map (map);
  memset (inv, 0xff, sizeof inv);
  for (int b = 0; b < 256; b++)
    inv[map[b]] = (gint16) b;
  tok->raw = g_new0 (char *, tok->n_ids);
  tok->raw_len = g_new0 (guint32, tok->n_ids);
  tok->raw_ids = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, NULL);
  for (guint id = 0; id < tok->n_ids; id++) {
    const char *t = tok->tokens[id];
    if (!t)
      continue;
    GString *raw = g_string_new (NULL);
    gboolean ok = TRUE;
    for (const char *p = t; *p && ok; p = g_utf8_next_char (p)) {
      gunichar c = g_utf8_get_char (p);
      ok = c < G_N_ELEMENTS (inv) && inv[c] >= 0;
      if (ok)
        g_string_append_c (raw, (char) inv[c]);
    }
    if (!ok) /* as the Hugging Face decoder does: such a token is its own text */
      g_string_assign (raw, t);
    tok->raw_len[id] = (guint32) raw->len;
    tok->raw[id] = g_string_free (raw, FALSE);
    if (ok && !tok->special[id])
      g_hash_table_insert (tok->raw_ids, g_bytes_new (tok->raw[id], tok->raw_len[id]), GINT_TO_POINTER (id + 1));
  }
  for (int b = 0; b < 256; b++) {
    char ch[8];
    ch[g_unichar_to_utf8 (map[b], ch)] = '\0';
    tok->byte_ids[b] = tok_lookup (tok, ch, -1);
    if (tok->byte_ids[b] < 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "the byte-level vocabulary has no token for byte 0x%02X ('%s')",
                   b, ch);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
is_word_char (gunichar c)
{
  return g_unichar_isalnum (c) || c == '_';
}

/* The added token matching at i (longest first), or NULL. *a and *b get the
 * span it takes, widened by lstrip/rstrip over whitespace down to `floor`. */
static const TokAdded *
match_added (const Tok *tok, const char *s, gsize n, gsize i, gsize floor, gsize *a, gsize *b)
{
  for (guint k = 0; k < tok->added->len; k++) {
    const TokAdded *t = &g_array_index (tok->added, TokAdded, k);
    if (t->len == 0 || t->len > n - i || s[i] != t->content[0] || memcmp (s + i, t->content, t->len) != 0)
      continue;
    gsize end = i + t->len;
    if (t->single_word) {
      const char *prev = i > 0 ? g_utf8_find_prev_char (s, s + i) : NULL;
      if ((prev && is_word_char (g_utf8_get_char (prev))) || (end < n && is_word_char (g_utf8_get_char (s + end))))
        continue;
    }
    *a = i;
    *b = end;
    while (t->lstrip && *a > floor && g_ascii_isspace (s[*a - 1]))
      (*a)--;
    while (t->rstrip && *b < n && g_ascii_isspace (s[*b]))
      (*b)++;
    return t;
  }
  return NULL;
}

static void
encode_segment (Tok *tok, const char *s, gsize n, guint32 base, gboolean first, CriaEncoding *out, GArray *pieces,
                GArray *spans)
{
  if (n == 0)
    return;
  TokStr t;
  tokstr_init (&t, n);
  for (gsize i = 0; i < n;) {
    gsize j = (guchar) s[i] < 0x80 ? i + 1 : (gsize) (g_utf8_next_char (s + i) - s);
    tokstr_append (&t, s + i, j - i, base + (guint32) i, base + (guint32) j);
    i = j;
  }
  tok_normalize (tok, &t);
  tok_pretokenize (tok, &t, pieces, first);
  for (guint k = 0; k < pieces->len; k++) {
    TokPiece pc = g_array_index (pieces, TokPiece, k);
    if (spans)
      g_array_set_size (spans, 0);
    tok_model_word (tok, t.s + pc.start, pc.end - pc.start, out->ids, spans);
    for (guint i = 0; spans && i < spans->len; i++) {
      CriaTokenSpan sp = g_array_index (spans, CriaTokenSpan, i);
      CriaTokenSpan o = { t.os[pc.start + sp.start], t.oe[pc.start + sp.end - 1] };
      g_array_append_val (out->offsets, o);
    }
  }
  tokstr_clear (&t);
}

static void
append_ids (CriaEncoding *out, GArray *ids, guint32 at)
{
  g_array_append_vals (out->ids, ids->data, ids->len);
  for (guint i = 0; out->offsets && i < ids->len; i++) {
    CriaTokenSpan o = { at, at };
    g_array_append_val (out->offsets, o);
  }
}

/* Normalized added tokens are matched in the raw text too: for the families
 * cria knows, no normalizer changes the text of an added token. */
gboolean
tok_encode (Tok *tok, const char *s, gsize n, CriaEncodeFlags flags, CriaEncoding *out, GError **error)
{
  (void) error;
  if (n > G_MAXUINT32 / 2) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "text of %" G_GSIZE_FORMAT " bytes is too long", n);
    return FALSE;
  }
  if (flags & CRIA_ENCODE_ADD_SPECIAL)
    append_ids (out, tok->prefix_ids, 0);
  g_autoptr (GArray) pieces = g_array_new (FALSE, FALSE, sizeof (TokPiece));
  g_autoptr (GArray) spans = out->offsets ? g_array_new (FALSE, FALSE, sizeof (CriaTokenSpan)) : NULL;
  gsize last = 0;
  for (gsize i = 0; i < n; i++) {
    if (!tok->added_first[(guchar) s[i]])
      continue;
    gsize a, b;
    const TokAdded *t = match_added (tok, s, n, i, last, &a, &b);
    if (!t)
      continue;
    encode_segment (tok, s + last, a - last, (guint32) last, last == 0, out, pieces, spans);
    g_array_append_val (out->ids, t->id);
    if (out->offsets) {
      CriaTokenSpan o = { (guint32) i, (guint32) (i + t->len) };
      g_array_append_val (out->offsets, o);
    }
    last = b;
    i = b - 1;
  }
  encode_segment (tok, s + last, n - last, (guint32) last, last == 0, out, pieces, spans);
  if (flags & CRIA_ENCODE_ADD_SPECIAL)
    append_ids (out, tok->suffix_ids, (guint32) n);
  return TRUE;
}
