/* bad-duplicate: registers a source named like the built-in 'file'; rejected. */
#include "broken.h"

static const CriaProviderInfo info = {
  .kind = CRIA_KIND_SOURCE,
  .name = "file",
  .description = "a second file source",
  .vtable = &broken_vtable,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("bad-duplicate", "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
