/* cria-adapter-model.c: adapters on a loaded model — the parameter table
 * offered to attach and merge, and PEFT directories loaded for generation. */
#include "config.h"

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-model.h>
#include <cria/cria-nf4.h>
#include <cria/cria-safetensors.h>

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

/* The modules the adapter saved whole (modules_to_save) replace the base's. */
static gboolean
load_saved_modules (CriaModel *model, const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, error);
  if (!st)
    return FALSE;
  g_autoptr (GHashTable) saved = cria_adapter_peft_saved_modules (st, error);
  if (!saved)
    return FALSE;
  const CriaModelVTable *vt = cria_provider_get_vtable (cria_model_get_provider (model));
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, saved);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    const char *tensor = key, *weight = value;
    CriaTensor *base = cria_model_get_param (model, weight);
    if (!base) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                   "%s: tensor %s (modules_to_save) replaces %s, which the model does not hold (tied to the "
                   "embeddings?)",
                   path, tensor, weight);
      return FALSE;
    }
    if (vt->transposed && vt->transposed (cria_model_get_config (model), weight)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                   "%s: tensor %s (modules_to_save): a transposed (Conv1D) weight is not supported", path, tensor);
      return FALSE;
    }
    const CriaWeight *w = cria_safetensors_lookup (st, tensor);
    if (w->n_dims != (guint) base->n_dims || (base->n_dims == 2 && w->shape[1] != base->shape[1])) {
      g_autofree char *have = cria_weight_shape_string (w);
      g_autofree char *want = cria_shape_to_string (base->n_dims, base->shape);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: tensor %s is %s, the model's %s is %s", path,
                   tensor, have, weight, want);
      return FALSE;
    }
    if (w->shape[0] != base->shape[0]) {
      /* LLaMA-Factory's resized vocabulary: the model would need its
       * vocab_size changed (config, every vocabulary-sized tensor, tied
       * weights, the planned graph) and the adapter's tokenizer, which
       * cria cannot do yet. */
      g_autofree char *have = cria_weight_shape_string (w);
      g_autofree char *want = cria_shape_to_string (base->n_dims, base->shape);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                   "%s: tensor %s is %s, the model's %s is %s: an adapter with a resized vocabulary is not "
                   "supported yet (merge it into its base with PEFT, then use the merged model)",
                   path, tensor, have, weight, want);
      return FALSE;
    }
    g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_F32, base->n_dims, base->shape);
    if (!cria_adapter_copy_in (st, tensor, t, (guint) base->n_dims, base->shape, error) ||
        !cria_model_set_param (model, weight, t, FALSE, error)) {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  }
  if (g_hash_table_size (saved))
    g_message ("adapter %s: %u weights of modules_to_save replace the base's", dir, g_hash_table_size (saved));
  return TRUE;
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
  if (!cria_adapter_attach (adapter, model, 0, error) || !cria_adapter_load_peft_weights (adapter, dir, error) ||
      !load_saved_modules (model, dir, error)) {
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
