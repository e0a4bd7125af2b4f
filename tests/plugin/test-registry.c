/* test-registry: plugin loading, with real broken .so files built by the suite. */
#include <glib/gstdio.h>

#include "cria-test.h"

static CriaRegistry *
load_all (void)
{
  CriaRegistry *reg = cria_registry_new ();
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_BAD_PLUGINS"));
  cria_registry_scan (reg);
  return reg;
}

static const char *
reason_for (CriaRegistry *reg, const char *basename)
{
  GPtrArray *rejected = cria_registry_rejected (reg);
  for (guint i = 0; i < rejected->len; i++) {
    CriaRejectedPlugin *r = g_ptr_array_index (rejected, i);
    g_autofree char *base = g_path_get_basename (r->path);
    if (strcmp (base, basename) == 0)
      return r->reason;
  }
  return NULL;
}

static void
expect_reason (CriaRegistry *reg, const char *file, const char *fragment)
{
  const char *reason = reason_for (reg, file);
  if (!reason || !strstr (reason, fragment))
    printf ("\n%s: reason '%s' lacks '%s'\n", file, reason ? reason : "(not rejected)", fragment);
  CU_ASSERT_PTR_NOT_NULL (reason && strstr (reason, fragment));
  CU_ASSERT_PTR_NULL (reason ? strchr (reason, '\n') : NULL);
}

static void
test_broken_plugins_rejected (void)
{
  g_autoptr (CriaRegistry) reg = load_all ();
  expect_reason (reg, "bad-abi-major.so", "major differs");
  expect_reason (reg, "bad-abi-minor.so", "newer than this cria");
  expect_reason (reg, "bad-no-license.so", "descriptor field 'license' is missing");
  expect_reason (reg, "bad-init.so", "init failed: its model files are missing");
  expect_reason (reg, "bad-no-descriptor.so", "not a cria plugin (no cria_plugin_descriptor_bad_no_descriptor symbol)");
  expect_reason (reg, "bad-short-vtable.so", "transform 'short-vtable': its vtable is 0 bytes");
  /* Crashes and aborts happen in the plugin scanner, never here. */
  expect_reason (reg, "bad-crash-ctor.so", "crashed while it was opened (in a constructor) in the plugin scanner");
  expect_reason (reg, "bad-crash-init.so", "crashed in its init in the plugin scanner: signal 11");
  expect_reason (reg, "bad-hang.so", "hung in its init in the plugin scanner: no progress for 5 s");
  expect_reason (reg, "bad-abort.so", "crashed in its init in the plugin scanner: signal 6");
  CU_ASSERT_EQUAL (cria_registry_rejected (reg)->len, 10);
  /* The good ones still load, and nothing of a rejected plugin is kept. */
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SOURCE, "file"));
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head"));
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SINK, "jsonl"));
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "extra"));
  CU_ASSERT_PTR_NULL (cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "half-registered"));
  const CriaProvider *file = cria_registry_lookup (reg, CRIA_KIND_SOURCE, "file");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (file))->name, "file");
}

static guint
count_named (CriaRegistry *reg, CriaKind kind, const char *name)
{
  g_autoptr (GPtrArray) all = cria_registry_list_kind (reg, kind);
  guint n = 0;
  for (guint i = 0; i < all->len; i++)
    n += strcmp (cria_provider_get_name (all->pdata[i]), name) == 0;
  return n;
}

static void
test_duplicates_by_rank (void)
{
  /* A duplicate name is no longer a rejection: both providers are kept and
   * the rank chooses, whatever the search order. */
  g_autoptr (CriaRegistry) reg = load_all ();
  const CriaProvider *file = cria_registry_lookup (reg, CRIA_KIND_SOURCE, "file");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (file))->name, "file");
  CU_ASSERT_EQUAL (cria_provider_get_rank (file), CRIA_RANK_PRIMARY);
  CU_ASSERT_EQUAL (count_named (reg, CRIA_KIND_SOURCE, "file"), 2);
  const CriaProvider *head = cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "head");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (head))->name, "dup_higher");
  CU_ASSERT_EQUAL (count_named (reg, CRIA_KIND_TRANSFORM, "head"), 2);
  /* The ranked list puts the higher rank first. */
  g_autoptr (GPtrArray) sources = cria_registry_list_kind (reg, CRIA_KIND_SOURCE);
  for (guint i = 1; i < sources->len; i++)
    CU_ASSERT_TRUE (cria_provider_get_rank (sources->pdata[i - 1]) >= cria_provider_get_rank (sources->pdata[i]));

  /* Searched the other way round, the same providers win. */
  g_autoptr (CriaRegistry) rev = cria_registry_new ();
  cria_registry_add_path (rev, cria_test_env ("CRIA_TEST_BAD_PLUGINS"));
  cria_registry_add_path (rev, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_scan (rev);
  file = cria_registry_lookup (rev, CRIA_KIND_SOURCE, "file");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (file))->name, "file");
  head = cria_registry_lookup (rev, CRIA_KIND_TRANSFORM, "head");
  CU_ASSERT_STRING_EQUAL (cria_plugin_get_descriptor (cria_provider_get_plugin (head))->name, "dup_higher");
}

static void
test_truncated_elf (void)
{
  /* The dynamic loader itself dies on some truncated files (SIGBUS): only
   * the scanner may open them. */
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *good = g_build_filename (cria_test_env ("CRIA_TEST_BAD_PLUGINS"), "good-extra.so", NULL);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  CU_ASSERT_TRUE_FATAL (g_file_get_contents (good, &bytes, &len, NULL) && len > 4096);
  g_autofree char *cut = g_build_filename (dir, "truncated.so", NULL);
  CU_ASSERT_TRUE_FATAL (g_file_set_contents (cut, bytes, 3000, NULL));
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  cria_registry_add_path (reg, dir);
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_scan (reg);
  const char *reason = reason_for (reg, "truncated.so");
  CU_ASSERT_PTR_NOT_NULL (reason && (strstr (reason, "in the plugin scanner") || strstr (reason, "cannot be loaded")));
  CU_ASSERT_EQUAL (cria_registry_rejected (reg)->len, 1);
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SOURCE, "file"));
  cria_test_rmtree (dir);
}

static void
test_not_a_shared_object (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *junk = g_build_filename (dir, "junk.so", NULL);
  cria_test_write_file (junk, "this is not an ELF file\n");
  g_autofree char *empty = g_build_filename (dir, "empty.so", NULL);
  cria_test_write_file (empty, "");
  g_autofree char *ignored = g_build_filename (dir, "readme.txt", NULL);
  cria_test_write_file (ignored, "not a plugin name");
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  cria_registry_add_path (reg, dir);
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_scan (reg);
  expect_reason (reg, "junk.so", "cannot be loaded");
  expect_reason (reg, "empty.so", "cannot be loaded");
  CU_ASSERT_EQUAL (cria_registry_rejected (reg)->len, 2);
  CU_ASSERT_PTR_NOT_NULL (cria_registry_lookup (reg, CRIA_KIND_SOURCE, "file"));
  cria_test_rmtree (dir);
}

static void
test_search_order (void)
{
  /* The same directory twice, or a plugin reached twice, is loaded once. */
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  g_setenv ("CRIA_PLUGIN_PATH", "/nonexistent-a:/nonexistent-b", TRUE);
  g_setenv ("XDG_DATA_HOME", "/nonexistent-xdg", TRUE);
  cria_registry_add_default_paths (reg);
  const char *const *paths = cria_registry_get_paths (reg);
  CU_ASSERT_STRING_EQUAL (paths[0], cria_test_env ("CRIA_TEST_PLUGINS"));
  CU_ASSERT_STRING_EQUAL (paths[1], "/nonexistent-a");
  CU_ASSERT_STRING_EQUAL (paths[2], "/nonexistent-b");
  CU_ASSERT_STRING_EQUAL (paths[3], "/nonexistent-xdg/cria-1.0/plugins");
  CU_ASSERT_STRING_EQUAL (paths[4], cria_get_plugin_dir ());
  CU_ASSERT_PTR_NULL (paths[5]);
  g_unsetenv ("CRIA_PLUGIN_PATH");
  cria_registry_scan (reg);
  CU_ASSERT_EQUAL (cria_registry_rejected (reg)->len, 0);
  guint n = cria_registry_plugins (reg)->len;
  CU_ASSERT_EQUAL (cria_registry_scan (reg), 0);
  CU_ASSERT_EQUAL (cria_registry_plugins (reg)->len, n);
}

static void
test_namespaces (void)
{
  g_autoptr (CriaRegistry) reg = load_all ();
  /* A transform and a metric may share a name; stage kinds share one namespace. */
  const CriaProvider *t = cria_registry_lookup (reg, CRIA_KIND_TRANSFORM, "extra");
  const CriaProvider *m = cria_registry_lookup (reg, CRIA_KIND_METRIC, "extra");
  CU_ASSERT_PTR_NOT_NULL (t);
  CU_ASSERT_PTR_NOT_NULL (m);
  CU_ASSERT_PTR_NOT_EQUAL (t, m);
  CU_ASSERT_PTR_EQUAL (cria_registry_lookup_stage (reg, "extra"), t);
  CU_ASSERT_PTR_NULL (cria_registry_lookup (reg, CRIA_KIND_SINK, "file"));
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (cria_registry_require (reg, CRIA_KIND_TOKENIZER, "nope", &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "no tokenizer named 'nope'"));
  g_autoptr (CriaProps) props = cria_provider_new_props (t);
  CU_ASSERT_EQUAL (cria_props_get_int (props, "level"), 3);
}

/* In-process plugins go through the same checks. */
static gpointer
static_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return g_new0 (int, 1);
}
static const CriaStageVTable static_vtable = { CRIA_VTABLE_INIT (CriaStageVTable), .create = static_create,
                                               .destroy = g_free };
static const CriaProviderInfo static_info = {
  .name = "in-process",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};
static const CriaProviderInfo bad_name_info = {
  .name = "Bad Name",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};
static const CriaPropSpec bad_default_props[] = { { "n", CRIA_PROP_INT, "twelve", 0, 0, NULL, "broken default" },
                                                  CRIA_PROP_END };
static const CriaProviderInfo bad_default_info = {
  .name = "bad-default",
  .description = "test",
  .props = bad_default_props,
  .rank = CRIA_RANK_PRIMARY,
};
static gboolean
init_ok (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &static_info, &static_vtable);
  return TRUE;
}
static gboolean
init_bad_name (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &bad_name_info, &static_vtable);
  return TRUE;
}
static gboolean
init_bad_default (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &bad_default_info, &static_vtable);
  return TRUE;
}
static const CriaProviderInfo twice_info = {
  .name = "twice",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};
static gboolean
init_twice (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &twice_info, &static_vtable);
  cria_plugin_add_transform (plugin, &twice_info, &static_vtable);
  return TRUE;
}
static gboolean
init_empty (CriaPlugin *plugin, GError **error)
{
  return TRUE;
}

static void
test_static_plugins (void)
{
  static const CriaPluginDescriptor ok = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "static", "1", "MIT", "d", "o", init_ok };
  static const CriaPluginDescriptor again = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "static", "1", "MIT", "d", "o", init_ok };
  static const CriaPluginDescriptor bad_name = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "bn", "1", "MIT", "d", "o",
                                                 init_bad_name };
  static const CriaPluginDescriptor bad_default = { CRIA_ABI_MAJOR,  CRIA_ABI_MINOR, "bd", "1", "MIT", "d", "o",
                                                    init_bad_default };
  static const CriaPluginDescriptor twice = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "tw", "1", "MIT", "d", "o", init_twice };
  static const CriaPluginDescriptor empty = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "em", "1", "MIT", "d", "o", init_empty };
  static const CriaPluginDescriptor no_init = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "ni", "1", "MIT", "d", "o", NULL };
  static const CriaPluginDescriptor no_origin = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "no", "1", "MIT", "d", "", init_ok };
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  struct {
    const CriaPluginDescriptor *d;
    const char *fragment; /* NULL: accepted */
  } cases[] = {
    { &ok, NULL },
    { &again, "already loaded" },
    { &bad_name, "invalid name" },
    { &bad_default, "bad default" },
    { &twice, "registered twice" },
    { &empty, "registered no provider" },
    { &no_init, "'init' is missing" },
    { &no_origin, "'origin' is missing" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) e = NULL;
    gboolean accepted = cria_registry_add_static (reg, cases[i].d, &e);
    CU_ASSERT_EQUAL (accepted, cases[i].fragment == NULL);
    if (cases[i].fragment) {
      if (!e || !strstr (e->message, cases[i].fragment))
        printf ("\ncase %u: '%s' lacks '%s'\n", i, e ? e->message : "", cases[i].fragment);
      CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, cases[i].fragment));
    }
  }
  CU_ASSERT_EQUAL (cria_registry_list (reg)->len, 1);
  CU_ASSERT_EQUAL (cria_registry_rejected (reg)->len, G_N_ELEMENTS (cases) - 1);
  CU_ASSERT_PTR_NULL (
      cria_plugin_get_filename (cria_provider_get_plugin (g_ptr_array_index (cria_registry_list (reg), 0))));
}

/* A backend stub whose kernel table stops before gelu, as one built before
 * an op was added would: planning a graph that uses gelu fails at once. */
static int stub_allocs;
static gpointer
stub_create (const CriaProps *props, GError **error)
{
  return g_new0 (int, 1);
}
static gpointer
stub_alloc (gpointer self, gsize bytes, GError **error)
{
  stub_allocs++;
  return g_malloc0 (bytes);
}
static void
stub_free (gpointer self, gpointer mem)
{
  g_free (mem);
}
static void
stub_zero (gpointer self, gpointer mem, gsize bytes)
{
  memset (mem, 0, bytes);
}
static gboolean
stub_kernel (gpointer self, CriaNode *node, GError **error)
{
  return TRUE;
}
static gboolean
stub_declines (gpointer self, const CriaNode *node)
{
  return node->op != CRIA_OP_GELU;
}
static const CriaKernel stub_kernels[CRIA_OP_GELU + 1] = {
  [CRIA_OP_MATMUL] = { stub_kernel, stub_kernel }, [CRIA_OP_GELU] = { stub_kernel, stub_kernel }
};
static const CriaBackendVTable stub_vtable = {
  CRIA_VTABLE_INIT (CriaBackendVTable),
  .create = stub_create,
  .destroy = g_free,
  .alloc = stub_alloc,
  .free = stub_free,
  .zero = stub_zero,
  .kernels = stub_kernels,
  .n_kernels = CRIA_OP_GELU, /* gelu is past the end */
};
static const CriaBackendVTable picky_vtable = {
  CRIA_VTABLE_INIT (CriaBackendVTable),
  .create = stub_create,
  .destroy = g_free,
  .alloc = stub_alloc,
  .free = stub_free,
  .zero = stub_zero,
  .kernels = stub_kernels,
  .n_kernels = G_N_ELEMENTS (stub_kernels),
  .supports_op = stub_declines,
};
static CriaBackendVTable short_vtable;
static const CriaProviderInfo stub_info = { .name = "stub", .description = "test" };
static const CriaProviderInfo picky_info = { .name = "picky", .description = "test" };
static const CriaProviderInfo short_info = { .name = "short", .description = "test" };
static gboolean
init_stub (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_backend (plugin, &stub_info, &stub_vtable);
  cria_plugin_add_backend (plugin, &picky_info, &picky_vtable);
  return TRUE;
}
static gboolean
init_short (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_backend (plugin, &short_info, &short_vtable);
  return TRUE;
}

static gboolean
plan_gelu (CriaRegistry *reg, const char *backend_name, GError **error)
{
  g_autoptr (CriaBackend) backend = cria_backend_open (reg, backend_name, error);
  if (!backend)
    return FALSE;
  g_autoptr (CriaGraph) g = cria_graph_new ();
  const gint64 shape[] = { 2, 3 };
  CriaNode *x = cria_graph_input (g, "x", CRIA_DTYPE_F32, 2, shape);
  cria_graph_mark_output (g, cria_gelu (g, x));
  gboolean ok = cria_graph_plan (g, backend, NULL, error);
  return ok;
}

static void
test_backend_ops_at_plan_time (void)
{
  static const CriaPluginDescriptor stub = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "stub", "1", "MIT", "d", "o", init_stub };
  static const CriaPluginDescriptor shorter = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "short", "1", "MIT", "d", "o",
                                                init_short };
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_scan (reg);
  CU_ASSERT_TRUE_FATAL (cria_registry_add_static (reg, &stub, NULL));

  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (plan_gelu (reg, "stub", &e));
  CU_ASSERT_PTR_NOT_NULL (e);
  if (e)
    CU_ASSERT_STRING_EQUAL (e->message, "backend 'stub' does not implement op 'gelu'");
  CU_ASSERT_EQUAL (stub_allocs, 0); /* refused before any memory or compute */
  g_clear_error (&e);
  CU_ASSERT_FALSE (plan_gelu (reg, "picky", &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "backend 'picky' does not support op 'gelu' on f32"));
  CU_ASSERT_EQUAL (stub_allocs, 0);
  g_clear_error (&e);
  /* The CPU backend has every op. */
  CU_ASSERT_TRUE (plan_gelu (reg, "cpu", &e));
  if (e)
    printf ("\ncpu: %s\n", e->message);
  g_clear_error (&e);

  /* A vtable shorter than the 1.0 one is refused, with its size named. */
  short_vtable = stub_vtable;
  short_vtable.size = G_STRUCT_OFFSET (CriaBackendVTable, supports_op);
  CU_ASSERT_FALSE (cria_registry_add_static (reg, &shorter, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "backend 'short': its vtable is"));
  CU_ASSERT_PTR_NULL (cria_registry_lookup (reg, CRIA_KIND_BACKEND, "short"));
  /* CRIA_VTABLE_HAS reads the size: a member past it is absent, set or not. */
  CriaBackendVTable v = picky_vtable;
  CU_ASSERT_TRUE (CRIA_VTABLE_HAS (&v, supports_op));
  v.size = G_STRUCT_OFFSET (CriaBackendVTable, supports_op);
  CU_ASSERT_FALSE (CRIA_VTABLE_HAS (&v, supports_op));
  CU_ASSERT_TRUE (CRIA_VTABLE_HAS (&v, alloc));
  v.size = sizeof v;
  v.supports_op = NULL;
  CU_ASSERT_FALSE (CRIA_VTABLE_HAS (&v, supports_op));
}

static void
test_kind_names (void)
{
  for (guint k = 0; k < CRIA_N_KINDS; k++) {
    CriaKind back;
    CU_ASSERT_TRUE (cria_kind_from_name (cria_kind_name (k), &back));
    CU_ASSERT_EQUAL (back, k);
  }
  CriaKind dummy;
  CU_ASSERT_FALSE (cria_kind_from_name ("widget", &dummy));
  CU_ASSERT_STRING_EQUAL (cria_kind_name (CRIA_KIND_GENERATOR), "generator");
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "broken plugins are rejected with a reason", test_broken_plugins_rejected },
    { "files that are not shared objects", test_not_a_shared_object },
    { "search order and rescans", test_search_order },
    { "provider namespaces", test_namespaces },
    { "in-process plugins", test_static_plugins },
    { "duplicate names chosen by rank", test_duplicates_by_rank },
    { "truncated ELF", test_truncated_elf },
    { "backend ops checked at plan time", test_backend_ops_at_plan_time },
    { "kind names", test_kind_names },
    { NULL },
  };
  cria_test_add_suite ("registry", cases);
}

CRIA_TEST_MAIN (register_suites)
