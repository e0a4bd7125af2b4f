/* test-linkage: the cria program links none of libsoup, cairo and
 * libarchive, and a small `cria data` run loads none of them: each is linked
 * only into the cria module that needs it (core/plugin/cria-module-private.h),
 * so that start-up does not pay the dynamic linker for them and a
 * distribution can package each module with what it pulls in.
 *
 * ldd resolves the program's DT_NEEDED entries recursively, through the build
 * tree's libcria; the same ldd run over the modules is the control that each
 * of them is found where it belongs. */
#include "config.h"

#include <gio/gio.h>

#include "cria-test.h"

/* What must stay out of the cria program: a pattern per library. */
static const char *const heavy[] = { "libsoup-", "libcairo", "libarchive", NULL };

/* The ELF file behind `path`: itself, or the program a libtool wrapper runs
 * (.libs/NAME beside it), as `libtool --mode=execute` finds it. */
static char *
real_program (const char *path)
{
  g_autofree char *head = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;
  g_file_get_contents (path, &head, &len, &error);
  g_assert_no_error (error);
  if (len >= 4 && memcmp (head, "\177ELF", 4) == 0)
    return g_strdup (path);
  g_assert_nonnull (strstr (head, "libtool"));
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  return g_build_filename (dir, ".libs", base, NULL);
}

static char *
libcria_dir (void)
{
  return g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "core", ".libs", NULL);
}

/* ldd's listing of `file`, the build tree's libcria first on the search path. */
static char *
ldd (const char *file)
{
  g_autoptr (GSubprocessLauncher)
      l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_autofree char *libs = libcria_dir ();
  const char *old = g_getenv ("LD_LIBRARY_PATH");
  g_autofree char *path = old && *old ? g_strjoin (":", libs, old, NULL) : g_strdup (libs);
  g_subprocess_launcher_setenv (l, "LD_LIBRARY_PATH", path, TRUE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_launcher_spawn (l, &error, "ldd", file, NULL);
  g_assert_no_error (error);
  char *out = NULL;
  g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_successful (p))
    printf ("\nldd %s: %s\n", file, out);
  CU_ASSERT_TRUE (g_subprocess_get_successful (p));
  return out;
}

static gboolean
lists (const char *listing, const char *pattern)
{
  return strstr (listing, pattern) != NULL;
}

static void
test_program_links_none (void)
{
  g_autofree char *program = real_program (cria_test_env ("CRIA_BIN"));
  g_autofree char *out = ldd (program);
  /* libcria itself came from the build tree, so its own needs were listed too. */
  g_autofree char *libs = libcria_dir ();
  g_autofree char *libcria = g_strdup_printf ("libcria-1.0.so.0 => %s/libcria-1.0.so.0", libs);
  if (!lists (out, libcria))
    printf ("\nldd %s (no %s):\n%s", program, libcria, out);
  CU_ASSERT_TRUE (lists (out, libcria));
  CU_ASSERT_FALSE (lists (out, "not found"));
  CU_ASSERT_TRUE (lists (out, "libglib-2.0"));
  for (const char *const *h = heavy; *h; h++) {
    if (lists (out, *h))
      printf ("\n%s links %s*:\n%s", program, *h, out);
    CU_ASSERT_FALSE (lists (out, *h));
  }
}

/* Each module links its library: what the program leaves out is there. */
static void
test_modules_link_theirs (void)
{
  static const struct {
    const char *module, *library;
  } cases[] = {
    { "cria-hub.so", "libsoup-3.0" },
    { "cria-serve.so", "libsoup-3.0" },
    { "cria-plot.so", "libcairo" },
    { "cria-archive.so", "libarchive" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *file = g_build_filename (cria_test_env ("CRIA_MODULE_DIR"), cases[i].module, NULL);
    CU_ASSERT_TRUE_FATAL (g_file_test (file, G_FILE_TEST_IS_REGULAR));
    g_autofree char *out = ldd (file);
    if (!lists (out, cases[i].library))
      printf ("\nldd %s lacks %s:\n%s", file, cases[i].library, out);
    CU_ASSERT_TRUE (lists (out, cases[i].library));
    CU_ASSERT_FALSE (lists (out, "not found"));
  }
}

/* The objects a run of `cria data` loads, by the dynamic loader's own
 * account (LD_DEBUG=files) of the cria process alone (the plugin scanner is
 * another process). */
static char *
objects_loaded (const char *in, const char *out_path)
{
  g_autofree char *pipeline = g_strdup_printf ("file location=%s ! head n=1 ! jsonl location=%s", in, out_path);
  const char *argv[] = { cria_test_env ("CRIA_BIN"), "data", "-q", pipeline, NULL };
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_setenv (l, "LD_DEBUG", "files", TRUE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_launcher_spawnv (l, argv, &error);
  g_assert_no_error (error);
  g_autofree char *pid = g_strdup_printf ("%s:", g_subprocess_get_identifier (p));
  g_autofree char *err = NULL;
  g_subprocess_communicate_utf8 (p, NULL, NULL, NULL, &err, &error);
  g_assert_no_error (error);
  CU_ASSERT_TRUE (g_subprocess_get_successful (p));
  /* "  PID:\tfile=libfoo.so.1 [0];  generating link map" per object. */
  g_autoptr (GString) files = g_string_new (NULL);
  g_auto (GStrv) lines = g_strsplit (err, "\n", -1);
  for (char **line = lines; *line; line++) {
    const char *s = *line + strspn (*line, " ");
    if (g_str_has_prefix (s, pid) && strstr (s, "generating link map")) {
      const char *f = strstr (s, "file=");
      if (f)
        g_string_append_printf (files, "%.*s\n", (int) strcspn (f + 5, " "), f + 5);
    }
  }
  return g_string_free (g_steal_pointer (&files), FALSE);
}

static void
test_data_run_loads_none (void)
{
  g_autofree char *tmp = cria_test_tmpdir ();
  g_autofree char *in = g_build_filename (tmp, "in.jsonl", NULL);
  g_autofree char *out = g_build_filename (tmp, "out.jsonl", NULL);
  cria_test_write_file (in, "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n");
  /* The first run may write the registry's index, loading every plugin to
   * do so; later runs read it and load only the plugins they use. */
  g_free (objects_loaded (in, out));
  g_autofree char *loaded = objects_loaded (in, out);
  g_autofree char *written = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (written, "{\"instruction\":\"a\",\"output\":\"b\"}\n");
  /* The control: the loader's account names libcria and the plugins used. */
  CU_ASSERT_TRUE (lists (loaded, "libcria-1.0.so.0"));
  CU_ASSERT_TRUE (lists (loaded, "cria-jsonl.so"));
  for (const char *const *h = heavy; *h; h++) {
    if (lists (loaded, *h))
      printf ("\ncria data loaded %s*:\n%s", *h, loaded);
    CU_ASSERT_FALSE (lists (loaded, *h));
  }
  cria_test_rmtree (tmp);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "the cria program links no libsoup, cairo, libarchive", test_program_links_none },
    { "each module links its library", test_modules_link_theirs },
    { "cria data loads none of them", test_data_run_loads_none },
    { NULL },
  };
  cria_test_add_suite ("linkage", cases);
}

CRIA_TEST_MAIN (register_suites)
