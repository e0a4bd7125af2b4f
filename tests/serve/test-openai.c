/* test-openai: `cria serve` driven by the official `openai` npm client (v6)
 * through openai-client.mjs, on a tiny generated model (tests/models/
 * tiny-qwen2 with a byte tokenizer and the tiny chat template), with an API
 * key from a file and a CORS origin. Skips (77) without node or without the
 * package (CRIA_NODE_MODULES; .ci/npm-deps openai installs it). */
#include "config.h"

#include <string.h>

#include <cria/cria.h>

#include "cria-test.h"

static void
test_client (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *dir = cria_test_tiny_model (tmp, "tiny-qwen2");
  /* Room for the golden conversation (one token per byte) and the answers. */
  g_autofree char *config_path = g_build_filename (dir, "config.json", NULL);
  g_autofree char *config = cria_test_read_file (config_path);
  g_autoptr (GString) patched = g_string_new (config);
  g_assert (g_string_replace (patched, "\"max_position_embeddings\": 128", "\"max_position_embeddings\": 1024", 1));
  cria_test_write_file (config_path, patched->str);
  g_autofree char *src = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/tiny-chat-template.jinja", NULL);
  g_autofree char *tmpl = cria_test_read_file (src);
  g_autoptr (JsonObject) o = json_object_new ();
  json_object_set_string_member (o, "bos_token", "<s>");
  json_object_set_string_member (o, "eos_token", "</s>");
  json_object_set_string_member (o, "chat_template", tmpl);
  g_autoptr (JsonNode) root = json_node_init_object (json_node_alloc (), o);
  g_autofree char *text = json_to_string (root, FALSE);
  g_autofree char *tc = g_build_filename (dir, "tokenizer_config.json", NULL);
  cria_test_write_file (tc, text);
  g_autofree char *key_file = g_build_filename (tmp, "key", NULL);
  cria_test_write_file (key_file, "cria-test-key-0123456789\n");
  /* The golden prompt's length in bytes: tokens of the tiny tokenizer. */
  g_autofree char *gpath = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/chat-golden.json", NULL);
  g_autoptr (JsonNode) golden = cria_json_load_file (gpath, NULL);
  g_assert (golden);
  JsonObject *tiny = json_object_get_object_member (json_node_get_object (golden), "tiny");
  const char *prompt = json_object_get_string_member (json_object_get_object_member (tiny, "chinese"), "generation");
  g_autofree char *prompt_bytes = g_strdup_printf ("%zu", strlen (prompt));

  const char *const argv[] = { cria_test_env ("CRIA_BIN"),
                               "serve",
                               "--model",
                               dir,
                               "--port",
                               "0",
                               "--threads",
                               "1",
                               "--api-key-file",
                               key_file,
                               "--cors-origin",
                               "http://allowed.test",
                               "--served-model-name",
                               "tiny",
                               NULL };
  g_autoptr (GSubprocess) server = NULL;
  g_autofree char *url = cria_test_start_listener (NULL, argv, &server);
  g_autoptr (GError) error = NULL;

  g_autofree char *script = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/serve/openai-client.mjs", NULL);
  const char *const node[] = { "node", script, url, "cria-test-key-0123456789", "tiny", prompt_bytes, NULL };
  g_autoptr (GSubprocess) client = g_subprocess_newv (node, G_SUBPROCESS_FLAGS_NONE, &error);
  g_assert_no_error (error);
  g_subprocess_wait (client, NULL, &error);
  g_assert_no_error (error);
  CU_ASSERT_TRUE (g_subprocess_get_if_exited (client) && g_subprocess_get_exit_status (client) == 0);

  CU_ASSERT_EQUAL (cria_test_stop_listener (server), 0);
  cria_test_rmtree (tmp);
}

static const CriaTestCase cases[] = {
  { "the openai npm client against cria serve", test_client },
  { NULL },
};

static void
register_suites (void)
{
  const char *modules = g_getenv ("CRIA_NODE_MODULES");
  g_autofree char *node = g_find_program_in_path ("node");
  g_autofree char *pkg = modules ? g_build_filename (modules, "openai", "package.json", NULL) : NULL;
  if (!node || !pkg || !g_file_test (pkg, G_FILE_TEST_EXISTS)) {
    printf ("SKIP: needs node and the openai package in $CRIA_NODE_MODULES (.ci/npm-deps openai)\n");
    exit (CRIA_TEST_SKIP);
  }
  cria_test_add_suite ("openai client", cases);
}

CRIA_TEST_MAIN (register_suites)
