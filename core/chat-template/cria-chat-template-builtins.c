/* cria-chat-template-builtins.c: the filters, tests, global functions and
 * methods chat templates may call (cria-chat-template(5) lists them). Each
 * behaves as its Jinja2 or Python namesake, on the values cria holds. */
#include "config.h"

#include <string.h>
#include <time.h>

#include "cria-chat-template-private.h"

const char *const ct_filters[] = { "trim",       "length",     "count",   "tojson", "upper", "lower",      "default",
                                   "d",          "items",      "safe",    "string", "join",  "replace",    "first",
                                   "last",       "list",       "reverse", "int",    "abs",   "capitalize", "title",
                                   "selectattr", "rejectattr", "map",     NULL };
const char *const ct_tests[] = { "defined",  "undefined", "none",    "string", "mapping", "number",
                                 "integer",  "float",     "boolean", "true",   "false",   "sequence",
                                 "iterable", "odd",       "even",    "eq",     "equalto", NULL };
const char *const ct_functions[] = { "namespace", "raise_exception", "strftime_now", "range", "dict", NULL };
const char *const ct_methods[] = { "startswith", "endswith", "split",   "strip", "lstrip",     "rstrip",
                                   "upper",      "lower",    "replace", "title", "capitalize", "join",
                                   "items",      "keys",     "values",  "get",   NULL };

/* Argument `pos` given positionally, or by `name` among the keywords. */
static CtValue *
arg (CtValue **args, guint n, GPtrArray *kwargs, guint pos, const char *name)
{
  guint n_kw = kwargs ? kwargs->len : 0, n_pos = n - n_kw;
  if (pos < n_pos)
    return args[pos];
  for (guint k = 0; k < n_kw; k++)
    if (!strcmp (g_ptr_array_index (kwargs, k), name))
      return args[n_pos + k];
  return NULL;
}

static gboolean
need_string (CtContext *ctx, const CtNode *at, const char *what, const CtValue *v)
{
  if (v && v->type == CT_STRING)
    return TRUE;
  ct_fail (ctx, at, "%s expects a string, not %s", what, v ? ct_type_name (v) : "nothing");
  return FALSE;
}

static gboolean
need_args (CtContext *ctx, const CtNode *at, const char *what, guint n, guint min, guint max)
{
  if (n >= min && n <= max)
    return TRUE;
  ct_fail (ctx, at, "%s takes %u to %u arguments, %u given", what, min, max, n);
  return FALSE;
}

/* Python's str.isspace() for one character. */
static gboolean
py_space (gunichar c)
{
  return g_unichar_isspace (c) || (c >= 0x1c && c <= 0x1f) || c == 0x85;
}

static gboolean
in_chars (gunichar c, const CtValue *chars)
{
  if (!chars || chars->type == CT_NONE)
    return py_space (c);
  for (const char *p = chars->str.s; *p; p = g_utf8_next_char (p))
    if (g_utf8_get_char (p) == c)
      return TRUE;
  return FALSE;
}

static CtValue *
strip (CtContext *ctx, const CtValue *s, const CtValue *chars, gboolean left, gboolean right)
{
  const char *b = s->str.s, *e = s->str.s + s->str.len;
  while (left && b < e && in_chars (g_utf8_get_char (b), chars))
    b = g_utf8_next_char (b);
  while (right && e > b) {
    const char *prev = g_utf8_prev_char (e);
    if (!in_chars (g_utf8_get_char (prev), chars))
      break;
    e = prev;
  }
  return ct_string (ctx, b, e - b);
}

static CtValue *
split (CtContext *ctx, const CtNode *at, const CtValue *s, const CtValue *sep, const CtValue *maxv)
{
  gint64 max = maxv && maxv->type == CT_INT ? maxv->i : -1;
  CtValue *l = ct_list_new (ctx, 0);
  const char *p = s->str.s, *end = s->str.s + s->str.len;
  if (sep && sep->type != CT_NONE) {
    if (!need_string (ctx, at, "split()", sep))
      return NULL;
    if (!sep->str.len)
      return ct_fail (ctx, at, "split(): empty separator");
    const char *hit;
    while ((max < 0 || (gint64) l->list.n < max) && (hit = strstr (p, sep->str.s))) {
      ct_list_append (ctx, l, ct_string (ctx, p, hit - p));
      p = hit + sep->str.len;
    }
    ct_list_append (ctx, l, ct_string (ctx, p, end - p));
    return l;
  }
  for (;;) {
    while (p < end && py_space (g_utf8_get_char (p)))
      p = g_utf8_next_char (p);
    if (p >= end)
      return l;
    const char *w = p;
    if (max >= 0 && (gint64) l->list.n >= max) {
      const char *e = end;
      while (e > w && py_space (g_utf8_get_char (g_utf8_prev_char (e))))
        e = g_utf8_prev_char (e);
      ct_list_append (ctx, l, ct_string (ctx, w, e - w));
      return l;
    }
    while (p < end && !py_space (g_utf8_get_char (p)))
      p = g_utf8_next_char (p);
    ct_list_append (ctx, l, ct_string (ctx, w, p - w));
  }
}

static CtValue *
replace (CtContext *ctx, const CtNode *at, const CtValue *s, const CtValue *old, const CtValue *new,
         const CtValue *countv)
{
  if (!need_string (ctx, at, "replace()", old) || !need_string (ctx, at, "replace()", new))
    return NULL;
  gint64 count = countv && countv->type == CT_INT ? countv->i : -1;
  GString *out = g_string_new (NULL);
  const char *p = s->str.s, *end = s->str.s + s->str.len;
  for (gint64 done = 0; p <= end && (count < 0 || done < count); done++) {
    const char *hit = old->str.len ? strstr (p, old->str.s) : p;
    if (!hit)
      break;
    g_string_append_len (out, p, hit - p);
    g_string_append_len (out, new->str.s, new->str.len);
    if (out->len > CT_MAX_OUTPUT) {
      g_string_free (out, TRUE);
      return ct_fail (ctx, at, "replace(): result too large");
    }
    if (old->str.len) {
      p = hit + old->str.len;
    } else { /* an empty pattern matches between characters */
      if (p == end) {
        p++;
        break;
      }
      const char *nx = g_utf8_next_char (p);
      g_string_append_len (out, p, nx - p);
      p = nx;
    }
  }
  if (p < end)
    g_string_append_len (out, p, end - p);
  return ct_string_take (ctx, out);
}

static CtValue *
change_case (CtContext *ctx, const CtValue *s, const char *how)
{
  if (!strcmp (how, "upper") || !strcmp (how, "lower")) {
    g_autofree char *r = how[0] == 'u' ? g_utf8_strup (s->str.s, -1) : g_utf8_strdown (s->str.s, -1);
    return ct_string (ctx, r, -1);
  }
  /* capitalize: first character up, the rest down; title: each word so */
  GString *out = g_string_new (NULL);
  gboolean word_start = TRUE;
  for (const char *p = s->str.s; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    g_string_append_unichar (out, word_start ? g_unichar_totitle (c) : g_unichar_tolower (c));
    word_start = how[0] == 't' ? !g_unichar_isalpha (c) : FALSE;
  }
  return ct_string_take (ctx, out);
}

static gboolean
has_affix (const CtValue *s, const CtValue *affix, gboolean prefix)
{
  if (affix->type == CT_LIST) {
    for (gsize i = 0; i < affix->list.n; i++)
      if (has_affix (s, affix->list.items[i], prefix))
        return TRUE;
    return FALSE;
  }
  if (affix->type != CT_STRING || affix->str.len > s->str.len)
    return FALSE;
  return !memcmp (s->str.s + (prefix ? 0 : s->str.len - affix->str.len), affix->str.s, affix->str.len);
}

static CtValue *
items_of (CtContext *ctx, const CtNode *at, const CtValue *d, const char *what)
{
  CtValue *l = ct_list_new (ctx, d->type == CT_DICT ? d->dict.n : 0);
  if (d->type == CT_UNDEFINED)
    return l;
  if (d->type != CT_DICT)
    return ct_fail (ctx, at, "%s expects a dict, not %s", what, ct_type_name (d));
  for (gsize i = 0; i < d->dict.n; i++) {
    CtValue *pair = ct_list_new (ctx, 2);
    ct_list_append (ctx, pair, d->dict.keys[i]);
    ct_list_append (ctx, pair, d->dict.values[i]);
    ct_list_append (ctx, l,
                    !strcmp (what, "keys()")     ? d->dict.keys[i]
                    : !strcmp (what, "values()") ? d->dict.values[i]
                                                 : pair);
  }
  return l;
}

static CtValue *
as_string (CtContext *ctx, const CtValue *v)
{
  GString *s = g_string_new (NULL);
  ct_append_str (s, v);
  return ct_string_take (ctx, s);
}

static gboolean
json_filter (CtContext *ctx, const CtNode *at, CtValue *self, CtValue **args, guint n, GPtrArray *kwargs, GString *out)
{
  CtValue *indent = arg (args, n, kwargs, 0, "indent"), *sort = arg (args, n, kwargs, 0xff, "sort_keys");
  if (indent && indent->type != CT_NONE && (indent->type != CT_INT || indent->i < 0 || indent->i > 64))
    return ct_fail (ctx, at, "tojson: indent must be a small integer"), FALSE;
  int ind = indent && indent->type == CT_INT ? (int) indent->i : -1;
  if (!ct_append_json (out, self, ind, sort && ct_truthy (sort), 0))
    return ct_fail (ctx, at, "tojson: value nested too deeply or too large"), FALSE;
  return TRUE;
}

static gboolean
known_test (const char *name)
{
  for (const char *const *t = ct_tests; *t; t++)
    if (!strcmp (*t, name))
      return TRUE;
  return FALSE;
}

/* selectattr/rejectattr(attribute, [test, [arg]]) and map(attribute=name). */
static CtValue *
attr_filter (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n,
             GPtrArray *kwargs)
{
  gboolean map = name[0] == 'm';
  CtValue *attr = arg (args, n, kwargs, map ? 0xff : 0, "attribute");
  CtValue *test = map ? NULL : arg (args, n, kwargs, 1, "test");
  if (!need_string (ctx, at, map ? "map(attribute=...)" : name, attr) || (test && !need_string (ctx, at, name, test)))
    return NULL;
  if (test && !known_test (test->str.s))
    return ct_fail (ctx, at, "%s: unknown test '%s'", name, test->str.s);
  if (self->type != CT_LIST)
    return ct_fail (ctx, at, "%s expects a list, not %s", name, ct_type_name (self));
  CtValue *out = ct_list_new (ctx, 0);
  for (gsize i = 0; i < self->list.n; i++) {
    CtValue *item = self->list.items[i];
    CtValue *v = item->type == CT_DICT || item->type == CT_NAMESPACE ? ct_dict_get (item, attr->str.s) : NULL;
    if (!v) {
      v = ct_value_new (ctx, CT_UNDEFINED);
      v->undefined_name = attr->str.s;
    }
    if (map) {
      ct_list_append (ctx, out, v);
      continue;
    }
    CtValue *r = test ? ct_call_test (ctx, at, test->str.s, v, args + 2, n > 2 ? n - 2 : 0)
                      : ct_bool (ctx, ct_truthy (v));
    if (!r)
      return NULL;
    if (r->b == (name[0] == 's'))
      ct_list_append (ctx, out, item);
  }
  return out;
}

CtValue *
ct_call_filter (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n,
                GPtrArray *kwargs)
{
  if (!strcmp (name, "selectattr") || !strcmp (name, "rejectattr") || !strcmp (name, "map"))
    return attr_filter (ctx, at, name, self, args, n, kwargs);
  if (!strcmp (name, "default") || !strcmp (name, "d")) {
    CtValue *fallback = arg (args, n, kwargs, 0, "default_value"), *boolean = arg (args, n, kwargs, 1, "boolean");
    gboolean use = self->type == CT_UNDEFINED || (boolean && ct_truthy (boolean) && !ct_truthy (self));
    return use ? (fallback ? fallback : ct_string (ctx, "", 0)) : self;
  }
  if (!strcmp (name, "tojson")) {
    GString *out = g_string_new (NULL);
    if (!json_filter (ctx, at, self, args, n, kwargs, out)) {
      g_string_free (out, TRUE);
      return NULL;
    }
    return ct_string_take (ctx, out);
  }
  if (!strcmp (name, "length") || !strcmp (name, "count")) {
    switch (self->type) {
      case CT_STRING:
        return ct_int (ctx, (gint64) g_utf8_strlen (self->str.s, (gssize) self->str.len));
      case CT_LIST:
        return ct_int (ctx, (gint64) self->list.n);
      case CT_DICT:
        return ct_int (ctx, (gint64) self->dict.n);
      case CT_UNDEFINED:
        return ct_int (ctx, 0);
      default:
        return ct_fail (ctx, at, "a %s has no length", ct_type_name (self));
    }
  }
  if (!strcmp (name, "items"))
    return items_of (ctx, at, self, "items");
  if (!strcmp (name, "safe"))
    return self;
  if (!strcmp (name, "first") || !strcmp (name, "last") || !strcmp (name, "list") || !strcmp (name, "reverse")) {
    if (self->type == CT_STRING && name[0] == 'r') {
      g_autofree char *r = g_utf8_strreverse (self->str.s, (gssize) self->str.len);
      return ct_string (ctx, r, -1);
    }
    CtValue *l = self;
    if (self->type == CT_STRING) {
      l = ct_list_new (ctx, 0);
      for (const char *p = self->str.s; *p; p = g_utf8_next_char (p))
        ct_list_append (ctx, l, ct_string (ctx, p, g_utf8_next_char (p) - p));
    } else if (self->type == CT_DICT) {
      l = ct_list_new (ctx, self->dict.n);
      for (gsize i = 0; i < self->dict.n; i++)
        ct_list_append (ctx, l, self->dict.keys[i]);
    } else if (self->type != CT_LIST) {
      return ct_fail (ctx, at, "%s: a %s is not a sequence", name, ct_type_name (self));
    }
    if (name[0] == 'f' || (name[0] == 'l' && name[1] == 'a')) {
      if (!l->list.n)
        return ct_value_new (ctx, CT_UNDEFINED);
      return l->list.items[name[0] == 'f' ? 0 : l->list.n - 1];
    }
    CtValue *r = ct_list_new (ctx, l->list.n);
    for (gsize i = 0; i < l->list.n; i++)
      ct_list_append (ctx, r, l->list.items[name[0] == 'r' ? l->list.n - 1 - i : i]);
    return r;
  }
  if (!strcmp (name, "int")) {
    if (self->type == CT_INT)
      return self;
    if (self->type == CT_FLOAT && self->f > -9.2e18 && self->f < 9.2e18)
      return ct_int (ctx, (gint64) self->f);
    gint64 v;
    g_autofree char *text = self->type == CT_STRING ? g_strstrip (g_strdup (self->str.s)) : NULL;
    if (text && g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &v, NULL))
      return ct_int (ctx, v);
    CtValue *fallback = arg (args, n, kwargs, 0, "default");
    return fallback ? fallback : ct_int (ctx, 0);
  }
  if (!strcmp (name, "abs")) {
    if (self->type == CT_INT && self->i != G_MININT64)
      return ct_int (ctx, ABS (self->i));
    if (self->type == CT_FLOAT) {
      CtValue *v = ct_value_new (ctx, CT_FLOAT);
      v->f = self->f < 0 ? -self->f : self->f;
      return v;
    }
    return ct_fail (ctx, at, "abs: bad operand %s", ct_type_name (self));
  }
  if (!strcmp (name, "join")) {
    CtValue *sep = arg (args, n, kwargs, 0, "d");
    if (self->type != CT_LIST)
      return ct_fail (ctx, at, "join expects a list, not %s", ct_type_name (self));
    GString *out = g_string_new (NULL);
    for (gsize i = 0; i < self->list.n; i++) {
      if (i && sep)
        ct_append_str (out, sep);
      ct_append_str (out, self->list.items[i]);
    }
    return ct_string_take (ctx, out);
  }
  /* The rest work on the value's text. */
  CtValue *s = self->type == CT_STRING ? self : as_string (ctx, self);
  if (!strcmp (name, "string"))
    return s;
  if (!strcmp (name, "trim")) {
    CtValue *chars = arg (args, n, kwargs, 0, "chars");
    if (chars && chars->type != CT_NONE && !need_string (ctx, at, "trim", chars))
      return NULL;
    return strip (ctx, s, chars, TRUE, TRUE);
  }
  if (!strcmp (name, "replace"))
    return replace (ctx, at, s, arg (args, n, kwargs, 0, "old"), arg (args, n, kwargs, 1, "new"),
                    arg (args, n, kwargs, 2, "count"));
  return change_case (ctx, s, name); /* upper, lower, capitalize, title */
}

CtValue *
ct_call_test (CtContext *ctx, const CtNode *at, const char *name, CtValue *v, CtValue **args, guint n)
{
  /* the tests that ask for one type */
  static const struct {
    const char *name;
    CtType type;
  } types[] = { { "undefined", CT_UNDEFINED }, { "none", CT_NONE },   { "string", CT_STRING }, { "mapping", CT_DICT },
                { "integer", CT_INT },         { "float", CT_FLOAT }, { "boolean", CT_BOOL } };
  CtType t = v->type;
  for (guint k = 0; k < G_N_ELEMENTS (types); k++)
    if (!strcmp (name, types[k].name))
      return ct_bool (ctx, t == types[k].type);
  gboolean r;
  if (!strcmp (name, "defined"))
    r = t != CT_UNDEFINED;
  else if (!strcmp (name, "number"))
    r = t == CT_INT || t == CT_FLOAT || t == CT_BOOL;
  else if (!strcmp (name, "true") || !strcmp (name, "false"))
    r = t == CT_BOOL && v->b == (name[0] == 't');
  else if (!strcmp (name, "sequence") || !strcmp (name, "iterable"))
    r = t == CT_LIST || t == CT_STRING || t == CT_DICT;
  else if (!strcmp (name, "odd") || !strcmp (name, "even")) {
    if (t != CT_INT)
      return ct_fail (ctx, at, "test '%s' needs an integer, not %s", name, ct_type_name (v));
    r = (v->i % 2 != 0) == (name[0] == 'o');
  } else {
    if (!need_args (ctx, at, name, n, 1, 1))
      return NULL;
    r = ct_equal (v, args[0]); /* eq, equalto */
  }
  return ct_bool (ctx, r);
}

CtValue *
ct_call_function (CtContext *ctx, const CtNode *at, const char *name, CtValue **args, guint n, GPtrArray *kwargs)
{
  guint n_kw = kwargs ? kwargs->len : 0;
  if (!strcmp (name, "namespace") || !strcmp (name, "dict")) {
    CtValue *d = ct_value_new (ctx, name[0] == 'n' ? CT_NAMESPACE : CT_DICT);
    for (guint i = 0; i < n - n_kw; i++) {
      if (args[i]->type != CT_DICT)
        return ct_fail (ctx, at, "%s() takes a dict or name=value arguments", name);
      for (gsize k = 0; k < args[i]->dict.n; k++)
        ct_dict_set (ctx, d, args[i]->dict.keys[k]->str.s, args[i]->dict.values[k]);
    }
    for (guint k = 0; k < n_kw; k++)
      ct_dict_set (ctx, d, g_ptr_array_index (kwargs, k), args[n - n_kw + k]);
    return d;
  }
  if (n_kw)
    return ct_fail (ctx, at, "%s() takes no keyword arguments", name);
  if (!strcmp (name, "raise_exception")) {
    GString *msg = g_string_new (NULL);
    if (n)
      ct_append_str (msg, args[0]);
    ct_fail (ctx, at, "raise_exception: %s", msg->str);
    g_string_free (msg, TRUE);
    return NULL;
  }
  if (!strcmp (name, "strftime_now")) {
    if (!need_args (ctx, at, name, n, 1, 1) || !need_string (ctx, at, name, args[0]))
      return NULL;
    char buf[512];
    time_t now = time (NULL);
    struct tm tm;
    /* The format is the template's, as in transformers' strftime_now. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    gsize len = localtime_r (&now, &tm) ? strftime (buf, sizeof buf, args[0]->str.s, &tm) : 0;
#pragma GCC diagnostic pop
    return ct_string (ctx, buf, (gssize) len);
  }
  /* range */
  if (!need_args (ctx, at, name, n, 1, 3))
    return NULL;
  for (guint i = 0; i < n; i++)
    if (args[i]->type != CT_INT)
      return ct_fail (ctx, at, "range() takes integers, not %s", ct_type_name (args[i]));
  gint64 start = n > 1 ? args[0]->i : 0, stop = n > 1 ? args[1]->i : args[0]->i, stepv = n > 2 ? args[2]->i : 1;
  if (stepv == 0)
    return ct_fail (ctx, at, "range() step must not be zero");
  CtValue *l = ct_list_new (ctx, 0);
  for (gint64 i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
    if (l->list.n >= 1000000)
      return ct_fail (ctx, at, "range() longer than 1000000 items");
    ct_list_append (ctx, l, ct_int (ctx, i));
    if ((stepv > 0 && i > G_MAXINT64 - stepv) || (stepv < 0 && i < G_MININT64 - stepv))
      break;
  }
  return l;
}

CtValue *
ct_call_method (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n)
{
  if (self->type == CT_DICT) {
    if (!strcmp (name, "get")) {
      if (!need_args (ctx, at, "get()", n, 1, 2))
        return NULL;
      CtValue *v = args[0]->type == CT_STRING ? ct_dict_get (self, args[0]->str.s) : NULL;
      return v ? v : n > 1 ? args[1] : ct_value_new (ctx, CT_NONE);
    }
    if (!strcmp (name, "items") || !strcmp (name, "keys") || !strcmp (name, "values")) {
      g_autofree char *what = g_strconcat (name, "()", NULL);
      return items_of (ctx, at, self, what);
    }
  }
  if (self->type != CT_STRING || !strcmp (name, "get") || !strcmp (name, "items") || !strcmp (name, "keys") ||
      !strcmp (name, "values"))
    return ct_fail (ctx, at, "a %s has no method %s()", ct_type_name (self), name);
  if (!strcmp (name, "startswith") || !strcmp (name, "endswith")) {
    if (!need_args (ctx, at, name, n, 1, 1))
      return NULL;
    return ct_bool (ctx, has_affix (self, args[0], name[0] == 's'));
  }
  if (!strcmp (name, "split"))
    return need_args (ctx, at, name, n, 0, 2) ? split (ctx, at, self, n ? args[0] : NULL, n > 1 ? args[1] : NULL)
                                              : NULL;
  if (!strcmp (name, "strip") || !strcmp (name, "lstrip") || !strcmp (name, "rstrip")) {
    if (!need_args (ctx, at, name, n, 0, 1) || (n && args[0]->type != CT_NONE && !need_string (ctx, at, name, args[0])))
      return NULL;
    return strip (ctx, self, n ? args[0] : NULL, name[0] != 'r', name[0] != 'l');
  }
  if (!strcmp (name, "replace"))
    return need_args (ctx, at, name, n, 2, 3) ? replace (ctx, at, self, args[0], args[1], n > 2 ? args[2] : NULL)
                                              : NULL;
  if (!strcmp (name, "join")) {
    if (!need_args (ctx, at, name, n, 1, 1))
      return NULL;
    if (args[0]->type != CT_LIST)
      return ct_fail (ctx, at, "join() expects a list, not %s", ct_type_name (args[0]));
    GString *out = g_string_new (NULL);
    for (gsize i = 0; i < args[0]->list.n; i++) {
      if (args[0]->list.items[i]->type != CT_STRING) {
        g_string_free (out, TRUE);
        return ct_fail (ctx, at, "join(): item %" G_GSIZE_FORMAT " is a %s, not a string", i,
                        ct_type_name (args[0]->list.items[i]));
      }
      if (i)
        g_string_append_len (out, self->str.s, self->str.len);
      g_string_append_len (out, args[0]->list.items[i]->str.s, args[0]->list.items[i]->str.len);
    }
    return ct_string_take (ctx, out);
  }
  if (!need_args (ctx, at, name, n, 0, 0))
    return NULL;
  return change_case (ctx, self, name);
}
