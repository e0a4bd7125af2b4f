/* test-cuda: the cuda backend plugin where ./configure built it (skipped,
 * 77, elsewhere). On a machine without a GPU, as CI's: the plugin loads,
 * `cria inspect cuda` says that no device was found and why (the CUDA
 * runtime's message), and `--backend cuda` fails with that one line. On any
 * machine: neither the plugin nor libcria nor the cria program needs a CUDA
 * library to load (the runtime is linked into the plugin statically,
 * cuBLASLt opened when a backend is created), so a registry scan never maps
 * them. Kernels are checked on a GPU by tests/cuda/device-check.sh. */
#include <string.h>

#include "cria-test.h"

static char *plugin;

static char *
ldd (const char *file)
{
  g_autoptr (GSubprocessLauncher)
      l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_autofree char *libs = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "core", ".libs", NULL);
  g_subprocess_launcher_setenv (l, "LD_LIBRARY_PATH", libs, TRUE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_launcher_spawn (l, &error, "ldd", file, NULL);
  g_assert_no_error (error);
  char *out = NULL;
  g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  return out;
}

static void
test_no_cuda_linked (void)
{
  g_autofree char *bin = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), ".libs", "cria", NULL);
  g_autofree char *lib = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "core", ".libs", "libcria-1.0.so", NULL);
  const char *files[] = { plugin, g_file_test (bin, G_FILE_TEST_EXISTS) ? bin : cria_test_env ("CRIA_BIN"), lib };
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *out = ldd (files[i]);
    gboolean clean = out && !strstr (out, "libcudart") && !strstr (out, "libcublas") && !strstr (out, "libcuda.");
    if (!clean)
      printf ("\nldd %s:\n%s", files[i], out);
    CU_ASSERT_TRUE (clean);
    CU_ASSERT_TRUE (out && !strstr (out, "not found"));
  }
}

/* Whether `cria inspect cuda` found a device; the one-line reason when not. */
static gboolean
inspect (char **reason)
{
  const char *a[] = { "inspect", "cuda", NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = cria_test_run_cria (a, NULL, &out, &err);
  if (status != 0)
    printf ("\ncria inspect cuda (%d): %s%s\n", status, out, err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL (strstr (out, "backend cuda:"));
  const char *dev = strstr (out, "  Device:      ");
  CU_ASSERT_PTR_NOT_NULL_FATAL (dev);
  dev += strlen ("  Device:      ");
  *reason = g_strndup (dev, strcspn (dev, "\n"));
  return g_str_has_prefix (*reason, "cuda: device ");
}

static void
test_inspect (void)
{
  g_autofree char *reason = NULL;
  if (inspect (&reason)) {
    printf ("\n(a GPU is here: %s)\n", reason);
    return;
  }
  /* "unavailable: cuda: no device found (CUDA driver version is insufficient ...)" */
  if (!g_str_has_prefix (reason, "unavailable: cuda: no device found (") || !g_str_has_suffix (reason, ")"))
    printf ("\nDevice line: %s\n", reason);
  CU_ASSERT_TRUE (g_str_has_prefix (reason, "unavailable: cuda: no device found (") && g_str_has_suffix (reason, ")") &&
                  strlen (reason) > strlen ("unavailable: cuda: no device found ()"));
}

static void
test_backend_refused (void)
{
  g_autofree char *reason = NULL;
  if (inspect (&reason))
    return; /* device-check.sh runs models there */
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *out_path = g_build_filename (tmp, "logits.safetensors", NULL);
  g_autofree char *model = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-llama", NULL);
  const char *a[] = { "logits", "-m", model, "--ids", "1,2,3", "--out", out_path, "--backend", "cuda", NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = cria_test_run_cria (a, NULL, &out, &err);
  CU_ASSERT_EQUAL (status, 1);
  /* one line, the runtime's reason in it, and no file left behind */
  const char *why = reason + strlen ("unavailable: ");
  if (!err || !strstr (err, why) || strchr (err, '\n') != err + strlen (err) - 1)
    printf ("\nstderr: %s\n", err);
  CU_ASSERT_TRUE (err && strstr (err, why) && strchr (err, '\n') == err + strlen (err) - 1);
  CU_ASSERT_FALSE (g_file_test (out_path, G_FILE_TEST_EXISTS));
  cria_test_rmtree (tmp);
}

static void
register_suites (void)
{
  plugin = g_build_filename (cria_test_env ("CRIA_TEST_PLUGINS"), "cria-cuda.so", NULL);
  if (!g_file_test (plugin, G_FILE_TEST_EXISTS)) {
    printf ("SKIP: %s was not built (./configure found no CUDA toolkit, or --without-cuda)\n", plugin);
    exit (CRIA_TEST_SKIP);
  }
  static const CriaTestCase cases[] = {
    { "no CUDA library linked by the plugin, libcria or cria", test_no_cuda_linked },
    { "cria inspect cuda says whether a device is here", test_inspect },
    { "--backend cuda without a device: one line", test_backend_refused },
    { NULL },
  };
  cria_test_add_suite ("cuda plugin", cases);
}

CRIA_TEST_MAIN (register_suites)
