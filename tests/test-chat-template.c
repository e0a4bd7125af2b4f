/* test-chat-template: chat templates against an independent reference.
 *
 * tests/chat/golden.json holds every conversation of conversations.json
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

/* Every template, compiled once, renders every conversation as the
 * reference did, with and without the generation prompt. */
static void
test_goldens (void)
{
  g_autofree char *gpath = src_path ("tests/chat/golden.json");
  g_autofree char *cpath = src_path ("tests/chat/conversations.json");
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
        g_autofree char *got = cria_chat_template_render (
            t, json_object_get_array_member (conv, "messages"), gen, extra, &error);
        if (!got || strcmp (got, want)) {
          fprintf (stderr, "\n%s / %s / generation=%d:\n got: %s\nwant: %s\n", goldens[g].name, name, gen,
                   got ? got : error->message, want);
        }
        CU_ASSERT_STRING_EQUAL (got ? got : "", want);
        compared++;
      }
    }
  }
  CU_ASSERT (compared >= 100);
}

static const CriaTestCase golden_cases[] = {
  { "every shipped template matches @huggingface/transformers", test_goldens },
  { NULL },
};

static void
register_suites (void)
{
  cria_test_add_suite ("chat templates against the reference", golden_cases);
}

CRIA_TEST_MAIN (register_suites)
