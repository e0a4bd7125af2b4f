/* bad-abi-major: a test plugin the registry must reject. */
#include "broken.h"

static const CriaProviderInfo info = {
  .kind = CRIA_KIND_TRANSFORM,
  .name = "bad-abi-major",
  .description = "test",
  .vtable = &broken_vtable,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &info);
  return TRUE;
}

G_MODULE_EXPORT const CriaPluginDescriptor cria_plugin_descriptor = {
  CRIA_ABI_MAJOR + 1,  CRIA_ABI_MINOR, "bad-abi-major", "1.0",
  "LGPL-2.1-or-later", "test plugin",  "cria tests",    plugin_init,
};
