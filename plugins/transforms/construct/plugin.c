/* The rewrite plugin: transforms that have a generator rewrite records
 * (Evol-Instruct's evolution, template filling, preference pairs). They share the prompt,
 * cache and rule helpers of plugins/sources/construct (libconstruct). */
#include "config.h"

#include "construct.h"

void cria_evolinstruct_register (CriaPlugin *plugin);
void cria_fill_register (CriaPlugin *plugin);
void cria_pairs_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_evolinstruct_register (plugin);
  cria_fill_register (plugin);
  cria_pairs_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (rewrite, "Model-driven rewriting of records: evolinstruct, fill, pairs", plugin_init,
                    PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
