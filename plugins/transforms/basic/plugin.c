/* The basic transforms: record-stream plumbing that needs no model. */
#include "config.h"

#include <cria/cria.h>

extern const CriaProviderInfo cria_head_info;

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &cria_head_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("basic", "Basic record transforms", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
