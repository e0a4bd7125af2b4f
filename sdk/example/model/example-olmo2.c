/* example-olmo2.c: a model architecture added by a plugin alone, built out
 * of cria's tree against the installed SDK: OLMo 2 (Olmo2ForCausalLM, the
 * Allen Institute's fully open models).
 *
 * OLMo 2 is LLaMA's decoder with the norms moved: no norm before attention
 * or the feed-forward block, an RMSNorm after each (inside the residual),
 * and an RMSNorm over the whole q and the whole k projection (all heads at
 * once, before they are split into heads and rotated).
 *
 * A model provider declares the class names it builds, reads its own
 * config.json fields, lists the tensors a checkpoint holds (the checker,
 * the loader, `cria model init` and adapters go by that list) and builds
 * the forward pass from core ops. Everything else comes with that: logits,
 * generate, chat, serve, train with any adapter (LoRA attaches to every
 * cria_linear by name), merge, checkpoints. */
#include <math.h>

#include <cria/cria-error.h>
#include <cria/cria-model.h>
#include <cria/cria-plugin.h>
#include <cria/cria-tensor.h>

static const char *const olmo2_classes[] = { "Olmo2ForCausalLM", NULL };

/* Olmo2Config's fields and defaults. head_dim is hidden_size / heads. */
static gboolean
olmo2_configure (CriaHfConfig *c, GError **error)
{
  if (!cria_hf_config_get_int (c, "hidden_size", -1, 1, &c->hidden_size, error) ||
      !cria_hf_config_get_int (c, "num_hidden_layers", -1, 1, &c->n_layers, error) ||
      !cria_hf_config_get_int (c, "num_attention_heads", -1, 1, &c->n_heads, error) ||
      !cria_hf_config_get_int (c, "num_key_value_heads", c->n_heads, 1, &c->n_kv_heads, error) ||
      !cria_hf_config_get_int (c, "intermediate_size", -1, 1, &c->intermediate_size, error) ||
      !cria_hf_config_get_int (c, "vocab_size", -1, 1, &c->vocab_size, error) ||
      !cria_hf_config_get_int (c, "max_position_embeddings", 2048, 1, &c->max_positions, error) ||
      !cria_hf_config_get_number (c, "rms_norm_eps", 1e-5, &c->norm_eps, error) ||
      !cria_hf_config_get_rope (c, 10000, error) ||
      !cria_hf_config_get_bool (c, "tie_word_embeddings", FALSE, &c->tie_word_embeddings, error) ||
      !cria_hf_config_get_bool (c, "attention_bias", FALSE, &c->attention_bias, error) ||
      !cria_hf_config_get_string (c, "hidden_act", "silu", &c->hidden_act, error))
    return FALSE;
  const char *bad = c->hidden_size % c->n_heads         ? "num_attention_heads: does not divide hidden_size"
                    : c->n_heads % c->n_kv_heads        ? "num_key_value_heads: does not divide num_attention_heads"
                    : g_strcmp0 (c->hidden_act, "silu") ? "hidden_act: only silu is supported"
                                                        : NULL;
  if (bad) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s", c->file, bad);
    return FALSE;
  }
  c->head_dim = c->hidden_size / c->n_heads;
  return TRUE;
}

#define LAYER "model.layers.%" G_GINT64_FORMAT "."

static GArray *
olmo2_tensors (const CriaHfConfig *c)
{
  GArray *o = cria_hf_tensors_new ();
  gint64 d = c->hidden_size, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
  gint64 ff = c->intermediate_size;
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, d, "model.embed_tokens.weight");
  for (gint64 l = 0; l < c->n_layers; l++) {
    static const char *const attn[] = { "q_proj", "k_proj", "v_proj", "o_proj" };
    const gint64 out[] = { q, kv, kv, d }, in[] = { d, d, d, q };
    for (guint i = 0; i < G_N_ELEMENTS (attn); i++) {
      cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, out[i], in[i], LAYER "self_attn.%s.weight", l, attn[i]);
      if (c->attention_bias)
        cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, out[i], 0, LAYER "self_attn.%s.bias", l, attn[i]);
    }
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, q, 0, LAYER "self_attn.q_norm.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, kv, 0, LAYER "self_attn.k_norm.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, LAYER "post_attention_layernorm.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, ff, d, LAYER "mlp.gate_proj.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, ff, d, LAYER "mlp.up_proj.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, ff, LAYER "mlp.down_proj.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, LAYER "post_feedforward_layernorm.weight", l);
  }
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, "model.norm.weight");
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, d, "lm_head.weight")
      ->optional = c->tie_word_embeddings;
  return o;
}

/* transformers saves no rotary buffers for OLMo 2, but older conversions did. */
static char *
olmo2_canonical (const CriaHfConfig *c, const char *name)
{
  return g_str_has_suffix (name, ".rotary_emb.inv_freq") ? NULL : g_strdup (name);
}

/* A linear layer of layer `l` by its module name ("self_attn.q_proj"), with
 * its bias when the table has one. cria_linear names the product after the
 * module, which is what adapters' target_modules match. */
static CriaNode *
linear (CriaModel *m, CriaGraph *g, gint64 l, const char *module, CriaNode *x)
{
  g_autofree char *name = g_strdup_printf (LAYER "%s", l, module);
  g_autofree char *w = g_strconcat (name, ".weight", NULL), *b = g_strconcat (name, ".bias", NULL);
  return cria_linear (g, name, x, cria_model_param (m, g, w),
                      cria_model_get_param (m, b) ? cria_model_param (m, g, b) : NULL);
}

static CriaNode *
norm (CriaModel *m, CriaGraph *g, gint64 l, const char *what, CriaNode *x)
{
  g_autofree char *name = l < 0 ? g_strdup (what) : g_strdup_printf (LAYER "%s", l, what);
  return cria_rmsnorm (g, x, cria_model_param (m, g, name), (float) cria_model_get_config (m)->norm_eps);
}

static gboolean
olmo2_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out, GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (m);
  cria_model_add_inputs (m, g, s, out);
  /* The rotation's frequencies, with rope_scaling applied, from the core. */
  double attn_factor;
  g_autoptr (CriaTensor) inv_freq = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ c->head_dim / 2 });
  cria_hf_config_rope_inv_freq (c, c->head_dim, s->past + s->seq, inv_freq->data, &attn_factor);
  CriaNode *freq = cria_graph_param (g, "rope.inv_freq", inv_freq, FALSE);
  float scale = (float) (attn_factor * attn_factor / sqrt ((double) c->head_dim));
  gint64 qs[4] = { s->batch, s->seq, c->n_heads, c->head_dim };
  gint64 ks[4] = { s->batch, s->seq, c->n_kv_heads, c->head_dim };

  CriaNode *x = cria_embedding (g, out->ids, cria_model_param (m, g, "model.embed_tokens.weight"));
  for (gint64 l = 0; l < c->n_layers; l++) {
    cria_graph_begin_block (g); /* what --recompute recomputes */
    /* q and k are normalized over all their heads at once, then split. */
    CriaNode *q = norm (m, g, l, "self_attn.q_norm.weight", linear (m, g, l, "self_attn.q_proj", x));
    CriaNode *k = norm (m, g, l, "self_attn.k_norm.weight", linear (m, g, l, "self_attn.k_proj", x));
    CriaNode *v = cria_reshape (g, linear (m, g, l, "self_attn.v_proj", x), 4, ks);
    q = cria_rope (g, cria_reshape (g, q, 4, qs), out->positions, freq);
    k = cria_rope (g, cria_reshape (g, k, 4, ks), out->positions, freq);
    /* Through the model's KV cache: generation and serving come with it. */
    CriaNode *a = cria_model_attention (m, g, s, out, l, q, k, v, scale, 0);
    a = norm (m, g, l, "post_attention_layernorm.weight", linear (m, g, l, "self_attn.o_proj", a));
    x = cria_add (g, x, a);
    CriaNode *h = cria_swiglu (g, linear (m, g, l, "mlp.gate_proj", x), linear (m, g, l, "mlp.up_proj", x));
    x = cria_add (g, x, norm (m, g, l, "post_feedforward_layernorm.weight", linear (m, g, l, "mlp.down_proj", h)));
  }
  cria_graph_end_block (g);
  out->hidden = norm (m, g, -1, "model.norm.weight", x);
  out->head = cria_model_param (
      m, g, cria_model_get_param (m, "lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight");
  return TRUE;
}

static const CriaModelVTable olmo2_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable), .classes = olmo2_classes,     .configure = olmo2_configure,
  .tensors = olmo2_tensors,           .canonical = olmo2_canonical, .build = olmo2_build,
  .default_targets = "q_proj,v_proj",
};

static const CriaPropSpec no_props[] = { CRIA_PROP_END };

static const CriaProviderInfo olmo2_info = {
  .name = "example-olmo2",
  .description = "Olmo2ForCausalLM: LLaMA's decoder with norms after attention and feed-forward, and on q and k",
  .example = "CRIA_PLUGIN_PATH=$PWD cria generate --model OLMo-2-0425-1B \"Name three colours.\"",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_model (plugin, &olmo2_info, &olmo2_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (example_olmo2, "An example model architecture built out of tree", plugin_init, "1.0", "MIT",
                    "cria SDK example");
