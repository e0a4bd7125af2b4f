/* cria-paths.c: installed locations, overridable for uninstalled builds. */
#include "config.h"

#include <cria/cria-paths.h>

static char *data_dir_override;
static char *plugin_dir_override;

const char *
cria_get_data_dir (void)
{
  const char *env = g_getenv ("CRIA_DATA_DIR");
  if (env && *env)
    return env;
  return data_dir_override ? data_dir_override : CRIA_DATADIR;
}

const char *
cria_get_plugin_dir (void)
{
  return plugin_dir_override ? plugin_dir_override : CRIA_PLUGINDIR;
}

/* Private: the cria program calls this when it runs from its build tree. */
void cria_paths_set_uninstalled (const char *plugin_dir, const char *data_dir);

void
cria_paths_set_uninstalled (const char *plugin_dir, const char *data_dir)
{
  g_free (plugin_dir_override);
  g_free (data_dir_override);
  plugin_dir_override = g_strdup (plugin_dir);
  data_dir_override = g_strdup (data_dir);
}

char *
cria_find_data_file (const char *name)
{
  if (g_path_is_absolute (name) || g_file_test (name, G_FILE_TEST_EXISTS))
    return g_strdup (name);
  g_autofree char *candidate = g_build_filename (cria_get_data_dir (), name, NULL);
  if (g_file_test (candidate, G_FILE_TEST_EXISTS))
    return g_steal_pointer (&candidate);
  return g_strdup (name);
}
