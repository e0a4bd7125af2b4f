/* cria-paths.h: where installed data lives. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The directory of cria's shared data ($(datadir)/cria-1.0), or the source
 * tree's share/ when CRIA_DATA_DIR says so (uninstalled builds and tests). */
const char *cria_get_data_dir (void);
/* The installed plugin directory ($(libdir)/cria-1.0/plugins). */
const char *cria_get_plugin_dir (void);
/* Resolves a name relative to the data directory, if the file exists there;
 * otherwise returns a copy of the name. */
char *cria_find_data_file (const char *name);

G_END_DECLS
