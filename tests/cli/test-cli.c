/* test-cli: the cria command's verbs, exit codes and output forms. */
#include <string.h>

#include "cria-test.h"

static int
cria (const char *const *args, char **out, char **err)
{
  return cria_test_run_cria (args, NULL, out, err);
}

static void
test_version_and_usage (void)
{
  g_autofree char *out = NULL, *err = NULL;
  CU_ASSERT_EQUAL (cria ((const char *[]){ "--version", NULL }, &out, NULL), 0);
  CU_ASSERT_TRUE (g_str_has_prefix (out, "cria " CRIA_VERSION));
  CU_ASSERT_EQUAL (cria ((const char *[]){ NULL }, NULL, NULL), 2);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "frobnicate", NULL }, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "unknown verb 'frobnicate'"));
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--no-such-option", NULL }, NULL, NULL), 2);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "data", NULL }, NULL, NULL), 2);
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "--help", NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "inspect"));
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--help", NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "--plugin-path"));
}

static void
test_inspect_lists (void)
{
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", NULL }, &out, NULL), 0);
  /* Sources come first; file is among them wherever other plugins sort. */
  const char *sources = strstr (out, "source:\n"), *file = strstr (out, "\n  file "),
             *transforms = strstr (out, "transform:\n");
  CU_ASSERT_TRUE (sources && file && transforms && sources < file && file < transforms);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "transform:\n"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "  jsonl "));
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "head", NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "transform head: "));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "type: int, default: 10"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "License:"));
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "nope", NULL }, NULL, NULL), 1);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--kind", "widget", NULL }, NULL, NULL), 2);
}

static void
test_inspect_json (void)
{
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--json", "file", NULL }, &out, NULL), 0);
  g_autoptr (JsonNode) node = json_from_string (out, NULL);
  CU_ASSERT_TRUE_FATAL (node && JSON_NODE_HOLDS_ARRAY (node));
  JsonObject *p = json_array_get_object_element (json_node_get_array (node), 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (p, "kind"), "source");
  JsonArray *props = json_object_get_array_member (p, "properties");
  JsonObject *loc = json_array_get_object_element (props, 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (loc, "name"), "location");
  CU_ASSERT_TRUE (json_object_get_boolean_member (loc, "required"));
  JsonObject *fmt = json_array_get_object_element (props, 1);
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (fmt, "choices")), 4);
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--json", NULL }, &out, NULL), 0);
  g_autoptr (JsonNode) all = json_from_string (out, NULL);
  CU_ASSERT_TRUE_FATAL (all && JSON_NODE_HOLDS_OBJECT (all));
  CU_ASSERT_TRUE (json_array_get_length (json_object_get_array_member (json_node_get_object (all), "providers")) >= 3);
}

static void
test_inspect_rejected (void)
{
  g_autofree char *out = NULL;
  const char *bad = cria_test_env ("CRIA_TEST_BAD_PLUGINS");
  /* --plugin-path works before the verb too. */
  CU_ASSERT_EQUAL (cria ((const char *[]){ "--plugin-path", bad, "inspect", "-b", NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "10 rejected plugin files"));
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "-b", "--plugin-path", bad, NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-abi-major.so: built for plugin ABI"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-init.so: init failed"));
  /* Crashes happen in the plugin scanner and are reported with the signal. */
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-crash-ctor.so: crashed while it was opened (in a constructor)"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-crash-init.so: crashed in its init in the plugin scanner: signal 11"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-abort.so: crashed in its init in the plugin scanner: signal 6"));
  /* ...and a plugin that never returns is stopped, not waited for. */
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "bad-hang.so: hung in its init in the plugin scanner"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "10 rejected plugin files"));
  g_clear_pointer (&out, g_free);
  /* The good plugins still load beside the broken ones. */
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "--plugin-path", bad, NULL }, &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "  file "));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "  extra "));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "10 rejected plugin files"));
  g_clear_pointer (&out, g_free);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "inspect", "-b", "--json", "--plugin-path", bad, NULL }, &out, NULL), 0);
  g_autoptr (JsonNode) node = json_from_string (out, NULL);
  CU_ASSERT_TRUE_FATAL (node && JSON_NODE_HOLDS_ARRAY (node));
  CU_ASSERT_EQUAL (json_array_get_length (json_node_get_array (node)), 10);
}

static void
test_data_beside_bad_plugins (void)
{
  /* Every command goes on without the plugins that crash; a third-party
   * provider that outranks a built-in one is named in a warning. */
  const char *bad = cria_test_env ("CRIA_TEST_BAD_PLUGINS");
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *in = g_build_filename (dir, "in.jsonl", NULL);
  g_autofree char *out_path = g_build_filename (dir, "out.jsonl", NULL);
  cria_test_write_file (in, "{\"instruction\":\"a\",\"output\":\"b\"}\n");
  g_autofree char *loc_in = g_strdup_printf ("location=%s", in);
  g_autofree char *loc_out = g_strdup_printf ("location=%s", out_path);
  g_autofree char *out = NULL, *err = NULL;
  int rc = cria ((const char *[]){ "data", "--plugin-path", bad, "file", loc_in, "!", "jsonl", loc_out, NULL }, &out,
                 &err);
  CU_ASSERT_EQUAL (rc, 0);
  g_autofree char *text = cria_test_read_file (out_path);
  CU_ASSERT_STRING_EQUAL (text, "{\"instruction\":\"a\",\"output\":\"b\"}\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  rc = cria ((const char *[]){ "inspect", "--plugin-path", bad, "head", NULL }, &out, &err);
  CU_ASSERT_EQUAL (rc, 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "outranks the built-in one"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "Rank:        257"));
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "transform 'head' is provided by"));
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "cria-basic.so (rank 256)"));
  cria_test_rmtree (dir);
}

static void
test_data_verb (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *in = g_build_filename (dir, "in.jsonl", NULL);
  g_autofree char *out_path = g_build_filename (dir, "out.jsonl", NULL);
  g_autofree char *pipe_path = g_build_filename (dir, "p.json", NULL);
  cria_test_write_file (in, "{\"instruction\":\"a\"}\n{\"instruction\":\"b\"}\nnot json\n");
  g_autofree char *loc_in = g_strdup_printf ("location=%s", in);
  g_autofree char *loc_out = g_strdup_printf ("location=%s", out_path);
  g_autofree char *out = NULL, *err = NULL;
  /* Arguments as separate words, gst-launch style. */
  int rc = cria ((const char *[]){ "data", "file", loc_in, "!", "head", "n=5", "!", "jsonl", loc_out, NULL }, &out,
                 &err);
  CU_ASSERT_EQUAL (rc, 1);
  g_autofree char *want = g_strdup_printf ("cria data: %s:3:", in);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, want));
  CU_ASSERT_FALSE (g_file_test (out_path, G_FILE_TEST_EXISTS));
  g_clear_pointer (&err, g_free);
  rc = cria ((const char *[]){ "data", "--on-error=skip", "--json", "file", loc_in, "!", "jsonl", loc_out, NULL }, &out,
             &err);
  CU_ASSERT_EQUAL (rc, 0);
  g_autoptr (JsonNode) summary = json_from_string (out, NULL);
  CU_ASSERT_TRUE_FATAL (summary && JSON_NODE_HOLDS_OBJECT (summary));
  g_autofree char *text = cria_test_read_file (out_path);
  CU_ASSERT_STRING_EQUAL (text, "{\"instruction\":\"a\"}\n{\"instruction\":\"b\"}\n");
  /* -f with the JSON form. */
  g_autofree char *json = g_strdup_printf (
      "{\"on-error\": \"skip\", \"stages\": [{\"provider\": \"file\", \"properties\": {\"location\": \"%s\"}},"
      "{\"provider\": \"jsonl\", \"properties\": {\"location\": \"-\"}}]}",
      in);
  cria_test_write_file (pipe_path, json);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  rc = cria ((const char *[]){ "data", "-q", "-f", pipe_path, NULL }, &out, &err);
  CU_ASSERT_EQUAL (rc, 0);
  CU_ASSERT_STRING_EQUAL (out, "{\"instruction\":\"a\"}\n{\"instruction\":\"b\"}\n");
  g_clear_pointer (&out, g_free);
  rc = cria ((const char *[]){ "data", "--print", "-f", pipe_path, NULL }, &out, NULL);
  CU_ASSERT_EQUAL (rc, 0);
  g_autofree char *canon = g_strdup_printf ("file location=%s ! jsonl location=-\n", in);
  CU_ASSERT_STRING_EQUAL (out, canon);
  CU_ASSERT_EQUAL (cria ((const char *[]){ "data", "--on-error=maybe", "-f", pipe_path, NULL }, NULL, NULL), 2);
  cria_test_rmtree (dir);
}

/* Every option a verb's man page lists is in its --help, and every option
 * there that takes a value says its default (or that it is required). */
static void
test_help_defaults (void)
{
  static const char *const verbs[] = { "chat",   "data",  "eval", "export", "generate", "inspect",   "logits", "merge",
                                       "metric", "model", "pull", "serve",  "tokenize", "tokenizer", "train" };
  g_autoptr (GRegex) man_opt = g_regex_new ("\\\\-\\\\-((?:[a-z0-9]|\\\\-)+)", 0, 0, NULL);
  g_autoptr (GRegex)
      help_opt = g_regex_new ("^\\s+(?:-\\S, )?--([a-z0-9-]+)(=\\S+)?\\s+(.*)$", G_REGEX_MULTILINE, 0, NULL);
  for (guint v = 0; v < G_N_ELEMENTS (verbs); v++) {
    gboolean tokenizer = !strcmp (verbs[v], "tokenizer");
    const char *args[] = { verbs[v], tokenizer ? "train" : "--help", tokenizer ? "--help" : NULL, NULL };
    g_autofree char *out = NULL;
    CU_ASSERT_EQUAL (cria (args, &out, NULL), 0);
    g_autoptr (GHashTable) shown = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr (GMatchInfo) mi = NULL;
    guint n_shown = 0;
    for (g_regex_match (help_opt, out ? out : "", 0, &mi); g_match_info_matches (mi); g_match_info_next (mi, NULL)) {
      g_autofree char *name = g_match_info_fetch (mi, 1), *arg = g_match_info_fetch (mi, 2);
      g_autofree char *text = g_match_info_fetch (mi, 3);
      if (*arg && !strstr (text, "default") && !strstr (text, "required"))
        printf ("\ncria %s --help: --%s says no default: %s", verbs[v], name, text);
      CU_ASSERT (!*arg || strstr (text, "default") || strstr (text, "required"));
      g_hash_table_add (shown, g_steal_pointer (&name));
      n_shown++;
    }
    CU_ASSERT (n_shown > 2);
    g_autofree char *page = g_strdup_printf ("%s/man/cria-%s.1", cria_test_env ("CRIA_SRCDIR"), verbs[v]);
    g_autofree char *man = cria_test_read_file (page);
    CU_ASSERT_FATAL (man != NULL);
    g_auto (GStrv) lines = g_strsplit (man, "\n", -1);
    guint n_listed = 0;
    for (guint i = 1; lines[i]; i++) {
      if (!g_str_has_prefix (lines[i - 1], ".TP"))
        continue;
      g_autoptr (GMatchInfo) m = NULL;
      for (g_regex_match (man_opt, lines[i], 0, &m); g_match_info_matches (m); g_match_info_next (m, NULL)) {
        g_autofree char *raw = g_match_info_fetch (m, 1);
        g_auto (GStrv) parts = g_strsplit (raw, "\\-", -1);
        g_autofree char *plain = g_strjoinv ("-", parts);
        if (!g_hash_table_contains (shown, plain))
          printf ("\ncria %s --help does not show --%s (cria-%s(1) lists it)", verbs[v], plain, verbs[v]);
        CU_ASSERT (g_hash_table_contains (shown, plain));
        n_listed++;
      }
    }
    CU_ASSERT (n_listed > 0);
  }
}

/* An error about what was typed on the command line names the option
 * typed ("option --threads"); "property" is the word of pipelines and
 * provider specs. */
static void
test_errors_say_option (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *data = g_build_filename (tmp, "d.jsonl", NULL);
  cria_test_write_file (data, "{\"instruction\": \"a\", \"output\": \"b\"}\n");
  g_autofree char *loc = g_strdup_printf ("location=%s", data);
  static const char *const cases[][2] = { { "--threads", "100000" },
                                          { "--threads", "-3" },
                                          { "--backend", "cpu threads=abc" } };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const char *args[] = { "generate", "--model", tmp, cases[i][0], cases[i][1], "hello", NULL };
    g_autofree char *err = NULL;
    CU_ASSERT_EQUAL (cria (args, NULL, &err), 1);
    /* the option typed; a property typed in a provider spec stays one */
    CU_ASSERT_PTR_NOT_NULL (strstr (err, i < 2 ? "option --threads" : "property 'threads'"));
    CU_ASSERT (i == 2 || !strstr (err, "property"));
  }
  const char *no_model[] = { "generate", "hello", NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria (no_model, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "option --model is required"));
  const char *preview[] = { "data", "--preview", "1", "--prompt-format", "nosuch", "file", loc, NULL };
  g_clear_pointer (&err, g_free);
  CU_ASSERT_EQUAL (cria (preview, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "option --prompt-format"));
  CU_ASSERT_PTR_NULL (strstr (err, "property"));
  const char *train[] = { "train", "--model", tmp, "--data", data, "--out", tmp, "--lr", "abc", NULL };
  g_clear_pointer (&err, g_free);
  CU_ASSERT_EQUAL (cria (train, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "option --lr"));
  CU_ASSERT_PTR_NULL (strstr (err, "property"));
  cria_test_rmtree (tmp);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "version, usage and exit codes", test_version_and_usage },
    { "inspect lists and shows providers", test_inspect_lists },
    { "inspect --json", test_inspect_json },
    { "inspect -b lists rejected plugins", test_inspect_rejected },
    { "data runs beside crashing plugins", test_data_beside_bad_plugins },
    { "data runs pipelines", test_data_verb },
    { "errors name the option typed", test_errors_say_option },
    { "--help shows every option of the man page, with its default", test_help_defaults },
    { NULL },
  };
  cria_test_add_suite ("cli", cases);
}

CRIA_TEST_MAIN (register_suites)
