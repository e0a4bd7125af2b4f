/* cria-registry-index.c: scanning the search path, in the order that
 * decides which of two plugins providing one name wins, and the lazy index
 * that lets a run load only the plugins it asks for. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include <cria/cria-registry.h>
#include "cria-registry-private.h"

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The plugin files of the search path in the order a scan loads them
 * (sorted within a directory, so that duplicate resolution is stable), each
 * file once. Element type: char*, named as the scan names them. */
static GPtrArray *
list_files (CriaRegistry *reg)
{
  GPtrArray *files = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) listed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i + 1 < reg->paths->len; i++) {
    const char *dir_path = g_ptr_array_index (reg->paths, i);
    g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
    if (!dir)
      continue;
    g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
    const char *name;
    while ((name = g_dir_read_name (dir)))
      if (g_str_has_suffix (name, "." G_MODULE_SUFFIX))
        g_ptr_array_add (names, g_strdup (name));
    g_ptr_array_sort (names, compare_names);
    for (guint k = 0; k < names->len; k++) {
      char *path = g_build_filename (dir_path, g_ptr_array_index (names, k), NULL);
      char *canonical = g_canonicalize_filename (path, NULL);
      if (g_hash_table_add (listed, canonical))
        g_ptr_array_add (files, path);
      else
        g_free (path);
    }
  }
  return files;
}

static void
load_unseen (CriaRegistry *reg, const char *path)
{
  char *canonical = g_canonicalize_filename (path, NULL);
  if (g_hash_table_add (reg->seen, canonical))
    cria_registry_load_file (reg, path, NULL);
}

static guint
file_position (CriaRegistry *reg, const char *filename)
{
  guint at;
  if (filename && g_ptr_array_find_with_equal_func (reg->files, filename, g_str_equal, &at))
    return at;
  return G_MAXUINT; /* registered in-process, after the scan */
}

static gint
by_position (gpointer reg, const char *a, const char *b)
{
  guint pa = file_position (reg, a), pb = file_position (reg, b);
  return pa < pb ? -1 : pa > pb;
}

static gint
compare_plugin_order (gconstpointer a, gconstpointer b, gpointer reg)
{
  return by_position (reg, (*(CriaPlugin *const *) a)->filename, (*(CriaPlugin *const *) b)->filename);
}

static gint
compare_provider_order (gconstpointer a, gconstpointer b, gpointer reg)
{
  return by_position (reg, (*(CriaProvider *const *) a)->plugin->filename,
                      (*(CriaProvider *const *) b)->plugin->filename);
}

static gint
compare_rejected_order (gconstpointer a, gconstpointer b, gpointer reg)
{
  return by_position (reg, (*(CriaRejectedPlugin *const *) a)->path, (*(CriaRejectedPlugin *const *) b)->path);
}

/* A lazy registry loads the rest, in the order (of plugins, providers and
 * rejected files) a full scan gives. */
void
reg_complete (CriaRegistry *reg)
{
  if (!reg->index)
    return;
  g_clear_pointer (&reg->index, g_hash_table_unref);
  reg_prescan (reg, reg->files);
  for (guint i = 0; i < reg->files->len; i++)
    load_unseen (reg, g_ptr_array_index (reg->files, i));
  /* Stable sorts: a plugin's providers keep their order, and pointers to
   * providers already handed out stay valid. */
  g_ptr_array_sort_with_data (reg->plugins, compare_plugin_order, reg);
  g_ptr_array_sort_with_data (reg->providers, compare_provider_order, reg);
  g_ptr_array_sort_with_data (reg->rejected, compare_rejected_order, reg);
}

guint
cria_registry_scan (CriaRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, 0);
  reg_complete (reg);
  guint before = reg->plugins->len;
  g_autoptr (GPtrArray) files = list_files (reg);
  reg_prescan (reg, files);
  for (guint i = 0; i < files->len; i++)
    load_unseen (reg, g_ptr_array_index (files, i));
  return reg->plugins->len - before;
}

/* ---- lazy loading ------------------------------------------------------------ */

static char *
index_key (CriaKind kind, const char *name)
{
  return g_strdup_printf ("%s/%s", cria_kind_is_stage (kind) ? "stage" : cria_kind_name (kind), name);
}

/* What the index was made from: this cria, the search path and every file's
 * size, modification time and inode. A change to any of them voids it. */
static char *
index_stamp (CriaRegistry *reg, GPtrArray *files)
{
  g_autoptr (GString)
      s = g_string_new (PACKAGE_VERSION " " G_STRINGIFY (CRIA_ABI_MAJOR) "." G_STRINGIFY (CRIA_ABI_MINOR));
  for (guint i = 0; i + 1 < reg->paths->len; i++)
    g_string_append_printf (s, "\n%s", (const char *) g_ptr_array_index (reg->paths, i));
  for (guint i = 0; i < files->len; i++) {
    const char *path = g_ptr_array_index (files, i);
    GStatBuf st;
    if (g_stat (path, &st) != 0)
      return NULL;
    g_string_append_printf (s, "\n%s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT ".%09ld %" G_GUINT64_FORMAT, path,
                            (gint64) st.st_size, (gint64) st.st_mtim.tv_sec, (long) st.st_mtim.tv_nsec,
                            (guint64) st.st_ino);
  }
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, s->str, s->len);
}

static gboolean
read_index (CriaRegistry *reg, const char *cache_file, const char *stamp)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_file (kf, cache_file, G_KEY_FILE_NONE, NULL))
    return FALSE;
  g_autofree char *was = g_key_file_get_string (kf, "registry", "stamp", NULL);
  gsize n_files = 0, n_keys = 0;
  g_auto (GStrv) files = g_key_file_get_string_list (kf, "registry", "files", &n_files, NULL);
  g_auto (GStrv) keys = g_key_file_get_keys (kf, "providers", &n_keys, NULL);
  if (!was || strcmp (was, stamp) || !files || n_files != reg->files->len || !keys)
    return FALSE;
  for (gsize i = 0; i < n_files; i++)
    if (strcmp (files[i], g_ptr_array_index (reg->files, i)))
      return FALSE;
  GError *err = NULL;
  gint64 first_volatile = g_key_file_get_int64 (kf, "registry", "first-volatile", &err);
  if (err || first_volatile < 0) {
    g_clear_error (&err);
    return FALSE;
  }
  g_autoptr (GHashTable) index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (gsize i = 0; i < n_keys; i++) {
    gint64 at = g_key_file_get_int64 (kf, "providers", keys[i], &err);
    if (err || at < 0 || (guint64) at >= n_files) {
      g_clear_error (&err);
      return FALSE;
    }
    g_hash_table_insert (index, g_strdup (keys[i]), GUINT_TO_POINTER ((guint) at + 1));
  }
  /* The scanner's verdicts hold as long as the stamp does. */
  for (gsize i = 0; i < n_files; i++) {
    g_autofree char *key = g_strdup_printf ("%" G_GSIZE_FORMAT, i);
    g_autofree char *v = g_key_file_get_string (kf, "scanner", key, NULL);
    if (v)
      g_hash_table_replace (reg->verdicts, g_canonicalize_filename (files[i], NULL), g_steal_pointer (&v));
  }
  reg->index = g_steal_pointer (&index);
  reg->first_volatile = (guint) MIN (first_volatile, (gint64) G_MAXUINT);
  return TRUE;
}

/* After a full scan: which file each provider came from. Written whole under
 * a temporary name, so that a concurrent cria reads an old index or a new one. */
static void
write_index (CriaRegistry *reg, const char *cache_file, const char *stamp)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, "registry", "stamp", stamp);
  g_key_file_set_string_list (kf, "registry", "files", (const char *const *) reg->files->pdata, reg->files->len);
  guint first_volatile = reg->files->len;
  for (guint i = 0; i < reg->rejected->len; i++) {
    CriaRejectedPlugin *r = g_ptr_array_index (reg->rejected, i);
    if (g_str_has_prefix (r->reason, "init failed"))
      first_volatile = MIN (first_volatile, file_position (reg, r->path));
  }
  g_key_file_set_int64 (kf, "registry", "first-volatile", first_volatile);
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *p = g_ptr_array_index (reg->providers, i);
    guint at = file_position (reg, p->plugin->filename);
    g_autofree char *key = index_key (p->kind, p->info->name);
    /* A name two plugins provide leads to the one a lookup chooses. */
    if (at != G_MAXUINT && reg_find (reg, p->kind, p->info->name) == p)
      g_key_file_set_int64 (kf, "providers", key, at);
  }
  for (guint i = 0; i < reg->files->len; i++) {
    g_autofree char *canonical = g_canonicalize_filename (g_ptr_array_index (reg->files, i), NULL);
    const char *v = g_hash_table_lookup (reg->verdicts, canonical);
    g_autofree char *key = g_strdup_printf ("%u", i);
    if (v)
      g_key_file_set_string (kf, "scanner", key, v);
  }
  g_autofree char *dir = g_path_get_dirname (cache_file);
  g_mkdir_with_parents (dir, 0700);
  /* A cache that cannot be written only costs the next run a full scan. */
  g_key_file_save_to_file (kf, cache_file, NULL);
}

void
cria_registry_scan_lazily (CriaRegistry *reg, const char *cache_file)
{
  g_return_if_fail (reg != NULL);
  reg_complete (reg);
  g_autoptr (GPtrArray) files = list_files (reg);
  g_autofree char *stamp = index_stamp (reg, files);
  g_clear_pointer (&reg->files, g_ptr_array_unref);
  reg->files = g_ptr_array_ref (files);
  if (stamp && reg->plugins->len == 0 && read_index (reg, cache_file, stamp))
    return;
  cria_registry_scan (reg);
  if (stamp)
    write_index (reg, cache_file, stamp);
}

/* Before a lookup in a lazy registry: loads the plugin the index names for
 * the provider, or everything when the index cannot say for sure. */
void
reg_ensure (CriaRegistry *reg, CriaKind kind, const char *name)
{
  if (!reg->index)
    return;
  g_autofree char *key = index_key (kind, name);
  guint at = GPOINTER_TO_UINT (g_hash_table_lookup (reg->index, key));
  /* Another file may provide the name too, at a lower rank. */
  if (at && at - 1 < reg->first_volatile) {
    load_unseen (reg, g_ptr_array_index (reg->files, at - 1));
    if (reg_find (reg, kind, name))
      return;
  }
  reg_complete (reg);
}
