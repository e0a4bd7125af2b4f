/* serve-grammar.c: constrained decoding for response_format (serve-grammar.h).
 *
 *   curl -d '{"messages": [...], "response_format": {"type": "json_object"}}' http://127.0.0.1:8080/v1/chat/completions
 *
 * A pushdown machine reads the text one byte at a time: one frame per open
 * value (object, array, string, number, literal), each knowing its part of
 * the schema. Before each token the mask (serve-mask.c) tries every
 * token's text on a copy of the machine and keeps those it accepts whole;
 * the model draws among them. Copies are cheap because only the open frames
 * are copied. Runs of whitespace between tokens are capped, so that a model
 * cannot spend its whole budget on blanks; the document ends the generation
 * as soon as it is whole. */
#include "config.h"

#include <string.h>

#include "serve-grammar-private.h"

#define MAX_NUMBER 24 /* characters of one number */
#define MAX_WS 1      /* whitespace characters in a row between tokens of JSON */

static const char *const bool_literals[] = { "true", "false", NULL };
static const char *const null_literals[] = { "null", NULL };

static const ServeSchema object_schema = {
  .types = T_OBJECT, .extra = &serve_schema_any, .items = &serve_schema_any, .max_items = -1, .max_len = -1
};

ServeGrammar *
serve_grammar_new (const ServeSchema *schema)
{
  ServeGrammar *g = g_new0 (ServeGrammar, 1);
  g->root = schema ? schema : &object_schema;
  g->depth = 1;
  g->f[0] = (Frame){ .state = F_VALUE, .s = g->root };
  return g;
}

void
serve_grammar_free (ServeGrammar *g)
{
  g_free (g);
}

gboolean
serve_grammar_done (const ServeGrammar *g)
{
  return g->done;
}

void
serve_grammar_copy (ServeGrammar *to, const ServeGrammar *from)
{
  to->root = from->root;
  to->depth = from->depth;
  to->ws = from->ws;
  to->newlines = from->newlines;
  to->done = from->done;
  memcpy (to->f, from->f, from->depth * sizeof (Frame));
}

/* The value of the top frame is whole. */
static void
pop (ServeGrammar *g)
{
  if (--g->depth == 0) {
    g->done = TRUE;
    return;
  }
  Frame *p = &g->f[g->depth - 1];
  if (p->state == F_OBJ_VALUE)
    p->state = F_OBJ_NEXT;
  else if (p->state == F_ARR_VALUE)
    p->state = F_ARR_NEXT;
}

static gboolean
push (ServeGrammar *g, const ServeSchema *s)
{
  if (g->depth >= MAX_DEPTH)
    return FALSE;
  g->f[g->depth++] = (Frame){ .state = F_VALUE, .s = s ? s : &serve_schema_any };
  return TRUE;
}

static gboolean
is_ws (char c)
{
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static guint64
all_names (const ServeSchema *s, guint64 seen)
{
  guint64 all = s->n_props >= 64 ? G_MAXUINT64 : (G_GUINT64_CONSTANT (1) << s->n_props) - 1;
  return all & ~seen;
}

static void
start_literal (Frame *f, const char *const *lits, char c)
{
  f->state = F_LITERAL;
  f->lits = lits;
  f->cand = 0;
  for (guint i = 0; lits[i]; i++)
    if (lits[i][0] == c)
      f->cand |= G_GUINT64_CONSTANT (1) << i;
  f->count = 1;
}

/* A literal whose every candidate is whole ends now. */
static void
settle_literal (ServeGrammar *g)
{
  Frame *f = &g->f[g->depth - 1];
  for (guint i = 0; f->lits[i]; i++)
    if ((f->cand >> i & 1) && f->lits[i][f->count])
      return;
  pop (g);
}

/* A string's character (or a free name's); `limit` caps its length. */
static gboolean
string_byte (Frame *f, guchar c, const ServeSchema *limit)
{
  if (f->sub == 1) {
    if (c == 'u') {
      f->sub = 14;
      return TRUE;
    }
    if (!strchr ("\"\\/bfnrt", c) || !c)
      return FALSE;
    f->sub = 0;
    f->count++;
    return TRUE;
  }
  if (f->sub >= 11) {
    if (!g_ascii_isxdigit (c))
      return FALSE;
    if (--f->sub == 10) {
      f->sub = 0;
      f->count++;
    }
    return TRUE;
  }
  if (c < 0x20)
    return FALSE;
  if ((c & 0xC0) == 0x80)
    return TRUE;
  if (limit && limit->max_len >= 0 && f->count >= limit->max_len)
    return FALSE;
  if (c == '\\')
    f->sub = 1;
  else
    f->count++;
  return TRUE;
}

static gboolean
step (ServeGrammar *g, char c)
{
  for (;;) {
    if (g->done || g->depth == 0)
      return FALSE;
    Frame *f = &g->f[g->depth - 1];
    const ServeSchema *s = f->s;
    gboolean blank = is_ws (c);
    gboolean in_text = f->state == F_STRING || f->state == F_KEY || f->state == F_LITERAL;
    if (blank && !in_text && f->state != F_NUMBER) {
      if (g->ws >= MAX_WS || (c == '\n' && g->newlines))
        return FALSE;
      g->ws++;
      g->newlines += c == '\n';
      return TRUE;
    }
    if (!in_text)
      g->ws = g->newlines = 0;
    switch ((State) f->state) {
      case F_VALUE: {
        while (s->any_of) {
          const ServeSchema *pick = NULL;
          for (guint i = 0; i < s->any_of->len && !pick; i++) {
            guint8 set[256] = { 0 };
            serve_schema_first_chars (g_ptr_array_index (s->any_of, i), set);
            if (set[(guchar) c])
              pick = g_ptr_array_index (s->any_of, i);
          }
          if (!pick)
            return FALSE;
          f->s = s = pick;
        }
        if (s->literals) {
          start_literal (f, (const char *const *) s->literals, c);
          if (!f->cand)
            return FALSE;
          settle_literal (g);
          return TRUE;
        }
        guint t = s->types;
        if (c == '{' && (t & T_OBJECT)) {
          f->state = F_OBJ_OPEN;
          f->seen = 0;
          return TRUE;
        }
        if (c == '[' && (t & T_ARRAY)) {
          f->state = F_ARR_OPEN;
          f->count = 0;
          return TRUE;
        }
        if (c == '"' && (t & T_STRING)) {
          f->state = F_STRING;
          f->count = f->sub = 0;
          return TRUE;
        }
        if ((c == '-' || g_ascii_isdigit (c)) && (t & (T_NUMBER | T_INTEGER))) {
          f->state = F_NUMBER;
          f->sub = c == '-' ? 1 : c == '0' ? 2 : 3;
          f->count = 1;
          return TRUE;
        }
        if ((c == 't' || c == 'f') && (t & T_BOOLEAN)) {
          start_literal (f, bool_literals, c);
          return TRUE;
        }
        if (c == 'n' && (t & T_NULL)) {
          start_literal (f, null_literals, c);
          return TRUE;
        }
        return FALSE;
      }
      case F_LITERAL: {
        guint64 next = 0;
        for (guint i = 0; f->lits[i]; i++)
          if ((f->cand >> i & 1) && f->lits[i][f->count] == c)
            next |= G_GUINT64_CONSTANT (1) << i;
        if (next) {
          f->cand = next;
          f->count++;
          settle_literal (g);
          return TRUE;
        }
        gboolean whole = FALSE;
        for (guint i = 0; f->lits[i]; i++)
          whole |= (f->cand >> i & 1) && !f->lits[i][f->count];
        if (!whole)
          return FALSE;
        pop (g);
        continue; /* the parent reads c */
      }
      case F_STRING:
        if (c == '"' && f->sub == 0) {
          if (f->count < s->min_len)
            return FALSE;
          pop (g);
          return TRUE;
        }
        return string_byte (f, (guchar) c, s);
      case F_NUMBER: {
        gboolean integer = (s->types & T_INTEGER) && !(s->types & T_NUMBER);
        int sub = f->sub;
        int next = -1;
        if (g_ascii_isdigit (c)) {
          static const int after_digit[] = { -1, 3, -1, 3, 5, 5, 8, 8, 8 };
          next = sub == 1 && c == '0' ? 2 : after_digit[sub];
        } else if (c == '.' && !integer && (sub == 2 || sub == 3)) {
          next = 4;
        } else if ((c == 'e' || c == 'E') && !integer && (sub == 2 || sub == 3 || sub == 5)) {
          next = 6;
        } else if ((c == '+' || c == '-') && sub == 6) {
          next = 7;
        }
        if (next >= 0) {
          if (++f->count > MAX_NUMBER)
            return FALSE;
          f->sub = (guint8) next;
          return TRUE;
        }
        if (sub != 2 && sub != 3 && sub != 5 && sub != 8)
          return FALSE;
        pop (g);
        continue;
      }
      case F_OBJ_OPEN:
      case F_OBJ_COMMA:
        if (c == '"') {
          f->cand = all_names (s, f->seen);
          if (s->n_props && !f->cand)
            return FALSE;
          f->state = F_KEY;
          f->count = f->sub = 0;
          return TRUE;
        }
        if (c == '}' && f->state == F_OBJ_OPEN && (s->required & ~f->seen) == 0) {
          pop (g);
          return TRUE;
        }
        return FALSE;
      case F_KEY:
        if (!s->n_props) {
          if (c == '"' && f->sub == 0) {
            f->key = -1;
            f->state = F_COLON;
            return TRUE;
          }
          return string_byte (f, (guchar) c, NULL);
        }
        if (c == '"') {
          for (guint i = 0; i < s->n_props; i++)
            if ((f->cand >> i & 1) && !s->names[i][f->count]) {
              f->key = (gint32) i;
              f->seen |= G_GUINT64_CONSTANT (1) << i;
              f->state = F_COLON;
              return TRUE;
            }
          return FALSE;
        } else {
          guint64 next = 0;
          for (guint i = 0; i < s->n_props; i++)
            if ((f->cand >> i & 1) && s->names[i][f->count] == c)
              next |= G_GUINT64_CONSTANT (1) << i;
          if (!next)
            return FALSE;
          f->cand = next;
          f->count++;
          return TRUE;
        }
      case F_COLON:
        if (c != ':')
          return FALSE;
        f->state = F_OBJ_VALUE;
        return push (g, f->key >= 0 ? s->props[f->key] : s->extra);
      case F_OBJ_NEXT:
        if (c == ',' && (!s->n_props || all_names (s, f->seen))) {
          f->state = F_OBJ_COMMA;
          return TRUE;
        }
        if (c == '}' && (s->required & ~f->seen) == 0) {
          pop (g);
          return TRUE;
        }
        return FALSE;
      case F_ARR_OPEN:
        if (c == ']') {
          if (s->min_items > 0)
            return FALSE;
          pop (g);
          return TRUE;
        }
        if (s->max_items == 0)
          return FALSE;
        f->state = F_ARR_VALUE;
        f->count++;
        if (!push (g, s->items))
          return FALSE;
        continue;
      case F_ARR_NEXT:
        if (c == ',' && (s->max_items < 0 || f->count < s->max_items)) {
          f->state = F_ARR_COMMA;
          return TRUE;
        }
        if (c == ']' && f->count >= s->min_items) {
          pop (g);
          return TRUE;
        }
        return FALSE;
      case F_ARR_COMMA:
        f->state = F_ARR_VALUE;
        f->count++;
        if (!push (g, s->items))
          return FALSE;
        continue;
      case F_OBJ_VALUE:
      case F_ARR_VALUE:
        return FALSE; /* the frame above reads */
    }
    return FALSE;
  }
}

gboolean
serve_grammar_advance (ServeGrammar *g, const char *text, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (!step (g, text[i]))
      return FALSE;
  return TRUE;
}

gboolean
serve_grammar_feed (ServeGrammar *g, const char *text, gsize len)
{
  ServeGrammar trial;
  serve_grammar_copy (&trial, g);
  if (!serve_grammar_advance (&trial, text, len))
    return FALSE;
  serve_grammar_copy (g, &trial);
  return TRUE;
}
