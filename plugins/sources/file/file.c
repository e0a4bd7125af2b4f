/* file: reads records from JSON lines, a JSON array or CSV, in cria's own
 * form or in the Alpaca, ShareGPT or OpenAI messages schemas.
 *
 *   cria data 'file location=sharegpt.json ! head n=100 ! alpaca location=first100.json'
 *
 * The container (format=) and the schema (schema=) are detected unless given:
 * a '[' opens a JSON array, a '{' JSON lines, a .csv name or anything else CSV
 * with a header row naming the fields; a row with `conversations` is
 * ShareGPT, one with `messages` OpenAI's, any other cria's (which is Alpaca's
 * plus metadata). All three stream: one record in memory at a time.
 *
 * mix interleaves several such files by weight, so a linear pipeline can
 * blend sources:
 *
 *   cria data 'mix locations=en.json,zh.json weights=3,1 ! jsonl location=blend.jsonl' */
#include "config.h"

#include <string.h>

#include <cria/cria.h>

static const CriaPropSpec file_props[] = {
  { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the file to read; - reads stdin (as JSON lines)",
    CRIA_PROP_FLAG_REQUIRED },
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
  if (!self)
    return;
  cria_rows_free (self->rows);
  g_free (self);
}

static FileSource *
file_open (const char *location, const CriaProps *props, GError **error)
{
  static const char *const schemas[] = { "auto", "record", "alpaca", "sharegpt", "messages" };
  CriaRows *rows = cria_rows_open (location, cria_props_get_string (props, "format"), error);
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

static gpointer
file_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return file_open (cria_props_get_string (props, "location"), props, error);
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
  /* In a conversation the system prompt is its first message, as in OpenAI's layout. */
  const char *system = json_object_get_string_member_with_default (row, "system", NULL);
  if (system)
    cria_record_add_message (r, "system", system);
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
    if (strcmp (name, "conversations") && !(system && !strcmp (name, "system")))
      json_object_set_member (r->meta, name, json_node_copy (member));
  }
  /* LLaMA-Factory's ranking datasets: chosen and rejected {from, value}. */
  if (!cria_record_take_preference (r, error)) {
    g_prefix_error (error, "%s: ", where);
    return NULL;
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
file_next_row (FileSource *self, CriaRecord **record, GError **error)
{
  static const char *const sharegpt[] = { "conversations", NULL };
  g_autoptr (JsonObject) row = NULL;
  CriaFlow flow;
  /* cria's own form is read straight into records; the other schemas look at the whole row. */
  if (self->schema == SCHEMA_AUTO || self->schema == SCHEMA_RECORD) {
    flow = cria_rows_next_record (self->rows, self->schema == SCHEMA_AUTO ? sharegpt : NULL, record, &row, error);
    if (flow != CRIA_FLOW_OK || *record)
      return flow;
  } else {
    flow = cria_rows_next (self->rows, &row, error);
    if (flow != CRIA_FLOW_OK)
      return flow;
  }
  *record = record_from_row (self, row, error);
  return *record ? CRIA_FLOW_OK : CRIA_FLOW_ERROR;
}

/* A row with none of the record's fields (a misnamed column, another
 * dataset's layout) would become an empty example: say so instead. */
static CriaFlow
file_next (gpointer data, CriaRecord **record, GError **error)
{
  FileSource *self = data;
  CriaFlow flow = file_next_row (self, record, error);
  if (flow != CRIA_FLOW_OK || cria_record_has_content (*record))
    return flow;
  g_autoptr (GString) names = g_string_new (NULL);
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init_ordered (&it, (*record)->meta);
  while (json_object_iter_next_ordered (&it, &name, &member) && names->len < 200)
    g_string_append_printf (names, "%s'%s'", names->len ? ", " : "", name);
  g_autofree char *shown = cria_error_quote (names->str, -1, 200);
  g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
               "%s: none of the fields instruction, input, output, messages, conversations (%s%s)",
               cria_rows_where (self->rows), names->len ? "its fields: " : "the row is empty", shown);
  g_clear_pointer (record, cria_record_free);
  return CRIA_FLOW_ERROR;
}

static const CriaStageVTable file_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = file_create,
  .destroy = file_destroy,
  .next = file_next,
};

static const CriaProviderInfo file_info = {
  .name = "file",
  .description = "Reads records from JSON lines, JSON arrays or CSV (cria, Alpaca, ShareGPT, messages; preference "
                 "pairs in TRL's, UltraFeedback's and LLaMA-Factory's ranking layouts)",
  .example = "file location=train.jsonl ! jsonl location=copy.jsonl",
  .props = file_props,
  .rank = CRIA_RANK_PRIMARY,
};

/* ---- mix -------------------------------------------------------------------- */

static const CriaPropSpec mix_props[] = {
  { "locations", CRIA_PROP_STRING, NULL, 0, 0, NULL, "comma-separated files to interleave", CRIA_PROP_FLAG_REQUIRED },
  { "weights", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "comma-separated relative weights, one per file (default: all equal)" },
  { "format", CRIA_PROP_ENUM, "auto", 0, 0, "auto|jsonl|json|csv",
    "container of every file, or auto-detected per file" },
  { "schema", CRIA_PROP_ENUM, "auto", 0, 0, "auto|record|alpaca|sharegpt|messages",
    "field layout of every file, or auto-detected per row" },
  { "seed", CRIA_PROP_INT, NULL, 0, (double) G_MAXINT64, NULL,
    "seed of the interleaving (default: the pipeline's --seed)" },
  CRIA_PROP_END
};

typedef struct {
  GPtrArray *files; /* FileSource*, NULL once exhausted */
  GArray *weights;  /* double */
  CriaRng rng;
} Mix;

static void
mix_destroy (gpointer data)
{
  Mix *self = data;
  g_ptr_array_unref (self->files);
  g_array_unref (self->weights);
  g_free (self);
}

static gpointer
mix_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  g_auto (GStrv) paths = g_strsplit (cria_props_get_string (props, "locations"), ",", -1);
  const char *w = cria_props_get_string (props, "weights");
  g_auto (GStrv) weights = w ? g_strsplit (w, ",", -1) : NULL;
  if (weights && g_strv_length (weights) != g_strv_length (paths)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "weights: %u given for %u locations",
                 g_strv_length (weights), g_strv_length (paths));
    return NULL;
  }
  Mix *self = g_new0 (Mix, 1);
  self->files = g_ptr_array_new_with_free_func (file_destroy);
  self->weights = g_array_new (FALSE, FALSE, sizeof (double));
  cria_rng_init (&self->rng, cria_props_is_set (props, "seed") ? (guint64) cria_props_get_int (props, "seed")
                                                               : cria_context_get_seed (ctx));
  for (guint i = 0; paths[i]; i++) {
    char *end = NULL;
    double wi = weights ? g_ascii_strtod (g_strstrip (weights[i]), &end) : 1.0;
    if (weights && (!end || *end || !(wi > 0))) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "weights: '%s' is not a positive number",
                   weights[i]);
      mix_destroy (self);
      return NULL;
    }
    FileSource *f = file_open (g_strstrip (paths[i]), props, error);
    if (!f) {
      mix_destroy (self);
      return NULL;
    }
    g_ptr_array_add (self->files, f);
    g_array_append_val (self->weights, wi);
  }
  return self;
}

static CriaFlow
mix_next (gpointer data, CriaRecord **record, GError **error)
{
  Mix *self = data;
  for (;;) {
    double total = 0;
    for (guint i = 0; i < self->files->len; i++)
      if (g_ptr_array_index (self->files, i))
        total += g_array_index (self->weights, double, i);
    if (total == 0)
      return CRIA_FLOW_EOS;
    double x = cria_rng_double (&self->rng) * total;
    guint pick = 0;
    for (guint i = 0; i < self->files->len; i++) {
      if (!g_ptr_array_index (self->files, i))
        continue;
      pick = i;
      x -= g_array_index (self->weights, double, i);
      if (x < 0)
        break;
    }
    CriaFlow flow = file_next (g_ptr_array_index (self->files, pick), record, error);
    if (flow != CRIA_FLOW_EOS)
      return flow;
    file_destroy (g_ptr_array_index (self->files, pick));
    self->files->pdata[pick] = NULL;
  }
}

static const CriaStageVTable mix_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = mix_create,
  .destroy = mix_destroy,
  .next = mix_next,
};

static const CriaProviderInfo mix_info = {
  .name = "mix",
  .description = "Interleaves several record files by weight (seeded) until all are exhausted",
  .example = "mix locations=en.json,zh.json weights=3,1 ! jsonl location=blend.jsonl",
  .props = mix_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_source (plugin, &file_info, &file_vtable);
  cria_plugin_add_source (plugin, &mix_info, &mix_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (file, "Record files: JSON lines, JSON arrays, CSV", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
