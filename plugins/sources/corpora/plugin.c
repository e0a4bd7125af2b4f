/* The corpora plugin: converters of public datasets into records. */
#include "config.h"

#include "corpora.h"

extern const CriaProviderInfo cria_qa_infos[], cria_summary_infos[], cria_instruction_infos[];

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  const CriaProviderInfo *tables[] = { cria_qa_infos, cria_summary_infos, cria_instruction_infos };
  for (guint t = 0; t < G_N_ELEMENTS (tables); t++)
    for (const CriaProviderInfo *i = tables[t]; i->name; i++)
      cria_plugin_add_provider (plugin, i);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("corpora",
                    "Converters of public datasets: SQuAD, NQ, CoQA, DialogSum, XSum, CNN/DailyMail, Dolly, mapper",
                    plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
