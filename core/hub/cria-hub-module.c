/* cria-hub-module.c: cria's hub module (cria-hub.so), the Hugging Face hub
 * client and libsoup behind `cria pull`, loaded by that verb alone so that no
 * other run of the cria program loads libsoup (cria-module-private.h). */
#include "config.h"

#include <gmodule.h>

#include "cria-hub.h"

G_MODULE_EXPORT const CriaHubModule cria_module_hub = { .size = sizeof (CriaHubModule), .pull = cria_hub_pull };
