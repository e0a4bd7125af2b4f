/* test-ui-browser: the page of `cria ui` in headless Chromium, driven over
 * chromedriver's WebDriver protocol (W3C) with libsoup: a pipeline on the
 * shared SQuAD file with its counts and a skipped record; a 10-step LoRA
 * run started from the form, its chart gaining points; the comparison of
 * an evaluation; a chat message answered as a stream. One browser session
 * for every view; no sleeps: the page is polled until a deadline. Each
 * view's screenshot is written to tests/ui/VIEW.png in the build tree.
 * Skips (77) without chromium and chromedriver, or without ../shared. */
#include <string.h>

#include "ui-test.h"

static UiTest t;
static gint64 started;
static GSubprocess *driver;
static char *driver_url; /* http://127.0.0.1:PORT */
static char *session;    /* the session's URL */
static SoupSession *http;

#define ELEMENT_KEY "element-6066-11e4-a52e-4f735466cecf"
#define DEADLINE_S 120

/* One WebDriver command; returns its "value" (transfer full; NULL on error). */
static JsonNode *
wd (const char *method, const char *url, const char *body)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_assert (msg);
  if (body) {
    g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", payload);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = soup_session_send_and_read (http, msg, NULL, &error);
  if (!answer)
    return NULL;
  g_autofree char *text = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  g_autoptr (JsonNode) root = json_from_string (text, NULL);
  guint status = soup_message_get_status (msg);
  if (status != 200 || !root || !JSON_NODE_HOLDS_OBJECT (root)) {
    printf ("\nwebdriver %s %s: %u %.400s\n", method, url, status, text);
    return NULL;
  }
  JsonNode *value = json_object_get_member (json_node_get_object (root), "value");
  return value ? json_node_copy (value) : NULL;
}

static JsonNode *
cmd (const char *method, const char *path, const char *body)
{
  g_autofree char *url = g_strconcat (session, path, NULL);
  return wd (method, url, body);
}

/* Runs a script in the page; its result as JSON text. */
static char *
script (const char *js)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "script");
  json_builder_add_string_value (b, js);
  json_builder_set_member_name (b, "args");
  json_builder_begin_array (b);
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) body = json_builder_get_root (b);
  g_autofree char *text = json_to_string (body, FALSE);
  g_autoptr (JsonNode) v = cmd ("POST", "/execute/sync", text);
  return v ? json_to_string (v, FALSE) : NULL;
}

/* Polls a script until it returns true, every 50 ms, up to the deadline. */
static gboolean
wait_for (const char *js)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) DEADLINE_S * G_USEC_PER_SEC;
  g_autofree char *wrapped = g_strconcat ("return !!(", js, ");", NULL);
  while (g_get_monotonic_time () < deadline) {
    g_autofree char *v = script (wrapped);
    if (v && !strcmp (v, "true"))
      return TRUE;
    /* The page is working; give it the CPU rather than spinning. */
    g_usleep (50000);
  }
  printf ("\ntimed out waiting for %s\n", js);
  return FALSE;
}

static void
go (const char *path)
{
  g_autofree char *url = g_strconcat (t.url, path[0] == '/' ? path + 1 : path, NULL);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, url);
  json_builder_end_object (b);
  g_autoptr (JsonNode) body = json_builder_get_root (b);
  g_autofree char *text = json_to_string (body, FALSE);
  g_autoptr (JsonNode) v = cmd ("POST", "/url", text);
}

/* Types into an input or clicks a button, found by CSS selector. */
static gboolean
element (const char *css, const char *text)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "using");
  json_builder_add_string_value (b, "css selector");
  json_builder_set_member_name (b, "value");
  json_builder_add_string_value (b, css);
  json_builder_end_object (b);
  g_autoptr (JsonNode) query = json_builder_get_root (b);
  g_autofree char *qtext = json_to_string (query, FALSE);
  g_autoptr (JsonNode) found = cmd ("POST", "/element", qtext);
  if (!found || !JSON_NODE_HOLDS_OBJECT (found))
    return FALSE;
  const char *id = cria_json_get_string (json_node_get_object (found), ELEMENT_KEY, NULL);
  if (!id)
    return FALSE;
  g_autofree char *path = NULL;
  g_autofree char *body = NULL;
  if (text) {
    g_autoptr (JsonNode) cleared = NULL;
    g_autofree char *clear = g_strdup_printf ("/element/%s/clear", id);
    cleared = cmd ("POST", clear, "{}");
    g_autoptr (JsonBuilder) v = json_builder_new ();
    json_builder_begin_object (v);
    json_builder_set_member_name (v, "text");
    json_builder_add_string_value (v, text);
    json_builder_end_object (v);
    g_autoptr (JsonNode) vnode = json_builder_get_root (v);
    body = json_to_string (vnode, FALSE);
    path = g_strdup_printf ("/element/%s/value", id);
  } else {
    body = g_strdup ("{}");
    path = g_strdup_printf ("/element/%s/click", id);
  }
  g_autofree char *url = g_strconcat (session, path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
  soup_message_set_request_body_from_bytes (msg, "application/json", payload);
  g_autoptr (GBytes) answer = soup_session_send_and_read (http, msg, NULL, NULL);
  return soup_message_get_status (msg) == 200;
}

static void
screenshot (const char *name)
{
  g_autoptr (JsonNode) v = cmd ("GET", "/screenshot", NULL);
  CU_ASSERT_FATAL (v && JSON_NODE_HOLDS_VALUE (v));
  gsize len = 0;
  g_autofree guchar *png = g_base64_decode (json_node_get_string (v), &len);
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "ui", NULL);
  g_mkdir_with_parents (dir, 0755);
  g_autofree char *leaf = g_strconcat (name, ".png", NULL);
  g_autofree char *path = g_build_filename (dir, leaf, NULL);
  CU_ASSERT_TRUE (g_file_set_contents (path, (const char *) png, (gssize) len, NULL));
  printf ("\n  screenshot: %s (at %.1f s) ", path, (double) (g_get_monotonic_time () - started) / G_USEC_PER_SEC);
}

static void
test_data (void)
{
  g_autofree char *page = g_uri_escape_string (
      "squad location=squad.json ! head n=100 ! dedup ! jsonl location=squad-out.jsonl", NULL, FALSE);
  g_autofree char *path = g_strconcat ("/data?pipeline=", page, NULL);
  go (path);
  /* The counts of each stage and a skipped record with its reason. */
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#stages tbody tr').length == 3"));
  /* squad in: every question of the file; dedup: 100 in, 9 out. */
  g_autofree char *in = script ("return document.querySelector('#stages tbody tr td:nth-child(4)').textContent");
  CU_ASSERT_STRING_EQUAL (in ? in : "", "\"10570\"");
  g_autofree char *dedup = script ("return [...document.querySelectorAll('#stages tbody tr:nth-child(3) td')]"
                                   ".map(e => e.textContent).join('|')");
  CU_ASSERT_STRING_EQUAL (dedup ? dedup : "", "\"3|dedup|transform|100|9|91|near-duplicate: 91\"");
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#records .record').length == 9"));
  CU_ASSERT_TRUE (wait_for ("[...document.querySelectorAll('#skipped .record.skip .label')]"
                            ".some(e => e.textContent.startsWith('dedup — '))"));
  CU_ASSERT_TRUE (wait_for ("document.querySelector('#skipped .record.skip pre')"));
  /* dedup's clusters: a kept record, then its duplicates. */
  CU_ASSERT_TRUE (wait_for ("document.querySelector('#clusters .cluster .record.kept + .record.skip pre')"));
  screenshot ("data");
}

/* The records as the model reads them, through the format the URL names. */
static void
test_data_format (void)
{
  go ("/data?pipeline=file%20location%3Dtrain.jsonl%20!%20head%20n%3D3&format=chatml");
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#records .record.rendered pre.response').length == 3"));
  g_autofree char *prompt = script (
      "return document.querySelector('#records .record.rendered pre.prompt').textContent");
  CU_ASSERT_PTR_NOT_NULL (prompt && strstr (prompt, "<|im_start|>user\\nadd\\n\\n0 + 0<|im_end|>"));
  CU_ASSERT_TRUE (wait_for ("document.getElementById('data-format').value == 'chatml'"));
  CU_ASSERT_TRUE (wait_for ("document.getElementById('data-used').textContent.includes('chatml')"));
  screenshot ("data-format");
}

static void
test_train (void)
{
  go ("/train");
  CU_ASSERT_TRUE_FATAL (wait_for ("document.querySelector('#train-form input[name=max-steps]')"));
  static const char *const fields[][2] = {
    { "model", "model" },  { "data", "train.jsonl" },
    { "out", "run1" },     { "adapter", "lora r=2 target-modules=c_attn" },
    { "max-steps", "10" }, { "max-length", "64" },
    { "batch-size", "2" }, { "threads", "1" },
    { "lr", "1e-2" },      { "format", "short.json" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    g_autofree char *css = g_strdup_printf ("#train-form [name=%s]", fields[i][0]);
    CU_ASSERT_TRUE (element (css, fields[i][1]));
  }
  CU_ASSERT_TRUE (element ("#train-start", NULL));
  /* The chart gains a point per step, then the run ends well. */
  CU_ASSERT_TRUE (wait_for ("Number(document.getElementById('chart').dataset.points) >= 10"));
  CU_ASSERT_TRUE (wait_for ("document.getElementById('train-state').textContent.includes('(0)')"));
  CU_ASSERT_TRUE (wait_for ("location.search == '?run=run1'"));
  screenshot ("train");
}

static void
test_eval (void)
{
  ui_test_eval (&t, "run1");
  go ("/eval?dir=eval");
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#compare thead th').length == 4"));
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#predictions tbody tr').length == 3"));
  /* A score filter no prediction passes leaves none shown. */
  CU_ASSERT_TRUE (element ("#eval-min", "1000000"));
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#predictions tbody tr').length == 0"));
  CU_ASSERT_TRUE (element ("#eval-min", ""));
  CU_ASSERT_TRUE (wait_for ("document.querySelectorAll('#predictions tbody tr').length == 3"));
  screenshot ("eval");
}

static void
test_chat (void)
{
  go ("/chat?model=model&adapter=run1");
  CU_ASSERT_TRUE_FATAL (wait_for ("document.getElementById('chat-state').textContent.includes('model+run1')"));
  CU_ASSERT_TRUE (element ("#chat-input", "3 + 4"));
  CU_ASSERT_TRUE (element ("#chat-send", NULL));
  /* Streamed: the answer came in chunks, and it ended. */
  CU_ASSERT_TRUE (wait_for ("document.querySelector('#chat-log .msg.assistant.done')"));
  CU_ASSERT_TRUE (wait_for ("Number(document.querySelector('#chat-log .msg.assistant').dataset.chunks) >= 1"));
  /* Side by side: the base model answered the same message, streamed. */
  CU_ASSERT_TRUE (wait_for ("document.querySelector('#chat-cols.side #chat-log-base .msg.user')"));
  CU_ASSERT_TRUE (wait_for ("document.querySelector('#chat-log-base .msg.assistant.done')"));
  CU_ASSERT_TRUE (wait_for ("Number(document.querySelector('#chat-log-base .msg.assistant').dataset.chunks) >= 1"));
  CU_ASSERT_TRUE (wait_for ("document.getElementById('chat-head-base').textContent.endsWith(': model')"));
  CU_ASSERT_TRUE (wait_for ("document.getElementById('chat-error').hidden"));
  screenshot ("chat");
}

/* Chinese text is one click away. */
static void
test_language (void)
{
  CU_ASSERT_TRUE (element ("#lang", NULL));
  CU_ASSERT_TRUE (wait_for ("document.querySelector('a[data-view=chat]').textContent == '对话'"));
  CU_ASSERT_TRUE (element ("#lang", NULL));
  CU_ASSERT_TRUE (wait_for ("document.querySelector('a[data-view=chat]').textContent == 'Chat'"));
}

static guint16
free_port (void)
{
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_assert (g_socket_bind (s, any, TRUE, NULL));
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (s, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static gboolean
start_browser (void)
{
  g_autofree char *port = g_strdup_printf ("%u", free_port ());
  g_autofree char *flag = g_strconcat ("--port=", port, NULL);
  g_autoptr (GSubprocessLauncher)
      launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, cria_test_die_with_parent, NULL, NULL);
  g_autofree char *chromedriver = g_find_program_in_path ("chromedriver");
  const char *argv[] = { chromedriver, flag, NULL };
  driver = g_subprocess_launcher_spawnv (launcher, argv, NULL);
  if (!driver)
    return FALSE;
  driver_url = g_strconcat ("http://127.0.0.1:", port, NULL);
  http = soup_session_new_with_options ("timeout", 120, NULL);
  g_autofree char *status = g_strconcat (driver_url, "/status", NULL);
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  gboolean ready = FALSE;
  while (!ready && g_get_monotonic_time () < deadline) {
    g_autoptr (SoupMessage) msg = soup_message_new ("GET", status);
    g_autoptr (GBytes) b = soup_session_send_and_read (http, msg, NULL, NULL);
    ready = b && soup_message_get_status (msg) == 200;
    if (!ready)
      g_usleep (20000);
  }
  if (!ready)
    return FALSE;
  g_autofree char *chromium = g_find_program_in_path ("chromium");
  g_autofree char *caps = g_strdup_printf (
      "{\"capabilities\":{\"alwaysMatch\":{\"browserName\":\"chrome\",\"goog:chromeOptions\":{\"binary\":\"%s\","
      "\"args\":[\"--headless=new\",\"--no-sandbox\",\"--disable-gpu\",\"--disable-dev-shm-usage\","
      "\"--window-size=1280,1000\",\"--lang=en-US\"]}}}}",
      chromium);
  g_autofree char *new_session = g_strconcat (driver_url, "/session", NULL);
  g_autoptr (JsonNode) v = wd ("POST", new_session, caps);
  const char *id = v && JSON_NODE_HOLDS_OBJECT (v) ? cria_json_get_string (json_node_get_object (v), "sessionId", NULL)
                                                   : NULL;
  if (!id)
    return FALSE;
  session = g_strconcat (driver_url, "/session/", id, NULL);
  return TRUE;
}

static void
teardown (void)
{
  if (session) {
    g_autoptr (JsonNode) v = wd ("DELETE", session, NULL);
  }
  if (driver) {
    g_subprocess_force_exit (driver);
    g_subprocess_wait (driver, NULL, NULL);
  }
  CU_ASSERT_EQUAL (ui_test_stop (&t), 0);
  ui_test_teardown (&t);
  printf ("\n  test-ui-browser: %.1f s in all ", (double) (g_get_monotonic_time () - started) / G_USEC_PER_SEC);
}

static const CriaTestCase cases[] = {
  { "data", test_data }, { "data rendered", test_data_format }, { "train", test_train },  { "eval", test_eval },
  { "chat", test_chat }, { "language", test_language },         { "teardown", teardown }, { NULL, NULL },
};

int
main (void)
{
  started = g_get_monotonic_time ();
  g_autofree char *squad = cria_test_shared_optional ("data/squad_v1.1/dev-v1.1.reconstructed.json");
  g_autofree char *chromium = g_find_program_in_path ("chromium");
  g_autofree char *chromedriver = g_find_program_in_path ("chromedriver");
  if (!squad || !chromium || !chromedriver) {
    printf ("skipped: needs %s\n", !squad ? "../shared (CRIA_SHARED)" : "chromium and chromedriver");
    return CRIA_TEST_SKIP;
  }
  ui_test_setup (&t);
  g_autofree char *copy = g_build_filename (t.dir, "squad.json", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_assert (g_file_get_contents (squad, &text, &len, NULL));
  g_assert (g_file_set_contents (copy, text, (gssize) len, NULL));
  ui_test_start (&t, NULL);
  if (!start_browser ()) {
    printf ("skipped: chromedriver did not start a headless chromium session\n");
    teardown ();
    return CRIA_TEST_SKIP;
  }
  printf ("browser ready at %.1f s\n", (double) (g_get_monotonic_time () - started) / G_USEC_PER_SEC);
  if (CU_initialize_registry () != CUE_SUCCESS)
    return 99;
  cria_test_add_suite ("ui-browser", cases);
  CU_basic_set_mode (CU_BRM_VERBOSE);
  CU_basic_run_tests ();
  unsigned failed = CU_get_number_of_failures () + CU_get_number_of_suites_failed ();
  CU_cleanup_registry ();
  g_clear_object (&http);
  return failed ? 1 : 0;
}
