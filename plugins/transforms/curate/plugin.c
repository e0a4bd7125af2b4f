/* The curate plugin: transforms that clean, deduplicate, filter, vary,
 * reorder and split record streams. */
#include "config.h"

#include "curate.h"

extern const CriaProviderInfo cria_clean_info, cria_dedup_info, cria_filter_info;
extern const CriaProviderInfo cria_order_infos[], cria_variants_infos[];

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &cria_clean_info);
  cria_plugin_add_provider (plugin, &cria_dedup_info);
  cria_plugin_add_provider (plugin, &cria_filter_info);
  const CriaProviderInfo *tables[] = { cria_order_infos, cria_variants_infos };
  for (guint t = 0; t < G_N_ELEMENTS (tables); t++)
    for (const CriaProviderInfo *i = tables[t]; i->name; i++)
      cria_plugin_add_provider (plugin, i);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("curate",
                    "Record transforms: clean, dedup, filter, variants, templates, shuffle, sample, repeat, split",
                    plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
