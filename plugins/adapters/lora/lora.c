/* lora: low-rank adapters (Hu et al., 2021) on the model's linear layers,
 * saved and loaded in PEFT's LoRA format.
 *
 *   cria train --model gpt2-dir --data train.jsonl --adapter 'lora r=8 alpha=16 target-modules=c_attn'
 *
 * Each targeted layer y = x W^T + b becomes y + s * dropout(x) A^T B^T with
 * A [r, in] and B [out, r], s = alpha / r (alpha / sqrt(r) with rsLoRA); W
 * stays frozen. A starts as PEFT's kaiming-uniform with a = sqrt(5), which is
 * U(-1/sqrt(in), 1/sqrt(in)), or N(0, 1/r) for init=gaussian; B starts at
 * zero, so the adapted model starts as the base model. A and B are [r, in]
 * and [out, r] whatever the file layout of W (GPT-2's Conv1D included), as
 * PEFT stores them. init-from=DIR starts A and B from a saved PEFT LoRA
 * directory instead, whatever the seed: how a run starts where another
 * trainer (PEFT, in bench/cuda/peft_parity.py) starts.
 *
 * qlora (Dettmers et al., 2023) is the same provider with one step more at
 * attach: every frozen 2-D linear weight of the base (not the embeddings nor
 * the output head, which bitsandbytes' 4-bit loading leaves alone) is
 * replaced by its NF4 quantization, and the graph's NF4 matmul runs on it.
 * The adapter itself is plain LoRA: PEFT saves QLoRA adapters with
 * peft_type LORA, and merging goes into the dequantized weights.
 *
 *   cria train --model qwen-dir --data train.jsonl --adapter 'qlora r=16 alpha=32 target-modules=all-linear' */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria.h>
#include <cria/cria-adapter.h>

static const CriaPropSpec lora_props[] = {
  { "r", CRIA_PROP_INT, "8", 1, 4096, NULL, "rank of the update B A of each targeted layer" },
  { "alpha", CRIA_PROP_DOUBLE, "16", 0, 1e6, NULL,
    "scaling numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with use-rslora)" },
  { "dropout", CRIA_PROP_DOUBLE, "0", 0, 0.999, NULL,
    "dropout probability on the input of the adapter branch only (training)" },
  { "target-modules", CRIA_PROP_STRING, "auto", 0, 0, NULL,
    "layers to adapt: comma-separated names (c_attn,q_proj), a regex over the module path, all-linear (not the "
    "output head), or auto: PEFT's default for the architecture, as its model provider says (q_proj,v_proj for "
    "LLaMA)" },
  { "bias", CRIA_PROP_ENUM, "none", 0, 0, "none|all|lora_only",
    "biases trained alongside: none, every bias of the model, or those of the adapted layers" },
  { "use-rslora", CRIA_PROP_BOOL, "false", 0, 0, NULL, "rank-stabilized scaling alpha / sqrt(r) instead of alpha / r" },
  { "init", CRIA_PROP_ENUM, "uniform", 0, 0, "uniform|gaussian",
    "initial A: kaiming-uniform as PEFT (a=sqrt(5)) or normal with std 1/r; B starts at zero" },
  { "init-from", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "start A and B (and trained biases) from a saved PEFT LoRA directory (adapter_config.json, "
    "adapter_model.safetensors) instead of init, whatever the seed; its r, lora_alpha, use_rslora, bias and "
    "adapted layers must be these" },
  CRIA_PROP_END
};

typedef enum { BIAS_NONE, BIAS_ALL, BIAS_LORA_ONLY } BiasMode;
static const char *const bias_names[] = { "none", "all", "lora_only" };

typedef struct {
  char *module; /* "model.layers.0.self_attn.q_proj" */
  char *key_a, *key_b;
  CriaTensor *a; /* [r, in] */
  CriaTensor *b; /* [out, r] */
  guint64 seed;  /* of its dropout mask */
} LoraLayer;

typedef struct {
  char *name; /* "model.layers.0.self_attn.q_proj.bias" */
  char *key;
  CriaTensor *value;
} TrainedBias;

typedef struct {
  gint64 r;
  double alpha, dropout;
  char *targets;
  GRegex *regex;
  BiasMode bias;
  gboolean rslora;
  gboolean gaussian;
  gboolean fan_in_fan_out;
  gboolean training;
  char *init_from;      /* a PEFT directory the initial values come from */
  gboolean quantize;    /* qlora: the base's linear weights go NF4 at attach */
  GPtrArray *quantized; /* CriaTensor*: the NF4 weights handed to the table */
  GPtrArray *layers;    /* LoraLayer* */
  GHashTable *by_module;
  GPtrArray *biases; /* TrainedBias* */
} Lora;

static void
layer_free (LoraLayer *l)
{
  g_free (l->module);
  g_free (l->key_a);
  g_free (l->key_b);
  cria_tensor_unref (l->a);
  cria_tensor_unref (l->b);
  g_free (l);
}

static void
bias_free (TrainedBias *b)
{
  g_free (b->name);
  g_free (b->key);
  cria_tensor_unref (b->value);
  g_free (b);
}

static double
lora_scale (const Lora *l)
{
  return l->rslora ? l->alpha / sqrt ((double) l->r) : l->alpha / (double) l->r;
}

static gpointer
lora_create (const CriaProps *props, GError **error)
{
  g_autoptr (GRegex) regex = cria_adapter_target_regex (cria_props_get_string (props, "target-modules"), error);
  if (!regex && error && *error)
    return NULL;
  Lora *l = g_new0 (Lora, 1);
  l->r = cria_props_get_int (props, "r");
  l->alpha = cria_props_get_double (props, "alpha");
  l->dropout = cria_props_get_double (props, "dropout");
  l->targets = g_strdup (cria_props_get_string (props, "target-modules"));
  l->regex = g_steal_pointer (&regex);
  const char *bias = cria_props_get_string (props, "bias");
  l->bias = strcmp (bias, "all") == 0 ? BIAS_ALL : strcmp (bias, "lora_only") == 0 ? BIAS_LORA_ONLY : BIAS_NONE;
  l->rslora = cria_props_get_bool (props, "use-rslora");
  l->gaussian = strcmp (cria_props_get_string (props, "init"), "gaussian") == 0;
  l->training = TRUE;
  l->init_from = g_strdup (cria_props_get_string (props, "init-from"));
  l->layers = g_ptr_array_new_with_free_func ((GDestroyNotify) layer_free);
  l->by_module = g_hash_table_new (g_str_hash, g_str_equal);
  l->biases = g_ptr_array_new_with_free_func ((GDestroyNotify) bias_free);
  l->quantized = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  return l;
}

static gpointer
qlora_create (const CriaProps *props, GError **error)
{
  Lora *l = lora_create (props, error);
  if (l)
    l->quantize = TRUE;
  return l;
}

static void
lora_destroy (gpointer self)
{
  Lora *l = self;
  g_hash_table_unref (l->by_module);
  g_ptr_array_unref (l->layers);
  g_ptr_array_unref (l->biases);
  g_ptr_array_unref (l->quantized);
  g_clear_pointer (&l->regex, g_regex_unref);
  g_free (l->targets);
  g_free (l->init_from);
  g_free (l);
}

/* The module path of a weight name, or NULL when it is not "<module>.weight". */
static char *
module_of (const char *name, const char *suffix)
{
  return g_str_has_suffix (name, suffix) ? g_strndup (name, strlen (name) - strlen (suffix)) : NULL;
}

static void
init_a (Lora *l, CriaTensor *a, GRand *rand)
{
  float *d = a->data;
  gint64 in = a->shape[1];
  double bound = 1.0 / sqrt ((double) in);
  for (gint64 i = 0; i < cria_tensor_numel (a); i++)
    d[i] = l->gaussian ? cria_adapter_gaussian (rand) / (float) l->r
                       : (float) g_rand_double_range (rand, -bound, bound);
}

static TrainedBias *
train_bias (Lora *l, CriaAdapterEntry *e)
{
  TrainedBias *b = g_new0 (TrainedBias, 1);
  b->name = g_strdup (e->name);
  b->key = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, e->name, NULL);
  b->value = cria_tensor_to_f32 (e->tensor);
  e->replacement = b->value;
  e->replacement_trainable = TRUE;
  g_ptr_array_add (l->biases, b);
  return b;
}

static gboolean init_from_peft (Lora *l, GError **error);

static gboolean
lora_attach (gpointer self, CriaAdapterEntry *entries, guint n_entries, JsonObject *config, guint64 seed,
             GError **error)
{
  Lora *l = self;
  char *targets = cria_adapter_resolve_targets (l->targets, entries, n_entries);
  g_free (l->targets);
  l->targets = targets;
  g_autoptr (GRand) rand = g_rand_new_with_seed_array ((const guint32[]){ (guint32) seed, (guint32) (seed >> 32) }, 2);
  for (guint i = 0; i < n_entries; i++) {
    CriaAdapterEntry *e = &entries[i];
    g_autofree char *module = e->linear ? module_of (e->name, ".weight") : NULL;
    if (!module || !cria_adapter_target_matches (l->targets, l->regex, module))
      continue;
    if (e->tensor->n_dims != 2) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "lora: %s is not a matrix", e->name);
      return FALSE;
    }
    LoraLayer *layer = g_new0 (LoraLayer, 1);
    layer->module = g_steal_pointer (&module);
    layer->key_a = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, layer->module, ".lora_A.weight", NULL);
    layer->key_b = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, layer->module, ".lora_B.weight", NULL);
    layer->a = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ l->r, e->tensor->shape[1] });
    layer->b = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ e->tensor->shape[0], l->r });
    layer->seed = seed ^ ((guint64) (l->layers->len + 1) * 0x9e3779b97f4a7c15ull);
    init_a (l, layer->a, rand);
    l->fan_in_fan_out |= e->fan_in_fan_out;
    g_ptr_array_add (l->layers, layer);
    g_hash_table_insert (l->by_module, layer->module, layer);
  }
  if (l->layers->len == 0) {
    const char *example = NULL;
    for (guint i = 0; i < n_entries && !example; i++)
      if (entries[i].linear)
        example = entries[i].name;
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "lora: target-modules=%s matches no linear layer of the model (its layers look like %s)", l->targets,
                 example ? example : "nothing: the model has no linear layers");
    return FALSE;
  }
  for (guint i = 0; i < n_entries && l->bias != BIAS_NONE; i++) {
    g_autofree char *module = module_of (entries[i].name, ".bias");
    if (module && (l->bias == BIAS_ALL || g_hash_table_contains (l->by_module, module)))
      train_bias (l, &entries[i]);
  }
  if (l->init_from && !init_from_peft (l, error))
    return FALSE;
  if (l->quantize && !cria_adapter_quantize_entries (entries, n_entries, l->quantized, error)) {
    g_prefix_error (error, "qlora: ");
    return FALSE;
  }
  return TRUE;
}

static CriaNode *
lora_linear (CriaGraph *g, const char *name, CriaNode *x, CriaNode *out, gpointer self)
{
  Lora *l = self;
  LoraLayer *layer = g_hash_table_lookup (l->by_module, name);
  if (!layer)
    return out;
  g_autofree char *name_a = g_strconcat (name, ".lora_A", NULL);
  g_autofree char *name_b = g_strconcat (name, ".lora_B", NULL);
  CriaNode *a = cria_graph_param (g, name_a, layer->a, TRUE);
  CriaNode *b = cria_graph_param (g, name_b, layer->b, TRUE);
  CriaNode *h = x;
  if (l->training && l->dropout > 0)
    h = cria_dropout (g, h, (float) l->dropout, layer->seed);
  h = cria_matmul (g, h, a, FALSE, TRUE);
  h = cria_matmul (g, h, b, FALSE, TRUE);
  h = cria_scale (g, h, (float) lora_scale (l));
  return cria_add (g, out, h);
}

static void
lora_list_params (gpointer self, GArray *params)
{
  Lora *l = self;
  for (guint i = 0; i < l->layers->len; i++) {
    LoraLayer *layer = g_ptr_array_index (l->layers, i);
    CriaAdapterParam pa = { layer->key_a, layer->a, TRUE }, pb = { layer->key_b, layer->b, TRUE };
    g_array_append_val (params, pa);
    g_array_append_val (params, pb);
  }
  for (guint i = 0; i < l->biases->len; i++) {
    TrainedBias *b = g_ptr_array_index (l->biases, i);
    CriaAdapterParam p = { b->key, b->value, FALSE };
    g_array_append_val (params, p);
  }
}

static void
lora_set_training (gpointer self, gboolean training, guint64 step_seed)
{
  (void) step_seed;
  ((Lora *) self)->training = training;
}

static void
save_tensor (GArray *weights, const char *key, CriaTensor *t)
{
  cria_adapter_add_weight (weights, key, t->data, (guint) t->n_dims, t->shape);
}

static gboolean
lora_save (gpointer self, JsonObject *config, GArray *weights, GError **error)
{
  (void) error;
  Lora *l = self;
  json_object_set_int_member (config, "r", l->r);
  json_object_set_double_member (config, "lora_alpha", l->alpha);
  json_object_set_double_member (config, "lora_dropout", l->dropout);
  cria_adapter_config_set_targets (config, l->targets, l->regex);
  json_object_set_string_member (config, "bias", bias_names[l->bias]);
  json_object_set_boolean_member (config, "fan_in_fan_out", l->fan_in_fan_out);
  json_object_set_boolean_member (config, "use_rslora", l->rslora);
  if (l->gaussian)
    json_object_set_string_member (config, "init_lora_weights", "gaussian");
  else
    json_object_set_boolean_member (config, "init_lora_weights", TRUE);
  json_object_set_null_member (config, "modules_to_save");
  json_object_set_null_member (config, "layers_to_transform");
  json_object_set_null_member (config, "layers_pattern");
  json_object_set_object_member (config, "rank_pattern", json_object_new ());
  json_object_set_object_member (config, "alpha_pattern", json_object_new ());
  json_object_set_boolean_member (config, "use_dora", FALSE);
  for (guint i = 0; i < l->layers->len; i++) {
    LoraLayer *layer = g_ptr_array_index (l->layers, i);
    save_tensor (weights, layer->key_a, layer->a);
    save_tensor (weights, layer->key_b, layer->b);
  }
  for (guint i = 0; i < l->biases->len; i++) {
    TrainedBias *b = g_ptr_array_index (l->biases, i);
    save_tensor (weights, b->key, b->value);
  }
  return TRUE;
}

static gboolean
lora_configure (gpointer self, JsonObject *config, const char *file, GError **error)
{
  Lora *l = self;
  if (!cria_adapter_config_get_int (config, "r", file, 1, 4096, &l->r, error) ||
      !cria_adapter_config_get_double (config, "lora_alpha", file, &l->alpha, error) ||
      !cria_adapter_config_get_double (config, "lora_dropout", file, &l->dropout, error) ||
      !cria_adapter_config_get_targets (config, file, &l->targets, &l->regex, error))
    return FALSE;
  const char *bias = json_object_get_string_member_with_default (config, "bias", "none");
  guint i;
  for (i = 0; i < G_N_ELEMENTS (bias_names) && strcmp (bias, bias_names[i]) != 0; i++)
    ;
  if (i == G_N_ELEMENTS (bias_names)) {
    g_autofree char *q = cria_error_quote (bias, -1, 30);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field bias: \"%s\" is not none, all or lora_only", file, q);
    return FALSE;
  }
  l->bias = (BiasMode) i;
  l->rslora = json_object_get_boolean_member_with_default (config, "use_rslora", FALSE);
  JsonNode *dora = json_object_get_member (config, "use_dora");
  if (dora && json_node_get_value_type (dora) == G_TYPE_BOOLEAN && json_node_get_boolean (dora)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: field use_dora: DoRA adapters are not supported",
                 file);
    return FALSE;
  }
  for (const char *const *f = (const char *const[]){ "rank_pattern", "alpha_pattern", NULL }; *f; f++) {
    JsonNode *p = json_object_get_member (config, *f);
    if (p && JSON_NODE_HOLDS_OBJECT (p) && json_object_get_size (json_node_get_object (p)) > 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: field %s: per-layer ranks are not supported", file,
                   *f);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
load_tensor (CriaSafetensors *st, const char *key, CriaTensor *dst, GError **error)
{
  return cria_adapter_copy_in (st, key, dst, (guint) dst->n_dims, dst->shape, error);
}

static gboolean
lora_load (gpointer self, CriaSafetensors *st, GError **error)
{
  Lora *l = self;
  g_autoptr (GHashTable) known = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < l->layers->len; i++) {
    LoraLayer *layer = g_ptr_array_index (l->layers, i);
    if (!load_tensor (st, layer->key_a, layer->a, error) || !load_tensor (st, layer->key_b, layer->b, error))
      return FALSE;
    g_hash_table_add (known, layer->key_a);
    g_hash_table_add (known, layer->key_b);
  }
  for (guint i = 0; i < l->biases->len; i++) {
    TrainedBias *b = g_ptr_array_index (l->biases, i);
    if (!load_tensor (st, b->key, b->value, error))
      return FALSE;
    g_hash_table_add (known, b->key);
  }
  g_autoptr (GHashTable) saved = cria_adapter_peft_saved_modules (st, error); /* cria_adapter_load's */
  if (!saved)
    return FALSE;
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const char *name = cria_safetensors_get_weight (st, i)->name;
    if (!g_hash_table_contains (known, name) && !g_hash_table_contains (saved, name)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "tensor %s matches no adapted layer of the model (a different model or target_modules?)", name);
      return FALSE;
    }
  }
  return TRUE;
}

/* init-from: the saved values read as cria merge and generate --adapter read
 * them (configure, then load), once the file is known to describe this
 * adapter: another r or scaling would start another model from the same
 * numbers. Layers the file adapts and this one does not, or the reverse, are
 * the load's tensor errors. */
static gboolean
init_from_peft (Lora *l, GError **error)
{
  g_autofree char *config_path = g_build_filename (l->init_from, "adapter_config.json", NULL);
  g_autoptr (JsonNode) root = cria_json_load_file (config_path, error);
  if (!root) {
    g_prefix_error (error, "lora: init-from: ");
    return FALSE;
  }
  JsonObject *config = JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *type = config ? json_object_get_member (config, "peft_type") : NULL;
  if (!type || !JSON_NODE_HOLDS_VALUE (type) || json_node_get_value_type (type) != G_TYPE_STRING ||
      strcmp (json_node_get_string (type), "LORA") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "lora: init-from: %s: field peft_type: not \"LORA\"",
                 config_path);
    return FALSE;
  }
  Lora saved = { 0 };
  gboolean ok = lora_configure (&saved, config, config_path, error);
  const char *field = NULL;
  if (ok && saved.r != l->r)
    field = "r";
  else if (ok && saved.alpha != l->alpha)
    field = "lora_alpha";
  else if (ok && saved.rslora != l->rslora)
    field = "use_rslora";
  else if (ok && saved.bias != l->bias)
    field = "bias";
  if (field) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "lora: init-from: %s: field %s: r=%" G_GINT64_FORMAT " lora_alpha=%g use_rslora=%s bias=%s, this "
                 "adapter has r=%" G_GINT64_FORMAT " alpha=%g use-rslora=%s bias=%s",
                 config_path, field, saved.r, saved.alpha, saved.rslora ? "true" : "false", bias_names[saved.bias],
                 l->r, l->alpha, l->rslora ? "true" : "false", bias_names[l->bias]);
    ok = FALSE;
  }
  for (guint i = 0; ok && i < l->layers->len; i++) {
    LoraLayer *layer = g_ptr_array_index (l->layers, i);
    if (!cria_adapter_target_matches (saved.targets, saved.regex, layer->module)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "lora: init-from: %s: field target_modules: %s does not adapt %s, which target-modules=%s does",
                   config_path, saved.targets, layer->module, l->targets);
      ok = FALSE;
    }
  }
  if (!ok && error && *error && !g_str_has_prefix ((*error)->message, "lora: "))
    g_prefix_error (error, "lora: init-from: ");
  g_free (saved.targets);
  g_clear_pointer (&saved.regex, g_regex_unref);
  if (!ok)
    return FALSE;
  g_autofree char *st_path = g_build_filename (l->init_from, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, error);
  if (!st) {
    g_prefix_error (error, "lora: init-from: ");
    return FALSE;
  }
  if (!lora_load (l, st, error)) {
    g_prefix_error (error, "lora: init-from: %s: ", st_path);
    return FALSE;
  }
  return TRUE;
}

/* W += s B A, in double for each element's dot product over the rank. */
static gboolean
lora_merge (gpointer self, CriaAdapterEntry *entries, guint n_entries, GError **error)
{
  Lora *l = self;

  double s = lora_scale (l);
  for (guint i = 0; i < l->layers->len; i++) {
    LoraLayer *layer = g_ptr_array_index (l->layers, i);
    g_autofree char *wname = g_strconcat (layer->module, ".weight", NULL);
    CriaAdapterEntry *e = cria_adapter_find_entry (entries, n_entries, wname);
    if (!e || e->tensor->dtype != CRIA_DTYPE_F32) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "lora: merge needs an f32 %s", wname);
      return FALSE;
    }
    cria_adapter_add_low_rank (e->tensor->data, layer->b->shape[0], layer->a->shape[1], l->r, layer->b->data, NULL,
                               layer->a->data, s);
  }
  for (guint i = 0; i < l->biases->len; i++) {
    TrainedBias *b = g_ptr_array_index (l->biases, i);
    CriaAdapterEntry *e = cria_adapter_find_entry (entries, n_entries, b->name);
    if (!e || e->tensor->dtype != CRIA_DTYPE_F32 || cria_tensor_numel (e->tensor) != cria_tensor_numel (b->value)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "lora: merge needs an f32 %s", b->name);
      return FALSE;
    }
    memcpy (e->tensor->data, b->value->data, cria_tensor_nbytes (b->value));
  }
  return TRUE;
}

/* lora and qlora differ only in create (qlora quantizes the base at attach). */
#define LORA_VTABLE(create_fn)                                                                                         \
  {                                                                                                                    \
    CRIA_VTABLE_INIT (CriaAdapterVTable),                                                                              \
        .peft_type = "LORA", .create = create_fn, .destroy = lora_destroy, .attach = lora_attach,                      \
        .linear = lora_linear, .list_params = lora_list_params, .set_training = lora_set_training, .save = lora_save,  \
        .configure = lora_configure, .load = lora_load, .merge = lora_merge,                                           \
  }

static const CriaAdapterVTable lora_vtable = LORA_VTABLE (lora_create);
static const CriaAdapterVTable qlora_vtable = LORA_VTABLE (qlora_create);

static const CriaProviderInfo lora_info = {
  .name = "lora",
  .description = "Low-rank adapters on linear layers (LoRA, rsLoRA), in PEFT's format",
  .example = "cria train --model gpt2 --data train.jsonl --adapter 'lora r=8 alpha=16 target-modules=c_attn'",
  .props = lora_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo qlora_info = {
  .name = "qlora",
  .description = "LoRA on a base whose linear weights are quantized to NF4 at attach (QLoRA), saved as PEFT LoRA",
  .example = "cria train --model qwen --data train.jsonl --adapter 'qlora r=16 alpha=32 target-modules=all-linear'",
  .props = lora_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  (void) error;
  cria_plugin_add_adapter (plugin, &lora_info, &lora_vtable);
  cria_plugin_add_adapter (plugin, &qlora_info, &qlora_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (lora, "LoRA and QLoRA adapters", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
