/* test-chat-prompt: the prompt cria serve, generate and chat feed a model
 * for a conversation is what transformers' apply_chat_template renders with
 * the model's own chat template (goldens: chat-golden.json, made by
 * make-chat-golden.mjs with @huggingface/transformers, for the tiny test
 * models' template; tests/chat-template/golden.json for the shared
 * tokenizers'), with BOS as a chat template or a prompt format wants it;
 * the adapter's recorded format; and response_format's JSON machine. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria.h>
#include <cria/cria-chat-template.h>
#include <cria/cria-generator.h>
#include <cria/cria-lm-runner.h>

#include "../../core/serve/serve-grammar.h"
#include "cria-test.h"

static JsonNode *
load_json (const char *relative)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), relative, NULL);
  g_autoptr (GError) error = NULL;
  JsonNode *n = cria_json_load_file (path, &error);
  g_assert_no_error (error);
  return n;
}

static JsonArray *
conversation (const char *name)
{
  g_autoptr (JsonNode) all = load_json ("tests/chat-template/conversations.json");
  JsonArray *a = json_node_get_array (all);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonObject *c = json_array_get_object_element (a, i);
    if (!strcmp (json_object_get_string_member (c, "name"), name))
      return json_array_ref (json_object_get_array_member (c, "messages"));
  }
  g_assert_not_reached ();
}

/* A tokenizer_config.json with the tiny models' template (or none). */
static void
write_config (const char *dir, gboolean with_template)
{
  g_autofree char *src = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/tiny-chat-template.jinja", NULL);
  g_autofree char *tmpl = cria_test_read_file (src);
  g_autoptr (JsonObject) o = json_object_new ();
  json_object_set_string_member (o, "bos_token", "<s>");
  json_object_set_string_member (o, "eos_token", "</s>");
  if (with_template)
    json_object_set_string_member (o, "chat_template", tmpl);
  g_autoptr (JsonNode) root = json_node_init_object (json_node_alloc (), o);
  g_autofree char *text = json_to_string (root, TRUE);
  g_autofree char *path = g_build_filename (dir, "tokenizer_config.json", NULL);
  cria_test_write_file (path, text);
}

/* Every golden conversation, with and without the generation prompt, from
 * tokenizer_config.json and from -p FILE.jinja. */
static void
test_tiny_goldens (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *own = g_build_filename (tmp, "own", NULL), *bare = g_build_filename (tmp, "bare", NULL);
  g_mkdir_with_parents (own, 0755);
  g_mkdir_with_parents (bare, 0755);
  write_config (own, TRUE);
  write_config (bare, FALSE);
  g_autofree char *jinja = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/tiny-chat-template.jinja",
                                             NULL);
  g_autoptr (JsonNode) golden = load_json ("tests/serve/chat-golden.json");
  JsonObject *tiny = json_object_get_object_member (json_node_get_object (golden), "tiny");
  g_autoptr (GList) names = json_object_get_members (tiny);
  CU_ASSERT (g_list_length (names) >= 5);
  for (GList *l = names; l; l = l->next) {
    g_autoptr (JsonArray) messages = conversation (l->data);
    JsonObject *want = json_object_get_object_member (tiny, l->data);
    for (int gen = 0; gen < 2; gen++) {
      const char *expect = json_object_get_string_member (want, gen ? "generation" : "no-generation");
      for (int via_file = 0; via_file < 2; via_file++) {
        g_autoptr (GError) error = NULL;
        g_autofree char *used = NULL;
        g_autofree char *got = cria_chat_prompt_for_model (via_file ? bare : own, via_file ? jinja : NULL, messages,
                                                           gen, NULL, &used, &error);
        g_assert_no_error (error);
        CU_ASSERT_STRING_EQUAL (got, expect);
        CU_ASSERT (g_str_has_prefix (used, "the chat template"));
      }
    }
  }
  cria_test_rmtree (tmp);
}

/* The shared tokenizers' own templates, found in their tokenizer_config.json
 * as serve finds them, against the reference goldens. */
static void
test_shared_templates (void)
{
  g_autofree char *root = cria_test_shared_optional ("tokenizers");
  if (!root)
    return;
  g_autoptr (JsonNode) golden = load_json ("tests/chat-template/golden.json");
  static const char *const names[] = { "qwen2.5", "qwen3", "llama3" };
  static const char *const convs[] = { "chinese", "multi-turn", "system" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *dir = g_build_filename (root, names[i], NULL);
    for (guint k = 0; k < G_N_ELEMENTS (convs); k++) {
      g_autoptr (JsonArray) messages = conversation (convs[k]);
      g_autoptr (GError) error = NULL;
      g_autofree char *got = cria_chat_prompt_for_model (dir, NULL, messages, TRUE, NULL, NULL, &error);
      g_assert_no_error (error);
      JsonObject *t = json_object_get_object_member (json_node_get_object (golden), names[i]);
      const char *want = json_object_get_string_member (json_object_get_object_member (t, convs[k]), "generation");
      CU_ASSERT_STRING_EQUAL (got, want);
    }
  }
}

static CriaGenRequest
chat_request (GPtrArray *msgs, JsonArray *conv)
{
  for (guint i = 0; i < json_array_get_length (conv); i++) {
    JsonObject *m = json_array_get_object_element (conv, i);
    CriaMessage *cm = g_new0 (CriaMessage, 1);
    cm->role = g_strdup (json_object_get_string_member (m, "role"));
    cm->content = g_strdup (json_object_get_string_member (m, "content"));
    g_ptr_array_add (msgs, cm);
  }
  return (CriaGenRequest){ .messages = msgs, .max_tokens = 4, .temperature = 0, .top_p = -1, .seed = -1 };
}

/* The runner (cria serve, the local generator): the model's template with
 * no BOS added (the template writes it), a named format with BOS, and the
 * tokens it counts are the golden's bytes (the tiny models' tokenizer has
 * one token per byte). */
static void
test_runner (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *dir = cria_test_tiny_model (tmp, "tiny-qwen2");
  write_config (dir, TRUE);
  CriaRegistry *reg = cria_test_registry ();
  CriaLmStack st;
  g_autoptr (GError) error = NULL;
  g_assert (cria_lm_stack_open (&st, reg, dir, CRIA_MODEL_DTYPE_AUTO, "cpu threads=1", 0, TRUE, &error));
  CriaSampling s;
  cria_sampling_init (&s);
  g_autoptr (CriaLmRunner) runner = cria_lm_runner_new (st.lm, st.tokenizer, NULL, &s, TRUE);
  cria_lm_runner_set_chat (runner, dir, "auto");
  g_autoptr (JsonNode) golden = load_json ("tests/serve/chat-golden.json");
  JsonObject *tiny = json_object_get_object_member (json_node_get_object (golden), "tiny");
  const char *want = json_object_get_string_member (json_object_get_object_member (tiny, "multi-turn"), "generation");
  g_autoptr (JsonArray) conv = conversation ("multi-turn");
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  CriaGenRequest req = chat_request (msgs, conv);
  gboolean special = TRUE;
  g_autofree char *prompt = cria_lm_runner_render (runner, &req, &special, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (prompt, want);
  CU_ASSERT_FALSE (special);
  CriaGenResult res = { 0 };
  g_assert (cria_lm_runner_generate (runner, &req, NULL, NULL, NULL, &res, &error));
  CU_ASSERT_EQUAL (res.prompt_tokens, (int) strlen (want));
  /* The local generator (Self-Instruct, Evol-Instruct) the same way. */
  g_autofree char *spec = g_strdup_printf ("local model=%s threads=1", dir);
  g_autoptr (CriaGenerator) local = cria_generator_new (reg, spec, &error);
  g_assert_no_error (error);
  CriaGenResult lres = { 0 };
  g_assert (cria_generator_generate (local, &req, &lres, NULL, &error));
  CU_ASSERT_EQUAL (lres.prompt_tokens, (int) strlen (want));
  CU_ASSERT_STRING_EQUAL (lres.text, res.text);
  cria_gen_result_clear (&lres);
  g_clear_pointer (&local, cria_generator_free);
  cria_gen_result_clear (&res);
  /* A shipped format by name: its text, and the tokenizer's BOS. */
  cria_lm_runner_set_chat (runner, dir, "chatml");
  g_autofree char *chatml = cria_lm_runner_render (runner, &req, &special, &error);
  g_assert_no_error (error);
  CU_ASSERT (g_str_has_prefix (chatml, "<|im_start|>user\nName a prime number.<|im_end|>\n"));
  CU_ASSERT (g_str_has_suffix (chatml, "<|im_start|>assistant\n"));
  CU_ASSERT_TRUE (special);
  cria_sampling_clear (&s);
  g_clear_pointer (&runner, cria_lm_runner_free);
  cria_lm_stack_clear (&st);
  cria_registry_free (reg);
  /* cria eval -p auto: the conversation before the answer, the same way. */
  g_autofree char *data = g_build_filename (tmp, "data.jsonl", NULL);
  g_autofree char *out = g_build_filename (tmp, "eval", NULL);
  cria_test_write_file (data, "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a prime number.\"}, "
                              "{\"role\": \"assistant\", \"content\": \"7\"}, {\"role\": \"user\", \"content\": "
                              "\"And another one?\"}, {\"role\": \"assistant\", \"content\": \"11\"}]}\n");
  const char *args[] = { "eval", "--model", dir,         "--data", data,    "-p", "auto",
                         "-n",   "2",       "--threads", "1",      "--out", out,  NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, NULL, NULL), 0);
  g_autofree char *preds_path = g_build_filename (out, "predictions.jsonl", NULL);
  g_autofree char *preds = cria_test_read_file (preds_path);
  g_autoptr (JsonNode) pred = preds ? json_from_string (preds, NULL) : NULL;
  CU_ASSERT_FATAL (pred != NULL);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (json_node_get_object (pred), "prompt"), want);
  /* Without -p: the model's chat template too, for a conversation and for
   * instruction records (their user turn, after their system). */
  cria_test_write_file (data, "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a prime number.\"}, "
                              "{\"role\": \"assistant\", \"content\": \"7\"}, {\"role\": \"user\", \"content\": "
                              "\"And another one?\"}, {\"role\": \"assistant\", \"content\": \"11\"}]}\n"
                              "{\"instruction\": \"Hello!\", \"output\": \"Hi.\"}\n"
                              "{\"system\": \"You are a terse assistant.\", \"instruction\": \"What is 2+2?\", "
                              "\"output\": \"4\"}\n");
  const char *plain[] = { "eval", "--model", dir, "--data", data, "-n", "1", "--threads", "1", "--out", out, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (plain, NULL, NULL, NULL), 0);
  g_autofree char *text = cria_test_read_file (preds_path);
  g_auto (GStrv) lines = g_strsplit (text ? g_strstrip (text) : "", "\n", -1);
  CU_ASSERT_EQUAL_FATAL (g_strv_length (lines), 3);
  static const char *const goldens[] = { "multi-turn", "single", "system" };
  for (guint i = 0; i < 3; i++) {
    g_autoptr (JsonNode) line = json_from_string (lines[i], NULL);
    CU_ASSERT_FATAL (line != NULL);
    const char *got = json_object_get_string_member (json_node_get_object (line), "prompt");
    JsonObject *g = json_object_get_object_member (tiny, goldens[i]);
    CU_ASSERT_STRING_EQUAL (got, json_object_get_string_member (g, "generation"));
  }
  /* After a full fine-tune the model directory records its format, which
   * then wins over the template, as in cria generate and serve. */
  g_assert (cria_prompt_format_record (dir, "alpaca", NULL));
  cria_test_write_file (data, "{\"instruction\": \"Hello!\", \"output\": \"Hi.\"}\n");
  CU_ASSERT_EQUAL (cria_test_run_cria (plain, NULL, NULL, NULL), 0);
  g_autofree char *alpaca = cria_test_read_file (preds_path);
  g_autoptr (JsonNode) line = alpaca ? json_from_string (alpaca, NULL) : NULL;
  CU_ASSERT_FATAL (line != NULL);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (json_node_get_object (line), "prompt"),
                          "Below is an instruction that describes a task. Write a response that appropriately "
                          "completes the request.\n\n### Instruction:\nHello!\n\n### Response:\n");
  cria_test_rmtree (tmp);
}

/* The same prompt gives the same text through cria generate and the
 * runner: both add the tokenizer's BOS (add_bos_token) to a plain prompt. */
static void
test_generate_bos (void)
{
  g_autofree char *dir = cria_test_shared_optional ("models/stories260K");
  if (!dir)
    return;
  g_autofree char *out = NULL;
  const char *args[] = { "generate", "--model", dir, "-n", "12", "--json", "--threads", "1", "Once upon a time", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, &out, NULL), 0);
  g_autoptr (JsonNode) n = json_from_string (out, NULL);
  g_assert (n);
  JsonObject *o = json_node_get_object (n);
  /* "Once upon a time" is 4 tokens, BOS the fifth. */
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "prompt_tokens"), 5);
  CriaRegistry *reg = cria_test_registry ();
  CriaLmStack st;
  g_autoptr (GError) error = NULL;
  g_assert (cria_lm_stack_open (&st, reg, dir, CRIA_MODEL_DTYPE_AUTO, "cpu threads=1", 0, TRUE, &error));
  CriaSampling s;
  cria_sampling_init (&s);
  cria_sampling_add_model_stops (&s, st.model);
  g_autoptr (CriaLmRunner) runner = cria_lm_runner_new (st.lm, st.tokenizer, NULL, &s, TRUE);
  CriaGenRequest req = { .prompt = "Once upon a time", .max_tokens = 12, .temperature = 0, .top_p = -1, .seed = -1 };
  CriaGenResult res = { 0 };
  g_assert (cria_lm_runner_generate (runner, &req, NULL, NULL, NULL, &res, &error));
  CU_ASSERT_STRING_EQUAL (res.text, json_object_get_string_member (o, "text"));
  CU_ASSERT_EQUAL (res.prompt_tokens, 5);
  cria_gen_result_clear (&res);
  cria_sampling_clear (&s);
  g_clear_pointer (&runner, cria_lm_runner_free);
  cria_lm_stack_clear (&st);
  cria_registry_free (reg);
}

/* cria train's record of the format, and how the verbs find it. */
static void
test_recorded_format (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (cria_prompt_format_recorded (tmp));
  g_assert (cria_prompt_format_record (tmp, "chatml", &error));
  g_autofree char *path = cria_prompt_format_recorded (tmp);
  g_assert (path);
  g_autoptr (CriaPromptFormat) f = cria_prompt_format_load (path, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (cria_prompt_format_get_name (f), "chatml");
  CU_ASSERT_FALSE (cria_prompt_format_record (tmp, "no-such-format", &error));
  CU_ASSERT (error != NULL);
  /* A chat client's single question through a single-turn format. */
  g_autoptr (CriaPromptFormat) alpaca = cria_prompt_format_load ("alpaca", NULL);
  g_autoptr (CriaRecord) r = cria_record_new ();
  cria_record_add_message (r, "user", "Name a color.");
  g_autofree char *prompt = NULL, *response = NULL;
  g_assert (cria_prompt_format_render (alpaca, r, &prompt, &response, NULL));
  CU_ASSERT (strstr (prompt, "Name a color.") != NULL);
  cria_test_rmtree (tmp);
}

static gboolean
accepts (const ServeSchema *s, const char *doc)
{
  g_autoptr (ServeGrammar) g = serve_grammar_new (s);
  return serve_grammar_feed (g, doc, strlen (doc)) && serve_grammar_done (g);
}

static ServeSchema *
schema (const char *json)
{
  g_autoptr (JsonNode) n = json_from_string (json, NULL);
  g_autoptr (GError) error = NULL;
  ServeSchema *s = serve_schema_compile (n, &error);
  g_assert_no_error (error);
  return s;
}

static void
test_grammar (void)
{
  CU_ASSERT_TRUE (accepts (NULL, "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\"], \"b\": {}}"));
  CU_ASSERT_FALSE (accepts (NULL, "[1]")); /* json_object: an object */
  CU_ASSERT_FALSE (accepts (NULL, "{\"a\": 01}"));
  CU_ASSERT_FALSE (accepts (NULL, "{\"a\": tru}"));
  CU_ASSERT_FALSE (accepts (NULL, "{\"a\":\n\n1}")); /* whitespace runs are capped */
  CU_ASSERT_FALSE (accepts (NULL, "{\"a\": 1"));     /* not whole */
  g_autoptr (ServeSchema) s = schema ("{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}, "
                                      "\"n\": {\"type\": \"integer\"}, \"c\": {\"enum\": [\"red\", \"green\"]}, "
                                      "\"t\": {\"type\": [\"string\", \"null\"], \"maxLength\": 3}, "
                                      "\"l\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/p\"}, "
                                      "\"minItems\": 1, \"maxItems\": 2}}, "
                                      "\"required\": [\"ok\", \"n\"], \"additionalProperties\": false, "
                                      "\"$defs\": {\"p\": {\"anyOf\": [{\"type\": \"number\"}, {\"const\": \"x\"}]}}}");
  CU_ASSERT_TRUE (accepts (s, "{\"n\": 3, \"ok\": false}"));
  CU_ASSERT_TRUE (accepts (s, "{\"ok\":true,\"n\":-1,\"c\":\"green\",\"t\":null,\"l\":[2.5,\"x\"]}"));
  CU_ASSERT_TRUE (accepts (s, "{\"ok\":true,\"n\":0,\"t\":\"abc\"}"));
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true}"));                     /* n is required */
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1.5}"));           /* an integer */
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"z\":1}"));     /* no other property */
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"ok\":true}")); /* each once */
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"c\":\"blue\"}"));
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"t\":\"abcd\"}"));
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"l\":[]}"));
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"l\":[1,2,3]}"));
  CU_ASSERT_FALSE (accepts (s, "{\"ok\":true,\"n\":1,\"l\":[\"y\"]}"));
  /* What cannot be enforced is refused, naming the keyword. */
  g_autoptr (JsonNode) bad = json_from_string ("{\"type\": \"string\", \"pattern\": \"^a\"}", NULL);
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (serve_schema_compile (bad, &error));
  CU_ASSERT (error && strstr (error->message, "pattern"));
}

/* The mask keeps exactly the tokens the machine can take. */
static void
test_mask (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *dir = cria_test_tiny_model (tmp, "tiny-qwen2");
  CriaRegistry *reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (reg, dir, &error);
  g_assert_no_error (error);
  ServeVocab *v = serve_vocab_new (tok);
  g_autoptr (ServeSchema) s = schema ("{\"type\": \"object\", \"properties\": {\"b\": {\"type\": \"boolean\"}}, "
                                      "\"required\": [\"b\"]}");
  g_autoptr (ServeGrammar) g = serve_grammar_new (s);
  float logits[256];
  const char *doc = "{\"b\": true}";
  for (const char *p = doc; *p; p++) {
    for (int i = 0; i < 256; i++)
      logits[i] = 0;
    CU_ASSERT_TRUE (serve_grammar_mask (g, v, logits, 256, -1));
    CU_ASSERT_EQUAL (logits[(guchar) *p], 0); /* the byte tokenizer: id b is byte b */
    int open = 0;
    for (int i = 0; i < 256; i++)
      open += logits[i] == 0;
    /* After "{\"b\": t" only 'r' is possible, after "{\"" only 'b'... */
    if (*p == 'r' || *p == 'b')
      CU_ASSERT_EQUAL (open, 1);
    CU_ASSERT_TRUE (serve_grammar_feed_token (g, v, (guchar) *p));
  }
  CU_ASSERT_TRUE (serve_grammar_done (g));
  /* Short of tokens, only what brings the end nearer: after {"b" the
   * colon, not a blank. */
  g_autoptr (ServeGrammar) h = serve_grammar_new (s);
  CU_ASSERT_TRUE (serve_grammar_feed (h, "{\"b\"", 4));
  CU_ASSERT_EQUAL (serve_grammar_close_cost (h), 6); /* :true} */
  for (int i = 0; i < 256; i++)
    logits[i] = 0;
  CU_ASSERT_TRUE (serve_grammar_mask (h, v, logits, 256, 6));
  CU_ASSERT_EQUAL (logits[':'], 0);
  CU_ASSERT (isinf (logits[' ']));
  g_autoptr (ServeGrammar) any = serve_grammar_new (NULL);
  CU_ASSERT_TRUE (serve_grammar_feed (any, "{\"ab", 4));
  CU_ASSERT_EQUAL (serve_grammar_close_cost (any), 4); /* ":0} */
  serve_vocab_free (v);
  cria_registry_free (reg);
  cria_test_rmtree (tmp);
}

static const CriaTestCase prompt_cases[] = {
  { "the tiny models' template renders as transformers does", test_tiny_goldens },
  { "the shared tokenizers' own templates are found and match", test_shared_templates },
  { "the runner and eval use the model's template, a format by name, and BOS", test_runner },
  { "generate adds BOS as serve does: the same text", test_generate_bos },
  { "the adapter's recorded prompt format", test_recorded_format },
  { NULL },
};

static const CriaTestCase grammar_cases[] = {
  { "JSON and the schema subset", test_grammar },
  { "the token mask", test_mask },
  { NULL },
};

static void
register_suites (void)
{
  cria_test_add_suite ("chat prompts", prompt_cases);
  cria_test_add_suite ("response_format", grammar_cases);
}

CRIA_TEST_MAIN (register_suites)
