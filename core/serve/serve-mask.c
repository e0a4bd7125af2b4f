/* serve-mask.c: the token mask of response_format: the text of every token,
 * and how many characters at least close the document, so that the mask
 * can end it within max_tokens. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "serve-grammar-private.h"

/* ---- the way out: how many characters at least close the document ---- */

#define COST_CAP (G_GINT64_CONSTANT (1) << 40)

static gint64 min_value (const ServeSchema *s, guint depth);

static gint64
member_cost (const ServeSchema *s, guint i, guint depth)
{
  /* "name":value */
  return (gint64) strlen (s->names[i]) + 3 + min_value (s->props[i], depth + 1);
}

/* The required members not yet given, each with a comma before it when
 * `comma_first` (else the first goes without). */
static gint64
required_cost (const ServeSchema *s, guint64 seen, gboolean comma_first, guint depth)
{
  gint64 c = 0;
  gboolean first = TRUE;
  for (guint i = 0; i < s->n_props; i++)
    if ((s->required >> i & 1) && !(seen >> i & 1)) {
      c += member_cost (s, i, depth) + (first && !comma_first ? 0 : 1);
      first = FALSE;
    }
  return c;
}

static gint64
min_value (const ServeSchema *s, guint depth)
{
  if (!s)
    return 1; /* any value: 0 */
  if (depth > MAX_DEPTH)
    return COST_CAP;
  gint64 best = COST_CAP;
  if (s->any_of) {
    for (guint i = 0; i < s->any_of->len; i++)
      best = MIN (best, min_value (g_ptr_array_index (s->any_of, i), depth + 1));
  } else if (s->literals) {
    for (char **l = s->literals; *l; l++)
      best = MIN (best, (gint64) strlen (*l));
  } else {
    guint t = s->types;
    if (t & (T_NUMBER | T_INTEGER))
      best = 1;
    else if (t & T_STRING)
      best = 2 + s->min_len;
    else if (t & (T_NULL | T_BOOLEAN))
      best = 4;
    if (t & T_ARRAY)
      best = MIN (best, 2 + s->min_items * (min_value (s->items, depth + 1) + 1) - (s->min_items > 0));
    if (t & T_OBJECT)
      best = MIN (best, 2 + required_cost (s, 0, FALSE, depth));
  }
  return MIN (best, COST_CAP);
}

/* After the value of the member being read (or none): the required
 * members left, then '}'. */
static gint64
object_rest (const Frame *f)
{
  return required_cost (f->s, f->seen, TRUE, 0) + 1;
}

static gint64
array_rest (const Frame *f)
{
  const ServeSchema *s = f->s;
  gint64 more = MAX (s->min_items - f->count, 0);
  return more * (1 + min_value (s->items, 0)) + 1;
}

static gint64
close_cost (const ServeGrammar *g)
{
  if (g->done)
    return 0;
  gint64 c = 0;
  for (guint d = g->depth; d-- > 0;) {
    const Frame *f = &g->f[d];
    const ServeSchema *s = f->s;
    switch ((State) f->state) {
      case F_VALUE:
        c += min_value (s, 0);
        break;
      case F_STRING:
        c += MAX (s->min_len - f->count, 0) + 1 + (f->sub == 1 ? 1 : f->sub >= 11 ? f->sub - 10 : 0);
        break;
      case F_NUMBER:
        c += (f->sub == 2 || f->sub == 3 || f->sub == 5 || f->sub == 8) ? 0 : 1;
        break;
      case F_LITERAL: {
        gint64 best = COST_CAP;
        for (guint i = 0; f->lits[i]; i++)
          if (f->cand >> i & 1)
            best = MIN (best, (gint64) strlen (f->lits[i]) - f->count);
        c += best;
        break;
      }
      case F_KEY:
        if (!s->n_props) {
          c += 2 + (f->sub == 1 ? 1 : f->sub >= 11 ? f->sub - 10 : 0) + min_value (s->extra, 0) + object_rest (f);
        } else {
          gint64 best = COST_CAP;
          for (guint i = 0; i < s->n_props; i++)
            if (f->cand >> i & 1) {
              /* The rest of the name, its quote and colon, its value, then
             * the other required members. */
              gint64 k = (gint64) strlen (s->names[i]) - f->count + 2 + min_value (s->props[i], 0) +
                         required_cost (s, f->seen | (G_GUINT64_CONSTANT (1) << i), TRUE, 0) + 1;
              best = MIN (best, k);
            }
          c += best;
        }
        break;
      case F_COLON:
        c += 1 + min_value (f->key >= 0 ? s->props[f->key] : s->extra, 0) + object_rest (f);
        break;
      case F_OBJ_OPEN:
        c += required_cost (s, f->seen, FALSE, 0) + 1;
        break;
      case F_OBJ_VALUE:
      case F_OBJ_NEXT:
        c += object_rest (f);
        break;
      case F_OBJ_COMMA:
        if (required_cost (s, f->seen, FALSE, 0) > 0) {
          c += required_cost (s, f->seen, FALSE, 0) + 1;
        } else if (!s->n_props) {
          c += 3 + min_value (s->extra, 0) + 1;
        } else {
          gint64 best = COST_CAP;
          for (guint i = 0; i < s->n_props; i++)
            if (!(f->seen >> i & 1))
              best = MIN (best, member_cost (s, i, 0));
          c += best + 1;
        }
        break;
      case F_ARR_OPEN:
        c += s->min_items > 0 ? s->min_items * (min_value (s->items, 0) + 1) : 1;
        break;
      case F_ARR_VALUE:
      case F_ARR_NEXT:
        c += array_rest (f);
        break;
      case F_ARR_COMMA:
        c += min_value (s->items, 0) + MAX (s->min_items - f->count - 1, 0) * (1 + min_value (s->items, 0)) + 1;
        break;
    }
    c = MIN (c, COST_CAP);
  }
  return c;
}

gint64
serve_grammar_close_cost (const ServeGrammar *g)
{
  return close_cost (g);
}

struct _ServeVocab {
  guint n;
  char **text; /* "" for tokens that decode to nothing (specials) */
  gsize *len;
};

char *
serve_token_text (CriaTokenizer *tok, gint32 anchor, gint32 id, gboolean skip_special)
{
  /* A SentencePiece decoder drops the space of a token that opens the
   * text ("▁is" alone is "is"): decoded after `anchor`, the token shows
   * the text it adds in the middle of an answer. */
  if (anchor >= 0) {
    gint32 pair[2] = { anchor, id };
    g_autofree char *a = cria_tokenizer_decode (tok, pair, 1, skip_special, NULL);
    g_autofree char *ab = cria_tokenizer_decode (tok, pair, 2, skip_special, NULL);
    if (a && ab && g_str_has_prefix (ab, a))
      return g_strdup (ab + strlen (a));
  }
  char *t = cria_tokenizer_decode (tok, &id, 1, skip_special, NULL);
  return t ? t : g_strdup ("");
}

gint32
serve_token_anchor (CriaTokenizer *tok)
{
  g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, "a", -1, 0, NULL);
  return enc && enc->ids->len == 1 ? g_array_index (enc->ids, gint32, 0) : -1;
}

ServeVocab *
serve_vocab_new (CriaTokenizer *tok)
{
  ServeVocab *v = g_new0 (ServeVocab, 1);
  v->n = cria_tokenizer_vocab_size (tok);
  v->text = g_new0 (char *, v->n + 1);
  v->len = g_new0 (gsize, v->n);
  gint32 anchor = serve_token_anchor (tok);
  for (guint i = 0; i < v->n; i++) {
    v->text[i] = serve_token_text (tok, anchor, (gint32) i, TRUE);
    v->len[i] = strlen (v->text[i]);
  }
  return v;
}

void
serve_vocab_free (ServeVocab *v)
{
  if (!v)
    return;
  g_strfreev (v->text);
  g_free (v->len);
  g_free (v);
}

gboolean
serve_grammar_mask (const ServeGrammar *g, const ServeVocab *v, float *logits, gint64 vocab, gint64 budget)
{
  g_autofree guint8 *ok = g_new0 (guint8, vocab);
  gboolean any = FALSE;
  ServeGrammar *trial = g_new (ServeGrammar, 1);
  /* Short of tokens: only those that bring the end nearer. */
  gint64 before = budget >= 0 ? close_cost (g) : 0;
  gboolean closing = budget >= 0 && budget <= before + 2;
  for (gint64 i = 0; i < vocab && i < v->n; i++) {
    if (!v->len[i])
      continue;
    serve_grammar_copy (trial, g);
    ok[i] = serve_grammar_advance (trial, v->text[i], v->len[i]) && (!closing || close_cost (trial) < before);
    any |= ok[i];
  }
  g_free (trial);
  if (!any)
    return FALSE;
  for (gint64 i = 0; i < vocab; i++)
    if (!ok[i])
      logits[i] = -INFINITY;
  return TRUE;
}

gboolean
serve_grammar_feed_token (ServeGrammar *g, const ServeVocab *v, gint32 id)
{
  if (id < 0 || (guint) id >= v->n)
    return FALSE;
  return serve_grammar_feed (g, v->text[id], v->len[id]);
}
