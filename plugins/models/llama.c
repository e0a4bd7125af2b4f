/* llama.c: LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM —
 * RMSNorm, rotary positions (rope_theta and the rope_scaling types of their
 * configs), grouped-query attention, SwiGLU, Qwen2's q/k/v biases, Mistral's
 * sliding window and tied embeddings.
 *
 *   cria generate --model Qwen2.5-0.5B-Instruct "Name three colours." */
#include "config.h"

#include <math.h>
#include <string.h>

#include "models.h"

static const char *const llama_classes[] = { "LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM", NULL };

static gboolean
fail (GError **error, const CriaHfConfig *c, const char *field, const char *why)
{
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s: %s", c->file, field, why);
  return FALSE;
}

gboolean
models_llama_configure (CriaHfConfig *c, gboolean attention_bias, GError **error)
{
  if (!cria_hf_config_get_int (c, "hidden_size", -1, 1, &c->hidden_size, error) ||
      !cria_hf_config_get_int (c, "num_hidden_layers", -1, 1, &c->n_layers, error) ||
      !cria_hf_config_get_int (c, "num_attention_heads", -1, 1, &c->n_heads, error) ||
      !cria_hf_config_get_int (c, "num_key_value_heads", c->n_heads, 1, &c->n_kv_heads, error) ||
      !cria_hf_config_get_int (c, "intermediate_size", -1, 1, &c->intermediate_size, error) ||
      !cria_hf_config_get_int (c, "vocab_size", -1, 1, &c->vocab_size, error) ||
      !cria_hf_config_get_int (c, "max_position_embeddings", 2048, 1, &c->max_positions, error) ||
      !cria_hf_config_get_number (c, "rms_norm_eps", 1e-6, &c->norm_eps, error) ||
      !cria_hf_config_get_rope (c, 10000, error) ||
      !cria_hf_config_get_bool (c, "tie_word_embeddings", FALSE, &c->tie_word_embeddings, error) ||
      !cria_hf_config_get_bool (c, "attention_bias", attention_bias, &c->attention_bias, error) ||
      !cria_hf_config_get_bool (c, "mlp_bias", FALSE, &c->mlp_bias, error) ||
      !cria_hf_config_get_string (c, "hidden_act", "silu", &c->hidden_act, error))
    return FALSE;
  if (c->hidden_size % c->n_heads && !cria_hf_config_has (c, "head_dim"))
    return fail (error, c, "num_attention_heads", "does not divide hidden_size and no head_dim is given");
  if (!cria_hf_config_get_int (c, "head_dim", c->hidden_size / c->n_heads, 1, &c->head_dim, error))
    return FALSE;
  if (c->n_heads % c->n_kv_heads)
    return fail (error, c, "num_key_value_heads", "does not divide num_attention_heads");
  return TRUE;
}

static gboolean
llama_configure (CriaHfConfig *c, GError **error)
{
  gboolean qwen2 = strcmp (c->architecture, "Qwen2ForCausalLM") == 0;
  if (!models_llama_configure (c, qwen2, error))
    return FALSE;
  if (qwen2)
    c->attention_bias = TRUE; /* Qwen2 always has q/k/v biases, and no o_proj bias */
  gboolean sliding = strcmp (c->architecture, "MistralForCausalLM") == 0;
  if (qwen2 && !cria_hf_config_get_bool (c, "use_sliding_window", FALSE, &sliding, error))
    return FALSE;
  return !sliding || cria_hf_config_get_int (c, "sliding_window", 0, 0, &c->sliding_window, error);
}

void
models_llama_layer_tensors (const CriaHfConfig *c, GArray *o, gint64 l, gboolean o_bias)
{
  gint64 d = c->hidden_size, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
  gint64 in = c->intermediate_size;
#define L "model.layers.%" G_GINT64_FORMAT
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, L ".input_layernorm.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, q, d, L ".self_attn.q_proj.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, kv, d, L ".self_attn.k_proj.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, kv, d, L ".self_attn.v_proj.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, q, L ".self_attn.o_proj.weight", l);
  if (c->attention_bias) {
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, q, 0, L ".self_attn.q_proj.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, kv, 0, L ".self_attn.k_proj.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, kv, 0, L ".self_attn.v_proj.bias", l);
    if (o_bias)
      cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, L ".self_attn.o_proj.bias", l);
  }
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, L ".post_attention_layernorm.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, in, d, L ".mlp.gate_proj.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, in, d, L ".mlp.up_proj.weight", l);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, in, L ".mlp.down_proj.weight", l);
  if (c->mlp_bias) {
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, in, 0, L ".mlp.gate_proj.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, in, 0, L ".mlp.up_proj.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, L ".mlp.down_proj.bias", l);
  }
#undef L
}

void
models_llama_outer_tensors (const CriaHfConfig *c, GArray *o, gboolean first)
{
  if (first) {
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, c->hidden_size, "model.embed_tokens.weight");
    return;
  }
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, c->hidden_size, 0, "model.norm.weight");
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, c->hidden_size, "lm_head.weight")
      ->optional = c->tie_word_embeddings;
}

static GArray *
llama_tensors (const CriaHfConfig *c)
{
  GArray *o = cria_hf_tensors_new ();
  /* LLaMA's attention_bias also biases o_proj; Qwen2's biases are q/k/v only */
  gboolean o_bias = strcmp (c->architecture, "Qwen2ForCausalLM") != 0;
  models_llama_outer_tensors (c, o, TRUE);
  for (gint64 l = 0; l < c->n_layers; l++)
    models_llama_layer_tensors (c, o, l, o_bias);
  models_llama_outer_tensors (c, o, FALSE);
  return o;
}

/* Older transformers saved the rotary frequencies beside the weights. */
char *
models_llama_canonical (const CriaHfConfig *c, const char *name)
{
  return g_str_has_suffix (name, ".rotary_emb.inv_freq") ? NULL : g_strdup (name);
}

static CriaNode *
linear (CriaModel *m, CriaGraph *g, const char *prefix, const char *what, CriaNode *x)
{
  g_autofree char *name = g_strconcat (prefix, what, NULL);
  g_autofree char *wname = g_strconcat (name, ".weight", NULL);
  g_autofree char *bname = g_strconcat (name, ".bias", NULL);
  CriaNode *b = cria_model_get_param (m, bname) ? cria_model_param (m, g, bname) : NULL;
  return cria_linear (g, name, x, cria_model_param (m, g, wname), b);
}

static CriaNode *
norm (CriaModel *m, CriaGraph *g, const char *prefix, const char *what, CriaNode *x)
{
  g_autofree char *name = g_strconcat (prefix, what, NULL);
  return cria_rmsnorm (g, x, cria_model_param (m, g, name), (float) cria_model_get_config (m)->norm_eps);
}

gboolean
models_llama_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out,
                    const ModelsLlamaVariant *variant, GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (m);
  if (g_strcmp0 (c->hidden_act, "silu") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s/config.json: hidden_act \"%s\" is not supported (silu is)", cria_model_get_dir (m), c->hidden_act);
    return FALSE;
  }
  cria_model_add_inputs (m, g, s, out);
  double attn_factor;
  g_autoptr (CriaTensor) inv_freq = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ c->head_dim / 2 });
  cria_hf_config_rope_inv_freq (c, c->head_dim, s->past + s->seq, inv_freq->data, &attn_factor);
  CriaNode *freq = cria_graph_param (g, "rope.inv_freq", inv_freq, FALSE);
  /* YaRN scales cos and sin, hence q.k by its square. */
  float scale = (float) (attn_factor * attn_factor / sqrt ((double) c->head_dim));
  gint64 qs[4] = { s->batch, s->seq, c->n_heads, c->head_dim };
  gint64 ks[4] = { s->batch, s->seq, c->n_kv_heads, c->head_dim };

  CriaNode *x = cria_embedding (g, out->ids, cria_model_param (m, g, "model.embed_tokens.weight"));
  for (gint64 l = 0; l < c->n_layers; l++) {
    cria_graph_begin_block (g); /* what --recompute recomputes */
    g_autofree char *p = g_strdup_printf ("model.layers.%" G_GINT64_FORMAT ".", l);
    CriaNode *h = norm (m, g, p, "input_layernorm.weight", x);
    CriaNode *q = linear (m, g, p, "self_attn.q_proj", h);
    CriaNode *k = linear (m, g, p, "self_attn.k_proj", h);
    CriaNode *v = linear (m, g, p, "self_attn.v_proj", h);
    q = cria_reshape (g, q, 4, qs);
    k = cria_reshape (g, k, 4, ks);
    if (variant && variant->qk_norm) { /* per head, before the rotation */
      q = norm (m, g, p, "self_attn.q_norm.weight", q);
      k = norm (m, g, p, "self_attn.k_norm.weight", k);
    }
    q = cria_rope (g, q, out->positions, freq);
    k = cria_rope (g, k, out->positions, freq);
    v = cria_reshape (g, v, 4, ks);
    gint64 window = variant && variant->window ? variant->window (c, l) : c->sliding_window;
    CriaNode *a = cria_model_attention (m, g, s, out, l, q, k, v, scale, window);
    x = cria_add (g, x, linear (m, g, p, "self_attn.o_proj", a));
    h = norm (m, g, p, "post_attention_layernorm.weight", x);
    CriaNode *gate = linear (m, g, p, "mlp.gate_proj", h);
    CriaNode *up = linear (m, g, p, "mlp.up_proj", h);
    x = cria_add (g, x, linear (m, g, p, "mlp.down_proj", cria_swiglu (g, gate, up)));
  }
  cria_graph_end_block (g);
  out->hidden = norm (m, g, "model.", "norm.weight", x);
  out->head = cria_model_param (
      m, g, cria_model_get_param (m, "lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight");
  return TRUE;
}

static gboolean
llama_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out, GError **error)
{
  return models_llama_build (m, g, s, out, NULL, error);
}

const CriaModelVTable cria_llama_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),  .classes = llama_classes,
  .configure = llama_configure,        .tensors = llama_tensors,
  .canonical = models_llama_canonical, .build = llama_build,
  .default_targets = "q_proj,v_proj",
};
