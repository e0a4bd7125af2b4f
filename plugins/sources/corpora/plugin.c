/* The corpora plugin: converters of public datasets into records. */
#include "config.h"

#include "corpora.h"

void cria_qa_register (CriaPlugin *plugin);
void cria_summary_register (CriaPlugin *plugin);
void cria_instruction_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_qa_register (plugin);
  cria_summary_register (plugin);
  cria_instruction_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (corpora,
                    "Converters of public datasets: SQuAD, NQ, CoQA, DialogSum, XSum, CNN/DailyMail, Dolly, mapper",
                    plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
