/* cria-registry-load.c: opens a plugin file, checks its descriptor and what
 * its init registers, and keeps its providers.
 *
 * Loading never fails as a whole: each bad file is rejected with a one-line
 * reason naming it, and the scan goes on. A plugin is all or nothing. */
#include "config.h"

#include <string.h>

#include <cria/cria-adapter.h>
#include <cria/cria-backend.h>
#include <cria/cria-error.h>
#include <cria/cria-generator.h>
#include <cria/cria-metric.h>
#include <cria/cria-model.h>
#include <cria/cria-registry.h>
#include <cria/cria-stage.h>
#include <cria/cria-tokenizer.h>
#include "cria-registry-private.h"

/* The smallest vtable each kind accepts: its size in contract 1.0. A later
 * minor that adds members keeps these, and checks CRIA_VTABLE_HAS before
 * calling a new member. Backends gained device memory in 1.1. */
#define BACKEND_1_0 G_STRUCT_OFFSET (CriaBackendVTable, device_memory)
static const gsize min_vtable_size[CRIA_N_KINDS] = {
  [CRIA_KIND_SOURCE] = sizeof (CriaStageVTable),        [CRIA_KIND_TRANSFORM] = sizeof (CriaStageVTable),
  [CRIA_KIND_SINK] = sizeof (CriaStageVTable),          [CRIA_KIND_TOKENIZER] = sizeof (CriaTokenizerVTable),
  [CRIA_KIND_MODEL] = sizeof (CriaModelVTable),         [CRIA_KIND_ADAPTER] = sizeof (CriaAdapterVTable),
  [CRIA_KIND_METRIC] = sizeof (CriaMetricVTable),       [CRIA_KIND_BACKEND] = BACKEND_1_0,
  [CRIA_KIND_GENERATOR] = sizeof (CriaGeneratorVTable),
};

void
reg_plugin_free (CriaPlugin *plugin)
{
  /* Modules stay resident: providers' static tables live in them. */
  g_ptr_array_unref (plugin->pending);
  g_free (plugin->filename);
  g_free (plugin);
}

void
reg_reject (CriaRegistry *reg, const char *path, GError **error, const char *format, ...)
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

static const char *
plugin_label (const CriaPlugin *plugin)
{
  return plugin->filename ? plugin->filename : plugin->descriptor->name;
}

/* Checks what init registered; the first problem rejects the whole plugin. */
static gboolean
check_providers (CriaRegistry *reg, CriaPlugin *plugin, const char *label, GError **error)
{
  if (plugin->pending->len == 0) {
    reg_reject (reg, label, error, "plugin '%s' registered no provider", plugin->descriptor->name);
    return FALSE;
  }
  for (guint i = 0; i < plugin->pending->len; i++) {
    const CriaProvider *prov = g_ptr_array_index (plugin->pending, i);
    const CriaProviderInfo *info = prov->info;
    if ((guint) prov->kind >= CRIA_N_KINDS) {
      reg_reject (reg, label, error, "provider %u has an unknown kind %d", i, (int) prov->kind);
      return FALSE;
    }
    if (!info || !provider_name_valid (info->name)) {
      reg_reject (reg, label, error, "provider %u has a missing or invalid name", i);
      return FALSE;
    }
    if (!info->description || !prov->vtable) {
      reg_reject (reg, label, error, "provider '%s' lacks a %s", info->name,
                  info->description ? "vtable" : "description");
      return FALSE;
    }
    /* Every vtable starts with its size (CRIA_VTABLE_INIT). */
    gsize size = *(const gsize *) prov->vtable;
    if (size < min_vtable_size[prov->kind]) {
      reg_reject (reg, label, error,
                  "%s '%s': its vtable is %" G_GSIZE_FORMAT " bytes, less than the %" G_GSIZE_FORMAT
                  " of contract %d.0 (no CRIA_VTABLE_INIT?)",
                  cria_kind_name (prov->kind), info->name, size, min_vtable_size[prov->kind], CRIA_ABI_MAJOR);
      return FALSE;
    }
    if (info->rank < 0) {
      reg_reject (reg, label, error, "provider '%s' has a negative rank %d", info->name, info->rank);
      return FALSE;
    }
    for (const CriaPropSpec *s = info->props; s && s->name; s++) {
      g_autoptr (GError) perr = NULL;
      if (!s->blurb) {
        reg_reject (reg, label, error, "provider '%s': property '%s' has no description", info->name, s->name);
        return FALSE;
      }
      if (s->default_value && !cria_prop_spec_validate (s, s->default_value, &perr)) {
        reg_reject (reg, label, error, "provider '%s': bad default: %s", info->name, perr->message);
        return FALSE;
      }
    }
    for (guint j = 0; j < i; j++) {
      const CriaProvider *other = g_ptr_array_index (plugin->pending, j);
      if (reg_same_namespace (other->kind, prov->kind) && strcmp (other->info->name, info->name) == 0) {
        reg_reject (reg, label, error, "provider name '%s' is registered twice by this plugin", info->name);
        return FALSE;
      }
    }
  }
  return TRUE;
}

/* Two plugins may provide one name: both are kept (cria inspect shows them),
 * the rank decides which a lookup gets, and nobody is replaced silently. */
static void
warn_shadowing (CriaRegistry *reg, const CriaProvider *added)
{
  for (guint i = 0; i < reg->providers->len; i++) {
    const CriaProvider *p = g_ptr_array_index (reg->providers, i);
    if (p == added || p->plugin == added->plugin || !reg_same_namespace (p->kind, added->kind) ||
        strcmp (p->info->name, added->info->name))
      continue;
    const CriaProvider *winner = reg_find (reg, added->kind, added->info->name);
    /* a note for the user, not a GLib warning: a third-party plugin that
     * shadows a built-in is a configuration to point out, not a bug */
    g_message ("cria: warning: %s '%s' is provided by %s (rank %d) and by %s (rank %d); %s is used",
               cria_kind_name (added->kind), added->info->name, plugin_label (p->plugin), p->info->rank,
               plugin_label (added->plugin), added->info->rank, plugin_label (winner->plugin));
    return;
  }
}

/* What is wrong with a descriptor before its init may run, or NULL. */
char *
reg_descriptor_problem (const CriaPluginDescriptor *d)
{
  if (d->abi_major != CRIA_ABI_MAJOR)
    return g_strdup_printf ("built for plugin ABI %u.%u, this cria provides %d.%d (major differs)", d->abi_major,
                            d->abi_minor, CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
  if (d->abi_minor > CRIA_ABI_MINOR)
    return g_strdup_printf ("built for plugin ABI %u.%u, newer than this cria's %d.%d", d->abi_major, d->abi_minor,
                            CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
  static const char *const fields[] = { "name", "version", "license", "description", "origin" };
  const char *values[] = { d->name, d->version, d->license, d->description, d->origin };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    if (!values[i] || !*values[i])
      return g_strdup_printf ("descriptor field '%s' is missing", fields[i]);
  if (!d->init)
    return g_strdup ("descriptor field 'init' is missing");
  return NULL;
}

CriaPlugin *
reg_plugin_new (const CriaPluginDescriptor *d, const char *filename, GModule *module)
{
  CriaPlugin *plugin = g_new0 (CriaPlugin, 1);
  plugin->descriptor = d;
  plugin->filename = g_strdup (filename);
  plugin->module = module;
  plugin->pending = g_ptr_array_new_with_free_func (g_free);
  return plugin;
}

static gboolean
register_plugin (CriaRegistry *reg, const CriaPluginDescriptor *d, const char *filename, GModule *module,
                 GError **error)
{
  const char *label = filename ? filename : (d && d->name ? d->name : "(static plugin)");

  g_autofree char *problem = reg_descriptor_problem (d);
  if (problem) {
    reg_reject (reg, label, error, "%s", problem);
    return FALSE;
  }
  for (guint i = 0; i < reg->plugins->len; i++) {
    CriaPlugin *other = g_ptr_array_index (reg->plugins, i);
    if (strcmp (other->descriptor->name, d->name) == 0) {
      reg_reject (reg, label, error, "plugin '%s' is already loaded from %s", d->name,
                  other->filename ? other->filename : "the program");
      return FALSE;
    }
  }

  CriaPlugin *plugin = reg_plugin_new (d, filename, module);
  g_autoptr (GError) init_error = NULL;
  if (!d->init (plugin, &init_error)) {
    reg_reject (reg, label, error, "init failed: %s", init_error ? init_error->message : "no reason given");
    reg_plugin_free (plugin);
    return FALSE;
  }
  if (!check_providers (reg, plugin, label, error)) {
    reg_plugin_free (plugin);
    return FALSE;
  }
  if (module)
    g_module_make_resident (module);
  g_ptr_array_add (reg->plugins, plugin);
  g_ptr_array_set_free_func (plugin->pending, NULL);
  for (guint i = 0; i < plugin->pending->len; i++) {
    CriaProvider *p = g_ptr_array_index (plugin->pending, i);
    g_ptr_array_add (reg->providers, p);
    warn_shadowing (reg, p);
  }
  return TRUE;
}

/* cria-NAME.so, libNAME.so or NAME.so exports cria_plugin_descriptor_NAME
 * ('-' and other characters read as '_'). */
static char *
descriptor_symbol (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  if (g_str_has_suffix (base, "." G_MODULE_SUFFIX))
    base[strlen (base) - strlen ("." G_MODULE_SUFFIX)] = '\0';
  const char *name = base;
  if (g_str_has_prefix (name, "lib"))
    name += 3;
  if (g_str_has_prefix (name, "cria-"))
    name += 5;
  g_autofree char *id = g_strdup (name);
  for (char *c = id; *c; c++)
    if (!g_ascii_isalnum (*c))
      *c = '_';
  return g_strconcat (CRIA_PLUGIN_DESCRIPTOR_PREFIX, id, NULL);
}

/* Opens a plugin file and finds its descriptor; NULL with the reason. */
GModule *
reg_open_plugin (const char *canonical, const CriaPluginDescriptor **descriptor, char **reason)
{
  GModule *module = g_module_open_full (canonical, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL, NULL);
  if (!module) {
    *reason = g_strdup_printf ("cannot be loaded: %s", g_module_error ());
    return NULL;
  }
  g_autofree char *symbol = descriptor_symbol (canonical);
  gpointer sym = NULL;
  if (g_module_symbol (module, symbol, &sym) && sym) {
    *descriptor = sym;
    return module;
  }
  if (g_module_symbol (module, "cria_plugin_descriptor", &sym) && sym)
    *reason = g_strdup_printf ("exports cria_plugin_descriptor of pre-1.0 headers, not %s: rebuild it with "
                               "CRIA_PLUGIN_DEFINE of cria %d.%d (see cria-plugin-api(3))",
                               symbol, CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
  else
    *reason = g_strdup_printf ("not a cria plugin (no %s symbol)", symbol);
  g_module_close (module);
  return NULL;
}

gboolean
cria_registry_load_file (CriaRegistry *reg, const char *path, GError **error)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *canonical = g_canonicalize_filename (path, NULL);
  g_autofree char *scanned_verdict = reg_verdict (reg, canonical);
  if (*scanned_verdict) {
    reg_reject (reg, path, error, "%s", scanned_verdict);
    return FALSE;
  }
  const CriaPluginDescriptor *d = NULL;
  g_autofree char *reason = NULL;
  GModule *module = reg_open_plugin (canonical, &d, &reason);
  if (!module) {
    reg_reject (reg, path, error, "%s", reason);
    return FALSE;
  }
  if (!register_plugin (reg, d, path, module, error)) {
    g_module_close (module);
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_registry_add_static (CriaRegistry *reg, const CriaPluginDescriptor *descriptor, GError **error)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  g_return_val_if_fail (descriptor != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  /* Its names must not clash with those of any plugin file. */
  reg_complete (reg);
  return register_plugin (reg, descriptor, NULL, NULL, error);
}

/* Checked by the registry after init (a NULL info or vtable, a name, a
 * vtable shorter than the kind's 1.0 one), so that the reason names the file. */
static void
add_typed (CriaPlugin *plugin, CriaKind kind, const CriaProviderInfo *info, gconstpointer vtable)
{
  g_return_if_fail (plugin != NULL);
  CriaProvider *p = g_new0 (CriaProvider, 1);
  p->kind = kind;
  p->info = info;
  p->vtable = vtable;
  p->plugin = plugin;
  g_ptr_array_add (plugin->pending, p);
}

#define DEFINE_ADD(kind_, KIND_, VTable_)                                                                              \
  void cria_plugin_add_##kind_ (CriaPlugin *plugin, const CriaProviderInfo *info, const VTable_ *vtable)               \
  {                                                                                                                    \
    add_typed (plugin, CRIA_KIND_##KIND_, info, vtable);                                                               \
  }
DEFINE_ADD (source, SOURCE, CriaStageVTable)
DEFINE_ADD (transform, TRANSFORM, CriaStageVTable)
DEFINE_ADD (sink, SINK, CriaStageVTable)
DEFINE_ADD (tokenizer, TOKENIZER, CriaTokenizerVTable)
DEFINE_ADD (model, MODEL, CriaModelVTable)
DEFINE_ADD (adapter, ADAPTER, CriaAdapterVTable)
DEFINE_ADD (metric, METRIC, CriaMetricVTable)
DEFINE_ADD (backend, BACKEND, CriaBackendVTable)
DEFINE_ADD (generator, GENERATOR, CriaGeneratorVTable)
