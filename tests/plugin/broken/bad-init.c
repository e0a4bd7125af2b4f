/* bad-init: its init fails after registering a provider; nothing may be kept. */
#include "broken.h"

static const CriaProviderInfo info = {
  .name = "half-registered",
  .description = "test",
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &broken_vtable);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "its model files are missing");
  return FALSE;
}

CRIA_PLUGIN_DEFINE (bad_init, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
