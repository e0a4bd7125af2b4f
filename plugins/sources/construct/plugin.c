/* The construct plugin: sources that have a generator write data. The
 * transforms that have one rewrite records sit in plugins/transforms/construct
 * (the rewrite plugin); both link the helpers of this folder (libconstruct). */
#include "config.h"

#include "construct.h"

void cria_selfinstruct_register (CriaPlugin *plugin);
void cria_synth_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_selfinstruct_register (plugin);
  cria_synth_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (construct, "Automatic data construction: selfinstruct, synth", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
