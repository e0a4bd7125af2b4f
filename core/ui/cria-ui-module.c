/* cria-ui-module.c: cria's ui module (cria-ui.so), the page and libsoup
 * behind `cria ui`, loaded by that verb alone (cria-module-private.h). */
#include "config.h"

#include <gmodule.h>

#include "cria-ui.h"

G_MODULE_EXPORT const CriaUiModule cria_module_ui = { .size = sizeof (CriaUiModule), .run = cria_ui_run };
