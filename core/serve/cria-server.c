/* cria-server.c: the HTTP side of `cria serve` (libsoup 3).
 *
 *   cria serve --model ../shared/models/stories260K --port 0
 *
 * The main loop accepts connections, reads and checks requests and writes
 * answers; worker threads run the model, in the order requests came: one
 * at a time, or as many as the runner decodes together (its batch), a
 * request joining the running batch at its next step and leaving it when
 * done or given up. A request waits paused in libsoup until its worker hands
 * text back through the main context; more than --max-concurrent admitted at
 * once are turned away with 503 rather than queued without bound.
 *
 * cria accepts the connections itself and hands each to libsoup, so that it
 * can hold out against clients that mean harm, which libsoup 3.2 alone does
 * not: accepting goes on after EMFILE (after a pause) where libsoup's
 * listener stops for good; every connection carries one request and is then
 * closed (libsoup 3.2 leaks the descriptor of an idle keep-alive connection
 * that its client closes); a connection that does not send its headers in
 * time, or stalls while no request of it runs, is shut; and a request whose
 * framing is bad or whose body is over --max-body is answered before its
 * body is read (from the connection taken back from libsoup), and what the
 * client still sends is read and dropped for a while so that it sees the
 * answer rather than a reset. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <gio/gnetworking.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include "cria-server.h"
#include "serve-http.h"
#include "serve-request.h"

typedef struct _CriaServer Server;

struct _CriaServer {
  CriaServerOptions o;
  SoupServer *soup;
  GMainContext *context; /* the main thread's, where libsoup runs */
  GMainLoop *loop;
  GThreadPool *pool;
  GHashTable *jobs; /* Job*: admitted and not yet answered (main thread only) */
  gint64 started;
  GHashTable *conns; /* Conn*: every connection not yet closed */
  GSocket *listener;
  GSource *accepting; /* NULL while accepting pauses after an error */
  guint backoff_ms, resume, sweep;
  ServeVocab *vocab; /* the workers', made at the first response_format request (under vocab_lock) */
  GMutex vocab_lock;
  gint32 anchor; /* the decoding worker's: serve_token_anchor */
  gboolean anchored;
  guint8 key_digest[32];
};

/* A connection, from its accept to the last reference libsoup drops on its
 * stream. Times are monotonic microseconds. */
typedef enum { CONN_HEADERS, CONN_BODY, CONN_BUSY, CONN_ANSWER, CONN_REFUSED } ConnState;

typedef struct {
  Server *server;
  GSocket *socket; /* NULL for streams without one (the fuzz target) */
  GObject *stream; /* weak: libsoup owns it */
  GSocketAddress *remote;
  ConnState state;
  gint64 opened, last; /* last: when bytes last moved */
  guint64 body;        /* request body bytes seen */
  gboolean shut;       /* shut by a timeout */
  /* CONN_REFUSED: our own answer, then the client's bytes read and dropped */
  GIOStream *stolen;
  GBytes *answer;
  gsize sent;
  GSource *watch;
  gint64 linger_until;
  struct _Job *job; /* the request of it that the model has */
} Conn;

#define LINGER_SECONDS 2
#define LINGER_MAX_BYTES (64u << 20)

typedef struct _Job {
  Server *server;
  Conn *conn; /* NULL once the connection is gone */
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
  GArray **logprobs; /* ServeTokenLogprob per choice, with logprobs */
  guint lp_sent;     /* of the running choice's, streamed already */
  float *raw;        /* the logits of the next token as the model gave them */
  gint64 n_raw;
  double raw_lse; /* their log-sum-exp */
  ServeGrammar *grammar;
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
  g_free (job->id);
  g_object_unref (job->cancel);
  g_mutex_clear (&job->lock);
  g_string_free (job->pending, TRUE);
  g_free (job->body);
  g_free (job->raw);
  g_clear_pointer (&job->grammar, serve_grammar_free);
  for (guint i = 0; job->logprobs && i < serve_request_n_choices (&job->req); i++)
    g_clear_pointer (&job->logprobs[i], g_array_unref);
  g_free (job->logprobs);
  serve_request_clear (&job->req);
  if (job->conn) {
    job->conn->state = CONN_ANSWER;
    job->conn->last = g_get_monotonic_time ();
    job->conn->job = NULL;
  }
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
    push_event (job, serve_chunk_event (&job->answer, job->choice, TRUE, "", NULL, NULL, 0));
  job->choice_open = TRUE;
}

/* Worker thread: the text of the running choice, as chunks. */
static gboolean
stream_piece (const char *piece, gpointer data)
{
  Job *job = data;
  open_choice (job);
  if (*piece) {
    GArray *lp = job->logprobs ? job->logprobs[job->choice] : NULL;
    push_event (job, serve_chunk_event (&job->answer, job->choice, FALSE, piece, NULL, lp, job->lp_sent));
    job->lp_sent = lp ? lp->len : 0;
  }
  return TRUE;
}

/* Worker thread, before each token: keeps the model's logits for
 * logprobs, then masks what response_format cannot take. */
static gboolean
on_logits (float *logits, gint64 vocab, const gint32 *generated, gsize n_generated, gint64 remaining, gpointer data)
{
  Job *job = data;
  if (job->logprobs) {
    if (!job->raw)
      job->raw = g_new (float, vocab);
    job->n_raw = vocab;
    memcpy (job->raw, logits, (gsize) vocab * sizeof (float));
    float max = -INFINITY;
    for (gint64 i = 0; i < vocab; i++)
      max = MAX (max, logits[i]);
    double sum = 0;
    for (gint64 i = 0; i < vocab; i++)
      sum += exp ((double) logits[i] - max);
    job->raw_lse = max + log (sum);
  }
  if (job->grammar) {
    /* The document is whole (or cannot go on): the answer ends here. */
    if (serve_grammar_done (job->grammar) ||
        !serve_grammar_mask (job->grammar, job->server->vocab, logits, vocab, remaining))
      return FALSE;
  }
  return TRUE;
}

/* A token as it shows in the answer's text: the first one decoded alone,
 * as the answer's text is (a SentencePiece "▁time" opens it as "time"),
 * the others in the middle of a text. */
static char *
token_text (Job *job, gint32 id, gboolean first)
{
  Server *server = job->server;
  CriaTokenizer *tok = cria_lm_runner_get_tokenizer (server->o.runner);
  if (!server->anchored) {
    server->anchor = serve_token_anchor (tok);
    server->anchored = TRUE;
  }
  return serve_token_text (tok, first ? -1 : server->anchor, id, FALSE);
}

/* Worker thread, after each token drawn. */
static void
on_token (gint32 id, gpointer data)
{
  Job *job = data;
  if (job->grammar)
    serve_grammar_feed_token (job->grammar, job->server->vocab, id);
  if (!job->logprobs || !job->raw)
    return;
  gboolean first = job->logprobs[job->choice]->len == 0;
  ServeTokenLogprob t = { .token = token_text (job, id, first), .logprob = (float) (job->raw[id] - job->raw_lse) };
  /* The most likely tokens, best first (ties: the lower id). */
  guint want = MIN (job->req.top_logprobs, SERVE_MAX_TOP);
  gint32 top[SERVE_MAX_TOP];
  for (guint k = 0; k < want; k++) {
    gint32 best = -1;
    for (gint64 i = 0; i < job->n_raw; i++) {
      gboolean taken = FALSE;
      for (guint j = 0; j < k && !taken; j++)
        taken = top[j] == i;
      if (!taken && (best < 0 || job->raw[i] > job->raw[best]))
        best = (gint32) i;
    }
    if (best < 0)
      break;
    top[k] = best;
    t.top_token[k] = token_text (job, best, first);
    t.top_logprob[k] = (float) (job->raw[best] - job->raw_lse);
    t.n_top = k + 1;
  }
  g_array_append_val (job->logprobs[job->choice], t);
}

static void
fail (Job *job, const GError *error)
{
  gboolean client = error->domain == CRIA_ERROR && error->code == CRIA_ERROR_INVALID_ARGUMENT;
  const char *type = client ? "invalid_request_error" : "server_error";
  /* The runner names the field its message is about ("prompt: ..."). */
  const char *param = !client                                         ? NULL
                      : g_str_has_prefix (error->message, "prompt")   ? "prompt"
                      : g_str_has_prefix (error->message, "messages") ? "messages"
                                                                      : NULL;
  g_autofree char *body = serve_error_body (error->message, type, param, NULL);
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
  if (job->req.logprobs) {
    job->logprobs = g_new0 (GArray *, n);
    for (guint i = 0; i < n; i++) {
      job->logprobs[i] = g_array_new (FALSE, TRUE, sizeof (ServeTokenLogprob));
      g_array_set_clear_func (job->logprobs[i], serve_token_logprob_clear);
    }
  }
  /* Every token's text, once, for response_format's masks. */
  g_mutex_lock (&server->vocab_lock);
  if (job->req.json && !server->vocab)
    server->vocab = serve_vocab_new (cria_lm_runner_get_tokenizer (server->o.runner));
  g_mutex_unlock (&server->vocab_lock);
  CriaLmRunnerHooks hooks = { job->req.presence_penalty, job->req.frequency_penalty, on_logits, on_token, job };
  for (guint i = 0; i < n && !error; i++) {
    results[i].prompt_tokens = results[i].completion_tokens = -1;
    CriaGenRequest gr = serve_request_gen (&job->req, i);
    job->choice = i;
    job->choice_open = FALSE;
    job->lp_sent = 0;
    g_clear_pointer (&job->grammar, serve_grammar_free);
    if (job->req.json)
      job->grammar = serve_grammar_new (job->req.schema);
    if (!cria_lm_runner_generate_full (server->o.runner, &gr, &hooks, job->req.stream ? stream_piece : NULL, job,
                                       job->cancel, &results[i], &error))
      break;
    if (job->req.stream) {
      open_choice (job);
      push_event (job, serve_chunk_event (&job->answer, i, FALSE, NULL, results[i].finish_reason,
                                          job->logprobs ? job->logprobs[i] : NULL, job->lp_sent));
    }
  }
  if (error) {
    fail (job, error);
  } else if (job->req.stream) {
    if (job->req.include_usage)
      push_event (job, serve_usage_event (&job->answer, results, n));
    push_event (job, g_strdup ("data: [DONE]\n\n"));
  } else {
    char *body = serve_answer_body (&job->answer, results, job->logprobs, n);
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

/* The connection a message came on: cria's record hangs on the remote
 * address object it handed to libsoup with the stream. */
static Conn *
conn_of (SoupServerMessage *msg)
{
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  return remote ? g_object_get_data (G_OBJECT (remote), "cria-conn") : NULL;
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
  job->on_finished = g_signal_connect (msg, "finished", G_CALLBACK (job_gone), job);
  job->on_disconnected = g_signal_connect (msg, "disconnected", G_CALLBACK (job_gone), job);
  /* While the model works the connection may be silent for long. */
  job->conn = conn_of (msg);
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

static void
handle (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Server *server = data;
  const char *method = soup_server_message_get_method (msg);
  /* One request per connection: see the top of the file. */
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
    respond (msg, SOUP_STATUS_OK, "{\"status\":\"ok\"}");
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
    respond (msg, SOUP_STATUS_OK, body);
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
    respond (msg, SOUP_STATUS_OK, body);
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

/* --log-requests: when each request came, so that its line can say how long it took. */
static void
log_started (SoupServerMessage *msg)
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
  GUri *uri = soup_server_message_get_uri (msg);
  const char *method = soup_server_message_get_method (msg);
  g_autofree char *path = cria_error_quote (uri ? g_uri_get_path (uri) : "-", -1, 80);
  g_printerr ("cria serve: %s %s %s %s %.3f s\n", host ? host : "-", method ? method : "-", path, status, seconds);
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

/* Connections ------------------------------------------------------------ */

static void conn_close_refused (Conn *conn);

/* libsoup dropped the stream, or cria closed a refused one. */
static void
conn_gone (gpointer data, GObject *where_the_stream_was)
{
  Conn *conn = data;
  if (conn->job)
    conn->job->conn = NULL;
  if (conn->watch) {
    g_source_destroy (conn->watch);
    g_source_unref (conn->watch);
  }
  g_clear_pointer (&conn->answer, g_bytes_unref);
  g_object_set_data (G_OBJECT (conn->remote), "cria-conn", NULL);
  g_object_unref (conn->remote);
  /* Closed with the stream already; this is for a stream libsoup leaked. */
  if (conn->socket)
    g_socket_close (conn->socket, NULL);
  g_clear_object (&conn->socket);
  g_hash_table_remove (conn->server->conns, conn);
  g_free (conn);
}

/* Ends a connection that timed out: libsoup sees it end and lets it go. */
static void
conn_shut (Conn *conn)
{
  if (conn->state == CONN_REFUSED) {
    conn_close_refused (conn);
    return;
  }
  if (conn->shut) {
    /* libsoup did not let go after the shutdown: free the descriptor now. */
    if (conn->socket)
      g_socket_close (conn->socket, NULL);
    return;
  }
  conn->shut = TRUE;
  conn->last = g_get_monotonic_time ();
  if (conn->socket)
    g_socket_shutdown (conn->socket, TRUE, TRUE, NULL);
}

/* The timeouts, checked a few times a second for every connection. */
static gboolean
sweep (gpointer data)
{
  Server *server = data;
  gint64 now = g_get_monotonic_time ();
  g_autoptr (GPtrArray) due = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, server->conns);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    Conn *c = key;
    gboolean late = FALSE;
    if (c->shut)
      late = now - c->last > 5 * G_USEC_PER_SEC;
    else if (c->state == CONN_REFUSED)
      late = now > c->linger_until;
    else if (c->state == CONN_HEADERS)
      late = now - c->opened > (gint64) server->o.header_timeout * G_USEC_PER_SEC;
    else if (c->state != CONN_BUSY)
      late = now - c->last > (gint64) server->o.idle_timeout * G_USEC_PER_SEC;
    if (late)
      g_ptr_array_add (due, c);
  }
  /* Not while iterating: shutting one may free it. */
  for (guint i = 0; i < due->len; i++)
    conn_shut (g_ptr_array_index (due, i));
  return G_SOURCE_CONTINUE;
}

static void
conn_close_refused (Conn *conn)
{
  if (conn->watch) {
    g_source_destroy (conn->watch);
    g_clear_pointer (&conn->watch, g_source_unref);
  }
  GIOStream *stolen = g_steal_pointer (&conn->stolen);
  if (stolen) {
    g_io_stream_close (stolen, NULL, NULL);
    /* The last reference to the stream: conn_gone frees conn. */
    g_object_unref (stolen);
  }
}

/* After the answer: the client's bytes are read and dropped until it closes
 * or the time or byte budget is spent, so that a client still sending its
 * body reads the answer instead of a reset. */
static gboolean
linger (GSocket *socket, GIOCondition cond, gpointer data)
{
  Conn *conn = data;
  char buf[16384];
  for (guint i = 0; i < 64; i++) {
    g_autoptr (GError) error = NULL;
    gssize n = g_socket_receive_with_blocking (socket, buf, sizeof buf, FALSE, NULL, &error);
    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return G_SOURCE_CONTINUE;
    conn->body += n > 0 ? (guint64) n : 0;
    if (n <= 0 || conn->body > LINGER_MAX_BYTES) {
      conn_close_refused (conn);
      return G_SOURCE_REMOVE;
    }
  }
  return G_SOURCE_CONTINUE;
}

static void
start_linger (Conn *conn)
{
  g_clear_pointer (&conn->answer, g_bytes_unref);
  if (conn->watch) {
    g_source_destroy (conn->watch);
    g_clear_pointer (&conn->watch, g_source_unref);
  }
  if (!conn->socket) {
    conn_close_refused (conn);
    return;
  }
  g_socket_shutdown (conn->socket, FALSE, TRUE, NULL);
  conn->watch = g_socket_create_source (conn->socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (conn->watch, (GSourceFunc) (void (*) (void)) linger, conn, NULL);
  g_source_attach (conn->watch, conn->server->context);
}

/* Writes what is left of the answer; once it is out, lingers. */
static gboolean
write_answer (GObject *pollable, gpointer data)
{
  Conn *conn = data;
  GOutputStream *out = g_io_stream_get_output_stream (conn->stolen);
  gsize len = 0;
  const char *text = g_bytes_get_data (conn->answer, &len);
  while (conn->sent < len) {
    g_autoptr (GError) error = NULL;
    gssize n = G_IS_POLLABLE_OUTPUT_STREAM (out)
                   ? g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (out), text + conn->sent,
                                                                 len - conn->sent, NULL, &error)
                   : g_output_stream_write (out, text + conn->sent, len - conn->sent, NULL, &error);
    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      if (!conn->watch) {
        conn->watch = g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (out), NULL);
        g_source_set_callback (conn->watch, (GSourceFunc) (void (*) (void)) write_answer, conn, NULL);
        g_source_attach (conn->watch, conn->server->context);
      }
      return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
      conn_close_refused (conn);
      return G_SOURCE_REMOVE;
    }
    conn->sent += (gsize) n;
  }
  start_linger (conn);
  return G_SOURCE_REMOVE;
}

/* Answers before the body is read: the connection is taken back from
 * libsoup (which would otherwise read the whole body first) and the answer
 * written by hand. */
static void
refuse (Conn *conn, SoupServerMessage *msg, guint status, const char *why, const char *code)
{
  Server *server = conn->server;
  g_autofree char *body = serve_error_body (why, "invalid_request_error", NULL, code);
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *date = soup_date_time_to_string (now, SOUP_DATE_HTTP);
  char *text = g_strdup_printf ("HTTP/1.1 %u %s\r\nDate: %s\r\nServer: cria/" PACKAGE_VERSION "\r\n"
                                "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                status, soup_status_get_phrase (status), date, strlen (body), body);
  if (server->o.log_requests) {
    g_autofree char *shown = g_strdup_printf ("%u", status);
    log_line (msg, shown);
  }
  conn->state = CONN_REFUSED;
  conn->linger_until = g_get_monotonic_time () + LINGER_SECONDS * G_USEC_PER_SEC;
  conn->body = 0;
  conn->answer = g_bytes_new_take (text, strlen (text));
  conn->stolen = soup_server_message_steal_connection (msg);
  if (!conn->stolen) {
    g_clear_pointer (&conn->answer, g_bytes_unref);
    return;
  }
  write_answer (NULL, conn);
}

static void
got_headers (SoupServerMessage *msg, gpointer data)
{
  Conn *conn = conn_of (msg);
  if (!conn || conn->state != CONN_HEADERS)
    return;
  conn->state = CONN_BODY;
  conn->last = g_get_monotonic_time ();
  g_autofree char *why = NULL;
  const char *code = NULL;
  guint status = serve_http_check_headers (soup_server_message_get_request_headers (msg), conn->server->o.max_body,
                                           &why, &code);
  if (status)
    refuse (conn, msg, status, why, code);
}

/* A body chunk: a chunked body is counted as it comes. */
static void
got_chunk (SoupServerMessage *msg, GBytes *chunk, gpointer data)
{
  Conn *conn = conn_of (msg);
  if (!conn || conn->state != CONN_BODY)
    return;
  conn->last = g_get_monotonic_time ();
  conn->body += g_bytes_get_size (chunk);
  if (conn->body > conn->server->o.max_body) {
    g_autofree char *why = g_strdup_printf ("the body is larger than %" G_GSIZE_FORMAT " bytes",
                                            conn->server->o.max_body);
    refuse (conn, msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, why, "body_too_large");
  }
}

static void
wrote (SoupServerMessage *msg, gpointer data)
{
  Conn *conn = conn_of (msg);
  if (conn)
    conn->last = g_get_monotonic_time ();
}

/* Each write of the answer, however small: a slow reader is not idle. */
static void
wrote_data (SoupServerMessage *msg, guint size, gpointer data)
{
  wrote (msg, data);
}

static void
request_started (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  Server *server = data;
  if (server->o.log_requests)
    log_started (msg);
  g_signal_connect (msg, "got-headers", G_CALLBACK (got_headers), NULL);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (got_chunk), NULL);
  g_signal_connect (msg, "wrote-headers", G_CALLBACK (wrote), NULL);
  g_signal_connect (msg, "wrote-body-data", G_CALLBACK (wrote_data), NULL);
}

void
cria_server_add_stream (Server *server, GIOStream *stream, GSocket *socket, GSocketAddress *local,
                        GSocketAddress *remote)
{
  Conn *conn = g_new0 (Conn, 1);
  conn->server = server;
  conn->socket = socket ? g_object_ref (socket) : NULL;
  conn->stream = G_OBJECT (stream);
  conn->remote = g_object_ref (remote);
  conn->state = CONN_HEADERS;
  conn->opened = conn->last = g_get_monotonic_time ();
  g_object_set_data (G_OBJECT (remote), "cria-conn", conn);
  g_object_weak_ref (conn->stream, conn_gone, conn);
  g_hash_table_add (server->conns, conn);
  /* libsoup may answer and drop the stream before this returns. */
  soup_server_accept_iostream (server->soup, stream, local, remote, NULL);
}

static gboolean accept_ready (GSocket *listener, GIOCondition cond, gpointer data);

static void
watch_listener (Server *server)
{
  server->accepting = g_socket_create_source (server->listener, G_IO_IN, NULL);
  g_source_set_callback (server->accepting, (GSourceFunc) (void (*) (void)) accept_ready, server, NULL);
  g_source_attach (server->accepting, server->context);
}

static gboolean
resume_accepting (gpointer data)
{
  Server *server = data;
  server->resume = 0;
  watch_listener (server);
  return G_SOURCE_REMOVE;
}

static void
take_socket (Server *server, GSocket *socket)
{
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, TRUE, NULL);
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (socket, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_get_remote_address (socket, NULL);
  if (!local || !remote) {
    /* Gone before it was looked at. */
    g_socket_close (socket, NULL);
    return;
  }
  g_autoptr (GSocketConnection) stream = g_socket_connection_factory_create_connection (socket);
  cria_server_add_stream (server, G_IO_STREAM (stream), socket, local, remote);
}

/* Accepts what is waiting. When accept fails (EMFILE and ENFILE above all,
 * which a level-triggered watch would turn into a busy loop) the watch is
 * dropped and comes back after a pause that doubles up to a second, so that
 * connections closing in the meantime give their descriptors back first. */
static gboolean
accept_ready (GSocket *listener, GIOCondition cond, gpointer data)
{
  Server *server = data;
  for (guint i = 0; i < 64; i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (GSocket) socket = g_socket_accept (listener, NULL, &error);
    if (socket) {
      if (server->backoff_ms)
        g_printerr ("cria serve: accepting connections again\n");
      server->backoff_ms = 0;
      take_socket (server, socket);
      continue;
    }
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return G_SOURCE_CONTINUE;
    if (!server->backoff_ms)
      g_printerr ("cria serve: cannot accept a connection: %s; trying again shortly\n", error->message);
    server->backoff_ms = CLAMP (server->backoff_ms * 2, 10, 1000);
    g_clear_pointer (&server->accepting, g_source_unref);
    server->resume = g_timeout_add (server->backoff_ms, resume_accepting, server);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
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
  GSocketFamily family = g_inet_address_get_family (addr);
  server->listener = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &why);
  if (server->listener && family == G_SOCKET_FAMILY_IPV6)
    g_socket_set_option (server->listener, IPPROTO_IPV6, IPV6_V6ONLY, TRUE, NULL);
  /* Room for bursts of connections, as nginx's default. */
  if (server->listener)
    g_socket_set_listen_backlog (server->listener, 511);
  if (!server->listener || !g_socket_bind (server->listener, where, TRUE, &why) ||
      !g_socket_listen (server->listener, &why)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "cannot listen on %s port %d: %s", host, server->o.port,
                 why->message);
    return FALSE;
  }
  g_socket_set_blocking (server->listener, FALSE);
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (server->listener, NULL);
  int port = bound ? g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)) : server->o.port;
  gboolean v6 = family == G_SOCKET_FAMILY_IPV6;
  printf ("%s: listening on http://%s%s%s:%d/%s\n", server->o.announce ? server->o.announce : "cria serve",
          v6 ? "[" : "", host, v6 ? "]" : "", port, server->o.announce ? "" : "v1");
  fflush (stdout);
  watch_listener (server);
  return TRUE;
}

Server *
cria_server_new (const CriaServerOptions *options)
{
  Server *server = g_new0 (Server, 1);
  server->o = *options;
  server->started = g_get_real_time () / G_USEC_PER_SEC;
  server->o.max_concurrent = MAX (server->o.max_concurrent, 1);
  server->o.header_timeout = MAX (server->o.header_timeout, 1);
  server->o.idle_timeout = MAX (server->o.idle_timeout, 1);
  if (server->o.api_key) {
    gsize len = sizeof server->key_digest;
    g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
    g_checksum_update (sum, (const guchar *) server->o.api_key, (gssize) strlen (server->o.api_key));
    g_checksum_get_digest (sum, server->key_digest, &len);
  }
  server->soup = soup_server_new ("server-header", "cria/" PACKAGE_VERSION " ", NULL);
  soup_server_add_handler (server->soup, NULL, handle, server, NULL);
  g_signal_connect (server->soup, "request-started", G_CALLBACK (request_started), server);
  if (server->o.log_requests) {
    g_signal_connect (server->soup, "request-finished", G_CALLBACK (log_finished), NULL);
    g_signal_connect (server->soup, "request-aborted", G_CALLBACK (log_aborted), NULL);
  }
  server->jobs = g_hash_table_new (NULL, NULL);
  server->conns = g_hash_table_new (NULL, NULL);
  g_mutex_init (&server->vocab_lock);
  server->context = g_main_context_default ();
  if (server->o.runner)
    server->pool = g_thread_pool_new (run_job, server, (gint) cria_lm_runner_get_batch (server->o.runner), TRUE, NULL);
  server->sweep = g_timeout_add (250, sweep, server);
  return server;
}

gboolean
cria_server_set_runner (Server *server, CriaLmRunner *runner, const char *model_name)
{
  if (g_hash_table_size (server->jobs) > 0)
    return FALSE;
  /* No job: the worker is idle and holds nothing of the old model. */
  server->o.runner = runner;
  server->o.model_name = model_name;
  g_clear_pointer (&server->vocab, serve_vocab_free);
  server->anchored = FALSE;
  if (runner && !server->pool)
    server->pool = g_thread_pool_new (run_job, server, 1, TRUE, NULL);
  return TRUE;
}

guint
cria_server_get_n_connections (Server *server)
{
  return g_hash_table_size (server->conns);
}

void
cria_server_free (Server *server)
{
  if (server->accepting) {
    g_source_destroy (server->accepting);
    g_source_unref (server->accepting);
  }
  if (server->resume)
    g_source_remove (server->resume);
  g_source_remove (server->sweep);
  soup_server_disconnect (server->soup);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, server->jobs);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    ((Job *) key)->gone = TRUE;
    g_cancellable_cancel (((Job *) key)->cancel);
  }
  if (server->pool)
    g_thread_pool_free (server->pool, TRUE, TRUE);
  /* The worker's last flushes free the jobs it finished. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_hash_table_iter_init (&it, server->jobs);
  while (g_hash_table_iter_next (&it, &key, NULL))
    job_free (key);
  g_hash_table_unref (server->jobs);
  /* Refused connections still lingering, and any libsoup let go of late. */
  g_autoptr (GList) left = g_hash_table_get_keys (server->conns);
  for (GList *l = left; l; l = l->next) {
    Conn *c = l->data;
    if (c->state == CONN_REFUSED)
      conn_close_refused (c);
  }
  g_object_unref (server->soup);
  g_clear_pointer (&left, g_list_free);
  left = g_hash_table_get_keys (server->conns);
  for (GList *l = left; l; l = l->next) {
    Conn *c = l->data;
    g_object_weak_unref (c->stream, conn_gone, c);
    conn_gone (c, NULL);
  }
  g_hash_table_unref (server->conns);
  serve_vocab_free (server->vocab);
  g_mutex_clear (&server->vocab_lock);
  if (server->listener)
    g_socket_close (server->listener, NULL);
  g_clear_object (&server->listener);
  g_free (server);
}

gboolean
cria_server_run (const CriaServerOptions *options, GError **error)
{
  Server *server = cria_server_new (options);
  if (!listen_on (server, error)) {
    cria_server_free (server);
    return FALSE;
  }
  server->loop = g_main_loop_new (server->context, FALSE);
  guint sigint = g_unix_signal_add (SIGINT, on_signal, server);
  guint sigterm = g_unix_signal_add (SIGTERM, on_signal, server);
  g_main_loop_run (server->loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_main_loop_unref (server->loop);
  cria_server_free (server);
  return TRUE;
}
