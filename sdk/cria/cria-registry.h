/* cria-registry.h: finding, loading and looking up plugins and providers. */
#pragma once

#include <cria/cria-plugin.h>

G_BEGIN_DECLS

typedef struct _CriaRegistry CriaRegistry;
typedef struct _CriaProvider CriaProvider;

typedef struct {
  char *path;   /* the file that was rejected */
  char *reason; /* one line */
} CriaRejectedPlugin;

CriaRegistry *cria_registry_new (void);
void cria_registry_free (CriaRegistry *registry);

/* Directories are searched in the order they are added; call this for
 * --plugin-path entries before cria_registry_add_default_paths(). */
void cria_registry_add_path (CriaRegistry *registry, const char *dir);
/* Adds CRIA_PLUGIN_PATH (':'-separated), $XDG_DATA_HOME/cria-1.0/plugins and the
 * installed plugin directory, in that order. */
void cria_registry_add_default_paths (CriaRegistry *registry);
const char *const *cria_registry_get_paths (CriaRegistry *registry);

/* Loads every *.so in the search path. Bad plugins are rejected with a reason
 * and skipped; scanning itself does not fail. Returns the number loaded.
 * Each file is first opened by the plugin scanner, a child process
 * ($CRIA_PLUGIN_SCANNER, else cria-plugin-scanner in libexecdir; none when
 * set to ""): a file that crashes, aborts or exits there, or that it rejects
 * (ABI, descriptor, not loadable), is rejected with the reason, the signal
 * and the file, and never opened in this process. */
guint cria_registry_scan (CriaRegistry *registry);

/* Like cria_registry_scan(), but a plugin is loaded only when one of its
 * providers is looked up, by an index of an earlier full scan kept in
 * `cache_file`. The index holds the search path and each plugin file's size,
 * modification time and inode: when any differs, or the file cannot be read,
 * this scans fully and writes a new one. Lookups and errors are those of a
 * full scan; listing providers, plugins or rejected files, a lookup the index
 * cannot answer, and cria_registry_add_static() load everything first. */
void cria_registry_scan_lazily (CriaRegistry *registry, const char *cache_file);

/* Loads one file; on failure the reason is also added to the rejected list. */
gboolean cria_registry_load_file (CriaRegistry *registry, const char *path, GError **error);
/* Registers a plugin linked into the program (no .so), with the same checks. */
gboolean cria_registry_add_static (CriaRegistry *registry, const CriaPluginDescriptor *descriptor, GError **error);

/* Providers in load order. Element type: CriaProvider*, owned by the registry. */
GPtrArray *cria_registry_list (CriaRegistry *registry);
/* Element type: CriaRejectedPlugin*, owned by the registry. */
GPtrArray *cria_registry_rejected (CriaRegistry *registry);
/* Every loaded plugin. Element type: CriaPlugin*, owned by the registry. */
GPtrArray *cria_registry_plugins (CriaRegistry *registry);

/* The providers of one kind, highest rank first, equal ranks in search-path
 * order: how a kind that probes its input (tokenizers, models) picks among
 * those that can handle it. Free the array only (the providers are the
 * registry's). Loads every plugin of a lazy registry. */
GPtrArray *cria_registry_list_kind (CriaRegistry *registry, CriaKind kind);

/* NULL when there is no such provider of that kind. When two plugins
 * provide one name, the higher rank wins, then the first in the search path
 * (a warning names both when the second one is loaded). */
const CriaProvider *cria_registry_lookup (CriaRegistry *registry, CriaKind kind, const char *name);
/* Looks up a source, transform or sink by name. */
const CriaProvider *cria_registry_lookup_stage (CriaRegistry *registry, const char *name);
/* Like cria_registry_lookup, with an error that lists what is available. */
const CriaProvider *cria_registry_require (CriaRegistry *registry, CriaKind kind, const char *name, GError **error);

const CriaProviderInfo *cria_provider_get_info (const CriaProvider *provider);
const CriaPlugin *cria_provider_get_plugin (const CriaProvider *provider);
CriaKind cria_provider_get_kind (const CriaProvider *provider);
const char *cria_provider_get_name (const CriaProvider *provider);
/* The vtable of its kind (CriaStageVTable for a source, ...). */
gconstpointer cria_provider_get_vtable (const CriaProvider *provider);
/* CRIA_RANK_*: see cria-plugin.h. */
int cria_provider_get_rank (const CriaProvider *provider);

/* Parses "NAME key=value ..." (pipeline syntax, one stage) into the provider
 * of that kind and its validated properties; how a stage names the tokenizer,
 * generator or metric it uses. */
gboolean cria_registry_parse_spec (CriaRegistry *registry, CriaKind kind, const char *spec,
                                   const CriaProvider **provider, CriaProps **props, GError **error);

/* A new property set for the provider, holding its defaults. */
CriaProps *cria_provider_new_props (const CriaProvider *provider);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaRegistry, cria_registry_free)

G_END_DECLS
