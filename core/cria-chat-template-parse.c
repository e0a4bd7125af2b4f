/* cria-chat-template-parse.c: the lexer and parser of chat templates.
 *
 * Whitespace is handled as Hugging Face's Jinja environment does it
 * (trim_blocks and lstrip_blocks on, one trailing newline dropped), so the
 * indentation of a template such as Qwen's never reaches the prompt. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <cria/cria-error.h>

#include "cria-chat-template-private.h"

/* Deeper nesting is refused rather than risking the C stack. */
#define MAX_DEPTH 200

typedef enum {
  TK_TEXT,
  TK_VAR_BEGIN,
  TK_VAR_END,
  TK_BLOCK_BEGIN,
  TK_BLOCK_END,
  TK_NAME,
  TK_STRING,
  TK_INT,
  TK_FLOAT,
  TK_OP,
  TK_EOF,
} TokKind;

typedef struct {
  TokKind kind;
  gsize pos;  /* byte offset in the normalized source */
  char *text; /* TEXT, NAME, STRING, OP */
  gint64 i;
  double f;
} Tok;

typedef struct {
  const char *src;
  const char *origin;
  GArray *toks; /* of Tok */
  guint at;
  guint depth;
  CtArena *arena;
  GError *err;
} Parser;

static void
tok_clear (gpointer p)
{
  g_free (((Tok *) p)->text);
}

static void
set_error_at (Parser *P, gsize pos, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
set_error_at (Parser *P, gsize pos, const char *fmt, ...)
{
  if (P->err)
    return;
  guint line = 1, col = 1;
  for (gsize i = 0; i < pos && P->src[i]; i++) {
    if (P->src[i] == '\n') {
      line++;
      col = 1;
    } else if (((guchar) P->src[i] & 0xC0) != 0x80) {
      col++;
    }
  }
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (&P->err, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%u:%u: %s", P->origin, line, col, msg);
}

/* ---- lexer ----------------------------------------------------------------- */

static void
push (Parser *P, TokKind kind, gsize pos, char *text)
{
  Tok t = { kind, pos, text, 0, 0 };
  g_array_append_val (P->toks, t);
}

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static gboolean
lex_string (Parser *P, gsize *pp)
{
  const char *s = P->src;
  gsize p = *pp;
  char quote = s[p++];
  GString *out = g_string_new (NULL);
  while (s[p] && s[p] != quote) {
    if (s[p] != '\\') {
      g_string_append_c (out, s[p++]);
      continue;
    }
    p++;
    char c = s[p];
    gunichar u = 0;
    int digits = 0;
    switch (c) {
      case 'n': g_string_append_c (out, '\n'); break;
      case 't': g_string_append_c (out, '\t'); break;
      case 'r': g_string_append_c (out, '\r'); break;
      case 'b': g_string_append_c (out, '\b'); break;
      case 'f': g_string_append_c (out, '\f'); break;
      case 'v': g_string_append_c (out, '\v'); break;
      case 'a': g_string_append_c (out, '\a'); break;
      case '\\': case '\'': case '"': g_string_append_c (out, c); break;
      case '\n': break;
      case 'x': digits = 2; break;
      case 'u': digits = 4; break;
      case 'U': digits = 8; break;
      case '\0': goto unterminated;
      default: g_string_append_c (out, '\\'); g_string_append_c (out, c); break;
    }
    p++;
    if (digits) {
      for (int k = 0; k < digits; k++, p++) {
        if (!g_ascii_isxdigit (s[p])) {
          set_error_at (P, p, "bad \\%c escape in a string", c);
          g_string_free (out, TRUE);
          return FALSE;
        }
        u = u * 16 + g_ascii_xdigit_value (s[p]);
      }
      if (u == 0 || u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) {
        set_error_at (P, p, "string escape names no character cria can hold (U+%04X)", u);
        g_string_free (out, TRUE);
        return FALSE;
      }
      g_string_append_unichar (out, u);
    }
  }
  if (!s[p]) {
  unterminated:
    set_error_at (P, *pp, "unterminated string");
    g_string_free (out, TRUE);
    return FALSE;
  }
  push (P, TK_STRING, *pp, g_string_free (out, FALSE));
  *pp = p + 1;
  return TRUE;
}

static gboolean
lex_number (Parser *P, gsize *pp)
{
  const char *s = P->src;
  gsize p = *pp;
  while (g_ascii_isdigit (s[p]) || s[p] == '_')
    p++;
  gboolean is_float = FALSE;
  if (s[p] == '.' && g_ascii_isdigit (s[p + 1])) {
    is_float = TRUE;
    for (p++; g_ascii_isdigit (s[p]) || s[p] == '_';)
      p++;
  }
  if ((s[p] == 'e' || s[p] == 'E')
      && (g_ascii_isdigit (s[p + 1]) || ((s[p + 1] == '+' || s[p + 1] == '-') && g_ascii_isdigit (s[p + 2])))) {
    is_float = TRUE;
    for (p += 2; g_ascii_isdigit (s[p]);)
      p++;
  }
  GString *digits = g_string_new (NULL);
  for (gsize k = *pp; k < p; k++)
    if (s[k] != '_')
      g_string_append_c (digits, s[k]);
  Tok t = { is_float ? TK_FLOAT : TK_INT, *pp, NULL, 0, 0 };
  errno = 0;
  if (is_float)
    t.f = g_ascii_strtod (digits->str, NULL);
  else
    t.i = g_ascii_strtoll (digits->str, NULL, 10);
  g_string_free (digits, TRUE);
  if (errno) {
    set_error_at (P, *pp, "number out of range");
    return FALSE;
  }
  g_array_append_val (P->toks, t);
  *pp = p;
  return TRUE;
}

/* The inside of a {{ }} or {% %} tag, up to and past its closing delimiter.
 * Returns whether the closing delimiter asked to strip what follows (-). */
static gboolean
lex_tag (Parser *P, gsize *pp, gboolean block, gboolean *strip_after)
{
  const char *s = P->src;
  gsize p = *pp;
  /* Open brackets, so that a dict literal's } is not the tag's end. */
  char open[256];
  guint depth = 0;
  for (;;) {
    while (is_space (s[p]))
      p++;
    if (!s[p]) {
      set_error_at (P, *pp, "unterminated %s tag", block ? "{%" : "{{");
      return FALSE;
    }
    gboolean dash = s[p] == '-';
    const char *close = block ? "%}" : "}}";
    if ((block || depth == 0 || open[MIN (depth, sizeof open) - 1] != '{') && strncmp (s + p + dash, close, 2) == 0) {
      push (P, block ? TK_BLOCK_END : TK_VAR_END, p, NULL);
      p += dash + 2;
      *strip_after = dash;
      if (block && !dash && s[p] == '\n')
        p++; /* trim_blocks */
      *pp = p;
      return TRUE;
    }
    char c = s[p];
    if (g_ascii_isalpha (c) || c == '_') {
      gsize b = p;
      while (g_ascii_isalnum (s[p]) || s[p] == '_')
        p++;
      push (P, TK_NAME, b, g_strndup (s + b, p - b));
    } else if (c == '\'' || c == '"') {
      if (!lex_string (P, &p))
        return FALSE;
    } else if (g_ascii_isdigit (c)) {
      if (!lex_number (P, &p))
        return FALSE;
    } else {
      static const char *const two[] = { "//", "**", "==", "!=", "<=", ">=" };
      gsize n = 0;
      for (guint k = 0; k < G_N_ELEMENTS (two); k++)
        if (strncmp (s + p, two[k], 2) == 0)
          n = 2;
      if (!n && strchr ("()[]{},.:|~+-*/%<>=", c))
        n = 1;
      if (!n) {
        if ((guchar) c < 0x20)
          set_error_at (P, p, "unexpected character \\x%02x in a tag", (guchar) c);
        else
          set_error_at (P, p, "unexpected character '%.*s' in a tag", (int) (g_utf8_next_char (s + p) - (s + p)),
                        s + p);
        return FALSE;
      }
      if (c == '(' || c == '[' || c == '{') {
        if (depth < sizeof open)
          open[depth] = c;
        depth++;
      } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
        depth--;
      }
      push (P, TK_OP, p, g_strndup (s + p, n));
      p += n;
    }
  }
}

static gboolean
lex (Parser *P)
{
  const char *s = P->src;
  gsize p = 0, n = strlen (s);
  gboolean strip_next = FALSE, line_start = TRUE;
  while (p < n) {
    const char *open = NULL;
    for (const char *q = strchr (s + p, '{'); q; q = strchr (q + 1, '{'))
      if (q[1] == '{' || q[1] == '%' || q[1] == '#') {
        open = q;
        break;
      }
    gsize end = open ? (gsize) (open - s) : n;
    gsize tb = p, te = end;
    if (strip_next)
      while (tb < te && is_space (s[tb]))
        tb++;
    if (open) {
      char kind = open[1], mod = open[2];
      if (mod == '-') {
        while (te > tb && is_space (s[te - 1]))
          te--;
      } else if (kind != '{' && mod != '+') {
        /* lstrip_blocks: a block tag alone on its line takes its indentation */
        gsize ls = te;
        while (ls > tb && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
          ls--;
        if ((ls > tb && s[ls - 1] == '\n') || (ls == tb && (tb > p ? s[tb - 1] == '\n' : line_start)))
          te = ls;
      }
    }
    if (te > tb)
      push (P, TK_TEXT, tb, g_strndup (s + tb, te - tb));
    if (!open)
      break;
    p = end + 2;
    gboolean mod = s[p] == '-' || s[p] == '+';
    p += mod;
    if (open[1] == '#') {
      const char *close = strstr (s + p, "#}");
      if (!close) {
        set_error_at (P, end, "unterminated comment");
        return FALSE;
      }
      strip_next = close > s + p && close[-1] == '-';
      p = close - s + 2;
      if (!strip_next && s[p] == '\n')
        p++;
    } else {
      gboolean block = open[1] == '%';
      push (P, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, end, NULL);
      if (!lex_tag (P, &p, block, &strip_next))
        return FALSE;
    }
    line_start = p > 0 && s[p - 1] == '\n';
  }
  push (P, TK_EOF, n, NULL);
  return TRUE;
}

/* ---- parser ---------------------------------------------------------------- */

static Tok *
peek (Parser *P)
{
  return &g_array_index (P->toks, Tok, P->at);
}

static Tok *
next (Parser *P)
{
  Tok *t = peek (P);
  if (t->kind != TK_EOF)
    P->at++;
  return t;
}

static gboolean
is_op (Parser *P, const char *op)
{
  Tok *t = peek (P);
  return t->kind == TK_OP && !strcmp (t->text, op);
}

static gboolean
is_name (Parser *P, const char *name)
{
  Tok *t = peek (P);
  return t->kind == TK_NAME && !strcmp (t->text, name);
}

static gboolean
accept_op (Parser *P, const char *op)
{
  if (!is_op (P, op))
    return FALSE;
  P->at++;
  return TRUE;
}

static gboolean
accept_name (Parser *P, const char *name)
{
  if (!is_name (P, name))
    return FALSE;
  P->at++;
  return TRUE;
}

static const char *
describe (Tok *t)
{
  switch (t->kind) {
    case TK_EOF: return "the end of the template";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_END: return "'%}'";
    case TK_STRING: return "a string";
    case TK_INT: case TK_FLOAT: return "a number";
    case TK_TEXT: return "text";
    default: return t->text ? t->text : "a tag";
  }
}

static gboolean
expect_op (Parser *P, const char *op)
{
  if (accept_op (P, op))
    return TRUE;
  set_error_at (P, peek (P)->pos, "expected '%s', found %s", op, describe (peek (P)));
  return FALSE;
}

static gboolean
expect_kind (Parser *P, TokKind kind, const char *what)
{
  if (peek (P)->kind == kind) {
    next (P);
    return TRUE;
  }
  set_error_at (P, peek (P)->pos, "expected %s, found %s", what, describe (peek (P)));
  return FALSE;
}

static CtNode *
node_new (Parser *P, CtNodeKind kind, gsize pos)
{
  CtNode *n = g_new0 (CtNode, 1);
  n->kind = kind;
  guint line = 1, col = 1;
  for (gsize i = 0; i < pos && P->src[i]; i++) {
    if (P->src[i] == '\n') {
      line++;
      col = 1;
    } else if (((guchar) P->src[i] & 0xC0) != 0x80) {
      col++;
    }
  }
  n->line = line;
  n->column = col;
  return n;
}

void
ct_node_free (CtNode *n)
{
  if (!n)
    return;
  g_free (n->str);
  g_free (n->str2);
  ct_node_free (n->a);
  ct_node_free (n->b);
  ct_node_free (n->c);
  ct_node_free (n->d);
  if (n->args)
    g_ptr_array_unref (n->args);
  if (n->kwargs)
    g_ptr_array_unref (n->kwargs);
  if (n->body)
    g_ptr_array_unref (n->body);
  if (n->orelse)
    g_ptr_array_unref (n->orelse);
  g_free (n);
}

static GPtrArray *
node_list (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) ct_node_free);
}

static CtNode *
binary (Parser *P, CtNodeKind kind, CtOp op, CtNode *a, CtNode *b, gsize pos)
{
  if (!a || !b) {
    ct_node_free (a);
    ct_node_free (b);
    return NULL;
  }
  CtNode *n = node_new (P, kind, pos);
  n->op = op;
  n->a = a;
  n->b = b;
  return n;
}

static gboolean
known (const char *const *names, const char *name)
{
  for (; *names; names++)
    if (!strcmp (*names, name))
      return TRUE;
  return FALSE;
}

static CtNode *parse_expr (Parser *P);
static CtNode *parse_or (Parser *P);
static CtNode *parse_unary (Parser *P, gboolean with_filter);

/* Arguments up to ')' (or ']' / '}' for literals): positional, then name=value. */
static gboolean
parse_args (Parser *P, CtNode *n, const char *close, gboolean allow_kwargs)
{
  n->args = node_list ();
  while (!accept_op (P, close)) {
    if (n->args->len && !expect_op (P, ","))
      return FALSE;
    if (accept_op (P, close))
      break;
    Tok *t = peek (P);
    if (allow_kwargs && t->kind == TK_NAME && P->at + 1 < P->toks->len
        && g_array_index (P->toks, Tok, P->at + 1).kind == TK_OP
        && !strcmp (g_array_index (P->toks, Tok, P->at + 1).text, "=")) {
      if (!n->kwargs)
        n->kwargs = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (n->kwargs, g_strdup (t->text));
      P->at += 2;
    } else if (n->kwargs) {
      set_error_at (P, t->pos, "positional argument after a keyword argument");
      return FALSE;
    }
    CtNode *arg = parse_expr (P);
    if (!arg)
      return FALSE;
    g_ptr_array_add (n->args, arg);
  }
  return TRUE;
}

static CtNode *
literal (Parser *P, gsize pos, CtType type)
{
  CtNode *n = node_new (P, CN_LITERAL, pos);
  n->value = ct_arena_alloc (P->arena, sizeof (CtValue));
  n->value->type = type;
  return n;
}

static CtNode *
parse_primary (Parser *P)
{
  Tok *t = next (P);
  CtNode *n;
  switch (t->kind) {
    case TK_NAME:
      if (!strcmp (t->text, "true") || !strcmp (t->text, "True") || !strcmp (t->text, "false")
          || !strcmp (t->text, "False")) {
        n = literal (P, t->pos, CT_BOOL);
        n->value->b = g_ascii_tolower (t->text[0]) == 't';
      } else if (!strcmp (t->text, "none") || !strcmp (t->text, "None")) {
        n = literal (P, t->pos, CT_NONE);
      } else {
        n = node_new (P, CN_NAME, t->pos);
        n->str = g_strdup (t->text);
      }
      return n;
    case TK_STRING: {
      GString *s = g_string_new (t->text);
      while (peek (P)->kind == TK_STRING) /* adjacent literals concatenate */
        g_string_append (s, next (P)->text);
      n = literal (P, t->pos, CT_STRING);
      n->value->str.len = s->len;
      char *copy = ct_arena_alloc (P->arena, s->len + 1);
      memcpy (copy, s->str, s->len + 1);
      n->value->str.s = copy;
      g_string_free (s, TRUE);
      return n;
    }
    case TK_INT:
      n = literal (P, t->pos, CT_INT);
      n->value->i = t->i;
      return n;
    case TK_FLOAT:
      n = literal (P, t->pos, CT_FLOAT);
      n->value->f = t->f;
      return n;
    case TK_OP:
      if (!strcmp (t->text, "(")) {
        if (accept_op (P, ")"))
          return (n = node_new (P, CN_LIST, t->pos), n->args = node_list (), n);
        CtNode *e = parse_expr (P);
        if (!e)
          return NULL;
        if (accept_op (P, ")"))
          return e;
        n = node_new (P, CN_LIST, t->pos); /* a tuple */
        n->args = node_list ();
        g_ptr_array_add (n->args, e);
        while (accept_op (P, ",")) {
          if (is_op (P, ")"))
            break;
          CtNode *item = parse_expr (P);
          if (!item) {
            ct_node_free (n);
            return NULL;
          }
          g_ptr_array_add (n->args, item);
        }
        if (!expect_op (P, ")")) {
          ct_node_free (n);
          return NULL;
        }
        return n;
      }
      if (!strcmp (t->text, "[") || !strcmp (t->text, "{")) {
        gboolean dict = t->text[0] == '{';
        n = node_new (P, dict ? CN_DICT : CN_LIST, t->pos);
        n->args = node_list ();
        while (!accept_op (P, dict ? "}" : "]")) {
          if (n->args->len && !expect_op (P, ","))
            goto fail;
          if (accept_op (P, dict ? "}" : "]"))
            break;
          CtNode *item = parse_expr (P);
          if (!item)
            goto fail;
          g_ptr_array_add (n->args, item);
          if (dict) {
            if (!expect_op (P, ":") || !(item = parse_expr (P)))
              goto fail;
            g_ptr_array_add (n->args, item);
          }
        }
        return n;
      fail:
        ct_node_free (n);
        return NULL;
      }
      break;
    default:
      break;
  }
  set_error_at (P, t->pos, "expected an expression, found %s", describe (t));
  return NULL;
}

static CtNode *
parse_subscript (Parser *P, CtNode *obj, gsize pos)
{
  CtNode *n = node_new (P, CN_ITEM, pos);
  n->a = obj;
  if (!is_op (P, ":") && !(n->b = parse_expr (P)))
    goto fail;
  if (accept_op (P, ":")) {
    n->kind = CN_SLICE;
    if (!is_op (P, ":") && !is_op (P, "]") && !(n->c = parse_expr (P)))
      goto fail;
    if (accept_op (P, ":") && !is_op (P, "]") && !(n->d = parse_expr (P)))
      goto fail;
  }
  if (expect_op (P, "]"))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

/* .name, [subscript], (call), and with filters | name(...) and is [not] test. */
static CtNode *
parse_postfix (Parser *P, CtNode *n, gboolean with_filter)
{
  while (n) {
    Tok *t = peek (P);
    if (accept_op (P, ".")) {
      Tok *name = next (P);
      if (name->kind != TK_NAME) {
        set_error_at (P, name->pos, "expected an attribute name after '.', found %s", describe (name));
        ct_node_free (n);
        return NULL;
      }
      CtNode *a = node_new (P, CN_ATTR, name->pos);
      a->a = n;
      a->str = g_strdup (name->text);
      n = a;
    } else if (accept_op (P, "[")) {
      n = parse_subscript (P, n, t->pos);
    } else if (accept_op (P, "(")) {
      if (n->kind == CN_NAME ? !known (ct_functions, n->str)
                             : n->kind != CN_ATTR || !known (ct_methods, n->str)) {
        set_error_at (P, t->pos, n->kind == CN_ATTR   ? "unsupported method '%s'"
                                 : n->kind == CN_NAME ? "unknown function '%s'"
                                                      : "%s: only functions and methods can be called",
                      n->str ? n->str : "this");
        ct_node_free (n);
        return NULL;
      }
      CtNode *c = node_new (P, CN_CALL, t->pos);
      c->line = n->line; /* errors point at the name called */
      c->column = n->column;
      c->a = n;
      n = c;
      if (!parse_args (P, c, ")", TRUE)) {
        ct_node_free (c);
        return NULL;
      }
    } else if (with_filter && (is_op (P, "|") || is_name (P, "is"))) {
      gboolean filter = t->kind == TK_OP;
      next (P);
      CtNode *f = node_new (P, filter ? CN_FILTER : CN_TEST, t->pos);
      f->a = n;
      n = f;
      f->negated = !filter && accept_name (P, "not");
      Tok *name = next (P);
      if (name->kind != TK_NAME || !known (filter ? ct_filters : ct_tests, name->text)) {
        set_error_at (P, name->pos, "unknown %s '%s'", filter ? "filter" : "test",
                      name->kind == TK_NAME ? name->text : describe (name));
        ct_node_free (n);
        return NULL;
      }
      f->str = g_strdup (name->text);
      if (accept_op (P, "(") && !parse_args (P, f, ")", TRUE)) {
        ct_node_free (n);
        return NULL;
      }
    } else {
      break;
    }
  }
  return n;
}

static CtNode *
parse_unary (Parser *P, gboolean with_filter)
{
  Tok *t = peek (P);
  if (++P->depth > MAX_DEPTH) {
    set_error_at (P, t->pos, "expression nested too deeply");
    return NULL;
  }
  CtNode *n;
  if (accept_op (P, "-") || accept_op (P, "+")) {
    CtNode *a = parse_unary (P, FALSE);
    if (!a)
      return NULL;
    n = node_new (P, CN_UNARY, t->pos);
    n->op = t->text[0] == '-' ? CT_OP_NEG : CT_OP_POS;
    n->a = a;
  } else {
    n = parse_primary (P);
  }
  n = parse_postfix (P, n, with_filter);
  P->depth--;
  return n;
}

typedef struct {
  const char *tok;
  CtOp op;
} OpName;

/* One level of left-associative binary operators. */
static CtNode *
parse_level (Parser *P, CtNode *(*sub) (Parser *), const OpName *ops, guint n_ops)
{
  CtNode *n = sub (P);
  while (n) {
    guint k;
    for (k = 0; k < n_ops; k++)
      if (is_op (P, ops[k].tok))
        break;
    if (k == n_ops)
      break;
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, ops[k].op, n, sub (P), pos);
  }
  return n;
}

static CtNode *
parse_pow (Parser *P)
{
  CtNode *n = parse_unary (P, TRUE);
  while (n && is_op (P, "**")) {
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, CT_OP_POW, n, parse_unary (P, TRUE), pos);
  }
  return n;
}

static CtNode *
parse_math2 (Parser *P)
{
  static const OpName ops[] = { { "*", CT_OP_MUL }, { "/", CT_OP_DIV }, { "//", CT_OP_FLOORDIV }, { "%", CT_OP_MOD } };
  return parse_level (P, parse_pow, ops, G_N_ELEMENTS (ops));
}

static CtNode *
parse_concat (Parser *P)
{
  static const OpName ops[] = { { "~", CT_OP_CONCAT } };
  return parse_level (P, parse_math2, ops, 1);
}

static CtNode *
parse_math1 (Parser *P)
{
  static const OpName ops[] = { { "+", CT_OP_ADD }, { "-", CT_OP_SUB } };
  return parse_level (P, parse_concat, ops, 2);
}

static CtNode *
parse_compare (Parser *P)
{
  static const OpName ops[] = { { "==", CT_OP_EQ }, { "!=", CT_OP_NE }, { "<", CT_OP_LT },
                                { "<=", CT_OP_LE }, { ">", CT_OP_GT },  { ">=", CT_OP_GE } };
  CtNode *n = parse_math1 (P);
  CtNode *last = NULL; /* chained comparisons hang off the first through c */
  while (n) {
    Tok *t = peek (P);
    CtOp op = CT_OP_NONE;
    for (guint k = 0; k < G_N_ELEMENTS (ops); k++)
      if (is_op (P, ops[k].tok))
        op = ops[k].op;
    if (op != CT_OP_NONE) {
      next (P);
    } else if (accept_name (P, "in")) {
      op = CT_OP_IN;
    } else if (is_name (P, "not") && P->at + 1 < P->toks->len
               && g_array_index (P->toks, Tok, P->at + 1).kind == TK_NAME
               && !strcmp (g_array_index (P->toks, Tok, P->at + 1).text, "in")) {
      P->at += 2;
      op = CT_OP_NOT_IN;
    } else {
      break;
    }
    CtNode *right = parse_math1 (P);
    if (!right) {
      ct_node_free (n);
      return NULL;
    }
    CtNode *cmp = node_new (P, CN_COMPARE, t->pos);
    cmp->op = op;
    cmp->b = right;
    if (!last) {
      cmp->a = n;
      n = last = cmp;
    } else {
      last->c = cmp; /* a < b < c: the next link compares b with c */
      last = cmp;
    }
  }
  return n;
}

static CtNode *
parse_not (Parser *P)
{
  Tok *t = peek (P);
  if (accept_name (P, "not")) {
    if (++P->depth > MAX_DEPTH) {
      set_error_at (P, t->pos, "expression nested too deeply");
      return NULL;
    }
    CtNode *a = parse_not (P);
    P->depth--;
    if (!a)
      return NULL;
    CtNode *n = node_new (P, CN_UNARY, t->pos);
    n->op = CT_OP_NOT;
    n->a = a;
    return n;
  }
  return parse_compare (P);
}

static CtNode *
parse_and (Parser *P)
{
  CtNode *n = parse_not (P);
  while (n && is_name (P, "and")) {
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, CT_OP_AND, n, parse_not (P), pos);
  }
  return n;
}

static CtNode *
parse_or (Parser *P)
{
  CtNode *n = parse_and (P);
  while (n && is_name (P, "or")) {
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, CT_OP_OR, n, parse_and (P), pos);
  }
  return n;
}

static CtNode *
parse_expr (Parser *P)
{
  Tok *t = peek (P);
  if (++P->depth > MAX_DEPTH) {
    set_error_at (P, t->pos, "expression nested too deeply");
    return NULL;
  }
  CtNode *n = parse_or (P);
  while (n && is_name (P, "if")) {
    CtNode *c = node_new (P, CN_COND, next (P)->pos);
    c->b = n;
    n = c;
    if (!(c->a = parse_or (P)) || (accept_name (P, "else") && !(c->c = parse_expr (P)))) {
      ct_node_free (n);
      n = NULL;
    }
  }
  P->depth--;
  return n;
}

/* ---- statements ------------------------------------------------------------ */

static GPtrArray *parse_body (Parser *P, const char *const *ends, char **end_found);

static gboolean
end_block (Parser *P)
{
  return expect_kind (P, TK_BLOCK_END, "'%}'");
}

static CtNode *
parse_if (Parser *P, gsize pos)
{
  static const char *const ends[] = { "elif", "else", "endif", NULL };
  CtNode *n = node_new (P, CN_IF, pos);
  g_autofree char *end = NULL;
  if (!(n->a = parse_expr (P)) || !end_block (P) || !(n->body = parse_body (P, ends, &end)))
    goto fail;
  if (!strcmp (end, "elif")) {
    CtNode *elif = parse_if (P, pos);
    if (!elif)
      goto fail;
    n->orelse = node_list ();
    g_ptr_array_add (n->orelse, elif);
    return n;
  }
  if (!strcmp (end, "else")) {
    static const char *const endif[] = { "endif", NULL };
    g_autofree char *end2 = NULL;
    if (!end_block (P) || !(n->orelse = parse_body (P, endif, &end2)))
      goto fail;
  }
  if (end_block (P))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static gboolean
parse_target (Parser *P, char **name)
{
  Tok *t = next (P);
  if (t->kind != TK_NAME) {
    set_error_at (P, t->pos, "expected a variable name, found %s", describe (t));
    return FALSE;
  }
  *name = g_strdup (t->text);
  return TRUE;
}

static CtNode *
parse_for (Parser *P, gsize pos)
{
  static const char *const ends[] = { "else", "endfor", NULL };
  CtNode *n = node_new (P, CN_FOR, pos);
  g_autofree char *end = NULL;
  if (!parse_target (P, &n->str) || (accept_op (P, ",") && !parse_target (P, &n->str2)))
    goto fail;
  if (!accept_name (P, "in")) {
    set_error_at (P, peek (P)->pos, "expected 'in' in a for loop, found %s", describe (peek (P)));
    goto fail;
  }
  /* No conditional expression here: `if` filters the loop. */
  if (!(n->a = parse_or (P)) || (accept_name (P, "if") && !(n->b = parse_or (P))))
    goto fail;
  if (is_name (P, "recursive")) {
    set_error_at (P, peek (P)->pos, "recursive loops are not supported");
    goto fail;
  }
  if (!end_block (P) || !(n->body = parse_body (P, ends, &end)))
    goto fail;
  if (!strcmp (end, "else")) {
    static const char *const endfor[] = { "endfor", NULL };
    g_autofree char *end2 = NULL;
    if (!end_block (P) || !(n->orelse = parse_body (P, endfor, &end2)))
      goto fail;
  }
  if (end_block (P))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static CtNode *
parse_set (Parser *P, gsize pos)
{
  CtNode *n = node_new (P, CN_SET, pos);
  if (!parse_target (P, &n->str) || (accept_op (P, ".") && !parse_target (P, &n->str2)))
    goto fail;
  if (peek (P)->kind == TK_BLOCK_END || is_op (P, ",")) {
    set_error_at (P, peek (P)->pos, "only '{%% set name = value %%}' and '{%% set ns.attr = value %%}' are supported");
    goto fail;
  }
  if (expect_op (P, "=") && (n->a = parse_expr (P)) && end_block (P))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static CtNode *
parse_statement (Parser *P, Tok *kw)
{
  if (!strcmp (kw->text, "if"))
    return parse_if (P, kw->pos);
  if (!strcmp (kw->text, "for"))
    return parse_for (P, kw->pos);
  if (!strcmp (kw->text, "set"))
    return parse_set (P, kw->pos);
  if (!strcmp (kw->text, "generation")) {
    /* transformers' marker of assistant text; it renders its body */
    static const char *const ends[] = { "endgeneration", NULL };
    CtNode *n = node_new (P, CN_BLOCK, kw->pos);
    g_autofree char *end = NULL;
    if (end_block (P) && (n->body = parse_body (P, ends, &end)) && end_block (P))
      return n;
    ct_node_free (n);
    return NULL;
  }
  set_error_at (P, kw->pos, "unsupported tag '%s'", kw->text);
  return NULL;
}

/* Nodes up to one of the block keywords in `ends` (NULL at top level); the
 * keyword found is returned, its tag left open for the caller. */
static GPtrArray *
parse_body (Parser *P, const char *const *ends, char **end_found)
{
  if (++P->depth > MAX_DEPTH) {
    set_error_at (P, peek (P)->pos, "blocks nested too deeply");
    return NULL;
  }
  GPtrArray *body = node_list ();
  for (;;) {
    Tok *t = next (P);
    CtNode *n = NULL;
    if (t->kind == TK_EOF) {
      if (!ends)
        break;
      set_error_at (P, t->pos, "missing {%% %s %%}", ends[g_strv_length ((char **) ends) - 1]);
      goto fail;
    } else if (t->kind == TK_TEXT) {
      n = node_new (P, CN_TEXT, t->pos);
      n->str = g_strdup (t->text);
    } else if (t->kind == TK_VAR_BEGIN) {
      CtNode *e = parse_expr (P);
      if (!e)
        goto fail;
      n = node_new (P, CN_PRINT, t->pos);
      n->a = e;
      if (!expect_kind (P, TK_VAR_END, "'}}'")) {
        ct_node_free (n);
        goto fail;
      }
    } else if (t->kind == TK_BLOCK_BEGIN) {
      Tok *kw = next (P);
      if (kw->kind != TK_NAME) {
        set_error_at (P, kw->pos, "expected a tag name, found %s", describe (kw));
        goto fail;
      }
      if (ends && known (ends, kw->text)) {
        *end_found = g_strdup (kw->text);
        break;
      }
      if (g_str_has_prefix (kw->text, "end") || !strcmp (kw->text, "else") || !strcmp (kw->text, "elif")) {
        set_error_at (P, kw->pos, "unexpected '%s'%s", kw->text, ends ? "" : " outside any block");
        goto fail;
      }
      if (!(n = parse_statement (P, kw)))
        goto fail;
    } else {
      set_error_at (P, t->pos, "unexpected %s", describe (t));
      goto fail;
    }
    g_ptr_array_add (body, n);
  }
  P->depth--;
  return body;
fail:
  g_ptr_array_unref (body);
  return NULL;
}

GPtrArray *
ct_parse (const char *source, const char *origin, CtArena *literals, GError **error)
{
  const char *bad;
  if (!g_utf8_validate (source, -1, &bad)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: the template is not valid UTF-8 (byte %" G_GSIZE_FORMAT ")",
                 origin, (gsize) (bad - source));
    return NULL;
  }
  /* Jinja reads every newline as \n and drops one at the very end. */
  g_autoptr (GString) src = g_string_new (NULL);
  for (const char *p = source; *p; p++) {
    if (*p == '\r')
      p += p[1] == '\n';
    g_string_append_c (src, *p == '\r' ? '\n' : *p);
  }
  if (src->len && src->str[src->len - 1] == '\n')
    g_string_truncate (src, src->len - 1);
  Parser P = { src->str, origin, g_array_new (FALSE, FALSE, sizeof (Tok)), 0, 0, literals, NULL };
  g_array_set_clear_func (P.toks, tok_clear);
  GPtrArray *program = lex (&P) ? parse_body (&P, NULL, NULL) : NULL;
  g_array_unref (P.toks);
  if (!program && !P.err)
    set_error_at (&P, 0, "invalid template");
  if (!program)
    g_propagate_error (error, P.err);
  else
    g_clear_error (&P.err);
  return program;
}
