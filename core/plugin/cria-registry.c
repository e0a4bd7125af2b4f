/* cria-registry.c: the registry of plugin providers: its search path, the
 * kinds, and looking providers up and describing them. Plugin files are
 * listed and indexed in cria-registry-index.c, scanned out of process in
 * cria-registry-scanner.c and loaded in cria-registry-load.c. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-paths.h>
#include <cria/cria-registry.h>
#include "cria-registry-private.h"

static const char *const kind_names[CRIA_N_KINDS] = {
  "source", "transform", "sink", "tokenizer", "model", "adapter", "metric", "backend", "generator",
};

const char *
cria_kind_name (CriaKind kind)
{
  return (guint) kind < CRIA_N_KINDS ? kind_names[kind] : "unknown";
}

gboolean
cria_kind_from_name (const char *name, CriaKind *kind)
{
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (kind != NULL, FALSE);
  for (guint i = 0; i < CRIA_N_KINDS; i++) {
    if (strcmp (kind_names[i], name) == 0) {
      *kind = (CriaKind) i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
cria_kind_is_stage (CriaKind kind)
{
  return kind == CRIA_KIND_SOURCE || kind == CRIA_KIND_TRANSFORM || kind == CRIA_KIND_SINK;
}

static void
rejected_free (CriaRejectedPlugin *r)
{
  g_free (r->path);
  g_free (r->reason);
  g_free (r);
}

CriaRegistry *
cria_registry_new (void)
{
  CriaRegistry *reg = g_new0 (CriaRegistry, 1);
  reg->paths = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (reg->paths, NULL);
  reg->plugins = g_ptr_array_new_with_free_func ((GDestroyNotify) reg_plugin_free);
  reg->providers = g_ptr_array_new_with_free_func (g_free);
  reg->rejected = g_ptr_array_new_with_free_func ((GDestroyNotify) rejected_free);
  reg->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  reg->verdicts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return reg;
}

void
cria_registry_free (CriaRegistry *reg)
{
  if (!reg)
    return;
  g_ptr_array_unref (reg->providers);
  g_ptr_array_unref (reg->plugins);
  g_ptr_array_unref (reg->rejected);
  g_ptr_array_unref (reg->paths);
  g_hash_table_unref (reg->seen);
  g_hash_table_unref (reg->verdicts);
  if (reg->index)
    g_hash_table_unref (reg->index);
  if (reg->files)
    g_ptr_array_unref (reg->files);
  g_free (reg);
}

void
cria_registry_add_path (CriaRegistry *reg, const char *dir)
{
  g_return_if_fail (reg != NULL);
  if (!dir || !*dir)
    return;
  for (guint i = 0; i + 1 < reg->paths->len; i++)
    if (strcmp (g_ptr_array_index (reg->paths, i), dir) == 0)
      return;
  g_ptr_array_insert (reg->paths, reg->paths->len - 1, g_strdup (dir));
}

void
cria_registry_add_default_paths (CriaRegistry *reg)
{
  g_return_if_fail (reg != NULL);
  const char *env = g_getenv ("CRIA_PLUGIN_PATH");
  if (env) {
    g_auto (GStrv) dirs = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
    for (char **d = dirs; *d; d++)
      cria_registry_add_path (reg, *d);
  }
  g_autofree char *user = g_build_filename (g_get_user_data_dir (), "cria-" CRIA_API_VERSION, "plugins", NULL);
  cria_registry_add_path (reg, user);
  cria_registry_add_path (reg, cria_get_plugin_dir ());
}

const char *const *
cria_registry_get_paths (CriaRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, NULL);
  return (const char *const *) reg->paths->pdata;
}

gboolean
reg_same_namespace (CriaKind a, CriaKind b)
{
  return a == b || (cria_kind_is_stage (a) && cria_kind_is_stage (b));
}

/* The provider a name means: the highest rank, then the first loaded. */
const CriaProvider *
reg_find (CriaRegistry *reg, CriaKind kind, const char *name)
{
  const CriaProvider *best = NULL;
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *p = g_ptr_array_index (reg->providers, i);
    if (reg_same_namespace (p->kind, kind) && strcmp (p->info->name, name) == 0 &&
        (!best || p->info->rank > best->info->rank))
      best = p;
  }
  return best;
}

GPtrArray *
cria_registry_list (CriaRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, NULL);
  reg_complete (reg);
  return reg->providers;
}

GPtrArray *
cria_registry_rejected (CriaRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, NULL);
  reg_complete (reg);
  return reg->rejected;
}

GPtrArray *
cria_registry_plugins (CriaRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, NULL);
  reg_complete (reg);
  return reg->plugins;
}

const CriaProvider *
cria_registry_lookup (CriaRegistry *reg, CriaKind kind, const char *name)
{
  g_return_val_if_fail (reg != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  reg_ensure (reg, kind, name);
  const CriaProvider *p = reg_find (reg, kind, name);
  /* Stage kinds share a namespace, but a caller asking for a sink wants a sink. */
  return p && p->kind == kind ? p : NULL;
}

const CriaProvider *
cria_registry_lookup_stage (CriaRegistry *reg, const char *name)
{
  g_return_val_if_fail (reg != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  reg_ensure (reg, CRIA_KIND_SOURCE, name);
  return reg_find (reg, CRIA_KIND_SOURCE, name);
}

const CriaProvider *
cria_registry_require (CriaRegistry *reg, CriaKind kind, const char *name, GError **error)
{
  g_return_val_if_fail (reg != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProvider *p = cria_registry_lookup (reg, kind, name);
  if (p)
    return p;
  reg_complete (reg);
  g_autoptr (GString) known = g_string_new (NULL);
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *q = g_ptr_array_index (reg->providers, i);
    if (q->kind == kind)
      g_string_append_printf (known, "%s%s", known->len ? ", " : "", q->info->name);
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "no %s named '%s' (available: %s)", cria_kind_name (kind), name,
               known->len ? known->str : "none; see cria inspect -b");
  return NULL;
}

const CriaProviderInfo *
cria_provider_get_info (const CriaProvider *provider)
{
  g_return_val_if_fail (provider != NULL, NULL);
  return provider->info;
}

const CriaPlugin *
cria_provider_get_plugin (const CriaProvider *provider)
{
  g_return_val_if_fail (provider != NULL, NULL);
  return provider->plugin;
}

CriaProps *
cria_provider_new_props (const CriaProvider *provider)
{
  g_return_val_if_fail (provider != NULL, NULL);
  return cria_props_new (provider->info->props);
}

CriaKind
cria_provider_get_kind (const CriaProvider *provider)
{
  return provider->kind;
}

const char *
cria_provider_get_name (const CriaProvider *provider)
{
  return provider->info->name;
}

gconstpointer
cria_provider_get_vtable (const CriaProvider *provider)
{
  return provider->vtable;
}

int
cria_provider_get_rank (const CriaProvider *provider)
{
  return provider->info->rank;
}

static gint
by_rank (gconstpointer a, gconstpointer b)
{
  int ra = (*(CriaProvider *const *) a)->info->rank, rb = (*(CriaProvider *const *) b)->info->rank;
  return ra > rb ? -1 : ra < rb;
}

GPtrArray *
cria_registry_list_kind (CriaRegistry *reg, CriaKind kind)
{
  g_return_val_if_fail (reg != NULL, NULL);
  reg_complete (reg);
  GPtrArray *out = g_ptr_array_new ();
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *p = g_ptr_array_index (reg->providers, i);
    if (p->kind == kind)
      g_ptr_array_add (out, p);
  }
  g_ptr_array_sort (out, by_rank); /* stable: equal ranks keep the search order */
  return out;
}

const CriaPluginDescriptor *
cria_plugin_get_descriptor (const CriaPlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->descriptor;
}

const char *
cria_plugin_get_filename (const CriaPlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->filename;
}
