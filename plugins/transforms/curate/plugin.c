/* The curate plugin: transforms that clean, deduplicate, filter, vary,
 * reorder and split record streams. */
#include "config.h"

#include "curate.h"

void cria_clean_register (CriaPlugin *plugin);
void cria_dedup_register (CriaPlugin *plugin);
void cria_filter_register (CriaPlugin *plugin);
void cria_order_register (CriaPlugin *plugin);
void cria_variants_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_clean_register (plugin);
  cria_dedup_register (plugin);
  cria_filter_register (plugin);
  cria_order_register (plugin);
  cria_variants_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (curate,
                    "Record transforms: clean, dedup, filter, variants, templates, shuffle, sample, repeat, split",
                    plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
