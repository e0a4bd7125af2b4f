/* serve-conn.c: the connections of `cria serve`, from accept to close: their
 * timeouts, a request refused before its body is read (then the client's
 * bytes read and dropped for a while), and the lines of --log-requests. */
#include "config.h"

#include <string.h>

#include "cria-server-private.h"
#include "serve-http.h"

/* The connection a message came on: cria's record hangs on the remote
 * address object it handed to libsoup with the stream. */
Conn *
serve_conn_of (SoupServerMessage *msg)
{
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  return remote ? g_object_get_data (G_OBJECT (remote), "cria-conn") : NULL;
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

void
serve_log_finished (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  g_autofree char *status = g_strdup_printf ("%u", soup_server_message_get_status (msg));
  log_line (msg, status);
}

void
serve_log_aborted (SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
  log_line (msg, "aborted");
}

/* Connections ------------------------------------------------------------ */

/* libsoup dropped the stream, or cria closed a refused one. */
void
serve_conn_gone (gpointer data, GObject *where_the_stream_was)
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
    serve_conn_close_refused (conn);
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
gboolean
serve_conn_sweep (gpointer data)
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

void
serve_conn_close_refused (Conn *conn)
{
  if (conn->watch) {
    g_source_destroy (conn->watch);
    g_clear_pointer (&conn->watch, g_source_unref);
  }
  GIOStream *stolen = g_steal_pointer (&conn->stolen);
  if (stolen) {
    g_io_stream_close (stolen, NULL, NULL);
    /* The last reference to the stream: serve_conn_gone frees conn. */
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
      serve_conn_close_refused (conn);
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
    serve_conn_close_refused (conn);
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
      serve_conn_close_refused (conn);
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
  Conn *conn = serve_conn_of (msg);
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
  Conn *conn = serve_conn_of (msg);
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
  Conn *conn = serve_conn_of (msg);
  if (conn)
    conn->last = g_get_monotonic_time ();
}

/* Each write of the answer, however small: a slow reader is not idle. */
static void
wrote_data (SoupServerMessage *msg, guint size, gpointer data)
{
  wrote (msg, data);
}

void
serve_conn_request_started (SoupServer *soup, SoupServerMessage *msg, gpointer data)
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
  g_object_weak_ref (conn->stream, serve_conn_gone, conn);
  g_hash_table_add (server->conns, conn);
  /* libsoup may answer and drop the stream before this returns. */
  soup_server_accept_iostream (server->soup, stream, local, remote, NULL);
}
