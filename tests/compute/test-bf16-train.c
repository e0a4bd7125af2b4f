/* test-bf16-train: a short LoRA run of a tiny GPT-2 with --base-dtype bf16
 * (bf16 base weights, activations rounded to bf16 for their products) keeps
 * every step's loss within 1% of the same run in f32, and differs from it
 * (the option took effect). The 200-step quickstart comparison is a bench
 * (man/cria-train.1), not a test. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static char *tmp, *model_dir, *data_path, *format_path;

static void
setup (void)
{
  tmp = cria_test_tmpdir ();
  model_dir = cria_test_tiny_model (tmp, "tiny-gpt2");
  format_path = cria_test_short_format (tmp);
  data_path = cria_test_sums_data (tmp, 16, 13, 50);
}

static void
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (model_dir);
  g_free (data_path);
  g_free (format_path);
}

/* The losses of the step lines of a run's log; n of them. */
static double *
run (const char *base_dtype, int *n)
{
  g_autofree char *out = g_build_filename (tmp, base_dtype, NULL);
  const char *args[] = { "train",
                         "--model",
                         model_dir,
                         "--data",
                         data_path,
                         "--format",
                         format_path,
                         "--max-length",
                         "64",
                         "--batch-size",
                         "2",
                         "--max-steps",
                         "6",
                         "--lr",
                         "1e-2",
                         "--threads",
                         "2",
                         "--adapter",
                         "lora r=4 target-modules=c_attn,c_fc",
                         "--base-dtype",
                         base_dtype,
                         "--out",
                         out,
                         NULL };
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  if (status != 0)
    printf ("\n%s\n", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  g_autofree char *log_path = g_build_filename (out, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (log_path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  g_autoptr (GRegex) re = g_regex_new ("\"step\":[0-9]+,\"epoch\":[0-9]+,\"loss\":([^,]+)", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  GArray *losses = g_array_new (FALSE, FALSE, sizeof (double));
  for (g_regex_match (re, text, 0, &m); g_match_info_matches (m); g_match_info_next (m, NULL)) {
    g_autofree char *w = g_match_info_fetch (m, 1);
    double v = g_ascii_strtod (w, NULL);
    g_array_append_val (losses, v);
  }
  *n = (int) losses->len;
  return (double *) g_array_free (losses, FALSE);
}

static void
test_loss_within_1_percent (void)
{
  int n32, n16;
  g_autofree double *f32 = run ("f32", &n32);
  g_autofree double *bf16 = run ("bf16", &n16);
  CU_ASSERT_EQUAL (n32, 6);
  CU_ASSERT_EQUAL_FATAL (n16, n32);
  gboolean differ = FALSE;
  for (int i = 0; i < n32; i++) {
    double rel = fabs (bf16[i] - f32[i]) / f32[i];
    if (rel > 0.01)
      printf ("\nstep %d: loss %g in bf16, %g in f32", i + 1, bf16[i], f32[i]);
    CU_ASSERT (rel <= 0.01);
    differ |= bf16[i] != f32[i];
  }
  CU_ASSERT (differ);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "a LoRA run's loss in bf16 within 1% of f32", test_loss_within_1_percent },
    { NULL },
  };
  setup ();
  atexit (teardown);
  cria_test_add_suite ("bf16-train", cases);
}

CRIA_TEST_MAIN (register_suites)
