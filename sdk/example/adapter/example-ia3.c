/* example-ia3: an adapter built out of tree against the installed SDK —
 * (IA)^3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is
 * Better and Cheaper than In-Context Learning"), saved and loaded in PEFT's
 * IA3 format.
 *
 *   cria train --model llama-dir --data train.jsonl --adapter 'ia3' --lr 3e-2 --out run1
 *   cria generate --model llama-dir --adapter run1 --prompt 'Hello'
 *
 * IA3 learns one vector per targeted linear layer and multiplies it in:
 * into the output of attention layers (k_proj, v_proj: y' = l * (x W^T + b),
 * l of [out]) and into the input of feed-forward layers (down_proj:
 * y' = (l * x) W^T + b, l of [in]). The vectors start at ones, so the
 * adapted model starts as the base model. PEFT stores each vector as
 * base_model.model.<module>.ia3_l, [out, 1] for attention layers and
 * [1, in] for feed-forward ones, and lists target_modules and
 * feedforward_modules in adapter_config.json with peft_type "IA3".
 *
 * Like every adapter it never sees the model's forward pass: attach picks
 * the linear layers by name from the parameter table, and the graph's linear
 * hook rewrites them as they are built. A feed-forward layer is computed
 * again on the scaled input (cria_linear_get_params gives its weight), so
 * the base's down_proj matmul is done twice in the forward pass; merging
 * removes that cost. */
#include <string.h>

#include <cria/cria.h>
#include <cria/cria-adapter.h>

static const CriaPropSpec ia3_props[] = {
  { .name = "target-modules",
    .type = CRIA_PROP_STRING,
    .default_value = "auto",
    .blurb = "layers to scale: comma-separated names, a regex over the module path, or auto: PEFT's default for the "
             "architecture (k_proj,v_proj,down_proj for LLaMA, Mistral and Qwen2; c_attn,mlp.c_proj for GPT-2)" },
  { .name = "feedforward-modules",
    .type = CRIA_PROP_STRING,
    .default_value = "auto",
    .blurb = "the targeted layers whose input is scaled instead of their output (auto: down_proj for LLaMA, "
             "mlp.c_proj for GPT-2)" },
  { .name = "init-ia3-weights",
    .type = CRIA_PROP_BOOL,
    .default_value = "true",
    .blurb = "start the vectors at ones (the base model); false draws them from N(0, 1) as PEFT does" },
  CRIA_PROP_END
};

typedef struct {
  char *module; /* "model.layers.0.mlp.down_proj" */
  char *key;    /* "base_model.model.model.layers.0.mlp.down_proj.ia3_l" */
  gboolean feedforward;
  CriaTensor *l; /* f32 [in] for feed-forward layers, [out] for the others */
} Ia3Layer;

typedef struct {
  char *targets, *feedforward;
  GRegex *targets_regex, *feedforward_regex;
  gboolean init_ones;
  gboolean fan_in_fan_out;
  GPtrArray *layers; /* Ia3Layer* */
  GHashTable *by_module;
} Ia3;

static void
layer_free (Ia3Layer *layer)
{
  g_free (layer->module);
  g_free (layer->key);
  cria_tensor_unref (layer->l);
  g_free (layer);
}

static void
ia3_destroy (gpointer self)
{
  Ia3 *a = self;
  g_hash_table_unref (a->by_module);
  g_ptr_array_unref (a->layers);
  g_clear_pointer (&a->targets_regex, g_regex_unref);
  g_clear_pointer (&a->feedforward_regex, g_regex_unref);
  g_free (a->targets);
  g_free (a->feedforward);
  g_free (a);
}

/* Sets `*field` to `value`, and `*regex` to its regex when it is one. */
static gboolean
set_modules (char **field, GRegex **regex, const char *value, GError **error)
{
  g_autoptr (GRegex) re = cria_adapter_target_regex (value, error);
  if (!re && error && *error)
    return FALSE;
  g_free (*field);
  *field = g_strdup (value);
  g_clear_pointer (regex, g_regex_unref);
  *regex = g_steal_pointer (&re);
  return TRUE;
}

static gpointer
ia3_create (const CriaProps *props, GError **error)
{
  Ia3 *a = g_new0 (Ia3, 1);
  a->layers = g_ptr_array_new_with_free_func ((GDestroyNotify) layer_free);
  a->by_module = g_hash_table_new (g_str_hash, g_str_equal);
  a->init_ones = cria_props_get_bool (props, "init-ia3-weights");
  if (!set_modules (&a->targets, &a->targets_regex, cria_props_get_string (props, "target-modules"), error) ||
      !set_modules (&a->feedforward, &a->feedforward_regex, cria_props_get_string (props, "feedforward-modules"),
                    error)) {
    g_prefix_error (error, "ia3: ");
    ia3_destroy (a);
    return NULL;
  }
  return a;
}

/* PEFT's defaults per model_type (its IA3 target and feed-forward mappings). */
static const char *
default_modules (JsonObject *config, gboolean feedforward)
{
  const char *type = config ? json_object_get_string_member_with_default (config, "model_type", "") : "";
  if (strcmp (type, "gpt2") == 0)
    return feedforward ? "mlp.c_proj" : "c_attn,mlp.c_proj";
  if (strcmp (type, "llama") == 0 || strcmp (type, "mistral") == 0 || strcmp (type, "qwen2") == 0)
    return feedforward ? "down_proj" : "k_proj,v_proj,down_proj";
  return NULL;
}

/* "auto" in target-modules or feedforward-modules becomes PEFT's default. */
static gboolean
resolve_auto (char **field, GRegex **regex, JsonObject *config, gboolean feedforward, GError **error)
{
  if (strcmp (*field, "auto") != 0)
    return TRUE;
  const char *resolved = default_modules (config, feedforward);
  if (!resolved) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "ia3: no default %s for model_type \"%s\": give it",
                 feedforward ? "feedforward-modules" : "target-modules",
                 config ? json_object_get_string_member_with_default (config, "model_type", "") : "");
    return FALSE;
  }
  return set_modules (field, regex, resolved, error);
}

static char *
module_of (const char *name)
{
  return g_str_has_suffix (name, ".weight") ? g_strndup (name, strlen (name) - strlen (".weight")) : NULL;
}

static gboolean
ia3_attach (gpointer self, CriaAdapterEntry *entries, guint n_entries, JsonObject *config, guint64 seed, GError **error)
{
  Ia3 *a = self;
  if (!resolve_auto (&a->targets, &a->targets_regex, config, FALSE, error) ||
      !resolve_auto (&a->feedforward, &a->feedforward_regex, config, TRUE, error))
    return FALSE;
  g_autoptr (GRand) rand = g_rand_new_with_seed_array ((const guint32[]){ (guint32) seed, (guint32) (seed >> 32) }, 2);
  for (guint i = 0; i < n_entries; i++) {
    CriaAdapterEntry *e = &entries[i];
    g_autofree char *module = e->linear ? module_of (e->name) : NULL;
    if (!module)
      continue;
    if (!cria_adapter_target_matches (a->targets, a->targets_regex, module)) {
      /* PEFT refuses a feed-forward module that is not a target, too. */
      if (cria_adapter_target_matches (a->feedforward, a->feedforward_regex, module)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "ia3: %s is among feedforward-modules=%s but not among target-modules=%s", module, a->feedforward,
                     a->targets);
        return FALSE;
      }
      continue;
    }
    if (e->tensor->n_dims != 2) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "ia3: %s is not a matrix", e->name);
      return FALSE;
    }
    Ia3Layer *layer = g_new0 (Ia3Layer, 1);
    layer->feedforward = cria_adapter_target_matches (a->feedforward, a->feedforward_regex, module);
    layer->key = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, module, ".ia3_l", NULL);
    layer->module = g_steal_pointer (&module);
    gint64 n = layer->feedforward ? e->tensor->shape[1] : e->tensor->shape[0];
    layer->l = cria_tensor_new (CRIA_DTYPE_F32, 1, &n);
    float *l = layer->l->data;
    for (gint64 j = 0; j < n; j++)
      l[j] = a->init_ones ? 1.0f : cria_adapter_gaussian (rand);
    a->fan_in_fan_out |= e->fan_in_fan_out;
    g_ptr_array_add (a->layers, layer);
    g_hash_table_insert (a->by_module, layer->module, layer);
  }
  if (a->layers->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "ia3: target-modules=%s matches no linear layer of the model", a->targets);
    return FALSE;
  }
  return TRUE;
}

static CriaNode *
ia3_linear (CriaGraph *g, const char *name, CriaNode *x, CriaNode *out, gpointer self)
{
  Ia3 *a = self;
  Ia3Layer *layer = g_hash_table_lookup (a->by_module, name);
  if (!layer)
    return out;
  g_autofree char *lname = g_strconcat (name, ".ia3_l", NULL);
  CriaNode *l = cria_graph_param (g, lname, layer->l, TRUE);
  if (!layer->feedforward)
    return cria_mul (g, out, l); /* l broadcasts over [batch, seq] */
  CriaNode *w, *b;
  if (!cria_linear_get_params (out, &w, &b))
    return cria_graph_fail (g, "ia3: %s was not built by cria_linear", name);
  CriaNode *y = cria_matmul (g, cria_mul (g, x, l), w, FALSE, TRUE);
  return b ? cria_add (g, y, b) : y;
}

static void
ia3_list_params (gpointer self, GArray *params)
{
  Ia3 *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    Ia3Layer *layer = g_ptr_array_index (a->layers, i);
    CriaAdapterParam p = { layer->key, layer->l, TRUE };
    g_array_append_val (params, p);
  }
}

/* PEFT's file shape of a vector: [out, 1], or [1, in] for feed-forward layers. */
static void
file_shape (const Ia3Layer *layer, gint64 shape[2])
{
  shape[0] = layer->feedforward ? 1 : layer->l->shape[0];
  shape[1] = layer->feedforward ? layer->l->shape[0] : 1;
}

static gboolean
ia3_save (gpointer self, JsonObject *config, GArray *weights, GError **error)
{
  Ia3 *a = self;
  cria_adapter_config_set_targets (config, a->targets, a->targets_regex);
  /* The same form for feedforward_modules: a list of names, or the regex string. */
  g_autoptr (JsonObject) ff = json_object_new ();
  cria_adapter_config_set_targets (ff, a->feedforward, a->feedforward_regex);
  json_object_set_member (config, "feedforward_modules",
                          json_node_copy (json_object_get_member (ff, "target_modules")));
  json_object_set_boolean_member (config, "fan_in_fan_out", a->fan_in_fan_out);
  json_object_set_boolean_member (config, "init_ia3_weights", a->init_ones);
  json_object_set_null_member (config, "modules_to_save");
  for (guint i = 0; i < a->layers->len; i++) {
    Ia3Layer *layer = g_ptr_array_index (a->layers, i);
    gint64 shape[2];
    file_shape (layer, shape);
    cria_adapter_add_weight (weights, layer->key, layer->l->data, 2, shape);
  }
  return TRUE;
}

static gboolean
ia3_configure (gpointer self, JsonObject *config, const char *file, GError **error)
{
  Ia3 *a = self;
  if (!cria_adapter_config_get_targets (config, file, &a->targets, &a->targets_regex, error))
    return FALSE;
  /* feedforward_modules has target_modules' forms: read it through the same helper. */
  JsonNode *ff = json_object_get_member (config, "feedforward_modules");
  if (ff && !JSON_NODE_HOLDS_NULL (ff)) {
    g_autoptr (JsonObject) tmp = json_object_new ();
    json_object_set_member (tmp, "target_modules", json_node_copy (ff));
    g_autoptr (GError) ff_error = NULL;
    if (!cria_adapter_config_get_targets (tmp, file, &a->feedforward, &a->feedforward_regex, &ff_error)) {
      g_autofree char *msg = g_strdup (ff_error->message);
      char *at = strstr (msg, "target_modules");
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%.*sfeedforward_modules%s", at ? (int) (at - msg) : 0, msg,
                   at ? at + strlen ("target_modules") : "");
      return FALSE;
    }
  } else {
    /* PEFT reads a missing feedforward_modules as "none of them". */
    set_modules (&a->feedforward, &a->feedforward_regex, "", NULL);
  }
  JsonNode *init = json_object_get_member (config, "init_ia3_weights");
  if (init && json_node_get_value_type (init) == G_TYPE_BOOLEAN)
    a->init_ones = json_node_get_boolean (init);
  return TRUE;
}

static gboolean
ia3_load (gpointer self, CriaSafetensors *st, GError **error)
{
  Ia3 *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    Ia3Layer *layer = g_ptr_array_index (a->layers, i);
    gint64 shape[2];
    file_shape (layer, shape);
    if (!cria_adapter_copy_in (st, layer->key, layer->l, 2, shape, error))
      return FALSE;
  }
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const char *name = cria_safetensors_get_weight (st, i)->name;
    g_autofree char *module = g_str_has_prefix (name, CRIA_ADAPTER_PEFT_PREFIX) && g_str_has_suffix (name, ".ia3_l")
                                  ? g_strndup (name + strlen (CRIA_ADAPTER_PEFT_PREFIX),
                                               strlen (name) - strlen (CRIA_ADAPTER_PEFT_PREFIX) - strlen (".ia3_l"))
                                  : NULL;
    if (!module || !g_hash_table_contains (a->by_module, module)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "tensor %s matches no adapted layer of the model (a different model or target_modules?)", name);
      return FALSE;
    }
  }
  return TRUE;
}

/* As PEFT merges: W[i, :] *= l[i] and b[i] *= l[i] for attention layers,
 * W[:, j] *= l[j] for feed-forward ones (their bias is left alone). */
static gboolean
ia3_merge (gpointer self, CriaAdapterEntry *entries, guint n_entries, GError **error)
{
  Ia3 *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    Ia3Layer *layer = g_ptr_array_index (a->layers, i);
    g_autofree char *wname = g_strconcat (layer->module, ".weight", NULL);
    g_autofree char *bname = g_strconcat (layer->module, ".bias", NULL);
    CriaAdapterEntry *we = cria_adapter_find_entry (entries, n_entries, wname);
    if (!we || we->tensor->dtype != CRIA_DTYPE_F32 || we->tensor->n_dims != 2) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "ia3: merge needs an f32 %s", wname);
      return FALSE;
    }
    gint64 out = we->tensor->shape[0], in = we->tensor->shape[1];
    float *w = we->tensor->data;
    const float *l = layer->l->data;
    for (gint64 r = 0; r < out; r++)
      for (gint64 c = 0; c < in; c++)
        w[r * in + c] *= l[layer->feedforward ? c : r];
    CriaAdapterEntry *be = layer->feedforward ? NULL : cria_adapter_find_entry (entries, n_entries, bname);
    if (be) {
      if (be->tensor->dtype != CRIA_DTYPE_F32 || cria_tensor_numel (be->tensor) != out) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "ia3: merge needs an f32 %s of %" G_GINT64_FORMAT, bname,
                     out);
        return FALSE;
      }
      float *bias = be->tensor->data;
      for (gint64 r = 0; r < out; r++)
        bias[r] *= l[r];
    }
  }
  return TRUE;
}

static const CriaAdapterVTable ia3_vtable = {
  CRIA_VTABLE_INIT (CriaAdapterVTable),
  .peft_type = "IA3",
  .create = ia3_create,
  .destroy = ia3_destroy,
  .attach = ia3_attach,
  .linear = ia3_linear,
  .list_params = ia3_list_params,
  .save = ia3_save,
  .configure = ia3_configure,
  .load = ia3_load,
  .merge = ia3_merge,
};

static const CriaProviderInfo ia3_info = {
  .name = "ia3",
  .description = "(IA)^3: learned vectors scaling attention outputs and feed-forward inputs, in PEFT's format "
                 "(an SDK example)",
  .example = "cria train --model llama --data train.jsonl --adapter ia3 --lr 3e-2",
  .props = ia3_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_adapter (plugin, &ia3_info, &ia3_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (example_ia3, "An example adapter built out of tree", plugin_init, "1.0", "MIT", "cria SDK example");
