/* cria-adapter-model.c: adapters on a loaded model — the parameter table
 * offered to attach and merge, and PEFT directories loaded for generation. */
#include "config.h"

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-model.h>
#include <cria/cria-nf4.h>
#include <cria/cria-safetensors.h>
#include <cria/cria-tokenizer.h>

#include <stdio.h>
#include <stdlib.h>
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

/* LLaMA-Factory saves the tokenizer beside the adapter, with the tokens it
 * added: it replaces the base's. TRUE in *found when `dir` holds one. */
static gboolean
find_tokenizer (const char *dir, gboolean *found, GError **error)
{
  g_autoptr (GError) why = NULL;
  g_autoptr (CriaTokenizerFiles) files = cria_tokenizer_files_new (dir, &why);
  *found = files != NULL;
  if (!files && !g_error_matches (why, CRIA_ERROR, CRIA_ERROR_NOT_FOUND)) {
    g_propagate_error (error, g_steal_pointer (&why));
    return FALSE;
  }
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* A tensor saved whole, checked against the base weight it replaces and
 * read in f32. Its rows may differ from the base's for a weight of the
 * vocabulary's size only (PEFT saves the resized embeddings and head). */
static CriaTensor *
read_saved (CriaModel *model, CriaSafetensors *st, const char *tensor, const char *weight, GError **error)
{
  const char *path = cria_safetensors_get_path (st);
  const CriaHfConfig *config = cria_model_get_config (model);
  const CriaHfTensorSpec *spec = cria_model_get_param_spec (model, weight);
  if (!spec) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: tensor %s (modules_to_save) replaces %s, which the model does not have", path, tensor, weight);
    return NULL;
  }
  if (!cria_model_get_param (model, weight) && !(spec->optional && config->tie_word_embeddings)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: tensor %s (modules_to_save) replaces %s, which the model does not hold", path, tensor, weight);
    return NULL;
  }
  const CriaModelVTable *vt = cria_provider_get_vtable (cria_model_get_provider (model));
  if (vt->transposed && vt->transposed (config, weight)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: tensor %s (modules_to_save): a transposed (Conv1D) weight is not supported", path, tensor);
    return NULL;
  }
  const CriaWeight *w = cria_safetensors_lookup (st, tensor);
  gboolean vocab_rows = spec->n_dims == 2 && spec->shape[0] == config->vocab_size;
  if (w->n_dims != spec->n_dims || (spec->n_dims == 2 && w->shape[1] != spec->shape[1]) ||
      (w->shape[0] != spec->shape[0] && !vocab_rows) || w->shape[0] < 1) {
    g_autofree char *have = cria_weight_shape_string (w);
    g_autofree char *want = cria_shape_to_string ((int) spec->n_dims, spec->shape);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: tensor %s is %s, the model's %s is %s%s", path,
                 tensor, have, weight, want, vocab_rows ? "" : " (only a vocabulary-sized weight may be resized)");
    return NULL;
  }
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_F32, (int) w->n_dims, w->shape);
  if (!cria_adapter_copy_in (st, tensor, t, w->n_dims, w->shape, error)) {
    g_prefix_error (error, "%s: ", path);
    return NULL;
  }
  return g_steal_pointer (&t);
}

/* The modules the adapter saved whole (modules_to_save) replace the base's.
 * Saved with more (or fewer) rows than the vocabulary, as LLaMA-Factory
 * writes a vocabulary resized for added tokens, they resize the model's
 * vocabulary; a head saved for a model that ties it to the embeddings
 * unties them, as PEFT's separate copies of the two modules do. */
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
  const CriaHfConfig *config = cria_model_get_config (model);
  gint64 vocab = config->vocab_size;
  const char *sizer = NULL; /* the first saved tensor of the vocabulary's size */
  gboolean untie = FALSE;
  g_autoptr (GHashTable)
      weights = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) cria_tensor_unref);
  guint n = 0;
  g_autofree gpointer *tensors = g_hash_table_get_keys_as_array (saved, &n);
  qsort (tensors, n, sizeof *tensors, compare_names);
  for (guint i = 0; i < n; i++) {
    const char *tensor = tensors[i], *weight = g_hash_table_lookup (saved, tensor);
    CriaTensor *t = read_saved (model, st, tensor, weight, error);
    if (!t)
      return FALSE;
    g_hash_table_insert (weights, (gpointer) weight, t);
    untie = untie || !cria_model_get_param (model, weight);
    const CriaHfTensorSpec *spec = cria_model_get_param_spec (model, weight);
    if (spec->n_dims != 2 || spec->shape[0] != config->vocab_size)
      continue;
    if (sizer && t->shape[0] != vocab) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: tensor %s has %" G_GINT64_FORMAT " rows, tensor %s %" G_GINT64_FORMAT
                   ": the saved modules disagree on the vocabulary size",
                   path, tensor, t->shape[0], sizer, vocab);
      return FALSE;
    }
    sizer = tensor;
    vocab = t->shape[0];
  }
  if (vocab != config->vocab_size) {
    gboolean found;
    if (!find_tokenizer (dir, &found, error))
      return FALSE;
    if (!found) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: tensor %s resizes the vocabulary from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                   " tokens, but %s holds no tokenizer (tokenizer.json) that encodes the added tokens",
                   path, sizer, config->vocab_size, vocab, dir);
      return FALSE;
    }
  }
  if (vocab != config->vocab_size || untie) {
    gint64 was = config->vocab_size;
    g_autoptr (JsonObject) changes = json_object_new ();
    if (vocab != was)
      json_object_set_int_member (changes, "vocab_size", vocab);
    if (untie)
      json_object_set_boolean_member (changes, "tie_word_embeddings", FALSE);
    if (!cria_model_reconfigure (model, changes, weights, path, error))
      return FALSE;
    if (vocab != was)
      g_message ("adapter %s: the vocabulary is resized from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " tokens", dir,
                 was, vocab);
    if (untie)
      g_message ("adapter %s: saves an output head of its own: the model's embeddings are untied from it", dir);
  } else {
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, weights);
    while (g_hash_table_iter_next (&it, &key, &value))
      if (!cria_model_set_param (model, key, value, FALSE, error)) {
        g_prefix_error (error, "%s: ", path);
        return FALSE;
      }
  }
  if (n)
    g_message ("adapter %s: %u weights of modules_to_save replace the base's", dir, n);
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
  gboolean tokenizer = FALSE;
  if (!cria_adapter_attach (adapter, model, 0, error) || !cria_adapter_load_peft_weights (adapter, dir, error) ||
      !load_saved_modules (model, dir, error) || !find_tokenizer (dir, &tokenizer, error)) {
    g_prefix_error (error, "adapter %s on model %s: ", dir, cria_model_get_dir (model));
    return NULL;
  }
  if (tokenizer)
    cria_model_set_tokenizer_dir (model, dir);
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
