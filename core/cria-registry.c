/* cria-registry.c: finds plugin .so files, checks them and keeps their providers.
 *
 * Loading never fails as a whole: each bad file is rejected with a one-line
 * reason naming it, and the scan goes on. A plugin is all or nothing. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-paths.h>
#include <cria/cria-registry.h>

struct _CriaPlugin {
  const CriaPluginDescriptor *descriptor;
  char *filename;
  GModule *module;
  GPtrArray *pending; /* CriaProviderInfo*, registered by init */
};

struct _CriaProvider {
  const CriaProviderInfo *info;
  CriaPlugin *plugin;
};

struct _CriaRegistry {
  GPtrArray *paths;     /* char*, NULL-terminated for get_paths() */
  GPtrArray *plugins;   /* CriaPlugin* */
  GPtrArray *providers; /* CriaProvider* */
  GPtrArray *rejected;  /* CriaRejectedPlugin* */
  GHashTable *seen;     /* canonical file names already tried */
};

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
plugin_free (CriaPlugin *plugin)
{
  /* Modules stay resident: providers' static tables live in them. */
  g_ptr_array_unref (plugin->pending);
  g_free (plugin->filename);
  g_free (plugin);
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
  reg->plugins = g_ptr_array_new_with_free_func ((GDestroyNotify) plugin_free);
  reg->providers = g_ptr_array_new_with_free_func (g_free);
  reg->rejected = g_ptr_array_new_with_free_func ((GDestroyNotify) rejected_free);
  reg->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
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
  g_free (reg);
}

void
cria_registry_add_path (CriaRegistry *reg, const char *dir)
{
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
  return (const char *const *) reg->paths->pdata;
}

static void reject (CriaRegistry *reg, const char *path, GError **error, const char *format, ...) G_GNUC_PRINTF (4, 5);

static void
reject (CriaRegistry *reg, const char *path, GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  /* One line, whatever dlerror() or an init said. */
  g_strdelimit (reason, "\r\n", ' ');
  CriaRejectedPlugin *r = g_new0 (CriaRejectedPlugin, 1);
  r->path = g_strdup (path);
  r->reason = g_strdup (reason);
  g_ptr_array_add (reg->rejected, r);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_PLUGIN, "%s: %s", path, reason);
}

static gboolean
provider_name_valid (const char *name)
{
  if (!name || !g_ascii_islower (name[0]))
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static const CriaProvider *
find (CriaRegistry *reg, CriaKind kind, const char *name)
{
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *p = g_ptr_array_index (reg->providers, i);
    gboolean same_ns = p->info->kind == kind || (cria_kind_is_stage (p->info->kind) && cria_kind_is_stage (kind));
    if (same_ns && strcmp (p->info->name, name) == 0)
      return p;
  }
  return NULL;
}

/* Checks what init registered; the first problem rejects the whole plugin. */
static gboolean
check_providers (CriaRegistry *reg, CriaPlugin *plugin, const char *label, GError **error)
{
  if (plugin->pending->len == 0) {
    reject (reg, label, error, "plugin '%s' registered no provider", plugin->descriptor->name);
    return FALSE;
  }
  for (guint i = 0; i < plugin->pending->len; i++) {
    const CriaProviderInfo *info = g_ptr_array_index (plugin->pending, i);
    if ((guint) info->kind >= CRIA_N_KINDS) {
      reject (reg, label, error, "provider %u has an unknown kind %d", i, (int) info->kind);
      return FALSE;
    }
    if (!provider_name_valid (info->name)) {
      reject (reg, label, error, "provider %u has a missing or invalid name", i);
      return FALSE;
    }
    if (!info->description || !info->vtable) {
      reject (reg, label, error, "provider '%s' lacks a %s", info->name, info->description ? "vtable" : "description");
      return FALSE;
    }
    for (const CriaPropSpec *s = info->props; s && s->name; s++) {
      g_autoptr (GError) perr = NULL;
      if (!s->blurb) {
        reject (reg, label, error, "provider '%s': property '%s' has no description", info->name, s->name);
        return FALSE;
      }
      if (s->default_value && !cria_prop_spec_validate (s, s->default_value, &perr)) {
        reject (reg, label, error, "provider '%s': bad default: %s", info->name, perr->message);
        return FALSE;
      }
    }
    for (guint j = 0; j < i; j++) {
      const CriaProviderInfo *other = g_ptr_array_index (plugin->pending, j);
      gboolean same_ns = other->kind == info->kind ||
                         (cria_kind_is_stage (other->kind) && cria_kind_is_stage (info->kind));
      if (same_ns && strcmp (other->name, info->name) == 0) {
        reject (reg, label, error, "provider name '%s' is registered twice by this plugin", info->name);
        return FALSE;
      }
    }
    const CriaProvider *dup = find (reg, info->kind, info->name);
    if (dup) {
      const char *from = dup->plugin->filename ? dup->plugin->filename : dup->plugin->descriptor->name;
      reject (reg, label, error, "duplicate provider name: %s '%s' is already provided by %s",
              cria_kind_name (info->kind), info->name, from);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
register_plugin (CriaRegistry *reg, const CriaPluginDescriptor *d, const char *filename, GModule *module,
                 GError **error)
{
  const char *label = filename ? filename : (d && d->name ? d->name : "(static plugin)");

  if (d->abi_major != CRIA_ABI_MAJOR) {
    reject (reg, label, error, "built for plugin ABI %u.%u, this cria provides %d.%d (major differs)", d->abi_major,
            d->abi_minor, CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
    return FALSE;
  }
  if (d->abi_minor > CRIA_ABI_MINOR) {
    reject (reg, label, error, "built for plugin ABI %u.%u, newer than this cria's %d.%d", d->abi_major, d->abi_minor,
            CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
    return FALSE;
  }
  static const char *const fields[] = { "name", "version", "license", "description", "origin" };
  const char *values[] = { d->name, d->version, d->license, d->description, d->origin };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    if (!values[i] || !*values[i]) {
      reject (reg, label, error, "descriptor field '%s' is missing", fields[i]);
      return FALSE;
    }
  }
  if (!d->init) {
    reject (reg, label, error, "descriptor field 'init' is missing");
    return FALSE;
  }
  for (guint i = 0; i < reg->plugins->len; i++) {
    CriaPlugin *other = g_ptr_array_index (reg->plugins, i);
    if (strcmp (other->descriptor->name, d->name) == 0) {
      reject (reg, label, error, "plugin '%s' is already loaded from %s", d->name,
              other->filename ? other->filename : "the program");
      return FALSE;
    }
  }

  CriaPlugin *plugin = g_new0 (CriaPlugin, 1);
  plugin->descriptor = d;
  plugin->filename = g_strdup (filename);
  plugin->module = module;
  plugin->pending = g_ptr_array_new ();

  g_autoptr (GError) init_error = NULL;
  if (!d->init (plugin, &init_error)) {
    reject (reg, label, error, "init failed: %s", init_error ? init_error->message : "no reason given");
    plugin_free (plugin);
    return FALSE;
  }
  if (!check_providers (reg, plugin, label, error)) {
    plugin_free (plugin);
    return FALSE;
  }
  if (module)
    g_module_make_resident (module);
  g_ptr_array_add (reg->plugins, plugin);
  for (guint i = 0; i < plugin->pending->len; i++) {
    CriaProvider *p = g_new0 (CriaProvider, 1);
    p->info = g_ptr_array_index (plugin->pending, i);
    p->plugin = plugin;
    g_ptr_array_add (reg->providers, p);
  }
  return TRUE;
}

gboolean
cria_registry_load_file (CriaRegistry *reg, const char *path, GError **error)
{
  g_autofree char *canonical = g_canonicalize_filename (path, NULL);
  GModule *module = g_module_open_full (canonical, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL, NULL);
  if (!module) {
    reject (reg, path, error, "cannot be loaded: %s", g_module_error ());
    return FALSE;
  }
  gpointer sym = NULL;
  if (!g_module_symbol (module, CRIA_PLUGIN_DESCRIPTOR_SYMBOL, &sym) || !sym) {
    reject (reg, path, error, "not a cria plugin (no %s symbol)", CRIA_PLUGIN_DESCRIPTOR_SYMBOL);
    g_module_close (module);
    return FALSE;
  }
  if (!register_plugin (reg, sym, path, module, error)) {
    g_module_close (module);
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_registry_add_static (CriaRegistry *reg, const CriaPluginDescriptor *descriptor, GError **error)
{
  return register_plugin (reg, descriptor, NULL, NULL, error);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

guint
cria_registry_scan (CriaRegistry *reg)
{
  guint before = reg->plugins->len;
  for (guint i = 0; i + 1 < reg->paths->len; i++) {
    const char *dir_path = g_ptr_array_index (reg->paths, i);
    g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
    if (!dir)
      continue;
    /* Sorted, so that load order (and so duplicate resolution) is stable. */
    g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
    const char *name;
    while ((name = g_dir_read_name (dir)))
      if (g_str_has_suffix (name, "." G_MODULE_SUFFIX))
        g_ptr_array_add (names, g_strdup (name));
    g_ptr_array_sort (names, compare_names);
    for (guint k = 0; k < names->len; k++) {
      g_autofree char *path = g_build_filename (dir_path, g_ptr_array_index (names, k), NULL);
      g_autofree char *canonical = g_canonicalize_filename (path, NULL);
      if (g_hash_table_contains (reg->seen, canonical))
        continue;
      g_hash_table_add (reg->seen, g_steal_pointer (&canonical));
      cria_registry_load_file (reg, path, NULL);
    }
  }
  return reg->plugins->len - before;
}

GPtrArray *
cria_registry_list (CriaRegistry *reg)
{
  return reg->providers;
}

GPtrArray *
cria_registry_rejected (CriaRegistry *reg)
{
  return reg->rejected;
}

GPtrArray *
cria_registry_plugins (CriaRegistry *reg)
{
  return reg->plugins;
}

const CriaProvider *
cria_registry_lookup (CriaRegistry *reg, CriaKind kind, const char *name)
{
  const CriaProvider *p = find (reg, kind, name);
  /* Stage kinds share a namespace, but a caller asking for a sink wants a sink. */
  return p && p->info->kind == kind ? p : NULL;
}

const CriaProvider *
cria_registry_lookup_stage (CriaRegistry *reg, const char *name)
{
  return find (reg, CRIA_KIND_SOURCE, name);
}

const CriaProvider *
cria_registry_require (CriaRegistry *reg, CriaKind kind, const char *name, GError **error)
{
  const CriaProvider *p = cria_registry_lookup (reg, kind, name);
  if (p)
    return p;
  g_autoptr (GString) known = g_string_new (NULL);
  for (guint i = 0; i < reg->providers->len; i++) {
    CriaProvider *q = g_ptr_array_index (reg->providers, i);
    if (q->info->kind == kind)
      g_string_append_printf (known, "%s%s", known->len ? ", " : "", q->info->name);
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "no %s named '%s' (available: %s)", cria_kind_name (kind), name,
               known->len ? known->str : "none; see cria inspect -b");
  return NULL;
}

const CriaProviderInfo *
cria_provider_get_info (const CriaProvider *provider)
{
  return provider->info;
}

const CriaPlugin *
cria_provider_get_plugin (const CriaProvider *provider)
{
  return provider->plugin;
}

CriaProps *
cria_provider_new_props (const CriaProvider *provider)
{
  return cria_props_new (provider->info->props);
}

void
cria_plugin_add_provider (CriaPlugin *plugin, const CriaProviderInfo *info)
{
  g_return_if_fail (plugin && info);
  g_ptr_array_add (plugin->pending, (gpointer) info);
}

const CriaPluginDescriptor *
cria_plugin_get_descriptor (const CriaPlugin *plugin)
{
  return plugin->descriptor;
}

const char *
cria_plugin_get_filename (const CriaPlugin *plugin)
{
  return plugin->filename;
}
