/* bad-no-license: a test plugin the registry must reject. */
#include "broken.h"

static const CriaProviderInfo info = {
  .kind = CRIA_KIND_TRANSFORM,
  .name = "bad-no-license",
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
  CRIA_ABI_MAJOR, CRIA_ABI_MINOR, "bad-no-license", "1.0", NULL, "test plugin", "cria tests", plugin_init,
};
