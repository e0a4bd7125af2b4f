/* test-sdk: installs cria into a scratch DESTDIR, builds the example plugin in
 * sdk/example against that installed SDK with pkg-config, and runs it. */
#include "cria-test.h"

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

static int
sh (const char *command, char **out)
{
  g_autofree char *o = NULL, *e = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &o, &e, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    printf ("\n$ %s\n%s%s", command, o, e);
  if (out)
    *out = g_steal_pointer (&o);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 1;
}

static void
test_example_plugin (void)
{
  g_autofree char *dest = cria_test_tmpdir ();
  g_autofree char *install = g_strdup_printf ("%s -s -C '%s' install DESTDIR='%s' >/dev/null", cria_test_env ("MAKE"),
                                              cria_test_env ("CRIA_BUILDDIR"), dest);
  CU_ASSERT_EQUAL_FATAL (sh (install, NULL), 0);

  g_autofree char *pc = find_file (dest, "cria-1.0.pc");
  g_autofree char *header = find_file (dest, "cria-plugin.h");
  g_autofree char *bin = find_file (dest, "cria");
  g_autofree char *lib = find_file (dest, "libcria-1.0.so");
  g_autofree char *file_plugin = find_file (dest, "cria-file.so");
  CU_ASSERT_PTR_NOT_NULL_FATAL (pc);
  CU_ASSERT_PTR_NOT_NULL_FATAL (header);
  CU_ASSERT_PTR_NOT_NULL_FATAL (bin);
  CU_ASSERT_PTR_NOT_NULL_FATAL (lib);
  CU_ASSERT_PTR_NOT_NULL_FATAL (file_plugin);
  /* Headers under include/cria-1.0/cria, plugins under lib/cria-1.0/plugins, no .la there. */
  CU_ASSERT_PTR_NOT_NULL (strstr (header, "/include/cria-1.0/cria/"));
  CU_ASSERT_PTR_NOT_NULL (strstr (file_plugin, "/cria-1.0/plugins/cria-file.so"));
  g_autofree char *plugins_dir = g_path_get_dirname (file_plugin);
  g_autofree char *la = g_build_filename (plugins_dir, "cria-file.la", NULL);
  CU_ASSERT_FALSE (g_file_test (la, G_FILE_TEST_EXISTS));

  /* Build the example in a copy of sdk/example, as a third party would. */
  g_autofree char *work = g_build_filename (dest, "example", NULL);
  g_autofree char *pcdir = g_path_get_dirname (pc);
  g_autofree char *libdir = g_path_get_dirname (lib);
  g_autofree char *build = g_strdup_printf (
      "cp -R '%s/sdk/example' '%s' && chmod -R u+w '%s' && cd '%s' && "
      "mkdir pc && sed \"s|^prefix=|prefix=%s|\" '%s/cria-1.0.pc' > pc/cria-1.0.pc && "
      "PKG_CONFIG_PATH=$PWD/pc %s -s >/dev/null && "
      "test \"$(PKG_CONFIG_PATH='%s' pkg-config --variable=pluginsdir cria-1.0)\" = \"$(dirname '%s' | sed "
      "'s|^%s||')\"",
      cria_test_env ("CRIA_SRCDIR"), work, work, work, dest, pcdir, cria_test_env ("MAKE"), pcdir, file_plugin, dest);
  CU_ASSERT_EQUAL_FATAL (sh (build, NULL), 0);

  /* Run it through the installed cria, found through CRIA_PLUGIN_PATH. */
  g_autofree char *in = g_build_filename (dest, "in.jsonl", NULL);
  cria_test_write_file (in, "{\"instruction\":\"What is 2+2?\",\"output\":\"4\"}\n");
  g_autofree char *out = NULL;
  g_autofree char *run = g_strdup_printf ("LD_LIBRARY_PATH='%s' CRIA_PLUGIN_PATH='%s:%s' '%s' data -q "
                                          "'file location=%s ! example-prefix text=\"Q: \" ! jsonl location=-'",
                                          libdir, plugins_dir, work, bin, in);
  CU_ASSERT_EQUAL (sh (run, &out), 0);
  CU_ASSERT_STRING_EQUAL (out, "{\"instruction\":\"Q: What is 2+2?\",\"output\":\"4\"}\n");
  g_clear_pointer (&out, g_free);
  out = NULL;
  g_autofree char *inspect = g_strdup_printf (
      "LD_LIBRARY_PATH='%s' CRIA_PLUGIN_PATH='%s:%s' '%s' inspect example-prefix", libdir, plugins_dir, work, bin);
  CU_ASSERT_EQUAL (sh (inspect, &out), 0);
  CU_ASSERT_PTR_NOT_NULL (out && strstr (out, "License:     MIT"));
  cria_test_rmtree (dest);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "an out-of-tree plugin builds against the installed SDK and runs", test_example_plugin },
    { NULL },
  };
  cria_test_add_suite ("sdk", cases);
}

CRIA_TEST_MAIN (register_suites)
