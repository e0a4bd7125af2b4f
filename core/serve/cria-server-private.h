/* cria-server-private.h: what the parts of the server share. cria-server.c
 * listens and holds the server; serve-routes.c answers the routes and
 * admits requests; serve-job.c runs a request on a worker thread and hands
 * its answer (whole, or as server-sent events) to the main thread;
 * serve-conn.c follows each connection (timeouts, refusals before the
 * body, --log-requests). */
#pragma once

#include <libsoup/soup.h>

#include "cria-server.h"
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

/* serve-routes.c */
G_GNUC_INTERNAL void serve_respond (SoupServerMessage *msg, guint status, const char *body);
/* The handler of every path (soup_server_add_handler). */
G_GNUC_INTERNAL void serve_handle (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                                   gpointer data);

/* serve-job.c */
/* The worker pool's function: runs the Job `data` of the Server `user_data`. */
G_GNUC_INTERNAL void serve_job_run (gpointer data, gpointer user_data);
G_GNUC_INTERNAL void serve_job_free (Job *job);
G_GNUC_INTERNAL void serve_job_gone (SoupServerMessage *msg, gpointer data);

/* serve-conn.c */
G_GNUC_INTERNAL Conn *serve_conn_of (SoupServerMessage *msg);
G_GNUC_INTERNAL void serve_conn_gone (gpointer data, GObject *where_the_stream_was);
G_GNUC_INTERNAL void serve_conn_close_refused (Conn *conn);
G_GNUC_INTERNAL gboolean serve_conn_sweep (gpointer data);
/* libsoup's request-started: follows the request's reading and writing. */
G_GNUC_INTERNAL void serve_conn_request_started (SoupServer *soup, SoupServerMessage *msg, gpointer data);
G_GNUC_INTERNAL void serve_log_finished (SoupServer *soup, SoupServerMessage *msg, gpointer data);
G_GNUC_INTERNAL void serve_log_aborted (SoupServer *soup, SoupServerMessage *msg, gpointer data);
