/* cria-adapter.c: adapter instances, PEFT's adapter directories, and PEFT's
 * rules for naming the modules an adapter targets. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-output.h>

#include "cria-train-private.h"

#define PEFT_CONFIG "adapter_config.json"
#define PEFT_WEIGHTS "adapter_model.safetensors"

struct _CriaAdapter {
  const CriaProvider *provider;
  const CriaAdapterVTable *vt;
  gpointer self;
  GArray *params; /* CriaAdapterParam, filled after attach */
  gboolean attached;
};

static const CriaAdapterVTable *
vtable_of (const CriaProvider *provider)
{
  return cria_provider_get_vtable (provider);
}

CriaAdapter *
cria_adapter_new (const CriaProvider *provider, const CriaProps *props, GError **error)
{
  g_return_val_if_fail (provider != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (cria_provider_get_kind (provider) == CRIA_KIND_ADAPTER, NULL);
  g_autoptr (CriaProps) defaults = props ? NULL : cria_provider_new_props (provider);
  const CriaProps *use = props ? props : defaults;
  if (!cria_props_check_required (use, error))
    return NULL;
  const CriaAdapterVTable *vt = vtable_of (provider);
  gpointer self = vt->create (use, error);
  if (!self)
    return NULL;
  CriaAdapter *a = g_new0 (CriaAdapter, 1);
  a->provider = provider;
  a->vt = vt;
  a->self = self;
  a->params = g_array_new (FALSE, TRUE, sizeof (CriaAdapterParam));
  return a;
}

CriaAdapter *
cria_adapter_new_from_spec (CriaRegistry *registry, const char *spec, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (spec != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *config = g_build_filename (spec, "adapter_config.json", NULL);
  if (g_file_test (config, G_FILE_TEST_IS_REGULAR)) {
    /* its saved modules (a resized vocabulary) would be left out silently */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s is a saved adapter: a new adapter is trained from a spec ('lora r=8 ...'); to train on top of "
                 "a saved one, merge it into its base first (cria merge) and train on the merged model",
                 spec);
    return NULL;
  }
  const CriaProvider *provider = NULL;
  g_autoptr (CriaProps) props = NULL;
  if (!cria_registry_parse_spec (registry, CRIA_KIND_ADAPTER, spec, &provider, &props, error))
    return NULL;
  return cria_adapter_new (provider, props, error);
}

void
cria_adapter_free (CriaAdapter *a)
{
  if (!a)
    return;
  a->vt->destroy (a->self);
  g_array_unref (a->params);
  g_free (a);
}

const CriaProvider *
cria_adapter_get_provider (CriaAdapter *a)
{
  g_return_val_if_fail (a != NULL, NULL);
  return a->provider;
}

gpointer
cria_adapter_get_instance (CriaAdapter *a)
{
  g_return_val_if_fail (a != NULL, NULL);
  return a->self;
}

gboolean
cria_adapter_attach_entries (CriaAdapter *a, CriaAdapterEntry *entries, guint n_entries, JsonObject *config,
                             guint64 seed, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (a->attached) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "adapter %s is already attached",
                 cria_provider_get_name (a->provider));
    return FALSE;
  }
  g_autoptr (JsonObject) empty = config ? NULL : json_object_new ();
  if (!a->vt->attach (a->self, entries, n_entries, config ? config : empty, seed, error))
    return FALSE;
  a->attached = TRUE;
  g_array_set_size (a->params, 0);
  a->vt->list_params (a->self, a->params);
  return TRUE;
}

void
cria_adapter_install (CriaAdapter *a, CriaGraph *g)
{
  g_return_if_fail (a != NULL);
  g_return_if_fail (g != NULL);
  if (a->vt->linear)
    cria_graph_set_linear_hook (g, a->vt->linear, a->self);
}

CriaLinearHook
cria_adapter_get_linear_hook (CriaAdapter *a, gpointer *user_data)
{
  g_return_val_if_fail (a != NULL, NULL);
  g_return_val_if_fail (user_data != NULL, NULL);
  *user_data = a->self;
  return a->vt->linear;
}

void
cria_adapter_set_training (CriaAdapter *a, gboolean training, guint64 step_seed)
{
  g_return_if_fail (a != NULL);
  if (a->vt->set_training)
    a->vt->set_training (a->self, training, step_seed);
}

GArray *
cria_adapter_get_params (CriaAdapter *a)
{
  g_return_val_if_fail (a != NULL, NULL);
  return a->params;
}

double
cria_adapter_regularize (CriaAdapter *a, const CriaAdapterStep *step)
{
  g_return_val_if_fail (a != NULL, 0.0);
  return a->vt->regularize ? a->vt->regularize (a->self, step) : 0.0;
}

gboolean
cria_adapter_before_step (CriaAdapter *a, const CriaAdapterStep *step, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return a->vt->before_step ? a->vt->before_step (a->self, step, error) : TRUE;
}

gboolean
train_adapter_has_step_hooks (CriaAdapter *a)
{
  return a->vt->regularize || a->vt->before_step || a->vt->after_step;
}

gboolean
cria_adapter_after_step (CriaAdapter *a, const CriaAdapterStep *step, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return a->vt->after_step ? a->vt->after_step (a->self, step, error) : TRUE;
}

JsonNode *
cria_adapter_save_state (CriaAdapter *a)
{
  g_return_val_if_fail (a != NULL, NULL);
  return a->vt->save_state ? a->vt->save_state (a->self) : NULL;
}

gboolean
cria_adapter_load_state (CriaAdapter *a, JsonNode *state, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!a->vt->load_state || !state)
    return TRUE;
  return a->vt->load_state (a->self, state, error);
}

gboolean
cria_adapter_merge_entries (CriaAdapter *a, CriaAdapterEntry *entries, guint n_entries, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!a->vt->merge) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "adapter %s cannot be merged",
                 cria_provider_get_name (a->provider));
    return FALSE;
  }
  return a->vt->merge (a->self, entries, n_entries, error);
}

/* ---- PEFT directories ------------------------------------------------------ */

gboolean
cria_adapter_save_peft (CriaAdapter *a, const char *dir, const char *base_model, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!a->vt->peft_type || !a->vt->save) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "adapter %s does not save in PEFT's format",
                 cria_provider_get_name (a->provider));
    return FALSE;
  }
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", dir, g_strerror (errno));
    return FALSE;
  }
  g_autoptr (JsonObject) config = json_object_new ();
  g_autoptr (GArray) weights = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  if (base_model)
    json_object_set_string_member (config, "base_model_name_or_path", base_model);
  else
    json_object_set_null_member (config, "base_model_name_or_path");
  json_object_set_string_member (config, "peft_type", a->vt->peft_type);
  json_object_set_string_member (config, "task_type", "CAUSAL_LM");
  json_object_set_boolean_member (config, "inference_mode", TRUE);
  json_object_set_null_member (config, "revision");
  json_object_set_null_member (config, "auto_mapping");
  if (!a->vt->save (a->self, config, weights, error))
    return FALSE;

  g_autoptr (CriaSafetensorsWriter) writer = cria_safetensors_writer_new ();
  cria_safetensors_writer_set_metadata (writer, "format", "pt");
  for (guint i = 0; i < weights->len; i++)
    if (!cria_safetensors_writer_add (writer, &g_array_index (weights, CriaWeight, i), error))
      return FALSE;
  g_autofree char *st_path = g_build_filename (dir, PEFT_WEIGHTS, NULL);
  g_autofree char *config_path = g_build_filename (dir, PEFT_CONFIG, NULL);
  g_autofree char *text = train_json_text (config, TRUE);
  return cria_safetensors_writer_write (writer, st_path, error) && train_write_text (config_path, text, error);
}

CriaAdapter *
cria_adapter_open_peft (CriaRegistry *registry, const char *dir, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *path = g_build_filename (dir, PEFT_CONFIG, NULL);
  g_autoptr (JsonObject) config = train_load_json_object (path, error);
  if (!config)
    return NULL;
  JsonNode *type = json_object_get_member (config, "peft_type");
  if (!type || json_node_get_value_type (type) != G_TYPE_STRING) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field peft_type: missing or not a string", path);
    return NULL;
  }
  const char *peft_type = json_node_get_string (type);
  /* Several providers can write one peft_type (qlora saves LORA): the one
   * named after it reads it, so a LoRA adapter never quantizes its base. */
  GPtrArray *providers = cria_registry_list (registry);
  g_autofree char *lower = g_ascii_strdown (peft_type, -1);
  const CriaProvider *named = cria_registry_lookup (registry, CRIA_KIND_ADAPTER, lower);
  for (guint i = 0; i < providers->len; i++) {
    const CriaProvider *p = g_ptr_array_index (providers, i);
    if (cria_provider_get_kind (p) != CRIA_KIND_ADAPTER)
      continue;
    const CriaAdapterVTable *vt = vtable_of (p);
    if (!vt->peft_type || g_ascii_strcasecmp (vt->peft_type, peft_type) != 0 || (named && p != named))
      continue;
    g_autoptr (CriaAdapter) a = cria_adapter_new (p, NULL, error);
    if (!a)
      return NULL;
    if (!vt->configure || !vt->load) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: adapter %s cannot load PEFT directories", path,
                   cria_provider_get_name (p));
      return NULL;
    }
    if (!vt->configure (a->self, config, path, error))
      return NULL;
    return g_steal_pointer (&a);
  }
  g_autofree char *quoted = cria_error_quote (peft_type, -1, 40);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: field peft_type: no installed adapter reads \"%s\"",
               path, quoted);
  return NULL;
}

gboolean
cria_adapter_load_peft_weights (CriaAdapter *a, const char *dir, GError **error)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (a->attached, FALSE);
  g_autofree char *path = g_build_filename (dir, PEFT_WEIGHTS, NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, error);
  if (!st)
    return FALSE;
  if (!a->vt->load (a->self, st, error)) {
    g_prefix_error (error, "%s: ", path);
    return FALSE;
  }
  return TRUE;
}

/* ---- target_modules ---------------------------------------------------------- */

GRegex *
cria_adapter_target_regex (const char *targets, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!targets || strcmp (targets, "all-linear") == 0 || strpbrk (targets, "^$*+?()[]{}|\\") == NULL)
    return NULL;
  g_autofree char *anchored = g_strdup_printf ("^(?:%s)$", targets);
  GRegex *re = g_regex_new (anchored, 0, 0, error);
  if (!re)
    g_prefix_error (error, "target-modules: ");
  return re;
}

static gboolean
ends_with_component (const char *module, const char *name)
{
  gsize lm = strlen (module), ln = strlen (name);
  if (ln == 0 || ln > lm)
    return FALSE;
  if (strcmp (module + lm - ln, name) != 0)
    return FALSE;
  return ln == lm || module[lm - ln - 1] == '.';
}

gboolean
cria_adapter_target_matches (const char *targets, GRegex *regex, const char *module)
{
  g_return_val_if_fail (module != NULL, FALSE);
  if (!targets)
    return FALSE;
  if (regex)
    return g_regex_match (regex, module, 0, NULL);
  if (strcmp (targets, "all-linear") == 0)
    return TRUE; /* the caller offers linear layers only, never the output head */
  g_auto (GStrv) names = g_strsplit (targets, ",", -1);
  for (guint i = 0; names[i]; i++) {
    g_strstrip (names[i]);
    if (ends_with_component (module, names[i]))
      return TRUE;
  }
  return FALSE;
}
