/* test-registry-lazy: cria_registry_scan_lazily gives what a full scan gives,
 * loading only the plugins asked for, and a stale or broken index costs only
 * a full scan. Its own program: loaded modules stay resident, so a process
 * that has scanned fully could not tell a lazy load from a full one. */
#include <sys/wait.h>
#include <unistd.h>

#include <utime.h>

#include <glib/gstdio.h>

#include "cria-test.h"

/* Whether the process has mapped a file whose name ends with `base`. */
static gboolean
mapped (const char *base)
{
  g_autofree char *maps = NULL;
  if (!g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL))
    return FALSE;
  g_autofree char *needle = g_strdup_printf ("/%s\n", base);
  return strstr (maps, needle) != NULL;
}

static CriaRegistry *
lazy (const char *cache, const char *extra_dir)
{
  CriaRegistry *reg = cria_registry_new ();
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  if (extra_dir)
    cria_registry_add_path (reg, extra_dir);
  cria_registry_scan_lazily (reg, cache);
  return reg;
}

/* Every provider of a registry, in order: "kind name file". */
static char *
listing (CriaRegistry *reg)
{
  GString *s = g_string_new (NULL);
  GPtrArray *list = cria_registry_list (reg);
  for (guint i = 0; i < list->len; i++) {
    const CriaProvider *p = g_ptr_array_index (list, i);
    g_string_append_printf (s, "%s %s %s\n", cria_kind_name (cria_provider_get_kind (p)), cria_provider_get_name (p),
                            cria_plugin_get_filename (cria_provider_get_plugin (p)));
  }
  GPtrArray *rejected = cria_registry_rejected (reg);
  for (guint i = 0; i < rejected->len; i++) {
    CriaRejectedPlugin *r = g_ptr_array_index (rejected, i);
    g_string_append_printf (s, "rejected %s: %s\n", r->path, r->reason);
  }
  return g_string_free (s, FALSE);
}

/* First in the program: no plugin is mapped yet. The index is written by a
 * child, so that this process loads only what it looks up. */
static void
test_lazy_loads_what_is_asked (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *cache = g_build_filename (dir, "cache", "registry.ini", NULL);
  CU_ASSERT_FALSE (mapped ("cria-basic.so"));
  pid_t pid = fork ();
  if (pid == 0) {
    /* No index yet: a full scan, which writes one. */
    CriaRegistry *first = lazy (cache, NULL);
    gboolean ok = cria_registry_lookup (first, CRIA_KIND_SINK, "jsonl") && g_file_test (cache, G_FILE_TEST_EXISTS);
    _exit (ok ? 0 : 1);
  }
  int status = 0;
  CU_ASSERT_EQUAL (waitpid (pid, &status, 0), pid);
  CU_ASSERT_TRUE (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_autoptr (CriaRegistry) reg = lazy (cache, NULL);
  const CriaProvider *head = cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head");
  CU_ASSERT_PTR_NOT_NULL_FATAL (head);
  g_autofree char *base = g_path_get_basename (cria_plugin_get_filename (cria_provider_get_plugin (head)));
  CU_ASSERT_STRING_EQUAL (base, "cria-basic.so");
  CU_ASSERT_TRUE (mapped ("cria-basic.so"));
  CU_ASSERT_FALSE (mapped ("cria-tokenizers.so"));
  cria_test_rmtree (dir);
}

static void
test_same_as_full_scan (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *cache = g_build_filename (dir, "registry.ini", NULL);
  const char *bad = cria_test_env ("CRIA_TEST_BAD_PLUGINS");
  g_autoptr (CriaRegistry) full = cria_registry_new ();
  cria_registry_add_path (full, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_add_path (full, bad);
  cria_registry_scan (full);
  g_autofree char *want = listing (full);
  g_autoptr (CriaRegistry) writer = lazy (cache, bad);
  g_autofree char *written = listing (writer);
  CU_ASSERT_STRING_EQUAL (written, want);
  /* From the index: lookups first (the duplicate `file` of a broken plugin
   * is not the one found), then everything in a full scan's order. */
  g_autoptr (CriaRegistry) reader = lazy (cache, bad);
  const CriaProvider *file = cria_registry_lookup (reader, CRIA_KIND_SOURCE, "file");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (file))->name, "file");
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup_stage (reader, "extra"));
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reader, CRIA_KIND_METRIC, "extra"));
  CU_ASSERT_PTR_NULL (cria_registry_lookup (reader, CRIA_KIND_TRANSFORM, "half-registered"));
  g_autoptr (GError) e = NULL, fe = NULL;
  CU_ASSERT_PTR_NULL (cria_registry_require (reader, CRIA_KIND_TRANSFORM, "nope", &e));
  CU_ASSERT_PTR_NULL (cria_registry_require (full, CRIA_KIND_TRANSFORM, "nope", &fe));
  CU_ASSERT_TRUE (e && fe && !strcmp (e->message, fe->message));
  g_autofree char *read = listing (reader);
  CU_ASSERT_STRING_EQUAL (read, want);
  /* The provider found before everything was loaded is still the one listed. */
  CU_ASSERT_PTR_EQUAL (cria_registry_lookup (reader, CRIA_KIND_SOURCE, "file"), file);
  cria_test_rmtree (dir);
}

static void
test_stale_or_broken_index (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *plugins = g_build_filename (dir, "plugins", NULL);
  g_mkdir (plugins, 0755);
  g_autofree char *cache = g_build_filename (dir, "registry.ini", NULL);
  /* A plugin directory of one plugin, which is then touched, then replaced
   * by another (under another name: this process keeps the first mapped). */
  g_autofree char *basic = g_build_filename (cria_test_env ("CRIA_TEST_PLUGINS"), "cria-basic.so", NULL);
  g_autofree char *jsonl = g_build_filename (cria_test_env ("CRIA_TEST_PLUGINS"), "cria-jsonl.so", NULL);
  /* The file name says which descriptor symbol to read. */
  g_autofree char *one = g_build_filename (plugins, "cria-basic.so", NULL);
  g_autofree char *two = g_build_filename (plugins, "cria-jsonl.so", NULL);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  CU_ASSERT_TRUE_FATAL (g_file_get_contents (basic, &bytes, &len, NULL));
  CU_ASSERT_TRUE_FATAL (g_file_set_contents (one, bytes, (gssize) len, NULL));
  CriaRegistry *reg = cria_registry_new ();
  cria_registry_add_path (reg, plugins);
  cria_registry_scan_lazily (reg, cache);
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head"));
  cria_registry_free (reg);
  g_autofree char *before = cria_test_read_file (cache);
  struct utimbuf times = { 1000000000, 1000000000 };
  CU_ASSERT_EQUAL (g_utime (one, &times), 0);
  reg = cria_registry_new ();
  cria_registry_add_path (reg, plugins);
  cria_registry_scan_lazily (reg, cache);
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head"));
  cria_registry_free (reg);
  g_autofree char *after = cria_test_read_file (cache);
  CU_ASSERT_STRING_NOT_EQUAL (before, after); /* a new stamp */
  g_clear_pointer (&bytes, g_free);
  CU_ASSERT_TRUE_FATAL (g_file_get_contents (jsonl, &bytes, &len, NULL));
  g_unlink (one);
  CU_ASSERT_TRUE_FATAL (g_file_set_contents (two, bytes, (gssize) len, NULL));
  reg = cria_registry_new ();
  cria_registry_add_path (reg, plugins);
  cria_registry_scan_lazily (reg, cache);
  CU_ASSERT_PTR_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head"));
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SINK, "jsonl"));
  cria_registry_free (reg);
  /* An index that is not one, or one that names files out of range. */
  static const char *const junk[] = {
    "not a key file \x01\xff",
    "[registry]\nstamp=x\n",
    "[registry]\nfiles=\nfirst-volatile=-3\n[providers]\nstage/jsonl=99\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (junk); i++) {
    cria_test_write_file (cache, junk[i]);
    reg = cria_registry_new ();
    cria_registry_add_path (reg, plugins);
    cria_registry_scan_lazily (reg, cache);
    CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SINK, "jsonl"));
    CU_ASSERT_EQUAL (cria_registry_plugins (reg)->len, 1);
    cria_registry_free (reg);
  }
  /* An index that cannot be written only means no index. */
  g_autofree char *blocked = g_build_filename (dir, "registry.ini", "under-a-file.ini", NULL);
  reg = cria_registry_new ();
  cria_registry_add_path (reg, plugins);
  cria_registry_scan_lazily (reg, blocked);
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SINK, "jsonl"));
  cria_registry_free (reg);
  cria_test_rmtree (dir);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "a lazy registry loads what is asked for", test_lazy_loads_what_is_asked },
    { "lazy lookups and listings are a full scan's", test_same_as_full_scan },
    { "a stale or broken index means a full scan", test_stale_or_broken_index },
    { NULL },
  };
  cria_test_add_suite ("registry-lazy", cases);
}

CRIA_TEST_MAIN (register_suites)
