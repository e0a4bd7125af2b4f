/* cria-chat-template-eval.c: renders a parsed chat template.
 *
 * Semantics follow Jinja2 as transformers configures it: a variable set in a
 * loop body lives for that iteration only (namespace() carries state out),
 * undefined values print as nothing but fail in arithmetic or when an
 * attribute of them is read, and `and`/`or` return one of their operands. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>

#include "cria-chat-template-private.h"

/* A loop iteration's scope holds its targets and loop object in fields, so
 * that an iteration costs one small allocation; `set` goes to vars. */
typedef struct _Scope Scope;
struct _Scope {
  Scope *parent;
  CtValue *vars; /* a dict, made on the first set */
  const char *name[2];
  CtValue *value[2];
  CtValue *loop;
};

static CtValue *eval (CtContext *ctx, Scope *scope, const CtNode *n);
static gboolean exec_body (CtContext *ctx, Scope *scope, GPtrArray *body);

static Scope *
scope_new (CtContext *ctx, Scope *parent)
{
  Scope *s = ct_arena_alloc (ctx->arena, sizeof (Scope));
  s->parent = parent;
  return s;
}

static void
scope_set (CtContext *ctx, Scope *s, const char *name, CtValue *v)
{
  if (!s->vars)
    s->vars = ct_value_new (ctx, CT_DICT);
  ct_dict_set (ctx, s->vars, name, v);
}

static CtValue *
lookup (Scope *s, const char *name)
{
  for (; s; s = s->parent) {
    CtValue *v = s->vars ? ct_dict_get (s->vars, name) : NULL;
    if (v)
      return v;
    for (int k = 0; k < 2; k++)
      if (s->name[k] && !strcmp (s->name[k], name))
        return s->value[k];
    if (s->loop && !strcmp (name, "loop"))
      return s->loop;
  }
  return NULL;
}

static CtValue *
undefined (CtContext *ctx, const char *name)
{
  CtValue *v = ct_value_new (ctx, CT_UNDEFINED);
  v->undefined_name = name;
  return v;
}

static gpointer
fail_undefined (CtContext *ctx, const CtNode *at, const CtValue *v)
{
  return ct_fail (ctx, at, "'%s' is undefined", v->undefined_name ? v->undefined_name : "value");
}

static gboolean
step (CtContext *ctx, const CtNode *n)
{
  if (ctx->error)
    return FALSE;
  if (++ctx->steps > CT_MAX_STEPS)
    return ct_fail (ctx, n, "the template ran past %" G_GUINT64_FORMAT " steps", CT_MAX_STEPS), FALSE;
  if (ct_arena_exhausted (ctx->arena))
    return ct_fail (ctx, n, "the template needs more than %u MiB of memory", (guint) (CT_MAX_ARENA >> 20)), FALSE;
  if (ctx->out->len > CT_MAX_OUTPUT)
    return ct_fail (ctx, n, "the rendered text passes %u MiB", CT_MAX_OUTPUT >> 20), FALSE;
  return TRUE;
}

/* Python's index rules: negative counts from the end; FALSE when outside. */
static gboolean
resolve_index (gint64 i, gsize n, gsize *out)
{
  if (i < 0)
    i += (gint64) n;
  if (i < 0 || (guint64) i >= n)
    return FALSE;
  *out = (gsize) i;
  return TRUE;
}

/* Byte offsets of each character of a string, and the end. */
static gsize *
char_offsets (const CtValue *s, gsize *n)
{
  gsize count = g_utf8_strlen (s->str.s, (gssize) s->str.len);
  gsize *off = g_new (gsize, count + 1);
  gsize k = 0;
  for (const char *p = s->str.s; k < count; p = g_utf8_next_char (p))
    off[k++] = p - s->str.s;
  off[count] = s->str.len;
  *n = count;
  return off;
}

static CtValue *
get_item (CtContext *ctx, const CtNode *at, CtValue *obj, CtValue *key)
{
  if (obj->type == CT_UNDEFINED)
    return fail_undefined (ctx, at, obj);
  gsize i;
  if ((obj->type == CT_DICT || obj->type == CT_NAMESPACE) && key->type == CT_STRING) {
    CtValue *v = ct_dict_get (obj, key->str.s);
    return v ? v : undefined (ctx, key->str.s);
  }
  if (obj->type == CT_LIST && key->type == CT_INT)
    return resolve_index (key->i, obj->list.n, &i) ? obj->list.items[i] : undefined (ctx, "list item");
  if (obj->type == CT_STRING && key->type == CT_INT) {
    gsize n;
    g_autofree gsize *off = char_offsets (obj, &n);
    if (!resolve_index (key->i, n, &i))
      return undefined (ctx, "string item");
    return ct_string (ctx, obj->str.s + off[i], (gssize) (off[i + 1] - off[i]));
  }
  return undefined (ctx, key->type == CT_STRING ? key->str.s : "item");
}

static gboolean
slice_bound (CtContext *ctx, const CtNode *at, CtValue *v, gint64 *out)
{
  if (!v || v->type == CT_NONE)
    return TRUE;
  if (v->type != CT_INT)
    return ct_fail (ctx, at, "slice indices must be integers, not %s", ct_type_name (v)), FALSE;
  *out = v->i;
  return TRUE;
}

static CtValue *
slice (CtContext *ctx, const CtNode *at, CtValue *obj, CtValue *vstart, CtValue *vstop, CtValue *vstep)
{
  if (obj->type == CT_UNDEFINED)
    return fail_undefined (ctx, at, obj);
  if (obj->type != CT_LIST && obj->type != CT_STRING)
    return ct_fail (ctx, at, "cannot slice a %s", ct_type_name (obj));
  gint64 stepv = 1;
  if (!slice_bound (ctx, at, vstep, &stepv))
    return NULL;
  if (stepv == 0)
    return ct_fail (ctx, at, "slice step cannot be zero");
  gsize n = obj->list.n;
  g_autofree gsize *off = NULL;
  if (obj->type == CT_STRING)
    off = char_offsets (obj, &n);
  gint64 len = (gint64) n;
  gint64 start = stepv > 0 ? 0 : len - 1, stop = stepv > 0 ? len : -1;
  gint64 lo = stepv > 0 ? 0 : -1, hi = stepv > 0 ? len : len - 1;
  gboolean has_start = vstart && vstart->type != CT_NONE, has_stop = vstop && vstop->type != CT_NONE;
  if (!slice_bound (ctx, at, vstart, &start) || !slice_bound (ctx, at, vstop, &stop))
    return NULL;
  if (has_start)
    start = CLAMP (start < 0 ? start + len : start, lo, hi);
  if (has_stop)
    stop = CLAMP (stop < 0 ? stop + len : stop, lo, hi);
  CtValue *list = obj->type == CT_LIST ? ct_list_new (ctx, 0) : NULL;
  GString *s = obj->type == CT_STRING ? g_string_new (NULL) : NULL;
  for (gint64 i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
    if (list)
      ct_list_append (ctx, list, obj->list.items[i]);
    else
      g_string_append_len (s, obj->str.s + off[i], (gssize) (off[i + 1] - off[i]));
  }
  return list ? list : ct_string_take (ctx, s);
}

static CtValue *
arith (CtContext *ctx, const CtNode *at, CtOp op, CtValue *a, CtValue *b)
{
  static const char *const symbol[] = {
    [CT_OP_ADD] = "+",       [CT_OP_SUB] = "-", [CT_OP_MUL] = "*", [CT_OP_DIV] = "/",
    [CT_OP_FLOORDIV] = "//", [CT_OP_MOD] = "%", [CT_OP_POW] = "**"
  };
  if (a->type == CT_UNDEFINED)
    return fail_undefined (ctx, at, a);
  if (b->type == CT_UNDEFINED)
    return fail_undefined (ctx, at, b);
  if (op == CT_OP_ADD && a->type == CT_STRING && b->type == CT_STRING) {
    if (a->str.len + b->str.len > CT_MAX_OUTPUT)
      return ct_fail (ctx, at, "string longer than %u MiB", CT_MAX_OUTPUT >> 20);
    GString *s = g_string_sized_new (a->str.len + b->str.len);
    g_string_append_len (s, a->str.s, a->str.len);
    g_string_append_len (s, b->str.s, b->str.len);
    return ct_string_take (ctx, s);
  }
  if (op == CT_OP_ADD && a->type == CT_LIST && b->type == CT_LIST) {
    CtValue *l = ct_list_new (ctx, a->list.n + b->list.n);
    for (gsize i = 0; i < a->list.n; i++)
      ct_list_append (ctx, l, a->list.items[i]);
    for (gsize i = 0; i < b->list.n; i++)
      ct_list_append (ctx, l, b->list.items[i]);
    return l;
  }
  if (op == CT_OP_MUL && a->type == CT_INT && (b->type == CT_STRING || b->type == CT_LIST)) {
    CtValue *t = a;
    a = b;
    b = t;
  }
  if (op == CT_OP_MUL && (a->type == CT_STRING || a->type == CT_LIST) && b->type == CT_INT) {
    gsize unit = a->type == CT_STRING ? a->str.len : a->list.n * sizeof (CtValue *);
    gint64 times = MAX (b->i, 0);
    if (unit && (guint64) times > CT_MAX_OUTPUT / unit)
      return ct_fail (ctx, at, "repetition too large");
    if (a->type == CT_LIST) {
      CtValue *l = ct_list_new (ctx, 0);
      for (gint64 t = 0; t < times; t++)
        for (gsize i = 0; i < a->list.n; i++)
          ct_list_append (ctx, l, a->list.items[i]);
      return l;
    }
    GString *s = g_string_new (NULL);
    for (gint64 t = 0; t < times; t++)
      g_string_append_len (s, a->str.s, a->str.len);
    return ct_string_take (ctx, s);
  }
  if (!ct_is_number (a) || !ct_is_number (b))
    return ct_fail (ctx, at, "unsupported operand types for %s: %s and %s", symbol[op], ct_type_name (a),
                    ct_type_name (b));
  if (a->type != CT_FLOAT && b->type != CT_FLOAT && op != CT_OP_DIV) {
    gint64 x = a->type == CT_INT ? a->i : a->b, y = b->type == CT_INT ? b->i : b->b, r = 0;
    gboolean overflow = FALSE;
    switch (op) {
      case CT_OP_ADD:
        overflow = __builtin_add_overflow (x, y, &r);
        break;
      case CT_OP_SUB:
        overflow = __builtin_sub_overflow (x, y, &r);
        break;
      case CT_OP_MUL:
        overflow = __builtin_mul_overflow (x, y, &r);
        break;
      case CT_OP_FLOORDIV:
      case CT_OP_MOD:
        if (y == 0)
          return ct_fail (ctx, at, "integer division or modulo by zero");
        if (x == G_MININT64 && y == -1)
          overflow = TRUE;
        else if (op == CT_OP_FLOORDIV)
          r = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
        else
          r = ((x % y) + y) % y;
        break;
      case CT_OP_POW:
        if (y < 0)
          goto floating;
        r = 1;
        for (gint64 k = 0; k < y && !overflow; k++)
          overflow = __builtin_mul_overflow (r, x, &r);
        break;
      default:
        break;
    }
    if (overflow)
      return ct_fail (ctx, at, "integer overflow in %s", symbol[op]);
    return ct_int (ctx, r);
  }
floating:;
  double x = ct_as_double (a), y = ct_as_double (b), r;
  if ((op == CT_OP_DIV || op == CT_OP_FLOORDIV || op == CT_OP_MOD) && y == 0)
    return ct_fail (ctx, at, "division by zero");
  switch (op) {
    case CT_OP_ADD:
      r = x + y;
      break;
    case CT_OP_SUB:
      r = x - y;
      break;
    case CT_OP_MUL:
      r = x * y;
      break;
    case CT_OP_DIV:
      r = x / y;
      break;
    case CT_OP_FLOORDIV:
      r = floor (x / y);
      break;
    case CT_OP_MOD:
      r = x - y * floor (x / y);
      break;
    default:
      r = pow (x, y);
      break;
  }
  CtValue *v = ct_value_new (ctx, CT_FLOAT);
  v->f = r;
  return v;
}

static CtValue *
contains (CtContext *ctx, const CtNode *at, CtValue *item, CtValue *box)
{
  if (box->type == CT_UNDEFINED)
    return fail_undefined (ctx, at, box);
  if (box->type == CT_STRING) {
    if (item->type != CT_STRING)
      return ct_fail (ctx, at, "'in <string>' needs a string on the left, not %s", ct_type_name (item));
    return ct_bool (ctx, strstr (box->str.s, item->str.s) != NULL);
  }
  if (box->type == CT_LIST) {
    for (gsize i = 0; i < box->list.n; i++)
      if (ct_equal (item, box->list.items[i]))
        return ct_bool (ctx, TRUE);
    return ct_bool (ctx, FALSE);
  }
  if (box->type == CT_DICT || box->type == CT_NAMESPACE)
    return ct_bool (ctx, item->type == CT_STRING && ct_dict_get (box, item->str.s));
  return ct_fail (ctx, at, "a %s cannot be searched with 'in'", ct_type_name (box));
}

static CtValue *
compare (CtContext *ctx, const CtNode *at, CtOp op, CtValue *a, CtValue *b)
{
  if (op == CT_OP_EQ || op == CT_OP_NE)
    return ct_bool (ctx, ct_equal (a, b) == (op == CT_OP_EQ));
  if (op == CT_OP_IN || op == CT_OP_NOT_IN) {
    CtValue *r = contains (ctx, at, a, b);
    return r && op == CT_OP_NOT_IN ? ct_bool (ctx, !r->b) : r;
  }
  int c;
  if (ct_is_number (a) && ct_is_number (b))
    c = ct_as_double (a) < ct_as_double (b) ? -1 : ct_as_double (a) > ct_as_double (b);
  else if (a->type == CT_STRING && b->type == CT_STRING)
    c = strcmp (a->str.s, b->str.s);
  else
    return ct_fail (ctx, at, "cannot order %s and %s", ct_type_name (a), ct_type_name (b));
  gboolean r = op == CT_OP_LT ? c < 0 : op == CT_OP_LE ? c <= 0 : op == CT_OP_GT ? c > 0 : c >= 0;
  return ct_bool (ctx, r);
}

static CtValue **
eval_args (CtContext *ctx, Scope *scope, const CtNode *n)
{
  guint count = n->args ? n->args->len : 0;
  CtValue **args = ct_arena_alloc (ctx->arena, (count + 1) * sizeof (CtValue *));
  for (guint i = 0; i < count; i++)
    if (!(args[i] = eval (ctx, scope, g_ptr_array_index (n->args, i))))
      return NULL;
  return args;
}

static CtValue *
eval_call (CtContext *ctx, Scope *scope, const CtNode *n)
{
  CtValue **args = eval_args (ctx, scope, n);
  if (!args)
    return NULL;
  guint count = n->args->len;
  if (n->a->kind == CN_NAME)
    return ct_call_function (ctx, n, n->a->str, args, count, n->kwargs);
  if (n->kwargs)
    return ct_fail (ctx, n, "method '%s' takes no keyword arguments", n->a->str);
  CtValue *self = eval (ctx, scope, n->a->a);
  if (!self)
    return NULL;
  if (self->type == CT_UNDEFINED)
    return fail_undefined (ctx, n, self);
  return ct_call_method (ctx, n, n->a->str, self, args, count);
}

static CtValue *
eval (CtContext *ctx, Scope *scope, const CtNode *n)
{
  if (!step (ctx, n))
    return NULL;
  CtValue *a, *b, *c;
  switch (n->kind) {
    case CN_LITERAL:
      return n->value;
    case CN_NAME:
      a = lookup (scope, n->str);
      return a ? a : undefined (ctx, n->str);
    case CN_ATTR:
      if (!(a = eval (ctx, scope, n->a)))
        return NULL;
      if (a->type == CT_UNDEFINED)
        return fail_undefined (ctx, n, a);
      b = a->type == CT_DICT || a->type == CT_NAMESPACE ? ct_dict_get (a, n->str) : NULL;
      return b ? b : undefined (ctx, n->str);
    case CN_ITEM:
      if (!(a = eval (ctx, scope, n->a)) || !(b = eval (ctx, scope, n->b)))
        return NULL;
      return get_item (ctx, n, a, b);
    case CN_SLICE: {
      CtValue *start = NULL, *stop = NULL, *stepv = NULL;
      if (!(a = eval (ctx, scope, n->a)) || (n->b && !(start = eval (ctx, scope, n->b))) ||
          (n->c && !(stop = eval (ctx, scope, n->c))) || (n->d && !(stepv = eval (ctx, scope, n->d))))
        return NULL;
      return slice (ctx, n, a, start, stop, stepv);
    }
    case CN_CALL:
      return eval_call (ctx, scope, n);
    case CN_FILTER:
    case CN_TEST: {
      CtValue **args = eval_args (ctx, scope, n);
      if (!args || !(a = eval (ctx, scope, n->a)))
        return NULL;
      guint count = n->args ? n->args->len : 0;
      if (n->kind == CN_FILTER)
        return ct_call_filter (ctx, n, n->str, a, args, count, n->kwargs);
      b = ct_call_test (ctx, n, n->str, a, args, count);
      return b && n->negated ? ct_bool (ctx, !b->b) : b;
    }
    case CN_UNARY:
      if (!(a = eval (ctx, scope, n->a)))
        return NULL;
      if (n->op == CT_OP_NOT)
        return ct_bool (ctx, !ct_truthy (a));
      if (n->op == CT_OP_POS)
        return ct_is_number (a) ? a : ct_fail (ctx, n, "bad operand type for unary +: %s", ct_type_name (a));
      return arith (ctx, n, CT_OP_SUB, ct_int (ctx, 0), a);
    case CN_BINARY:
      if (!(a = eval (ctx, scope, n->a)))
        return NULL;
      if (n->op == CT_OP_AND || n->op == CT_OP_OR)
        return ct_truthy (a) == (n->op == CT_OP_OR) ? a : eval (ctx, scope, n->b);
      if (!(b = eval (ctx, scope, n->b)))
        return NULL;
      if (n->op == CT_OP_CONCAT) {
        GString *s = g_string_new (NULL);
        ct_append_str (s, a);
        ct_append_str (s, b);
        if (s->len > CT_MAX_OUTPUT) {
          g_string_free (s, TRUE);
          return ct_fail (ctx, n, "string longer than %u MiB", CT_MAX_OUTPUT >> 20);
        }
        return ct_string_take (ctx, s);
      }
      return arith (ctx, n, n->op, a, b);
    case CN_COMPARE:
      if (!(a = eval (ctx, scope, n->a)))
        return NULL;
      for (const CtNode *link = n; link; link = link->c) {
        if (!(b = eval (ctx, scope, link->b)) || !(c = compare (ctx, link, link->op, a, b)))
          return NULL;
        if (!c->b)
          return c;
        a = b;
      }
      return ct_bool (ctx, TRUE);
    case CN_COND:
      if (!(a = eval (ctx, scope, n->a)))
        return NULL;
      if (ct_truthy (a))
        return eval (ctx, scope, n->b);
      return n->c ? eval (ctx, scope, n->c) : undefined (ctx, "conditional expression");
    case CN_LIST:
    case CN_DICT: {
      CtValue **items = eval_args (ctx, scope, n);
      if (!items)
        return NULL;
      if (n->kind == CN_LIST) {
        CtValue *l = ct_list_new (ctx, n->args->len);
        for (guint i = 0; i < n->args->len; i++)
          ct_list_append (ctx, l, items[i]);
        return l;
      }
      CtValue *d = ct_value_new (ctx, CT_DICT);
      for (guint i = 0; i + 1 < n->args->len; i += 2) {
        if (items[i]->type != CT_STRING)
          return ct_fail (ctx, g_ptr_array_index (n->args, i), "dict keys must be strings, not %s",
                          ct_type_name (items[i]));
        ct_dict_set (ctx, d, items[i]->str.s, items[i + 1]);
      }
      return d;
    }
    default:
      return ct_fail (ctx, n, "statement used as an expression");
  }
}

/* What a for loop walks over: list items, dict keys, string characters. */
static CtValue *
iterable (CtContext *ctx, const CtNode *at, CtValue *v)
{
  if (v->type == CT_LIST)
    return v;
  CtValue *l = ct_list_new (ctx, 0);
  if (v->type == CT_UNDEFINED)
    return l;
  if (v->type == CT_DICT) {
    for (gsize i = 0; i < v->dict.n; i++)
      ct_list_append (ctx, l, v->dict.keys[i]);
    return l;
  }
  if (v->type == CT_STRING) {
    for (const char *p = v->str.s; *p; p = g_utf8_next_char (p))
      ct_list_append (ctx, l, ct_string (ctx, p, g_utf8_next_char (p) - p));
    return l;
  }
  return ct_fail (ctx, at, "a %s cannot be looped over", ct_type_name (v));
}

static gboolean
bind_target (CtContext *ctx, const CtNode *n, Scope *s, CtValue *item)
{
  s->name[0] = n->str;
  if (!n->str2) {
    s->value[0] = item;
    return TRUE;
  }
  if (item->type != CT_LIST || item->list.n != 2)
    return ct_fail (ctx, n, "cannot unpack a %s into %s, %s", ct_type_name (item), n->str, n->str2), FALSE;
  s->name[1] = n->str2;
  s->value[0] = item->list.items[0];
  s->value[1] = item->list.items[1];
  return TRUE;
}

static gboolean
exec_for (CtContext *ctx, Scope *scope, const CtNode *n)
{
  CtValue *seq = eval (ctx, scope, n->a);
  if (!seq || !(seq = iterable (ctx, n, seq)))
    return FALSE;
  if (n->b) { /* {% for x in xs if cond %}: loop.length counts what passes */
    CtValue *kept = ct_list_new (ctx, 0);
    for (gsize i = 0; i < seq->list.n; i++) {
      Scope *s = scope_new (ctx, scope);
      CtValue *cond;
      if (!bind_target (ctx, n, s, seq->list.items[i]) || !(cond = eval (ctx, s, n->b)))
        return FALSE;
      if (ct_truthy (cond))
        ct_list_append (ctx, kept, seq->list.items[i]);
    }
    seq = kept;
  }
  gsize len = seq->list.n;
  /* One loop object per loop, whose values change per iteration: nothing
   * can keep a reference to it past the iteration but its members. */
  static const char *const names[] = { "index0", "index",  "revindex0", "revindex", "first",
                                       "last",   "length", "previtem",  "nextitem" };
  CtValue *loop = ct_value_new (ctx, CT_DICT);
  for (guint k = 0; k < G_N_ELEMENTS (names); k++)
    ct_dict_set (ctx, loop, names[k], NULL);
  CtValue **v = loop->dict.values;
  for (gsize i = 0; i < len; i++) {
    Scope *s = scope_new (ctx, scope);
    if (!bind_target (ctx, n, s, seq->list.items[i]))
      return FALSE;
    v[0] = ct_int (ctx, (gint64) i);
    v[1] = ct_int (ctx, (gint64) i + 1);
    v[2] = ct_int (ctx, (gint64) (len - i - 1));
    v[3] = ct_int (ctx, (gint64) (len - i));
    v[4] = ct_bool (ctx, i == 0);
    v[5] = ct_bool (ctx, i + 1 == len);
    v[6] = ct_int (ctx, (gint64) len);
    v[7] = i > 0 ? seq->list.items[i - 1] : undefined (ctx, "loop.previtem");
    v[8] = i + 1 < len ? seq->list.items[i + 1] : undefined (ctx, "loop.nextitem");
    s->loop = loop;
    if (!exec_body (ctx, s, n->body))
      return FALSE;
    CtNodeKind jump = ctx->jump;
    ctx->jump = 0;
    if (jump == CN_BREAK)
      break;
  }
  return len || !n->orelse || exec_body (ctx, scope, n->orelse);
}

static gboolean
exec_node (CtContext *ctx, Scope *scope, const CtNode *n)
{
  CtValue *v;
  switch (n->kind) {
    case CN_TEXT:
      g_string_append (ctx->out, n->str);
      return step (ctx, n);
    case CN_PRINT:
      if (!(v = eval (ctx, scope, n->a)))
        return FALSE;
      ct_append_str (ctx->out, v);
      return step (ctx, n);
    case CN_IF:
      if (!(v = eval (ctx, scope, n->a)))
        return FALSE;
      return exec_body (ctx, scope, ct_truthy (v) ? n->body : n->orelse);
    case CN_FOR:
      return exec_for (ctx, scope, n);
    case CN_SET:
      if (!(v = eval (ctx, scope, n->a)))
        return FALSE;
      if (n->str2) {
        CtValue *ns = lookup (scope, n->str);
        if (!ns || ns->type != CT_NAMESPACE)
          return ct_fail (ctx, n, "'%s' is not a namespace(): cannot set its attribute '%s'", n->str, n->str2), FALSE;
        ct_dict_set (ctx, ns, n->str2, v);
      } else {
        scope_set (ctx, scope, n->str, v);
      }
      return TRUE;
    case CN_BLOCK:
      return exec_body (ctx, scope, n->body);
    case CN_BREAK:
    case CN_CONTINUE:
      ctx->jump = n->kind;
      return TRUE;
    default:
      return ct_fail (ctx, n, "expression used as a statement"), FALSE;
  }
}

static gboolean
exec_body (CtContext *ctx, Scope *scope, GPtrArray *body)
{
  for (guint i = 0; body && i < body->len && !ctx->jump; i++)
    if (!exec_node (ctx, scope, g_ptr_array_index (body, i)))
      return FALSE;
  return TRUE;
}

char *
ct_render (GPtrArray *program, const char *origin, JsonObject *vars, GError **error)
{
  CtContext ctx = { .arena = ct_arena_new (CT_MAX_ARENA), .origin = origin, .out = g_string_new (NULL) };
  Scope *globals = scope_new (&ctx, NULL);
  if (vars) {
    JsonObjectIter it;
    const char *key;
    JsonNode *member;
    json_object_iter_init_ordered (&it, vars);
    while (json_object_iter_next_ordered (&it, &key, &member))
      scope_set (&ctx, globals, key, ct_from_json (&ctx, member));
  }
  /* Template-level sets go to their own scope so that they shadow, and do
   * not rewrite, what the caller passed. */
  gboolean ok = exec_body (&ctx, scope_new (&ctx, globals), program);
  ct_arena_free (ctx.arena);
  if (!ok) {
    if (!ctx.error)
      ct_fail (&ctx, NULL, "rendering failed");
    g_propagate_error (error, ctx.error);
    g_string_free (ctx.out, TRUE);
    return NULL;
  }
  return g_string_free (ctx.out, FALSE);
}
