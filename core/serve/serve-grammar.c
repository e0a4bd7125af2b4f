/* serve-grammar.c: constrained decoding for response_format (serve-grammar.h).
 *
 *   curl -d '{"messages": [...], "response_format": {"type": "json_object"}}' http://127.0.0.1:8080/v1/chat/completions
 *
 * A pushdown machine reads the text one byte at a time: one frame per open
 * value (object, array, string, number, literal), each knowing its part of
 * the schema. Before each token the mask tries every token's text on a copy
 * of the machine and keeps those it accepts whole; the model draws among
 * them. Copies are cheap because only the open frames are copied. Runs of
 * whitespace between tokens are capped, so that a model cannot spend its
 * whole budget on blanks; the document ends the generation as soon as it
 * is whole. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>

#include "serve-grammar.h"

enum {
  T_OBJECT = 1 << 0,
  T_ARRAY = 1 << 1,
  T_STRING = 1 << 2,
  T_NUMBER = 1 << 3,
  T_INTEGER = 1 << 4,
  T_BOOLEAN = 1 << 5,
  T_NULL = 1 << 6,
  T_ALL = (1 << 7) - 1,
};

#define MAX_PROPS 64
#define MAX_LITERALS 64
#define MAX_DEPTH 32
#define MAX_NUMBER 24 /* characters of one number */
#define MAX_WS 1      /* whitespace characters in a row between tokens of JSON */
#define MAX_REF_DEPTH 16

struct _ServeSchema {
  guint types;
  /* object: only these properties (none declared: any key, values `extra`) */
  guint n_props;
  char **names;
  ServeSchema **props;
  guint64 required;
  const ServeSchema *extra;
  /* array */
  const ServeSchema *items;
  gint64 min_items, max_items; /* max < 0: none */
  /* string */
  gint64 min_len, max_len;
  /* enum / const: the values as compact JSON; NULL-terminated */
  char **literals;
  /* anyOf: picked by the first character of the value */
  GPtrArray *any_of;
  GPtrArray *owned; /* the root: every node of the tree */
};

static const ServeSchema any_schema = { .types = T_ALL, .max_items = -1, .max_len = -1 };
static const char *const bool_literals[] = { "true", "false", NULL };
static const char *const null_literals[] = { "null", NULL };

static void
node_free (gpointer data)
{
  ServeSchema *s = data;
  g_strfreev (s->names);
  g_free (s->props);
  g_strfreev (s->literals);
  if (s->any_of)
    g_ptr_array_unref (s->any_of);
  if (s->owned)
    g_ptr_array_unref (s->owned);
  g_free (s);
}

void
serve_schema_free (ServeSchema *s)
{
  if (s)
    node_free (s);
}

typedef struct {
  JsonObject *root;
  GPtrArray *owned;
  guint ref_depth;
} Compiler;

static gboolean
unsupported (GError **error, const char *path, const char *what)
{
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s%s%s", path, *path ? ": " : "", what);
  return FALSE;
}

static ServeSchema *compile (Compiler *c, JsonNode *node, const char *path, GError **error);

static gboolean
type_bit (const char *name, guint *bits)
{
  static const struct {
    const char *name;
    guint bit;
  } types[] = { { "object", T_OBJECT },   { "array", T_ARRAY },     { "string", T_STRING }, { "number", T_NUMBER },
                { "integer", T_INTEGER }, { "boolean", T_BOOLEAN }, { "null", T_NULL } };
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    if (!strcmp (name, types[i].name)) {
      *bits |= types[i].bit;
      return TRUE;
    }
  return FALSE;
}

static gboolean
get_count (JsonObject *o, const char *name, const char *path, gint64 *out, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64 || json_node_get_int (n) < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.%s: expected a non-negative integer", path, name);
    return FALSE;
  }
  *out = json_node_get_int (n);
  return TRUE;
}

/* The first characters a value of `s` may begin with. */
static void
first_chars (const ServeSchema *s, guint8 set[256])
{
  if (s->any_of) {
    for (guint i = 0; i < s->any_of->len; i++)
      first_chars (g_ptr_array_index (s->any_of, i), set);
    return;
  }
  if (s->literals) {
    for (char **l = s->literals; *l; l++)
      set[(guchar) * *l] = 1;
    return;
  }
  if (s->types & T_OBJECT)
    set['{'] = 1;
  if (s->types & T_ARRAY)
    set['['] = 1;
  if (s->types & T_STRING)
    set['"'] = 1;
  if (s->types & (T_NUMBER | T_INTEGER)) {
    set['-'] = 1;
    for (int d = '0'; d <= '9'; d++)
      set[d] = 1;
  }
  if (s->types & T_BOOLEAN)
    set['t'] = set['f'] = 1;
  if (s->types & T_NULL)
    set['n'] = 1;
}

static ServeSchema *
resolve_ref (Compiler *c, const char *ref, const char *path, GError **error)
{
  const char *name = NULL;
  JsonNode *defs = NULL;
  if (g_str_has_prefix (ref, "#/$defs/")) {
    name = ref + 8;
    defs = json_object_get_member (c->root, "$defs");
  } else if (g_str_has_prefix (ref, "#/definitions/")) {
    name = ref + 14;
    defs = json_object_get_member (c->root, "definitions");
  }
  JsonNode *target = name && defs && JSON_NODE_HOLDS_OBJECT (defs)
                         ? json_object_get_member (json_node_get_object (defs), name)
                         : NULL;
  if (!target) {
    g_autofree char *why = g_strdup_printf ("$ref \"%s\": only references to #/$defs/NAME or #/definitions/NAME "
                                            "that exist are supported",
                                            ref);
    unsupported (error, path, why);
    return NULL;
  }
  if (c->ref_depth >= MAX_REF_DEPTH) {
    unsupported (error, path, "$ref: recursive schemas are not supported");
    return NULL;
  }
  c->ref_depth++;
  ServeSchema *s = compile (c, target, ref, error);
  c->ref_depth--;
  return s;
}

static ServeSchema *
compile (Compiler *c, JsonNode *node, const char *path, GError **error)
{
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN && json_node_get_boolean (node))
    return (ServeSchema *) &any_schema;
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: a schema must be an object", path);
    return NULL;
  }
  JsonObject *o = json_node_get_object (node);
  const char *ref = json_object_has_member (o, "$ref") ? json_object_get_string_member_with_default (o, "$ref", "")
                                                       : NULL;
  if (ref)
    return resolve_ref (c, ref, path, error);
  ServeSchema *s = g_new0 (ServeSchema, 1);
  g_ptr_array_add (c->owned, s);
  s->max_items = s->max_len = -1;
  static const char *const known[] = { "type",     "properties",  "required",  "additionalProperties",
                                       "items",    "minItems",    "maxItems",  "enum",
                                       "const",    "anyOf",       "minLength", "maxLength",
                                       "$defs",    "definitions", "title",     "description",
                                       "default",  "examples",    "$schema",   "$id",
                                       "$comment", "format",      "strict",    "name" };
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next) {
    gboolean ok = FALSE;
    for (guint i = 0; i < G_N_ELEMENTS (known) && !ok; i++)
      ok = !strcmp (l->data, known[i]);
    if (!ok) {
      g_autofree char *why = g_strdup_printf ("the keyword \"%s\" is not supported by cria's constrained decoding",
                                              (const char *) l->data);
      unsupported (error, path, why);
      return NULL;
    }
  }
  JsonNode *type = json_object_get_member (o, "type");
  if (type && JSON_NODE_HOLDS_VALUE (type) && json_node_get_value_type (type) == G_TYPE_STRING) {
    if (!type_bit (json_node_get_string (type), &s->types)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.type: unknown type \"%s\"", path,
                   json_node_get_string (type));
      return NULL;
    }
  } else if (type && JSON_NODE_HOLDS_ARRAY (type)) {
    JsonArray *a = json_node_get_array (type);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING ||
          !type_bit (json_node_get_string (e), &s->types)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.type[%u]: not a type name", path, i);
        return NULL;
      }
    }
  } else if (type) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.type: expected a string or a list", path);
    return NULL;
  } else {
    s->types = json_object_has_member (o, "properties") ? T_OBJECT : T_ALL;
  }
  /* integer is a number too; a number type lets integers through. */
  JsonNode *lits = json_object_get_member (o, "enum");
  JsonNode *cnst = json_object_get_member (o, "const");
  if (lits || cnst) {
    JsonArray *a = lits && JSON_NODE_HOLDS_ARRAY (lits) ? json_node_get_array (lits) : NULL;
    if (lits && (!a || json_array_get_length (a) == 0 || json_array_get_length (a) > MAX_LITERALS)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.enum: expected a list of 1 to %d values", path,
                   MAX_LITERALS);
      return NULL;
    }
    guint n = cnst ? 1 : json_array_get_length (a);
    s->literals = g_new0 (char *, n + 1);
    for (guint i = 0; i < n; i++)
      s->literals[i] = json_to_string (cnst ? cnst : json_array_get_element (a, i), FALSE);
    return s;
  }
  JsonNode *any = json_object_get_member (o, "anyOf");
  if (any) {
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (any) ? json_node_get_array (any) : NULL;
    if (!a || json_array_get_length (a) == 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.anyOf: expected a non-empty list", path);
      return NULL;
    }
    s->any_of = g_ptr_array_new ();
    guint8 seen[256] = { 0 };
    for (guint i = 0; i < json_array_get_length (a); i++) {
      g_autofree char *where = g_strdup_printf ("%s.anyOf[%u]", path, i);
      ServeSchema *b = compile (c, json_array_get_element (a, i), where, error);
      if (!b)
        return NULL;
      guint8 set[256] = { 0 };
      first_chars (b, set);
      for (int k = 0; k < 256; k++) {
        if (set[k] && seen[k]) {
          unsupported (error, where,
                       "anyOf: branches that can begin with the same character (two objects, two strings...) "
                       "are not supported");
          return NULL;
        }
        seen[k] |= set[k];
      }
      g_ptr_array_add (s->any_of, b);
    }
    return s;
  }
  JsonNode *props = json_object_get_member (o, "properties");
  if (props) {
    if (!JSON_NODE_HOLDS_OBJECT (props)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.properties: expected an object", path);
      return NULL;
    }
    JsonObject *po = json_node_get_object (props);
    g_autoptr (GList) names = json_object_get_members (po);
    guint n = g_list_length (names);
    if (n > MAX_PROPS) {
      unsupported (error, path, "more than 64 properties");
      return NULL;
    }
    s->n_props = n;
    s->names = g_new0 (char *, n + 1);
    s->props = g_new0 (ServeSchema *, n);
    guint i = 0;
    for (GList *l = names; l; l = l->next, i++) {
      const char *name = l->data;
      if (strpbrk (name, "\"\\") || !*name) {
        g_autofree char *why = g_strdup_printf ("the property \"%s\": names with quotes or backslashes (or empty) "
                                                "are not supported",
                                                name);
        unsupported (error, path, why);
        return NULL;
      }
      for (const char *p = name; *p; p++)
        if ((guchar) *p < 0x20) {
          unsupported (error, path, "a property name with a control character");
          return NULL;
        }
      s->names[i] = g_strdup (name);
      g_autofree char *where = g_strdup_printf ("%s.properties.%s", path, name);
      if (!(s->props[i] = compile (c, json_object_get_member (po, name), where, error)))
        return NULL;
    }
  }
  JsonNode *req = json_object_get_member (o, "required");
  if (req) {
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (req) ? json_node_get_array (req) : NULL;
    for (guint i = 0; a && i < json_array_get_length (a); i++) {
      const char *name = json_array_get_string_element (a, i);
      guint k = 0;
      while (name && k < s->n_props && strcmp (s->names[k], name))
        k++;
      if (!name || k == s->n_props) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "%s.required[%u]: not one of the declared properties", path, i);
        return NULL;
      }
      s->required |= G_GUINT64_CONSTANT (1) << k;
    }
  }
  JsonNode *extra = json_object_get_member (o, "additionalProperties");
  s->extra = &any_schema;
  if (extra && JSON_NODE_HOLDS_OBJECT (extra)) {
    if (s->n_props) {
      unsupported (error, path, "additionalProperties with a schema beside properties");
      return NULL;
    }
    g_autofree char *where = g_strdup_printf ("%s.additionalProperties", path);
    if (!(s->extra = compile (c, extra, where, error)))
      return NULL;
  }
  JsonNode *items = json_object_get_member (o, "items");
  s->items = &any_schema;
  if (items) {
    g_autofree char *where = g_strdup_printf ("%s.items", path);
    if (!(s->items = compile (c, items, where, error)))
      return NULL;
  }
  if (!get_count (o, "minItems", path, &s->min_items, error) ||
      !get_count (o, "maxItems", path, &s->max_items, error) || !get_count (o, "minLength", path, &s->min_len, error) ||
      !get_count (o, "maxLength", path, &s->max_len, error))
    return NULL;
  return s;
}

ServeSchema *
serve_schema_compile (JsonNode *schema, GError **error)
{
  g_return_val_if_fail (schema != NULL, NULL);
  Compiler c = { JSON_NODE_HOLDS_OBJECT (schema) ? json_node_get_object (schema) : NULL,
                 g_ptr_array_new_with_free_func (node_free), 0 };
  if (!c.root) {
    g_ptr_array_unref (c.owned);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "schema: expected a JSON object");
    return NULL;
  }
  ServeSchema *s = compile (&c, schema, "schema", error);
  if (!s || s == &any_schema) {
    g_ptr_array_unref (c.owned);
    if (s)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "schema: expected a JSON object");
    return NULL;
  }
  /* The root owns the other nodes (no node points at the root: a $ref to
   * "#" is refused). */
  guint at = 0;
  if (g_ptr_array_find (c.owned, s, &at))
    g_ptr_array_steal_index_fast (c.owned, at);
  s->owned = c.owned;
  return s;
}

/* The machine. */
typedef enum {
  F_VALUE,     /* a value begins (whitespace first) */
  F_OBJ_OPEN,  /* after '{' */
  F_KEY,       /* in a member's name */
  F_COLON,     /* after the name */
  F_OBJ_VALUE, /* the member's value is read by the frame above */
  F_OBJ_NEXT,  /* after a member: ',' or '}' */
  F_OBJ_COMMA, /* after ',': a name */
  F_ARR_OPEN,  /* after '[' */
  F_ARR_VALUE,
  F_ARR_NEXT,
  F_ARR_COMMA,
  F_STRING,
  F_NUMBER,
  F_LITERAL,
} State;

typedef struct {
  guint8 state, sub;
  const ServeSchema *s;
  const char *const *lits; /* F_LITERAL */
  gint32 count;            /* bytes of a name or literal, characters of a string, items, number length */
  gint32 key;              /* the member whose value is read; -1 a free one */
  guint64 cand;            /* names or literals still possible */
  guint64 seen;            /* members given */
} Frame;

struct _ServeGrammar {
  const ServeSchema *root;
  guint depth, ws, newlines;
  gboolean done;
  Frame f[MAX_DEPTH];
};

static const ServeSchema object_schema = {
  .types = T_OBJECT, .extra = &any_schema, .items = &any_schema, .max_items = -1, .max_len = -1
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

static void
copy (ServeGrammar *to, const ServeGrammar *from)
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
  g->f[g->depth++] = (Frame){ .state = F_VALUE, .s = s ? s : &any_schema };
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
            first_chars (g_ptr_array_index (s->any_of, i), set);
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

static gboolean
feed (ServeGrammar *g, const char *text, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (!step (g, text[i]))
      return FALSE;
  return TRUE;
}

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

gboolean
serve_grammar_feed (ServeGrammar *g, const char *text, gsize len)
{
  ServeGrammar trial;
  copy (&trial, g);
  if (!feed (&trial, text, len))
    return FALSE;
  copy (g, &trial);
  return TRUE;
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
    copy (trial, g);
    ok[i] = feed (trial, v->text[i], v->len[i]) && (!closing || close_cost (trial) < before);
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
