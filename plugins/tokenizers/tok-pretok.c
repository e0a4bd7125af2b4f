/* tok-pretok.c: the pre-tokenizers of tokenizer.json (Split, ByteLevel,
 * Metaspace, BertPreTokenizer, Whitespace, WhitespaceSplit, Digits).
 *
 *   cria tokenize --tokenizer qwen2.5 input.txt   (Split with Qwen's regex, ByteLevel)
 *
 * A piece is a span of the normalized text; splitting turns each piece into
 * several. The byte mapping of ByteLevel is not done here: the model reads the
 * raw bytes and the vocabulary was mapped back to bytes once, at load. */
#include "config.h"

#include <string.h>

#include "tok.h"

static void
push (GArray *out, guint32 a, guint32 b)
{
  if (b > a) {
    TokPiece p = { a, b };
    g_array_append_val (out, p);
  }
}

/* Pieces of [ps, pe) from the sorted, disjoint matches m (pairs). */
static void
emit_split (GArray *out, guint32 ps, guint32 pe, const guint32 *m, guint n, TokSplitBehavior how)
{
  guint32 last = ps;
  for (guint i = 0; i < n; i++) {
    guint32 a = m[2 * i], b = m[2 * i + 1];
    switch (how) {
      case SPLIT_ISOLATED:
        push (out, last, a);
        push (out, a, b);
        last = b;
        break;
      case SPLIT_REMOVED:
        push (out, last, a);
        last = b;
        break;
      case SPLIT_PREVIOUS:
        push (out, last, b);
        last = b;
        break;
      case SPLIT_NEXT:
        push (out, last, a);
        last = a;
        break;
    }
  }
  push (out, last, pe);
}

static void
regex_split (GRegex *re, const TokStr *t, guint32 ps, guint32 pe, TokSplitBehavior how, GArray *out, GArray *m)
{
  g_array_set_size (m, 0);
  g_autoptr (GMatchInfo) mi = NULL;
  g_regex_match_full (re, t->s, pe, ps, 0, &mi, NULL);
  while (g_match_info_matches (mi)) {
    int a, b;
    g_match_info_fetch_pos (mi, 0, &a, &b);
    if (b > a) {
      guint32 ab[2] = { (guint32) a, (guint32) b };
      g_array_append_vals (m, ab, 2);
    }
    g_match_info_next (mi, NULL);
  }
  emit_split (out, ps, pe, (guint32 *) m->data, m->len / 2, how);
}

/* Splits on characters: kind 0 whitespace (removed), 1 whitespace removed and
 * BERT punctuation isolated, 2 digits. */
static void
char_split (const TokStr *t, guint32 ps, guint32 pe, int mode, gboolean individual, GArray *out)
{
  guint32 start = ps;
  int prev_digit = -1;
  for (guint32 i = ps; i < pe;) {
    guint32 j = g_utf8_next_char (t->s + i) - t->s;
    gunichar c = g_utf8_get_char (t->s + i);
    if (mode == 2) {
      int d = g_unichar_isdigit (c);
      if (prev_digit >= 0 && (d != prev_digit || (d && individual))) {
        push (out, start, i);
        start = i;
      }
      prev_digit = d;
    } else if (g_unichar_isspace (c)) {
      push (out, start, i);
      start = j;
    } else if (mode == 1 && tok_is_bert_punct (c)) {
      push (out, start, i);
      push (out, i, j);
      start = j;
    }
    i = j;
  }
  push (out, start, pe);
}

static const char *
prefix_for (const TokPre *p, const TokStr *t, const TokPiece *pc, gboolean first)
{
  if (p->kind == PRE_BYTELEVEL)
    return p->add_prefix_space && t->s[pc->start] != ' ' ? " " : NULL;
  /* Metaspace */
  if (!p->add_prefix_space || (p->first_only && !first))
    return NULL;
  gsize rl = strlen (p->replacement);
  if (pc->end - pc->start >= rl && memcmp (t->s + pc->start, p->replacement, rl) == 0)
    return NULL;
  return p->replacement;
}

/* ByteLevel's and Metaspace's rewriting of each piece: a prefix, and for
 * Metaspace every space replaced. */
static void
rewrite (const TokPre *p, TokStr *t, GArray *pieces, gboolean first_segment)
{
  TokStr out;
  tokstr_init (&out, t->len + pieces->len * 3 + 3);
  for (guint k = 0; k < pieces->len; k++) {
    TokPiece *pc = &g_array_index (pieces, TokPiece, k);
    const char *pre = prefix_for (p, t, pc, first_segment && k == 0 && t->os[pc->start] == 0);
    guint32 start = (guint32) out.len;
    if (pre)
      tokstr_append (&out, pre, strlen (pre), t->os[pc->start], t->os[pc->start]);
    for (guint32 i = pc->start; i < pc->end; i++) {
      if (p->kind == PRE_METASPACE && t->s[i] == ' ')
        tokstr_append (&out, p->replacement, strlen (p->replacement), t->os[i], t->oe[i]);
      else
        tokstr_append_slice (&out, t, i, i + 1);
    }
    pc->start = start;
    pc->end = (guint32) out.len;
  }
  tokstr_clear (t);
  *t = out;
}

void
tok_pretokenize (const Tok *tok, TokStr *t, GArray *pieces, gboolean first_segment)
{
  g_array_set_size (pieces, 0);
  push (pieces, 0, (guint32) t->len);
  g_autoptr (GArray) next = g_array_new (FALSE, FALSE, sizeof (TokPiece));
  g_autoptr (GArray) m = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint k = 0; k < tok->pres->len; k++) {
    const TokPre *p = &g_array_index (tok->pres, TokPre, k);
    if (p->kind == PRE_BYTELEVEL || p->kind == PRE_METASPACE)
      rewrite (p, t, pieces, first_segment);
    gboolean splits = p->regex || p->kind == PRE_BERT || p->kind == PRE_WHITESPACE_SPLIT || p->kind == PRE_DIGITS ||
                      (p->kind == PRE_METASPACE && p->split);
    if (!splits)
      continue;
    g_array_set_size (next, 0);
    for (guint i = 0; i < pieces->len; i++) {
      TokPiece pc = g_array_index (pieces, TokPiece, i);
      if (p->regex)
        regex_split (p->regex, t, pc.start, pc.end, p->behavior, next, m);
      else if (p->kind == PRE_BERT)
        char_split (t, pc.start, pc.end, 1, FALSE, next);
      else if (p->kind == PRE_WHITESPACE_SPLIT)
        char_split (t, pc.start, pc.end, 0, FALSE, next);
      else if (p->kind == PRE_DIGITS)
        char_split (t, pc.start, pc.end, 2, p->split, next);
      else {
        /* Metaspace split: each replacement character starts a piece. */
        gsize rl = strlen (p->replacement);
        g_array_set_size (m, 0);
        for (guint32 j = pc.start; j + rl <= pc.end; j++)
          if (memcmp (t->s + j, p->replacement, rl) == 0) {
            guint32 ab[2] = { j, (guint32) (j + rl) };
            g_array_append_vals (m, ab, 2);
          }
        emit_split (next, pc.start, pc.end, (guint32 *) m->data, m->len / 2, SPLIT_NEXT);
      }
    }
    g_array_set_size (pieces, 0);
    g_array_append_vals (pieces, next->data, next->len);
  }
}

void
tok_pre_clear (TokPre *p)
{
  if (p->regex)
    g_regex_unref (p->regex);
  g_free (p->replacement);
}
