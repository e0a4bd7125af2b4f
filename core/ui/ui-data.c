/* ui-data.c: POST /api/data, a `cria data` pipeline run inside the server:
 * the first records out of it (rendered through a prompt format or a
 * model's chat template when asked), each stage's in/out/skipped counts
 * with their reasons, and the records each stage skipped.
 *
 *   {"pipeline": "squad location=dev.json ! dedup ! jsonl location=out.jsonl", "n": 20, "format": "chatml"}
 *
 * Without "write" the pipeline ends before its sink, as `cria data
 * --preview` does: a preview writes nothing. With "write": true it runs
 * whole, and its sink writes atomically as under `cria data`. Every path
 * among the stages' properties is confined to the working directory. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "ui-private.h"
#include "../data/cria-pipeline-private.h"

#define MAX_SKIPPED_SHOWN 20   /* per stage */
#define MAX_CLUSTERS_SHOWN 50  /* per dedup stage */
#define MAX_DUPS_SHOWN 20      /* per cluster */
#define MAX_DEDUP_RECORDS 5000 /* records kept per dedup stage to show its clusters with */

/* A dedup stage of the run: its clusters come from the report it writes
 * (its "report" property: {kept, duplicates, kind} per line, each record
 * named by its id, else its position among the records the stage took),
 * matched with the records seen going into it. */
typedef struct {
  guint index;
  char *report;
  guint64 position;
  GHashTable *records; /* name -> JsonObject* (at most MAX_DEDUP_RECORDS) */
} DedupWatch;

static void
dedup_watch_free (DedupWatch *w)
{
  if (!w)
    return;
  g_free (w->report);
  g_hash_table_unref (w->records);
  g_free (w);
}

typedef struct {
  Ui *ui;
  SoupServerMessage *msg;
  gulong on_gone;
  gboolean gone;
  JsonObject *req;
  /* the run, in its thread */
  guint n_stages; /* of the pipeline run, the preview sink included */
  gint64 n;       /* records to show */
  JsonArray *records;
  /* "format": the records shown rendered through a prompt format, or
   * through a model directory's chat template (the prompt chat sends) */
  CriaPromptFormat *format;
  char *model_dir;
  char *used; /* what rendered them, in words */
  JsonArray *rendered;
  GPtrArray *current; /* CriaRecord*: the record each stage is taking, while it does */
  guint *n_shown;     /* skipped records shown, per stage */
  JsonArray *skipped;
  GPtrArray *watches; /* DedupWatch* by stage index, NULL for other stages */
  char *tmp;          /* where a preview's dedup reports go */
  char *text;         /* the pipeline as given, before its reports were redirected */
  guint status;
  JsonNode *answer;
} DataRun;

/* The preview's end: takes records and writes nothing. */
static gpointer
drop_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return GINT_TO_POINTER (1);
}

static void
drop_destroy (gpointer self)
{}

static gboolean
drop_push (gpointer self, CriaRecord *record, CriaEmitter *out, GError **error)
{
  cria_record_free (record);
  return TRUE;
}

static const CriaPropSpec drop_props[] = { CRIA_PROP_END };
static const CriaStageVTable drop_vtable = { CRIA_VTABLE_INIT (CriaStageVTable), .create = drop_create,
                                             .destroy = drop_destroy, .push = drop_push };
static const CriaProviderInfo drop_info = {
  .name = "ui-preview",
  .description = "Takes the records of a pipeline previewed by cria ui, writing nothing",
  .example = "file location=in.jsonl ! ui-preview",
  .props = drop_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
drop_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_sink (plugin, &drop_info, &drop_vtable);
  return TRUE;
}

static const CriaPluginDescriptor drop_plugin = {
  CRIA_ABI_MAJOR,  CRIA_ABI_MINOR,      "cria-ui-preview",
  PACKAGE_VERSION, "LGPL-2.1-or-later", "The preview sink of cria ui",
  "cria",          drop_init,
};

gboolean
ui_data_register (Ui *ui, GError **error)
{
  return cria_registry_add_static (ui->o.registry, &drop_plugin, error);
}

/* A conversation through the model's chat template, as the chat view
 * sends it: *prompt the messages before the last assistant turn with the
 * generation prompt, *response what the whole conversation adds to it
 * (NULL when the template does not extend the prompt: *prompt is then the
 * whole text). */
static gboolean
render_chat (DataRun *run, const CriaRecord *record, char **prompt, char **response, GError **error)
{
  g_autoptr (JsonArray) messages = cria_chat_messages_from_record (record);
  guint n = json_array_get_length (messages);
  JsonObject *last = n ? json_array_get_object_element (messages, n - 1) : NULL;
  gboolean answered = last && !g_strcmp0 (cria_json_get_string (last, "role", NULL), "assistant");
  g_autoptr (JsonArray) asked = json_array_new ();
  for (guint i = 0; i + (answered ? 1 : 0) < n; i++)
    json_array_add_element (asked, json_node_copy (json_array_get_element (messages, i)));
  g_autofree char *used = NULL;
  *prompt = cria_chat_prompt_for_model (run->model_dir, NULL, asked, TRUE, NULL, &used, error);
  if (!*prompt)
    return FALSE;
  if (!run->used)
    run->used = g_steal_pointer (&used);
  if (!answered) {
    *response = g_strdup ("");
    return TRUE;
  }
  g_autofree char *full = cria_chat_prompt_for_model (run->model_dir, NULL, messages, FALSE, NULL, NULL, error);
  if (!full)
    return FALSE;
  if (g_str_has_prefix (full, *prompt)) {
    *response = g_strdup (full + strlen (*prompt));
  } else {
    g_free (*prompt);
    *prompt = g_steal_pointer (&full);
  }
  return TRUE;
}

/* {"prompt", "response"}, or {"error"} when the record does not render. */
static JsonObject *
render (DataRun *run, const CriaRecord *record)
{
  JsonObject *o = json_object_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *prompt = NULL, *response = NULL;
  gboolean ok = run->format ? cria_prompt_format_render (run->format, record, &prompt, &response, &error)
                            : render_chat (run, record, &prompt, &response, &error);
  if (!ok) {
    json_object_set_string_member (o, "error", error->message);
    return o;
  }
  json_object_set_string_member (o, "prompt", prompt);
  if (response)
    json_object_set_string_member (o, "response", response);
  return o;
}

/* A record's name in a dedup report, as dedup names it. */
static char *
dedup_name (const CriaRecord *r, guint64 position)
{
  JsonNode *id = json_object_get_member (r->meta, "id");
  if (id && JSON_NODE_HOLDS_VALUE (id))
    return json_to_string (id, FALSE);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, position);
}

static void
observe_push (guint index, const CriaRecord *record, gpointer data)
{
  DataRun *run = data;
  DedupWatch *w = record && run->watches ? g_ptr_array_index (run->watches, index) : NULL;
  if (w) {
    w->position++;
    if (g_hash_table_size (w->records) < MAX_DEDUP_RECORDS)
      g_hash_table_replace (w->records, dedup_name (record, w->position), cria_record_to_json (record));
  }
  if (record && index + 1 == run->n_stages && json_array_get_length (run->records) < (guint) run->n) {
    json_array_add_object_element (run->records, cria_record_to_json (record));
    if (run->format || run->model_dir)
      json_array_add_object_element (run->rendered, render (run, record));
  }
  /* Kept only while a skipped record of this stage may still be shown. */
  CriaRecord *copy = record && run->n_shown[index] < MAX_SKIPPED_SHOWN ? cria_record_copy (record) : NULL;
  g_clear_pointer (&run->current->pdata[index], cria_record_free);
  run->current->pdata[index] = copy;
}

static void
observe_skip (guint index, const char *reason, const char *message, gpointer data)
{
  DataRun *run = data;
  if (run->n_shown[index] >= MAX_SKIPPED_SHOWN)
    return;
  run->n_shown[index]++;
  JsonObject *o = json_object_new ();
  json_object_set_int_member (o, "stage", index);
  json_object_set_string_member (o, "reason", reason);
  if (message)
    json_object_set_string_member (o, "message", message);
  const CriaRecord *r = g_ptr_array_index (run->current, index);
  if (r)
    json_object_set_object_member (o, "record", cria_record_to_json (r));
  json_array_add_object_element (run->skipped, o);
}

/* A property value is a path when its name says so, or when it could
 * reach out of the working directory (absolute, "~", a ".." part). */
static gboolean
looks_like_path (const char *name, const char *value)
{
  static const char *const names[] = { "location", "locations", "eval-location", "file",      "output",
                                       "report",   "cache",     "seeds",         "templates", "prompts",
                                       "facts",    "model",     "tokenizer",     "weights",   NULL };
  if (g_strv_contains (names, name) || g_str_has_suffix (name, "-file") || g_str_has_suffix (name, "-dir"))
    return TRUE;
  if (g_path_is_absolute (value) || value[0] == '~')
    return TRUE;
  g_auto (GStrv) parts = g_strsplit (value, G_DIR_SEPARATOR_S, -1);
  return g_strv_contains ((const char *const *) parts, "..");
}

static gboolean
check_paths (Ui *ui, CriaPipeline *p, GError **error)
{
  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    for (const CriaPropSpec *spec = cria_props_get_specs (st->props); spec && spec->name; spec++) {
      if (spec->type != CRIA_PROP_STRING || !cria_props_is_set (st->props, spec->name))
        continue;
      const char *value = cria_props_get_string (st->props, spec->name);
      if (!value || !*value || !looks_like_path (spec->name, value))
        continue;
      /* "a.jsonl,b.jsonl" lists several. */
      g_auto (GStrv) each = g_strsplit (value, ",", -1);
      for (guint k = 0; each[k]; k++) {
        g_autofree char *ok = *each[k] ? ui_confine (ui, g_strstrip (each[k]), error) : g_strdup ("");
        if (!ok) {
          g_prefix_error (error, "%s: %s: ", st->ctx.stage_name, spec->name);
          return FALSE;
        }
      }
    }
  }
  return TRUE;
}

/* The pipeline's stages before its sink, then the preview sink. */
static CriaPipeline *
without_sink (Ui *ui, CriaPipeline *full, GError **error)
{
  g_autoptr (CriaPipeline) p = cria_pipeline_new_empty (ui->o.registry);
  for (guint i = 0; i + 1 < full->stages->len; i++) {
    CriaStage *from = g_ptr_array_index (full->stages, i);
    CriaStage *st = cria_pipeline_add_stage (p, cria_provider_get_name (from->provider), from->ctx.stage_name, error);
    if (!st)
      return NULL;
    cria_props_free (st->props);
    st->props = cria_props_copy (from->props);
    g_free (st->ctx.stage_name);
    st->ctx.stage_name = g_strdup (from->ctx.stage_name);
  }
  if (!cria_pipeline_add_stage (p, "ui-preview", "preview", error) || !cria_pipeline_validate (p, error))
    return NULL;
  return g_steal_pointer (&p);
}

/* Every dedup stage of `ran` writes its report where the run reads it:
 * to a temporary file unless the run is written whole with a report of
 * the user's (a preview writes nothing in the working directory). */
static gboolean
watch_dedups (DataRun *run, CriaPipeline *ran, gboolean preview, GError **error)
{
  for (guint i = 0; i < ran->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (ran->stages, i);
    if (strcmp (cria_provider_get_name (st->provider), "dedup") != 0)
      continue;
    if (!run->watches) {
      run->watches = g_ptr_array_new_full (ran->stages->len, (GDestroyNotify) dedup_watch_free);
      g_ptr_array_set_size (run->watches, (gint) ran->stages->len);
    }
    DedupWatch *w = g_new0 (DedupWatch, 1);
    w->index = i;
    w->records = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) json_object_unref);
    run->watches->pdata[i] = w;
    const char *given = cria_props_is_set (st->props, "report") ? cria_props_get_string (st->props, "report") : NULL;
    if (given && *given && !preview) {
      w->report = g_strdup (given);
      continue;
    }
    if (!run->tmp && !(run->tmp = g_dir_make_tmp ("cria-ui-XXXXXX", error)))
      return FALSE;
    g_autofree char *leaf = g_strdup_printf ("dedup-%u.jsonl", i);
    w->report = g_build_filename (run->tmp, leaf, NULL);
    if (!cria_props_set (st->props, "report", w->report, error))
      return FALSE;
  }
  return TRUE;
}

static JsonObject *
named_record (DedupWatch *w, JsonNode *name)
{
  JsonObject *o = json_object_new ();
  json_object_set_member (o, "name", json_node_copy (name));
  g_autofree char *key = json_to_string (name, FALSE);
  JsonObject *rec = g_hash_table_lookup (w->records, key);
  if (rec)
    json_object_set_object_member (o, "record", json_object_ref (rec));
  return o;
}

/* [{"stage", "n_clusters", "clusters": [{"kind", "kept", "duplicates",
 * "n_duplicates"}]}], one per dedup stage whose report was written. */
static JsonArray *
dedup_clusters (DataRun *run)
{
  JsonArray *out = json_array_new ();
  for (guint i = 0; run->watches && i < run->watches->len; i++) {
    DedupWatch *w = g_ptr_array_index (run->watches, i);
    g_autofree char *text = NULL;
    if (!w || !cria_file_get_contents (w->report, CRIA_INPUT_MAX_FILE_BYTES, &text, NULL, NULL))
      continue;
    JsonArray *clusters = json_array_new ();
    guint n = 0;
    g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
    for (guint l = 0; lines[l]; l++) {
      g_autoptr (JsonNode) line = *lines[l] ? cria_json_parse (lines[l], -1, w->report, l + 1, NULL) : NULL;
      JsonObject *c = line && JSON_NODE_HOLDS_OBJECT (line) ? json_node_get_object (line) : NULL;
      JsonNode *kept = c ? json_object_get_member (c, "kept") : NULL;
      JsonArray *dups = c ? cria_json_get_array (c, "duplicates") : NULL;
      if (!kept || !dups || n++ >= MAX_CLUSTERS_SHOWN)
        continue;
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, "kind", cria_json_get_string (c, "kind", "exact"));
      json_object_set_object_member (o, "kept", named_record (w, kept));
      JsonArray *shown = json_array_new ();
      for (guint d = 0; d < json_array_get_length (dups) && d < MAX_DUPS_SHOWN; d++)
        json_array_add_object_element (shown, named_record (w, json_array_get_element (dups, d)));
      json_object_set_array_member (o, "duplicates", shown);
      json_object_set_int_member (o, "n_duplicates", json_array_get_length (dups));
      json_array_add_object_element (clusters, o);
    }
    JsonObject *o = json_object_new ();
    json_object_set_int_member (o, "stage", w->index);
    json_object_set_int_member (o, "n_clusters", n);
    json_object_set_array_member (o, "clusters", clusters);
    json_array_add_object_element (out, o);
  }
  return out;
}

static JsonNode *
answer (DataRun *run, CriaPipeline *shown, CriaPipeline *ran, gboolean preview, const GError *error)
{
  JsonObject *o = json_object_new ();
  if (run->text) {
    json_object_set_string_member (o, "pipeline", run->text);
  } else if (shown) {
    g_autofree char *text = cria_pipeline_to_string (shown);
    json_object_set_string_member (o, "pipeline", text);
  }
  json_object_set_boolean_member (o, "preview", preview);
  json_object_set_boolean_member (o, "written", ran && !preview && !error);
  if (ran) {
    g_autoptr (JsonNode) summary = cria_pipeline_get_summary (ran);
    JsonArray *stages = json_object_get_array_member (json_node_get_object (summary), "stages");
    /* The preview's own sink is no stage of the user's. */
    if (preview && json_array_get_length (stages) > 0)
      json_array_remove_element (stages, json_array_get_length (stages) - 1);
    json_object_set_array_member (o, "stages", json_array_ref (stages));
  }
  json_object_set_array_member (o, "records", json_array_ref (run->records));
  if (run->format || run->model_dir) {
    json_object_set_array_member (o, "rendered", json_array_ref (run->rendered));
    JsonObject *f = json_object_new ();
    json_object_set_string_member (f, "value", cria_json_get_string (run->req, "format", ""));
    if (run->used)
      json_object_set_string_member (f, "used", run->used);
    json_object_set_object_member (o, "format", f);
  }
  json_object_set_array_member (o, "skipped", json_array_ref (run->skipped));
  if (run->watches)
    json_object_set_array_member (o, "dedup", dedup_clusters (run));
  if (error)
    json_object_set_string_member (o, "error", error->message);
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, o);
  return node;
}

static CriaPipeline *
parse (Ui *ui, const char *text, GError **error)
{
  while (g_ascii_isspace (*text))
    text++;
  if (*text == '{')
    return cria_pipeline_parse_json (ui->o.registry, text, -1, "pipeline", error);
  return cria_pipeline_parse (ui->o.registry, text, error);
}

/* The request's "format": the name of a prompt format cria ships
 * (share/formats, as cria data --prompt-format and cria train --format
 * name them), a format file, or a model directory whose chat template
 * renders (cria_chat_prompt_for_model: tokenizer_config.json's
 * chat_template, chat_template.jinja, or its family's format). A shipped
 * name wins over a directory of the same name. */
static gboolean
open_format (DataRun *run, GError **error)
{
  const char *value = cria_json_get_string (run->req, "format", NULL);
  if (!value || !*value)
    return TRUE;
  run->status = SOUP_STATUS_BAD_REQUEST;
  g_autofree char *rel = g_strdup_printf ("formats/%s.json", value);
  g_autofree char *shipped = strchr (value, '/') ? NULL : cria_find_data_file (rel);
  if (shipped && g_path_is_absolute (shipped) && g_file_test (shipped, G_FILE_TEST_IS_REGULAR)) {
    run->format = cria_prompt_format_load (value, error);
    run->used = g_strdup_printf ("the prompt format %s", value);
  } else {
    g_autofree char *path = ui_confine (run->ui, value, error);
    if (!path) {
      run->status = SOUP_STATUS_FORBIDDEN;
    } else if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
      run->model_dir = g_steal_pointer (&path);
    } else if (g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
      run->format = cria_prompt_format_load (path, error);
      run->used = g_strdup_printf ("the prompt format %s", value);
    } else {
      g_autofree char *shown = cria_error_quote (value, -1, 120);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND,
                   "%s is neither a prompt format cria ships, a format file nor a model directory", shown);
    }
  }
  if (!run->format && !run->model_dir) {
    g_prefix_error (error, "format: ");
    return FALSE;
  }
  return TRUE;
}

static void
run_pipeline (DataRun *run)
{
  Ui *ui = run->ui;
  const char *text = cria_json_get_string (run->req, "pipeline", NULL);
  gboolean write = cria_json_get_boolean (run->req, "write", FALSE);
  const char *on_error = cria_json_get_string (run->req, "on-error", "skip");
  run->n = CLAMP (cria_json_get_int (run->req, "n", 20), 0, 1000);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaPipeline) full = NULL, preview = NULL;
  run->status = SOUP_STATUS_BAD_REQUEST;
  if (!text || (strcmp (on_error, "skip") != 0 && strcmp (on_error, "stop") != 0)) {
    g_set_error (&error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 !text ? "pipeline: a pipeline string is required" : "on-error: expected skip or stop");
    run->answer = answer (run, NULL, NULL, !write, error);
    return;
  }
  full = parse (ui, text, &error);
  if (!full && !write && !g_str_has_prefix (text, "{")) {
    /* A pipeline without its sink is previewed as it is. */
    g_autofree char *with = g_strconcat (text, " ! ui-preview", NULL);
    preview = parse (ui, with, NULL);
  }
  if (full && !write)
    preview = without_sink (ui, full, &error);
  CriaPipeline *ran = write ? full : preview;
  if (ran)
    g_clear_error (&error);
  if (!ran || !check_paths (ui, full ? full : ran, &error)) {
    if (ran)
      run->status = SOUP_STATUS_FORBIDDEN;
    run->answer = answer (run, full, NULL, !write, error);
    return;
  }
  if (!open_format (run, &error)) {
    run->answer = answer (run, full, NULL, !write, error);
    return;
  }
  run->text = cria_pipeline_to_string (full ? full : preview);
  if (!watch_dedups (run, ran, !write, &error)) {
    run->status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
    run->answer = answer (run, full, NULL, !write, error);
    return;
  }
  cria_pipeline_set_on_error (ran, !strcmp (on_error, "stop") ? CRIA_ON_ERROR_STOP : CRIA_ON_ERROR_SKIP);
  cria_pipeline_set_seed (ran, (guint64) MAX (cria_json_get_int (run->req, "seed", 0), 0));
  run->n_stages = ran->stages->len;
  run->current = g_ptr_array_new_full (run->n_stages, (GDestroyNotify) cria_record_free);
  g_ptr_array_set_size (run->current, (gint) run->n_stages);
  run->n_shown = g_new0 (guint, run->n_stages);
  CriaPipelineObserver observer = { observe_push, observe_skip, run };
  cria_pipeline_set_observer (ran, &observer);
  gboolean ok = cria_pipeline_run (ran, &error);
  run->status = ok ? SOUP_STATUS_OK : SOUP_STATUS_UNPROCESSABLE_ENTITY;
  run->answer = answer (run, full ? full : preview, ran, !write, ok ? NULL : error);
}

static void
data_run_free (DataRun *run)
{
  if (run->on_gone)
    g_signal_handler_disconnect (run->msg, run->on_gone);
  g_object_unref (run->msg);
  json_object_unref (run->req);
  json_array_unref (run->records);
  json_array_unref (run->rendered);
  json_array_unref (run->skipped);
  g_clear_pointer (&run->format, cria_prompt_format_free);
  if (run->watches) {
    for (guint i = 0; i < run->watches->len; i++) {
      DedupWatch *w = g_ptr_array_index (run->watches, i);
      if (w && run->tmp && g_str_has_prefix (w->report, run->tmp))
        g_unlink (w->report);
    }
    g_ptr_array_unref (run->watches);
  }
  if (run->tmp)
    g_rmdir (run->tmp);
  g_free (run->tmp);
  g_free (run->text);
  g_free (run->model_dir);
  g_free (run->used);
  if (run->current)
    g_ptr_array_unref (run->current);
  g_free (run->n_shown);
  if (run->answer)
    json_node_unref (run->answer);
  g_free (run);
}

/* Main thread: the answer. */
static gboolean
finish (gpointer data)
{
  DataRun *run = data;
  if (!run->gone) {
    ui_respond_json (run->msg, run->status, g_steal_pointer (&run->answer));
    soup_server_message_unpause (run->msg);
  }
  data_run_free (run);
  return G_SOURCE_REMOVE;
}

static gpointer
thread_main (gpointer data)
{
  DataRun *run = data;
  /* One run at a time: they share the registry's lazy loading. */
  g_mutex_lock (&run->ui->data_lock);
  run_pipeline (run);
  g_mutex_unlock (&run->ui->data_lock);
  GSource *source = g_idle_source_new ();
  g_source_set_callback (source, finish, run, NULL);
  g_source_attach (source, NULL);
  g_source_unref (source);
  return NULL;
}

static void
gone (SoupServerMessage *msg, gpointer data)
{
  ((DataRun *) data)->gone = TRUE;
}

void
ui_data_handle (Ui *ui, SoupServerMessage *msg)
{
  JsonObject *req = ui_request_object (msg);
  if (!req)
    return;
  DataRun *run = g_new0 (DataRun, 1);
  run->ui = ui;
  run->msg = g_object_ref (msg);
  run->req = req;
  run->records = json_array_new ();
  run->rendered = json_array_new ();
  run->skipped = json_array_new ();
  run->on_gone = g_signal_connect (msg, "disconnected", G_CALLBACK (gone), run);
  soup_server_message_pause (msg);
  g_thread_unref (g_thread_new ("cria-ui-data", thread_main, run));
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* GET /api/formats: the prompt formats cria ships, for the page's selector. */
void
ui_formats_handle (SoupServerMessage *msg)
{
  g_autofree char *dir = g_build_filename (cria_get_data_dir (), "formats", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    if (g_str_has_suffix (name, ".json"))
      g_ptr_array_add (names, g_strndup (name, strlen (name) - 5));
  g_ptr_array_sort (names, compare_names);
  JsonArray *list = json_array_new ();
  for (guint i = 0; i < names->len; i++) {
    const char *format = g_ptr_array_index (names, i);
    g_autofree char *leaf = g_strconcat (format, ".json", NULL);
    g_autofree char *path = g_build_filename (dir, leaf, NULL);
    g_autoptr (JsonNode) spec = cria_json_load_file (path, NULL);
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "name", format);
    if (spec && JSON_NODE_HOLDS_OBJECT (spec))
      json_object_set_string_member (o, "description",
                                     cria_json_get_string (json_node_get_object (spec), "description", ""));
    json_array_add_object_element (list, o);
  }
  JsonObject *o = json_object_new ();
  json_object_set_array_member (o, "formats", list);
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, o);
  ui_respond_json (msg, SOUP_STATUS_OK, node);
}
