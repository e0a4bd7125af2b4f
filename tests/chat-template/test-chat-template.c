/* test-chat-template: chat templates against an independent reference.
 *
 * tests/chat-template/golden.json holds every conversation of conversations.json
 * rendered through the real templates of ../shared/tokenizers by
 * @huggingface/transformers' apply_chat_template (make-goldens.mjs), which
 * Python's jinja2 agrees with (check-python.py); cria must give the same
 * bytes. The Jinja semantics tests' expected texts are Python jinja2's. */
#include <string.h>

#include "cria-test.h"

static JsonNode *
load_json (const char *path)
{
  g_autoptr (GError) error = NULL;
  JsonNode *n = cria_json_load_file (path, &error);
  if (!n)
    fprintf (stderr, "%s\n", error->message);
  g_assert (n);
  return n;
}

static char *
src_path (const char *rel)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), rel, NULL);
}

typedef struct {
  const char *name, *dir, *jinja;
} Golden;

static const Golden goldens[] = {
  { "qwen2.5", "tokenizers/qwen2.5", NULL },
  { "qwen3", "tokenizers/qwen3", NULL },
  { "llama3", "tokenizers/llama3", NULL },
  { "conformance-qwen2.5", "tokenizers/qwen2.5", "tokenizers/conformance/Qwen-Qwen2.5-7B-Instruct.jinja" },
  { "conformance-qwen3", "tokenizers/qwen3", "tokenizers/conformance/Qwen-Qwen3-0.6B.jinja" },
};

static CriaChatTemplate *
golden_template (const Golden *g, JsonObject *specials)
{
  g_autofree char *config = g_build_filename (g->dir, "tokenizer_config.json", NULL);
  g_autofree char *config_path = cria_test_shared (config);
  g_autoptr (GError) error = NULL;
  CriaChatTemplate *t;
  if (g->jinja) {
    /* A bare .jinja file: the special tokens come from the tokenizer. */
    g_autofree char *path = cria_test_shared (g->jinja);
    g_autofree char *source = cria_test_read_file (path);
    t = cria_chat_template_new_from_string (source, path, &error);
    g_autoptr (JsonNode) root = load_json (config_path);
    JsonObject *c = json_node_get_object (root);
    json_object_set_string_member (specials, "eos_token", json_object_get_string_member (c, "eos_token"));
    json_object_set_string_member (specials, "pad_token", json_object_get_string_member (c, "pad_token"));
  } else {
    t = cria_chat_template_load (config_path, NULL, &error);
  }
  if (!t)
    fprintf (stderr, "%s\n", error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (t);
  return t;
}

/* A conversation that ends with the assistant splits into a prompt and a
 * response that make up the reference's rendering of the whole. */
static void
split_matches (CriaChatTemplate *t, JsonArray *messages, JsonObject *extra, const char *whole)
{
  JsonObject *last = json_array_get_object_element (messages, json_array_get_length (messages) - 1);
  g_autofree char *prompt = NULL, *response = NULL;
  g_autoptr (GError) error = NULL;
  gboolean ok = cria_chat_template_render_split (t, messages, extra, &prompt, &response, &error);
  if (strcmp (json_object_get_string_member (last, "role"), "assistant")) {
    CU_ASSERT (!ok && g_error_matches (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED));
    return;
  }
  if (!ok)
    fprintf (stderr, "\n%s\n", error->message);
  CU_ASSERT_FATAL (ok);
  g_autofree char *joined = g_strconcat (prompt, response, NULL);
  CU_ASSERT_STRING_EQUAL (joined, whole);
  CU_ASSERT (*response);
}

/* Every template, compiled once, renders every conversation as the
 * reference did, with and without the generation prompt. */
static void
test_goldens (void)
{
  g_autofree char *gpath = src_path ("tests/chat-template/golden.json");
  g_autofree char *cpath = src_path ("tests/chat-template/conversations.json");
  g_autoptr (JsonNode) golden = load_json (gpath);
  g_autoptr (JsonNode) convs = load_json (cpath);
  JsonArray *conversations = json_node_get_array (convs);
  guint compared = 0;
  for (guint g = 0; g < G_N_ELEMENTS (goldens); g++) {
    g_autoptr (JsonObject) specials = json_object_new ();
    g_autoptr (CriaChatTemplate) t = golden_template (&goldens[g], specials);
    JsonObject *want_t = json_object_get_object_member (json_node_get_object (golden), goldens[g].name);
    for (guint c = 0; c < json_array_get_length (conversations); c++) {
      JsonObject *conv = json_array_get_object_element (conversations, c);
      const char *name = json_object_get_string_member (conv, "name");
      g_autoptr (JsonObject) extra = json_object_new ();
      if (json_object_has_member (conv, "tools"))
        json_object_set_member (extra, "tools", json_object_dup_member (conv, "tools"));
      if (json_object_has_member (conv, "extra")) {
        JsonObject *e = json_object_get_object_member (conv, "extra");
        g_autoptr (GList) keys = json_object_get_members (e);
        for (GList *k = keys; k; k = k->next)
          json_object_set_member (extra, k->data, json_object_dup_member (e, k->data));
      }
      g_autoptr (GList) keys = json_object_get_members (specials);
      for (GList *k = keys; k; k = k->next)
        json_object_set_member (extra, k->data, json_object_dup_member (specials, k->data));
      for (int gen = 0; gen < 2; gen++) {
        JsonObject *w = json_object_get_object_member (want_t, name);
        const char *want = json_object_get_string_member (w, gen ? "generation" : "no-generation");
        g_autoptr (GError) error = NULL;
        g_autofree char *got = cria_chat_template_render (t, json_object_get_array_member (conv, "messages"), gen,
                                                          extra, &error);
        if (!got || strcmp (got, want)) {
          fprintf (stderr, "\n%s / %s / generation=%d:\n got: %s\nwant: %s\n", goldens[g].name, name, gen,
                   got ? got : error->message, want);
        }
        CU_ASSERT_STRING_EQUAL (got ? got : "", want);
        compared++;
      }
      split_matches (t, json_object_get_array_member (conv, "messages"), extra,
                     json_object_get_string_member (json_object_get_object_member (want_t, name), "no-generation"));
    }
  }
  CU_ASSERT (compared >= 100);
}

/* Filters, tests, methods, scoping and whitespace rules, each against the
 * text Python's jinja2 renders (semantics.json, by make-semantics.py). */
static void
test_semantics (void)
{
  g_autofree char *path = src_path ("tests/chat-template/semantics.json");
  g_autoptr (JsonNode) root = load_json (path);
  JsonObject *o = json_node_get_object (root);
  JsonObject *vars = json_object_get_object_member (o, "vars");
  JsonArray *cases = json_object_get_array_member (o, "cases");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *source = json_object_get_string_member (c, "template");
    const char *want = json_object_get_string_member (c, "expected");
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (source, "semantics.json", &error);
    g_autofree char *got = t ? cria_chat_template_render (t, json_object_get_array_member (vars, "messages"), FALSE,
                                                          vars, &error)
                             : NULL;
    if (!got || strcmp (got, want))
      fprintf (stderr, "\ncase %u: %s\n got: %s\nwant: %s\n", i, source, got ? got : error->message, want);
    CU_ASSERT_STRING_EQUAL (got ? got : "", want);
  }
}

static char *
render_source (const char *source, GError **error)
{
  g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (source, "t.jinja", error);
  if (!t)
    return NULL;
  g_autoptr (JsonArray) messages = json_array_new ();
  JsonObject *m = json_object_new ();
  json_object_set_string_member (m, "role", "user");
  json_object_set_string_member (m, "content", "hi");
  json_array_add_object_element (messages, m);
  return cria_chat_template_render (t, messages, TRUE, NULL, error);
}

static void
test_generation_block (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *got = render_source ("{% generation %}A{{ messages[0].content }}{% endgeneration %}!", &error);
  CU_ASSERT_STRING_EQUAL (got ? got : error->message, "Ahi!");
}

typedef struct {
  const char *source, *error;
} Bad;

/* Unknown or broken constructs fail at compile time, naming file:line:column. */
static void
test_malformed (void)
{
  static const Bad bad[] = {
    { "{{ x | wordwrap }}", "t.jinja:1:8: unknown filter 'wordwrap'" },
    { "a\n  {{ x is frobbed }}", "t.jinja:2:11: unknown test 'frobbed'" },
    { "{% macro m() %}{% endmacro %}", "t.jinja:1:4: unsupported tag 'macro'" },
    { "{% include 'x' %}", "unsupported tag 'include'" },
    { "{% if x %}open", "missing {% endif %}" },
    { "{% for x in y %}", "missing {% endfor %}" },
    { "text {% endfor %}", "t.jinja:1:9: unexpected 'endfor' outside any block" },
    { "{% if x %}{% endfor %}", "unexpected 'endfor'" },
    { "{{ 'abc }}", "t.jinja:1:4: unterminated string" },
    { "{{ x ", "unterminated {{ tag" },
    { "{# no end", "unterminated comment" },
    { "{{ foo(1) }}", "unknown function 'foo'" },
    { "{{ 'a'.frob() }}", "unsupported method 'frob'" },
    { "{{ (1)(2) }}", "only functions and methods can be called" },
    { "{% for x in %}{% endfor %}", "expected an expression, found '%}'" },
    { "{% for 1 in y %}{% endfor %}", "expected a variable name" },
    { "{% for x y %}{% endfor %}", "expected 'in'" },
    { "{% set x %}y{% endset %}", "only '{% set name = value %}'" },
    { "{{ x = 1 }}", "expected '}}'" },
    { "{{ x ! y }}", "unexpected character '!'" },
    { "{{ 'bad \\x4 escape' }}", "bad \\x escape" },
    { "{{ '\\u0000' }}", "names no character" },
    { "{{ 99999999999999999999 }}", "number out of range" },
    { "{{ [1, 2 }}", "expected ','" },
    { "{{ {'a' 1} }}", "expected ':'" },
    { "{{ x[1:2:3:4] }}", "expected ']'" },
    { "{% %}", "expected a tag name" },
    { "{{ }}", "expected an expression" },
    { "{% for x in y recursive %}{% endfor %}", "recursive loops are not supported" },
    { "{{ f(a=1, 2) }}", "unknown function 'f'" },
    { "{{ namespace(a=1, 2) }}", "positional argument after a keyword argument" },
    { "\xff\xfe", "not valid UTF-8" },
    { "{% if x %}{% break %}{% endif %}", "t.jinja:1:14: 'break' outside a for loop" },
    { "{% for x in y %}{% continue x %}{% endfor %}", "expected '%}'" },
    { NULL, NULL },
  };
  for (const Bad *b = bad; b->source; b++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (b->source, "t.jinja", &error);
    CU_ASSERT_PTR_NULL (t);
    CU_ASSERT_PTR_NOT_NULL_FATAL (error);
    CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_PARSE));
    CU_ASSERT (g_str_has_prefix (error->message, "t.jinja"));
    if (!strstr (error->message, b->error))
      fprintf (stderr, "\n%s: got \"%s\", want \"%s\"\n", b->source, error->message, b->error);
    CU_ASSERT_PTR_NOT_NULL (strstr (error->message, b->error));
  }
}

/* Nesting past the parser's depth is refused, not a stack overflow. */
static void
test_deep_nesting (void)
{
  static const char *const units[][2] = {
    { "(", ")" }, { "[", "]" }, { "not ", "" }, { "-", "" }, { "{% if x %}", "{% endif %}" }
  };
  for (guint u = 0; u < G_N_ELEMENTS (units); u++) {
    g_autoptr (GString) s = g_string_new (u == 4 ? "" : "{{ ");
    for (int i = 0; i < 5000; i++)
      g_string_append (s, units[u][0]);
    g_string_append (s, u == 4 ? "x" : "1");
    for (int i = 0; i < 5000; i++)
      g_string_append (s, units[u][1]);
    g_string_append (s, u == 4 ? "" : " }}");
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (s->str, "deep.jinja", &error);
    CU_ASSERT_PTR_NULL (t);
    CU_ASSERT (error && strstr (error->message, "too deeply"));
  }
}

/* Failures while rendering: the template's own message, type errors,
 * undefined values, and the limits that keep a render finite. */
static void
test_runtime_errors (void)
{
  static const Bad bad[] = {
    { "{{ raise_exception('Conversation roles must alternate user/assistant') }}",
      "t.jinja:1:4: raise_exception: Conversation roles must alternate user/assistant" },
    { "{{ 'a' + 1 }}", "unsupported operand types for +: string and integer" },
    { "{{ foo.bar }}", "'foo' is undefined" },
    { "{{ messages[0].missing + 'x' }}", "'missing' is undefined" },
    { "{{ messages[0].content.startswith() }}", "startswith takes 1 to 1 arguments" },
    { "{{ 1 // 0 }}", "division or modulo by zero" },
    { "{{ 9223372036854775807 + 1 }}", "integer overflow" },
    { "{{ 1 < 'a' }}", "cannot order integer and string" },
    { "{% for x in 3 %}{% endfor %}", "cannot be looped over" },
    { "{% set x = 1 %}{% set x.y = 2 %}", "is not a namespace()" },
    { "{% for a, b in [1] %}{% endfor %}", "cannot unpack" },
    { "{{ 'x'.split('') }}", "empty separator" },
    { "{{ [1][::0] }}", "slice step cannot be zero" },
    { "{{ 'a'.items() }}", "has no method items()" },
    { "{{ range(2000000) }}", "range() longer than 1000000 items" },
    { "{{ messages | selectattr('role', 'frob') | list }}", "selectattr: unknown test 'frob'" },
    { "{{ 'abc' | map(attribute='x') }}", "map expects a list" },
    { "{{ 'x' * 100000000 }}", "repetition too large" },
    { "{% for a in range(100000) %}{{ 'x' * 10000 }}{% endfor %}", "passes 32 MiB" },
    { "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
      "string longer than 32 MiB" },
    { "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}"
      "{% endfor %}",
      "the template" },
    { NULL, NULL },
  };
  for (const Bad *b = bad; b->source; b++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *out = render_source (b->source, &error);
    CU_ASSERT_PTR_NULL (out);
    CU_ASSERT_PTR_NOT_NULL_FATAL (error);
    CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_FAILED));
    if (!strstr (error->message, b->error))
      fprintf (stderr, "\n%s: got \"%s\", want \"%s\"\n", b->source, error->message, b->error);
    CU_ASSERT_PTR_NOT_NULL (strstr (error->message, b->error));
  }
}

static JsonArray *
parse_messages (const char *json)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert (json_parser_load_from_data (p, json, -1, NULL));
  return json_array_ref (json_node_get_array (json_parser_get_root (p)));
}

static const char conversation[] = "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                                   " {\"role\": \"user\", \"content\": \"Hi\"},"
                                   " {\"role\": \"assistant\", \"content\": \"Hello\"},"
                                   " {\"role\": \"user\", \"content\": \"Bye\"}]";

/* tokenizer_config.json variants: named templates, AddedToken objects,
 * and the errors of configs without (the right) template. */
static void
test_load_config (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "tokenizer_config.json", NULL);
  g_autoptr (JsonArray) messages = parse_messages (conversation);
  g_autoptr (GError) error = NULL;
  cria_test_write_file (path, "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
                              " \"chat_template\": [{\"name\": \"default\", \"template\": \"{{ bos_token }}D{{ messages"
                              " | length }}{{ eos_token }}\"}, {\"name\": \"tool_use\", \"template\": \"T{{ tools | "
                              "length }}\"}]}");
  g_autoptr (CriaChatTemplate) d = cria_chat_template_load (path, NULL, &error);
  g_assert_no_error (error);
  g_autofree char *out = cria_chat_template_render (d, messages, TRUE, NULL, &error);
  CU_ASSERT_STRING_EQUAL (out, "<s>D4</s>");
  CU_ASSERT_PTR_NOT_NULL (strstr (cria_chat_template_get_origin (d), "tokenizer_config.json:chat_template"));
  g_autoptr (CriaChatTemplate) tu = cria_chat_template_load (path, "tool_use", &error);
  g_assert_no_error (error);
  g_autoptr (JsonObject) extra = json_object_new ();
  g_autoptr (JsonArray) tools = parse_messages ("[{\"type\": \"function\"}]");
  json_object_set_array_member (extra, "tools", json_array_ref (tools));
  g_autofree char *out2 = cria_chat_template_render (tu, messages, TRUE, extra, &error);
  CU_ASSERT_STRING_EQUAL (out2, "T1");
  /* a variable given by the caller overrides the config's */
  json_object_set_string_member (extra, "bos_token", "<B>");
  g_autofree char *out3 = cria_chat_template_render (d, messages, TRUE, extra, &error);
  CU_ASSERT_STRING_EQUAL (out3, "<B>D4</s>");

  g_autoptr (CriaChatTemplate) none = cria_chat_template_load (path, "rag", &error);
  CU_ASSERT_PTR_NULL (none);
  CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND));
  CU_ASSERT (error && strstr (error->message, "no template named 'rag' (it has: default, tool_use)"));
  g_clear_error (&error);

  static const char *const bad[][2] = {
    { "{\"eos_token\": \"x\"}", "no chat_template" },
    { "{\"chat_template\": 3}", "field 'chat_template': expected a string or a list" },
    { "{\"chat_template\": [{\"name\": \"default\"}]}", "item 0: expected {\"name\": string, \"template\": string}" },
    { "{\"chat_template\": \"{% if %}\"}", "tokenizer_config.json:chat_template:1:7: expected an expression" },
    { "{\"chat_template\": ", "tokenizer_config.json" },
    { "[1]", "expected a JSON object" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    cria_test_write_file (path, bad[i][0]);
    g_autoptr (CriaChatTemplate) t = cria_chat_template_load (path, NULL, &error);
    CU_ASSERT_PTR_NULL (t);
    if (!error || !strstr (error->message, bad[i][1]))
      fprintf (stderr, "\n%s: got \"%s\", want \"%s\"\n", bad[i][0], error ? error->message : "", bad[i][1]);
    CU_ASSERT (error && strstr (error->message, bad[i][1]));
    g_clear_error (&error);
  }
  g_autofree char *missing = g_build_filename (dir, "nope.json", NULL);
  CU_ASSERT_PTR_NULL (cria_chat_template_load (missing, NULL, &error));
  CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND));
  cria_test_rmtree (dir);
}

static void
test_record_messages (void)
{
  g_autoptr (CriaRecord) r = cria_record_new ();
  cria_record_set_field (r, "system", "S");
  cria_record_set_field (r, "instruction", "Do it");
  cria_record_set_field (r, "input", "now");
  cria_record_set_field (r, "output", "Done");
  g_autoptr (JsonArray) m = cria_chat_messages_from_record (r);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}", "r.jinja", &error);
  g_autofree char *out = cria_chat_template_render (t, m, FALSE, NULL, &error);
  CU_ASSERT_STRING_EQUAL (out, "<system>S<user>Do it\n\nnow<assistant>Done");
  g_autofree char *prompt = NULL, *response = NULL;
  CU_ASSERT (cria_chat_template_render_split (t, m, NULL, &prompt, &response, &error));
  CU_ASSERT_STRING_EQUAL (prompt, "<system>S<user>Do it\n\nnow");
  CU_ASSERT_STRING_EQUAL (response, "<assistant>Done");
  /* a template that changes earlier text once an answer follows cannot split */
  g_autoptr (CriaChatTemplate) moving = cria_chat_template_new_from_string (
      "{{ messages | length }}{% for m in messages %}{{ m.content }}{% endfor %}", "m.jinja", &error);
  CU_ASSERT (!cria_chat_template_render_split (moving, m, NULL, &prompt, &response, &error));
  CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED));
}

/* A model directory: its template, else its family's prompt format, else an
 * error that asks for one; and the caller's choice over all of these. */
static void
test_model_dirs (void)
{
  g_autoptr (JsonArray) messages = parse_messages (conversation);
  g_autoptr (GError) error = NULL;
  g_autofree char *qwen = cria_test_shared ("tokenizers/qwen2.5");
  g_autofree char *used = NULL;
  g_autofree char *q = cria_chat_prompt_for_model (qwen, NULL, messages, TRUE, NULL, &used, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (q, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                             "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                             "<|im_start|>assistant\n");
  CU_ASSERT (strstr (used, "the chat template of") && strstr (used, "tokenizer_config.json"));

  /* LLaMA-2 ships no template: the llama2 prompt format, system in the first turn */
  g_autofree char *llama2 = cria_test_shared ("tokenizers/llama2");
  g_clear_pointer (&used, g_free);
  g_autofree char *l = cria_chat_prompt_for_model (llama2, NULL, messages, TRUE, NULL, &used, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (l, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]");
  CU_ASSERT_PTR_NOT_NULL (strstr (used, "prompt format llama2"));

  /* GPT-2 has neither */
  g_autofree char *gpt2 = cria_test_shared ("tokenizers/gpt2-hf");
  g_autofree char *g = cria_chat_prompt_for_model (gpt2, NULL, messages, TRUE, NULL, NULL, &error);
  CU_ASSERT_PTR_NULL (g);
  CU_ASSERT (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND));
  CU_ASSERT (error && strstr (error->message, "name one (alpaca, chatml, llama2, vicuna)"));
  g_clear_error (&error);
  g_clear_pointer (&used, g_free);
  g_autofree char *gc = cria_chat_prompt_for_model (gpt2, "chatml", messages, TRUE, NULL, &used, &error);
  g_assert_no_error (error);
  CU_ASSERT (gc && g_str_has_suffix (gc, "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"));
  CU_ASSERT_STRING_EQUAL (used, "the prompt format chatml");

  /* a .jinja file given by the caller, with the directory's special tokens */
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *jinja = g_build_filename (dir, "mine.jinja", NULL);
  cria_test_write_file (jinja, "{{ eos_token }}{{ messages[-1].content }}\n");
  g_autofree char *j = cria_chat_prompt_for_model (gpt2, jinja, messages, TRUE, NULL, NULL, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (j, "<|endoftext|>Bye");

  /* chat_template.jinja beside a config without chat_template */
  g_autofree char *cfg = g_build_filename (dir, "tokenizer_config.json", NULL);
  g_autofree char *beside = g_build_filename (dir, "chat_template.jinja", NULL);
  cria_test_write_file (cfg, "{\"bos_token\": \"<B>\"}");
  cria_test_write_file (beside, "{{ bos_token }}{% for m in messages %}{{ m.role[0] }}{% endfor %}");
  g_clear_pointer (&used, g_free);
  g_autofree char *b = cria_chat_prompt_for_model (dir, NULL, messages, FALSE, NULL, &used, &error);
  g_assert_no_error (error);
  CU_ASSERT_STRING_EQUAL (b, "<B>suau");
  CU_ASSERT_PTR_NOT_NULL (strstr (used, "chat_template.jinja"));

  /* broken inputs name their file */
  cria_test_write_file (beside, "{% for %}");
  CU_ASSERT_PTR_NULL (cria_chat_prompt_for_model (dir, NULL, messages, FALSE, NULL, NULL, &error));
  CU_ASSERT (error && strstr (error->message, "chat_template.jinja:1:8"));
  g_clear_error (&error);
  cria_test_write_file (cfg, "{\"bos_token\": ");
  CU_ASSERT_PTR_NULL (cria_chat_prompt_for_model (dir, NULL, messages, FALSE, NULL, NULL, &error));
  CU_ASSERT (error && strstr (error->message, "tokenizer_config.json"));
  g_clear_error (&error);
  g_autoptr (JsonArray) bad = parse_messages ("[{\"role\": \"user\", \"content\": 3}]");
  CU_ASSERT_PTR_NULL (cria_chat_prompt_for_model (gpt2, "chatml", bad, FALSE, NULL, NULL, &error));
  CU_ASSERT (error && strstr (error->message, "message 0"));
  g_clear_error (&error);
  CU_ASSERT_PTR_NULL (cria_chat_prompt_for_model (gpt2, "nosuchformat", messages, FALSE, NULL, NULL, &error));
  CU_ASSERT (error && strstr (error->message, "nosuchformat"));
  cria_test_rmtree (dir);
}

static const CriaTestCase golden_cases[] = {
  { "every shipped template matches @huggingface/transformers", test_goldens },
  { NULL, NULL },
};

static const CriaTestCase language_cases[] = {
  { "expressions, filters, tests, loops and whitespace match jinja2", test_semantics },
  { "a generation block renders its body", test_generation_block },
  { "malformed templates fail to compile with file:line:column", test_malformed },
  { "deep nesting is refused", test_deep_nesting },
  { "runtime errors and limits", test_runtime_errors },
  { NULL, NULL },
};

static const CriaTestCase loading_cases[] = {
  { "tokenizer_config.json: named templates, special tokens, errors", test_load_config },
  { "a record becomes chat messages", test_record_messages },
  { "model directories: template, prompt format fallback, errors", test_model_dirs },
  { NULL, NULL },
};

static void
register_suites (void)
{
  cria_test_add_suite ("chat templates against the reference", golden_cases);
  cria_test_add_suite ("the template language", language_cases);
  cria_test_add_suite ("loading templates", loading_cases);
}

CRIA_TEST_MAIN (register_suites)
