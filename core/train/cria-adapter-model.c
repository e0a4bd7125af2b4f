/* cria-adapter-model.c: adapters on a loaded model — the parameter table
 * offered to attach and merge, and PEFT directories loaded for generation. */
#include "config.h"

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-model.h>
#include <cria/cria-nf4.h>

#include <stdio.h>
#include <string.h>

/* The weights the provider builds with cria_linear; embeddings and the
 * output head are other matrices, which PEFT's all-linear leaves out too. */
static gboolean
is_linear (CriaModel *model, const char *name, const CriaTensor *t)
{
  const CriaHfTensorSpec *spec = cria_model_get_param_spec (model, name);
  return t->n_dims == 2 && g_str_has_suffix (name, ".weight") && spec && spec->role == CRIA_HF_TENSOR_LINEAR;
}

static GArray *
model_entries (CriaModel *model)
{
  const CriaModelVTable *vt = cria_provider_get_vtable (cria_model_get_provider (model));
  const CriaHfConfig *config = cria_model_get_config (model);
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (CriaAdapterEntry));
  const char *defaults = cria_model_get_default_targets (model);
  for (guint i = 0; i < cria_model_get_n_params (model); i++) {
    const char *name = cria_model_get_param_name (model, i);
    CriaAdapterEntry e = { .name = name, .tensor = cria_model_get_param (model, name) };
    e.linear = is_linear (model, name, e.tensor);
    if (e.linear && defaults) {
      g_autofree char *module = g_strndup (name, strlen (name) - strlen (".weight"));
      e.default_target = cria_adapter_target_matches (defaults, NULL, module);
    }
    e.fan_in_fan_out = vt->transposed && vt->transposed (config, name);
    g_array_append_val (entries, e);
  }
  return entries;
}

gboolean
cria_adapter_quantize_entries (CriaAdapterEntry *entries, guint n_entries, GPtrArray *quantized, GError **error)
{
  g_return_val_if_fail (entries != NULL || n_entries == 0, FALSE);
  g_return_val_if_fail (quantized != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  gsize before = 0, after = 0;
  guint n = 0;
  for (guint i = 0; i < n_entries; i++) {
    CriaAdapterEntry *e = &entries[i];
    if (!e->linear || e->replacement || e->tensor->n_dims != 2 || e->tensor->dtype == CRIA_DTYPE_NF4)
      continue;
    CriaTensor *q = cria_nf4_quantize (e->tensor, e->name, error);
    if (!q)
      return FALSE;
    before += cria_tensor_nbytes (e->tensor);
    after += cria_tensor_nbytes (q);
    /* weight by weight, so that the full-precision base is never resident whole */
    cria_model_drop_weight_pages (e->tensor);
    e->replacement = q;
    e->replacement_trainable = FALSE;
    g_ptr_array_add (quantized, q);
    n++;
  }
  g_message ("%u linear weights of the base quantized to NF4: %.2f MiB -> %.2f MiB", n, before / 1048576.0,
             after / 1048576.0);
  return TRUE;
}

static gboolean
install_replacements (CriaModel *model, CriaAdapterEntry *e, guint n, GError **error)
{
  for (guint i = 0; i < n; i++)
    if (e[i].replacement &&
        !cria_model_set_param (model, e[i].name, e[i].replacement, e[i].replacement_trainable, error))
      return FALSE;
  return TRUE;
}

gboolean
cria_adapter_quantize_model (CriaModel *model, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GArray) entries = model_entries (model);
  g_autoptr (GPtrArray) quantized = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  CriaAdapterEntry *e = (CriaAdapterEntry *) (void *) entries->data;
  return cria_adapter_quantize_entries (e, entries->len, quantized, error) &&
         install_replacements (model, e, entries->len, error);
}

gboolean
cria_adapter_attach (CriaAdapter *adapter, CriaModel *model, guint64 seed, GError **error)
{
  g_return_val_if_fail (adapter != NULL, FALSE);
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GArray) entries = model_entries (model);
  CriaAdapterEntry *e = (CriaAdapterEntry *) (void *) entries->data;
  return cria_adapter_attach_entries (adapter, e, entries->len, cria_model_get_config (model)->json, seed, error) &&
         install_replacements (model, e, entries->len, error);
}

CriaAdapter *
cria_adapter_load (CriaRegistry *registry, CriaModel *model, const char *dir, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
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
  g_return_val_if_fail (adapter != NULL, FALSE);
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GArray) entries = model_entries (model);
  CriaAdapterEntry *e = (CriaAdapterEntry *) (void *) entries->data;
  guint n_nf4 = 0;
  for (guint i = 0; i < entries->len; i++) {
    n_nf4 += e[i].tensor->dtype == CRIA_DTYPE_NF4;
    g_autoptr (CriaTensor) copy = cria_tensor_to_f32 (e[i].tensor);
    if (!cria_model_set_param (model, e[i].name, copy, FALSE, error))
      return FALSE;
    e[i].tensor = copy; /* the table holds its reference */
  }
  if (n_nf4 > 0)
    g_message ("merging into %u dequantized NF4 weights: the result is full precision, not re-quantized", n_nf4);
  return cria_adapter_merge_entries (adapter, e, entries->len, error);
}
