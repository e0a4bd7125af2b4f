/* cria-unpickle.c: a restricted unpickler for the data.pkl of torch.save.
 *
 * It understands only what a state dict of tensors is made of: containers,
 * numbers, strings, the persistent ids of storages and a handful of globals
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
 * _rebuild_parameter, torch.*Storage); any other opcode or global stops the
 * load with an error naming it, as torch.load(weights_only=True) does.
 * Nothing is ever called or imported: REDUCE of an allowed global is
 * interpreted here. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-torchfile.h>

#include "cria-modelfiles-private.h"

/* Nesting deeper than this is not a state dict (and would recurse when freed). */
#define MAX_DEPTH 32

typedef enum {
  V_MARK,
  V_NONE,
  V_BOOL,
  V_INT,
  V_FLOAT,
  V_STR,
  V_TUPLE,
  V_LIST,
  V_DICT,
  V_GLOBAL,
  V_STORAGE,
  V_TENSOR
} Kind;

typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE } GlobalKind;

typedef struct Value Value;
struct Value {
  int refs;
  Kind kind;
  int depth;
  gint64 i; /* BOOL, INT; GLOBAL: GlobalKind */
  double f;
  char *s;          /* STR; STORAGE: key */
  CriaDType dtype;  /* GLOBAL storage type, STORAGE */
  GPtrArray *items; /* TUPLE, LIST; DICT: key, value, key, value... */
  CriaTorchEntry *tensor;
};

static Value *
ref (Value *v)
{
  v->refs++;
  return v;
}

static void
unref (gpointer p)
{
  Value *v = p;
  if (!v || --v->refs > 0)
    return;
  g_free (v->s);
  if (v->items)
    g_ptr_array_unref (v->items);
  if (v->tensor) {
    g_free (v->tensor->name);
    g_free (v->tensor->storage_key);
    g_free (v->tensor);
  }
  g_free (v);
}

static Value *
new_value (Kind kind)
{
  Value *v = g_new0 (Value, 1);
  v->refs = 1;
  v->kind = kind;
  if (kind == V_TUPLE || kind == V_LIST || kind == V_DICT)
    v->items = g_ptr_array_new_with_free_func (unref);
  return v;
}

typedef struct {
  const char *file;
  const guint8 *p, *end, *start;
  GPtrArray *stack; /* Value * */
  GHashTable *memo; /* index -> Value * */
  GError **error;
} Unpickler;

static gboolean fail (Unpickler *u, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (Unpickler *u, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (u->error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: data.pkl: byte %" G_GSIZE_FORMAT ": %s", u->file,
               (gsize) (u->p - u->start), msg);
  return FALSE;
}

static gboolean
need (Unpickler *u, gsize n)
{
  if ((gsize) (u->end - u->p) < n)
    return fail (u, "truncated (the pickle ends inside an opcode)");
  return TRUE;
}

static guint64
read_le (Unpickler *u, guint n)
{
  guint64 v = 0;
  for (guint i = 0; i < n; i++)
    v |= (guint64) u->p[i] << (8 * i);
  u->p += n;
  return v;
}

static gboolean
push (Unpickler *u, Value *v)
{
  g_ptr_array_add (u->stack, v);
  return TRUE;
}

static Value *
pop (Unpickler *u)
{
  if (!u->stack->len) {
    fail (u, "the stack is empty");
    return NULL;
  }
  Value *v = g_ptr_array_steal_index (u->stack, u->stack->len - 1);
  if (v->kind == V_MARK) {
    unref (v);
    fail (u, "a MARK where a value was expected");
    return NULL;
  }
  return v;
}

static Value *
top (Unpickler *u)
{
  if (!u->stack->len || ((Value *) u->stack->pdata[u->stack->len - 1])->kind == V_MARK) {
    fail (u, "the stack is empty");
    return NULL;
  }
  return u->stack->pdata[u->stack->len - 1];
}

/* Index of the topmost MARK, or -1. */
static int
find_mark (Unpickler *u)
{
  for (int i = (int) u->stack->len - 1; i >= 0; i--)
    if (((Value *) u->stack->pdata[i])->kind == V_MARK)
      return i;
  fail (u, "no MARK on the stack");
  return -1;
}

static void
adopt (Value *parent, Value *child)
{
  g_ptr_array_add (parent->items, child);
  parent->depth = MAX (parent->depth, child->depth + 1);
}

/* Pops everything above the topmost MARK into a new container. */
static Value *
pop_to_mark (Unpickler *u, Kind kind)
{
  int m = find_mark (u);
  if (m < 0)
    return NULL;
  Value *c = new_value (kind);
  for (guint i = m + 1; i < u->stack->len; i++)
    adopt (c, ref (u->stack->pdata[i]));
  g_ptr_array_remove_range (u->stack, m, u->stack->len - m);
  return c;
}

static gboolean
push_tuple (Unpickler *u, guint n)
{
  if (u->stack->len < n)
    return fail (u, "the stack is empty");
  Value *t = new_value (V_TUPLE);
  for (guint i = u->stack->len - n; i < u->stack->len; i++) {
    if (((Value *) u->stack->pdata[i])->kind == V_MARK) {
      unref (t);
      return fail (u, "a MARK where a value was expected");
    }
    adopt (t, ref (u->stack->pdata[i]));
  }
  g_ptr_array_remove_range (u->stack, u->stack->len - n, n);
  if (t->depth > MAX_DEPTH) {
    unref (t);
    return fail (u, "nested deeper than %d", MAX_DEPTH);
  }
  return push (u, t);
}

static const struct {
  const char *name;
  CriaDType dtype;
} storages[] = {
  { "FloatStorage", CRIA_DTYPE_F32 },
  { "BFloat16Storage", CRIA_DTYPE_BF16 },
  { "HalfStorage", CRIA_DTYPE_F16 },
  { "IntStorage", CRIA_DTYPE_I32 },
  { "LongStorage", CRIA_DTYPE_I64 },
  { "ByteStorage", CRIA_DTYPE_U8 },
  /* bool is one byte, 0 or 1: GPT-2 checkpoints hold attention masks so. */
  { "BoolStorage", CRIA_DTYPE_U8 },
};

static gboolean
push_global (Unpickler *u, const char *module, const char *name)
{
  Value *g = new_value (V_GLOBAL);
  if (strcmp (module, "collections") == 0 && strcmp (name, "OrderedDict") == 0)
    g->i = G_ORDERED_DICT;
  else if (strcmp (module, "torch._utils") == 0 && strcmp (name, "_rebuild_tensor_v2") == 0)
    g->i = G_REBUILD_TENSOR;
  else if (strcmp (module, "torch._utils") == 0 && strcmp (name, "_rebuild_parameter") == 0)
    g->i = G_REBUILD_PARAMETER;
  else {
    g->i = -1;
    for (guint i = 0; module && strcmp (module, "torch") == 0 && i < G_N_ELEMENTS (storages); i++)
      if (strcmp (name, storages[i].name) == 0)
        g->i = G_STORAGE, g->dtype = storages[i].dtype;
  }
  if (g->i < 0) {
    unref (g);
    return fail (u, "global '%s.%s' is not allowed (only tensors are rebuilt)", module, name);
  }
  return push (u, g);
}

/* GLOBAL: "module\nname\n". */
static gboolean
op_global (Unpickler *u)
{
  const guint8 *nl1 = memchr (u->p, '\n', u->end - u->p);
  const guint8 *nl2 = nl1 ? memchr (nl1 + 1, '\n', u->end - nl1 - 1) : NULL;
  if (!nl2)
    return fail (u, "truncated GLOBAL");
  g_autofree char *module = g_strndup ((const char *) u->p, nl1 - u->p);
  g_autofree char *name = g_strndup ((const char *) nl1 + 1, nl2 - nl1 - 1);
  u->p = nl2 + 1;
  return push_global (u, module, name);
}

static gboolean
get_int (Value *v, gint64 *out)
{
  if (!v || (v->kind != V_INT && v->kind != V_BOOL))
    return FALSE;
  *out = v->i;
  return TRUE;
}

/* ('storage', torch.XStorage, key, location, numel) */
static gboolean
op_persid (Unpickler *u)
{
  g_autoptr (GPtrArray) hold = g_ptr_array_new_with_free_func (unref);
  Value *pid = pop (u);
  if (!pid)
    return FALSE;
  g_ptr_array_add (hold, pid);
  Value **it = pid->kind == V_TUPLE ? (Value **) pid->items->pdata : NULL;
  gint64 numel;
  if (!it || pid->items->len != 5 || it[0]->kind != V_STR || strcmp (it[0]->s, "storage") != 0 ||
      it[1]->kind != V_GLOBAL || it[1]->i != G_STORAGE || it[2]->kind != V_STR || !get_int (it[4], &numel) || numel < 0)
    return fail (u, "a persistent id that is not ('storage', torch.<T>Storage, key, location, numel)");
  if (!*it[2]->s || strchr (it[2]->s, '/') || strstr (it[2]->s, ".."))
    return fail (u, "storage key '%s' is not a plain name", it[2]->s);
  Value *s = new_value (V_STORAGE);
  s->dtype = it[1]->dtype;
  s->s = g_strdup (it[2]->s);
  s->i = numel;
  return push (u, s);
}

static gboolean
int_tuple (Value *v, guint *n, gint64 *out)
{
  if (!v || v->kind != V_TUPLE || v->items->len > CRIA_WEIGHT_MAX_DIMS)
    return FALSE;
  *n = v->items->len;
  for (guint i = 0; i < *n; i++)
    if (!get_int (v->items->pdata[i], &out[i]) || out[i] < 0)
      return FALSE;
  return TRUE;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) */
static gboolean
rebuild_tensor (Unpickler *u, Value *args)
{
  Value **a = (Value **) args->items->pdata;
  CriaTorchEntry e = { 0 };
  guint n_stride;
  if (args->items->len < 6 || a[0]->kind != V_STORAGE || !get_int (a[1], &e.storage_offset) || e.storage_offset < 0 ||
      !int_tuple (a[2], &e.n_dims, e.shape) || !int_tuple (a[3], &n_stride, e.stride) || n_stride != e.n_dims)
    return fail (u, "_rebuild_tensor_v2 with arguments other than (storage, offset, size, stride, ...)");
  Value *t = new_value (V_TENSOR);
  e.dtype = a[0]->dtype;
  e.storage_key = g_strdup (a[0]->s);
  e.storage_numel = a[0]->i;
  t->tensor = g_memdup2 (&e, sizeof e);
  return push (u, t);
}

static gboolean
op_reduce (Unpickler *u)
{
  Value *args = pop (u);
  Value *fn = args ? pop (u) : NULL;
  gboolean ok;
  if (!fn)
    ok = FALSE;
  else if (fn->kind != V_GLOBAL || args->kind != V_TUPLE)
    ok = fail (u, "REDUCE of something other than an allowed global");
  else if (fn->i == G_ORDERED_DICT)
    ok = args->items->len == 0 ? push (u, new_value (V_DICT)) : fail (u, "OrderedDict with arguments");
  else if (fn->i == G_REBUILD_TENSOR)
    ok = rebuild_tensor (u, args);
  else if (fn->i == G_REBUILD_PARAMETER)
    ok = args->items->len >= 1 && ((Value *) args->items->pdata[0])->kind == V_TENSOR
             ? push (u, ref (args->items->pdata[0]))
             : fail (u, "_rebuild_parameter of something other than a tensor");
  else
    ok = fail (u, "REDUCE of a storage type");
  unref (fn);
  unref (args);
  return ok;
}

static gboolean
set_items (Unpickler *u, Value *dict, Value *pairs)
{
  if (dict->kind != V_DICT)
    return fail (u, "SETITEM(S) on something other than a dict");
  if (pairs->items->len % 2)
    return fail (u, "SETITEMS with an odd number of values");
  for (guint i = 0; i < pairs->items->len; i++)
    adopt (dict, ref (pairs->items->pdata[i]));
  return dict->depth <= MAX_DEPTH || fail (u, "nested deeper than %d", MAX_DEPTH);
}

static gboolean
op_setitems (Unpickler *u, gboolean many)
{
  Value *pairs;
  if (many) {
    pairs = pop_to_mark (u, V_TUPLE);
  } else {
    if (!push_tuple (u, 2))
      return FALSE;
    pairs = pop (u);
  }
  Value *dict = pairs ? top (u) : NULL;
  gboolean ok = dict && set_items (u, dict, pairs);
  unref (pairs);
  return ok;
}

static gboolean
op_appends (Unpickler *u, gboolean many)
{
  Value *items = many ? pop_to_mark (u, V_TUPLE) : (push_tuple (u, 1) ? pop (u) : NULL);
  Value *list = items ? top (u) : NULL;
  gboolean ok = list && list->kind == V_LIST;
  if (items && list && !ok)
    fail (u, "APPEND(S) on something other than a list");
  for (guint i = 0; ok && i < items->items->len; i++)
    adopt (list, ref (items->items->pdata[i]));
  ok = ok && (list->depth <= MAX_DEPTH || fail (u, "nested deeper than %d", MAX_DEPTH));
  unref (items);
  return ok;
}

static gboolean
op_memo (Unpickler *u, guint64 index)
{
  Value *v = top (u);
  if (!v)
    return FALSE;
  g_hash_table_insert (u->memo, GSIZE_TO_POINTER ((gsize) index + 1), ref (v));
  return TRUE;
}

static gboolean
op_get (Unpickler *u, guint64 index)
{
  Value *v = g_hash_table_lookup (u->memo, GSIZE_TO_POINTER ((gsize) index + 1));
  if (!v)
    return fail (u, "memo %" G_GUINT64_FORMAT " was never stored", index);
  return push (u, ref (v));
}

static gboolean
push_str (Unpickler *u, gsize n)
{
  if (!need (u, n))
    return FALSE;
  if (!g_utf8_validate_len ((const char *) u->p, n, NULL) || memchr (u->p, 0, n))
    return fail (u, "a string that is not UTF-8");
  Value *s = new_value (V_STR);
  s->s = g_strndup ((const char *) u->p, n);
  u->p += n;
  return push (u, s);
}

static gboolean
push_int (Unpickler *u, gint64 i)
{
  Value *v = new_value (V_INT);
  v->i = i;
  return push (u, v);
}

/* LONG1: a little-endian two's complement integer of n bytes. */
static gboolean
op_long1 (Unpickler *u)
{
  if (!need (u, 1))
    return FALSE;
  guint n = *u->p++;
  if (n > 8 || !need (u, n))
    return fail (u, "LONG1 of %u bytes does not fit 64 bits", n);
  guint64 v = read_le (u, n);
  if (n && n < 8 && (v >> (8 * n - 1)) & 1)
    v |= ~(guint64) 0 << (8 * n);
  return push_int (u, (gint64) v);
}

/* One opcode; FALSE with *error on failure, *stop at STOP. */
static gboolean
step (Unpickler *u, gboolean *stop)
{
  guint8 op = *u->p++;
  Value *v;
  switch (op) {
    case 0x80: /* PROTO */
      if (!need (u, 1))
        return FALSE;
      if (*u->p > 5)
        return fail (u, "pickle protocol %u is not supported", *u->p);
      u->p++;
      return TRUE;
    case 0x95: /* FRAME: a length hint */
      if (!need (u, 8))
        return FALSE;
      u->p += 8;
      return TRUE;
    case '.': /* STOP */
      *stop = TRUE;
      return TRUE;
    case '(': /* MARK */
      return push (u, new_value (V_MARK));
    case '}': /* EMPTY_DICT */
      return push (u, new_value (V_DICT));
    case ']': /* EMPTY_LIST */
      return push (u, new_value (V_LIST));
    case ')': /* EMPTY_TUPLE */
      return push (u, new_value (V_TUPLE));
    case 'N': /* NONE */
      return push (u, new_value (V_NONE));
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
      v = new_value (V_BOOL);
      v->i = op == 0x88;
      return push (u, v);
    case 'J': /* BININT */
      return need (u, 4) && push_int (u, (gint32) (guint32) read_le (u, 4));
    case 'K': /* BININT1 */
      return need (u, 1) && push_int (u, (gint64) read_le (u, 1));
    case 'M': /* BININT2 */
      return need (u, 2) && push_int (u, (gint64) read_le (u, 2));
    case 0x8a: /* LONG1 */
      return op_long1 (u);
    case 'G': /* BINFLOAT, big-endian */
      if (!need (u, 8))
        return FALSE;
      v = new_value (V_FLOAT);
      {
        guint64 bits = 0;
        for (int i = 0; i < 8; i++)
          bits = (bits << 8) | u->p[i];
        u->p += 8;
        memcpy (&v->f, &bits, 8);
      }
      return push (u, v);
    case 'X': /* BINUNICODE */
      return need (u, 4) && push_str (u, read_le (u, 4));
    case 0x8c: /* SHORT_BINUNICODE */
      return need (u, 1) && push_str (u, read_le (u, 1));
    case 'c': /* GLOBAL */
      return op_global (u);
    case 0x93: /* STACK_GLOBAL */
    {
      Value *name = pop (u), *module = name ? pop (u) : NULL;
      gboolean ok = module && module->kind == V_STR && name->kind == V_STR
                        ? push_global (u, module->s, name->s)
                        : (module ? fail (u, "STACK_GLOBAL of something other than two strings") : FALSE);
      unref (name);
      unref (module);
      return ok;
    }
    case 'Q': /* BINPERSID */
      return op_persid (u);
    case 'R': /* REDUCE */
      return op_reduce (u);
    case 'b': /* BUILD: OrderedDict's _metadata attribute; only dicts accept it */
      v = pop (u);
      if (!v)
        return FALSE;
      unref (v);
      v = top (u);
      return v && (v->kind == V_DICT || fail (u, "BUILD of something other than a dict"));
    case 't': /* TUPLE */
      v = pop_to_mark (u, V_TUPLE);
      if (v && v->depth > MAX_DEPTH) {
        unref (v);
        return fail (u, "nested deeper than %d", MAX_DEPTH);
      }
      return v && push (u, v);
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: /* TUPLE3 */
      return push_tuple (u, op - 0x84);
    case 'l': /* LIST */
      v = pop_to_mark (u, V_LIST);
      return v && push (u, v);
    case 'a': /* APPEND */
    case 'e': /* APPENDS */
      return op_appends (u, op == 'e');
    case 's': /* SETITEM */
    case 'u': /* SETITEMS */
      return op_setitems (u, op == 'u');
    case 'q': /* BINPUT */
      return need (u, 1) && op_memo (u, read_le (u, 1));
    case 'r': /* LONG_BINPUT */
      return need (u, 4) && op_memo (u, read_le (u, 4));
    case 0x94: /* MEMOIZE */
      return op_memo (u, g_hash_table_size (u->memo));
    case 'h': /* BINGET */
      return need (u, 1) && op_get (u, read_le (u, 1));
    case 'j': /* LONG_BINGET */
      return need (u, 4) && op_get (u, read_le (u, 4));
    case '0': /* POP */
      v = pop (u);
      unref (v);
      return v != NULL;
    default:
      u->p--;
      if (op >= 0x20 && op < 0x7f)
        return fail (u, "opcode 0x%02x ('%c') is not allowed (only tensors are rebuilt)", op, op);
      return fail (u, "opcode 0x%02x is not allowed (only tensors are rebuilt)", op);
  }
}

static void
clear_entry (gpointer p)
{
  CriaTorchEntry *e = p;
  g_free (e->name);
  g_free (e->storage_key);
}

/* The state dict at the top of the stack, as entries. */
static GArray *
collect (Unpickler *u, Value *root)
{
  if (root->kind != V_DICT) {
    fail (u, "the pickle is not a dict of tensors");
    return NULL;
  }
  GArray *out = g_array_new (FALSE, TRUE, sizeof (CriaTorchEntry));
  g_array_set_clear_func (out, clear_entry);
  for (guint i = 0; i + 1 < root->items->len; i += 2) {
    Value *k = root->items->pdata[i], *v = root->items->pdata[i + 1];
    if (k->kind != V_STR || v->kind != V_TENSOR) {
      g_array_unref (out);
      fail (u, "entry %u of the state dict is not a name and a tensor", i / 2);
      return NULL;
    }
    CriaTorchEntry e = *v->tensor;
    e.name = g_strdup (k->s);
    e.storage_key = g_strdup (e.storage_key);
    g_array_append_val (out, e);
  }
  return out;
}

GArray *
cria_torch_unpickle (const guint8 *pickle, gsize len, const char *file, GError **error)
{
  g_return_val_if_fail (pickle != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  Unpickler u = { file,
                  pickle,
                  pickle + len,
                  pickle,
                  g_ptr_array_new_with_free_func (unref),
                  g_hash_table_new_full (NULL, NULL, NULL, unref),
                  error };
  gboolean stop = FALSE, ok = TRUE;
  while (ok && !stop) {
    if (u.p >= u.end) {
      ok = fail (&u, "truncated (no STOP opcode)");
      break;
    }
    ok = step (&u, &stop);
  }
  GArray *out = NULL;
  if (ok && u.stack->len != 1)
    fail (&u, "the pickle leaves %u values on the stack, not one", u.stack->len);
  else if (ok)
    out = collect (&u, u.stack->pdata[0]);
  g_ptr_array_unref (u.stack);
  g_hash_table_unref (u.memo);
  mf_one_line (error);
  return out;
}
