/* test-init-from: lora's init-from=DIR and cria train --shuffle=false, the
 * two pieces that let another trainer (PEFT in bench/cuda/peft_parity.py)
 * start where cria starts and see the batches it sees.
 *
 * A run of lr 0 from a saved adapter saves that adapter bit for bit, and its
 * first loss depends on the saved values, not on --seed; a directory that
 * does not describe the adapter (r, alpha, layers, a tensor missing or of
 * another shape) stops the run with one line naming the file and the field
 * or tensor; with --shuffle=false the steps take the records in the file's
 * order, epoch after epoch. */
#include <string.h>
#include <glib/gstdio.h>

#include "cria-test.h"

static char *tmp;
static char *model_dir;
static char *data_path;
static char *format_path;
static char *saved; /* an adapter trained 2 steps: A and B nonzero */

#define SPEC "lora r=4 alpha=8 target-modules=c_attn"

static int
train (const char *out, const char *const *extra, char **err)
{
  const char *common[] = {
    "train",     "--model", model_dir,     "--data",       data_path, "--format",     format_path,
    "--out",     out,       "--overwrite", "--max-length", "64",      "--batch-size", "2",
    "--threads", "1",       "--progress",  "never",        NULL
  };
  return cria_test_run_cria_lists (err, common, extra, NULL);
}

static void
setup (void)
{
  tmp = cria_test_tmpdir ();
  model_dir = cria_test_tiny_model (tmp, "tiny-gpt2");
  format_path = cria_test_short_format (tmp);
  data_path = cria_test_sums_data (tmp, 8, 13, 50);
  saved = g_build_filename (tmp, "saved", NULL);
  g_autofree char *err = NULL;
  int status = train (saved, (const char *[]){ "--adapter", SPEC, "--max-steps", "2", "--lr", "1e-2", NULL }, &err);
  if (status != 0)
    g_error ("training the saved adapter failed: %s", err ? err : "");
}

static void
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (model_dir);
  g_free (data_path);
  g_free (format_path);
  g_free (saved);
}

/* The n-th (1-based) step line's value of `field` in `dir`/train-log.jsonl, as written. */
static char *
log_field (const char *dir, int step, const char *field)
{
  g_autofree char *path = g_build_filename (dir, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (path);
  if (!text)
    return NULL;
  g_autofree char *pattern = g_strdup_printf ("\"step\":%d,.*\"%s\":([^,}]+)", step, field);
  g_autoptr (GRegex) re = g_regex_new (pattern, G_REGEX_MULTILINE, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  g_autoptr (GRegex) line = g_regex_new ("^.*$", G_REGEX_MULTILINE, 0, NULL);
  g_autoptr (GMatchInfo) lm = NULL;
  for (g_regex_match (line, text, 0, &lm); g_match_info_matches (lm); g_match_info_next (lm, NULL)) {
    g_autofree char *l = g_match_info_fetch (lm, 0);
    if (g_regex_match (re, l, 0, &m))
      return g_match_info_fetch (m, 1);
    g_clear_pointer (&m, g_match_info_free);
  }
  return NULL;
}

static gboolean
same_tensors (const char *dir_a, const char *dir_b)
{
  g_autofree char *pa = g_build_filename (dir_a, "adapter_model.safetensors", NULL);
  g_autofree char *pb = g_build_filename (dir_b, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) a = cria_safetensors_open (pa, NULL);
  g_autoptr (CriaSafetensors) b = cria_safetensors_open (pb, NULL);
  if (!a || !b || cria_safetensors_get_n_weights (a) != cria_safetensors_get_n_weights (b))
    return FALSE;
  for (guint i = 0; i < cria_safetensors_get_n_weights (a); i++) {
    const CriaWeight *wa = cria_safetensors_get_weight (a, i);
    const CriaWeight *wb = cria_safetensors_lookup (b, wa->name);
    if (!wb || wa->n_elements != wb->n_elements || wa->dtype != wb->dtype ||
        memcmp (wa->data, wb->data, cria_dtype_bytes (wa->dtype, (gsize) wa->n_elements)) != 0)
      return FALSE;
  }
  return TRUE;
}

static gboolean
any_nonzero (const char *dir, const char *suffix)
{
  g_autofree char *p = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (p, NULL);
  for (guint i = 0; st && i < cria_safetensors_get_n_weights (st); i++) {
    const CriaWeight *w = cria_safetensors_get_weight (st, i);
    const float *f = w->data;
    for (gint64 k = 0; g_str_has_suffix (w->name, suffix) && k < w->n_elements; k++)
      if (f[k] != 0)
        return TRUE;
  }
  return FALSE;
}

static void
test_exact_values (void)
{
  CU_ASSERT_TRUE_FATAL (any_nonzero (saved, ".lora_B.weight"));
  g_autofree char *spec = g_strdup_printf (SPEC " init-from=%s", saved);
  g_autofree char *out = g_build_filename (tmp, "lr0", NULL);
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (
      train (out, (const char *[]){ "--adapter", spec, "--max-steps", "1", "--lr", "0", "--seed", "5", NULL }, &err),
      0);
  CU_ASSERT_TRUE (same_tensors (saved, out));
}

static void
test_seed_independent (void)
{
  g_autofree char *spec = g_strdup_printf (SPEC " init-from=%s", saved);
  const char *seeds[] = { "5", "6" };
  char *first[2] = { NULL, NULL };
  for (int i = 0; i < 2; i++) {
    g_autofree char *out = g_build_filename (tmp, seeds[i], NULL);
    CU_ASSERT_EQUAL_FATAL (
        train (out,
               (const char *[]){ "--adapter", spec, "--max-steps", "1", "--seed", seeds[i], "--shuffle=false", NULL },
               NULL),
        0);
    first[i] = log_field (out, 1, "loss");
  }
  CU_ASSERT_TRUE_FATAL (first[0] && first[1]);
  CU_ASSERT_STRING_EQUAL (first[0], first[1]);
  /* The default init (B = 0) computes the base model's loss: another one. */
  g_autofree char *plain = g_build_filename (tmp, "plain", NULL);
  CU_ASSERT_EQUAL_FATAL (
      train (plain, (const char *[]){ "--adapter", SPEC, "--max-steps", "1", "--seed", "5", "--shuffle=false", NULL },
             NULL),
      0);
  g_autofree char *base_loss = log_field (plain, 1, "loss");
  CU_ASSERT_TRUE_FATAL (base_loss != NULL);
  CU_ASSERT_STRING_NOT_EQUAL (base_loss, first[0]);
  g_free (first[0]);
  g_free (first[1]);
}

/* `dir` holding a copy of the saved adapter with `config` as its
 * adapter_config.json (NULL: the saved one) and the tensors `keep` accepts. */
static char *
variant (const char *name, const char *config, gboolean (*keep) (const CriaWeight *w, CriaWeight *out, float *buf))
{
  g_autofree char *dir = g_build_filename (tmp, name, NULL);
  g_mkdir_with_parents (dir, 0755);
  g_autofree char *cfg_from = g_build_filename (saved, "adapter_config.json", NULL);
  g_autofree char *cfg_to = g_build_filename (dir, "adapter_config.json", NULL);
  g_autofree char *text = config ? g_strdup (config) : cria_test_read_file (cfg_from);
  cria_test_write_file (cfg_to, text);
  g_autofree char *st_from = g_build_filename (saved, "adapter_model.safetensors", NULL);
  g_autofree char *st_to = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_from, NULL);
  g_assert (st);
  g_autoptr (CriaSafetensorsWriter) w = cria_safetensors_writer_new ();
  g_autofree float *buf = g_new0 (float, 1 << 16);
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const CriaWeight *in = cria_safetensors_get_weight (st, i);
    CriaWeight out = *in;
    if (!keep || keep (in, &out, buf))
      g_assert (cria_safetensors_writer_add (w, &out, NULL));
  }
  g_assert (cria_safetensors_writer_write (w, st_to, NULL));
  return g_steal_pointer (&dir);
}

static gboolean
drop_one_b (const CriaWeight *w, CriaWeight *out, float *buf)
{
  (void) out;
  (void) buf;
  return strcmp (w->name, "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight") != 0;
}

static gboolean
narrow_one_a (const CriaWeight *w, CriaWeight *out, float *buf)
{
  if (!strcmp (w->name, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")) {
    out->shape[0] = 3; /* r = 3 rows of 32, from a zeroed buffer */
    out->n_elements = 3 * w->shape[1];
    out->n_bytes = (gsize) out->n_elements * sizeof (float);
    out->data = buf;
  }
  return TRUE;
}

static void
expect_error (const char *adapter_spec, const char *const *needles)
{
  g_autofree char *out = g_build_filename (tmp, "bad", NULL);
  g_autofree char *err = NULL;
  int status = train (out, (const char *[]){ "--adapter", adapter_spec, "--max-steps", "1", NULL }, &err);
  CU_ASSERT_EQUAL (status, 1);
  gboolean found = err != NULL;
  for (int i = 0; found && needles[i]; i++)
    found = strstr (err, needles[i]) != NULL;
  if (!found)
    printf ("\n%s: expected %s ... in: %s\n", adapter_spec, needles[0], err ? err : "(nothing)");
  CU_ASSERT_TRUE (found);
  /* one line */
  CU_ASSERT_TRUE (err && strchr (err, '\n') == err + strlen (err) - 1);
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_mismatches (void)
{
  g_autofree char *cfg_file = g_build_filename (saved, "adapter_config.json", NULL);
  g_autofree char *st_file = g_build_filename (saved, "adapter_model.safetensors", NULL);
  struct {
    const char *props;
    const char *needles[4];
  } props_cases[] = {
    { "r=2 alpha=8 target-modules=c_attn", { cfg_file, "field r:", NULL } },
    { "r=4 alpha=16 target-modules=c_attn", { cfg_file, "field lora_alpha:", NULL } },
    { "r=4 alpha=8 target-modules=c_attn use-rslora=true", { cfg_file, "field use_rslora:", NULL } },
    { "r=4 alpha=8 target-modules=c_attn,c_fc", { cfg_file, "field target_modules:", "transformer.h.0.mlp.c_fc" } },
    { "r=4 alpha=8 target-modules=transformer.h.0.attn.c_attn",
      { st_file, "tensor base_model.model.transformer.h.1.attn.c_attn.lora_A.weight", NULL } },
  };
  for (guint i = 0; i < G_N_ELEMENTS (props_cases); i++) {
    g_autofree char *spec = g_strdup_printf ("lora %s init-from=%s", props_cases[i].props, saved);
    expect_error (spec, props_cases[i].needles);
  }

  g_autofree char *missing = g_build_filename (tmp, "no-such-adapter", NULL);
  g_autofree char *missing_cfg = g_build_filename (missing, "adapter_config.json", NULL);
  g_autofree char *spec_missing = g_strdup_printf (SPEC " init-from=%s", missing);
  expect_error (spec_missing, (const char *[]){ missing_cfg, NULL });

  struct {
    const char *name, *config;
    gboolean (*keep) (const CriaWeight *, CriaWeight *, float *);
    const char *field, *tensor;
  } file_cases[] = {
    { "v-drop", NULL, drop_one_b, NULL,
      "tensor base_model.model.transformer.h.1.attn.c_attn.lora_B.weight is missing" },
    { "v-shape", NULL, narrow_one_a, NULL,
      "tensor base_model.model.transformer.h.0.attn.c_attn.lora_A.weight is [3, 32], the model needs [4, 32]" },
    { "v-type", "{\"peft_type\": \"IA3\", \"r\": 4}", NULL, "field peft_type", NULL },
    { "v-junk", "{\"peft_type\": \"LORA\", \"r\": \"four\", \"lora_alpha\": 8}", NULL, "field r", NULL },
  };
  for (guint i = 0; i < G_N_ELEMENTS (file_cases); i++) {
    g_autofree char *dir = variant (file_cases[i].name, file_cases[i].config, file_cases[i].keep);
    g_autofree char *spec = g_strdup_printf (SPEC " init-from=%s", dir);
    g_autofree char *file = g_build_filename (
        dir, file_cases[i].tensor ? "adapter_model.safetensors" : "adapter_config.json", NULL);
    expect_error (spec,
                  (const char *[]){ file, file_cases[i].tensor ? file_cases[i].tensor : file_cases[i].field, NULL });
  }
}

/* Responses of distinct lengths: with batch-size 1 the learned tokens of
 * step k say which record it took. */
static void
test_file_order (void)
{
  g_autofree char *data = g_build_filename (tmp, "lengths.jsonl", NULL);
  g_autoptr (GString) text = g_string_new (NULL);
  for (int i = 0; i < 6; i++)
    g_string_append_printf (text, "{\"instruction\":\"1+%d\",\"output\":\"%.*s\"}\n", i, i + 1, "abcdefgh");
  cria_test_write_file (data, text->str);
  const char *modes[] = { "--shuffle=false", "--shuffle" };
  char *seen[2] = { NULL, NULL };
  for (int m = 0; m < 2; m++) {
    g_autofree char *out = g_build_filename (tmp, m ? "shuffled" : "ordered", NULL);
    const char *args[] = { "train",        "--model", model_dir,     "--data",      data,           "--format",
                           format_path,    "--out",   out,           "--overwrite", "--max-length", "64",
                           "--batch-size", "1",       "--threads",   "1",           "--progress",   "never",
                           "--adapter",    SPEC,      "--max-steps", "12",          modes[m],       NULL };
    g_autofree char *err = NULL;
    CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, &err), 0);
    g_autoptr (GString) s = g_string_new (NULL);
    for (int step = 1; step <= 12; step++) {
      g_autofree char *n = log_field (out, step, "loss_tokens");
      CU_ASSERT_PTR_NOT_NULL_FATAL (n);
      g_string_append_printf (s, "%s ", n);
    }
    seen[m] = g_string_free (g_steal_pointer (&s), FALSE);
  }
  /* record i learns i + 1 bytes and EOS, in the file's order each epoch */
  CU_ASSERT_STRING_EQUAL (seen[0], "2 3 4 5 6 7 2 3 4 5 6 7 ");
  CU_ASSERT_STRING_NOT_EQUAL (seen[1], seen[0]);
  g_free (seen[0]);
  g_free (seen[1]);
}

static void
register_suites (void)
{
  setup ();
  atexit (teardown);
  static const CriaTestCase cases[] = {
    { "init-from: an lr 0 step saves the saved values bit for bit", test_exact_values },
    { "init-from: the first loss is the saved adapter's, whatever the seed", test_seed_independent },
    { "init-from: another r, alpha, layer set or tensor is one line", test_mismatches },
    { "--shuffle=false: the file's order, epoch after epoch", test_file_order },
    { NULL },
  };
  cria_test_add_suite ("init-from", cases);
}

CRIA_TEST_MAIN (register_suites)
