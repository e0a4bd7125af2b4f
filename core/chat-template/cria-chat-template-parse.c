/* cria-chat-template-parse.c: the parser of chat templates, from the
 * tokens of cria-chat-template-lex.c to a tree of CtNode. Precedence and
 * the shape of each tag follow Jinja2's own parser. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>

#include "cria-chat-template-private.h"

/* Deeper nesting is refused rather than risking the C stack. */
#define MAX_DEPTH 200
/* ---- parser ---------------------------------------------------------------- */

static CtTok *
peek (CtParser *P)
{
  return &g_array_index (P->toks, CtTok, P->at);
}

static CtTok *
next (CtParser *P)
{
  CtTok *t = peek (P);
  if (t->kind != CT_TK_EOF)
    P->at++;
  return t;
}

static gboolean
is_op (CtParser *P, const char *op)
{
  CtTok *t = peek (P);
  return t->kind == CT_TK_OP && !strcmp (t->text, op);
}

static gboolean
is_name (CtParser *P, const char *name)
{
  CtTok *t = peek (P);
  return t->kind == CT_TK_NAME && !strcmp (t->text, name);
}

static gboolean
accept_op (CtParser *P, const char *op)
{
  if (!is_op (P, op))
    return FALSE;
  P->at++;
  return TRUE;
}

static gboolean
accept_name (CtParser *P, const char *name)
{
  if (!is_name (P, name))
    return FALSE;
  P->at++;
  return TRUE;
}

static const char *
describe (CtTok *t)
{
  switch (t->kind) {
    case CT_TK_EOF:
      return "the end of the template";
    case CT_TK_VAR_END:
      return "'}}'";
    case CT_TK_BLOCK_END:
      return "'%}'";
    case CT_TK_STRING:
      return "a string";
    case CT_TK_INT:
    case CT_TK_FLOAT:
      return "a number";
    case CT_TK_TEXT:
      return "text";
    default:
      return t->text ? t->text : "a tag";
  }
}

static gboolean
expect_op (CtParser *P, const char *op)
{
  if (accept_op (P, op))
    return TRUE;
  ct_parser_error (P, peek (P)->pos, "expected '%s', found %s", op, describe (peek (P)));
  return FALSE;
}

static gboolean
expect_kind (CtParser *P, CtTokKind kind, const char *what)
{
  if (peek (P)->kind == kind) {
    next (P);
    return TRUE;
  }
  ct_parser_error (P, peek (P)->pos, "expected %s, found %s", what, describe (peek (P)));
  return FALSE;
}

static CtNode *
node_new (CtParser *P, CtNodeKind kind, gsize pos)
{
  CtNode *n = g_new0 (CtNode, 1);
  n->kind = kind;
  ct_line_column (P->src, pos, &n->line, &n->column);
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
binary (CtParser *P, CtNodeKind kind, CtOp op, CtNode *a, CtNode *b, gsize pos)
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

static CtNode *parse_expr (CtParser *P);
static CtNode *parse_or (CtParser *P);
static CtNode *parse_unary (CtParser *P, gboolean with_filter);

/* Arguments up to ')' (or ']' / '}' for literals): positional, then name=value. */
static gboolean
parse_args (CtParser *P, CtNode *n, const char *close, gboolean allow_kwargs)
{
  n->args = node_list ();
  while (!accept_op (P, close)) {
    if (n->args->len && !expect_op (P, ","))
      return FALSE;
    if (accept_op (P, close))
      break;
    CtTok *t = peek (P);
    if (allow_kwargs && t->kind == CT_TK_NAME && P->at + 1 < P->toks->len &&
        g_array_index (P->toks, CtTok, P->at + 1).kind == CT_TK_OP &&
        !strcmp (g_array_index (P->toks, CtTok, P->at + 1).text, "=")) {
      if (!n->kwargs)
        n->kwargs = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (n->kwargs, g_strdup (t->text));
      P->at += 2;
    } else if (n->kwargs) {
      ct_parser_error (P, t->pos, "positional argument after a keyword argument");
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
literal (CtParser *P, gsize pos, CtType type)
{
  CtNode *n = node_new (P, CN_LITERAL, pos);
  n->value = ct_arena_alloc (P->arena, sizeof (CtValue));
  n->value->type = type;
  return n;
}

static CtNode *
parse_primary (CtParser *P)
{
  CtTok *t = next (P);
  CtNode *n;
  switch (t->kind) {
    case CT_TK_NAME:
      if (!strcmp (t->text, "true") || !strcmp (t->text, "True") || !strcmp (t->text, "false") ||
          !strcmp (t->text, "False")) {
        n = literal (P, t->pos, CT_BOOL);
        n->value->b = g_ascii_tolower (t->text[0]) == 't';
      } else if (!strcmp (t->text, "none") || !strcmp (t->text, "None")) {
        n = literal (P, t->pos, CT_NONE);
      } else {
        n = node_new (P, CN_NAME, t->pos);
        n->str = g_strdup (t->text);
      }
      return n;
    case CT_TK_STRING: {
      GString *s = g_string_new (t->text);
      while (peek (P)->kind == CT_TK_STRING) /* adjacent literals concatenate */
        g_string_append (s, next (P)->text);
      n = literal (P, t->pos, CT_STRING);
      n->value->str.len = s->len;
      char *copy = ct_arena_alloc (P->arena, s->len + 1);
      memcpy (copy, s->str, s->len + 1);
      n->value->str.s = copy;
      g_string_free (s, TRUE);
      return n;
    }
    case CT_TK_INT:
      n = literal (P, t->pos, CT_INT);
      n->value->i = t->i;
      return n;
    case CT_TK_FLOAT:
      n = literal (P, t->pos, CT_FLOAT);
      n->value->f = t->f;
      return n;
    case CT_TK_OP:
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
  ct_parser_error (P, t->pos, "expected an expression, found %s", describe (t));
  return NULL;
}

static CtNode *
parse_subscript (CtParser *P, CtNode *obj, gsize pos)
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
parse_postfix (CtParser *P, CtNode *n, gboolean with_filter)
{
  while (n) {
    CtTok *t = peek (P);
    if (accept_op (P, ".")) {
      CtTok *name = next (P);
      if (name->kind != CT_TK_NAME) {
        ct_parser_error (P, name->pos, "expected an attribute name after '.', found %s", describe (name));
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
      if (n->kind == CN_NAME ? !known (ct_functions, n->str) : n->kind != CN_ATTR || !known (ct_methods, n->str)) {
        ct_parser_error (P, t->pos,
                         n->kind == CN_ATTR   ? "unsupported method '%s'"
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
      gboolean filter = t->kind == CT_TK_OP;
      next (P);
      CtNode *f = node_new (P, filter ? CN_FILTER : CN_TEST, t->pos);
      f->a = n;
      n = f;
      f->negated = !filter && accept_name (P, "not");
      CtTok *name = next (P);
      if (name->kind != CT_TK_NAME || !known (filter ? ct_filters : ct_tests, name->text)) {
        ct_parser_error (P, name->pos, "unknown %s '%s'", filter ? "filter" : "test",
                         name->kind == CT_TK_NAME ? name->text : describe (name));
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
parse_unary (CtParser *P, gboolean with_filter)
{
  CtTok *t = peek (P);
  if (++P->depth > MAX_DEPTH) {
    ct_parser_error (P, t->pos, "expression nested too deeply");
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
parse_level (CtParser *P, CtNode *(*sub) (CtParser *), const OpName *ops, guint n_ops)
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
parse_pow (CtParser *P)
{
  CtNode *n = parse_unary (P, TRUE);
  while (n && is_op (P, "**")) {
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, CT_OP_POW, n, parse_unary (P, TRUE), pos);
  }
  return n;
}

static CtNode *
parse_math2 (CtParser *P)
{
  static const OpName ops[] = { { "*", CT_OP_MUL }, { "/", CT_OP_DIV }, { "//", CT_OP_FLOORDIV }, { "%", CT_OP_MOD } };
  return parse_level (P, parse_pow, ops, G_N_ELEMENTS (ops));
}

static CtNode *
parse_concat (CtParser *P)
{
  static const OpName ops[] = { { "~", CT_OP_CONCAT } };
  return parse_level (P, parse_math2, ops, 1);
}

static CtNode *
parse_math1 (CtParser *P)
{
  static const OpName ops[] = { { "+", CT_OP_ADD }, { "-", CT_OP_SUB } };
  return parse_level (P, parse_concat, ops, 2);
}

static CtNode *
parse_compare (CtParser *P)
{
  static const OpName ops[] = { { "==", CT_OP_EQ }, { "!=", CT_OP_NE }, { "<", CT_OP_LT },
                                { "<=", CT_OP_LE }, { ">", CT_OP_GT },  { ">=", CT_OP_GE } };
  CtNode *n = parse_math1 (P);
  CtNode *last = NULL; /* chained comparisons hang off the first through c */
  while (n) {
    CtTok *t = peek (P);
    CtOp op = CT_OP_NONE;
    for (guint k = 0; k < G_N_ELEMENTS (ops); k++)
      if (is_op (P, ops[k].tok))
        op = ops[k].op;
    if (op != CT_OP_NONE) {
      next (P);
    } else if (accept_name (P, "in")) {
      op = CT_OP_IN;
    } else if (is_name (P, "not") && P->at + 1 < P->toks->len &&
               g_array_index (P->toks, CtTok, P->at + 1).kind == CT_TK_NAME &&
               !strcmp (g_array_index (P->toks, CtTok, P->at + 1).text, "in")) {
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
parse_not (CtParser *P)
{
  CtTok *t = peek (P);
  if (accept_name (P, "not")) {
    if (++P->depth > MAX_DEPTH) {
      ct_parser_error (P, t->pos, "expression nested too deeply");
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
parse_logic (CtParser *P, CtNode *(*sub) (CtParser *), const char *word, CtOp op)
{
  CtNode *n = sub (P);
  while (n && is_name (P, word)) {
    gsize pos = next (P)->pos;
    n = binary (P, CN_BINARY, op, n, sub (P), pos);
  }
  return n;
}

static CtNode *
parse_and (CtParser *P)
{
  return parse_logic (P, parse_not, "and", CT_OP_AND);
}

static CtNode *
parse_or (CtParser *P)
{
  return parse_logic (P, parse_and, "or", CT_OP_OR);
}

static CtNode *
parse_expr (CtParser *P)
{
  CtTok *t = peek (P);
  if (++P->depth > MAX_DEPTH) {
    ct_parser_error (P, t->pos, "expression nested too deeply");
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

static GPtrArray *parse_body (CtParser *P, const char *const *ends, char **end_found);

static gboolean
end_block (CtParser *P)
{
  return expect_kind (P, CT_TK_BLOCK_END, "'%}'");
}

/* After a body that stopped at `end`: the {% else %} body up to
 * {% end_word %}, if there is one, and the closing tag. */
static gboolean
finish_block (CtParser *P, CtNode *n, const char *end, const char *end_word)
{
  if (!strcmp (end, "else")) {
    const char *const ends[] = { end_word, NULL };
    g_autofree char *end2 = NULL;
    if (!end_block (P) || !(n->orelse = parse_body (P, ends, &end2)))
      return FALSE;
  }
  return end_block (P);
}

static CtNode *
parse_if (CtParser *P, gsize pos)
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
  if (finish_block (P, n, end, "endif"))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static gboolean
parse_target (CtParser *P, char **name)
{
  CtTok *t = next (P);
  if (t->kind != CT_TK_NAME) {
    ct_parser_error (P, t->pos, "expected a variable name, found %s", describe (t));
    return FALSE;
  }
  *name = g_strdup (t->text);
  return TRUE;
}

static CtNode *
parse_for (CtParser *P, gsize pos)
{
  static const char *const ends[] = { "else", "endfor", NULL };
  CtNode *n = node_new (P, CN_FOR, pos);
  g_autofree char *end = NULL;
  if (!parse_target (P, &n->str) || (accept_op (P, ",") && !parse_target (P, &n->str2)))
    goto fail;
  if (!accept_name (P, "in")) {
    ct_parser_error (P, peek (P)->pos, "expected 'in' in a for loop, found %s", describe (peek (P)));
    goto fail;
  }
  /* No conditional expression here: `if` filters the loop. */
  if (!(n->a = parse_or (P)) || (accept_name (P, "if") && !(n->b = parse_or (P))))
    goto fail;
  if (is_name (P, "recursive")) {
    ct_parser_error (P, peek (P)->pos, "recursive loops are not supported");
    goto fail;
  }
  P->loops++;
  n->body = end_block (P) ? parse_body (P, ends, &end) : NULL;
  P->loops--;
  if (!n->body)
    goto fail;
  if (finish_block (P, n, end, "endfor"))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static CtNode *
parse_set (CtParser *P, gsize pos)
{
  CtNode *n = node_new (P, CN_SET, pos);
  if (!parse_target (P, &n->str) || (accept_op (P, ".") && !parse_target (P, &n->str2)))
    goto fail;
  if (peek (P)->kind == CT_TK_BLOCK_END || is_op (P, ",")) {
    ct_parser_error (P, peek (P)->pos,
                     "only '{%% set name = value %%}' and '{%% set ns.attr = value %%}' are supported");
    goto fail;
  }
  if (expect_op (P, "=") && (n->a = parse_expr (P)) && end_block (P))
    return n;
fail:
  ct_node_free (n);
  return NULL;
}

static CtNode *
parse_statement (CtParser *P, CtTok *kw)
{
  if (!strcmp (kw->text, "if"))
    return parse_if (P, kw->pos);
  if (!strcmp (kw->text, "for"))
    return parse_for (P, kw->pos);
  if (!strcmp (kw->text, "set"))
    return parse_set (P, kw->pos);
  if (!strcmp (kw->text, "break") || !strcmp (kw->text, "continue")) {
    if (!P->loops) {
      ct_parser_error (P, kw->pos, "'%s' outside a for loop", kw->text);
      return NULL;
    }
    CtNode *n = node_new (P, kw->text[0] == 'b' ? CN_BREAK : CN_CONTINUE, kw->pos);
    if (end_block (P))
      return n;
    ct_node_free (n);
    return NULL;
  }
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
  ct_parser_error (P, kw->pos, "unsupported tag '%s'", kw->text);
  return NULL;
}

/* Nodes up to one of the block keywords in `ends` (NULL at top level); the
 * keyword found is returned, its tag left open for the caller. */
static GPtrArray *
parse_body (CtParser *P, const char *const *ends, char **end_found)
{
  if (++P->depth > MAX_DEPTH) {
    ct_parser_error (P, peek (P)->pos, "blocks nested too deeply");
    return NULL;
  }
  GPtrArray *body = node_list ();
  for (;;) {
    CtTok *t = next (P);
    CtNode *n = NULL;
    if (t->kind == CT_TK_EOF) {
      if (!ends)
        break;
      ct_parser_error (P, t->pos, "missing {%% %s %%}", ends[g_strv_length ((char **) ends) - 1]);
      goto fail;
    } else if (t->kind == CT_TK_TEXT) {
      n = node_new (P, CN_TEXT, t->pos);
      n->str = g_strdup (t->text);
    } else if (t->kind == CT_TK_VAR_BEGIN) {
      CtNode *e = parse_expr (P);
      if (!e)
        goto fail;
      n = node_new (P, CN_PRINT, t->pos);
      n->a = e;
      if (!expect_kind (P, CT_TK_VAR_END, "'}}'")) {
        ct_node_free (n);
        goto fail;
      }
    } else if (t->kind == CT_TK_BLOCK_BEGIN) {
      CtTok *kw = next (P);
      if (kw->kind != CT_TK_NAME) {
        ct_parser_error (P, kw->pos, "expected a tag name, found %s", describe (kw));
        goto fail;
      }
      if (ends && known (ends, kw->text)) {
        *end_found = g_strdup (kw->text);
        break;
      }
      if (g_str_has_prefix (kw->text, "end") || !strcmp (kw->text, "else") || !strcmp (kw->text, "elif")) {
        ct_parser_error (P, kw->pos, "unexpected '%s'%s", kw->text, ends ? "" : " outside any block");
        goto fail;
      }
      if (!(n = parse_statement (P, kw)))
        goto fail;
    } else {
      ct_parser_error (P, t->pos, "unexpected %s", describe (t));
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
  CtParser P = {
    .src = src->str, .origin = origin, .toks = g_array_new (FALSE, FALSE, sizeof (CtTok)), .arena = literals
  };
  g_array_set_clear_func (P.toks, ct_tok_clear);
  GPtrArray *program = ct_lex (&P) ? parse_body (&P, NULL, NULL) : NULL;
  g_array_unref (P.toks);
  if (!program && !P.err)
    ct_parser_error (&P, 0, "invalid template");
  if (!program)
    g_propagate_error (error, P.err);
  else
    g_clear_error (&P.err);
  return program;
}
