/* ui-test.c: see ui-test.h. */
#include <string.h>

#include "ui-test.h"

void
ui_test_setup (UiTest *t)
{
  memset (t, 0, sizeof *t);
  t->dir = cria_test_tmpdir ();
  t->model = cria_test_tiny_model (t->dir, "tiny-gpt2");
  g_free (cria_test_sums_data (t->dir, 24, 13, 50));
  /* A short prompt format, so that the records fit a small max-length. */
  g_free (cria_test_short_format (t->dir));
}

void
ui_test_start (UiTest *t, const char *key)
{
  t->key = key;
  const char *argv[] = { cria_test_env ("CRIA_BIN"), "ui", "--port", "0", "--threads", "1", "--max-new-tokens", "8",
                         key ? "--api-key" : t->dir, key,  t->dir,   NULL };
  t->url = cria_test_start_listener (NULL, argv, &t->proc);
}

int
ui_test_stop (UiTest *t)
{
  if (!t->proc)
    return -1;
  int status = cria_test_stop_listener (t->proc);
  g_clear_object (&t->proc);
  g_clear_pointer (&t->url, g_free);
  return status;
}

void
ui_test_teardown (UiTest *t)
{
  ui_test_stop (t);
  cria_test_rmtree (t->dir);
  g_free (t->dir);
  g_free (t->model);
}

void
ui_reply_clear (UiReply *r)
{
  g_free (r->body);
  if (r->json)
    json_node_unref (r->json);
  memset (r, 0, sizeof *r);
}

void
ui_request (UiTest *t, const char *method, const char *path, const char *body, const char *key, UiReply *r)
{
  memset (r, 0, sizeof *r);
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 300, NULL);
  g_autofree char *url = g_strconcat (t->url, path[0] == '/' ? path + 1 : path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_assert (msg);
  if (key) {
    g_autofree char *auth = g_strconcat ("Bearer ", key, NULL);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  }
  if (body) {
    g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", payload);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  r->status = soup_message_get_status (msg);
  r->body = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  r->json = json_from_string (r->body, NULL);
}

JsonObject *
ui_reply_object (const UiReply *r)
{
  if (!r->json || !JSON_NODE_HOLDS_OBJECT (r->json))
    printf ("\nnot a JSON object (%u): %.300s\n", r->status, r->body);
  CU_ASSERT_FATAL (r->json && JSON_NODE_HOLDS_OBJECT (r->json));
  return json_node_get_object (r->json);
}

void
ui_test_eval (UiTest *t, const char *run)
{
  g_autofree char *adapter = g_build_filename (t->dir, run, NULL);
  g_autofree char *data = g_build_filename (t->dir, "train.jsonl", NULL);
  g_autofree char *out = g_build_filename (t->dir, "eval", NULL);
  const char *args[] = { "eval",  "--model", t->model, "--adapter",        adapter, "--compare", "--data",
                         data,    "--limit", "3",      "--max-new-tokens", "4",     "--threads", "1",
                         "--out", out,       NULL };
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  if (status)
    printf ("\ncria eval: %s\n", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
}

char *
ui_read_events (UiTest *t, const char *path, gboolean (*until) (const char *text), double seconds)
{
  /* The server writes at least every 2 s: a read that waits longer fails. */
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 10, NULL);
  g_autofree char *url = g_strconcat (t->url, path[0] == '/' ? path + 1 : path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  if (t->key) {
    g_autofree char *auth = g_strconcat ("Bearer ", t->key, NULL);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GInputStream) in = soup_session_send (session, msg, NULL, &error);
  g_assert_no_error (error);
  CU_ASSERT_EQUAL (soup_message_get_status (msg), 200);
  GString *text = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  char buf[4096];
  while (!until (text->str) && g_get_monotonic_time () < deadline) {
    gssize n = g_input_stream_read (in, buf, sizeof buf, NULL, NULL);
    if (n <= 0)
      break;
    g_string_append_len (text, buf, n);
  }
  g_input_stream_close (in, NULL, NULL);
  return g_string_free (text, FALSE);
}
