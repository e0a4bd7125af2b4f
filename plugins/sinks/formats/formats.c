/* formats: sinks writing the dataset layouts fine-tuning tools read.
 *
 *   cria data 'file location=chats.jsonl ! sharegpt location=chats.json dataset-info=data/dataset_info.json'
 *
 * alpaca: {instruction, input, output, system, history}; sharegpt:
 * {conversations: [{from, value}], system}; messages: OpenAI's {messages:
 * [{role, content}]}; csv: chosen columns under a header row. Metadata is
 * kept as extra members unless metadata=false. Everything is written under a
 * temporary name and renamed when the pipeline completes. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#define LOCATION_PROP                                                                                                  \
  {                                                                                                                    \
    "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the file to write; - writes stdout", CRIA_PROP_FLAG_REQUIRED      \
  }
#define METADATA_PROP                                                                                                  \
  {                                                                                                                    \
    "metadata", CRIA_PROP_BOOL, "true", 0, 0, NULL, "also write each record's metadata members (source, id, ...)"      \
  }
#define FORMAT_PROP                                                                                                    \
  {                                                                                                                    \
    "format", CRIA_PROP_ENUM, "json", 0, 0, "json|jsonl",                                                              \
        "json: one array (one record per line inside it); jsonl: one object per line"                                  \
  }
#define INFO_PROPS                                                                                                     \
  { "dataset-info",                                                                                                    \
    CRIA_PROP_STRING,                                                                                                  \
    NULL,                                                                                                              \
    0,                                                                                                                 \
    0,                                                                                                                 \
    NULL,                                                                                                              \
    "also add an entry for the file to this LLaMA-Factory dataset_info.json (file_name relative to it; only the "      \
    "columns the written records have; ranking: true when every record is a preference pair)" },                       \
  {                                                                                                                    \
    "dataset-name", CRIA_PROP_STRING, NULL, 0, 0, NULL,                                                                \
        "the entry's name in dataset_info.json (default: the file's base name)"                                        \
  }

static const CriaPropSpec alpaca_props[] = { LOCATION_PROP, FORMAT_PROP, METADATA_PROP, INFO_PROPS, CRIA_PROP_END };
static const CriaPropSpec sharegpt_props[] = { LOCATION_PROP, FORMAT_PROP, METADATA_PROP, INFO_PROPS, CRIA_PROP_END };
static const CriaPropSpec messages_props[] = { LOCATION_PROP, METADATA_PROP, CRIA_PROP_END };
static const CriaPropSpec csv_props[] = {
  LOCATION_PROP,
  { "columns", CRIA_PROP_STRING, "instruction,input,output", 0, 0, NULL,
    "comma-separated fields to write, in order (record fields or metadata members)" },
  CRIA_PROP_END
};

typedef enum { LAYOUT_ALPACA, LAYOUT_SHAREGPT, LAYOUT_MESSAGES, LAYOUT_CSV } Layout;

typedef struct {
  Layout layout;
  CriaOutput *output;
  gboolean array, metadata;
  guint64 n, n_pairs; /* records, preference records among them */
  char **columns;
  char *info_path, *info_name, *location;
  gboolean has_system, has_history; /* members some written record has */
} Sink;

static void
sink_destroy (gpointer data)
{
  Sink *self = data;
  cria_output_abort (self->output);
  g_strfreev (self->columns);
  g_free (self->info_path);
  g_free (self->info_name);
  g_free (self->location);
  g_free (self);
}

static gpointer
sink_create (Layout layout, const CriaProps *props, GError **error)
{
  const char *location = cria_props_get_string (props, "location");
  CriaOutput *output = cria_output_open (location, error);
  if (!output)
    return NULL;
  Sink *self = g_new0 (Sink, 1);
  self->layout = layout;
  self->output = output;
  if (layout == LAYOUT_ALPACA || layout == LAYOUT_SHAREGPT)
    self->array = !strcmp (cria_props_get_string (props, "format"), "json");
  self->metadata = layout != LAYOUT_CSV && cria_props_get_bool (props, "metadata");
  if (layout == LAYOUT_CSV) {
    self->columns = g_strsplit (cria_props_get_string (props, "columns"), ",", -1);
    g_autoptr (GString) head = g_string_new (NULL);
    for (guint i = 0; self->columns[i]; i++) {
      g_strstrip (self->columns[i]);
      if (i)
        g_string_append_c (head, ',');
      cria_csv_append_field (head, self->columns[i]);
    }
    g_string_append (head, "\r\n");
    if (!cria_output_write (output, head->str, head->len, error)) {
      sink_destroy (self);
      return NULL;
    }
  }
  if (layout == LAYOUT_ALPACA || layout == LAYOUT_SHAREGPT) {
    self->info_path = g_strdup (cria_props_get_string (props, "dataset-info"));
    self->location = g_strdup (location);
    const char *name = cria_props_get_string (props, "dataset-name");
    g_autofree char *base = g_path_get_basename (location);
    self->info_name = name ? g_strdup (name) : g_strndup (base, strcspn (base, "."));
  }
  return self;
}

static gpointer
alpaca_create (const CriaProps *p, CriaContext *c, GError **e)
{
  return sink_create (LAYOUT_ALPACA, p, e);
}
static gpointer
sharegpt_create (const CriaProps *p, CriaContext *c, GError **e)
{
  return sink_create (LAYOUT_SHAREGPT, p, e);
}
static gpointer
messages_create (const CriaProps *p, CriaContext *c, GError **e)
{
  return sink_create (LAYOUT_MESSAGES, p, e);
}
static gpointer
csv_create (const CriaProps *p, CriaContext *c, GError **e)
{
  return sink_create (LAYOUT_CSV, p, e);
}

static void
add_metadata (JsonObject *o, const CriaRecord *r)
{
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init_ordered (&it, r->meta);
  while (json_object_iter_next_ordered (&it, &name, &member))
    if (!json_object_has_member (o, name))
      json_object_set_member (o, name, json_node_copy (member));
}

/* A conversation becomes Alpaca's last exchange plus a history of the earlier ones. */
static void
alpaca_from_turns (JsonObject *o, const CriaRecord *r)
{
  g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
  const char *system = NULL, *user = NULL, *last_user = "", *last_output = "";
  JsonArray *history = json_array_new ();
  for (guint i = 0; i < turns->len; i++) {
    CriaMessage *m = g_ptr_array_index (turns, i);
    if (!strcmp (m->role, "system"))
      system = m->content;
    else if (!strcmp (m->role, "assistant") && user) {
      JsonArray *pair = json_array_new ();
      json_array_add_string_element (pair, user);
      json_array_add_string_element (pair, m->content);
      json_array_add_array_element (history, pair);
      user = NULL;
    } else if (!strcmp (m->role, "user"))
      user = m->content;
  }
  guint n = json_array_get_length (history);
  if (user) {
    last_user = user;
  } else if (n) {
    JsonArray *pair = json_array_get_array_element (history, n - 1);
    last_user = json_array_get_string_element (pair, 0);
    last_output = json_array_get_string_element (pair, 1);
    n--;
  }
  json_object_set_string_member (o, "instruction", last_user);
  json_object_set_string_member (o, "input", "");
  json_object_set_string_member (o, "output", last_output);
  if (system)
    json_object_set_string_member (o, "system", system);
  JsonArray *earlier = json_array_new ();
  for (guint i = 0; i < n; i++)
    json_array_add_element (earlier, json_node_copy (json_array_get_element (history, i)));
  json_array_unref (history);
  if (n)
    json_object_set_array_member (o, "history", earlier);
  else
    json_array_unref (earlier);
}

static JsonObject *
to_alpaca (const CriaRecord *r)
{
  JsonObject *o = json_object_new ();
  if (r->messages) {
    alpaca_from_turns (o, r);
    return o;
  }
  json_object_set_string_member (o, "instruction", r->instruction ? r->instruction : "");
  json_object_set_string_member (o, "input", r->input ? r->input : "");
  json_object_set_string_member (o, "output", r->output ? r->output : "");
  if (r->system)
    json_object_set_string_member (o, "system", r->system);
  return o;
}

static JsonObject *
to_conversation (const CriaRecord *r, gboolean sharegpt)
{
  g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
  JsonObject *o = json_object_new ();
  JsonArray *a = json_array_new ();
  const char *system = NULL;
  for (guint i = 0; i < turns->len; i++) {
    CriaMessage *m = g_ptr_array_index (turns, i);
    JsonObject *t = json_object_new ();
    if (sharegpt && !strcmp (m->role, "system") && i == 0) {
      system = m->content;
      json_object_unref (t);
      continue;
    }
    if (sharegpt) {
      const char *from = !strcmp (m->role, "user") ? "human" : !strcmp (m->role, "assistant") ? "gpt" : m->role;
      json_object_set_string_member (t, "from", from);
      json_object_set_string_member (t, "value", m->content);
    } else {
      json_object_set_string_member (t, "role", m->role);
      json_object_set_string_member (t, "content", m->content);
    }
    json_array_add_object_element (a, t);
  }
  json_object_set_array_member (o, sharegpt ? "conversations" : "messages", a);
  if (system)
    json_object_set_string_member (o, "system", system);
  return o;
}

/* A preference pair as LLaMA-Factory's ranking datasets (alpaca: strings;
 * sharegpt: {from, value}) and TRL's conversational layout (messages: the
 * prompt conversation as `prompt`, each answer a one-message list) hold it. */
static void
add_pair (JsonObject *o, const CriaRecord *r, Layout layout)
{
  const char *names[] = { "chosen", "rejected" }, *answers[] = { r->chosen, r->rejected };
  if (layout == LAYOUT_ALPACA)
    json_object_remove_member (o, "output");
  if (layout == LAYOUT_MESSAGES) {
    JsonNode *prompt = json_node_copy (json_object_get_member (o, "messages"));
    json_object_remove_member (o, "messages");
    json_object_set_member (o, "prompt", prompt);
  }
  for (guint i = 0; i < 2; i++) {
    if (layout == LAYOUT_ALPACA) {
      json_object_set_string_member (o, names[i], answers[i]);
      continue;
    }
    JsonObject *m = json_object_new ();
    json_object_set_string_member (m, layout == LAYOUT_SHAREGPT ? "from" : "role",
                                   layout == LAYOUT_SHAREGPT ? "gpt" : "assistant");
    json_object_set_string_member (m, layout == LAYOUT_SHAREGPT ? "value" : "content", answers[i]);
    if (layout == LAYOUT_SHAREGPT) {
      json_object_set_object_member (o, names[i], m);
    } else {
      JsonArray *a = json_array_new ();
      json_array_add_object_element (a, m);
      json_object_set_array_member (o, names[i], a);
    }
  }
}

static char *
csv_line (Sink *self, const CriaRecord *r)
{
  GString *s = g_string_new (NULL);
  /* A conversation is written through its Alpaca view. */
  g_autoptr (JsonObject) view = r->messages ? to_alpaca (r) : NULL;
  for (guint i = 0; self->columns[i]; i++) {
    if (i)
      g_string_append_c (s, ',');
    const char *v = cria_record_get_field (r, self->columns[i]);
    if (view && json_object_has_member (view, self->columns[i]))
      v = json_object_get_string_member_with_default (view, self->columns[i], NULL);
    JsonNode *n = v ? NULL : json_object_get_member (r->meta, self->columns[i]);
    if (n) {
      g_autofree char *text = json_to_string (n, FALSE);
      cria_csv_append_field (s, text);
    } else {
      cria_csv_append_field (s, v);
    }
  }
  /* An empty line is no row to a CSV reader: one empty column is written quoted. */
  if (!s->len)
    g_string_append (s, "\"\"");
  g_string_append (s, "\r\n");
  return g_string_free (s, FALSE);
}

static gboolean
sink_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Sink *self = data;
  g_autoptr (CriaRecord) r = record;
  if (self->layout == LAYOUT_CSV) {
    g_autofree char *line = csv_line (self, r);
    return cria_output_write (self->output, line, strlen (line), error);
  }
  JsonObject *o = self->layout == LAYOUT_ALPACA ? to_alpaca (r) : to_conversation (r, self->layout == LAYOUT_SHAREGPT);
  self->has_system |= json_object_has_member (o, "system");
  self->has_history |= json_object_has_member (o, "history");
  if (cria_record_is_preference (r)) {
    add_pair (o, r, self->layout);
    self->n_pairs++;
  }
  if (self->metadata)
    add_metadata (o, r);
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), o);
  json_object_unref (o);
  g_autofree char *text = json_to_string (node, FALSE);
  const char *lead = !self->array ? "" : self->n ? ",\n" : "[\n";
  self->n++;
  return cria_output_printf (self->output, error, "%s%s%s", lead, text, self->array ? "" : "\n");
}

/* `file` as a path from directory `dir`, both by their real paths; NULL
 * when either cannot be resolved. */
static char *
relative_path (const char *dir, const char *file)
{
  g_autofree char *file_dir = g_path_get_dirname (file), *base = g_path_get_basename (file);
  g_autofree char *a = realpath (dir, NULL), *b = realpath (file_dir, NULL);
  if (!a || !b)
    return NULL;
  g_auto (GStrv) from = g_strsplit (a, "/", -1), to = g_strsplit (b, "/", -1);
  guint common = 0;
  while (from[common] && to[common] && !strcmp (from[common], to[common]))
    common++;
  GString *rel = g_string_new (NULL);
  for (guint i = common; from[i]; i++)
    if (*from[i])
      g_string_append (rel, "../");
  for (guint i = common; to[i]; i++)
    if (*to[i])
      g_string_append_printf (rel, "%s/", to[i]);
  g_string_append (rel, base);
  return g_string_free (rel, FALSE);
}

/* LLaMA-Factory finds a dataset through an entry naming the file and its
 * columns. Its loader (data/parser.py, converter.py) reads the file at
 * dataset_dir/file_name, where dataset_dir holds dataset_info.json, and
 * indexes each example by every declared column: a declared column that no
 * record has is a KeyError, and once "columns" is given an undeclared
 * prompt/query/response is None. So the three alpaca columns are always
 * declared (every record has them), system and history only when written. */
static gboolean
write_dataset_info (Sink *self, GError **error)
{
  g_autoptr (JsonObject) all = NULL;
  if (g_file_test (self->info_path, G_FILE_TEST_EXISTS)) {
    g_autoptr (JsonNode) root = cria_json_load_file (self->info_path, error);
    if (!root)
      return FALSE;
    if (!JSON_NODE_HOLDS_OBJECT (root)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON object of datasets", self->info_path);
      return FALSE;
    }
    all = json_object_ref (json_node_get_object (root));
  } else {
    all = json_object_new ();
  }
  JsonObject *entry = json_object_new ();
  JsonObject *columns = json_object_new ();
  g_autofree char *info_dir = g_path_get_dirname (self->info_path);
  g_autofree char *rel = relative_path (info_dir, self->location);
  /* Unresolvable: an absolute path, which os.path.join keeps as it is. */
  g_autofree char *abs = rel ? NULL : g_canonicalize_filename (self->location, NULL);
  json_object_set_string_member (entry, "file_name", rel ? rel : abs);
  if (self->layout == LAYOUT_SHAREGPT) {
    json_object_set_string_member (entry, "formatting", "sharegpt");
    json_object_set_string_member (columns, "messages", "conversations");
  } else {
    json_object_set_string_member (columns, "prompt", "instruction");
    json_object_set_string_member (columns, "query", "input");
    json_object_set_string_member (columns, "response", "output");
    if (self->has_history)
      json_object_set_string_member (columns, "history", "history");
  }
  if (self->has_system)
    json_object_set_string_member (columns, "system", "system");
  /* Preference pairs: LLaMA-Factory's ranking dataset (DPO, ORPO stages). */
  if (self->n && self->n_pairs == self->n) {
    json_object_set_boolean_member (entry, "ranking", TRUE);
    json_object_remove_member (columns, "response");
    json_object_set_string_member (columns, "chosen", "chosen");
    json_object_set_string_member (columns, "rejected", "rejected");
  }
  json_object_set_object_member (entry, "columns", columns);
  json_object_set_object_member (all, self->info_name, entry);
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), all);
  g_autofree char *text = json_to_string (node, TRUE);
  g_autoptr (CriaOutput) out = cria_output_open (self->info_path, error);
  if (!out || !cria_output_printf (out, error, "%s\n", text))
    return FALSE;
  return cria_output_commit (g_steal_pointer (&out), error);
}

static gboolean
sink_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Sink *self = data;
  if (self->array && !cria_output_printf (self->output, error, "%s]\n", self->n ? "\n" : "["))
    return FALSE;
  if (!cria_output_commit (g_steal_pointer (&self->output), error))
    return FALSE;
  return !self->info_path || write_dataset_info (self, error);
}

static void
sink_abort (gpointer data)
{
  Sink *self = data;
  cria_output_abort (g_steal_pointer (&self->output));
}

#define SINK_VTABLE(name_)                                                                                             \
  static const CriaStageVTable name_##_vtable = { CRIA_VTABLE_INIT (CriaStageVTable),                                  \
                                                  .create = name_##_create,                                            \
                                                  .destroy = sink_destroy,                                             \
                                                  .push = sink_push,                                                   \
                                                  .finish = sink_finish,                                               \
                                                  .abort = sink_abort }
SINK_VTABLE (alpaca);
SINK_VTABLE (sharegpt);
SINK_VTABLE (messages);
SINK_VTABLE (csv);

static const CriaProviderInfo alpaca_info = {
  .name = "alpaca",
  .description = "Writes Alpaca records (instruction, input, output, system, history)",
  .example = "file location=in.jsonl ! alpaca location=train.json dataset-info=dataset_info.json",
  .props = alpaca_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo sharegpt_info = {
  .name = "sharegpt",
  .description = "Writes ShareGPT conversations (from/value turns)",
  .example = "file location=in.jsonl ! sharegpt location=train.json",
  .props = sharegpt_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo messages_info = {
  .name = "messages",
  .description = "Writes OpenAI chat records ({messages: [{role, content}]}) as JSON lines",
  .example = "file location=in.jsonl ! messages location=train.jsonl",
  .props = messages_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo csv_info = {
  .name = "csv",
  .description = "Writes chosen fields as RFC 4180 CSV under a header row",
  .example = "file location=in.jsonl ! csv location=train.csv columns=instruction,output",
  .props = csv_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_sink (plugin, &alpaca_info, &alpaca_vtable);
  cria_plugin_add_sink (plugin, &sharegpt_info, &sharegpt_vtable);
  cria_plugin_add_sink (plugin, &messages_info, &messages_vtable);
  cria_plugin_add_sink (plugin, &csv_info, &csv_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (formats, "Alpaca, ShareGPT, messages and CSV dataset outputs", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
