/* cria-serve-module.c: cria's serve module (cria-serve.so), the HTTP server
 * and libsoup behind `cria serve`, loaded by that verb alone so that no
 * other run of the cria program loads libsoup (cria-module-private.h). */
#include "config.h"

#include <gmodule.h>

#include "cria-server.h"

G_MODULE_EXPORT const CriaServeModule cria_module_serve = { .size = sizeof (CriaServeModule), .run = cria_server_run };
