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
 * answer rather than a reset.
 *
 * Here: listening, accepting, and the server's life; the routes, the jobs
 * and the connections are in the files cria-server-private.h names. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <gio/gnetworking.h>
#include <glib-unix.h>

#include "cria-server-private.h"

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
  soup_server_add_handler (server->soup, NULL, serve_handle, server, NULL);
  g_signal_connect (server->soup, "request-started", G_CALLBACK (serve_conn_request_started), server);
  if (server->o.log_requests) {
    g_signal_connect (server->soup, "request-finished", G_CALLBACK (serve_log_finished), NULL);
    g_signal_connect (server->soup, "request-aborted", G_CALLBACK (serve_log_aborted), NULL);
  }
  server->jobs = g_hash_table_new (NULL, NULL);
  server->conns = g_hash_table_new (NULL, NULL);
  g_mutex_init (&server->vocab_lock);
  server->context = g_main_context_default ();
  if (server->o.runner)
    server->pool = g_thread_pool_new (serve_job_run, server, (gint) cria_lm_runner_get_batch (server->o.runner), TRUE,
                                      NULL);
  server->sweep = g_timeout_add (250, serve_conn_sweep, server);
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
    server->pool = g_thread_pool_new (serve_job_run, server, 1, TRUE, NULL);
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
    serve_job_free (key);
  g_hash_table_unref (server->jobs);
  /* Refused connections still lingering, and any libsoup let go of late. */
  g_autoptr (GList) left = g_hash_table_get_keys (server->conns);
  for (GList *l = left; l; l = l->next) {
    Conn *c = l->data;
    if (c->state == CONN_REFUSED)
      serve_conn_close_refused (c);
  }
  g_object_unref (server->soup);
  g_clear_pointer (&left, g_list_free);
  left = g_hash_table_get_keys (server->conns);
  for (GList *l = left; l; l = l->next) {
    Conn *c = l->data;
    g_object_weak_unref (c->stream, serve_conn_gone, c);
    serve_conn_gone (c, NULL);
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
