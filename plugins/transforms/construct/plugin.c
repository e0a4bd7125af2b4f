/* The rewrite plugin: transforms that have a generator rewrite records
 * (Evol-Instruct's evolution, template filling). They share the prompt,
 * cache and rule helpers of plugins/sources/construct (libconstruct). */
#include "config.h"

#include "construct.h"

extern const CriaProviderInfo cria_evolinstruct_info, cria_fill_info;

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &cria_evolinstruct_info);
  cria_plugin_add_provider (plugin, &cria_fill_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("rewrite", "Model-driven rewriting of records: evolinstruct, fill", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
