/* bad-no-license: a test plugin the registry must reject. */
#include "broken.h"

static const CriaProviderInfo info = {
  .name = "bad-no-license",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &broken_vtable);
  return TRUE;
}

G_MODULE_EXPORT const CriaPluginDescriptor cria_plugin_descriptor_bad_no_license = {
  CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "bad-no-license", "1.0", NULL, "test plugin", "cria tests", plugin_init,
};
