/* cria-json-get.c: members of objects read from outside, by kind.
 *
 * json-glib's typed getters assert the member's kind with g_return_if_fail:
 * a list where a string was expected is a CRITICAL (fatal under
 * G_DEBUG=fatal-criticals) instead of a message naming the field. */
#include "config.h"

#include <cria/cria-json.h>

static JsonNode *
value_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_VALUE (n) ? n : NULL;
}

const char *
cria_json_get_string (JsonObject *o, const char *name, const char *fallback)
{
  JsonNode *n = value_member (o, name);
  return n ? json_node_get_string (n) : fallback;
}

gint64
cria_json_get_int (JsonObject *o, const char *name, gint64 fallback)
{
  JsonNode *n = value_member (o, name);
  return n ? json_node_get_int (n) : fallback;
}

double
cria_json_get_double (JsonObject *o, const char *name, double fallback)
{
  JsonNode *n = value_member (o, name);
  return n ? json_node_get_double (n) : fallback;
}

gboolean
cria_json_get_boolean (JsonObject *o, const char *name, gboolean fallback)
{
  JsonNode *n = value_member (o, name);
  return n ? json_node_get_boolean (n) : fallback;
}

JsonObject *
cria_json_get_object (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

JsonArray *
cria_json_get_array (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

gboolean
cria_json_member_is (JsonObject *o, const char *name, GType type)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (type == JSON_TYPE_OBJECT)
    return JSON_NODE_HOLDS_OBJECT (n);
  if (type == JSON_TYPE_ARRAY)
    return JSON_NODE_HOLDS_ARRAY (n);
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  return t == type || (type == G_TYPE_DOUBLE && t == G_TYPE_INT64);
}

const char *
cria_json_node_kind (JsonNode *n)
{
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return "null";
  if (JSON_NODE_HOLDS_OBJECT (n))
    return "an object";
  if (JSON_NODE_HOLDS_ARRAY (n))
    return "a list";
  GType t = json_node_get_value_type (n);
  return t == G_TYPE_STRING ? "a string" : t == G_TYPE_BOOLEAN ? "true or false" : "a number";
}
