/* cria-server.c: the HTTP side of `cria serve` (libsoup 3).
 *
 *   cria serve --model ../shared/models/stories260K --port 0
 *
 * The main loop accepts connections, reads and checks requests and writes
 * answers; one worker thread runs the model, one request at a time, in the
 * order they came. A request waits paused in libsoup until its worker hands
 * text back through the main context; more than --max-concurrent admitted at
 * once are turned away with 503 rather than queued without bound. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <glib-unix.h>
#include <libsoup/soup.h>

#include "cria-server.h"
#include "serve-request.h"

typedef struct {
  CriaServerOptions o;
  SoupServer *soup;
  GMainContext *context; /* the main thread's, where libsoup runs */
  GMainLoop *loop;
  GThreadPool *pool;
  GHashTable *jobs; /* Job*: admitted and not yet answered (main thread only) */
  gint64 started;
} Server;

typedef struct {
  Server *server;
  SoupServerMessage *msg;
  gulong on_finished, on_disconnected;
  gboolean gone, answered; /* main thread */
  ServeRequest req;
  ServeAnswer answer;
  char *id;
  GCancellable *cancel;
  /* worker thread */
  guint choice;
  gboolean choice_open;
  /* handed from the worker to the main thread under `lock` */
  GMutex lock;
  GString *pending; /* server-sent events not yet written */
  gboolean streamed, flush_scheduled, done;
  guint status; /* a whole answer (not a stream): its status and body */
  char *body;
} Job;

static void
respond (SoupServerMessage *msg, guint status, const char *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
}

static void
respond_error (SoupServerMessage *msg, guint status, const char *message, const char *type, const char *param,
               const char *code)
{
  g_autofree char *body = serve_error_body (message, type, param, code);
  respond (msg, status, body);
}

static void
job_free (Job *job)
{
  if (job->on_finished)
    g_signal_handler_disconnect (job->msg, job->on_finished);
  if (job->on_disconnected)
    g_signal_handler_disconnect (job->msg, job->on_disconnected);
  g_object_unref (job->msg);
  serve_request_clear (&job->req);
  g_free (job->id);
  g_object_unref (job->cancel);
  g_mutex_clear (&job->lock);
  g_string_free (job->pending, TRUE);
  g_free (job->body);
  g_free (job);
}

/* Main thread: writes what the worker handed over. */
static gboolean
flush (gpointer data)
{
  Job *job = data;
  g_mutex_lock (&job->lock);
  job->flush_scheduled = FALSE;
  g_autofree char *events = job->pending->len ? g_strdup (job->pending->str) : NULL;
  g_string_truncate (job->pending, 0);
  gboolean done = job->done;
  guint status = job->status;
  g_autofree char *body = g_steal_pointer (&job->body);
  g_mutex_unlock (&job->lock);
  if (!job->gone) {
    SoupServerMessage *msg = job->msg;
    if (status) {
      respond (msg, status, body);
    } else if (!job->answered) {
      soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
      SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
      soup_message_headers_set_encoding (h, SOUP_ENCODING_CHUNKED);
      soup_message_headers_replace (h, "Content-Type", "text/event-stream");
      soup_message_headers_replace (h, "Cache-Control", "no-cache");
    }
    job->answered = TRUE;
    SoupMessageBody *out = soup_server_message_get_response_body (msg);
    if (events && !status)
      soup_message_body_append (out, SOUP_MEMORY_COPY, events, strlen (events));
    if (done && !status)
      soup_message_body_complete (out);
    soup_server_message_unpause (msg);
  }
  if (done) {
    g_hash_table_remove (job->server->jobs, job);
    job_free (job);
  }
  return G_SOURCE_REMOVE;
}

/* Worker thread; `lock` held. Always through a source of the main context,
 * never g_main_context_invoke, which would run flush() right here (and take
 * `lock` again) once the main loop has stopped and left the context free. */
static void
schedule_flush (Job *job)
{
  if (!job->flush_scheduled) {
    job->flush_scheduled = TRUE;
    GSource *source = g_idle_source_new ();
    g_source_set_callback (source, flush, job, NULL);
    g_source_attach (source, job->server->context);
    g_source_unref (source);
  }
}

static void
push_event (Job *job, char *event)
{
  g_mutex_lock (&job->lock);
  g_string_append (job->pending, event);
  job->streamed = TRUE;
  schedule_flush (job);
  g_mutex_unlock (&job->lock);
  g_free (event);
}

/* Worker thread: a chat choice opens with the assistant's role. */
static void
open_choice (Job *job)
{
  if (!job->choice_open && job->req.chat)
    push_event (job, serve_chunk_event (&job->answer, job->choice, TRUE, "", NULL));
  job->choice_open = TRUE;
}

/* Worker thread: the text of the running choice, as chunks. */
static gboolean
stream_piece (const char *piece, gpointer data)
{
  Job *job = data;
  open_choice (job);
  if (*piece)
    push_event (job, serve_chunk_event (&job->answer, job->choice, FALSE, piece, NULL));
  return TRUE;
}

static void
fail (Job *job, const GError *error)
{
  gboolean client = error->domain == CRIA_ERROR && error->code == CRIA_ERROR_INVALID_ARGUMENT;
  const char *type = client ? "invalid_request_error" : "server_error";
  g_autofree char *body = serve_error_body (error->message, type, NULL, NULL);
  g_mutex_lock (&job->lock);
  if (job->streamed) {
    /* The status line is gone already: the error travels as an event. */
    g_string_append_printf (job->pending, "data: %s\n\ndata: [DONE]\n\n", body);
  } else {
    job->status = client ? SOUP_STATUS_BAD_REQUEST : SOUP_STATUS_INTERNAL_SERVER_ERROR;
    job->body = g_steal_pointer (&body);
  }
  g_mutex_unlock (&job->lock);
}

static void
run_job (gpointer data, gpointer user_data)
{
  Job *job = data;
  Server *server = user_data;
  guint n = serve_request_n_choices (&job->req);
  CriaGenResult *results = g_new0 (CriaGenResult, n);
  g_autoptr (GError) error = NULL;
  for (guint i = 0; i < n && !error; i++) {
    results[i].prompt_tokens = results[i].completion_tokens = -1;
    CriaGenRequest gr = serve_request_gen (&job->req, i);
    job->choice = i;
    job->choice_open = FALSE;
    if (!cria_lm_runner_generate (server->o.runner, &gr, job->req.stream ? stream_piece : NULL, job, job->cancel,
                                  &results[i], &error))
      break;
    if (job->req.stream) {
      open_choice (job);
      push_event (job, serve_chunk_event (&job->answer, i, FALSE, NULL, results[i].finish_reason));
    }
  }
  if (error) {
    fail (job, error);
  } else if (job->req.stream) {
    if (job->req.include_usage)
      push_event (job, serve_usage_event (&job->answer, results, n));
    push_event (job, g_strdup ("data: [DONE]\n\n"));
  } else {
    char *body = serve_answer_body (&job->answer, results, n);
    g_mutex_lock (&job->lock);
    job->status = SOUP_STATUS_OK;
    job->body = body;
    g_mutex_unlock (&job->lock);
  }
  for (guint i = 0; i < n; i++)
    cria_gen_result_clear (&results[i]);
  g_free (results);
  g_mutex_lock (&job->lock);
  job->done = TRUE;
  schedule_flush (job);
  g_mutex_unlock (&job->lock);
}

/* The client hung up (or the answer is written): stop generating for it. */
static void
job_gone (SoupServerMessage *msg, gpointer data)
{
  Job *job = data;
  job->gone = TRUE;
  g_cancellable_cancel (job->cancel);
}

static void
admit (Server *server, SoupServerMessage *msg, gboolean chat, GBytes *body)
{
  gsize len = 0;
  const char *data = g_bytes_get_data (body, &len);
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
  if (g_hash_table_size (server->jobs) >= server->o.max_concurrent) {
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
  job->answer = (ServeAnswer){ job->id, server->o.model_name, g_get_real_time () / G_USEC_PER_SEC, chat };
  job->cancel = g_cancellable_new ();
  g_mutex_init (&job->lock);
  job->pending = g_string_new (NULL);
  job->on_finished = g_signal_connect (msg, "finished", G_CALLBACK (job_gone), job);
  job->on_disconnected = g_signal_connect (msg, "disconnected", G_CALLBACK (job_gone), job);
  g_hash_table_add (server->jobs, job);
  soup_server_message_pause (msg);
  g_thread_pool_push (server->pool, job, NULL);
}

static void
handle (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Server *server = data;
  const char *method = soup_server_message_get_method (msg);
  gboolean chat = !strcmp (path, "/v1/chat/completions");
  gboolean models = !strcmp (path, "/v1/models");
  if (!chat && !models && strcmp (path, "/v1/completions") != 0) {
    g_autofree char *shown = cria_error_quote (path, -1, 80);
    g_autofree char *why = g_strdup_printf ("no route %s %s (this server has GET /v1/models, "
                                            "POST /v1/chat/completions and POST /v1/completions)",
                                            method, shown);
    respond_error (msg, SOUP_STATUS_NOT_FOUND, why, "invalid_request_error", NULL, "not_found");
    return;
  }
  const char *want = models ? "GET" : "POST";
  if (strcmp (method, want) != 0) {
    g_autofree char *why = g_strdup_printf ("%s takes %s, not %s", path, want, method);
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", want);
    respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, why, "invalid_request_error", NULL, "method_not_allowed");
    return;
  }
  if (models) {
    g_autofree char *body = serve_models_body (server->o.model_name, server->started);
    respond (msg, SOUP_STATUS_OK, body);
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

/* Before the body is read: a declared length over the limit is refused at once. */
static void
early (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Server *server = data;
  goffset declared = soup_message_headers_get_content_length (soup_server_message_get_request_headers (msg));
  if (declared > (goffset) server->o.max_body) {
    g_autofree char *why = g_strdup_printf ("the body is larger than %" G_GSIZE_FORMAT " bytes", server->o.max_body);
    respond_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, why, "invalid_request_error", NULL, "body_too_large");
  }
}

/* --log-requests: when each request came, so that its line can say how long it took. */
static void
log_started (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  gint64 *t = g_new (gint64, 1);
  *t = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), "cria-started", t, g_free);
}

static void
log_line (SoupServerMessage *msg, const char *status)
{
  const gint64 *t = g_object_get_data (G_OBJECT (msg), "cria-started");
  double seconds = t ? (double) (g_get_monotonic_time () - *t) / G_USEC_PER_SEC : 0;
  const char *host = soup_server_message_get_remote_host (msg);
  g_autofree char *path = cria_error_quote (g_uri_get_path (soup_server_message_get_uri (msg)), -1, 80);
  g_printerr ("cria serve: %s %s %s %s %.3f s\n", host ? host : "-", soup_server_message_get_method (msg), path,
              status, seconds);
}

static void
log_finished (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  g_autofree char *status = g_strdup_printf ("%u", soup_server_message_get_status (msg));
  log_line (msg, status);
}

static void
log_aborted (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  log_line (msg, "aborted");
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (((Server *) data)->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
listen_on (Server *server, GError **error)
{
  const char *host = server->o.host;
  g_autoptr (GInetAddress) addr = !strcmp (host, "localhost") ? g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4)
                                                              : g_inet_address_new_from_string (host);
  if (!addr) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "--host %s: not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)", host);
    return FALSE;
  }
  if (server->o.port < 0 || server->o.port > 65535) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "--port %d: expected 0 to 65535", server->o.port);
    return FALSE;
  }
  g_autoptr (GSocketAddress) where = g_inet_socket_address_new (addr, (guint16) server->o.port);
  g_autoptr (GError) why = NULL;
  if (!soup_server_listen (server->soup, where, 0, &why)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "cannot listen on %s port %d: %s", host, server->o.port,
                 why->message);
    return FALSE;
  }
  GSList *uris = soup_server_get_uris (server->soup);
  int port = uris ? g_uri_get_port (uris->data) : server->o.port;
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  gboolean v6 = g_inet_address_get_family (addr) == G_SOCKET_FAMILY_IPV6;
  printf ("cria serve: listening on http://%s%s%s:%d/v1\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
  fflush (stdout);
  return TRUE;
}

/* Stops the worker and drops what is still waiting; the clients are gone with the server. */
static void
shut_down (Server *server)
{
  soup_server_disconnect (server->soup);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, server->jobs);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    ((Job *) key)->gone = TRUE;
    g_cancellable_cancel (((Job *) key)->cancel);
  }
  g_thread_pool_free (server->pool, TRUE, TRUE);
  /* The worker's last flushes free the jobs it finished. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_hash_table_iter_init (&it, server->jobs);
  while (g_hash_table_iter_next (&it, &key, NULL))
    job_free (key);
}

gboolean
cria_server_run (const CriaServerOptions *options, GError **error)
{
  Server server = { .o = *options, .started = g_get_real_time () / G_USEC_PER_SEC };
  server.o.max_concurrent = MAX (server.o.max_concurrent, 1);
  server.soup = soup_server_new ("server-header", "cria/" PACKAGE_VERSION " ", NULL);
  soup_server_add_early_handler (server.soup, NULL, early, &server, NULL);
  soup_server_add_handler (server.soup, NULL, handle, &server, NULL);
  if (server.o.log_requests) {
    g_signal_connect (server.soup, "request-started", G_CALLBACK (log_started), NULL);
    g_signal_connect (server.soup, "request-finished", G_CALLBACK (log_finished), NULL);
    g_signal_connect (server.soup, "request-aborted", G_CALLBACK (log_aborted), NULL);
  }
  if (!listen_on (&server, error)) {
    g_object_unref (server.soup);
    return FALSE;
  }
  server.jobs = g_hash_table_new (NULL, NULL);
  server.pool = g_thread_pool_new (run_job, &server, 1, TRUE, NULL);
  server.context = g_main_context_default ();
  server.loop = g_main_loop_new (server.context, FALSE);
  guint sigint = g_unix_signal_add (SIGINT, on_signal, &server);
  guint sigterm = g_unix_signal_add (SIGTERM, on_signal, &server);
  g_main_loop_run (server.loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  shut_down (&server);
  g_hash_table_unref (server.jobs);
  g_main_loop_unref (server.loop);
  g_object_unref (server.soup);
  return TRUE;
}
