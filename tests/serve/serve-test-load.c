/* serve-test-load.c: test-serve's clients at once: concurrent requests,
 * requests joining and leaving a running batch, a full queue, clients
 * hanging up, and SIGTERM while requests run. */
#include <string.h>

#include "serve-test.h"

typedef struct {
  const Server *server;
  const char *body;
  Reply reply;
} Call;

static gpointer
call_thread (gpointer data)
{
  Call *c = data;
  request (c->server, "POST", "/completions", c->body, &c->reply);
  return NULL;
}

static void
call_all (Call *calls, guint n)
{
  GThread *threads[16];
  g_assert (n <= G_N_ELEMENTS (threads));
  for (guint i = 0; i < n; i++)
    threads[i] = g_thread_new ("client", call_thread, &calls[i]);
  for (guint i = 0; i < n; i++)
    g_thread_join (threads[i]);
}

/* Four clients at once: all answered, each with its own prompt's text. */
void
test_concurrent (void)
{
  const char *prompts[] = { "The dog", "The cat", "Once upon a time", "Tom and Sue" };
  Call calls[4];
  char *bodies[4];
  for (guint i = 0; i < 4; i++) {
    bodies[i] = g_strdup_printf ("{\"prompt\": \"%s\", \"max_tokens\": 16}", prompts[i]);
    calls[i] = (Call){ &main_server, bodies[i] };
  }
  call_all (calls, 4);
  for (guint i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL (calls[i].reply.status, 200);
    g_autoptr (JsonObject) ref = generate (prompts[i], "16", NULL);
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (choice (&calls[i].reply, 0), "text"),
                            json_object_get_string_member (ref, "text"));
    reply_clear (&calls[i].reply);
    g_free (bodies[i]);
  }
}

/* The text of a streamed completion: its chunks' text, in order. */
static char *
streamed_text (const char *body)
{
  GString *text = g_string_new ("");
  g_auto (GStrv) lines = g_strsplit (body, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    if (!g_str_has_prefix (lines[i], "data: {"))
      continue;
    g_autoptr (JsonNode) n = json_from_string (lines[i] + 6, NULL);
    JsonArray *choices = n ? json_object_get_array_member (json_node_get_object (n), "choices") : NULL;
    if (choices && json_array_get_length (choices) > 0)
      g_string_append (
          text, json_object_get_string_member_with_default (json_array_get_object_element (choices, 0), "text", ""));
  }
  return g_string_free (text, FALSE);
}

/* A streamed completion of "Once" on the main server, of up to `max_tokens`,
 * whose first bytes have arrived (it runs); its message goes to `msg`. */
static GInputStream *
stream_started (SoupSession *session, int max_tokens, SoupMessage **msg)
{
  g_autofree char *url = g_strconcat (main_server.url, "/completions", NULL);
  g_autofree char *body = g_strdup_printf ("{\"prompt\": \"Once\", \"max_tokens\": %d, \"stream\": true}", max_tokens);
  *msg = soup_message_new ("POST", url);
  g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
  soup_message_set_request_body_from_bytes (*msg, "application/json", payload);
  g_autoptr (GError) error = NULL;
  GInputStream *in = soup_session_send (session, *msg, NULL, &error);
  g_assert_no_error (error);
  char buf[64];
  CU_ASSERT (g_input_stream_read (in, buf, sizeof buf, NULL, &error) > 0);
  return in;
}

/* Continuous batching (the main server decodes up to 16 requests at once):
 * while a long streamed request runs, four more join its batch, two of them
 * streamed, with different lengths, so they also leave it at different
 * steps; then the long one's client hangs up. Each answer is its text
 * alone (cria generate's), and the batch goes on after the hang-up. */
void
test_batch_join_and_hang_up (void)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GInputStream) in = stream_started (session, 2000, &msg);
  const char *prompts[] = { "The dog", "The cat", "Once upon a time", "Tom and Sue" };
  const char *max[] = { "16", "40", "24", "60" };
  Call calls[4];
  char *bodies[4];
  for (guint i = 0; i < 4; i++) {
    bodies[i] = g_strdup_printf ("{\"prompt\": \"%s\", \"max_tokens\": %s, \"stream\": %s}", prompts[i], max[i],
                                 i % 2 ? "true" : "false");
    calls[i] = (Call){ &main_server, bodies[i] };
  }
  call_all (calls, 4);
  g_input_stream_close (in, NULL, NULL);
  g_clear_object (&in);
  soup_session_abort (session);
  for (guint i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL (calls[i].reply.status, 200);
    g_autoptr (JsonObject) ref = generate (prompts[i], max[i], NULL);
    g_autofree char *text = i % 2 ? streamed_text (calls[i].reply.body)
                                  : g_strdup (json_object_get_string_member (choice (&calls[i].reply, 0), "text"));
    CU_ASSERT_STRING_EQUAL (text, json_object_get_string_member (ref, "text"));
    reply_clear (&calls[i].reply);
    g_free (bodies[i]);
  }
  Reply r;
  request (&main_server, "POST", "/completions", "{\"prompt\": \"The dog\", \"max_tokens\": 16}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  g_autoptr (JsonObject) ref = generate ("The dog", "16", NULL);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (choice (&r, 0), "text"),
                          json_object_get_string_member (ref, "text"));
  reply_clear (&r);
}

/* --max-concurrent 1: while one request runs, others are turned away with
 * 503. Whether two overlap depends on timing, so bursts are retried until
 * one does (each request generates ~400 tokens, the others arrive at once). */
void
test_queue_full (void)
{
  gboolean saw_busy = FALSE;
  for (guint attempt = 0; attempt < 5 && !saw_busy; attempt++) {
    Call calls[6];
    for (guint i = 0; i < 6; i++)
      calls[i] = (Call){ &busy_server, "{\"prompt\": \"Once\", \"max_tokens\": 400}" };
    call_all (calls, 6);
    guint ok = 0;
    for (guint i = 0; i < 6; i++) {
      if (calls[i].reply.status == 503) {
        saw_busy = TRUE;
        JsonObject *e = json_object_get_object_member (obj (&calls[i].reply), "error");
        CU_ASSERT_STRING_EQUAL (json_object_get_string_member (e, "code"), "overloaded");
        CU_ASSERT_STRING_EQUAL (calls[i].reply.retry_after, "1");
      } else {
        CU_ASSERT_EQUAL (calls[i].reply.status, 200);
        ok++;
      }
      reply_clear (&calls[i].reply);
    }
    CU_ASSERT (ok >= 1);
  }
  CU_ASSERT (saw_busy);
}

/* A client that hangs up mid-stream costs the server nothing but that answer. */
void
test_hang_up (void)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GInputStream) in = stream_started (session, 400, &msg);
  g_input_stream_close (in, NULL, NULL);
  g_clear_object (&in);
  soup_session_abort (session);
  Reply r;
  request (&main_server, "POST", "/completions", "{\"prompt\": \"The dog\", \"max_tokens\": 4}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  reply_clear (&r);
}

/* A request sent as raw HTTP, not waited for. */
static GSocketConnection *
send_raw (const Server *s, const char *body)
{
  g_autoptr (GUri) uri = g_uri_parse (s->url, G_URI_FLAGS_NONE, NULL);
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  GSocketConnection *conn = g_socket_client_connect_to_host (client, "127.0.0.1", g_uri_get_port (uri), NULL, &error);
  g_assert_no_error (error);
  g_autofree char *text = g_strdup_printf ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                                           strlen (body), body);
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  g_output_stream_write_all (out, text, strlen (text), NULL, NULL, &error);
  g_assert_no_error (error);
  return conn;
}

/* SIGTERM while a request runs and another waits: a prompt, clean exit. */
void
test_stop_servers (void)
{
  const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 500, \"stream\": true}";
  g_autoptr (GSocketConnection) running = send_raw (&main_server, body);
  g_autoptr (GSocketConnection) waiting = send_raw (&main_server, body);
  char buf[16];
  /* The first bytes of the answer: the model is at work. */
  CU_ASSERT (g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (running)), buf, sizeof buf, NULL, NULL) >
             0);
  CU_ASSERT_EQUAL (server_stop (&main_server), 0);
  CU_ASSERT_EQUAL (server_stop (&busy_server), 0);
  CU_ASSERT_EQUAL (server_stop (&guard_server), 0);
}
