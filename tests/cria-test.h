/* cria-test.h: what every CUnit suite of cria shares.
 *
 * Each test program registers its suites and ends with CRIA_TEST_MAIN, which
 * runs them, prints CUnit's run summary and exits non-zero on any failure.
 * Tests that need ../shared call cria_test_shared() and exit 77 (skip) when it
 * is absent. The environment comes from tests/Makefile.inc (TESTS_ENVIRONMENT). */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>
#include <cria/cria.h>

#define CRIA_TEST_SKIP 77

/* An environment variable set by the test harness; aborts when unset. */
static inline const char *
cria_test_env (const char *name)
{
  const char *v = g_getenv (name);
  if (!v) {
    fprintf (stderr, "%s is not set: run the tests with make check\n", name);
    exit (99);
  }
  return v;
}

/* The path of a file under ../shared, or exits 77 when it is not there. */
static inline char *
cria_test_shared (const char *relative)
{
  char *path = g_build_filename (cria_test_env ("CRIA_SHARED"), relative, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    printf ("SKIP: %s is absent\n", path);
    exit (CRIA_TEST_SKIP);
  }
  return path;
}

/* For a program whose other tests run anyway: the path under ../shared, or
 * NULL (the caller returns, counted as passed) when it is not there. */
static inline char *
cria_test_shared_optional (const char *relative)
{
  char *path = g_build_filename (cria_test_env ("CRIA_SHARED"), relative, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    printf ("(skipped: %s is absent) ", path);
    g_free (path);
    return NULL;
  }
  return path;
}

/* A fresh temporary directory, removed by cria_test_rmtree(). */
static inline char *
cria_test_tmpdir (void)
{
  char *dir = g_dir_make_tmp ("cria-test-XXXXXX", NULL);
  g_assert (dir);
  return dir;
}

void cria_test_rmtree (const char *path);
/* A registry holding the build tree's plugins (CRIA_TEST_PLUGINS). */
CriaRegistry *cria_test_registry (void);
/* Runs the build tree's cria with arguments; returns its exit status and
 * captures stdout and stderr (each may be NULL). `stdin_text` may be NULL. */
int cria_test_run_cria (const char *const *args, const char *stdin_text, char **out, char **err);
/* A GSpawnChildSetupFunc for servers a test starts: the child gets SIGTERM
 * when the test process dies, so a crashing test leaves no server running. */
void cria_test_die_with_parent (gpointer data);
/* Starts a server verb of cria (argv[0] the binary, argv[1] the verb) and
 * reads the first line it prints, "cria VERB: listening on
 * http://127.0.0.1:PORT/"; returns that URL, the process in *proc.
 * `launcher` must pipe stdout; NULL gives one that only does, with
 * cria_test_die_with_parent. */
char *cria_test_start_listener (GSubprocessLauncher *launcher, const char *const *argv, GSubprocess **proc);
/* SIGTERM to a server and the wait for it: its exit status, or -1 where it
 * did not exit (a signal ended it). */
int cria_test_stop_listener (GSubprocess *proc);
/* cria_test_run_cria on the NULL-terminated lists of arguments given one
 * after the other (the last list may be NULL, then the end); stderr in
 * *err, or printed when the run fails and err is NULL. */
int cria_test_run_cria_lists (char **err, const char *const *list, ...) G_GNUC_NULL_TERMINATED;
/* Writes a file, asserting success. */
void cria_test_write_file (const char *path, const char *contents);
/* The contents of a file (NULL when missing). */
char *cria_test_read_file (const char *path);
/* TEXT split at each newline, as g_strsplit (TEXT, "\n", -1) does, in linear
 * time under ASan too. */
GStrv cria_test_lines (const char *text);
/* `tmp`/model: tests/models/NAME (config, generation config, weights) with
 * a byte-level BPE tokenizer.json without merges (id b = byte b); transfer full. */
char *cria_test_tiny_model (const char *tmp, const char *name);
/* `dir`/short.json: a terse prompt format ("{instruction} {input}=" then the
 * output), so that records fit the tiny models' short max-length; transfer full. */
char *cria_test_short_format (const char *dir);
/* `dir`/train.jsonl: n records adding a = 7i mod 50 and b = (b_mul i) mod
 * b_mod, the training data of the tests that train the tiny models; transfer
 * full. */
char *cria_test_sums_data (const char *dir, int n, int b_mul, int b_mod);
/* max |a - b| over max |b|: how logit parity with a reference is measured. */
double cria_test_rel_diff (const float *a, const float *b, gint64 n);
/* The index of the largest of x[0..n) (the first of equals): greedy decoding. */
gint32 cria_test_argmax (const float *x, gint64 n);
/* Differentiates g at loss, plans it on backend (stats may be NULL) and
 * runs forward and backward; a failure prints its error and fails the test. */
void cria_test_run_graph (CriaGraph *g, CriaNode *loss, CriaBackend *backend, CriaPlanStats *stats);

/* Forward and backward on `backend` of test-model-grads's golden batch
 * (tests/train/grads-NAME.safetensors, 2 x 8 tokens) through tests/models/NAME
 * in f32 with the adapter "lora r=4 alpha=8 SPEC_TAIL", A and B from the
 * golden file so that both get gradients: how backends are compared on a
 * training step. ce: the loss sum and label count; grads: each adapter
 * param's gradient summed over its nodes, host f32 tensors appended.
 * Gradients must live in the backend's memory. */
gboolean cria_test_lora_step (CriaRegistry *registry, const char *name, const char *spec_tail, CriaBackend *backend,
                              float ce[2], GPtrArray *grads, GError **error);
/* The same with the whole adapter spec given ("qlora r=4 alpha=8 ..."; A
 * and B named as lora's). */
gboolean cria_test_adapter_step (CriaRegistry *registry, const char *name, const char *spec, CriaBackend *backend,
                                 float ce[2], GPtrArray *grads, GError **error);

#define CRIA_TEST_MAIN(register_suites)                                                                                \
  int main (void)                                                                                                      \
  {                                                                                                                    \
    if (CU_initialize_registry () != CUE_SUCCESS)                                                                      \
      return 99;                                                                                                       \
    register_suites ();                                                                                                \
    CU_basic_set_mode (CU_BRM_VERBOSE);                                                                                \
    CU_basic_run_tests ();                                                                                             \
    unsigned failed = CU_get_number_of_failures () + CU_get_number_of_suites_failed ();                                \
    unsigned ran = CU_get_number_of_tests_run ();                                                                      \
    CU_cleanup_registry ();                                                                                            \
    return failed ? 1 : ran ? 0 : 99;                                                                                  \
  }

/* Adds a suite of tests given as { "name", func } pairs ending with { NULL }. */
typedef struct {
  const char *name;
  void (*func) (void);
} CriaTestCase;

static inline void
cria_test_add_suite (const char *name, const CriaTestCase *cases)
{
  CU_pSuite suite = CU_add_suite (name, NULL, NULL);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}
