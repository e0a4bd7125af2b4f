/* cria-module-private.h: cria's own modules, the parts of libcria and of the
 * cria program that link a large library (libarchive, cairo, libsoup). They
 * are loaded on first use so that a run which never needs them never pays
 * the dynamic linker for them, and so that a distribution can ship each
 * with what it pulls in. Each module is $(libdir)/cria-1.0/modules/cria-NAME.so
 * (or $CRIA_MODULE_DIR/cria-NAME.so) and exports one table, cria_module_NAME,
 * whose first member is its size in bytes. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The table of module `name`, loaded once and kept for the life of the
 * process. A table smaller than `min_size` (a module from another build) is
 * refused. Failures are CRIA_ERROR_PLUGIN naming the file and what it is
 * needed for (`purpose`: "reading pytorch_model.bin"). Thread-safe. */
gconstpointer cria_module_load (const char *name, gsize min_size, const char *purpose, GError **error);

/* Where modules are looked for. */
const char *cria_module_get_dir (void);

G_END_DECLS
