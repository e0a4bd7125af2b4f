/* bad-duplicate: registers a source named like the built-in 'file', at a
 * lower rank: both are kept, the built-in one is chosen, a warning names both. */
#include "broken.h"

static const CriaProviderInfo info = {
  .name = "file",
  .description = "a second file source",
  .rank = CRIA_RANK_MARGINAL,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_source (plugin, &info, &broken_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (bad_duplicate, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
