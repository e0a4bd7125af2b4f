/* gpt2.c: GPT2LMHeadModel — learned positions, LayerNorm, tanh-GELU, fused
 * q/k/v projection (Conv1D weights, stored [in, out] and transposed by the
 * core on load), tied head.
 *
 *   cria generate --model gpt2 "The quick brown fox" */
#include "config.h"

#include <math.h>

#include <string.h>

#include <cria/cria-gguf.h>

#include "models.h"

static const char *const gpt2_classes[] = { "GPT2LMHeadModel", NULL };

static gboolean
gpt2_configure (CriaHfConfig *c, GError **error)
{
  gint64 inner;
  if (!cria_hf_config_get_int (c, "n_embd", -1, 1, &c->hidden_size, error) ||
      !cria_hf_config_get_int (c, "n_layer", -1, 1, &c->n_layers, error) ||
      !cria_hf_config_get_int (c, "n_head", -1, 1, &c->n_heads, error) ||
      !cria_hf_config_get_int (c, "vocab_size", -1, 1, &c->vocab_size, error) ||
      !cria_hf_config_get_int (c, "n_positions", -1, 1, &c->max_positions, error) ||
      !cria_hf_config_get_int (c, "n_inner", 0, 1, &inner, error) ||
      !cria_hf_config_get_number (c, "layer_norm_epsilon", 1e-5, &c->norm_eps, error) ||
      !cria_hf_config_get_bool (c, "tie_word_embeddings", TRUE, &c->tie_word_embeddings, error) ||
      !cria_hf_config_get_string (c, "activation_function", "gelu_new", &c->hidden_act, error))
    return FALSE;
  c->intermediate_size = inner ? inner : 4 * c->hidden_size;
  c->n_kv_heads = c->n_heads;
  if (c->hidden_size % c->n_heads) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: n_head: does not divide n_embd", c->file);
    return FALSE;
  }
  c->head_dim = c->hidden_size / c->n_heads;
  c->attention_bias = c->mlp_bias = TRUE;
  return TRUE;
}

static GArray *
gpt2_tensors (const CriaHfConfig *c)
{
  GArray *o = cria_hf_tensors_new ();
  gint64 d = c->hidden_size, in = c->intermediate_size;
  /* transformers scales the projections that write into the residual
   * stream by 1/sqrt(2 n_layer) */
  double resid = 1.0 / sqrt (2.0 * (double) c->n_layers);
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, d, "transformer.wte.weight");
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->max_positions, d, "transformer.wpe.weight");
  for (gint64 l = 0; l < c->n_layers; l++) {
#define H "transformer.h.%" G_GINT64_FORMAT
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, H ".ln_1.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, H ".ln_1.bias", l);
    /* Conv1D stores weights as [in, out], the transpose of nn.Linear. */
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, 3 * d, H ".attn.c_attn.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, 3 * d, 0, H ".attn.c_attn.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, d, H ".attn.c_proj.weight", l)->init_scale = resid;
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, H ".attn.c_proj.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, H ".ln_2.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, H ".ln_2.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, d, in, H ".mlp.c_fc.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, in, 0, H ".mlp.c_fc.bias", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_LINEAR, 2, in, d, H ".mlp.c_proj.weight", l)->init_scale = resid;
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, H ".mlp.c_proj.bias", l);
#undef H
  }
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, d, 0, "transformer.ln_f.weight");
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_BIAS, 1, d, 0, "transformer.ln_f.bias");
  cria_hf_tensors_add (o, CRIA_HF_TENSOR_MATRIX, 2, c->vocab_size, d, "lm_head.weight")
      ->optional = c->tie_word_embeddings;
  return o;
}

/* Files saved by older code lack the "transformer." prefix; and older
 * transformers saved the attention's mask buffers beside the weights. */
static char *
gpt2_canonical (const CriaHfConfig *c, const char *name)
{
  if (g_str_has_suffix (name, ".attn.bias") || g_str_has_suffix (name, ".attn.masked_bias"))
    return NULL;
  if (!g_str_has_prefix (name, "transformer.") && !g_str_has_prefix (name, "lm_head."))
    return g_strconcat ("transformer.", name, NULL);
  return g_strdup (name);
}

static gboolean
gpt2_transposed (const CriaHfConfig *config, const char *name)
{
  return g_str_has_suffix (name, ".attn.c_attn.weight") || g_str_has_suffix (name, ".attn.c_proj.weight") ||
         g_str_has_suffix (name, ".mlp.c_fc.weight") || g_str_has_suffix (name, ".mlp.c_proj.weight");
}

static CriaNode *
param (CriaModel *m, CriaGraph *g, gint64 layer, const char *what)
{
  g_autofree char *name = g_strdup_printf ("transformer.h.%" G_GINT64_FORMAT ".%s", layer, what);
  return cria_model_param (m, g, name);
}

static CriaNode *
conv1d (CriaModel *m, CriaGraph *g, gint64 layer, const char *what, CriaNode *x)
{
  g_autofree char *name = g_strdup_printf ("transformer.h.%" G_GINT64_FORMAT ".%s", layer, what);
  g_autofree char *w = g_strconcat (name, ".weight", NULL), *b = g_strconcat (name, ".bias", NULL);
  return cria_linear (g, name, x, cria_model_param (m, g, w), cria_model_param (m, g, b));
}

static CriaNode *
layernorm (CriaModel *m, CriaGraph *g, gint64 layer, const char *what, CriaNode *x)
{
  g_autofree char *w = g_strconcat (what, ".weight", NULL), *b = g_strconcat (what, ".bias", NULL);
  float eps = (float) cria_model_get_config (m)->norm_eps;
  if (layer < 0)
    return cria_layernorm (g, x, cria_model_param (m, g, w), cria_model_param (m, g, b), eps);
  return cria_layernorm (g, x, param (m, g, layer, w), param (m, g, layer, b), eps);
}

static gboolean
gpt2_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out, GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (m);
  if (s->past + s->seq > c->max_positions) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: %" G_GINT64_FORMAT " positions, but GPT-2 learned only %" G_GINT64_FORMAT, cria_model_get_dir (m),
                 s->past + s->seq, c->max_positions);
    return FALSE;
  }
  cria_model_add_inputs (m, g, s, out);
  gint64 d = c->hidden_size, hs[4] = { s->batch, s->seq, c->n_heads, c->head_dim };
  CriaNode *x = cria_add (g, cria_embedding (g, out->ids, cria_model_param (m, g, "transformer.wte.weight")),
                          cria_embedding (g, out->positions, cria_model_param (m, g, "transformer.wpe.weight")));
  for (gint64 l = 0; l < c->n_layers; l++) {
    cria_graph_begin_block (g); /* what --recompute recomputes */
    CriaNode *h = layernorm (m, g, l, "ln_1", x);
    CriaNode *qkv = conv1d (m, g, l, "attn.c_attn", h);
    CriaNode *q = cria_reshape (g, cria_slice (g, qkv, 2, 0, d), 4, hs);
    CriaNode *k = cria_reshape (g, cria_slice (g, qkv, 2, d, d), 4, hs);
    CriaNode *v = cria_reshape (g, cria_slice (g, qkv, 2, 2 * d, d), 4, hs);
    CriaNode *a = cria_model_attention (m, g, s, out, l, q, k, v, (float) (1.0 / sqrt ((double) c->head_dim)), 0);
    x = cria_add (g, x, conv1d (m, g, l, "attn.c_proj", a));
    h = cria_gelu (g, conv1d (m, g, l, "mlp.c_fc", layernorm (m, g, l, "ln_2", x)));
    x = cria_add (g, x, conv1d (m, g, l, "mlp.c_proj", h));
  }
  cria_graph_end_block (g);
  out->hidden = layernorm (m, g, -1, "transformer.ln_f", x);
  out->head = cria_model_param (
      m, g, cria_model_get_param (m, "lm_head.weight") ? "lm_head.weight" : "transformer.wte.weight");
  return TRUE;
}

/* GGUF export: llama.cpp's "gpt2" takes the weights as nn.Linear lays them
 * out ([out, in], as the table holds them) under these names. */
static char *
gpt2_gguf_tensor_name (const CriaHfConfig *c, const char *name, gint64 *permute_heads)
{
  static const struct {
    const char *hf, *gguf;
  } names[] = {
    { "ln_1", "attn_norm" }, { "attn.c_attn", "attn_qkv" }, { "attn.c_proj", "attn_output" },
    { "ln_2", "ffn_norm" },  { "mlp.c_fc", "ffn_up" },      { "mlp.c_proj", "ffn_down" },
  };
  *permute_heads = 0;
  if (strcmp (name, "transformer.wte.weight") == 0)
    return g_strdup ("token_embd.weight");
  if (strcmp (name, "transformer.wpe.weight") == 0)
    return g_strdup ("position_embd.weight");
  if (strcmp (name, "lm_head.weight") == 0)
    return g_strdup ("output.weight");
  if (g_str_has_prefix (name, "transformer.ln_f."))
    return g_strconcat ("output_norm.", name + 17, NULL);
  if (!g_str_has_prefix (name, "transformer.h."))
    return NULL;
  char *end;
  guint64 l = g_ascii_strtoull (name + 14, &end, 10);
  if (end == name + 14 || *end != '.')
    return NULL;
  const char *dot = strrchr (end + 1, '.'); /* ".weight" or ".bias" */
  for (guint i = 0; dot && i < G_N_ELEMENTS (names); i++)
    if (strlen (names[i].hf) == (gsize) (dot - end - 1) && strncmp (end + 1, names[i].hf, dot - end - 1) == 0)
      return g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s%s", l, names[i].gguf, dot);
  return NULL;
}

static gboolean
gpt2_gguf_metadata (const CriaHfConfig *c, CriaGgufWriter *w, GError **error)
{
  if (g_strcmp0 (c->hidden_act, "gelu_new") != 0 && g_strcmp0 (c->hidden_act, "gelu_pytorch_tanh") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: activation_function: llama.cpp's gpt2 computes gelu_new, not %s", c->file, c->hidden_act);
    return FALSE;
  }
  cria_gguf_set_string (w, "general.architecture", "gpt2");
  cria_gguf_set_u32 (w, "gpt2.context_length", (guint32) c->max_positions);
  cria_gguf_set_u32 (w, "gpt2.embedding_length", (guint32) c->hidden_size);
  cria_gguf_set_u32 (w, "gpt2.feed_forward_length", (guint32) c->intermediate_size);
  cria_gguf_set_u32 (w, "gpt2.block_count", (guint32) c->n_layers);
  cria_gguf_set_u32 (w, "gpt2.attention.head_count", (guint32) c->n_heads);
  cria_gguf_set_f32 (w, "gpt2.attention.layer_norm_epsilon", (float) c->norm_eps);
  cria_gguf_set_u32 (w, "gpt2.vocab_size", (guint32) c->vocab_size);
  return TRUE;
}

const CriaModelVTable cria_gpt2_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),
  .classes = gpt2_classes,
  .configure = gpt2_configure,
  .tensors = gpt2_tensors,
  .canonical = gpt2_canonical,
  .transposed = gpt2_transposed,
  .build = gpt2_build,
  .default_targets = "c_attn",
  .gguf_metadata = gpt2_gguf_metadata,
  .gguf_tensor_name = gpt2_gguf_tensor_name,
};
