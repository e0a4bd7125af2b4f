/* cria-module.c: loading cria's own modules on first use (cria-module-private.h). */
#include "config.h"

#include <gmodule.h>

#include <cria/cria-error.h>

#include "cria-module-private.h"

const char *
cria_module_get_dir (void)
{
  const char *env = g_getenv ("CRIA_MODULE_DIR");
  return env && *env ? env : CRIA_MODULEDIR;
}

typedef struct {
  gconstpointer table;
  char *error; /* why it could not be loaded; the same answer every time */
} Loaded;

gconstpointer
cria_module_load (const char *name, gsize min_size, const char *purpose, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  static GMutex lock;
  static GHashTable *loaded; /* name -> Loaded; never freed: modules stay resident */
  g_mutex_lock (&lock);
  if (!loaded)
    loaded = g_hash_table_new (g_str_hash, g_str_equal);
  Loaded *l = g_hash_table_lookup (loaded, name);
  if (!l) {
    l = g_new0 (Loaded, 1);
    g_autofree char *base = g_strdup_printf ("cria-%s.so", name);
    g_autofree char *path = g_build_filename (cria_module_get_dir (), base, NULL);
    g_autofree char *symbol = g_strdup_printf ("cria_module_%s", name);
    g_autoptr (GError) open_error = NULL;
    GModule *module = g_module_open_full (path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL, &open_error);
    gpointer table = NULL;
    if (!module)
      l->error = g_strdup (open_error->message);
    else if (!g_module_symbol (module, symbol, &table) || !table)
      l->error = g_strdup_printf ("%s is not a cria module: it has no %s", path, symbol);
    else if (*(const gsize *) table < min_size)
      l->error = g_strdup_printf ("%s is from another build of cria (its table is %" G_GSIZE_FORMAT
                                  " bytes, %" G_GSIZE_FORMAT " expected)",
                                  path, *(const gsize *) table, min_size);
    if (l->error) {
      g_clear_pointer (&module, g_module_close);
    } else {
      g_module_make_resident (module);
      l->table = table;
    }
    g_hash_table_insert (loaded, g_strdup (name), l);
  }
  if (!l->table)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PLUGIN, "cria's %s module is needed for %s: %s", name, purpose,
                 l->error);
  gconstpointer table = l->table;
  g_mutex_unlock (&lock);
  return table;
}
