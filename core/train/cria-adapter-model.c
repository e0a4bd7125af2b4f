/* cria-adapter-model.c: adapters on a loaded model — the parameter table
 * offered to attach and merge, and PEFT directories loaded for generation. */
#include "config.h"

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-model.h>

/* The weights a model builds without cria_linear: PEFT's all-linear leaves
 * the output head out too. */
static gboolean
is_linear (const char *name, const CriaTensor *t)
{
  static const char *const not_linear[] = { "wte.weight", "wpe.weight", "embed_tokens.weight", "lm_head.weight" };
  if (t->n_dims != 2 || !g_str_has_suffix (name, ".weight"))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (not_linear); i++)
    if (g_str_has_suffix (name, not_linear[i]))
      return FALSE;
  return TRUE;
}

static GArray *
model_entries (CriaModel *model)
{
  const CriaModelVTable *vt = cria_provider_get_vtable (cria_model_get_provider (model));
  const CriaHfConfig *config = cria_model_get_config (model);
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (CriaAdapterEntry));
  for (guint i = 0; i < cria_model_get_n_params (model); i++) {
    const char *name = cria_model_get_param_name (model, i);
    CriaAdapterEntry e = { .name = name, .tensor = cria_model_get_param (model, name) };
    e.linear = is_linear (name, e.tensor);
    e.fan_in_fan_out = vt->transposed && vt->transposed (config, name);
    g_array_append_val (entries, e);
  }
  return entries;
}

gboolean
cria_adapter_attach (CriaAdapter *adapter, CriaModel *model, guint64 seed, GError **error)
{
  g_autoptr (GArray) entries = model_entries (model);
  CriaAdapterEntry *e = (CriaAdapterEntry *) (void *) entries->data;
  if (!cria_adapter_attach_entries (adapter, e, entries->len, cria_model_get_config (model)->json, seed, error))
    return FALSE;
  for (guint i = 0; i < entries->len; i++)
    if (e[i].replacement &&
        !cria_model_set_param (model, e[i].name, e[i].replacement, e[i].replacement_trainable, error))
      return FALSE;
  return TRUE;
}

CriaAdapter *
cria_adapter_load (CriaRegistry *registry, CriaModel *model, const char *dir, GError **error)
{
  g_autoptr (CriaAdapter) adapter = cria_adapter_open_peft (registry, dir, error);
  if (!adapter)
    return NULL;
  if (!cria_adapter_attach (adapter, model, 0, error) || !cria_adapter_load_peft_weights (adapter, dir, error)) {
    g_prefix_error (error, "adapter %s on model %s: ", dir, cria_model_get_dir (model));
    return NULL;
  }
  cria_adapter_set_training (adapter, FALSE, 0);
  return g_steal_pointer (&adapter);
}

gboolean
cria_adapter_merge (CriaAdapter *adapter, CriaModel *model, GError **error)
{
  g_autoptr (GArray) entries = model_entries (model);
  CriaAdapterEntry *e = (CriaAdapterEntry *) (void *) entries->data;
  for (guint i = 0; i < entries->len; i++) {
    g_autoptr (CriaTensor) copy = cria_tensor_to_f32 (e[i].tensor);
    if (!cria_model_set_param (model, e[i].name, copy, FALSE, error))
      return FALSE;
    e[i].tensor = copy; /* the table holds its reference */
  }
  return cria_adapter_merge_entries (adapter, e, entries->len, error);
}
