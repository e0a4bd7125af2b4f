/* llama.c: LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM —
 * RMSNorm, rotary positions (rope_theta and the rope_scaling types of their
 * configs), grouped-query attention, SwiGLU, Qwen2's q/k/v biases, Mistral's
 * sliding window and tied embeddings.
 *
 *   cria generate --model Qwen2.5-0.5B-Instruct "Name three colours." */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-gguf.h>

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

/* ---- GGUF export: llama.cpp's names and hyperparameters ---- */

static const struct {
  const char *hf, *gguf;
} layer_names[] = {
  { "input_layernorm.weight", "attn_norm.weight" },    { "self_attn.q_proj.weight", "attn_q.weight" },
  { "self_attn.q_proj.bias", "attn_q.bias" },          { "self_attn.k_proj.weight", "attn_k.weight" },
  { "self_attn.k_proj.bias", "attn_k.bias" },          { "self_attn.v_proj.weight", "attn_v.weight" },
  { "self_attn.v_proj.bias", "attn_v.bias" },          { "self_attn.o_proj.weight", "attn_output.weight" },
  { "self_attn.o_proj.bias", "attn_output.bias" },     { "self_attn.q_norm.weight", "attn_q_norm.weight" },
  { "self_attn.k_norm.weight", "attn_k_norm.weight" }, { "post_attention_layernorm.weight", "ffn_norm.weight" },
  { "mlp.gate_proj.weight", "ffn_gate.weight" },       { "mlp.gate_proj.bias", "ffn_gate.bias" },
  { "mlp.up_proj.weight", "ffn_up.weight" },           { "mlp.up_proj.bias", "ffn_up.bias" },
  { "mlp.down_proj.weight", "ffn_down.weight" },       { "mlp.down_proj.bias", "ffn_down.bias" },
};

/* llama.cpp's "llama" architecture rotates interleaved pairs where Hugging
 * Face rotates halves, so its converter permutes the rows of q and k; the
 * others (qwen2, qwen3) use the NEOX rotation and keep them. */
static gboolean
gguf_permutes (const CriaHfConfig *c)
{
  return strcmp (c->architecture, "LlamaForCausalLM") == 0 || strcmp (c->architecture, "MistralForCausalLM") == 0;
}

char *
models_llama_gguf_tensor_name (const CriaHfConfig *c, const char *name, gint64 *permute_heads)
{
  *permute_heads = 0;
  if (strcmp (name, "model.embed_tokens.weight") == 0)
    return g_strdup ("token_embd.weight");
  if (strcmp (name, "model.norm.weight") == 0)
    return g_strdup ("output_norm.weight");
  if (strcmp (name, "lm_head.weight") == 0)
    return g_strdup ("output.weight");
  if (!g_str_has_prefix (name, "model.layers."))
    return NULL;
  char *end;
  guint64 l = g_ascii_strtoull (name + 13, &end, 10);
  if (end == name + 13 || *end != '.')
    return NULL;
  for (guint i = 0; i < G_N_ELEMENTS (layer_names); i++)
    if (strcmp (end + 1, layer_names[i].hf) == 0) {
      if (gguf_permutes (c) && g_str_has_prefix (layer_names[i].hf, "self_attn.q_proj."))
        *permute_heads = c->n_heads;
      if (gguf_permutes (c) && g_str_has_prefix (layer_names[i].hf, "self_attn.k_proj."))
        *permute_heads = c->n_kv_heads;
      return g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", l, layer_names[i].gguf);
    }
  return NULL;
}

gboolean
models_llama_gguf_metadata (const CriaHfConfig *c, CriaGgufWriter *w, const char *arch, GError **error)
{
  const CriaRopeScaling *rs = &c->rope_scaling;
  if (rs->type == CRIA_ROPE_SCALING_DYNAMIC) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: rope_scaling: dynamic NTK scaling is not exported to GGUF (llama.cpp has none)", c->file);
    return FALSE;
  }
  if (c->mlp_bias && strcmp (arch, "llama") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: mlp_bias: llama.cpp's %s has no MLP biases", c->file,
                 arch);
    return FALSE;
  }
  cria_gguf_set_string (w, "general.architecture", arch);
#define KEY(k) (g_snprintf (key, sizeof key, "%s." k, arch), key)
  char key[128];
  cria_gguf_set_u32 (w, KEY ("context_length"), (guint32) c->max_positions);
  cria_gguf_set_u32 (w, KEY ("embedding_length"), (guint32) c->hidden_size);
  cria_gguf_set_u32 (w, KEY ("block_count"), (guint32) c->n_layers);
  cria_gguf_set_u32 (w, KEY ("feed_forward_length"), (guint32) c->intermediate_size);
  cria_gguf_set_u32 (w, KEY ("attention.head_count"), (guint32) c->n_heads);
  cria_gguf_set_u32 (w, KEY ("attention.head_count_kv"), (guint32) c->n_kv_heads);
  cria_gguf_set_u32 (w, KEY ("attention.key_length"), (guint32) c->head_dim);
  cria_gguf_set_u32 (w, KEY ("attention.value_length"), (guint32) c->head_dim);
  cria_gguf_set_u32 (w, KEY ("rope.dimension_count"), (guint32) c->head_dim);
  cria_gguf_set_f32 (w, KEY ("rope.freq_base"), (float) c->rope_theta);
  cria_gguf_set_f32 (w, KEY ("attention.layer_norm_rms_epsilon"), (float) c->norm_eps);
  cria_gguf_set_u32 (w, KEY ("vocab_size"), (guint32) c->vocab_size);
  if (rs->type == CRIA_ROPE_SCALING_LINEAR || rs->type == CRIA_ROPE_SCALING_YARN) {
    cria_gguf_set_string (w, KEY ("rope.scaling.type"), rs->type == CRIA_ROPE_SCALING_YARN ? "yarn" : "linear");
    cria_gguf_set_f32 (w, KEY ("rope.scaling.factor"), (float) rs->factor);
  }
  if (rs->type == CRIA_ROPE_SCALING_YARN) {
    gint64 orig = rs->original_max_position_embeddings ? rs->original_max_position_embeddings : c->max_positions;
    cria_gguf_set_u32 (w, KEY ("rope.scaling.original_context_length"), (guint32) orig);
    cria_gguf_set_f32 (w, KEY ("rope.scaling.yarn_beta_fast"), (float) rs->beta_fast);
    cria_gguf_set_f32 (w, KEY ("rope.scaling.yarn_beta_slow"), (float) rs->beta_slow);
    if (rs->attention_factor > 0)
      cria_gguf_set_f32 (w, KEY ("rope.scaling.attn_factor"), (float) rs->attention_factor);
  }
#undef KEY
  if (rs->type == CRIA_ROPE_SCALING_LLAMA3) {
    /* llama.cpp divides each frequency by a factor it reads from this
     * tensor: the ratio of the unscaled frequency to LLaMA 3's */
    double attn;
    g_autoptr (CriaTensor) inv = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ c->head_dim / 2 });
    cria_hf_config_rope_inv_freq (c, c->head_dim, 0, inv->data, &attn);
    g_autoptr (CriaTensor) factors = cria_tensor_new (CRIA_DTYPE_F32, 1, inv->shape);
    float *f = factors->data;
    const float *scaled = inv->data;
    for (gint64 i = 0; i < inv->shape[0]; i++)
      f[i] = (float) ((1.0 / pow (c->rope_theta, (double) (2 * i) / (double) c->head_dim)) / scaled[i]);
    return cria_gguf_add_tensor (w, "rope_freqs.weight", CRIA_GGUF_F32, factors, error);
  }
  return TRUE;
}

static gboolean
llama_gguf_metadata (const CriaHfConfig *c, CriaGgufWriter *w, GError **error)
{
  gboolean qwen2 = strcmp (c->architecture, "Qwen2ForCausalLM") == 0;
  if (qwen2 && c->sliding_window) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: use_sliding_window: llama.cpp's qwen2 has no sliding window", c->file);
    return FALSE;
  }
  if (!models_llama_gguf_metadata (c, w, qwen2 ? "qwen2" : "llama", error))
    return FALSE;
  /* llama.cpp's llama attends to the whole context: Mistral's sliding
   * window bounds the context it computes as transformers does */
  if (c->sliding_window && c->sliding_window < c->max_positions)
    cria_gguf_set_u32 (w, "llama.context_length", (guint32) c->sliding_window);
  return TRUE;
}

const CriaModelVTable cria_llama_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),
  .classes = llama_classes,
  .configure = llama_configure,
  .tensors = llama_tensors,
  .canonical = models_llama_canonical,
  .build = llama_build,
  .default_targets = "q_proj,v_proj",
  .gguf_metadata = llama_gguf_metadata,
  .gguf_tensor_name = models_llama_gguf_tensor_name,
};
