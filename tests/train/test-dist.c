/* test-dist: `cria train --distributed` under mpirun on the tiny GPT-2.
 *
 * Two ranks of batch B give the loss curve and the weights of one process
 * of batch 2B with the same seed (within 1e-6 relative: the sums over the
 * batch are added in another order), for LoRA (packed, stopped and resumed
 * on two ranks) and full fine-tuning (padded); a checkpoint of two ranks is
 * refused by one process; a rank killed mid-run stops the job, naming it,
 * with its checkpoints whole. The mpirun runs go over TCP on loopback and
 * skip (77) when MPI or cria's mpi module is absent; the one-line refusals
 * without mpirun always run. */
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

#include "cria-test.h"

static char *tmp;
static char *model_dir;
static char *data_path;
static char *format_path;

static void
setup (void)
{
  tmp = cria_test_tmpdir ();
  model_dir = cria_test_tiny_model (tmp, "tiny-gpt2");
  format_path = cria_test_short_format (tmp);
  /* 22 records: the last micro-batch of an epoch is not full, so one rank
   * gets fewer rows than the other (or none) */
  data_path = cria_test_sums_data (tmp, 22, 131, 997);
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

static char *
path_in (const char *dir, const char *name)
{
  return g_build_filename (dir, name, NULL);
}

/* Whether mpirun and cria's mpi module are there; the mpirun tests skip
 * otherwise. They also skip in the sanitizer build (distcheck) unless
 * CRIA_TEST_MPI_UNDER_ASAN=1: they pass there (Open MPI's own leaks are in
 * tests/lsan.supp), but ASan makes the seven mpirun ranks and one-process
 * runs cost about 40 s of CPU, against 7 s, and the suite is over its time. */
static gboolean
have_mpi (void)
{
#ifdef __SANITIZE_ADDRESS__
  if (g_strcmp0 (g_getenv ("CRIA_TEST_MPI_UNDER_ASAN"), "1") != 0)
    return FALSE;
#endif
  g_autofree char *mpirun = g_find_program_in_path ("mpirun");
  g_autofree char *module = g_build_filename (cria_test_env ("CRIA_MODULE_DIR"), "cria-mpi.so", NULL);
  return mpirun && g_file_test (module, G_FILE_TEST_EXISTS);
}

/* The options every run shares, then the rows per micro-batch (per rank)
 * and micro-batches per step. AdamW's epsilon is large: with the default
 * 1e-8 an update is about lr * sign(g) wherever |g| is tiny, and the last
 * bits of a gradient summed in another order (a sum that cancels) move such
 * an update by a sizable part of lr; a larger epsilon keeps the update
 * proportional to the gradient there, so that the weights compare at 1e-6
 * as the gradients do. The bitwise comparison needs no such help. */
static GPtrArray *
train_args (const char *out, const char *batch, const char *accum, const char *const *extra)
{
  const char *common[] = {
    "train", "--model",      model_dir, "--data",     data_path, "--format",  format_path, "--lr",
    "1e-2",  "--max-length", "48",      "--epochs",   "2",       "--threads", "1",         "--eval-ratio",
    "0.1",   "--seed",       "5",       "--adam-eps", "1e-4",    "--out",     out,         "--batch-size",
    batch,   "--grad-accum", accum,     NULL
  };
  GPtrArray *args = g_ptr_array_new ();
  for (const char *const *a = common; *a; a++)
    g_ptr_array_add (args, (gpointer) *a);
  for (const char *const *a = extra; a && *a; a++)
    g_ptr_array_add (args, (gpointer) *a);
  g_ptr_array_add (args, NULL);
  return args;
}

/* `mpirun -np 2 cria ARGS --distributed` under a time-out, over TCP on
 * loopback; stderr in *err. Returns the exit status (124: timed out). */
static int
mpirun2 (GPtrArray *train, const char *const *env_extra, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *head[] = { "timeout", "-k", "5", "60", "mpirun", "-np", "2", NULL };
  for (const char *const *a = head; *a; a++)
    g_ptr_array_add (argv, (gpointer) *a);
  for (const char *const *e = env_extra; e && *e; e++) {
    g_ptr_array_add (argv, "-x");
    g_ptr_array_add (argv, (gpointer) *e);
  }
  g_ptr_array_add (argv, (gpointer) cria_test_env ("CRIA_BIN"));
  for (guint i = 0; i < train->len && g_ptr_array_index (train, i); i++)
    g_ptr_array_add (argv, g_ptr_array_index (train, i));
  g_ptr_array_add (argv, "--distributed");
  g_ptr_array_add (argv, NULL);
  g_auto (GStrv) env = g_get_environ ();
  /* Open MPI's switches as variables (MPICH ignores them): root in a
   * container, two ranks on a shared host, TCP on loopback (not shared
   * memory), no warning about the loopback being the only network. */
  static const char *const mca[][2] = { { "OMPI_ALLOW_RUN_AS_ROOT", "1" },
                                        { "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1" },
                                        { "OMPI_MCA_rmaps_base_oversubscribe", "1" },
                                        { "OMPI_MCA_btl", "self,tcp" },
                                        { "OMPI_MCA_btl_tcp_if_include", "lo" },
                                        { "OMPI_MCA_oob_tcp_if_include", "lo" },
                                        /* Open MPI's components stay loaded, so that LSan (the
                                         * sanitizer build) can name them in tests/lsan.supp */
                                        { "OMPI_MCA_mca_base_component_disable_dlclose", "1" },
                                        /* when a rank dies, mpirun sends the others SIGTERM, which
                                         * cria takes as Ctrl-C, then SIGKILL after this many s */
                                        { "OMPI_MCA_odls_base_sigkill_timeout", "0" } };
  for (guint i = 0; i < G_N_ELEMENTS (mca); i++)
    env = g_environ_setenv (env, mca[i][0], mca[i][1], TRUE);
  int status = -1;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  gboolean ran = g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, err, &status,
                               &error);
  g_assert_no_error (error);
  g_assert (ran);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static int
run1 (GPtrArray *train, char **err)
{
  return cria_test_run_cria_lists (err, (const char *const *) train->pdata, NULL);
}

/* The "loss" (or "eval_loss") of each line of a log that has one. */
static GArray *
log_values (const char *dir, const char *key)
{
  g_autofree char *path = path_in (dir, "train-log.jsonl");
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  GArray *v = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *pattern = g_strdup_printf ("\"%s\":([-0-9.eE+]+)", key);
  g_autoptr (GRegex) re = g_regex_new (pattern, 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  for (g_regex_match (re, text, 0, &m); g_match_info_matches (m); g_match_info_next (m, NULL)) {
    g_autofree char *w = g_match_info_fetch (m, 1);
    double x = g_ascii_strtod (w, NULL);
    g_array_append_val (v, x);
  }
  return v;
}

static void
assert_same_curve (const char *a, const char *b, const char *key)
{
  g_autoptr (GArray) va = log_values (a, key), vb = log_values (b, key);
  CU_ASSERT_TRUE (va->len > 0);
  CU_ASSERT_EQUAL_FATAL (va->len, vb->len);
  for (guint i = 0; i < va->len; i++) {
    double x = g_array_index (va, double, i), y = g_array_index (vb, double, i);
    if (!(fabs (x - y) <= 1e-6 * fabs (x)))
      printf ("\n%s %u: %.9g vs %.9g\n", key, i, x, y);
    CU_ASSERT_TRUE (fabs (x - y) <= 1e-6 * fabs (x));
  }
}

/* Every tensor of two safetensors files, within `tolerance` of the largest. */
static void
assert_same_weights (const char *a, const char *b, const char *file, guint min_weights, double tolerance)
{
  g_autofree char *pa = path_in (a, file), *pb = path_in (b, file);
  g_autoptr (CriaSafetensors) sa = cria_safetensors_open (pa, NULL);
  g_autoptr (CriaSafetensors) sb = cria_safetensors_open (pb, NULL);
  CU_ASSERT_TRUE_FATAL (sa && sb);
  CU_ASSERT_EQUAL_FATAL (cria_safetensors_get_n_weights (sa), cria_safetensors_get_n_weights (sb));
  CU_ASSERT_TRUE (cria_safetensors_get_n_weights (sa) >= min_weights);
  for (guint i = 0; i < cria_safetensors_get_n_weights (sa); i++) {
    const CriaWeight *wa = cria_safetensors_get_weight (sa, i);
    const CriaWeight *wb = cria_safetensors_lookup (sb, wa->name);
    CU_ASSERT_TRUE_FATAL (wb && wa->dtype == CRIA_DTYPE_F32 && wb->n_elements == wa->n_elements);
    double d = cria_test_rel_diff (wb->data, wa->data, wa->n_elements);
    if (!(d <= tolerance))
      printf ("\n%s: relative difference %.3g\n", wa->name, d);
    CU_ASSERT_TRUE (d <= tolerance);
  }
}

static const char *const lora[] = { "--adapter", "lora r=4 target-modules=c_attn,c_fc", "--packing", NULL };

/* Every tensor of two safetensors files, bit for bit. */
static void
assert_same_bits (const char *a, const char *b, const char *file)
{
  g_autofree char *pa = path_in (a, file), *pb = path_in (b, file);
  g_autoptr (CriaSafetensors) sa = cria_safetensors_open (pa, NULL);
  g_autoptr (CriaSafetensors) sb = cria_safetensors_open (pb, NULL);
  CU_ASSERT_TRUE_FATAL (sa && sb);
  CU_ASSERT_EQUAL_FATAL (cria_safetensors_get_n_weights (sa), cria_safetensors_get_n_weights (sb));
  for (guint i = 0; i < cria_safetensors_get_n_weights (sa); i++) {
    const CriaWeight *wa = cria_safetensors_get_weight (sa, i);
    const CriaWeight *wb = cria_safetensors_lookup (sb, wa->name);
    CU_ASSERT_TRUE_FATAL (wb && wb->n_bytes == wa->n_bytes);
    CU_ASSERT_TRUE (memcmp (wa->data, wb->data, wa->n_bytes) == 0);
  }
}

/* LoRA, packed: two ranks of batch 2, stopped after 2 steps and resumed on
 * two ranks, against one process of batch 4 (within 1e-6), and against one
 * process of batch 2 and two micro-batches per step, whose window sums the
 * same two gradients in the same order: bit for bit. */
static void
test_lora (void)
{
  if (!have_mpi ()) {
    printf ("skipped: no mpirun or no cria-mpi.so ");
    return;
  }
  g_autofree char *one = path_in (tmp, "lora-1"), *accum = path_in (tmp, "lora-accum"), *two = path_in (tmp, "lora-2");
  g_autoptr (GPtrArray) a1 = train_args (one, "4", "1", lora);
  CU_ASSERT_EQUAL_FATAL (run1 (a1, NULL), 0);
  g_autoptr (GPtrArray) a1b = train_args (accum, "2", "2", lora);
  CU_ASSERT_EQUAL_FATAL (run1 (a1b, NULL), 0);
  const char *stop[] = { lora[0], lora[1], lora[2], "--stop-after", "2", NULL };
  g_autoptr (GPtrArray) a2 = train_args (two, "2", "1", stop);
  g_autofree char *err = NULL;
  int status = mpirun2 (a2, NULL, &err);
  if (status)
    printf ("\n%s\n", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  g_autofree char *ckpt = g_build_filename (two, "checkpoints", "checkpoint-2", NULL);
  CU_ASSERT_TRUE_FATAL (g_file_test (ckpt, G_FILE_TEST_IS_DIR));
  const char *resume[] = { lora[0], lora[1], lora[2], "--resume", ckpt, NULL };
  g_autoptr (GPtrArray) a3 = train_args (two, "2", "1", resume);
  g_clear_pointer (&err, g_free);
  status = mpirun2 (a3, NULL, &err);
  if (status)
    printf ("\n%s\n", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  assert_same_curve (one, two, "loss");
  assert_same_curve (one, two, "eval_loss");
  /* 1.7e-5 measured: LoRA's B grows from 0 by Adam's steps, each of which
   * carries the rounding of its gradient, and the CPU backend sums a product
   * of up to 32 rows on another path than a larger one (batch 2 against 4);
   * the losses stay within 1e-6, and the same order gives the same bits. */
  assert_same_weights (one, two, "adapter_model.safetensors", 8, 1e-4);
  assert_same_bits (accum, two, "adapter_model.safetensors");
  /* rank 0 alone wrote the log: each step once */
  g_autoptr (GArray) l1 = log_values (one, "grad_norm"), l2 = log_values (two, "grad_norm");
  CU_ASSERT_EQUAL (l1->len, l2->len);
  g_autofree char *report_path = path_in (two, "report.json");
  g_autofree char *report = cria_test_read_file (report_path);
  CU_ASSERT_PTR_NOT_NULL (report && strstr (report, "\"processes\" : 2"));

  /* one process refuses the checkpoint of two, in one line */
  const char *alone[] = { "train", "--resume", ckpt, NULL };
  g_autofree char *refused = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (alone, NULL, NULL, &refused), 1);
  CU_ASSERT_PTR_NOT_NULL (refused && strstr (refused, "the run had 2 process(es), now 1"));
  CU_ASSERT_TRUE (refused && strchr (refused, '\n') == refused + strlen (refused) - 1);
}

/* Full fine-tuning, padded, two micro-batches per step on each rank. */
static void
test_full (void)
{
  if (!have_mpi ()) {
    printf ("skipped: no mpirun or no cria-mpi.so ");
    return;
  }
  g_autofree char *one = path_in (tmp, "full-1"), *two = path_in (tmp, "full-2");
  const char *full[] = { "--adapter", "full", "--max-steps", "3", NULL };
  g_autoptr (GPtrArray) a1 = train_args (one, "4", "2", full);
  CU_ASSERT_EQUAL_FATAL (run1 (a1, NULL), 0);
  g_autoptr (GPtrArray) a2 = train_args (two, "2", "2", full);
  g_autofree char *err = NULL;
  int status = mpirun2 (a2, NULL, &err);
  if (status)
    printf ("\n%s\n", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  assert_same_curve (one, two, "loss");
  assert_same_weights (one, two, "model.safetensors", 10, 1e-6);
}

/* Rank 1 dies (SIGKILL at its 12th collective, in step 3 or so): mpirun
 * names it and stops rank 0; no hang; every checkpoint left is whole. */
static void
test_rank_dies (void)
{
  if (!have_mpi ()) {
    printf ("skipped: no mpirun or no cria-mpi.so ");
    return;
  }
  g_autofree char *out = path_in (tmp, "dies");
  const char *opts[] = { lora[0], lora[1], "--save-every", "1", NULL };
  g_autoptr (GPtrArray) args = train_args (out, "2", "1", opts);
  g_setenv ("CRIA_COMM_TEST_KILL", "1:12", TRUE);
  const char *env[] = { "CRIA_COMM_TEST_KILL", NULL };
  g_autofree char *err = NULL;
  gint64 t0 = g_get_monotonic_time ();
  int status = mpirun2 (args, env, &err);
  g_unsetenv ("CRIA_COMM_TEST_KILL");
  CU_ASSERT_NOT_EQUAL (status, 0);
  CU_ASSERT_NOT_EQUAL (status, 124); /* the time-out: a hang */
  CU_ASSERT_TRUE ((g_get_monotonic_time () - t0) / 1e6 < 30);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "rank 1"));
  if (!(err && strstr (err, "rank 1")))
    printf ("\n%s\n", err);
  g_autofree char *dir = path_in (out, "checkpoints");
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (d);
  guint whole = 0;
  for (const char *name; (name = g_dir_read_name (d));) {
    CU_ASSERT_TRUE (g_str_has_prefix (name, "checkpoint-")); /* no half-written one under a final name */
    g_autofree char *state = g_build_filename (dir, name, "trainer_state.json", NULL);
    g_autofree char *weights = g_build_filename (dir, name, "adapter_model.safetensors", NULL);
    g_autoptr (JsonParser) p = json_parser_new ();
    CU_ASSERT_TRUE (json_parser_load_from_file (p, state, NULL));
    g_autoptr (CriaSafetensors) st = cria_safetensors_open (weights, NULL);
    CU_ASSERT_PTR_NOT_NULL (st);
    whole++;
  }
  CU_ASSERT_TRUE (whole >= 1);
}

/* Without mpirun: --distributed with no mpi module, and a process that
 * mpirun started without --distributed, each refused in one line. */
static void
test_refusals (void)
{
  g_autofree char *out = path_in (tmp, "refused");
  const char *dist[] = { "--distributed", NULL };
  g_autoptr (GPtrArray) args = train_args (out, "2", "1", dist);
  g_autofree char *saved = g_strdup (g_getenv ("CRIA_MODULE_DIR"));
  g_setenv ("CRIA_MODULE_DIR", tmp, TRUE);
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (run1 (args, &err), 1);
  g_setenv ("CRIA_MODULE_DIR", saved, TRUE);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "--distributed: cria's mpi module is needed"));
  CU_ASSERT_TRUE (err && strchr (err, '\n') == err + strlen (err) - 1);

  g_autoptr (GPtrArray) plain = train_args (out, "2", "1", NULL);
  g_setenv ("OMPI_COMM_WORLD_SIZE", "2", TRUE);
  g_setenv ("OMPI_COMM_WORLD_RANK", "1", TRUE);
  g_autofree char *err2 = NULL;
  CU_ASSERT_EQUAL (run1 (plain, &err2), 1);
  g_unsetenv ("OMPI_COMM_WORLD_SIZE");
  g_unsetenv ("OMPI_COMM_WORLD_RANK");
  CU_ASSERT_PTR_NOT_NULL (err2 && strstr (err2, "process 1 of 2 that mpirun started: add --distributed"));
}

static void
register_suites (void)
{
  setup ();
  static const CriaTestCase cases[] = { { "refusals", test_refusals },
                                        { "lora, 2 ranks = 1 process", test_lora },
                                        { "full, 2 ranks = 1 process", test_full },
                                        { "a rank dies", test_rank_dies },
                                        { NULL } };
  cria_test_add_suite ("dist", cases);
}

int
main (void)
{
  if (CU_initialize_registry () != CUE_SUCCESS)
    return 99;
  register_suites ();
  CU_basic_set_mode (CU_BRM_VERBOSE);
  CU_basic_run_tests ();
  unsigned failed = CU_get_number_of_failures () + CU_get_number_of_suites_failed ();
  CU_cleanup_registry ();
  teardown ();
  return failed ? 1 : have_mpi () ? 0 : 77;
}
