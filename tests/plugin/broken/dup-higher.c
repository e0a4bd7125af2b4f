/* dup-higher: provides the built-in transform 'head' at a higher rank, so it
 * is the one a lookup chooses; the built-in one stays listed. */
#include "broken.h"

static const CriaProviderInfo info = {
  .name = "head",
  .description = "a third-party head that outranks the built-in one",
  .rank = CRIA_RANK_PRIMARY + 1,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &broken_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (dup_higher, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
