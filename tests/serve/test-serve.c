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
 * Content-Length, and NUL characters in content.
 *
 * The cases of the answers, streamed or not, and of the generators are
 * here; serve-test-errors.c, serve-test-load.c and serve-test-hostile.c
 * hold the others, and serve-test.c the servers and the requests. */
#include <string.h>

#include "serve-test.h"

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
