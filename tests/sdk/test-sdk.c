/* test-sdk: installs cria into a scratch DESTDIR, builds the example plugins
 * of sdk/example (a transform, a converter, an adapter) against that
 * installed SDK with pkg-config, as a third party would, and runs each
 * through the installed cria.
 *
 * The IA3 adapter is checked against PyTorch: tests/sdk/ia3_reference.py
 * wrote a PEFT-format adapter with vectors far from ones
 * (tests/sdk/ia3-tiny-llama/) and the logits of tiny-llama with it
 * (tests/sdk/ia3-tiny-llama-logits.safetensors); cria's logits with that
 * adapter loaded, and with it merged, must match within 1e-4 of the largest.
 * It must also train (the loss falls), save PEFT's keys and shapes, and give
 * the same logits reloaded as it gave in memory. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

/* The staged install and the examples built against it, made by the first test. */
static struct {
  char *dest;        /* DESTDIR */
  char *bin;         /* the installed cria */
  char *libdir;      /* of the installed libcria-1.0.so */
  char *plugins_dir; /* the installed plugins */
  char *examples;    /* the copy of sdk/example, each folder built */
  char *path;        /* CRIA_PLUGIN_PATH: the installed plugins and every example folder */
  char *model;       /* tiny-llama with a byte tokenizer */
} stage;

static char *
find_file (const char *root, const char *name)
{
  g_autoptr (GDir) d = g_dir_open (root, 0, NULL);
  const char *entry;
  while (d && (entry = g_dir_read_name (d))) {
    g_autofree char *child = g_build_filename (root, entry, NULL);
    if (strcmp (entry, name) == 0 && g_file_test (child, G_FILE_TEST_IS_REGULAR))
      return g_steal_pointer (&child);
    if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK)) {
      char *found = find_file (child, name);
      if (found)
        return found;
    }
  }
  return NULL;
}

/* The first directory named `name` under `root`. */
static char *
find_dir (const char *root, const char *name)
{
  g_autoptr (GDir) d = g_dir_open (root, 0, NULL);
  const char *entry;
  while (d && (entry = g_dir_read_name (d))) {
    g_autofree char *child = g_build_filename (root, entry, NULL);
    if (!g_file_test (child, G_FILE_TEST_IS_DIR) || g_file_test (child, G_FILE_TEST_IS_SYMLINK))
      continue;
    if (strcmp (entry, name) == 0)
      return g_steal_pointer (&child);
    char *found = find_dir (child, name);
    if (found)
      return found;
  }
  return NULL;
}

/* Runs `command` under /bin/sh; prints it with its output when it fails
 * (unless `quiet`, for commands expected to fail). */
static int
sh_full (const char *command, char **out, char **err, gboolean quiet)
{
  g_autofree char *o = NULL, *e = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &o, &e, &status, &error);
  g_assert_no_error (error);
  if (!quiet && !g_spawn_check_wait_status (status, NULL))
    printf ("\n$ %s\n%s%s", command, o, e);
  if (out)
    *out = g_steal_pointer (&o);
  if (err)
    *err = g_steal_pointer (&e);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 1;
}

static int
sh (const char *command, char **out)
{
  return sh_full (command, out, NULL, FALSE);
}

/* The installed cria with the examples on its plugin path, then `args`. */
static char *
cria_command (const char *args)
{
  return g_strdup_printf ("LD_LIBRARY_PATH='%s' CRIA_PLUGIN_PATH='%s' '%s' %s", stage.libdir, stage.path, stage.bin,
                          args);
}

static void
test_install_and_build (void)
{
  stage.dest = cria_test_tmpdir ();
  g_autofree char *install = g_strdup_printf ("%s -s -C '%s' install DESTDIR='%s' >/dev/null", cria_test_env ("MAKE"),
                                              cria_test_env ("CRIA_BUILDDIR"), stage.dest);
  CU_ASSERT_EQUAL_FATAL (sh (install, NULL), 0);

  g_autofree char *pc = find_file (stage.dest, "cria-1.0.pc");
  g_autofree char *header = find_file (stage.dest, "cria-plugin.h");
  g_autofree char *adapter_header = find_file (stage.dest, "cria-adapter.h");
  g_autofree char *lib = find_file (stage.dest, "libcria-1.0.so");
  g_autofree char *file_plugin = find_file (stage.dest, "cria-file.so");
  /* bin/cria: share/bash-completion/completions/cria is a file named cria too */
  g_autofree char *bindir = find_dir (stage.dest, "bin");
  stage.bin = bindir ? find_file (bindir, "cria") : NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL (pc);
  CU_ASSERT_PTR_NOT_NULL_FATAL (header);
  CU_ASSERT_PTR_NOT_NULL_FATAL (adapter_header);
  CU_ASSERT_PTR_NOT_NULL_FATAL (stage.bin);
  CU_ASSERT_PTR_NOT_NULL_FATAL (lib);
  CU_ASSERT_PTR_NOT_NULL_FATAL (file_plugin);
  /* Headers under include/cria-1.0/cria, plugins under lib/cria-1.0/plugins, no .la there. */
  CU_ASSERT_PTR_NOT_NULL (strstr (header, "/include/cria-1.0/cria/"));
  CU_ASSERT_PTR_NOT_NULL (strstr (file_plugin, "/cria-1.0/plugins/cria-file.so"));
  stage.plugins_dir = g_path_get_dirname (file_plugin);
  stage.libdir = g_path_get_dirname (lib);
  g_autofree char *la = g_build_filename (stage.plugins_dir, "cria-file.la", NULL);
  CU_ASSERT_FALSE (g_file_test (la, G_FILE_TEST_EXISTS));
  /* The examples are installed as documentation too. */
  g_autofree char *doc_example = find_file (stage.dest, "example-ia3.c");
  CU_ASSERT_PTR_NOT_NULL (doc_example && strstr (doc_example, "/sdk-example/adapter/"));

  /* Build each example in a copy of sdk/example, with only the installed
   * SDK's pkg-config file to go by. */
  stage.examples = g_build_filename (stage.dest, "example", NULL);
  g_autofree char *pcdir = g_path_get_dirname (pc);
  g_autofree char *copy = g_strdup_printf ("cp -R '%s/sdk/example' '%s' && chmod -R u+w '%s' && mkdir '%s/pc' && "
                                           "sed \"s|^prefix=|prefix=%s|\" '%s/cria-1.0.pc' > '%s/pc/cria-1.0.pc'",
                                           cria_test_env ("CRIA_SRCDIR"), stage.examples, stage.examples,
                                           stage.examples, stage.dest, pcdir, stage.examples);
  CU_ASSERT_EQUAL_FATAL (sh (copy, NULL), 0);
  static const char *const folders[] = { "transform", "source", "adapter", "model" };
  g_autoptr (GString) path = g_string_new (stage.plugins_dir);
  for (guint i = 0; i < G_N_ELEMENTS (folders); i++) {
    g_autofree char *build = g_strdup_printf ("cd '%s/%s' && PKG_CONFIG_PATH='%s/pc' %s -s >/dev/null", stage.examples,
                                              folders[i], stage.examples, cria_test_env ("MAKE"));
    CU_ASSERT_EQUAL_FATAL (sh (build, NULL), 0);
    g_string_append_printf (path, ":%s/%s", stage.examples, folders[i]);
  }
  stage.path = g_string_free (g_steal_pointer (&path), FALSE);
  /* The Makefiles install where the installed cria looks. */
  g_autofree char *dir = g_strdup_printf (
      "test \"$(PKG_CONFIG_PATH='%s' pkg-config --variable=pluginsdir cria-1.0)\" = \"$(echo '%s' | sed 's|^%s||')\"",
      pcdir, stage.plugins_dir, stage.dest);
  CU_ASSERT_EQUAL (sh (dir, NULL), 0);
  stage.model = cria_test_tiny_model (stage.dest, "tiny-llama");
}

#define NEED_STAGE()                                                                                                   \
  do {                                                                                                                 \
    if (!stage.path)                                                                                                   \
      CU_FAIL_FATAL ("the install or the examples' build failed");                                                     \
  } while (0)

static void
test_transform (void)
{
  NEED_STAGE ();
  g_autofree char *in = g_build_filename (stage.dest, "in.jsonl", NULL);
  cria_test_write_file (in, "{\"instruction\":\"What is 2+2?\",\"output\":\"4\"}\n");
  g_autofree char *out = NULL;
  g_autofree char *args = g_strdup_printf (
      "data -q 'file location=%s ! example-prefix text=\"Q: \" ! jsonl location=-'", in);
  g_autofree char *run = cria_command (args);
  CU_ASSERT_EQUAL (sh (run, &out), 0);
  CU_ASSERT_STRING_EQUAL (out, "{\"instruction\":\"Q: What is 2+2?\",\"output\":\"4\"}\n");
  g_clear_pointer (&out, g_free);
  g_autofree char *inspect = cria_command ("inspect example-prefix");
  CU_ASSERT_EQUAL (sh (inspect, &out), 0);
  CU_ASSERT_PTR_NOT_NULL (out && strstr (out, "License:     MIT"));
}

static void
test_source (void)
{
  NEED_STAGE ();
  /* The answer of q2 is first one with \u, which is no escape: the row
   * fails, and with --on-error=stop the run, leaving no output. */
  static const char faq[] = "id\tquestion\tanswer\tcontext\ttopic\n"
                            "q1\tWhat is the capital of France?\tParis.\t\tgeography\n"
                            "\n"
                            "q2\tTranslate:\t%s\tHello.\\tBye.\tlanguage\n"
                            "q3\tHow many legs has a spider?\tEight.\tArachnids.\tbiology\n"
                            "q4\tnot reached\tbecause of head\t\tnone\n";
  g_autofree char *tsv = g_build_filename (stage.dest, "faq.tsv", NULL);
  g_autofree char *out_path = g_build_filename (stage.dest, "out.jsonl", NULL);
  g_autofree char *args = g_strdup_printf ("data -q 'example-tsv-qa location=%s ! head n=3 ! jsonl location=%s'", tsv,
                                           out_path);
  g_autofree char *run = cria_command (args);
  g_autofree char *bad_faq = g_strdup_printf (faq, "Hola.\\nAdi\\u00f3s?");
  cria_test_write_file (tsv, bad_faq);
  g_autofree char *err = NULL;
  CU_ASSERT_NOT_EQUAL (sh_full (run, NULL, &err, TRUE), 0);
  g_autofree char *want = g_strdup_printf ("%s:4: field 'answer': unknown escape \\u", tsv);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, want));
  CU_ASSERT_FALSE (g_file_test (out_path, G_FILE_TEST_EXISTS));
  g_autofree char *good_faq = g_strdup_printf (faq, "Hola.\\nAdios. \\\\o/");
  cria_test_write_file (tsv, good_faq);
  CU_ASSERT_EQUAL_FATAL (sh (run, NULL), 0);
  g_autofree char *got = cria_test_read_file (out_path);
  CU_ASSERT_STRING_EQUAL (
      got, "{\"instruction\":\"What is the capital of France?\",\"output\":\"Paris.\",\"id\":\"q1\",\"topic\":"
           "\"geography\",\"source\":\"example-tsv-qa\"}\n"
           "{\"instruction\":\"Translate:\",\"input\":\"Hello.\\tBye.\",\"output\":\"Hola.\\nAdios. \\\\o/\",\"id\":"
           "\"q2\",\"topic\":\"language\",\"source\":\"example-tsv-qa\"}\n"
           "{\"instruction\":\"How many legs has a spider?\",\"input\":\"Arachnids.\",\"output\":\"Eight.\",\"id\":"
           "\"q3\",\"topic\":\"biology\",\"source\":\"example-tsv-qa\"}\n");

  /* Bad rows: one line naming file, line and field. */
  static const struct {
    const char *tsv, *error;
  } bad[] = {
    { "question\tanswer\nfine\tyes\nshort\n", ":3: field 'answer': the row has 1 columns, the header 2" },
    { "question\tanswer\nq\t\n", ":2: field 'answer': empty" },
    { "question\tanswer\n\xff\tx\n", ":2: not valid UTF-8" },
    { "q\tanswer\nx\ty\n", ":1: field 'question': the header has no column \"question\" (it has: q, answer)" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *path = g_strdup_printf ("%s/bad%u.tsv", stage.dest, i);
    cria_test_write_file (path, bad[i].tsv);
    g_autofree char *bad_args = g_strdup_printf ("data -q 'example-tsv-qa location=%s ! jsonl location=-'", path);
    g_autofree char *bad_run = cria_command (bad_args);
    g_autofree char *bad_err = NULL;
    CU_ASSERT_NOT_EQUAL (sh_full (bad_run, NULL, &bad_err, TRUE), 0);
    g_autofree char *bad_want = g_strconcat (path, bad[i].error, NULL);
    if (!bad_err || !strstr (bad_err, bad_want))
      printf ("\n  wanted %s\n  got %s", bad_want, bad_err ? bad_err : "(nothing)");
    CU_ASSERT_PTR_NOT_NULL (bad_err && strstr (bad_err, bad_want));
    CU_ASSERT_TRUE (bad_err && strchr (bad_err, '\n') == bad_err + strlen (bad_err) - 1); /* one line */
  }
  /* --on-error=skip goes on past a bad row and counts it. */
  g_autofree char *mixed = g_build_filename (stage.dest, "mixed.tsv", NULL);
  cria_test_write_file (mixed, "question\tanswer\na\t1\nb\n c\t3\n");
  g_autofree char *skip_args = g_strdup_printf (
      "data -q --on-error=skip 'example-tsv-qa location=%s ! jsonl location=-'", mixed);
  g_autofree char *skip_run = cria_command (skip_args);
  g_autofree char *skipped = NULL;
  CU_ASSERT_EQUAL (sh (skip_run, &skipped), 0);
  guint lines = 0;
  for (const char *c = skipped; c && *c; c++)
    lines += *c == '\n';
  CU_ASSERT_EQUAL (lines, 2);

  g_autofree char *inspect = cria_command ("inspect example-tsv-qa");
  g_autofree char *shown = NULL;
  CU_ASSERT_EQUAL (sh (inspect, &shown), 0);
  CU_ASSERT_PTR_NOT_NULL (shown && strstr (shown, "escapes"));
  CU_ASSERT_PTR_NOT_NULL (shown && strstr (shown, "header of the column that becomes the output"));
}

static char *
src_path (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "sdk", name, NULL);
}

/* `cria logits` of the ids of the golden `golden` (in tests/sdk) on
 * `model_args`, compared with the golden's logits. */
static double
logits_vs (const char *golden_name, const char *model_args)
{
  g_autofree char *golden_path = src_path (golden_name);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaSafetensors) golden = cria_safetensors_open (golden_path, &error);
  g_assert_no_error (error);
  const CriaWeight *ids = cria_safetensors_lookup (golden, "input_ids");
  const CriaWeight *want = cria_safetensors_lookup (golden, "logits");
  g_assert (ids && want && ids->dtype == CRIA_DTYPE_I64 && want->dtype == CRIA_DTYPE_F32);
  g_autoptr (GString) list = g_string_new (NULL);
  for (gint64 i = 0; i < ids->n_elements; i++)
    g_string_append_printf (list, "%s%" G_GINT64_FORMAT, i ? "," : "", ((const gint64 *) ids->data)[i]);
  g_autofree char *out = g_build_filename (stage.dest, "logits.safetensors", NULL);
  g_autofree char *args = g_strdup_printf ("logits %s --threads 1 --ids %s --out '%s'", model_args, list->str, out);
  g_autofree char *run = cria_command (args);
  if (sh (run, NULL) != 0)
    return INFINITY;
  g_autoptr (CriaSafetensors) got = cria_safetensors_open (out, &error);
  g_assert_no_error (error);
  const CriaWeight *logits = cria_safetensors_lookup (got, "logits");
  if (!logits || logits->dtype != CRIA_DTYPE_F32 || logits->n_elements != want->n_elements)
    return INFINITY;
  return cria_test_rel_diff (logits->data, want->data, want->n_elements);
}

static double
logits_vs_golden (const char *model_args)
{
  return logits_vs ("ia3-tiny-llama-logits.safetensors", model_args);
}

static void
test_ia3_reference (void)
{
  NEED_STAGE ();
  g_autofree char *fixture = src_path ("ia3-tiny-llama");
  g_autofree char *with = g_strdup_printf ("--model '%s' --adapter '%s'", stage.model, fixture);
  double d = logits_vs_golden (with);
  printf ("\n  ia3 adapter vs PyTorch: logits differ by %.3g of the largest", d);
  CU_ASSERT_TRUE (d <= 1e-4);
  /* The vectors matter: the base alone is far from the golden. */
  g_autofree char *without = g_strdup_printf ("--model '%s'", stage.model);
  CU_ASSERT_TRUE (logits_vs_golden (without) > 1e-2);
  /* Merged into the weights, the same function. */
  g_autofree char *merged = g_build_filename (stage.dest, "merged", NULL);
  g_autofree char *merge_args = g_strdup_printf ("merge --model '%s' --adapter '%s' --out '%s'", stage.model, fixture,
                                                 merged);
  g_autofree char *merge = cria_command (merge_args);
  CU_ASSERT_EQUAL_FATAL (sh (merge, NULL), 0);
  g_autofree char *merged_args = g_strdup_printf ("--model '%s'", merged);
  d = logits_vs_golden (merged_args);
  printf ("\n  ia3 merged vs PyTorch: logits differ by %.3g of the largest", d);
  CU_ASSERT_TRUE (d <= 1e-4);
}

/* The "loss" of each step line of train-log.jsonl. */
static GArray *
step_losses (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (path);
  GArray *losses = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GRegex) re = g_regex_new ("\"step\":[0-9]+,\"epoch\":[0-9]+,\"loss\":([-0-9.eE+]+)", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  for (g_regex_match (re, text ? text : "", 0, &m); g_match_info_matches (m); g_match_info_next (m, NULL)) {
    g_autofree char *v = g_match_info_fetch (m, 1);
    double x = g_ascii_strtod (v, NULL);
    g_array_append_val (losses, x);
  }
  return losses;
}

/* The training task of the adapter and model examples: 16 records asking
 * to echo two letters, and a short prompt format (tiny-llama sees 64
 * positions). Writes them in the stage; returns their paths. */
static void
write_echo_task (char **data, char **format)
{
  *data = g_build_filename (stage.dest, "train.jsonl", NULL);
  g_autoptr (GString) records = g_string_new (NULL);
  for (int i = 0; i < 16; i++)
    g_string_append_printf (records, "{\"instruction\":\"echo\",\"input\":\"%c%c\",\"output\":\"%c%c\"}\n", 'a' + i % 7,
                            'k' + i % 5, 'a' + i % 7, 'k' + i % 5);
  cria_test_write_file (*data, records->str);
  *format = cria_test_short_format (stage.dest);
}

static void
test_ia3_train (void)
{
  NEED_STAGE ();
  g_autofree char *data = NULL, *format = NULL;
  write_echo_task (&data, &format);
  g_autofree char *run_dir = g_build_filename (stage.dest, "ia3-run", NULL);
  g_autofree char *args = g_strdup_printf ("train --model '%s' --data '%s' --format '%s' --adapter ia3 --max-length 48 "
                                           "--batch-size 4 --max-steps 12 --lr 0.1 --threads 1 --out '%s' >/dev/null",
                                           stage.model, data, format, run_dir);
  g_autofree char *train = cria_command (args);
  CU_ASSERT_EQUAL_FATAL (sh (train, NULL), 0);
  g_autoptr (GArray) losses = step_losses (run_dir);
  CU_ASSERT_EQUAL_FATAL (losses->len, 12);
  double first = g_array_index (losses, double, 0), last = g_array_index (losses, double, losses->len - 1);
  printf ("\n  ia3 training loss: %.4f at step 1, %.4f at step %u", first, last, losses->len);
  CU_ASSERT_TRUE (last < first * 0.9);

  /* PEFT's adapter_config.json and keys/shapes. */
  g_autofree char *cfg_path = g_build_filename (run_dir, "adapter_config.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, cfg_path, NULL));
  JsonObject *cfg = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member_with_default (cfg, "peft_type", ""), "IA3");
  JsonArray *targets = json_object_get_array_member (cfg, "target_modules");
  JsonArray *ff = json_object_get_array_member (cfg, "feedforward_modules");
  CU_ASSERT_TRUE_FATAL (targets && ff);
  CU_ASSERT_EQUAL (json_array_get_length (targets), 3);
  CU_ASSERT_STRING_EQUAL (json_array_get_string_element (targets, 2), "down_proj");
  CU_ASSERT_EQUAL (json_array_get_length (ff), 1);
  CU_ASSERT_STRING_EQUAL (json_array_get_string_element (ff, 0), "down_proj");
  CU_ASSERT_FALSE (json_object_get_boolean_member_with_default (cfg, "fan_in_fan_out", TRUE));
  CU_ASSERT_TRUE (json_object_get_boolean_member_with_default (cfg, "init_ia3_weights", FALSE));
  g_autofree char *st_path = g_build_filename (run_dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 6); /* 2 layers x (k_proj, v_proj, down_proj) */
  const CriaWeight *k = cria_safetensors_lookup (st, "base_model.model.model.layers.1.self_attn.k_proj.ia3_l");
  const CriaWeight *down = cria_safetensors_lookup (st, "base_model.model.model.layers.0.mlp.down_proj.ia3_l");
  CU_ASSERT_TRUE_FATAL (k && down);
  CU_ASSERT_TRUE (k->n_dims == 2 && k->shape[0] == 16 && k->shape[1] == 1);          /* [out, 1] */
  CU_ASSERT_TRUE (down->n_dims == 2 && down->shape[0] == 1 && down->shape[1] == 64); /* [1, in] */
  gboolean moved = FALSE;
  for (gint64 i = 0; i < down->n_elements; i++)
    moved |= ((const float *) down->data)[i] != 1.0f;
  CU_ASSERT_TRUE (moved);

  g_autofree char *inspect = cria_command ("inspect ia3");
  g_autofree char *shown = NULL;
  CU_ASSERT_EQUAL (sh (inspect, &shown), 0);
  CU_ASSERT_PTR_NOT_NULL (shown && strstr (shown, "feedforward-modules"));
}

/* In memory, then saved and reloaded: the same logits. The adapter is made
 * in this process from the example .so (built against the installed SDK),
 * with random vectors, as after training. */
static void
test_ia3_reload (void)
{
  NEED_STAGE ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autofree char *so = g_build_filename (stage.examples, "adapter", "cria-example-ia3.so", NULL);
  CU_ASSERT_TRUE_FATAL (cria_registry_load_file (reg, so, &error));
  static const gint32 ids[] = { 1, 40, 41, 42, 200, 7, 3 };
  CriaLmStack a = { 0 }, b = { 0 };
  CU_ASSERT_TRUE_FATAL (cria_lm_stack_open (&a, reg, stage.model, CRIA_MODEL_DTYPE_AUTO, NULL, 1, FALSE, &error));
  g_autoptr (CriaTensor) base = cria_lm_logits (a.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  g_autoptr (CriaAdapter) adapter = cria_adapter_new_from_spec (reg, "ia3 init-ia3-weights=false", &error);
  g_assert_no_error (error);
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach (adapter, a.model, 11, &error));
  gpointer data;
  CriaLinearHook hook = cria_adapter_get_linear_hook (adapter, &data);
  cria_lm_set_linear_hook (a.lm, hook, data);
  g_autoptr (CriaTensor) in_memory = cria_lm_logits (a.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  gint64 n = cria_tensor_numel (base);
  CU_ASSERT_TRUE (cria_test_rel_diff (in_memory->data, base->data, n) > 1e-2);

  g_autofree char *dir = g_build_filename (stage.dest, "ia3-saved", NULL);
  CU_ASSERT_TRUE_FATAL (cria_adapter_save_peft (adapter, dir, "tiny-llama", &error));
  CU_ASSERT_TRUE_FATAL (cria_lm_stack_open (&b, reg, stage.model, CRIA_MODEL_DTYPE_AUTO, NULL, 1, FALSE, &error));
  CU_ASSERT_TRUE_FATAL (cria_lm_stack_add_adapter (&b, reg, dir, &error));
  g_autoptr (CriaTensor) reloaded = cria_lm_logits (b.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  CU_ASSERT_EQUAL_FATAL (cria_tensor_numel (reloaded), n);
  CU_ASSERT_EQUAL (memcmp (reloaded->data, in_memory->data, (gsize) n * sizeof (float)), 0);

  /* Merged into b's weights, without the hook: the same function. */
  CU_ASSERT_TRUE_FATAL (cria_adapter_merge (b.adapter, b.model, &error));
  cria_lm_set_linear_hook (b.lm, NULL, NULL);
  g_autoptr (CriaTensor) merged = cria_lm_logits (b.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  double d = cria_test_rel_diff (merged->data, in_memory->data, n);
  printf ("\n  ia3 merged in memory vs hooked: %.3g of the largest", d);
  CU_ASSERT_TRUE (d <= 1e-5);

  /* Bad adapters fail with one line naming the file and the field or key. */
  static const struct {
    const char *field, *value, *error;
  } bad[] = {
    { "feedforward_modules", "5", "adapter_config.json: field feedforward_modules: not a list or a string" },
    { "target_modules", "[\"q_proj\",\"v_proj\",\"down_proj\"]",
      "tensor base_model.model.model.layers.0.self_attn.q_proj.ia3_l is missing" },
  };
  g_autofree char *cfg_path = g_build_filename (dir, "adapter_config.json", NULL);
  g_autofree char *cfg = cria_test_read_file (cfg_path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (cfg);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (JsonNode) root = json_from_string (cfg, NULL);
    CU_ASSERT_TRUE_FATAL (root && JSON_NODE_HOLDS_OBJECT (root));
    json_object_set_member (json_node_get_object (root), bad[i].field, json_from_string (bad[i].value, NULL));
    g_autofree char *broken = json_to_string (root, TRUE);
    cria_test_write_file (cfg_path, broken);
    g_autoptr (CriaAdapter) none = cria_adapter_load (reg, b.model, dir, &error);
    CU_ASSERT_PTR_NULL (none);
    CU_ASSERT_TRUE (error && strstr (error->message, bad[i].error) && !strchr (error->message, '\n'));
    if (error && !strstr (error->message, bad[i].error))
      printf ("\n  wanted %s\n  got %s", bad[i].error, error->message);
    g_clear_error (&error);
  }
  /* A feed-forward module that is not a target is refused, as PEFT does. */
  g_autoptr (CriaAdapter) stray = cria_adapter_new_from_spec (reg, "ia3 target-modules=k_proj", &error);
  g_assert_no_error (error);
  CU_ASSERT_FALSE (cria_adapter_attach (stray, a.model, 1, &error));
  CU_ASSERT_TRUE (error && strstr (error->message, "is among feedforward-modules=down_proj but not among"));
  g_clear_error (&error);
  cria_lm_stack_clear (&a);
  cria_lm_stack_clear (&b);
}

/* GPT-2 stores its layers as Conv1D ([in, out]): PEFT's defaults there are
 * c_attn and mlp.c_proj (feed-forward), saved with fan_in_fan_out. */
static void
test_ia3_gpt2 (void)
{
  NEED_STAGE ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autofree char *so = g_build_filename (stage.examples, "adapter", "cria-example-ia3.so", NULL);
  CU_ASSERT_TRUE_FATAL (cria_registry_load_file (reg, so, &error));
  g_autofree char *tmp = g_build_filename (stage.dest, "gpt2", NULL);
  g_autofree char *model = cria_test_tiny_model (tmp, "tiny-gpt2");
  static const gint32 ids[] = { 5, 60, 61, 200, 7 };
  CriaLmStack st = { 0 };
  CU_ASSERT_TRUE_FATAL (cria_lm_stack_open (&st, reg, model, CRIA_MODEL_DTYPE_AUTO, NULL, 1, FALSE, &error));
  g_autoptr (CriaAdapter) adapter = cria_adapter_new_from_spec (reg, "ia3 init-ia3-weights=false", &error);
  g_assert_no_error (error);
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach (adapter, st.model, 3, &error));
  gpointer data;
  CriaLinearHook hook = cria_adapter_get_linear_hook (adapter, &data);
  cria_lm_set_linear_hook (st.lm, hook, data);
  g_autoptr (CriaTensor) hooked = cria_lm_logits (st.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  g_autofree char *dir = g_build_filename (tmp, "ia3", NULL);
  CU_ASSERT_TRUE_FATAL (cria_adapter_save_peft (adapter, dir, "tiny-gpt2", &error));
  g_autofree char *st_path = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) saved = cria_safetensors_open (st_path, &error);
  g_assert_no_error (error);
  const CriaWeight *attn = cria_safetensors_lookup (saved, "base_model.model.transformer.h.0.attn.c_attn.ia3_l");
  const CriaWeight *proj = cria_safetensors_lookup (saved, "base_model.model.transformer.h.1.mlp.c_proj.ia3_l");
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (saved), 4);
  CU_ASSERT_TRUE_FATAL (attn && proj);
  CU_ASSERT_TRUE (attn->shape[0] == 96 && attn->shape[1] == 1);  /* [3 * 32 out, 1] */
  CU_ASSERT_TRUE (proj->shape[0] == 1 && proj->shape[1] == 128); /* [1, 4 * 32 in] */
  g_autofree char *cfg = g_build_filename (dir, "adapter_config.json", NULL);
  g_autofree char *text = cria_test_read_file (cfg);
  CU_ASSERT_PTR_NOT_NULL (text && strstr (text, "\"fan_in_fan_out\" : true"));
  CU_ASSERT_TRUE_FATAL (cria_adapter_merge (adapter, st.model, &error));
  cria_lm_set_linear_hook (st.lm, NULL, NULL);
  g_autoptr (CriaTensor) merged = cria_lm_logits (st.lm, ids, G_N_ELEMENTS (ids), &error);
  g_assert_no_error (error);
  double d = cria_test_rel_diff (merged->data, hooked->data, cria_tensor_numel (hooked));
  printf ("\n  ia3 on gpt2, merged vs hooked: %.3g of the largest", d);
  CU_ASSERT_TRUE (d <= 1e-5);
  cria_lm_stack_clear (&st);
}

/* The model example: OLMo 2, an architecture no in-tree plugin knows,
 * against the PyTorch reference of tests/sdk/olmo2_reference.py. */
static void
test_model_reference (void)
{
  NEED_STAGE ();
  g_autofree char *dir = src_path ("tiny-olmo2");
  g_autofree char *info_args = g_strdup_printf ("model info --json '%s'", dir);
  g_autofree char *info = cria_command (info_args);
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (sh (info, &out), 0);
  CU_ASSERT_PTR_NOT_NULL (out && strstr (out, "\"provider\" : \"example-olmo2\""));
  CU_ASSERT_PTR_NOT_NULL (out && strstr (out, "\"architecture\" : \"Olmo2ForCausalLM\""));

  g_autofree char *with = g_strdup_printf ("--model '%s'", dir);
  double d = logits_vs ("tiny-olmo2-logits.safetensors", with);
  printf ("\n  olmo2 example vs PyTorch: logits differ by %.3g of the largest", d);
  CU_ASSERT_TRUE (d <= 1e-4);

  /* Greedy generation goes through the KV cache, a path the logits do not take. */
  g_autofree char *golden_path = src_path ("tiny-olmo2-logits.safetensors");
  g_autoptr (CriaSafetensors) golden = cria_safetensors_open (golden_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (golden);
  const CriaWeight *ids = cria_safetensors_lookup (golden, "input_ids");
  const CriaWeight *greedy = cria_safetensors_lookup (golden, "greedy_ids");
  CU_ASSERT_TRUE_FATAL (ids && greedy);
  g_autoptr (GString) prompt = g_string_new (NULL);
  for (gint64 i = 0; i < ids->n_elements; i++)
    g_string_append_printf (prompt, "%s%" G_GINT64_FORMAT, i ? "," : "", ((const gint64 *) ids->data)[i]);
  g_autofree char *gen_args = g_strdup_printf ("generate --json --threads 1 -m '%s' -n %" G_GINT64_FORMAT " --ids %s",
                                               dir, greedy->n_elements, prompt->str);
  g_autofree char *gen = cria_command (gen_args);
  g_autofree char *got = NULL;
  CU_ASSERT_EQUAL_FATAL (sh (gen, &got), 0);
  g_autoptr (JsonParser) parser = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (parser, got, -1, NULL));
  JsonNode *root = json_parser_get_root (parser);
  JsonArray *gen_ids = JSON_NODE_HOLDS_OBJECT (root) ? json_object_get_array_member (json_node_get_object (root), "ids")
                                                     : NULL;
  CU_ASSERT_TRUE_FATAL (gen_ids && json_array_get_length (gen_ids) == (guint) greedy->n_elements);
  for (gint64 i = 0; i < greedy->n_elements; i++)
    CU_ASSERT_EQUAL (json_array_get_int_element (gen_ids, (guint) i), ((const gint64 *) greedy->data)[i]);

  /* `cria model init` fills a new checkpoint from the plugin's tensor list. */
  g_autofree char *config = g_build_filename (dir, "config.json", NULL);
  g_autofree char *fresh = g_build_filename (stage.dest, "olmo2-init", NULL);
  g_autofree char *init_args = g_strdup_printf ("model init --seed 7 '%s' '%s'", config, fresh);
  g_autofree char *init = cria_command (init_args);
  CU_ASSERT_EQUAL (sh (init, NULL), 0);
  g_autofree char *fresh_args = g_strdup_printf ("model info '%s'", fresh);
  g_autofree char *fresh_info = cria_command (fresh_args);
  g_autofree char *init_out = NULL;
  CU_ASSERT_EQUAL (sh (fresh_info, &init_out), 0);
  CU_ASSERT_PTR_NOT_NULL (init_out && strstr (init_out, "parameters           35072"));

  /* A config the plugin refuses: one line naming the file and the field. */
  g_autofree char *bad = g_build_filename (stage.dest, "olmo2-bad", NULL);
  g_autofree char *bad_config = g_build_filename (bad, "config.json", NULL);
  g_mkdir_with_parents (bad, 0755);
  g_autofree char *text = cria_test_read_file (config);
  g_autoptr (GRegex) kv = g_regex_new ("\"num_key_value_heads\": 2", 0, 0, NULL);
  g_autofree char *three = g_regex_replace_literal (kv, text, -1, 0, "\"num_key_value_heads\": 3", 0, NULL);
  cria_test_write_file (bad_config, three);
  g_autofree char *bad_args = g_strdup_printf ("model init '%s' '%s/out'", bad_config, bad);
  g_autofree char *bad_run = cria_command (bad_args);
  g_autofree char *err = NULL;
  CU_ASSERT_NOT_EQUAL (sh_full (bad_run, NULL, &err, TRUE), 0);
  g_autofree char *want_err = g_strdup_printf ("%s: num_key_value_heads: does not divide num_attention_heads",
                                               bad_config);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, want_err));

  g_autofree char *inspect = cria_command ("inspect example-olmo2");
  g_autofree char *shown = NULL;
  CU_ASSERT_EQUAL (sh (inspect, &shown), 0);
  CU_ASSERT_PTR_NOT_NULL (shown && strstr (shown, "Olmo2ForCausalLM"));
}

/* LoRA attaches to the example's linear layers by name, trains, and the
 * adapter generates. */
static void
test_model_lora (void)
{
  NEED_STAGE ();
  g_autofree char *dir = src_path ("tiny-olmo2");
  g_autofree char *data = NULL, *format = NULL;
  write_echo_task (&data, &format);
  g_autofree char *run_dir = g_build_filename (stage.dest, "olmo2-lora", NULL);
  g_autofree char *args = g_strdup_printf ("train --model '%s' --data '%s' --format '%s' --adapter lora "
                                           "--max-length 48 --batch-size 4 --max-steps 10 --lr 3e-2 --threads 1 "
                                           "--out '%s' >/dev/null",
                                           dir, data, format, run_dir);
  g_autofree char *train = cria_command (args);
  CU_ASSERT_EQUAL_FATAL (sh (train, NULL), 0);
  g_autoptr (GArray) losses = step_losses (run_dir);
  CU_ASSERT_EQUAL_FATAL (losses->len, 10);
  double first = g_array_index (losses, double, 0), last = g_array_index (losses, double, losses->len - 1);
  printf ("\n  olmo2 LoRA training loss: %.4f at step 1, %.4f at step %u", first, last, losses->len);
  CU_ASSERT_TRUE (last < first * 0.9);
  /* PEFT's names: the example's module names, the default targets q and v. */
  g_autofree char *st_path = g_build_filename (run_dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_PTR_NOT_NULL (
      cria_safetensors_lookup (st, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
  g_autofree char *gen_args = g_strdup_printf ("generate --threads 1 -m '%s' --adapter '%s' -n 4 'echo ab='", dir,
                                               run_dir);
  g_autofree char *gen = cria_command (gen_args);
  CU_ASSERT_EQUAL (sh (gen, NULL), 0);
}

static void
test_cleanup (void)
{
  if (stage.dest)
    cria_test_rmtree (stage.dest);
  g_free (stage.dest);
  g_free (stage.bin);
  g_free (stage.libdir);
  g_free (stage.plugins_dir);
  g_free (stage.examples);
  g_free (stage.path);
  g_free (stage.model);
  memset (&stage, 0, sizeof stage);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "cria installs; the examples build against the installed SDK", test_install_and_build },
    { "the transform example runs", test_transform },
    { "the converter example reads TSV and names bad rows", test_source },
    { "the IA3 example matches PyTorch, loaded and merged", test_ia3_reference },
    { "the IA3 example trains and saves PEFT's keys and shapes", test_ia3_train },
    { "the IA3 example reloads to the logits it had in memory", test_ia3_reload },
    { "the IA3 example on GPT-2's Conv1D layers merges to what it computes", test_ia3_gpt2 },
    { "the model example (OLMo 2) matches PyTorch, greedy ids included", test_model_reference },
    { "LoRA trains on the model example", test_model_lora },
    { "cleanup", test_cleanup },
    { NULL },
  };
  cria_test_add_suite ("sdk", cases);
}

CRIA_TEST_MAIN (register_suites)
