/* adalora: adaptive-rank LoRA (Zhang et al., 2023) in PEFT's AdaLoRA format.
 *
 *   cria train --model qwen-dir --data train.jsonl --adapter 'adalora init-r=12 target-r=4 tinit=10 tfinal=20'
 *
 * Each targeted layer y = x W^T + b becomes
 *   y + alpha / (ranknum + 1e-5) * dropout(x) (Q * E)^T P^T
 * with Q [r, in] (PEFT's lora_A), E [r] (lora_E, saved [r, 1]) and P [out, r]
 * (lora_B); ranknum is init-r while training, as PEFT sets it. Q and P start
 * as normal(0, 0.02), E at zero. The orthogonality regularizer and the rank
 * allocation (cria-adalora.h) run from the trainer's step hooks, so a run
 * cannot leave them out. When the schedule reaches its final budget the
 * kept ranks become the rank_pattern; saving keeps only those rows of Q and
 * E and columns of P (PEFT's resize_state_dict_by_rank_pattern), and an
 * adapter loaded with a rank_pattern has ranknum = the kept rank, as PEFT's
 * resize_modules_by_rank_pattern leaves it. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria.h>
#include <cria/cria-adalora.h>
#include <cria/cria-adapter.h>

static const CriaPropSpec adalora_props[] = {
  { "init-r", CRIA_PROP_INT, "12", 1, 4096, NULL, "rank each targeted layer starts with" },
  { "target-r", CRIA_PROP_INT, "8", 1, 4096, NULL, "average rank per layer left after allocation (<= init-r)" },
  { "tinit", CRIA_PROP_INT, "0", 0, G_MAXINT, NULL, "steps of warmup before any rank is masked" },
  { "tfinal", CRIA_PROP_INT, "0", 0, G_MAXINT, NULL, "last steps, trained with the final rank pattern" },
  { "deltaT", CRIA_PROP_INT, "1", 1, G_MAXINT, NULL, "steps between two rank allocations" },
  { "beta1", CRIA_PROP_DOUBLE, "0.85", 0, 1, NULL, "EMA factor of the sensitivity |w * grad|" },
  { "beta2", CRIA_PROP_DOUBLE, "0.85", 0, 1, NULL, "EMA factor of the sensitivity's uncertainty" },
  { "orth-reg-weight", CRIA_PROP_DOUBLE, "0.5", 0, 1e6, NULL,
    "weight of the orthogonality regularizer of P and Q added to the loss" },
  { "total-step", CRIA_PROP_INT, "0", 0, G_MAXINT, NULL, "steps of the budget schedule; 0: the run's total steps" },
  { "target-modules", CRIA_PROP_STRING, "auto", 0, 0, NULL,
    "layers to adapt: comma-separated names, a regex over the module path, all-linear, or auto (PEFT's default for the "
    "architecture, as its model provider says)" },
  { "alpha", CRIA_PROP_DOUBLE, "8", 0, 1e6, NULL,
    "scaling numerator: the update is multiplied by alpha / (rank + 1e-5); 0 means rank" },
  { "dropout", CRIA_PROP_DOUBLE, "0", 0, 0.999, NULL,
    "dropout probability on the input of the adapter branch (training)" },
  CRIA_PROP_END
};

typedef struct {
  char *module;
  char *key_a, *key_e, *key_b, *pattern_key;
  CriaTensor *q; /* [r, in] */
  CriaTensor *e; /* [r] */
  CriaTensor *p; /* [out, r] */
  guint64 seed;
} AdaLayer;

typedef struct {
  CriaAdaloraConfig ac;
  gint64 init_r;
  double orth_w, alpha, dropout;
  char *targets;
  GRegex *regex;
  gboolean training, fan_in_fan_out;
  GPtrArray *layers;
  GHashTable *by_module;
  CriaAdalora *alloc;
  gboolean final;             /* the rank pattern is fixed (step >= T - tfinal) */
  JsonObject *loaded_pattern; /* rank_pattern of a loaded adapter_config.json */
  JsonNode *resumed;          /* allocator state from a checkpoint, applied at the first step */
  GPtrArray *saved;           /* pruned copies handed to the last save */
} Ada;

static void
ada_layer_free (AdaLayer *l)
{
  g_free (l->module);
  g_free (l->key_a);
  g_free (l->key_e);
  g_free (l->key_b);
  g_free (l->pattern_key);
  cria_tensor_unref (l->q);
  cria_tensor_unref (l->e);
  cria_tensor_unref (l->p);
  g_free (l);
}

static gpointer
ada_create (const CriaProps *props, GError **error)
{
  gint64 init_r = cria_props_get_int (props, "init-r"), target_r = cria_props_get_int (props, "target-r");
  if (target_r > init_r) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "adalora: target-r=%" G_GINT64_FORMAT " is above init-r=%" G_GINT64_FORMAT, target_r, init_r);
    return NULL;
  }
  g_autoptr (GRegex) regex = cria_adapter_target_regex (cria_props_get_string (props, "target-modules"), error);
  if (!regex && error && *error)
    return NULL;
  Ada *a = g_new0 (Ada, 1);
  a->init_r = init_r;
  a->ac.target_r = (int) target_r;
  a->ac.tinit = (int) cria_props_get_int (props, "tinit");
  a->ac.tfinal = (int) cria_props_get_int (props, "tfinal");
  a->ac.delta_t = (int) cria_props_get_int (props, "deltaT");
  a->ac.total_step = (int) cria_props_get_int (props, "total-step");
  a->ac.beta1 = cria_props_get_double (props, "beta1");
  a->ac.beta2 = cria_props_get_double (props, "beta2");
  a->orth_w = cria_props_get_double (props, "orth-reg-weight");
  a->alpha = cria_props_get_double (props, "alpha");
  a->dropout = cria_props_get_double (props, "dropout");
  a->targets = g_strdup (cria_props_get_string (props, "target-modules"));
  a->regex = g_steal_pointer (&regex);
  a->training = TRUE;
  a->layers = g_ptr_array_new_with_free_func ((GDestroyNotify) ada_layer_free);
  a->by_module = g_hash_table_new (g_str_hash, g_str_equal);
  a->saved = g_ptr_array_new_with_free_func (g_free);
  return a;
}

static void
ada_destroy (gpointer self)
{
  Ada *a = self;
  g_clear_pointer (&a->alloc, cria_adalora_free);
  g_hash_table_unref (a->by_module);
  g_ptr_array_unref (a->layers);
  g_clear_pointer (&a->regex, g_regex_unref);
  g_clear_pointer (&a->loaded_pattern, json_object_unref);
  g_clear_pointer (&a->resumed, json_node_unref);
  g_ptr_array_unref (a->saved);
  g_free (a->targets);
  g_free (a);
}

static void
init_normal (CriaTensor *t, GRand *rand)
{
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = 0.02f * cria_adapter_gaussian (rand);
}

/* The rank a module has: init-r, or what a loaded rank_pattern kept. */
static gint64
module_rank (Ada *a, const char *pattern_key, GError **error)
{
  JsonNode *n = a->loaded_pattern ? json_object_get_member (a->loaded_pattern, pattern_key) : NULL;
  if (!n)
    return a->init_r;
  if (!JSON_NODE_HOLDS_ARRAY (n) || json_array_get_length (json_node_get_array (n)) != (guint) a->init_r) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "adapter_config.json: field rank_pattern.%s: not a list of %" G_GINT64_FORMAT " booleans", pattern_key,
                 a->init_r);
    return -1;
  }
  gint64 kept = 0;
  JsonArray *arr = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (arr); i++)
    kept += json_array_get_boolean_element (arr, i) ? 1 : 0;
  return kept;
}

static gboolean
ada_attach (gpointer self, CriaAdapterEntry *entries, guint n_entries, JsonObject *config, guint64 seed, GError **error)
{
  Ada *a = self;
  char *targets = cria_adapter_resolve_targets (a->targets, entries, n_entries);
  g_free (a->targets);
  a->targets = targets;
  g_autoptr (GRand) rand = g_rand_new_with_seed_array ((const guint32[]){ (guint32) seed, (guint32) (seed >> 32) }, 2);
  for (guint i = 0; i < n_entries; i++) {
    CriaAdapterEntry *e = &entries[i];
    if (!e->linear || !g_str_has_suffix (e->name, ".weight") || e->tensor->n_dims != 2)
      continue;
    g_autofree char *module = g_strndup (e->name, strlen (e->name) - strlen (".weight"));
    if (!cria_adapter_target_matches (a->targets, a->regex, module))
      continue;
    AdaLayer *l = g_new0 (AdaLayer, 1);
    l->module = g_steal_pointer (&module);
    l->key_a = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, l->module, ".lora_A", NULL);
    l->key_e = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, l->module, ".lora_E", NULL);
    l->key_b = g_strconcat (CRIA_ADAPTER_PEFT_PREFIX, l->module, ".lora_B", NULL);
    l->pattern_key = g_strconcat (l->module, ".lora_E.default", NULL);
    g_ptr_array_add (a->layers, l);
    gint64 r = module_rank (a, l->pattern_key, error);
    if (r < 0)
      return FALSE;
    l->q = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ r, e->tensor->shape[1] });
    l->e = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ r });
    l->p = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ e->tensor->shape[0], r });
    l->seed = seed ^ ((guint64) a->layers->len * 0x9e3779b97f4a7c15ull);
    init_normal (l->q, rand);
    init_normal (l->p, rand);
    a->fan_in_fan_out |= e->fan_in_fan_out;
    g_hash_table_insert (a->by_module, l->module, l);
  }
  if (a->layers->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "adalora: target-modules=%s matches no linear layer of the model", a->targets);
    return FALSE;
  }
  return TRUE;
}

static double
ada_scale (const Ada *a, const AdaLayer *l)
{
  double r = (double) l->e->shape[0];
  return (a->alpha > 0 ? a->alpha : r) / (r + 1e-5); /* PEFT: scaling = alpha, or r when alpha is 0 */
}

static CriaNode *
ada_linear (CriaGraph *g, const char *name, CriaNode *x, CriaNode *out, gpointer self)
{
  Ada *a = self;
  AdaLayer *l = g_hash_table_lookup (a->by_module, name);
  if (!l)
    return out;
  g_autofree char *na = g_strconcat (name, ".lora_A", NULL);
  g_autofree char *ne = g_strconcat (name, ".lora_E", NULL);
  g_autofree char *nb = g_strconcat (name, ".lora_B", NULL);
  CriaNode *h = x;
  if (a->training && a->dropout > 0)
    h = cria_dropout (g, h, (float) a->dropout, l->seed);
  h = cria_matmul (g, h, cria_graph_param (g, na, l->q, TRUE), FALSE, TRUE);
  h = cria_mul (g, h, cria_graph_param (g, ne, l->e, TRUE));
  h = cria_matmul (g, h, cria_graph_param (g, nb, l->p, TRUE), FALSE, TRUE);
  return cria_add (g, out, cria_scale (g, h, (float) ada_scale (a, l)));
}

static void
ada_list_params (gpointer self, GArray *params)
{
  Ada *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    CriaAdapterParam p[] = { { l->key_a, l->q, TRUE }, { l->key_e, l->e, TRUE }, { l->key_b, l->p, TRUE } };
    g_array_append_vals (params, p, 3);
  }
}

static void
ada_set_training (gpointer self, gboolean training, guint64 step_seed)
{
  (void) step_seed;
  ((Ada *) self)->training = training;
}

/* The modules as cria-adalora.h sees them; gradients from the step (params
 * are listed Q, E, P per layer), or NULL. */
static CriaAdaloraModule *
modules_of (Ada *a, const CriaAdapterStep *step)
{
  CriaAdaloraModule *m = g_new0 (CriaAdaloraModule, a->layers->len);
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    m[i] = (CriaAdaloraModule){ l->module,  l->p->shape[0], l->q->shape[1], l->e->shape[0],
                                l->p->data, l->e->data,     l->q->data };
    if (step) {
      m[i].dQ = step->grads[3 * i];
      m[i].dE = step->grads[3 * i + 1];
      m[i].dP = step->grads[3 * i + 2];
    }
  }
  return m;
}

static double
ada_regularize (gpointer self, const CriaAdapterStep *step)
{
  Ada *a = self;
  g_autofree CriaAdaloraModule *m = modules_of (a, NULL);
  g_autofree float **dp = g_new (float *, a->layers->len);
  g_autofree float **dq = g_new (float *, a->layers->len);
  for (guint i = 0; i < a->layers->len; i++) {
    dq[i] = step->grads[3 * i];
    dp[i] = step->grads[3 * i + 2];
  }
  return cria_adalora_orth_reg (m, a->layers->len, a->orth_w, dp, dq);
}

/* ---- checkpoint state: what the allocator learnt, so that a resumed run
 * allocates as the uninterrupted one. Per module its kept ranks and the
 * importance averages of P, E and Q (Ibar and U, PEFT's exp_avg_ipt and
 * exp_avg_unc) as base64 of little-endian f32: exact, and a third of the
 * size of decimal text. */

static const char *const part_names[] = { "lora_B", "lora_E", "lora_A" }; /* P, E, Q: cria-adalora.h's parts */

static char *
encode_f32 (const float *v, gsize n)
{
  g_autofree guint32 *le = g_new (guint32, MAX (n, 1));
  for (gsize i = 0; i < n; i++) {
    guint32 bits;
    memcpy (&bits, &v[i], 4);
    le[i] = GUINT32_TO_LE (bits);
  }
  return g_base64_encode ((const guchar *) le, n * 4);
}

static gboolean
decode_f32 (const char *text, float *v, gsize n)
{
  gsize len = 0;
  g_autofree guchar *raw = g_base64_decode (text, &len);
  if (len != n * 4)
    return FALSE;
  for (gsize i = 0; v && i < n; i++) {
    guint32 bits;
    memcpy (&bits, raw + 4 * i, 4);
    bits = GUINT32_FROM_LE (bits);
    memcpy (&v[i], &bits, 4);
  }
  return TRUE;
}

static JsonNode *
ada_save_state (gpointer self)
{
  Ada *a = self;
  if (!a->alloc)
    return a->resumed ? json_node_copy (a->resumed) : NULL;
  JsonObject *o = json_object_new ();
  json_object_set_int_member (o, "total_step", a->ac.total_step);
  json_object_set_boolean_member (o, "final", a->final);
  JsonArray *mods = json_array_new ();
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    JsonObject *m = json_object_new ();
    json_object_set_string_member (m, "module", l->module);
    JsonArray *kept = json_array_new ();
    const gboolean *flags = cria_adalora_rank_pattern (a->alloc, i, NULL);
    for (gint64 j = 0; j < l->e->shape[0]; j++)
      json_array_add_boolean_element (kept, flags[j]);
    json_object_set_array_member (m, "kept", kept);
    for (int part = 0; part < 3; part++)
      for (int unc = 0; unc < 2; unc++) {
        gsize n = 0;
        const float *v = cria_adalora_importance (a->alloc, i, part, unc, &n);
        g_autofree char *key = g_strconcat (unc ? "exp_avg_unc." : "exp_avg_ipt.", part_names[part], NULL);
        g_autofree char *text = encode_f32 (v, n);
        json_object_set_string_member (m, key, text);
      }
    json_array_add_object_element (mods, m);
  }
  json_object_set_array_member (o, "modules", mods);
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, o);
  return node;
}

/* Member `name` of `o` when it is of that type (a value of `value_type`), else NULL. */
static JsonNode *
member (JsonObject *o, const char *name, JsonNodeType type, GType value_type)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  if (!n || JSON_NODE_TYPE (n) != type || (type == JSON_NODE_VALUE && json_node_get_value_type (n) != value_type))
    return NULL;
  return n;
}

static gboolean
read_kept (JsonNode *node, gboolean *kept, gint64 r)
{
  JsonArray *arr = node ? json_node_get_array (node) : NULL;
  if (!arr || json_array_get_length (arr) != (guint) r)
    return FALSE;
  for (gint64 j = 0; j < r; j++) {
    JsonNode *e = json_array_get_element (arr, (guint) j);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_BOOLEAN)
      return FALSE;
    kept[j] = json_node_get_boolean (e);
  }
  return TRUE;
}

/* Checks a checkpoint's state against the layers and, unless `dry`, loads
 * it into the allocator. */
static gboolean
apply_state (Ada *a, JsonObject *o, gboolean dry, GError **error)
{
  JsonNode *mods = member (o, "modules", JSON_NODE_ARRAY, G_TYPE_INVALID);
  if (!mods || json_array_get_length (json_node_get_array (mods)) != a->layers->len) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "adalora: modules does not hold the %u adapted layers",
                 a->layers->len);
    return FALSE;
  }
  JsonNode *total = member (o, "total_step", JSON_NODE_VALUE, G_TYPE_INT64);
  if (!total || (!dry && json_node_get_int (total) != a->ac.total_step)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "adalora: total_step of the resumed state is not the run's %d", a->ac.total_step);
    return FALSE;
  }
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    JsonNode *mn = json_array_get_element (json_node_get_array (mods), i);
    JsonObject *m = JSON_NODE_HOLDS_OBJECT (mn) ? json_node_get_object (mn) : NULL;
    JsonNode *name = member (m, "module", JSON_NODE_VALUE, G_TYPE_STRING);
    gint64 r = l->e->shape[0];
    g_autofree gboolean *kept = g_new (gboolean, r);
    if (!name || strcmp (json_node_get_string (name), l->module) != 0 ||
        !read_kept (member (m, "kept", JSON_NODE_ARRAY, G_TYPE_INVALID), kept, r)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "adalora: modules[%u] is not %s with %" G_GINT64_FORMAT " booleans in kept", i, l->module, r);
      return FALSE;
    }
    if (!dry)
      cria_adalora_set_rank_pattern (a->alloc, i, kept);
    gint64 sizes[3] = { l->p->shape[0] * r, r, r * l->q->shape[1] };
    for (int part = 0; part < 3; part++)
      for (int unc = 0; unc < 2; unc++) {
        g_autofree char *key = g_strconcat (unc ? "exp_avg_unc." : "exp_avg_ipt.", part_names[part], NULL);
        gsize n = (gsize) sizes[part];
        float *dst = dry ? NULL : cria_adalora_importance (a->alloc, i, part, unc, &n);
        JsonNode *text = member (m, key, JSON_NODE_VALUE, G_TYPE_STRING);
        if (!text || !decode_f32 (json_node_get_string (text), dst, n)) {
          g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                       "adalora: modules[%u].%s is not %" G_GSIZE_FORMAT " f32 values in base64", i, key, n);
          return FALSE;
        }
      }
  }
  return TRUE;
}

static gboolean
ada_load_state (gpointer self, JsonNode *state, GError **error)
{
  Ada *a = self;
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (state) ? json_node_get_object (state) : NULL;
  if (!o || !apply_state (a, o, TRUE, error)) {
    if (!o)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "adalora: not an object");
    return FALSE;
  }
  JsonNode *final = member (o, "final", JSON_NODE_VALUE, G_TYPE_BOOLEAN);
  a->final = final && json_node_get_boolean (final);
  g_clear_pointer (&a->resumed, json_node_unref);
  a->resumed = json_node_copy (state);
  return TRUE;
}

/* After the optimizer step, while the gradients are still there. */
static gboolean
ada_after_step (gpointer self, const CriaAdapterStep *step, GError **error)
{
  Ada *a = self;
  if (!a->alloc) {
    if (a->ac.total_step == 0)
      a->ac.total_step = (int) step->total_steps;
    g_autofree CriaAdaloraModule *m = modules_of (a, step);
    a->alloc = cria_adalora_new (&a->ac, m, a->layers->len, error);
    if (!a->alloc) {
      g_prefix_error (error, "adalora: ");
      return FALSE;
    }
    if (a->resumed && !apply_state (a, json_node_get_object (a->resumed), FALSE, error))
      return FALSE;
    g_clear_pointer (&a->resumed, json_node_unref);
  }
  gint64 budget = 0;
  cria_adalora_step (a->alloc, (int) step->step, &budget);
  if (step->step >= a->ac.total_step - a->ac.tfinal)
    a->final = TRUE;
  return TRUE;
}

/* Q, E and P of a layer, keeping the ranks `keep` says (all when NULL);
 * the copies live in `store`. */
static void
save_layer (AdaLayer *l, const gboolean *keep, GPtrArray *store, GArray *weights)
{
  gint64 r = l->e->shape[0], in = l->q->shape[1], out = l->p->shape[0], k = 0;
  for (gint64 j = 0; j < r; j++)
    k += !keep || keep[j];
  float *q = g_new (float, k *in), *e = g_new (float, k), *p = g_new (float, out *k);
  const float *sq = l->q->data, *se = l->e->data, *sp = l->p->data;
  for (gint64 j = 0, c = 0; j < r; j++) {
    if (keep && !keep[j])
      continue;
    memcpy (q + c * in, sq + j * in, in * sizeof (float));
    e[c] = se[j];
    for (gint64 o = 0; o < out; o++)
      p[o * k + c] = sp[o * r + j];
    c++;
  }
  g_ptr_array_add (store, q);
  g_ptr_array_add (store, e);
  g_ptr_array_add (store, p);
  cria_adapter_add_weight (weights, l->key_a, q, 2, (gint64[]){ k, in });
  cria_adapter_add_weight (weights, l->key_b, p, 2, (gint64[]){ out, k });
  cria_adapter_add_weight (weights, l->key_e, e, 2, (gint64[]){ k, 1 });
}

static gboolean
ada_save (gpointer self, JsonObject *config, GArray *weights, GError **error)
{
  (void) error;
  Ada *a = self;
  json_object_set_int_member (config, "r", 8); /* LoraConfig's r, which AdaLoRA ignores */
  json_object_set_double_member (config, "lora_alpha", a->alpha);
  json_object_set_double_member (config, "lora_dropout", a->dropout);
  cria_adapter_config_set_targets (config, a->targets, a->regex);
  json_object_set_string_member (config, "bias", "none");
  json_object_set_boolean_member (config, "fan_in_fan_out", a->fan_in_fan_out);
  json_object_set_boolean_member (config, "init_lora_weights", TRUE);
  json_object_set_null_member (config, "modules_to_save");
  json_object_set_int_member (config, "init_r", a->init_r);
  json_object_set_int_member (config, "target_r", a->ac.target_r);
  json_object_set_int_member (config, "tinit", a->ac.tinit);
  json_object_set_int_member (config, "tfinal", a->ac.tfinal);
  json_object_set_int_member (config, "deltaT", a->ac.delta_t);
  json_object_set_double_member (config, "beta1", a->ac.beta1);
  json_object_set_double_member (config, "beta2", a->ac.beta2);
  json_object_set_double_member (config, "orth_reg_weight", a->orth_w);
  if (a->ac.total_step > 0)
    json_object_set_int_member (config, "total_step", a->ac.total_step);
  else
    json_object_set_null_member (config, "total_step");
  g_ptr_array_set_size (a->saved, 0);
  JsonObject *pattern = a->final ? json_object_new () : NULL;
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    const gboolean *keep = NULL;
    if (pattern) {
      gint64 kept = 0;
      keep = cria_adalora_rank_pattern (a->alloc, i, &kept);
      JsonArray *flags = json_array_new ();
      for (gint64 j = 0; j < l->e->shape[0]; j++)
        json_array_add_boolean_element (flags, keep[j]);
      json_object_set_array_member (pattern, l->pattern_key, flags);
    }
    save_layer (l, keep, a->saved, weights);
  }
  if (pattern)
    json_object_set_object_member (config, "rank_pattern", pattern);
  else
    json_object_set_null_member (config, "rank_pattern");
  return TRUE;
}

static gboolean
ada_configure (gpointer self, JsonObject *config, const char *file, GError **error)
{
  Ada *a = self;
  gint64 init_r = a->init_r, target_r = a->ac.target_r, tinit = a->ac.tinit, tfinal = a->ac.tfinal,
         delta_t = a->ac.delta_t, total = a->ac.total_step;
  if (!cria_adapter_config_get_int (config, "init_r", file, 1, G_MAXINT, &init_r, error) ||
      !cria_adapter_config_get_int (config, "target_r", file, 1, G_MAXINT, &target_r, error) ||
      !cria_adapter_config_get_int (config, "tinit", file, 0, G_MAXINT, &tinit, error) ||
      !cria_adapter_config_get_int (config, "tfinal", file, 0, G_MAXINT, &tfinal, error) ||
      !cria_adapter_config_get_int (config, "deltaT", file, 1, G_MAXINT, &delta_t, error) ||
      !cria_adapter_config_get_int (config, "total_step", file, 0, G_MAXINT, &total, error) ||
      !cria_adapter_config_get_double (config, "lora_alpha", file, &a->alpha, error) ||
      !cria_adapter_config_get_double (config, "lora_dropout", file, &a->dropout, error) ||
      !cria_adapter_config_get_double (config, "beta1", file, &a->ac.beta1, error) ||
      !cria_adapter_config_get_double (config, "beta2", file, &a->ac.beta2, error) ||
      !cria_adapter_config_get_double (config, "orth_reg_weight", file, &a->orth_w, error) ||
      !cria_adapter_config_get_targets (config, file, &a->targets, &a->regex, error))
    return FALSE;
  a->init_r = init_r;
  a->ac = (CriaAdaloraConfig){ (int) target_r, (int) tinit, (int) tfinal, (int) delta_t,
                               (int) total,    a->ac.beta1, a->ac.beta2 };
  JsonNode *rp = json_object_get_member (config, "rank_pattern");
  if (rp && JSON_NODE_HOLDS_OBJECT (rp))
    a->loaded_pattern = json_object_ref (json_node_get_object (rp));
  else if (rp && !JSON_NODE_HOLDS_NULL (rp)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field rank_pattern: not an object or null", file);
    return FALSE;
  }
  return TRUE;
}

static gboolean
ada_load (gpointer self, CriaSafetensors *st, GError **error)
{
  Ada *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    gint64 r = l->e->shape[0];
    if (!cria_adapter_copy_in (st, l->key_a, l->q, 2, l->q->shape, error) ||
        !cria_adapter_copy_in (st, l->key_e, l->e, 2, (gint64[]){ r, 1 }, error) ||
        !cria_adapter_copy_in (st, l->key_b, l->p, 2, l->p->shape, error))
      return FALSE;
  }
  g_autoptr (GHashTable) saved = cria_adapter_peft_saved_modules (st, error); /* cria_adapter_load's */
  if (!saved)
    return FALSE;
  if (cria_safetensors_get_n_weights (st) != 3 * a->layers->len + g_hash_table_size (saved)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%u tensors where the model's %u adapted layers need %u (a different model or target_modules?)",
                 cria_safetensors_get_n_weights (st), a->layers->len, 3 * a->layers->len);
    return FALSE;
  }
  return TRUE;
}

/* W += alpha / (ranknum + 1e-5) * P diag(E) Q, each element's sum in double. */
static gboolean
ada_merge (gpointer self, CriaAdapterEntry *entries, guint n_entries, GError **error)
{
  Ada *a = self;
  for (guint i = 0; i < a->layers->len; i++) {
    AdaLayer *l = g_ptr_array_index (a->layers, i);
    g_autofree char *wname = g_strconcat (l->module, ".weight", NULL);
    CriaAdapterEntry *e = cria_adapter_find_entry (entries, n_entries, wname);
    if (!e || e->tensor->dtype != CRIA_DTYPE_F32) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "adalora: merge needs an f32 %s", wname);
      return FALSE;
    }
    cria_adapter_add_low_rank (e->tensor->data, l->p->shape[0], l->q->shape[1], l->e->shape[0], l->p->data, l->e->data,
                               l->q->data, ada_scale (a, l));
  }
  return TRUE;
}

static const CriaAdapterVTable adalora_vtable = {
  CRIA_VTABLE_INIT (CriaAdapterVTable),
  .peft_type = "ADALORA",
  .create = ada_create,
  .destroy = ada_destroy,
  .attach = ada_attach,
  .linear = ada_linear,
  .list_params = ada_list_params,
  .set_training = ada_set_training,
  .regularize = ada_regularize,
  .after_step = ada_after_step,
  .save = ada_save,
  .configure = ada_configure,
  .save_state = ada_save_state,
  .load_state = ada_load_state,
  .load = ada_load,
  .merge = ada_merge,
};

static const CriaProviderInfo adalora_info = {
  .name = "adalora",
  .description = "Adaptive-rank LoRA in SVD form (AdaLoRA), ranks pruned by importance, in PEFT's format",
  .example = "cria train --model gpt2 --data train.jsonl --adapter 'adalora init-r=12 target-r=4 tinit=10 tfinal=20'",
  .props = adalora_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  (void) error;
  cria_plugin_add_adapter (plugin, &adalora_info, &adalora_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (adalora, "AdaLoRA adapters", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
