/* cria-registry-private.h: what the registry's files share, and what the
 * plugin scanner program calls. The reg_ functions stay inside libcria
 * (only cria_ names are exported). */
#pragma once

#include <gmodule.h>

#include <cria/cria-registry.h>

G_BEGIN_DECLS

struct _CriaPlugin {
  const CriaPluginDescriptor *descriptor;
  char *filename;
  GModule *module;
  GPtrArray *pending; /* CriaProvider*, registered by init */
};

struct _CriaProvider {
  CriaKind kind;
  const CriaProviderInfo *info;
  gconstpointer vtable;
  CriaPlugin *plugin;
};

struct _CriaRegistry {
  GPtrArray *paths;     /* char*, NULL-terminated for get_paths() */
  GPtrArray *plugins;   /* CriaPlugin* */
  GPtrArray *providers; /* CriaProvider* */
  GPtrArray *rejected;  /* CriaRejectedPlugin* */
  GHashTable *seen;     /* canonical file names already tried */
  /* A lazy registry (cria_registry_scan_lazily) loads a plugin only when one
   * of its providers is asked for: `index` maps "KIND/NAME" (stages as
   * "stage/NAME") to the position in `files` of the plugin a full scan would
   * take it from. NULL once everything is loaded. */
  GHashTable *index;
  GPtrArray *files;     /* char*: the plugin files, in scan order */
  guint first_volatile; /* the first file whose init failed: it may succeed now */
  /* What the plugin scanner said of each file (canonical name): "" when it
   * may be loaded in this process, else why not. Kept in the index. */
  GHashTable *verdicts;
};

/* Lookups (cria-registry.c). */
gboolean reg_same_namespace (CriaKind a, CriaKind b);
const CriaProvider *reg_find (CriaRegistry *reg, CriaKind kind, const char *name);

/* Checking and registering plugins (cria-registry-load.c). */
void reg_reject (CriaRegistry *reg, const char *path, GError **error, const char *format, ...) G_GNUC_PRINTF (4, 5);
char *reg_descriptor_problem (const CriaPluginDescriptor *d);
CriaPlugin *reg_plugin_new (const CriaPluginDescriptor *d, const char *filename, GModule *module);
void reg_plugin_free (CriaPlugin *plugin);
GModule *reg_open_plugin (const char *canonical, const CriaPluginDescriptor **descriptor, char **reason);

/* The plugin scanner (cria-registry-scanner.c). */
void reg_prescan (CriaRegistry *reg, GPtrArray *paths);
char *reg_verdict (CriaRegistry *reg, const char *canonical);

/* Scanning the search path and the lazy index (cria-registry-index.c). */
void reg_complete (CriaRegistry *reg);
void reg_ensure (CriaRegistry *reg, CriaKind kind, const char *name);

/* Opens each plugin file in turn, checks its descriptor and runs its init,
 * telling the registry that started it how far it got on stdout. Returns
 * the exit status. */
int cria_registry_scanner_main (int n_paths, char **paths);

G_END_DECLS
