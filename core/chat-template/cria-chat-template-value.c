/* cria-chat-template-value.c: the values chat templates compute with, in an
 * arena, and how they print: str() and repr() as Python writes them, and
 * JSON as json.dumps(ensure_ascii=False) writes it (what transformers'
 * tojson filter does). */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>

#include "cria-chat-template-private.h"

struct _CtArena {
  GSList *blocks;
  char *cur;
  gsize left, used, limit;
};

CtArena *
ct_arena_new (gsize limit)
{
  CtArena *a = g_new0 (CtArena, 1);
  a->limit = limit;
  return a;
}

void
ct_arena_free (CtArena *a)
{
  if (!a)
    return;
  g_slist_free_full (a->blocks, g_free);
  g_free (a);
}

gpointer
ct_arena_alloc (CtArena *a, gsize size)
{
  size = (size + 15) & ~(gsize) 15;
  a->used += size;
  if (size > 4096) {
    char *big = g_malloc0 (size);
    a->blocks = g_slist_prepend (a->blocks, big);
    return big;
  }
  if (size > a->left) {
    a->cur = g_malloc0 (65536);
    a->blocks = g_slist_prepend (a->blocks, a->cur);
    a->left = 65536;
  }
  char *p = a->cur;
  a->cur += size;
  a->left -= size;
  return p;
}

gboolean
ct_arena_exhausted (CtArena *a)
{
  return a->limit && a->used > a->limit;
}

gpointer
ct_fail (CtContext *ctx, const CtNode *at, const char *fmt, ...)
{
  if (ctx->error)
    return NULL;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (at)
    g_set_error (&ctx->error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s:%u:%u: %s", ctx->origin, at->line, at->column, msg);
  else
    g_set_error (&ctx->error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: %s", ctx->origin, msg);
  return NULL;
}

/* ---- values ---------------------------------------------------------------- */

CtValue *
ct_value_new (CtContext *ctx, CtType type)
{
  CtValue *v = ct_arena_alloc (ctx->arena, sizeof (CtValue));
  v->type = type;
  return v;
}

/* Small integers and booleans are shared: loops make many of them. */
CtValue *
ct_int (CtContext *ctx, gint64 i)
{
  if (i >= 0 && i < (gint64) G_N_ELEMENTS (ctx->small_ints) && ctx->small_ints[i])
    return ctx->small_ints[i];
  CtValue *v = ct_value_new (ctx, CT_INT);
  v->i = i;
  if (i >= 0 && i < (gint64) G_N_ELEMENTS (ctx->small_ints))
    ctx->small_ints[i] = v;
  return v;
}

CtValue *
ct_bool (CtContext *ctx, gboolean b)
{
  if (!ctx->bools[!!b]) {
    ctx->bools[!!b] = ct_value_new (ctx, CT_BOOL);
    ctx->bools[!!b]->b = !!b;
  }
  return ctx->bools[!!b];
}

CtValue *
ct_string (CtContext *ctx, const char *s, gssize len)
{
  gsize n = len < 0 ? strlen (s) : (gsize) len;
  CtValue *v = ct_value_new (ctx, CT_STRING);
  char *copy = ct_arena_alloc (ctx->arena, n + 1);
  memcpy (copy, s, n);
  copy[n] = 0;
  v->str.s = copy;
  v->str.len = n;
  return v;
}

CtValue *
ct_string_take (CtContext *ctx, GString *s)
{
  CtValue *v = ct_string (ctx, s->str, s->len);
  g_string_free (s, TRUE);
  return v;
}

CtValue *
ct_list_new (CtContext *ctx, gsize n)
{
  CtValue *v = ct_value_new (ctx, CT_LIST);
  v->list.cap = MAX (n, 4);
  v->list.items = ct_arena_alloc (ctx->arena, v->list.cap * sizeof (CtValue *));
  return v;
}

static void
grow (CtContext *ctx, CtValue ***items, gsize *cap, gsize n)
{
  if (n < *cap)
    return;
  CtValue **bigger = ct_arena_alloc (ctx->arena, *cap * 2 * sizeof (CtValue *));
  memcpy (bigger, *items, *cap * sizeof (CtValue *));
  *items = bigger;
  *cap *= 2;
}

void
ct_list_append (CtContext *ctx, CtValue *list, CtValue *item)
{
  grow (ctx, &list->list.items, &list->list.cap, list->list.n);
  list->list.items[list->list.n++] = item;
}

CtValue *
ct_dict_get (const CtValue *d, const char *key)
{
  for (gsize i = 0; i < d->dict.n; i++)
    if (!strcmp (d->dict.keys[i]->str.s, key))
      return d->dict.values[i];
  return NULL;
}

void
ct_dict_set (CtContext *ctx, CtValue *d, const char *key, CtValue *value)
{
  for (gsize i = 0; i < d->dict.n; i++)
    if (!strcmp (d->dict.keys[i]->str.s, key)) {
      d->dict.values[i] = value;
      return;
    }
  if (!d->dict.cap) {
    d->dict.cap = 8;
    d->dict.keys = ct_arena_alloc (ctx->arena, 8 * sizeof (CtValue *));
    d->dict.values = ct_arena_alloc (ctx->arena, 8 * sizeof (CtValue *));
  } else if (d->dict.n == d->dict.cap) {
    gsize cap = d->dict.cap;
    grow (ctx, &d->dict.keys, &cap, d->dict.n);
    grow (ctx, &d->dict.values, &d->dict.cap, d->dict.n);
  }
  d->dict.keys[d->dict.n] = ct_string (ctx, key, -1);
  d->dict.values[d->dict.n++] = value;
}

CtValue *
ct_from_json (CtContext *ctx, JsonNode *node)
{
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return ct_value_new (ctx, CT_NONE);
  if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    guint n = json_array_get_length (a);
    CtValue *v = ct_list_new (ctx, n);
    for (guint i = 0; i < n; i++)
      ct_list_append (ctx, v, ct_from_json (ctx, json_array_get_element (a, i)));
    return v;
  }
  if (JSON_NODE_HOLDS_OBJECT (node)) {
    JsonObject *o = json_node_get_object (node);
    CtValue *v = ct_value_new (ctx, CT_DICT);
    JsonObjectIter it;
    const char *key;
    JsonNode *member;
    json_object_iter_init_ordered (&it, o);
    while (json_object_iter_next_ordered (&it, &key, &member))
      ct_dict_set (ctx, v, key, ct_from_json (ctx, member));
    return v;
  }
  switch (json_node_get_value_type (node)) {
    case G_TYPE_BOOLEAN:
      return ct_bool (ctx, json_node_get_boolean (node));
    case G_TYPE_INT64:
      return ct_int (ctx, json_node_get_int (node));
    case G_TYPE_DOUBLE: {
      CtValue *v = ct_value_new (ctx, CT_FLOAT);
      v->f = json_node_get_double (node);
      return v;
    }
    default:
      return ct_string (ctx, json_node_get_string (node) ? json_node_get_string (node) : "", -1);
  }
}

gboolean
ct_truthy (const CtValue *v)
{
  switch (v->type) {
    case CT_UNDEFINED:
    case CT_NONE:
      return FALSE;
    case CT_BOOL:
      return v->b;
    case CT_INT:
      return v->i != 0;
    case CT_FLOAT:
      return v->f != 0;
    case CT_STRING:
      return v->str.len > 0;
    case CT_LIST:
      return v->list.n > 0;
    case CT_DICT:
      return v->dict.n > 0;
    default:
      return TRUE;
  }
}

gboolean
ct_equal (const CtValue *a, const CtValue *b)
{
  if (ct_is_number (a) && ct_is_number (b)) {
    if (a->type != CT_FLOAT && b->type != CT_FLOAT)
      return (a->type == CT_INT ? a->i : a->b) == (b->type == CT_INT ? b->i : b->b);
    return ct_as_double (a) == ct_as_double (b);
  }
  if (a->type != b->type)
    return FALSE;
  switch (a->type) {
    case CT_STRING:
      return a->str.len == b->str.len && !memcmp (a->str.s, b->str.s, a->str.len);
    case CT_LIST:
      if (a->list.n != b->list.n)
        return FALSE;
      for (gsize i = 0; i < a->list.n; i++)
        if (!ct_equal (a->list.items[i], b->list.items[i]))
          return FALSE;
      return TRUE;
    case CT_DICT:
      if (a->dict.n != b->dict.n)
        return FALSE;
      for (gsize i = 0; i < a->dict.n; i++) {
        CtValue *other = ct_dict_get (b, a->dict.keys[i]->str.s);
        if (!other || !ct_equal (a->dict.values[i], other))
          return FALSE;
      }
      return TRUE;
    case CT_NAMESPACE:
      return a == b;
    default:
      return TRUE; /* undefined == undefined, none == none */
  }
}

const char *
ct_type_name (const CtValue *v)
{
  static const char *const names[] = { "undefined", "none", "boolean", "integer",  "float",
                                       "string",    "list", "dict",    "namespace" };
  return names[v->type];
}

/* Python's repr() of a float: the shortest digits that read back the same. */
static void
append_float (GString *out, double f)
{
  if (isnan (f) || isinf (f)) {
    g_string_append (out, isnan (f) ? "nan" : f > 0 ? "inf" : "-inf");
    return;
  }
  char buf[G_ASCII_DTOSTR_BUF_SIZE], fmt[16];
  for (int p = 0; p < 17; p++) {
    g_snprintf (fmt, sizeof fmt, "%%.%de", p);
    g_ascii_formatd (buf, sizeof buf, fmt, f);
    if (g_ascii_strtod (buf, NULL) == f)
      break;
  }
  char digits[32];
  gsize nd = 0;
  const char *p = buf;
  if (*p == '-')
    g_string_append_c (out, *p++);
  for (; *p && *p != 'e'; p++)
    if (g_ascii_isdigit (*p))
      digits[nd++] = *p;
  int exp = atoi (p + 1);
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  if (exp >= -5 && exp < 16) {
    if (exp < 0) {
      g_string_append (out, "0.");
      for (int k = -1; k > exp; k--)
        g_string_append_c (out, '0');
      g_string_append_len (out, digits, nd);
    } else {
      for (int k = 0; k <= exp; k++)
        g_string_append_c (out, (gsize) k < nd ? digits[k] : '0');
      g_string_append_c (out, '.');
      if ((gsize) exp + 1 < nd)
        g_string_append_len (out, digits + exp + 1, nd - exp - 1);
      else
        g_string_append_c (out, '0');
    }
  } else {
    g_string_append_c (out, digits[0]);
    if (nd > 1) {
      g_string_append_c (out, '.');
      g_string_append_len (out, digits + 1, nd - 1);
    }
    g_string_append_printf (out, "e%c%02d", exp < 0 ? '-' : '+', ABS (exp));
  }
}

static void
append_repr_string (GString *out, const CtValue *v)
{
  char q = strchr (v->str.s, '\'') && !strchr (v->str.s, '"') ? '"' : '\'';
  g_string_append_c (out, q);
  for (const char *p = v->str.s; *p; p++) {
    guchar c = *p;
    if (c == '\\' || c == (guchar) q)
      g_string_append_c (out, '\\'), g_string_append_c (out, c);
    else if (c == '\n')
      g_string_append (out, "\\n");
    else if (c == '\r')
      g_string_append (out, "\\r");
    else if (c == '\t')
      g_string_append (out, "\\t");
    else if (c < 0x20 || c == 0x7f)
      g_string_append_printf (out, "\\x%02x", c);
    else
      g_string_append_c (out, c);
  }
  g_string_append_c (out, q);
}

static void
append_repr (GString *out, const CtValue *v)
{
  if (v->type == CT_STRING) {
    append_repr_string (out, v);
  } else if (v->type == CT_LIST) {
    g_string_append_c (out, '[');
    for (gsize i = 0; i < v->list.n; i++) {
      if (i)
        g_string_append (out, ", ");
      append_repr (out, v->list.items[i]);
    }
    g_string_append_c (out, ']');
  } else if (v->type == CT_DICT || v->type == CT_NAMESPACE) {
    g_string_append (out, v->type == CT_DICT ? "{" : "<Namespace {");
    for (gsize i = 0; i < v->dict.n; i++) {
      if (i)
        g_string_append (out, ", ");
      append_repr_string (out, v->dict.keys[i]);
      g_string_append (out, ": ");
      append_repr (out, v->dict.values[i]);
    }
    g_string_append (out, v->type == CT_DICT ? "}" : "}>");
  } else {
    ct_append_str (out, v);
  }
}

void
ct_append_str (GString *out, const CtValue *v)
{
  switch (v->type) {
    case CT_UNDEFINED:
      break;
    case CT_NONE:
      g_string_append (out, "None");
      break;
    case CT_BOOL:
      g_string_append (out, v->b ? "True" : "False");
      break;
    case CT_INT:
      g_string_append_printf (out, "%" G_GINT64_FORMAT, v->i);
      break;
    case CT_FLOAT:
      append_float (out, v->f);
      break;
    case CT_STRING:
      g_string_append_len (out, v->str.s, v->str.len);
      break;
    default:
      append_repr (out, v);
      break;
  }
}

static void
append_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const char *p = s; *p; p++) {
    guchar c = *p;
    switch (c) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      default:
        if (c < 0x20)
          g_string_append_printf (out, "\\u%04x", c);
        else
          g_string_append_c (out, c);
    }
  }
  g_string_append_c (out, '"');
}

static void
json_break (GString *out, int indent, int depth)
{
  if (indent < 0)
    return;
  g_string_append_c (out, '\n');
  for (int k = 0; k < indent * depth; k++)
    g_string_append_c (out, ' ');
}

static int
compare_keys (gconstpointer a, gconstpointer b, gpointer data)
{
  const CtValue *d = data;
  return strcmp (d->dict.keys[*(const gsize *) a]->str.s, d->dict.keys[*(const gsize *) b]->str.s);
}

gboolean
ct_append_json (GString *out, const CtValue *v, int indent, gboolean sort_keys, int depth)
{
  if (depth > 200 || out->len > CT_MAX_OUTPUT)
    return FALSE;
  const char *sep = indent < 0 ? ", " : ",";
  if (v->type == CT_STRING) {
    append_json_string (out, v->str.s);
  } else if (v->type == CT_BOOL) {
    g_string_append (out, v->b ? "true" : "false");
  } else if (v->type == CT_NONE || v->type == CT_UNDEFINED) {
    g_string_append (out, "null");
  } else if (v->type == CT_FLOAT && (isnan (v->f) || isinf (v->f))) {
    g_string_append (out, isnan (v->f) ? "NaN" : v->f > 0 ? "Infinity" : "-Infinity");
  } else if (v->type == CT_LIST) {
    g_string_append_c (out, '[');
    for (gsize i = 0; i < v->list.n; i++) {
      if (i)
        g_string_append (out, sep);
      json_break (out, indent, depth + 1);
      if (!ct_append_json (out, v->list.items[i], indent, sort_keys, depth + 1))
        return FALSE;
    }
    if (v->list.n)
      json_break (out, indent, depth);
    g_string_append_c (out, ']');
  } else if (v->type == CT_DICT || v->type == CT_NAMESPACE) {
    g_autofree gsize *order = g_new (gsize, v->dict.n + 1);
    for (gsize i = 0; i < v->dict.n; i++)
      order[i] = i;
    if (sort_keys)
      g_qsort_with_data (order, (gint) v->dict.n, sizeof (gsize), compare_keys, (gpointer) v);
    g_string_append_c (out, '{');
    for (gsize i = 0; i < v->dict.n; i++) {
      if (i)
        g_string_append (out, sep);
      json_break (out, indent, depth + 1);
      append_json_string (out, v->dict.keys[order[i]]->str.s);
      g_string_append (out, ": ");
      if (!ct_append_json (out, v->dict.values[order[i]], indent, sort_keys, depth + 1))
        return FALSE;
    }
    if (v->dict.n)
      json_break (out, indent, depth);
    g_string_append_c (out, '}');
  } else {
    ct_append_str (out, v);
  }
  return TRUE;
}
