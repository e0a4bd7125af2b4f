/* serve-test-hostile.c: test-serve's hostile clients, each case ending with
 * a request that must succeed (see test-serve.c). */
#include <string.h>

#include "serve-test.h"

static const char models_request[] = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static guint16
port_of (const Server *s)
{
  g_autoptr (GUri) uri = g_uri_parse (s->url, G_URI_FLAGS_NONE, NULL);
  return (guint16) g_uri_get_port (uri);
}

static int
server_pid (const Server *s)
{
  return atoi (g_subprocess_get_identifier (s->proc));
}

/* The server's open descriptors. */
static guint
fd_count (const Server *s)
{
  g_autofree char *dir = g_strdup_printf ("/proc/%d/fd", server_pid (s));
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;
  while (d && g_dir_read_name (d))
    n++;
  return n;
}

static guint64
rss_kib (const Server *s)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", server_pid (s));
  g_autofree char *text = cria_test_read_file (path);
  const char *line = strstr (text, "VmRSS:");
  return line ? g_ascii_strtoull (line + 6, NULL, 10) : 0;
}

/* A blocking loopback socket whose reads and writes give up after `timeout` seconds. */
static GSocket *
raw_connect (const Server *s, guint timeout)
{
  g_autoptr (GError) error = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) where = g_inet_socket_address_new (lo, port_of (s));
  g_socket_set_timeout (sock, timeout);
  g_socket_connect (sock, where, NULL, &error);
  g_assert_no_error (error);
  return sock;
}

static gboolean
raw_send (GSocket *sock, const char *data, gsize len)
{
  gsize done = 0;
  while (done < len) {
    gssize n = g_socket_send (sock, data + done, len - done, NULL, NULL);
    if (n <= 0)
      return FALSE;
    done += (gsize) n;
  }
  return TRUE;
}

/* What the server sends until it closes (at most 64 KiB), or NULL if it
 * neither closes nor sends within the socket's timeout. *seconds: how long
 * until it closed. */
static char *
raw_read_all (GSocket *sock, double *seconds)
{
  gint64 t0 = g_get_monotonic_time ();
  GString *out = g_string_new (NULL);
  char buf[4096];
  for (;;) {
    g_autoptr (GError) error = NULL;
    gssize n = g_socket_receive (sock, buf, sizeof buf, NULL, &error);
    if (n > 0 && out->len < 65536) {
      g_string_append_len (out, buf, n);
      continue;
    }
    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
      g_string_free (out, TRUE);
      return NULL;
    }
    break; /* closed (or reset) */
  }
  if (seconds)
    *seconds = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;
  return g_string_free (out, FALSE);
}

static guint
status_of (const char *response)
{
  return response && g_str_has_prefix (response, "HTTP/1.1 ") ? (guint) atoi (response + 9) : 0;
}

/* One raw request; the whole answer, the server closing the connection after it. */
static char *
raw_request (const Server *s, const char *text)
{
  g_autoptr (GSocket) sock = raw_connect (s, 20);
  CU_ASSERT (raw_send (sock, text, strlen (text)));
  return raw_read_all (sock, NULL);
}

/* Every hostile case ends here: a plain request still gets its answer. */
static void
assert_alive (const Server *s)
{
  g_autofree char *r = raw_request (s, models_request);
  CU_ASSERT_EQUAL (status_of (r), 200);
  CU_ASSERT (r && strstr (r, "\"object\":\"list\"") != NULL);
}

/* Thousands of connections dropped by their clients, half after a request
 * on a keep-alive connection, half before sending anything: the server's
 * descriptors come back to where they were (libsoup 3.2 kept every idle
 * keep-alive one in CLOSE-WAIT). */
void
test_dropped_connections (void)
{
  const Server *s = &main_server;
  guint before = fd_count (s);
  gint64 t0 = g_get_monotonic_time ();
  guint n = 0, answered = 0;
  for (; n < 3000 && g_get_monotonic_time () - t0 < 60 * G_USEC_PER_SEC; n++) {
    g_autoptr (GSocket) sock = raw_connect (s, 20);
    if (n % 2 == 0) {
      char buf[64];
      CU_ASSERT (raw_send (sock, models_request, strlen (models_request)));
      if (g_socket_receive (sock, buf, sizeof buf, NULL, NULL) > 0 && !strncmp (buf, "HTTP/1.1 200", 12))
        answered++;
    }
    g_socket_close (sock, NULL);
  }
  CU_ASSERT (n >= 1000);
  CU_ASSERT_EQUAL (answered, (n + 1) / 2);
  guint after = fd_count (s);
  for (guint i = 0; i < 50 && after > before + 2; i++) {
    g_usleep (100000);
    after = fd_count (s);
  }
  if (after > before + 2)
    printf ("\n%u connections: %u descriptors before, %u after\n", n, before, after);
  CU_ASSERT (after <= before + 2);
  assert_alive (s);
}

/* With RLIMIT_NOFILE at 24, 30 held connections use up the descriptors; once
 * they close, the server accepts again (libsoup's listener stopped for good
 * on the first EMFILE). */
void
test_accept_after_emfile (void)
{
  Server s = { 0 };
  child_nofile = 24;
  server_start (&s, NULL);
  child_nofile = 0;
  GSocket *held[30];
  for (guint i = 0; i < G_N_ELEMENTS (held); i++)
    held[i] = raw_connect (&s, 20);
  /* Up to the limit: every descriptor the server may have is taken. */
  guint fds = fd_count (&s);
  for (guint i = 0; i < 50 && fds < 24; i++) {
    g_usleep (100000);
    fds = fd_count (&s);
  }
  CU_ASSERT_EQUAL (fds, 24);
  g_usleep (300000);
  for (guint i = 0; i < G_N_ELEMENTS (held); i++) {
    g_socket_close (held[i], NULL);
    g_object_unref (held[i]);
  }
  assert_alive (&s);
  CU_ASSERT_EQUAL (server_stop (&s), 0);
}

/* --header-timeout 1 --idle-timeout 2 on the guard server. */
void
test_timeouts (void)
{
  const Server *s = &guard_server;
  /* A client that says nothing. */
  g_autoptr (GSocket) silent = raw_connect (s, 10);
  double seconds = 0;
  g_autofree char *r1 = raw_read_all (silent, &seconds);
  CU_ASSERT (r1 != NULL);
  CU_ASSERT (seconds >= 0.5 && seconds < 5);
  /* Headers a line every 200 ms, never ending (slowloris). */
  g_autoptr (GSocket) slow = raw_connect (s, 10);
  gint64 t0 = g_get_monotonic_time ();
  gboolean closed = FALSE;
  CU_ASSERT (raw_send (slow, "POST /v1/completions HTTP/1.1\r\n", 31));
  for (guint i = 0; i < 50 && !closed; i++) {
    closed = !raw_send (slow, "X-Slow: 1\r\n", 11) || g_socket_condition_timed_wait (slow, G_IO_IN, 200000, NULL, NULL);
  }
  seconds = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;
  CU_ASSERT (closed);
  CU_ASSERT (seconds < 5);
  /* A body that stops coming. */
  g_autoptr (GSocket) stalled = raw_connect (s, 10);
  const char *head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n{\"prompt\"";
  CU_ASSERT (raw_send (stalled, head, strlen (head)));
  g_autofree char *r3 = raw_read_all (stalled, &seconds);
  CU_ASSERT (r3 != NULL);
  CU_ASSERT (seconds >= 1 && seconds < 7);
  assert_alive (s);
}

/* Sends `head`, then up to `total` bytes of body (chunked or not) until the
 * server answers; the answer. *sent: the body bytes that went out. */
static char *
send_big (const Server *s, const char *head, gboolean chunked, guint64 total, guint64 *sent)
{
  g_autoptr (GSocket) sock = raw_connect (s, 10);
  CU_ASSERT (raw_send (sock, head, strlen (head)));
  g_autofree char *block = g_malloc (65536 + 16);
  char *data = block;
  gsize len = 65536;
  memset (block, 'x', 65536 + 16);
  if (chunked) {
    memcpy (block, "10000\r\n", 7);
    memcpy (block + 7 + 65536, "\r\n", 2);
    len = 65536 + 9;
  }
  gint64 t0 = g_get_monotonic_time ();
  *sent = 0;
  /* A client that reads the answer as soon as there is one. */
  while (*sent < total && g_get_monotonic_time () - t0 < 20 * G_USEC_PER_SEC &&
         !g_socket_condition_check (sock, G_IO_IN)) {
    if (!raw_send (sock, data, len))
      break;
    *sent += 65536;
  }
  return raw_read_all (sock, NULL);
}

/* --max-body 64 on the guard server: a declared length over it is answered
 * 413 before any byte of the body; a chunked body once it passes it. The
 * server's memory stays low while a client pushes hundreds of MB. */
void
test_body_over_limit (void)
{
  const Server *s = &guard_server;
  guint64 rss0 = rss_kib (s), sent = 0;
  g_autofree char *r1 = raw_request (s, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        "Content-Length: 400000000\r\n\r\n");
  CU_ASSERT_EQUAL (status_of (r1), 413);
  CU_ASSERT (r1 && strstr (r1, "body_too_large") != NULL);
  g_autofree char *r2 = raw_request (s, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                                        "Content-Length: 400000000\r\n\r\n");
  CU_ASSERT_EQUAL (status_of (r2), 413);
  g_autofree char *r3 = send_big (
      s, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 400000000\r\n\r\n", FALSE, 400000000,
      &sent);
  CU_ASSERT_EQUAL (status_of (r3), 413);
  g_autofree char *r4 = send_big (
      s, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", TRUE, 400000000,
      &sent);
  CU_ASSERT_EQUAL (status_of (r4), 413);
  CU_ASSERT (r4 && strstr (r4, "body_too_large") != NULL);
  /* Under a chunked limit the body is read and the request answered. */
  g_autofree char *r5 = raw_request (
      s, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\n{\"pro\r\n13\r\nmpt\": \"Once\", \"max_\r\nb\r\ntokens\": 2}\r\n0\r\n\r\n");
  CU_ASSERT_EQUAL (status_of (r5), 200);
  guint64 rss1 = rss_kib (s);
  if (rss1 > rss0 + 32 * 1024)
    printf ("\nRSS %" G_GUINT64_FORMAT " KiB before, %" G_GUINT64_FORMAT " KiB after\n", rss0, rss1);
  CU_ASSERT (rss1 <= rss0 + 32 * 1024);
  assert_alive (s);
}

/* A body whose length is unknown or ambiguous (RFC 9112 §6.1, §6.3): 400 at
 * once, where libsoup waited for ever on two Content-Length headers. */
void
test_bad_framing (void)
{
  const Server *s = &main_server;
  const char *bad[] = {
    "Content-Length: 5\r\nContent-Length: 7\r\n\r\n{}",
    "Content-Length: 5, 7\r\n\r\n{}",
    "Content-Length: -1\r\n\r\n{}",
    "Content-Length: 1e3\r\n\r\n{}",
    "Content-Length: \r\n\r\n{}",
    "Content-Length: 99999999999999999999999\r\n\r\n{}",
    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *text = g_strconcat ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n", bad[i], NULL);
    g_autofree char *r = raw_request (s, text);
    CU_ASSERT_EQUAL (status_of (r), 400);
    /* libsoup refuses some itself (with an empty body); the rest are cria's. */
    gboolean ours = r && strstr (r, "invalid_content_length") != NULL;
    CU_ASSERT (ours || (r && strstr (r, "Content-Length: 0\r\n") != NULL));
    if (i == 0 || i == G_N_ELEMENTS (bad) - 1)
      CU_ASSERT (ours);
    if (status_of (r) != 400)
      printf ("\n%s: %s\n", bad[i], r ? r : "(no answer)");
  }
  /* The same length twice is one length (RFC 9110 §8.6). */
  const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 2}";
  g_autofree char *same = g_strdup_printf ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n"
                                           "Content-Length: %zu\r\n\r\n%s",
                                           strlen (body), strlen (body), body);
  g_autofree char *r = raw_request (s, same);
  CU_ASSERT_EQUAL (status_of (r), 200);
  assert_alive (s);
}

/* A NUL would cut the prompt short in C: 400 naming the field. */
void
test_nul_in_content (void)
{
  const Server *s = &main_server;
  assert_error (s, "POST", "/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}",
                400, "messages[0].content", NULL);
  assert_error (s, "POST", "/chat/completions",
                "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"ok\"}, "
                "{\"type\": \"text\", \"text\": \"\\u0000\"}]}]}",
                400, "messages[0].content[1].text", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": [\"ok\", \"x\\u0000\"]}", 400, "prompt[1]", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": \"x\", \"stop\": [\"\\u0000\"]}", 400, "stop[0]", NULL);
  /* A backslash followed by "u0000" is text, not a NUL. */
  Reply r;
  request (s, "POST", "/completions", "{\"prompt\": \"a\\\\u0000\", \"max_tokens\": 2}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  reply_clear (&r);
  assert_alive (s);
}
