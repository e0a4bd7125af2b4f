/* test-hostile: hostile inputs to every reader of outside input end in a
 * one-line error that names the file (or the field) and the limit, within
 * bounded memory: each `cria` runs under `ulimit -v` (4 GiB; the cases cost
 * 1.6 to 8.8 GB or crashed before the limits), except in sanitizer builds,
 * whose shadow memory needs more address space than that. */
#include <string.h>
#include <unistd.h>

#include "cria-test.h"

static char *tmp;

#if defined(__SANITIZE_ADDRESS__)
#define LIMIT_MEMORY 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LIMIT_MEMORY 0
#endif
#endif
#ifndef LIMIT_MEMORY
#define LIMIT_MEMORY 1
#endif

/* Runs cria with `args` under the memory limit; its status, and its stderr. */
static int
run_bounded (const char *const *args, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, "/bin/sh");
  g_ptr_array_add (argv, "-c");
  g_ptr_array_add (argv,
                   LIMIT_MEMORY ? "ulimit -v 4194304 && ulimit -t 60 && exec \"$0\" \"$@\"" : "exec \"$0\" \"$@\"");
  g_ptr_array_add (argv, (gpointer) cria_test_env ("CRIA_BIN"));
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  int status = 0;
  g_autofree char *out = NULL;
  g_assert (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, err, &status, &error));
  return g_spawn_check_wait_status (status, NULL) ? 0
         : WIFEXITED (status)                     ? WEXITSTATUS (status)
                                                  : 128 + WTERMSIG (status);
}

/* Exit 1 with one line of stderr holding every one of the NULL-terminated strings. */
static void
assert_error (const char *const *args, ...)
{
  g_autofree char *err = NULL;
  int rc = run_bounded (args, &err);
  CU_ASSERT_EQUAL (rc, 1);
  CU_ASSERT (err && strchr (err, '\n') == err + strlen (err) - 1);
  va_list ap;
  va_start (ap, args);
  for (const char *want; (want = va_arg (ap, const char *));) {
    gboolean found = err && strstr (err, want);
    CU_ASSERT (found);
    if (!found)
      printf ("\nwanted '%s' in: %s\n", want, err ? err : "(null)");
  }
  va_end (ap);
}

static char *
nested (const char *before, guint depth, const char *after)
{
  GString *s = g_string_new (before);
  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, '[');
  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, ']');
  g_string_append (s, after);
  return g_string_free (s, FALSE);
}

static void
test_deep_pipeline (void)
{
  g_autofree char *path = g_build_filename (tmp, "deep.json", NULL);
  g_autofree char *text = nested ("{\"stages\": ", 100000, "}");
  cria_test_write_file (path, text);
  const char *args[] = { "data", "-f", path, NULL };
  assert_error (args, path, "nested deeper than 512 levels", NULL);
}

static void
test_deep_safetensors (void)
{
  g_autofree char *dir = g_build_filename (tmp, "deep-model", NULL);
  g_autofree char *model = cria_test_tiny_model (tmp, "tiny-qwen2");
  g_assert (g_mkdir_with_parents (dir, 0755) == 0);
  g_autofree char *src = g_build_filename (model, "config.json", NULL);
  g_autofree char *config = cria_test_read_file (src);
  g_autofree char *dst = g_build_filename (dir, "config.json", NULL);
  cria_test_write_file (dst, config);
  g_autofree char *header = nested ("{\"a\": ", 100000, "}");
  gsize n = strlen (header);
  g_autofree guint8 *bytes = g_malloc (n + 8);
  for (int i = 0; i < 8; i++)
    bytes[i] = (guint8) ((guint64) n >> (8 * i));
  memcpy (bytes + 8, header, n);
  g_autofree char *st = g_build_filename (dir, "model.safetensors", NULL);
  g_assert (g_file_set_contents (st, (const char *) bytes, (gssize) (n + 8), NULL));
  const char *args[] = { "model", "info", dir, NULL };
  assert_error (args, "model.safetensors", "nested deeper than 512 levels", NULL);
}

static void
test_device_and_long_line (void)
{
  const char *args[] = { "data", "file location=/dev/zero ! jsonl location=/dev/null", NULL };
  assert_error (args, "/dev/zero", "character device", NULL);
  /* Through a pipe the same bytes are one endless line: refused at the line limit. */
  g_autofree char *err = NULL;
  const char *cmd[] = {
    "/bin/sh", "-c",
    LIMIT_MEMORY
        ? "ulimit -v 4194304; head -c 100000000 /dev/zero | \"$0\" data 'file location=- format=jsonl ! jsonl "
          "location=/dev/null'"
        : "head -c 100000000 /dev/zero | \"$0\" data 'file location=- format=jsonl ! jsonl location=/dev/null'",
    cria_test_env ("CRIA_BIN"), NULL
  };
  int status = 0;
  g_assert (g_spawn_sync (NULL, (char **) cmd, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status, NULL));
  CU_ASSERT (WIFEXITED (status) && WEXITSTATUS (status) == 1);
  CU_ASSERT (err && strstr (err, "the limit of a line") && strstr (err, "MiB"));
  /* A chat template that is a device is refused, not read forever. */
  g_autofree char *jinja = g_build_filename (tmp, "zero.jinja", NULL);
  CU_ASSERT_EQUAL_FATAL (symlink ("/dev/zero", jinja), 0);
  g_autofree char *model = cria_test_tiny_model (tmp, "tiny-llama");
  const char *gen[] = { "generate", "-m", model, "-p", jinja, "-n", "1", "hi", NULL };
  assert_error (gen, "zero.jinja", "character device", NULL);
}

static char *
model_with (const char *name, const char *key, const char *value)
{
  g_autofree char *sub = g_build_filename (tmp, name, NULL);
  g_assert (g_mkdir_with_parents (sub, 0755) == 0);
  char *model = cria_test_tiny_model (sub, "tiny-qwen2");
  g_autofree char *path = g_build_filename (model, "config.json", NULL);
  g_autoptr (JsonNode) root = cria_json_load_file (path, NULL);
  g_assert (root);
  JsonObject *o = json_node_get_object (root);
  json_object_set_member (o, key, cria_json_parse (value, -1, "value", 1, NULL));
  g_autofree char *text = json_to_string (root, FALSE);
  cria_test_write_file (path, text);
  return model;
}

static void
test_config_limits (void)
{
  g_autofree char *a = model_with ("layers", "num_hidden_layers", "1000000000");
  const char *info[] = { "model", "info", a, NULL };
  assert_error (info, "config.json", "layer count: 1000000000 is over cria's limit of 1024", NULL);
  g_autofree char *b = model_with ("layers2", "num_hidden_layers", "1000");
  const char *info2[] = { "model", "info", b, NULL };
  assert_error (info2, "the weights do not match config.json", "missing model.layers.2.", NULL);
  g_autofree char *c = model_with ("rope", "rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 0}");
  const char *info3[] = { "model", "info", c, NULL };
  assert_error (info3, "config.json: rope_scaling.factor: not a positive number", NULL);
  g_autofree char *d = model_with ("wide", "vocab_size", "999999999");
  const char *info4[] = { "model", "info", d, NULL };
  assert_error (info4, "vocab_size: 999999999 is over cria's limit", NULL);
}

static void
test_tokenizer_ids (void)
{
  g_autofree char *model = cria_test_tiny_model (tmp, "tiny-qwen2");
  g_autofree char *path = g_build_filename (model, "tokenizer.json", NULL);
  g_autoptr (JsonNode) root = cria_json_load_file (path, NULL);
  g_assert (root);
  JsonObject *vocab = json_object_get_object_member (
      json_object_get_object_member (json_node_get_object (root), "model"), "vocab");
  json_object_set_int_member (vocab, "stray", 999999999);
  g_autofree char *text = json_to_string (root, FALSE);
  g_autofree char *bad = g_build_filename (tmp, "tok-bad", NULL);
  g_assert (g_mkdir_with_parents (bad, 0755) == 0);
  g_autofree char *bad_path = g_build_filename (bad, "tokenizer.json", NULL);
  cria_test_write_file (bad_path, text);
  const char *args[] = { "tokenize", "--tokenizer", bad, "hello", NULL };
  assert_error (args, "tokenizer.json", "stray", "id 999999999 is not below", "the number of tokens", NULL);
}

static void
test_wrong_kinds (void)
{
  g_autofree char *path = g_build_filename (tmp, "m.jsonl", NULL);
  cria_test_write_file (path,
                        "{\"messages\": [{\"role\": \"user\", \"content\": {\"a\": 1}}, {\"role\": \"assistant\", "
                        "\"content\": \"x\"}]}\n");
  g_autofree char *pipe = g_strdup_printf ("file location=%s ! jsonl location=/dev/null", path);
  const char *args[] = { "data", pipe, NULL };
  assert_error (args, "m.jsonl:1", "messages[0].content", "expected a string, not an object", NULL);
}

static void
register_suites (void)
{
  tmp = cria_test_tmpdir ();
  static const CriaTestCase cases[] = {
    { "a deeply nested pipeline file", test_deep_pipeline },
    { "a deeply nested safetensors header", test_deep_safetensors },
    { "a device and an endless line", test_device_and_long_line },
    { "config.json sizes over the limits", test_config_limits },
    { "a stray vocabulary id", test_tokenizer_ids },
    { "members of the wrong kind", test_wrong_kinds },
    { NULL },
  };
  cria_test_add_suite ("hostile", cases);
}

CRIA_TEST_MAIN (register_suites)
