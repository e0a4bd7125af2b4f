/* The construct plugin: stages that have a generator write data. */
#include "config.h"

#include "construct.h"

void cria_selfinstruct_register (CriaPlugin *plugin);
void cria_evolinstruct_register (CriaPlugin *plugin);
void cria_fill_register (CriaPlugin *plugin);
void cria_synth_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_selfinstruct_register (plugin);
  cria_evolinstruct_register (plugin);
  cria_fill_register (plugin);
  cria_synth_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (construct, "Automatic data construction: selfinstruct, evolinstruct, fill, synth", plugin_init,
                    PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
