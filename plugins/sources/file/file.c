/* file: reads records from a JSONL file or a JSON array of records.
 *
 *   cria data 'file location=train.jsonl ! head n=100 ! jsonl location=first100.jsonl'
 *
 * Each record is read in cria's interchange form (cria-record(5)). Streaming:
 * JSONL is read one line at a time; a JSON array is read whole. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>

static const CriaPropSpec file_props[] = {
  { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the file to read; - reads stdin", CRIA_PROP_FLAG_REQUIRED },
  { "format", CRIA_PROP_ENUM, "auto", 0, 0, "auto|jsonl|json",
    "jsonl (one record per line), json (an array of records), or auto: decided by the first non-blank character" },
  CRIA_PROP_END
};

typedef struct {
  CriaInput *input;
  JsonArray *array; /* format=json: the whole array */
  guint next;
  char *pending;    /* format=auto: the first line, already read */
  gsize pending_len;
} FileSource;

static void
file_destroy (gpointer data)
{
  FileSource *self = data;
  cria_input_free (self->input);
  if (self->array)
    json_array_unref (self->array);
  g_free (self->pending);
  g_free (self);
}

static gboolean
load_array (FileSource *self, const char *path, GError **error)
{
  g_autoptr (GString) text = g_string_new (self->pending);
  const char *line;
  gsize len;
  GError *rerr = NULL;
  while (cria_input_read_line (self->input, &line, &len, &rerr)) {
    g_string_append_c (text, '\n');
    g_string_append_len (text, line, (gssize) len);
  }
  if (rerr) {
    g_propagate_error (error, rerr);
    return FALSE;
  }
  g_autoptr (GError) jerr = NULL;
  JsonNode *root = cria_json_parse (text->str, (gssize) text->len, path, 1, &jerr);
  if (!root) {
    /* A broken array cannot be resumed record by record: the whole file is bad. */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", jerr->message);
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_ARRAY (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON array of records", path);
    json_node_unref (root);
    return FALSE;
  }
  self->array = json_array_ref (json_node_get_array (root));
  json_node_unref (root);
  return TRUE;
}

static gpointer
file_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  const char *path = cria_props_get_string (props, "location");
  const char *format = cria_props_get_string (props, "format");
  g_autoptr (CriaInput) input = cria_input_open (path, error);
  if (!input)
    return NULL;
  FileSource *self = g_new0 (FileSource, 1);
  self->input = g_steal_pointer (&input);

  gboolean is_array = strcmp (format, "json") == 0;
  if (strcmp (format, "auto") == 0) {
    /* Look at the first non-blank line to decide, and keep it for reading. */
    const char *line;
    gsize len;
    GError *rerr = NULL;
    while (cria_input_read_line (self->input, &line, &len, &rerr)) {
      const char *p = line;
      while (g_ascii_isspace (*p))
        p++;
      if (!*p)
        continue;
      is_array = *p == '[';
      self->pending = g_strndup (line, len);
      self->pending_len = len;
      break;
    }
    if (rerr) {
      g_propagate_error (error, rerr);
      file_destroy (self);
      return NULL;
    }
  }
  if (is_array && !load_array (self, path, error)) {
    file_destroy (self);
    return NULL;
  }
  return self;
}

static CriaRecord *
record_from_node (JsonNode *node, const char *path, guint64 line, const char *what, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX, "%s:%" G_GUINT64_FORMAT ": %s: expected a JSON object",
                 path, line, what);
    return NULL;
  }
  CriaRecord *r = cria_record_from_json (json_node_get_object (node), error);
  if (!r)
    g_prefix_error (error, "%s:%" G_GUINT64_FORMAT ": %s: ", path, line, what);
  return r;
}

static CriaFlow
file_next (gpointer data, CriaRecord **record, GError **error)
{
  FileSource *self = data;
  const char *path = cria_input_get_path (self->input);
  if (self->array) {
    if (self->next >= json_array_get_length (self->array))
      return CRIA_FLOW_EOS;
    guint i = self->next++;
    g_autofree char *what = g_strdup_printf ("record %u", i);
    *record = record_from_node (json_array_get_element (self->array, i), path, 1, what, error);
    return *record ? CRIA_FLOW_OK : CRIA_FLOW_ERROR;
  }
  for (;;) {
    const char *line;
    gsize len;
    g_autofree char *owned = NULL;
    if (self->pending) {
      owned = g_steal_pointer (&self->pending);
      line = owned;
      len = self->pending_len;
    } else if (!cria_input_read_line (self->input, &line, &len, error)) {
      return error && *error ? CRIA_FLOW_ERROR : CRIA_FLOW_EOS;
    }
    guint64 n = cria_input_get_line_number (self->input);
    const char *p = line;
    while (g_ascii_isspace (*p))
      p++;
    if (!*p)
      continue;
    JsonNode *node = cria_json_parse (line, (gssize) len, path, n, error);
    if (!node)
      return CRIA_FLOW_ERROR;
    *record = record_from_node (node, path, n, "record", error);
    json_node_unref (node);
    return *record ? CRIA_FLOW_OK : CRIA_FLOW_ERROR;
  }
}

static const CriaStageVTable file_vtable = {
  .create = file_create,
  .destroy = file_destroy,
  .next = file_next,
};

static const CriaProviderInfo file_info = {
  .kind = CRIA_KIND_SOURCE,
  .name = "file",
  .description = "Reads records from a JSONL file or a JSON array",
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

CRIA_PLUGIN_DEFINE ("file", "Record files in cria's interchange form", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
