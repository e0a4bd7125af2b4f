/* bad-short-vtable: a vtable without CRIA_VTABLE_INIT (size 0) is refused. */
#include "broken.h"

static const CriaStageVTable no_size = {
  .create = broken_create,
  .destroy = g_free,
  .push = broken_push,
};

static const CriaProviderInfo info = {
  .name = "short-vtable",
  .description = "test",
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &no_size);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (bad_short_vtable, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
