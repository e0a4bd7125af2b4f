/* The construct plugin: sources that have a generator write data. The
 * transforms that have one rewrite records sit in plugins/transforms/construct
 * (the rewrite plugin); both link the helpers of this folder (libconstruct). */
#include "config.h"

#include "construct.h"

extern const CriaProviderInfo cria_selfinstruct_info, cria_synth_info;

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &cria_selfinstruct_info);
  cria_plugin_add_provider (plugin, &cria_synth_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("construct", "Automatic data construction: selfinstruct, synth", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
