/* ui-server.c: the routes of `cria ui` beside those of `cria serve`: the
 * page's files, the working directory's confinement, the evaluation
 * endpoint (the data, training and chat ones are in ui-data.c, ui-train.c
 * and ui-chat.c). cria-ui(1) lists every route.
 *
 *   cria ui --port 8800 work/
 *
 * The page is public (it holds no data); every /api and /v1 route checks
 * the API key when there is one, which the page sends as a Bearer token. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ui-private.h"

void
ui_respond_json (SoupServerMessage *msg, guint status, JsonNode *node)
{
  g_autoptr (JsonNode) owned = node;
  g_autofree char *text = json_to_string (node, FALSE);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, text, strlen (text));
}

void
ui_respond_error (SoupServerMessage *msg, guint status, const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, message);
  json_builder_end_object (b);
  json_builder_end_object (b);
  ui_respond_json (msg, status, json_builder_get_root (b));
}

void
ui_respond_events (SoupServerMessage *msg)
{
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  soup_message_headers_set_encoding (h, SOUP_ENCODING_CHUNKED);
  soup_message_headers_replace (h, "Content-Type", "text/event-stream");
  soup_message_headers_replace (h, "Cache-Control", "no-cache");
}

JsonObject *
ui_request_object (SoupServerMessage *msg)
{
  g_autoptr (GBytes) body = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  gsize len = 0;
  const char *data = g_bytes_get_data (body, &len);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = cria_json_parse (data ? data : "", (gssize) len, "request body", 0, &error);
  if (!node || !JSON_NODE_HOLDS_OBJECT (node)) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, error ? error->message : "request body: expected a JSON object");
    return NULL;
  }
  return json_object_ref (json_node_get_object (node));
}

/* realpath() of the longest part of `path` that exists, with the rest
 * appended: a link anywhere on the way is followed before the check. */
static char *
resolve_links (const char *path)
{
  char *real = realpath (path, NULL);
  if (real) {
    char *out = g_strdup (real);
    free (real);
    return out;
  }
  g_autofree char *parent = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  if (!strcmp (parent, path))
    return g_strdup (path);
  g_autofree char *head = resolve_links (parent);
  return g_build_filename (head, base, NULL);
}

char *
ui_confine (Ui *ui, const char *path, GError **error)
{
  if (!path || !*path) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "an empty path");
    return NULL;
  }
  g_autofree char *abs = g_canonicalize_filename (path, ui->root);
  g_autofree char *real = resolve_links (abs);
  gsize n = strlen (ui->root);
  if (strcmp (real, ui->root) != 0 && !(g_str_has_prefix (real, ui->root) && real[n] == G_DIR_SEPARATOR)) {
    g_autofree char *shown = cria_error_quote (path, -1, 120);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: outside the working directory %s", shown,
                 ui->root);
    return NULL;
  }
  return g_steal_pointer (&real);
}

/* A query parameter confined to the working directory; answers 400 and
 * returns NULL when missing or outside. */
static char *
query_path (Ui *ui, SoupServerMessage *msg, GHashTable *query, const char *name)
{
  const char *value = query ? g_hash_table_lookup (query, name) : NULL;
  if (!value) {
    g_autofree char *why = g_strdup_printf ("the query parameter %s is required", name);
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, why);
    return NULL;
  }
  g_autoptr (GError) error = NULL;
  char *path = ui_confine (ui, value, &error);
  if (!path)
    ui_respond_error (msg, SOUP_STATUS_FORBIDDEN, error->message);
  return path;
}

/* The page's own files: share/ui, flat, by name. Every view's URL is the
 * page itself, which reads its state from the query. */
static gboolean
serve_static (Ui *ui, SoupServerMessage *msg, const char *path)
{
  static const char *const views[] = { "/", "/data", "/train", "/eval", "/chat", NULL };
  const char *name = NULL;
  if (g_strv_contains (views, path))
    name = "index.html";
  else if (g_str_has_prefix (path, "/ui/") &&
           strspn (path + 4, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen (path + 4) && path[4] &&
           path[4] != '.')
    name = path + 4;
  if (!name)
    return FALSE;
  if (strcmp (soup_server_message_get_method (msg), "GET") != 0) {
    ui_respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "the page's files take GET");
    return TRUE;
  }
  g_autofree char *file = g_build_filename (ui->static_dir, name, NULL);
  char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents (file, &text, &len, NULL)) {
    ui_respond_error (msg, SOUP_STATUS_NOT_FOUND, "no such file of the page");
    return TRUE;
  }
  const char *type = g_str_has_suffix (name, ".html")  ? "text/html; charset=utf-8"
                     : g_str_has_suffix (name, ".js")  ? "text/javascript; charset=utf-8"
                     : g_str_has_suffix (name, ".css") ? "text/css; charset=utf-8"
                     : g_str_has_suffix (name, ".png") ? "image/png"
                                                       : "application/octet-stream";
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, type, SOUP_MEMORY_TAKE, text, len);
  return TRUE;
}

/* A file's lines as JSON values, at most `max` (the rest counted). */
static JsonArray *
read_json_lines (const char *path, guint max, guint *n_total)
{
  JsonArray *out = json_array_new ();
  *n_total = 0;
  g_autofree char *text = NULL;
  if (!cria_file_get_contents (path, CRIA_INPUT_MAX_FILE_BYTES, &text, NULL, NULL))
    return out;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    if (!*lines[i])
      continue;
    (*n_total)++;
    if (json_array_get_length (out) >= max)
      continue;
    JsonNode *node = cria_json_parse (lines[i], -1, path, i + 1, NULL);
    if (node)
      json_array_add_element (out, node);
  }
  return out;
}

/* GET /api/eval?dir=DIR: what `cria eval --out DIR` wrote. */
static void
eval_handle (Ui *ui, SoupServerMessage *msg, GHashTable *query)
{
  g_autofree char *dir = query_path (ui, msg, query, "dir");
  if (!dir)
    return;
  g_autofree char *summary_path = g_build_filename (dir, "summary.json", NULL);
  g_autofree char *table_path = g_build_filename (dir, "summary.txt", NULL);
  g_autofree char *pred_path = g_build_filename (dir, "predictions.jsonl", NULL);
  g_autofree char *summary = NULL, *table = NULL;
  g_autoptr (GError) error = NULL;
  if (!cria_file_get_contents (summary_path, CRIA_INPUT_MAX_FILE_BYTES, &summary, NULL, &error)) {
    ui_respond_error (msg, SOUP_STATUS_NOT_FOUND, error->message);
    return;
  }
  JsonNode *summary_node = cria_json_parse (summary, -1, summary_path, 0, &error);
  if (!summary_node) {
    ui_respond_error (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY, error->message);
    return;
  }
  cria_file_get_contents (table_path, CRIA_INPUT_MAX_FILE_BYTES, &table, NULL, NULL);
  guint total = 0;
  JsonArray *predictions = read_json_lines (pred_path, 2000, &total);
  JsonObject *o = json_object_new ();
  json_object_set_member (o, "summary", summary_node);
  json_object_set_string_member (o, "table", table ? table : "");
  json_object_set_array_member (o, "predictions", predictions);
  json_object_set_int_member (o, "n_predictions", total);
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, o);
  ui_respond_json (msg, SOUP_STATUS_OK, root);
}

/* GET /api/info: the working directory and what the server can do. */
static void
info_handle (Ui *ui, SoupServerMessage *msg)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "root", ui->root);
  json_object_set_string_member (o, "version", PACKAGE_VERSION);
  if (ui->model_name)
    json_object_set_string_member (o, "model", ui->model_name);
  if (ui->loading)
    json_object_set_string_member (o, "loading", ui->loading);
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, o);
  ui_respond_json (msg, SOUP_STATUS_OK, root);
}

static gboolean
route (CriaServer *server, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Ui *ui = data;
  ui->server = server;
  if (serve_static (ui, msg, path))
    return TRUE;
  if (!g_str_has_prefix (path, "/api/"))
    return FALSE;
  if (!cria_server_authorized (server, msg)) {
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "WWW-Authenticate", "Bearer");
    ui_respond_error (msg, SOUP_STATUS_UNAUTHORIZED,
                      "Incorrect API key provided. Send it as \"Authorization: Bearer KEY\" (cria ui --api-key).");
    return TRUE;
  }
  const char *method = soup_server_message_get_method (msg);
  gboolean post = !strcmp (method, "POST");
  const char *what = path + 5;
  if (!strcmp (what, "info") && !post)
    info_handle (ui, msg);
  else if (!strcmp (what, "data") && post)
    ui_data_handle (ui, msg);
  else if (!strcmp (what, "formats") && !post)
    ui_formats_handle (msg);
  else if (g_str_has_prefix (what, "train/"))
    ui_train_handle (ui, msg, what + 6, query);
  else if (!strcmp (what, "eval") && !post)
    eval_handle (ui, msg, query);
  else if (!strcmp (what, "chat/open") && post)
    ui_chat_open (ui, msg);
  else if (!strcmp (what, "chat/base") && post)
    ui_chat_base (ui, msg);
  else {
    g_autofree char *shown = cria_error_quote (path, -1, 80);
    g_autofree char *why = g_strdup_printf ("no route %s %s (see cria-ui(1))", method, shown);
    ui_respond_error (msg, SOUP_STATUS_NOT_FOUND, why);
  }
  return TRUE;
}

gboolean
cria_ui_run (const CriaUiOptions *options, GError **error)
{
  Ui ui = { .o = *options };
  g_mutex_init (&ui.data_lock);
  g_mutex_init (&ui.base_lock);
  char *real = realpath (options->root, NULL);
  if (!real || !g_file_test (real, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", options->root,
                 real ? "not a directory" : g_strerror (errno));
    free (real);
    return FALSE;
  }
  ui.root = g_strdup (real);
  free (real);
  ui.static_dir = g_build_filename (cria_get_data_dir (), "ui", NULL);
  g_autofree char *index = g_build_filename (ui.static_dir, "index.html", NULL);
  gboolean ok = FALSE;
  if (!g_file_test (index, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: missing (is cria installed whole?)", index);
    goto out;
  }
  /* Relative paths of pipelines and runs are the working directory's. */
  if (chdir (ui.root) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", ui.root, g_strerror (errno));
    goto out;
  }
  ui.runs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, ui_train_run_free);
  if (!ui_data_register (&ui, error))
    goto out;
  CriaServerOptions so = {
    .host = options->host,
    .port = options->port,
    .model_name = "none",
    .max_concurrent = 4,
    .max_body = 1 << 20,
    .header_timeout = 10,
    /* A pipeline or a model load may keep a request quiet for long. */
    .idle_timeout = 3600,
    .api_key = options->api_key,
    .route = route,
    .route_data = &ui,
    .announce = "cria ui",
  };
  ok = cria_server_run (&so, error);
  ui_chat_stop (&ui);
  ui_train_stop_all (&ui);
out:
  ui_chat_clear (&ui);
  if (ui.runs)
    g_hash_table_unref (ui.runs);
  g_free (ui.root);
  g_free (ui.static_dir);
  g_mutex_clear (&ui.data_lock);
  g_mutex_clear (&ui.base_lock);
  return ok;
}
