/* llama.c: LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM —
 * RMSNorm, rotary positions (rope_theta and the rope_scaling types of their
 * configs), grouped-query attention, SwiGLU, Qwen2's q/k/v biases, Mistral's
 * sliding window and tied embeddings.
 *
 *   cria generate --model Qwen2.5-0.5B-Instruct "Name three colours." */
#include "config.h"

#include <math.h>

#include "models.h"

static gboolean
llama_supports (const CriaHfConfig *config)
{
  return config->arch == CRIA_HF_ARCH_LLAMA || config->arch == CRIA_HF_ARCH_QWEN2 ||
         config->arch == CRIA_HF_ARCH_MISTRAL;
}

/* inv_freq[i] = theta^(-2i/d), reshaped by rope_scaling; `attn` receives the
 * factor YaRN multiplies cos and sin by (1 otherwise). Computed in double
 * and rounded once, as the published recipes do. `seq` is the length the
 * dynamic NTK scaling looks at. */
static CriaTensor *
rope_inv_freq (const CriaHfConfig *c, gint64 seq, double *attn)
{
  const CriaRopeScaling *rs = &c->rope_scaling;
  gint64 dim = c->head_dim, half = dim / 2;
  double theta = c->rope_theta;
  *attn = 1.0;
  if (rs->type == CRIA_ROPE_SCALING_DYNAMIC) {
    gint64 maxp = rs->original_max_position_embeddings ? rs->original_max_position_embeddings : c->max_positions;
    if (seq > maxp)
      theta *= pow (rs->factor * (double) seq / (double) maxp - (rs->factor - 1), (double) dim / (double) (dim - 2));
  }
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ half });
  float *out = t->data;
  double low = 0, high = 1;
  if (rs->type == CRIA_ROPE_SCALING_YARN) {
    gint64 maxp = rs->original_max_position_embeddings ? rs->original_max_position_embeddings : c->max_positions;
    double f = rs->factor;
    *attn = rs->attention_factor > 0 ? rs->attention_factor : (f > 1 ? 0.1 * log (f) + 1.0 : 1.0);
#define CORR(rot) ((double) dim * log ((double) maxp / ((rot) * 2 * G_PI)) / (2 * log (theta)))
    low = MAX (floor (CORR (rs->beta_fast)), 0);
    high = MIN (ceil (CORR (rs->beta_slow)), (double) dim - 1);
#undef CORR
    if (low == high)
      high += 0.001;
  }
  for (gint64 i = 0; i < half; i++) {
    double inv = 1.0 / pow (theta, (double) (2 * i) / (double) dim);
    switch (rs->type) {
    case CRIA_ROPE_SCALING_LINEAR:
      inv /= rs->factor;
      break;
    case CRIA_ROPE_SCALING_LLAMA3: {
      double old = (double) rs->original_max_position_embeddings, wavelen = 2 * G_PI / inv;
      double smooth = (old / wavelen - rs->low_freq_factor) / (rs->high_freq_factor - rs->low_freq_factor);
      if (wavelen > old / rs->low_freq_factor)
        inv /= rs->factor;
      else if (wavelen >= old / rs->high_freq_factor)
        inv = (1 - smooth) * inv / rs->factor + smooth * inv;
      break;
    }
    case CRIA_ROPE_SCALING_YARN: {
      double ramp = CLAMP (((double) i - low) / (high - low), 0.0, 1.0), extra = 1 - ramp;
      inv = (inv / rs->factor) * (1 - extra) + inv * extra;
      break;
    }
    default:
      break;
    }
    out[i] = (float) inv;
  }
  return t;
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

static gboolean
llama_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out, GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (m);
  if (g_strcmp0 (c->hidden_act, "silu") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s/config.json: hidden_act \"%s\" is not supported (silu is)",
                 cria_model_get_dir (m), c->hidden_act);
    return FALSE;
  }
  cria_model_add_inputs (m, g, s, out);
  double attn_factor;
  g_autoptr (CriaTensor) inv_freq = rope_inv_freq (c, s->past + s->seq, &attn_factor);
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
    q = cria_rope (g, cria_reshape (g, q, 4, qs), out->positions, freq);
    k = cria_rope (g, cria_reshape (g, k, 4, ks), out->positions, freq);
    v = cria_reshape (g, v, 4, ks);
    CriaNode *a = cria_model_attention (m, g, s, out, l, q, k, v, scale, c->sliding_window);
    x = cria_add (g, x, linear (m, g, p, "self_attn.o_proj", a));
    h = norm (m, g, p, "post_attention_layernorm.weight", x);
    CriaNode *gate = linear (m, g, p, "mlp.gate_proj", h);
    CriaNode *up = linear (m, g, p, "mlp.up_proj", h);
    x = cria_add (g, x, linear (m, g, p, "mlp.down_proj", cria_swiglu (g, gate, up)));
  }
  cria_graph_end_block (g);
  out->hidden = norm (m, g, "model.", "norm.weight", x);
  out->head = cria_model_param (m, g, cria_model_get_param (m, "lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight");
  return TRUE;
}

const CriaModelVTable cria_llama_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),
  .supports = llama_supports,
  .build = llama_build,
};
