/* file: reads records from JSON lines, a JSON array or CSV, in cria's own
 * form or in the Alpaca, ShareGPT or OpenAI messages schemas.
 *
 *   cria data 'file location=sharegpt.json ! head n=100 ! alpaca location=first100.json'
 *
 * The container (format=) and the schema (schema=) are detected unless given:
 * a '[' opens a JSON array, a '{' JSON lines, a .csv name or anything else CSV
 * with a header row naming the fields; a row with `conversations` is
 * ShareGPT, one with `messages` OpenAI's, any other cria's (which is Alpaca's
 * plus metadata). JSON lines and CSV stream; a JSON array is read whole. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>

static const CriaPropSpec file_props[] = {
  { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the file to read; - reads stdin (as JSON lines)", CRIA_PROP_FLAG_REQUIRED },
  { "format", CRIA_PROP_ENUM, "auto", 0, 0, "auto|jsonl|json|csv",
    "container: jsonl (one object per line), json (an array), csv (RFC 4180 with a header row), or auto-detected" },
  { "schema", CRIA_PROP_ENUM, "auto", 0, 0, "auto|record|alpaca|sharegpt|messages",
    "field layout of each row; auto: sharegpt when it has conversations, else record (messages are read either way)" },
  CRIA_PROP_END
};

typedef enum { SCHEMA_AUTO, SCHEMA_RECORD, SCHEMA_ALPACA, SCHEMA_SHAREGPT, SCHEMA_MESSAGES } Schema;

typedef struct {
  CriaRows *rows;
  Schema schema;
} FileSource;

static void
file_destroy (gpointer data)
{
  FileSource *self = data;
  cria_rows_free (self->rows);
  g_free (self);
}

static gpointer
file_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  static const char *const schemas[] = { "auto", "record", "alpaca", "sharegpt", "messages" };
  CriaRows *rows = cria_rows_open (cria_props_get_string (props, "location"), cria_props_get_string (props, "format"), error);
  if (!rows)
    return NULL;
  FileSource *self = g_new0 (FileSource, 1);
  self->rows = rows;
  const char *schema = cria_props_get_string (props, "schema");
  for (guint i = 0; i < G_N_ELEMENTS (schemas); i++)
    if (!strcmp (schema, schemas[i]))
      self->schema = (Schema) i;
  return self;
}

/* ShareGPT speakers by the names its datasets use. */
static const char *
sharegpt_role (const char *from)
{
  if (!strcmp (from, "human") || !strcmp (from, "user"))
    return "user";
  if (!strcmp (from, "gpt") || !strcmp (from, "assistant") || !strcmp (from, "chatgpt") || !strcmp (from, "bing"))
    return "assistant";
  return from; /* system, function_call, observation, tool... */
}

static CriaRecord *
from_sharegpt (JsonObject *row, const char *where, GError **error)
{
  JsonNode *conv = json_object_get_member (row, "conversations");
  if (!conv || !JSON_NODE_HOLDS_ARRAY (conv)) {
    g_set_error (error, CRIA_RECORD_ERROR, conv ? CRIA_RECORD_ERROR_INVALID_FIELD : CRIA_RECORD_ERROR_MISSING_FIELD,
                 "%s: field 'conversations': %s", where, conv ? "expected an array" : "missing");
    return NULL;
  }
  g_autoptr (CriaRecord) r = cria_record_new ();
  JsonArray *a = json_node_get_array (conv);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *tn = json_array_get_element (a, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (tn) ? json_node_get_object (tn) : NULL;
    const char *from = t ? json_object_get_string_member_with_default (t, "from", NULL) : NULL;
    const char *value = t ? json_object_get_string_member_with_default (t, "value", NULL) : NULL;
    if (!from || !value) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s: field 'conversations[%u]': expected an object with string 'from' and 'value'", where, i);
      return NULL;
    }
    cria_record_add_message (r, sharegpt_role (from), value);
  }
  if (!r->messages)
    r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init_ordered (&it, row);
  while (json_object_iter_next_ordered (&it, &name, &member)) {
    if (!strcmp (name, "conversations"))
      continue;
    if (!strcmp (name, "system") && JSON_NODE_HOLDS_VALUE (member) && json_node_get_value_type (member) == G_TYPE_STRING)
      r->system = g_strdup (json_node_get_string (member));
    else
      json_object_set_member (r->meta, name, json_node_copy (member));
  }
  return g_steal_pointer (&r);
}

static CriaRecord *
record_from_row (FileSource *self, JsonObject *row, GError **error)
{
  const char *where = cria_rows_where (self->rows);
  Schema s = self->schema;
  if (s == SCHEMA_SHAREGPT || (s == SCHEMA_AUTO && json_object_has_member (row, "conversations")))
    return from_sharegpt (row, where, error);
  if (s == SCHEMA_MESSAGES && !json_object_has_member (row, "messages")) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field 'messages'", where);
    return NULL;
  }
  if (s == SCHEMA_ALPACA) {
    static const char *const required[] = { "instruction", "output" };
    for (guint i = 0; i < G_N_ELEMENTS (required); i++)
      if (!json_object_has_member (row, required[i])) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field '%s'", where,
                     required[i]);
        return NULL;
      }
  }
  CriaRecord *r = cria_record_from_json (row, error);
  if (!r)
    g_prefix_error (error, "%s: ", where);
  return r;
}

static CriaFlow
file_next (gpointer data, CriaRecord **record, GError **error)
{
  FileSource *self = data;
  g_autoptr (JsonObject) row = NULL;
  CriaFlow flow = cria_rows_next (self->rows, &row, error);
  if (flow != CRIA_FLOW_OK)
    return flow;
  *record = record_from_row (self, row, error);
  return *record ? CRIA_FLOW_OK : CRIA_FLOW_ERROR;
}

static const CriaStageVTable file_vtable = {
  .create = file_create,
  .destroy = file_destroy,
  .next = file_next,
};

static const CriaProviderInfo file_info = {
  .kind = CRIA_KIND_SOURCE,
  .name = "file",
  .description = "Reads records from JSON lines, JSON arrays or CSV (cria, Alpaca, ShareGPT, messages)",
  .example = "file location=train.jsonl ! jsonl location=copy.jsonl",
  .props = file_props,
  .vtable = &file_vtable,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &file_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("file", "Record files: JSON lines, JSON arrays, CSV", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
