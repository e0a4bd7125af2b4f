/* serve-test-errors.c: test-serve's refusals in OpenAI's shape, and the
 * options that guard the server: --max-body, --api-key, --cors-origin, and
 * what it refuses at start. */
#include <string.h>

#include "serve-test.h"

void
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
void
test_body_too_large (void)
{
  g_autoptr (GString) big = g_string_new ("{\"prompt\": \"");
  for (guint i = 0; i < 2000; i++)
    g_string_append (big, "cat ");
  g_string_append (big, "\"}");
  assert_error (&busy_server, "POST", "/completions", big->str, 413, NULL, "body_too_large");
}

/* --api-key, --cors-origin, /health, /v1/models/{id} and a JSON schema,
 * without node (test-openai drives the same with the openai client). */
void
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

void
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
