/* cria-registry-private.h: what the plugin scanner program calls. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Opens each plugin file in turn, checks its descriptor and runs its init,
 * telling the registry that started it how far it got on stdout. Returns
 * the exit status. */
int cria_registry_scanner_main (int n_paths, char **paths);

G_END_DECLS
