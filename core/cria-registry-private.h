/* cria-registry-private.h: what the plugin scanner program calls. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Opens one plugin file, checks its descriptor and runs its init, telling the
 * registry that started it how far it got on stdout. Returns the exit status. */
int cria_registry_scanner_main (const char *path);

G_END_DECLS
