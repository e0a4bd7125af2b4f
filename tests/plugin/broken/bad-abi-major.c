/* bad-abi-major: a test plugin the registry must reject. */
#include "broken.h"

static const CriaProviderInfo info = {
  .name = "bad-abi-major",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &broken_vtable);
  return TRUE;
}

G_MODULE_EXPORT const CriaPluginDescriptor cria_plugin_descriptor_bad_abi_major = {
  CRIA_ABI_MAJOR + 1,  CRIA_ABI_MINOR, "bad-abi-major", "1.0",
  "LGPL-2.1-or-later", "test plugin",  "cria tests",    plugin_init,
};
