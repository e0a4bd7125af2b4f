/* The text metrics: scores of generated text that need no model.
 *
 *   cria metric bleu --ref refs.txt --hyp out.txt
 */
#include "config.h"

#include <cria/cria.h>

void cria_bleu_register (CriaPlugin *plugin);
void cria_rouge_register (CriaPlugin *plugin);
void cria_squad_register (CriaPlugin *plugin);
void cria_distinct_register (CriaPlugin *plugin);
void cria_perplexity_register (CriaPlugin *plugin);

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_bleu_register (plugin);
  cria_rouge_register (plugin);
  cria_squad_register (plugin);
  cria_distinct_register (plugin);
  cria_perplexity_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (textmetrics, "Text metrics: BLEU, ROUGE, SQuAD EM/F1, distinct-n", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
