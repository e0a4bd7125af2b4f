/* serve-schema.c: the JSON Schema subset that response_format's grammar
 * enforces, compiled into the tree the machine of serve-grammar.c walks.
 * What it takes and refuses is in serve-grammar.h. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>

#include "serve-grammar-private.h"

#define MAX_PROPS 64
#define MAX_LITERALS 64
#define MAX_REF_DEPTH 16

const ServeSchema serve_schema_any = { .types = T_ALL, .max_items = -1, .max_len = -1 };

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
void
serve_schema_first_chars (const ServeSchema *s, guint8 set[256])
{
  if (s->any_of) {
    for (guint i = 0; i < s->any_of->len; i++)
      serve_schema_first_chars (g_ptr_array_index (s->any_of, i), set);
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
    return (ServeSchema *) &serve_schema_any;
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
      serve_schema_first_chars (b, set);
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
  s->extra = &serve_schema_any;
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
  s->items = &serve_schema_any;
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
  if (!s || s == &serve_schema_any) {
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
