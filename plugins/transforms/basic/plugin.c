/* The basic transforms: record-stream plumbing that needs no model. */
#include "config.h"

#include <cria/cria.h>

void cria_head_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_head_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (basic, "Basic record transforms", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
