/* serve-routes.c: the routes of `cria serve` (/v1, /health, CORS, the API
 * key) and the admission of a chat or completion request. */
#include "config.h"

#include <string.h>

#include "cria-server-private.h"
#include "serve-http.h"

void
serve_respond (SoupServerMessage *msg, guint status, const char *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
}

static void
respond_error (SoupServerMessage *msg, guint status, const char *message, const char *type, const char *param,
               const char *code)
{
  g_autofree char *body = serve_error_body (message, type, param, code);
  serve_respond (msg, status, body);
}

static void
admit (Server *server, SoupServerMessage *msg, gboolean chat, GBytes *body)
{
  gsize len = 0;
  const char *data = g_bytes_get_data (body, &len);
  g_autofree char *nul = data ? serve_json_find_nul (data, len) : NULL;
  if (nul) {
    g_autofree char *shown = cria_error_quote (nul, -1, 80);
    g_autofree char *why = g_strdup_printf ("%s holds a NUL character (\\u0000), which a prompt cannot carry", shown);
    respond_error (msg, SOUP_STATUS_BAD_REQUEST, why, "invalid_request_error", nul, NULL);
    return;
  }
  ServeRequest req;
  g_autofree char *param = NULL;
  g_autoptr (GError) error = NULL;
  if (!serve_request_parse (&req, chat, data ? data : "", len, &param, &error)) {
    serve_request_clear (&req);
    respond_error (msg, SOUP_STATUS_BAD_REQUEST, error->message, "invalid_request_error", param,
                   error->code == CRIA_ERROR_PARSE ? "invalid_json" : NULL);
    return;
  }
  if (req.model && strcmp (req.model, server->o.model_name) != 0) {
    g_autofree char *shown = cria_error_quote (req.model, -1, 80);
    g_autofree char *why = g_strdup_printf ("the model '%s' does not exist; this server has '%s'", shown,
                                            server->o.model_name);
    serve_request_clear (&req);
    respond_error (msg, SOUP_STATUS_NOT_FOUND, why, "invalid_request_error", "model", "model_not_found");
    return;
  }
  if (!server->o.runner || g_hash_table_size (server->jobs) >= server->o.max_concurrent) {
    serve_request_clear (&req);
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", "1");
    respond_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "the server is busy: too many requests at once; retry later",
                   "server_error", NULL, "overloaded");
    return;
  }
  Job *job = g_new0 (Job, 1);
  job->server = server;
  job->msg = g_object_ref (msg);
  job->req = req;
  g_autofree char *uuid = g_uuid_string_random ();
  job->id = g_strconcat (chat ? "chatcmpl-" : "cmpl-", uuid, NULL);
  job->answer = (ServeAnswer){ job->id, server->o.model_name, g_get_real_time () / G_USEC_PER_SEC,
                               chat,    req.logprobs,         MAX (req.n, 1) };
  job->cancel = g_cancellable_new ();
  g_mutex_init (&job->lock);
  job->pending = g_string_new (NULL);
  job->on_finished = g_signal_connect (msg, "finished", G_CALLBACK (serve_job_gone), job);
  job->on_disconnected = g_signal_connect (msg, "disconnected", G_CALLBACK (serve_job_gone), job);
  /* While the model works the connection may be silent for long. */
  job->conn = serve_conn_of (msg);
  if (job->conn) {
    job->conn->state = CONN_BUSY;
    job->conn->job = job;
  }
  g_hash_table_add (server->jobs, job);
  soup_server_message_pause (msg);
  g_thread_pool_push (server->pool, job, NULL);
}

/* CORS: the origin may read the answer when --cors-origin lists it. */
static void
add_cors (Server *server, SoupServerMessage *msg)
{
  const char *origin = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Origin");
  if (!origin || !server->o.cors_origins)
    return;
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  for (const char *const *o = server->o.cors_origins; *o; o++)
    if (!strcmp (*o, "*") || !g_ascii_strcasecmp (*o, origin)) {
      soup_message_headers_replace (h, "Access-Control-Allow-Origin", !strcmp (*o, "*") ? "*" : origin);
      soup_message_headers_append (h, "Vary", "Origin");
      return;
    }
}

/* A CORS preflight (OPTIONS): what the browser may send; no key needed. */
static void
preflight (Server *server, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  soup_message_headers_replace (h, "Allow", "GET, POST, OPTIONS");
  if (soup_message_headers_get_one (h, "Access-Control-Allow-Origin")) {
    const char *asked = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                      "Access-Control-Request-Headers");
    soup_message_headers_replace (h, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    soup_message_headers_replace (h, "Access-Control-Allow-Headers",
                                  asked && strlen (asked) < 1024 ? asked : "Authorization, Content-Type");
    soup_message_headers_replace (h, "Access-Control-Max-Age", "600");
  }
  soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
}

/* "Authorization: Bearer KEY" against --api-key, in time that does not
 * depend on where they differ (digests of both are compared whole). */
gboolean
cria_server_authorized (Server *server, SoupServerMessage *msg)
{
  if (!server->o.api_key)
    return TRUE;
  const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Authorization");
  const char *given = auth && !g_ascii_strncasecmp (auth, "Bearer ", 7) ? auth + 7 : "";
  while (*given == ' ')
    given++;
  guint8 digest[32];
  gsize len = sizeof digest;
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sum, (const guchar *) given, (gssize) strlen (given));
  g_checksum_get_digest (sum, digest, &len);
  guint8 diff = 0;
  for (gsize i = 0; i < sizeof digest; i++)
    diff |= (guint8) (digest[i] ^ server->key_digest[i]);
  return diff == 0;
}

void
serve_handle (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Server *server = data;
  const char *method = soup_server_message_get_method (msg);
  /* One request per connection: see the top of cria-server.c. */
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection", "close");
  add_cors (server, msg);
  if (!strcmp (method, "OPTIONS")) {
    preflight (server, msg);
    return;
  }
  gboolean chat = !strcmp (path, "/v1/chat/completions");
  gboolean models = !strcmp (path, "/v1/models");
  gboolean health = !strcmp (path, "/health");
  gboolean one_model = g_str_has_prefix (path, "/v1/models/") && path[11];
  gboolean embeddings = !strcmp (path, "/v1/embeddings");
  gboolean get = models || health || one_model;
  if (!chat && !get && !embeddings && !g_str_has_prefix (path, "/v1/") && server->o.route &&
      server->o.route (server, msg, path, query, server->o.route_data))
    return;
  if (!chat && !get && !embeddings && strcmp (path, "/v1/completions") != 0) {
    g_autofree char *shown = cria_error_quote (path, -1, 80);
    g_autofree char *why = g_strdup_printf ("no route %s %s (this server has GET /health, GET /v1/models, "
                                            "GET /v1/models/{model}, POST /v1/chat/completions and "
                                            "POST /v1/completions)",
                                            method, shown);
    respond_error (msg, SOUP_STATUS_NOT_FOUND, why, "invalid_request_error", NULL, "not_found");
    return;
  }
  const char *want = get ? "GET" : "POST";
  if (strcmp (method, want) != 0) {
    g_autofree char *why = g_strdup_printf ("%s takes %s, not %s", path, want, method);
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", want);
    respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, why, "invalid_request_error", NULL, "method_not_allowed");
    return;
  }
  if (health) {
    serve_respond (msg, SOUP_STATUS_OK, "{\"status\":\"ok\"}");
    return;
  }
  if (!cria_server_authorized (server, msg)) {
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "WWW-Authenticate", "Bearer");
    respond_error (msg, SOUP_STATUS_UNAUTHORIZED,
                   "Incorrect API key provided. Send it as \"Authorization: Bearer KEY\" (cria serve --api-key).",
                   "invalid_request_error", NULL, "invalid_api_key");
    return;
  }
  if (models) {
    g_autofree char *body = serve_models_body (server->o.model_name, server->started, FALSE);
    serve_respond (msg, SOUP_STATUS_OK, body);
    return;
  }
  if (one_model) {
    g_autofree char *id = g_uri_unescape_string (path + 11, NULL);
    if (!id || strcmp (id, server->o.model_name) != 0) {
      g_autofree char *shown = cria_error_quote (id ? id : path + 11, -1, 80);
      g_autofree char *why = g_strdup_printf ("The model '%s' does not exist; this server has '%s'", shown,
                                              server->o.model_name);
      respond_error (msg, SOUP_STATUS_NOT_FOUND, why, "invalid_request_error", "model", "model_not_found");
      return;
    }
    g_autofree char *body = serve_models_body (server->o.model_name, server->started, TRUE);
    serve_respond (msg, SOUP_STATUS_OK, body);
    return;
  }
  if (embeddings) {
    respond_error (msg, SOUP_STATUS_BAD_REQUEST,
                   "embeddings are not supported: cria serve generates text (POST /v1/chat/completions or "
                   "/v1/completions)",
                   "invalid_request_error", "input", "unsupported_endpoint");
    return;
  }
  g_autoptr (GBytes) body = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  if (g_bytes_get_size (body) > server->o.max_body) {
    g_autofree char *why = g_strdup_printf ("the body is larger than %" G_GSIZE_FORMAT " bytes", server->o.max_body);
    respond_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, why, "invalid_request_error", NULL, "body_too_large");
    return;
  }
  admit (server, msg, chat, body);
}
