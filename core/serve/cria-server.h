/* cria-server.h: the OpenAI-compatible HTTP server behind `cria serve`. */
#pragma once

#include <cria/cria.h>

/* libsoup's, declared here so that the cria program (which does not see
 * libsoup's headers) can include this one. */
typedef struct _SoupServerMessage SoupServerMessage;

typedef struct _CriaServer CriaServer;

/* A handler of the routes outside /v1 and /health (`cria ui`'s page and
 * API): returns FALSE to let the server answer 404. It checks the API key
 * itself (cria_server_authorized), so that it can serve public files. */
typedef gboolean (*CriaServerRoute) (CriaServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                                     gpointer data);

typedef struct {
  const char *host;                /* an address to listen on: "127.0.0.1", "0.0.0.0", "::" */
  int port;                        /* 0: any free port */
  const char *model_name;          /* the id of /v1/models, and what requests may name */
  guint max_concurrent;            /* requests admitted at once (running and waiting) */
  gsize max_body;                  /* bytes of a request body */
  CriaLmRunner *runner;            /* borrowed; used from as many worker threads as its batch */
  gboolean log_requests;           /* one line on stderr per request answered */
  guint header_timeout;            /* seconds from a connection's opening to the end of its request headers */
  guint idle_timeout;              /* seconds a connection may read or write nothing while no request of it runs */
  const char *api_key;             /* NULL: none; else every route but /health and CORS preflights needs
                           * "Authorization: Bearer KEY" */
  const char *const *cors_origins; /* NULL-terminated origins browsers may call from ("*": any); NULL: none */
  CriaServerRoute route;           /* NULL: none */
  gpointer route_data;
  const char *announce; /* NULL: "cria serve: listening on http://HOST:PORT/v1"; else its "cria serve"; the
                         * URL then ends in "/" */
} CriaServerOptions;

/* Listens, prints "cria serve: listening on http://HOST:PORT/v1" on stdout,
 * and answers until SIGINT or SIGTERM. With log_requests, each request
 * answered (or given up by its client) adds a line on stderr:
 * "cria serve: ADDR METHOD PATH STATUS BYTES SECONDS s". */
gboolean cria_server_run (const CriaServerOptions *options, GError **error);

/* What cria's serve module (cria-serve.so) exports as cria_module_serve:
 * the cria program reaches the server only through it. */
typedef struct {
  gsize size; /* sizeof (CriaServeModule) of the module's build */
  gboolean (*run) (const CriaServerOptions *options, GError **error);
} CriaServeModule;

/* The server without a listening socket, for the fuzz target: streams are
 * handed to it one by one and the caller iterates the default main context.
 * With no runner, a request that passes every check is answered 503. */
CriaServer *cria_server_new (const CriaServerOptions *options);
/* `socket` (may be NULL) is the stream's socket, for timeouts and for
 * draining a refused body. */
void cria_server_add_stream (CriaServer *server, GIOStream *stream, GSocket *socket, GSocketAddress *local,
                             GSocketAddress *remote);
/* Connections not yet let go of. */
guint cria_server_get_n_connections (CriaServer *server);
void cria_server_free (CriaServer *server);

/* Whether the request carries the server's API key (TRUE without one). */
gboolean cria_server_authorized (CriaServer *server, SoupServerMessage *msg);
/* Replaces the model the /v1 routes answer with (borrowed; NULL: none,
 * requests get 503), and its id. Refused (FALSE) while a request of the
 * previous one is admitted: the worker may be using it. Main thread. */
gboolean cria_server_set_runner (CriaServer *server, CriaLmRunner *runner, const char *model_name);
