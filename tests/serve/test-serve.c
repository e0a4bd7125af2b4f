/* test-serve: `cria serve` as a subprocess on ../shared/models/stories260K
 * (a real pretrained tiny LLaMA with its tokenizer; skipped when absent),
 * talked to over loopback: the OpenAI answers and their fields, greedy text
 * equal to `cria generate`'s, streaming, the openai generator as a client,
 * the local generator on the same model, errors, concurrent clients, a full
 * queue, requests joining and leaving a running batch, a client hanging up
 * mid-stream, and a clean stop on SIGTERM.
 * Then hostile clients, each case ending with a request that must succeed:
 * thousands of dropped connections (the descriptor count stays flat),
 * accepting after EMFILE, header and idle timeouts, bodies over --max-body
 * (answered before they are read; memory stays low), conflicting
 * Content-Length, and NUL characters in content. */
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include <libsoup/soup.h>

#include <cria/cria-generator.h>

#include "cria-test.h"

static char *model_dir;
static CriaRegistry *reg;

typedef struct {
  GSubprocess *proc;
  char *url; /* http://127.0.0.1:PORT/v1 */
} Server;

static Server main_server, busy_server, guard_server;

/* The child's descriptor limit, for the EMFILE case (0: unchanged). */
static rlim_t child_nofile;

static void
child_setup (gpointer data)
{
  cria_test_die_with_parent (NULL);
  if (child_nofile) {
    struct rlimit r = { child_nofile, child_nofile };
    setrlimit (RLIMIT_NOFILE, &r);
  }
}

static void
server_start (Server *s, const char *const *extra)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *const base[] = { cria_test_env ("CRIA_BIN"), "serve", "--model", model_dir, "--port", "0", NULL };
  for (guint i = 0; base[i]; i++)
    g_ptr_array_add (argv, (gpointer) base[i]);
  for (guint i = 0; extra && extra[i]; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  s->proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_autoptr (GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (s->proc));
  g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert (line && g_str_has_prefix (line, "cria serve: listening on http://127.0.0.1:"));
  s->url = g_strdup (line + strlen ("cria serve: listening on "));
}

/* SIGTERM stops it cleanly: exit status 0. */
static int
server_stop (Server *s)
{
  g_subprocess_send_signal (s->proc, SIGTERM);
  g_autoptr (GError) error = NULL;
  g_subprocess_wait (s->proc, NULL, &error);
  g_assert_no_error (error);
  int status = g_subprocess_get_if_exited (s->proc) ? g_subprocess_get_exit_status (s->proc) : -1;
  g_clear_object (&s->proc);
  g_clear_pointer (&s->url, g_free);
  return status;
}

typedef struct {
  guint status;
  char *body;
  char *retry_after;
  JsonNode *json; /* the body parsed, when it is JSON */
} Reply;

static void
reply_clear (Reply *r)
{
  g_free (r->body);
  g_free (r->retry_after);
  if (r->json)
    json_node_unref (r->json);
  memset (r, 0, sizeof *r);
}

/* One request on its own session (sessions are per thread), with headers
 * given as name, value, ..., NULL; the answer's headers come back in *got.
 * The timeout only guards against a hang: queued requests of the busy server
 * wait for each other, which under the sanitizers on a loaded machine took
 * longer than a minute. */
static guint
request_with (const Server *s, const char *method, const char *path, const char *body, const char *const *headers,
              SoupMessageHeaders **got, char **answer_body)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 600, NULL);
  g_autofree char *url = g_strconcat (s->url, path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  for (guint i = 0; headers && headers[i]; i += 2)
    soup_message_headers_replace (soup_message_get_request_headers (msg), headers[i], headers[i + 1]);
  if (body) {
    g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", payload);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  if (got)
    *got = g_boxed_copy (SOUP_TYPE_MESSAGE_HEADERS, soup_message_get_response_headers (msg));
  if (answer_body)
    *answer_body = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  return soup_message_get_status (msg);
}

/* request_with, the answer in `r`. `body` NULL: GET. */
static void
request (const Server *s, const char *method, const char *path, const char *body, Reply *r)
{
  memset (r, 0, sizeof *r);
  g_autoptr (SoupMessageHeaders) got = NULL;
  r->status = request_with (s, method, path, body, NULL, &got, &r->body);
  r->retry_after = g_strdup (soup_message_headers_get_one (got, "Retry-After"));
  r->json = json_from_string (r->body, NULL);
}

static JsonObject *
obj (const Reply *r)
{
  CU_ASSERT_FATAL (r->json && JSON_NODE_HOLDS_OBJECT (r->json));
  return json_node_get_object (r->json);
}

static JsonObject *
choice (const Reply *r, guint i)
{
  JsonArray *choices = json_object_get_array_member (obj (r), "choices");
  CU_ASSERT_FATAL (choices && json_array_get_length (choices) > i);
  return json_array_get_object_element (choices, i);
}

static const char *
or_null (JsonObject *o, const char *name)
{
  const char *v = json_object_get_null_member (o, name) ? NULL : json_object_get_string_member (o, name);
  return v ? v : "(null)";
}

/* An OpenAI error answer with this status, param and code. */
static void
assert_error (const Server *s, const char *method, const char *path, const char *body, guint status, const char *param,
              const char *code)
{
  Reply r;
  request (s, method, path, body, &r);
  CU_ASSERT_EQUAL (r.status, status);
  JsonObject *e = json_object_get_object_member (obj (&r), "error");
  CU_ASSERT_FATAL (e != NULL);
  CU_ASSERT (strlen (json_object_get_string_member (e, "message")) > 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (e, "type"),
                          status >= 500 ? "server_error" : "invalid_request_error");
  CU_ASSERT_STRING_EQUAL (or_null (e, "param"), param ? param : "(null)");
  CU_ASSERT_STRING_EQUAL (or_null (e, "code"), code ? code : "(null)");
  if (r.status != status || g_strcmp0 (or_null (e, "code"), code ? code : "(null)"))
    printf ("\n%s %s: %u %s\n", method, path, r.status, r.body);
  reply_clear (&r);
}

/* What `cria generate --json` writes for the prompt: the reference text
 * (BOS added, as by default; `stop` may also be "-p" with a format). */
static JsonObject *
generate (const char *prompt, const char *max, const char *stop)
{
  gboolean format = stop && !strcmp (stop, "-p");
  const char *args[] = { "generate",
                         "--model",
                         model_dir,
                         "--json",
                         "-n",
                         max,
                         prompt,
                         stop ? (format ? "-p" : "--stop") : NULL,
                         format ? "llama2" : stop,
                         NULL };
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &out, NULL), 0);
  JsonNode *node = json_from_string (out, NULL);
  CU_ASSERT_FATAL (node && JSON_NODE_HOLDS_OBJECT (node));
  JsonObject *o = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return o;
}

static void
test_models (void)
{
  Reply r;
  request (&main_server, "GET", "/models", NULL, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (obj (&r), "object"), "list");
  JsonObject *m = json_array_get_object_element (json_object_get_array_member (obj (&r), "data"), 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (m, "id"), "stories260K");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (m, "object"), "model");
  reply_clear (&r);
}

static void
assert_usage (const Reply *r, gint64 prompt, gint64 completion)
{
  JsonObject *u = json_object_get_object_member (obj (r), "usage");
  CU_ASSERT_FATAL (u != NULL);
  CU_ASSERT_EQUAL (json_object_get_int_member (u, "prompt_tokens"), prompt);
  CU_ASSERT_EQUAL (json_object_get_int_member (u, "completion_tokens"), completion);
  CU_ASSERT_EQUAL (json_object_get_int_member (u, "total_tokens"), prompt + completion);
}

/* What every answer carries: its object, an id, the served model, a time. */
static void
assert_answer (Reply *r, const char *object, const char *id_prefix)
{
  CU_ASSERT_EQUAL_FATAL (r->status, 200);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (obj (r), "object"), object);
  CU_ASSERT (g_str_has_prefix (json_object_get_string_member (obj (r), "id"), id_prefix));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (obj (r), "model"), "stories260K");
  CU_ASSERT (json_object_get_int_member (obj (r), "created") > 1700000000);
}

static void
test_completion_equals_generate (void)
{
  g_autoptr (JsonObject) ref = generate ("Once upon a time", "24", NULL);
  Reply r;
  request (&main_server, "POST", "/completions",
           "{\"model\": \"stories260K\", \"prompt\": \"Once upon a time\", \"max_tokens\": 24, \"temperature\": 0, "
           "\"user\": \"ignored\"}",
           &r);
  assert_answer (&r, "text_completion", "cmpl-");
  JsonObject *c = choice (&r, 0);
  CU_ASSERT_EQUAL (json_object_get_int_member (c, "index"), 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (c, "text"), json_object_get_string_member (ref, "text"));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (c, "finish_reason"), "length");
  assert_usage (&r, json_object_get_int_member (ref, "prompt_tokens"), 24);
  reply_clear (&r);
}

/* stories260K has no chat template: its family's format (llama2) renders
 * the conversation, as `cria generate -p llama2` renders the prompt. */
static void
test_chat_equals_generate (void)
{
  g_autoptr (JsonObject) ref = generate ("Once upon a time", "20", "-p");
  Reply r;
  request (&main_server, "POST", "/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Once upon\"}, "
           "{\"type\": \"text\", \"text\": \" a time\"}]}], \"max_completion_tokens\": 20, \"seed\": 3}",
           &r);
  assert_answer (&r, "chat.completion", "chatcmpl-");
  JsonObject *m = json_object_get_object_member (choice (&r, 0), "message");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (m, "role"), "assistant");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (m, "content"), json_object_get_string_member (ref, "text"));
  assert_usage (&r, json_object_get_int_member (ref, "prompt_tokens"), 20);
  reply_clear (&r);
}

/* A stop string: the text ends before it, as `cria generate --stop` ends it. */
static void
test_stop (void)
{
  g_autoptr (JsonObject) ref = generate ("Once upon a time", "40", "Lily");
  Reply r;
  request (&main_server, "POST", "/completions",
           "{\"prompt\": [\"Once upon a time\", \"Once upon a time\"], \"max_tokens\": 40, \"stop\": [\"Lily\"]}", &r);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  for (guint i = 0; i < 2; i++) {
    JsonObject *c = choice (&r, i);
    CU_ASSERT_EQUAL (json_object_get_int_member (c, "index"), i);
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (c, "text"), json_object_get_string_member (ref, "text"));
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (c, "finish_reason"), "stop");
  }
  CU_ASSERT (strstr (json_object_get_string_member (ref, "text"), "Lily") == NULL);
  reply_clear (&r);
}

/* The events of a text/event-stream body, each "data: ..." payload. */
static GPtrArray *
events (const char *body)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) parts = g_strsplit (body, "\n\n", -1);
  for (guint i = 0; parts[i]; i++) {
    if (!*parts[i])
      continue;
    CU_ASSERT (g_str_has_prefix (parts[i], "data: "));
    g_ptr_array_add (out, g_strdup (parts[i] + 6));
  }
  return out;
}

static void
test_stream_chat (void)
{
  Reply whole, r;
  const char *body = "{\"messages\": [{\"role\": \"user\", \"content\": \"The cat\"}], \"max_tokens\": 30, ";
  g_autofree char *plain = g_strconcat (body, "\"stream\": false}", NULL);
  g_autofree char *streamed = g_strconcat (body, "\"stream\": true}", NULL);
  request (&main_server, "POST", "/chat/completions", plain, &whole);
  request (&main_server, "POST", "/chat/completions", streamed, &r);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  g_autoptr (GPtrArray) ev = events (r.body);
  CU_ASSERT_FATAL (ev->len >= 3);
  CU_ASSERT_STRING_EQUAL (g_ptr_array_index (ev, ev->len - 1), "[DONE]");
  g_autoptr (GString) text = g_string_new (NULL);
  const char *finish = NULL;
  g_autoptr (GPtrArray) nodes = g_ptr_array_new_with_free_func ((GDestroyNotify) json_node_unref);
  for (guint i = 0; i + 1 < ev->len; i++) {
    JsonNode *n = json_from_string (g_ptr_array_index (ev, i), NULL);
    CU_ASSERT_FATAL (n != NULL);
    g_ptr_array_add (nodes, n);
    JsonObject *o = json_node_get_object (n);
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "object"), "chat.completion.chunk");
    JsonObject *c = json_array_get_object_element (json_object_get_array_member (o, "choices"), 0);
    JsonObject *delta = json_object_get_object_member (c, "delta");
    /* The role comes first, alone. */
    CU_ASSERT_EQUAL (json_object_has_member (delta, "role"), i == 0);
    g_string_append (text, json_object_get_string_member_with_default (delta, "content", ""));
    if (!json_object_get_null_member (c, "finish_reason"))
      finish = json_object_get_string_member (c, "finish_reason");
  }
  JsonObject *m = json_object_get_object_member (choice (&whole, 0), "message");
  CU_ASSERT_STRING_EQUAL (text->str, json_object_get_string_member (m, "content"));
  CU_ASSERT_STRING_EQUAL (finish, json_object_get_string_member (choice (&whole, 0), "finish_reason"));
  reply_clear (&whole);
  reply_clear (&r);
}

/* Completion chunks carry "text"; include_usage adds a last chunk with the usage. */
static void
test_stream_completion (void)
{
  Reply r;
  request (&main_server, "POST", "/completions",
           "{\"prompt\": \"Once upon a time\", \"max_tokens\": 24, \"stream\": true, "
           "\"stream_options\": {\"include_usage\": true}}",
           &r);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  g_autoptr (JsonObject) ref = generate ("Once upon a time", "24", NULL);
  g_autoptr (GPtrArray) ev = events (r.body);
  CU_ASSERT_FATAL (ev->len >= 3);
  g_autoptr (GString) text = g_string_new (NULL);
  for (guint i = 0; i + 2 < ev->len; i++) {
    g_autoptr (JsonNode) n = json_from_string (g_ptr_array_index (ev, i), NULL);
    JsonObject *c = json_array_get_object_element (json_object_get_array_member (json_node_get_object (n), "choices"),
                                                   0);
    g_string_append (text, json_object_get_string_member (c, "text"));
  }
  CU_ASSERT_STRING_EQUAL (text->str, json_object_get_string_member (ref, "text"));
  Reply usage = { .json = json_from_string (g_ptr_array_index (ev, ev->len - 2), NULL) };
  assert_usage (&usage, json_object_get_int_member (ref, "prompt_tokens"), 24);
  reply_clear (&usage);
  reply_clear (&r);
}

static CriaGenRequest
gen_request (const char *prompt, GPtrArray *messages, int max)
{
  return (CriaGenRequest){
    .prompt = prompt, .messages = messages, .max_tokens = max, .temperature = -1, .top_p = -1, .seed = -1
  };
}

static char *
run_generator (const char *spec, const CriaGenRequest *req, const char *cache)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaGenerator) g = cria_generator_new (reg, spec, &error);
  g_assert_no_error (error);
  if (cache)
    cria_generator_set_cache_dir (g, cache);
  CriaGenResult res;
  gboolean ok = cria_generator_generate (g, req, &res, NULL, &error);
  g_assert_no_error (error);
  CU_ASSERT_FATAL (ok);
  char *text = g_steal_pointer (&res.text);
  cria_gen_result_clear (&res);
  return text;
}

/* Completions' text_offset on a SentencePiece model, whose answer opens
 * with a "▁" token: each token's offset in the answer's text, as
 * @huggingface/tokenizers counts it (offset-golden.json, made by
 * make-offset-golden.mjs); streamed chunks go on from the tokens before. */
static void
test_text_offset (void)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/offset-golden.json", NULL);
  g_autoptr (JsonNode) golden = cria_json_load_file (path, NULL);
  CU_ASSERT_FATAL (golden != NULL);
  JsonArray *cases = json_node_get_array (golden);
  for (guint c = 0; c < json_array_get_length (cases); c++) {
    JsonObject *want = json_array_get_object_element (cases, c);
    JsonArray *want_tokens = json_object_get_array_member (want, "tokens");
    JsonArray *want_offsets = json_object_get_array_member (want, "text_offset");
    guint n = json_array_get_length (want_offsets);
    for (int streamed = 0; streamed < 2; streamed++) {
      g_autofree char *body = g_strdup_printf (
          "{\"prompt\": \"%s\", \"max_tokens\": 12, \"logprobs\": 1, \"stream\": %s}",
          json_object_get_string_member (want, "prompt"), streamed ? "true" : "false");
      Reply r;
      request (&main_server, "POST", "/completions", body, &r);
      CU_ASSERT_EQUAL_FATAL (r.status, 200);
      g_autoptr (GString) text = g_string_new (NULL);
      g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func (g_free);
      g_autoptr (GArray) offsets = g_array_new (FALSE, FALSE, sizeof (gint64));
      g_autoptr (GPtrArray) ev = streamed ? events (r.body) : NULL;
      for (guint e = 0; e < (streamed ? ev->len - 1 : 1); e++) {
        g_autoptr (JsonNode) node = streamed ? json_from_string (g_ptr_array_index (ev, e), NULL) : NULL;
        JsonObject *o = streamed ? json_node_get_object (node) : json_node_get_object (r.json);
        JsonObject *ch = json_array_get_object_element (json_object_get_array_member (o, "choices"), 0);
        g_string_append (text, json_object_get_string_member (ch, "text"));
        JsonObject *lp = json_object_get_object_member (ch, "logprobs");
        JsonArray *t = json_object_get_array_member (lp, "tokens");
        JsonArray *off = json_object_get_array_member (lp, "text_offset");
        for (guint i = 0; i < json_array_get_length (off); i++) {
          g_ptr_array_add (tokens, g_strdup (json_array_get_string_element (t, i)));
          gint64 v = json_array_get_int_element (off, i);
          g_array_append_val (offsets, v);
        }
      }
      CU_ASSERT_STRING_EQUAL (text->str, json_object_get_string_member (want, "text"));
      CU_ASSERT_EQUAL_FATAL (offsets->len, n);
      for (guint i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL (g_ptr_array_index (tokens, i), json_array_get_string_element (want_tokens, i));
        CU_ASSERT_EQUAL (g_array_index (offsets, gint64, i), json_array_get_int_element (want_offsets, i));
      }
      reply_clear (&r);
    }
  }
}

/* cria's own client, both APIs, and the local generator: one text. */
static void
test_generators (void)
{
  g_autoptr (JsonObject) ref = generate ("The dog", "16", NULL);
  g_autoptr (JsonObject) chat_ref = generate ("The dog", "16", "-p");
  const char *want = json_object_get_string_member (ref, "text");
  const char *want_chat = json_object_get_string_member (chat_ref, "text");
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  CriaMessage *m = g_new0 (CriaMessage, 1);
  m->role = g_strdup ("user");
  m->content = g_strdup ("The dog");
  g_ptr_array_add (msgs, m);
  CriaGenRequest completion = gen_request ("The dog", NULL, 16), chat = gen_request (NULL, msgs, 16);
  g_autofree char *spec_c = g_strdup_printf ("openai base-url=%s model=stories260K api=completions", main_server.url);
  g_autofree char *spec_chat = g_strdup_printf ("openai base-url=%s model=stories260K api=chat", main_server.url);
  g_autofree char *local_spec = g_strdup_printf ("local model=%s threads=1", model_dir);
  g_autofree char *a = run_generator (spec_c, &completion, NULL);
  g_autofree char *b = run_generator (spec_chat, &chat, NULL);
  g_autofree char *c = run_generator (local_spec, &completion, NULL);
  g_autofree char *d = run_generator (local_spec, &chat, NULL);
  CU_ASSERT_STRING_EQUAL (a, want);
  CU_ASSERT_STRING_EQUAL (b, want_chat);
  CU_ASSERT_STRING_EQUAL (c, want);
  /* The local generator chooses the prompt as cria serve does: this
   * LLaMA model ships no chat template, so its family's format (llama2). */
  CU_ASSERT_STRING_EQUAL (d, want_chat);
}

/* The local generator: its cache, a batch, and its refusals. */
static void
test_local_generator (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *spec = g_strdup_printf ("local model=%s max-tokens=12", model_dir);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaGenerator) g = cria_generator_new (reg, spec, &error);
  g_assert_no_error (error);
  cria_generator_set_cache_dir (g, dir);
  g_autoptr (GString) big = g_string_new (NULL);
  for (guint i = 0; i < 600; i++)
    g_string_append (big, "cat ");
  CriaGenRequest reqs[3] = { gen_request ("The dog", NULL, 0), gen_request ("The cat", NULL, 0),
                             gen_request (big->str, NULL, 0) };
  CriaGenResult res[3];
  CU_ASSERT_EQUAL (cria_generator_generate_batch (g, reqs, res, 3, NULL), 2);
  CU_ASSERT_EQUAL (res[0].completion_tokens, 12);
  CU_ASSERT_STRING_EQUAL (res[0].finish_reason, "length");
  /* Longer than the model's context of 512. */
  CU_ASSERT (g_error_matches (res[2].error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT));
  CriaGenResult again;
  CU_ASSERT_FATAL (cria_generator_generate (g, &reqs[1], &again, NULL, &error));
  CU_ASSERT (again.cached);
  CU_ASSERT_STRING_EQUAL (again.text, res[1].text);
  CU_ASSERT_EQUAL (cria_generator_get_n_calls (g), 3);
  cria_gen_result_clear (&again);
  for (guint i = 0; i < 3; i++)
    cria_gen_result_clear (&res[i]);
  /* A conversation goes through the model's family format (llama2), as
   * it does when named; an answered one has nothing to answer. */
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  for (guint i = 0; i < 3; i++) {
    CriaMessage *m = g_new0 (CriaMessage, 1);
    m->role = g_strdup (i == 0 ? "system" : i == 1 ? "user" : "assistant");
    m->content = g_strdup ("Hi");
    g_ptr_array_add (msgs, m);
  }
  CriaGenRequest chat = gen_request (NULL, msgs, 4);
  CriaGenResult r;
  CU_ASSERT_FALSE (cria_generator_generate (g, &chat, &r, NULL, &error));
  CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT));
  g_clear_error (&error);
  g_ptr_array_set_size (msgs, 2);
  g_autofree char *named = g_strdup_printf ("local model=%s max-tokens=12 prompt-format=llama2", model_dir);
  g_autofree char *by_default = run_generator (spec, &chat, NULL);
  g_autofree char *by_name = run_generator (named, &chat, NULL);
  CU_ASSERT_STRING_EQUAL (by_default, by_name);
  g_autofree char *bad = g_strdup_printf ("local model=%s/nope", dir);
  CU_ASSERT (cria_generator_new (reg, bad, &error) == NULL);
  CU_ASSERT (error != NULL);
  cria_test_rmtree (dir);
}

static void
test_errors (void)
{
  const Server *s = &main_server;
  const char *chat = "/chat/completions";
  assert_error (s, "POST", chat, "{\"messages\": [", 400, NULL, "invalid_json");
  assert_error (s, "POST", chat, "[1, 2]", 400, NULL, "invalid_json");
  assert_error (s, "POST", chat, "{\"max_tokens\": 5}", 400, "messages", NULL);
  assert_error (s, "POST", chat, "{\"messages\": []}", 400, "messages", NULL);
  assert_error (s, "POST", chat, "{\"messages\": [{\"content\": \"x\"}]}", 400, "messages[0].role", NULL);
  /* Wrong kinds and deep nesting (json-glib's parser crashed on it): 400s. */
  assert_error (s, "POST", chat, "{\"messages\": [{\"role\": [\"user\"], \"content\": \"x\"}]}", 400,
                "messages[0].role", NULL);
  assert_error (s, "POST", chat, "{\"messages\": [{\"role\": \"user\", \"content\": {\"a\": 1}}]}", 400,
                "messages[0].content", NULL);
  g_autoptr (GString) deep = g_string_new ("{\"messages\": ");
  for (guint i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  for (guint i = 0; i < 100000; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  assert_error (s, "POST", chat, deep->str, 400, NULL, "invalid_json");
  assert_error (s, "POST", chat, "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", 400, "messages[0].role",
                NULL);
  assert_error (s, "POST", chat, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "messages[0].content",
                NULL);
  const char *msgs = "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]";
  const struct {
    const char *field, *param;
  } bad[] = {
    { "\"temperature\": 2.5", "temperature" },
    { "\"temperature\": \"hot\"", "temperature" },
    { "\"top_p\": 0", "top_p" },
    { "\"top_p\": 1.5", "top_p" },
    { "\"max_tokens\": 0", "max_tokens" },
    { "\"max_tokens\": 1.5", "max_tokens" },
    { "\"n\": 17", "n" },
    { "\"presence_penalty\": -2.5", "presence_penalty" },
    { "\"frequency_penalty\": 3", "frequency_penalty" },
    { "\"top_logprobs\": 2", "top_logprobs" },
    { "\"tools\": [{\"type\": \"function\"}]", "tools" },
    { "\"response_format\": {\"type\": \"xml\"}", "response_format.type" },
    { "\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]", "stop" },
    { "\"stop\": 7", "stop" },
    { "\"stream\": \"yes\"", "stream" },
    { "\"seed\": -1", "seed" },
    { "\"logprobs\": 1", "logprobs" },
    { "\"model\": 5", "model" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *body = g_strdup_printf ("{%s, %s}", msgs, bad[i].field);
    assert_error (s, "POST", chat, body, 400, bad[i].param, NULL);
  }
  /* Accepted at the value that changes nothing. */
  Reply r;
  g_autofree char *zero = g_strdup_printf (
      "{%s, \"n\": 1, \"presence_penalty\": 0, \"max_tokens\": 2, \"logprobs\": false}", msgs);
  request (s, "POST", chat, zero, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  reply_clear (&r);
  assert_error (s, "POST", "/embeddings", "{\"input\": \"x\"}", 400, "input", "unsupported_endpoint");
  assert_error (s, "POST", "/completions", "{\"max_tokens\": 5}", 400, "prompt", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": [1, 2, 3]}", 400, "prompt", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": []}", 400, "prompt", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": \"x\", \"echo\": true}", 400, "echo", NULL);
  assert_error (s, "POST", "/completions", "{\"prompt\": \"x\", \"model\": \"gpt-4\"}", 404, "model",
                "model_not_found");
  assert_error (s, "GET", "/nowhere", NULL, 404, NULL, "not_found");
  assert_error (s, "POST", "/models", "{}", 405, NULL, "method_not_allowed");
  assert_error (s, "GET", "/chat/completions", NULL, 405, NULL, "method_not_allowed");
  /* A prompt longer than the model's context (512 positions). */
  g_autoptr (GString) big = g_string_new ("{\"prompt\": \"");
  for (guint i = 0; i < 600; i++)
    g_string_append (big, "cat ");
  g_string_append (big, "\"}");
  assert_error (s, "POST", "/completions", big->str, 400, "prompt", NULL);
}

/* --max-body 4 (KiB) on the busy server. */
static void
test_body_too_large (void)
{
  g_autoptr (GString) big = g_string_new ("{\"prompt\": \"");
  for (guint i = 0; i < 2000; i++)
    g_string_append (big, "cat ");
  g_string_append (big, "\"}");
  assert_error (&busy_server, "POST", "/completions", big->str, 413, NULL, "body_too_large");
}

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
static void
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
static void
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
static void
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

/* --api-key, --cors-origin, /health, /v1/models/{id} and a JSON schema,
 * without node (test-openai drives the same with the openai client). */
static void
test_key_cors_schema (void)
{
  Server k = { 0 };
  const char *extra[] = { "--api-key", "k3y", "--cors-origin", "http://a.test", "-n", "48", NULL };
  server_start (&k, extra);
  const char *key[] = { "Authorization", "Bearer k3y", "Origin", "http://a.test", NULL };
  const char *wrong[] = { "Authorization", "Bearer k3z", NULL };
  CU_ASSERT_EQUAL (request_with (&k, "GET", "/models", NULL, NULL, NULL, NULL), 401);
  g_autofree char *body = NULL;
  CU_ASSERT_EQUAL (request_with (&k, "GET", "/models", NULL, wrong, NULL, &body), 401);
  CU_ASSERT (strstr (body, "\"invalid_api_key\"") != NULL);
  SoupMessageHeaders *h = NULL;
  CU_ASSERT_EQUAL (request_with (&k, "GET", "/models/stories260K", NULL, key, &h, NULL), 200);
  CU_ASSERT_STRING_EQUAL (soup_message_headers_get_one (h, "Access-Control-Allow-Origin"), "http://a.test");
  g_boxed_free (SOUP_TYPE_MESSAGE_HEADERS, h);
  CU_ASSERT_EQUAL (request_with (&k, "GET", "/models/other", NULL, key, NULL, NULL), 404);
  const char *pre[] = { "Origin", "http://a.test", "Access-Control-Request-Method", "POST", NULL };
  CU_ASSERT_EQUAL (request_with (&k, "OPTIONS", "/chat/completions", NULL, pre, &h, NULL), 204);
  CU_ASSERT (soup_message_headers_get_one (h, "Access-Control-Allow-Methods") != NULL);
  g_boxed_free (SOUP_TYPE_MESSAGE_HEADERS, h);
  /* /health is beside /v1, and needs no key. */
  g_autofree char *root = g_strndup (k.url, strlen (k.url) - 3);
  Server bare = { NULL, root };
  CU_ASSERT_EQUAL (request_with (&bare, "GET", "/health", NULL, NULL, NULL, NULL), 200);
  g_autofree char *answer = NULL;
  CU_ASSERT_EQUAL (request_with (&k, "POST", "/chat/completions",
                                 "{\"messages\": [{\"role\": \"user\", \"content\": \"A dog\"}], \"temperature\": 1, "
                                 "\"seed\": 4, \"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                                 "{\"name\": \"r\", \"schema\": {\"type\": \"object\", \"properties\": {\"ok\": "
                                 "{\"type\": \"boolean\"}, \"n\": {\"type\": \"integer\"}}, \"required\": [\"ok\", "
                                 "\"n\"], \"additionalProperties\": false}}}}",
                                 key, NULL, &answer),
                   200);
  g_autoptr (JsonNode) a = json_from_string (answer, NULL);
  g_assert (a);
  JsonObject *c = json_array_get_object_element (json_object_get_array_member (json_node_get_object (a), "choices"), 0);
  const char *content = json_object_get_string_member (json_object_get_object_member (c, "message"), "content");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (c, "finish_reason"), "stop");
  g_autoptr (JsonNode) doc = json_from_string (content, NULL);
  CU_ASSERT_FATAL (doc && JSON_NODE_HOLDS_OBJECT (doc));
  JsonObject *d = json_node_get_object (doc);
  CU_ASSERT_EQUAL (json_object_get_size (d), 2);
  CU_ASSERT (json_node_get_value_type (json_object_get_member (d, "ok")) == G_TYPE_BOOLEAN);
  CU_ASSERT (json_node_get_value_type (json_object_get_member (d, "n")) == G_TYPE_INT64);
  CU_ASSERT_EQUAL (server_stop (&k), 0);
}

/* A chat format on the busy server: a conversation renders, and the local
 * generator with the same format gives the same text. */
static void
test_prompt_format (void)
{
  Reply r;
  request (
      &busy_server, "POST", "/chat/completions",
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Tell a story.\"}, {\"role\": \"user\", \"content\": "
      "\"A dog\"}, {\"role\": \"assistant\", \"content\": \"Once\"}, {\"role\": \"user\", \"content\": \"More\"}], "
      "\"max_tokens\": 12}",
      &r);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  const char *turns[][2] = { { "user", "A dog" }, { "assistant", "Once" }, { "user", "More" } };
  for (guint i = 0; i < 3; i++) {
    CriaMessage *m = g_new0 (CriaMessage, 1);
    m->role = g_strdup (turns[i][0]);
    m->content = g_strdup (turns[i][1]);
    g_ptr_array_add (msgs, m);
  }
  CriaGenRequest req = gen_request (NULL, msgs, 12);
  req.system = "Tell a story.";
  g_autofree char *spec = g_strdup_printf ("local model=%s prompt-format=chatml", model_dir);
  g_autofree char *text = run_generator (spec, &req, NULL);
  JsonObject *m = json_object_get_object_member (choice (&r, 0), "message");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (m, "content"), text);
  reply_clear (&r);
}

/* A client that hangs up mid-stream costs the server nothing but that answer. */
static void
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

static void
test_bad_start (void)
{
  const char *no_model[] = { "serve", "--model", "/nonexistent/model", "--port", "0", NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (no_model, NULL, NULL, &err), 1);
  CU_ASSERT (strstr (err, "/nonexistent/model") != NULL);
  const char *bad_host[] = { "serve", "--model", model_dir, "--host", "not-an-address", NULL };
  g_clear_pointer (&err, g_free);
  CU_ASSERT_EQUAL (cria_test_run_cria (bad_host, NULL, NULL, &err), 1);
  CU_ASSERT (strstr (err, "--host") != NULL);
  const char *bad_format[] = { "serve", "--model", model_dir, "--prompt-format", "nope", "--port", "0", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (bad_format, NULL, NULL, NULL), 1);
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
static void
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

/* Hostile clients ---------------------------------------------------------- */

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
static void
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
static void
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
static void
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
static void
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
static void
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
static void
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

static void
register_suites (void)
{
  model_dir = cria_test_shared ("models/stories260K");
  reg = cria_test_registry ();
  server_start (&main_server, NULL);
  const char *busy[] = { "--max-concurrent", "1", "--max-body", "4", "--prompt-format", "chatml", NULL };
  server_start (&busy_server, busy);
  const char *guard[] = { "--header-timeout", "1", "--idle-timeout", "2", "--max-body", "64", NULL };
  server_start (&guard_server, guard);
  static const CriaTestCase cases[] = {
    { "GET /v1/models", test_models },
    { "completions' text_offset on a SentencePiece model", test_text_offset },
    { "a completion is cria generate's text", test_completion_equals_generate },
    { "a chat completion is cria generate's text", test_chat_equals_generate },
    { "stop strings, a list of prompts", test_stop },
    { "chat streaming concatenates to the answer", test_stream_chat },
    { "completion streaming with usage", test_stream_completion },
    { "openai and local generators give the server's text", test_generators },
    { "local generator: cache, batch, refusals", test_local_generator },
    { "errors in OpenAI's shape", test_errors },
    { "413 on a body over --max-body", test_body_too_large },
    { "four clients at once", test_concurrent },
    { "requests join and leave a running batch", test_batch_join_and_hang_up },
    { "503 when the queue is full", test_queue_full },
    { "a chat format renders conversations", test_prompt_format },
    { "API key, CORS, /health, a model by id, a JSON schema", test_key_cors_schema },
    { "a client hanging up mid-stream", test_hang_up },
    { "bad model, host or format at start", test_bad_start },
    { "thousands of dropped connections leave no descriptor", test_dropped_connections },
    { "accepting goes on after EMFILE", test_accept_after_emfile },
    { "header and idle timeouts", test_timeouts },
    { "bodies over --max-body answered before they are read", test_body_over_limit },
    { "conflicting Content-Length is 400", test_bad_framing },
    { "a NUL in content is 400 naming the field", test_nul_in_content },
    { "SIGTERM stops cleanly", test_stop_servers },
    { NULL },
  };
  cria_test_add_suite ("serve", cases);
}

CRIA_TEST_MAIN (register_suites)
