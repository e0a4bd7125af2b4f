/* test-generator: the generator handle (cache, batches) and the openai
 * generator against a real HTTP server on loopback (fake-openai.h), scripted
 * per route to answer, rate-limit, fail, refuse or send garbage. (The end-to-end
 * test against `cria serve` is tests/serve/test-serve.) */
#include <cria/cria-generator.h>

#include "cria-test.h"
#include "fake-openai.h"

static CriaRegistry *reg;
static char *base; /* http://127.0.0.1:PORT */
static gint hits_flaky, hits_down, hits_ok;

/* Answers "echo: LAST-USER-TEXT" (or the prompt), with the Authorization header when one came. */
static void
answer (SoupServerMessage *msg, gboolean chat)
{
  g_autofree char *said = cria_fake_openai_said (msg, chat);
  const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Authorization");
  g_autofree char *text = g_strdup_printf ("echo: %s%s%s", said, auth ? " auth=" : "", auth ? auth : "");
  cria_fake_openai_answer (msg, chat, text, "stop");
}

static void
handle (SoupServerMessage *msg, const char *path, gpointer data)
{
  if (g_str_has_prefix (path, "/ok/")) {
    g_atomic_int_inc (&hits_ok);
    answer (msg, g_str_has_suffix (path, "/chat/completions"));
  } else if (g_str_has_prefix (path, "/flaky/")) {
    /* Rate-limited twice, then fine. */
    if (g_atomic_int_add (&hits_flaky, 1) < 2) {
      soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", "0");
      cria_fake_openai_respond (msg, 429, "{\"error\": {\"message\": \"slow down\"}}");
    } else {
      answer (msg, TRUE);
    }
  } else if (g_str_has_prefix (path, "/down/")) {
    g_atomic_int_inc (&hits_down);
    cria_fake_openai_respond (msg, 503, "{\"error\": {\"message\": \"overloaded\"}}");
  } else if (g_str_has_prefix (path, "/garbage/")) {
    cria_fake_openai_respond (msg, 200, "{\"choices\": [");
  } else if (g_str_has_prefix (path, "/huge/")) {
    /* Valid JSON, but 17 MiB of it: more than any answer may be. */
    gsize n = 17 << 20;
    char *body = g_malloc (n);
    memset (body, ' ', n);
    memcpy (body, "{\"choices\": []}", 15);
    soup_server_message_set_status (msg, 200, NULL);
    soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, body, n);
  } else if (g_str_has_prefix (path, "/empty/")) {
    cria_fake_openai_respond (msg, 200, "{\"choices\": []}");
  } else if (g_str_has_prefix (path, "/refuse/")) {
    cria_fake_openai_respond (msg, 400, "{\"error\": {\"message\": \"model 'nope' does not exist\"}}");
  } else {
    cria_fake_openai_respond (msg, 404, "{}");
  }
}

static int
setup (void)
{
  reg = cria_test_registry ();
  base = cria_fake_openai_start (handle, NULL);
  return 0;
}

static CriaGenerator *
make (const char *route, const char *extra, GError **error)
{
  /* a property given twice is an error: extra may name its own model */
  const char *model = extra && strstr (extra, "model=") ? "" : "model=test";
  g_autofree char *spec = g_strdup_printf ("openai base-url=%s/%s/v1 %s backoff=0 %s", base, route, model,
                                           extra ? extra : "");
  return cria_generator_new (reg, spec, error);
}

static CriaGenRequest
chat (GPtrArray *messages)
{
  return (CriaGenRequest){ .messages = messages, .temperature = -1, .top_p = -1, .seed = -1 };
}

static GPtrArray *
say (const char *text)
{
  GPtrArray *m = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  CriaMessage *msg = g_new0 (CriaMessage, 1);
  msg->role = g_strdup ("user");
  msg->content = g_strdup (text);
  g_ptr_array_add (m, msg);
  return m;
}

static void
test_answer_and_cache (void)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaGenerator) g = make ("ok", NULL, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (g);
  g_autofree char *dir = cria_test_tmpdir ();
  cria_generator_set_cache_dir (g, dir);
  g_autoptr (GPtrArray) m = say ("你好 there");
  CriaGenRequest req = chat (m);
  req.max_tokens = 16;
  CriaGenResult r;
  int before = g_atomic_int_get (&hits_ok);
  CU_ASSERT_TRUE (cria_generator_generate (g, &req, &r, NULL, &e));
  CU_ASSERT_STRING_EQUAL (r.text, "echo: 你好 there");
  CU_ASSERT_STRING_EQUAL (r.finish_reason, "stop");
  CU_ASSERT_EQUAL (r.completion_tokens, 7);
  CU_ASSERT_FALSE (r.cached);
  cria_gen_result_clear (&r);
  /* The same request again is answered from disk: no HTTP request. */
  CU_ASSERT_TRUE (cria_generator_generate (g, &req, &r, NULL, &e));
  CU_ASSERT_TRUE (r.cached);
  CU_ASSERT_STRING_EQUAL (r.text, "echo: 你好 there");
  cria_gen_result_clear (&r);
  CU_ASSERT_EQUAL (g_atomic_int_get (&hits_ok), before + 1);
  CU_ASSERT_EQUAL (cria_generator_get_n_calls (g), 1);
  /* A fresh generator on the same cache (a rerun) is free too. */
  g_autoptr (CriaGenerator) again = make ("ok", NULL, &e);
  cria_generator_set_cache_dir (again, dir);
  CU_ASSERT_TRUE (cria_generator_generate (again, &req, &r, NULL, &e));
  CU_ASSERT_TRUE (r.cached);
  cria_gen_result_clear (&r);
  /* Any change of sampling settings is another request. */
  req.temperature = 0.7;
  CU_ASSERT_TRUE (cria_generator_generate (again, &req, &r, NULL, &e));
  CU_ASSERT_FALSE (r.cached);
  cria_gen_result_clear (&r);
  CU_ASSERT_EQUAL (g_atomic_int_get (&hits_ok), before + 2);
  /* ...and so is another model on the same endpoint. */
  g_autoptr (CriaGenerator) other = make ("ok", "model=other", &e);
  g_autofree char *k1 = cria_generator_request_key (again, &req);
  g_autofree char *k2 = cria_generator_request_key (other, &req);
  CU_ASSERT_STRING_NOT_EQUAL (k1, k2);
  /* A corrupt cache entry is a miss, not an error. */
  g_autofree char *prefix = g_strndup (k1, 2);
  g_autofree char *name = g_strconcat (k1, ".json", NULL);
  g_autofree char *entry = g_build_filename (dir, prefix, name, NULL);
  cria_test_write_file (entry, "{ not json");
  CU_ASSERT_TRUE (cria_generator_generate (again, &req, &r, NULL, &e));
  CU_ASSERT_FALSE (r.cached);
  cria_gen_result_clear (&r);
  cria_test_rmtree (dir);
}

static void
test_retries (void)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (GPtrArray) m = say ("x");
  CriaGenRequest req = chat (m);
  CriaGenResult r;
  g_autoptr (CriaGenerator) flaky = make ("flaky", "retries=3", &e);
  CU_ASSERT_TRUE (cria_generator_generate (flaky, &req, &r, NULL, &e));
  CU_ASSERT_STRING_EQUAL (r.text, "echo: x");
  CU_ASSERT_EQUAL (g_atomic_int_get (&hits_flaky), 3);
  cria_gen_result_clear (&r);
  g_autoptr (CriaGenerator) down = make ("down", "retries=2", &e);
  CU_ASSERT_FALSE (cria_generator_generate (down, &req, &r, NULL, &e));
  CU_ASSERT_EQUAL (g_atomic_int_get (&hits_down), 3);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "gave up after 3 tries: HTTP 503: overloaded"));
}

static void
expect_failure (const char *route, const char *extra, const char *fragment)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaGenerator) g = make (route, extra, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (g);
  g_autoptr (GPtrArray) m = say ("x");
  CriaGenRequest req = chat (m);
  CriaGenResult r;
  CU_ASSERT_FALSE (cria_generator_generate (g, &req, &r, NULL, &e));
  if (!e || !strstr (e->message, fragment))
    printf ("\n%s: '%s' lacks '%s'\n", route, e ? e->message : "(no error)", fragment);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, fragment));
  CU_ASSERT_PTR_NULL (e ? strchr (e->message, '\n') : NULL);
}

static void
test_failures (void)
{
  expect_failure ("refuse", NULL, "HTTP 400: model 'nope' does not exist");
  expect_failure ("garbage", NULL, "the answer is not JSON");
  expect_failure ("empty", NULL, "the answer has no choices[0].message.content");
  expect_failure ("huge", NULL, "the answer is larger than 16 MiB");
  expect_failure ("nowhere", NULL, "HTTP 404");
}

static void
test_unreachable (void)
{
  /* A port nobody listens on: refused at once, retried, then a clear error. */
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_socket_bind (s, any, TRUE, NULL);
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (s, NULL);
  guint16 port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (s, NULL);
  g_autofree char *spec = g_strdup_printf ("openai base-url=http://127.0.0.1:%u/v1 model=m retries=1 backoff=0", port);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaGenerator) g = cria_generator_new (reg, spec, &e);
  g_autoptr (GPtrArray) m = say ("x");
  CriaGenRequest req = chat (m);
  CriaGenResult r;
  CU_ASSERT_FALSE (cria_generator_generate (g, &req, &r, NULL, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "gave up after 2 tries: cannot reach it"));
}

static void
test_batch_and_completions (void)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaGenerator) g = make ("ok", "concurrency=4", &e);
  enum { N = 12 };
  GPtrArray *msgs[N];
  CriaGenRequest reqs[N];
  CriaGenResult res[N];
  for (int i = 0; i < N; i++) {
    g_autofree char *t = g_strdup_printf ("q%d", i);
    msgs[i] = say (t);
    reqs[i] = chat (msgs[i]);
  }
  CU_ASSERT_EQUAL (cria_generator_generate_batch (g, reqs, res, N, NULL), N);
  for (int i = 0; i < N; i++) {
    g_autofree char *want = g_strdup_printf ("echo: q%d", i);
    CU_ASSERT_STRING_EQUAL (res[i].text, want);
    cria_gen_result_clear (&res[i]);
    g_ptr_array_unref (msgs[i]);
  }
  g_autoptr (CriaGenerator) comp = make ("ok", "api=completions", &e);
  CriaGenRequest req = { .prompt = "Once upon", .temperature = -1, .top_p = -1, .seed = 3 };
  CriaGenResult r;
  CU_ASSERT_TRUE (cria_generator_generate (comp, &req, &r, NULL, &e));
  CU_ASSERT_STRING_EQUAL (r.text, "echo: Once upon");
  cria_gen_result_clear (&r);
  /* The key comes from the environment variable named by api-key-env. */
  g_setenv ("CRIA_TEST_KEY", "sk-test", TRUE);
  g_autoptr (CriaGenerator) keyed = make ("ok", "api=completions api-key-env=CRIA_TEST_KEY", &e);
  CU_ASSERT_TRUE (cria_generator_generate (keyed, &req, &r, NULL, &e));
  CU_ASSERT_STRING_EQUAL (r.text, "echo: Once upon auth=Bearer sk-test");
  cria_gen_result_clear (&r);
}

static void
test_bad_specs (void)
{
  struct {
    const char *spec, *fragment;
  } cases[] = {
    { "nope model=x", "no generator named 'nope'" },
    { "openai", "property 'model' is required" },
    { "openai model=x base-url=ftp://h/v1", "is not an http:// or https:// URL" },
    { "openai model=x timeout=0", "property 'timeout'" },
    { "openai model=x api=grpc", "one of chat|completions" },
    { "model=x", "expected a generator name first" },
    { "openai model=x junk", "'junk' is not name=value" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaGenerator) g = cria_generator_new (reg, cases[i].spec, &e);
    CU_ASSERT_PTR_NULL (g);
    if (!e || !strstr (e->message, cases[i].fragment))
      printf ("\n'%s': '%s' lacks '%s'\n", cases[i].spec, e ? e->message : "(made)", cases[i].fragment);
    CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, cases[i].fragment));
  }
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "answers and the request cache", test_answer_and_cache },
    { "retries on 429 and 5xx", test_retries },
    { "refusals and malformed answers", test_failures },
    { "an endpoint that is down", test_unreachable },
    { "batches, completions and the API key", test_batch_and_completions },
    { "bad generator specs", test_bad_specs },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("generator", setup, NULL);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
