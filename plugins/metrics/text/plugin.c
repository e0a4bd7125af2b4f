/* The text metrics: scores of generated text that need no model.
 *
 *   cria metric bleu --ref refs.txt --hyp out.txt
 */
#include "config.h"

#include <cria/cria.h>

extern const CriaProviderInfo cria_bleu_info;
extern const CriaProviderInfo cria_rouge_info;
extern const CriaProviderInfo cria_squad_info;
extern const CriaProviderInfo cria_distinct_info;
extern const CriaProviderInfo cria_perplexity_info;

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &cria_bleu_info);
  cria_plugin_add_provider (plugin, &cria_rouge_info);
  cria_plugin_add_provider (plugin, &cria_squad_info);
  cria_plugin_add_provider (plugin, &cria_distinct_info);
  cria_plugin_add_provider (plugin, &cria_perplexity_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("textmetrics", "Text metrics: BLEU, ROUGE, SQuAD EM/F1, distinct-n", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
