/* gpt2.c: GPT2LMHeadModel — learned positions, LayerNorm, tanh-GELU, fused
 * q/k/v projection (Conv1D weights, stored [in, out] and transposed by the
 * core on load), tied head.
 *
 *   cria generate --model gpt2 "The quick brown fox" */
#include "config.h"

#include <math.h>

#include "models.h"

static gboolean
gpt2_supports (const CriaHfConfig *config)
{
  return config->arch == CRIA_HF_ARCH_GPT2;
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
                 "%s: %" G_GINT64_FORMAT " positions, but GPT-2 learned only %" G_GINT64_FORMAT,
                 cria_model_get_dir (m), s->past + s->seq, c->max_positions);
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
  out->head = cria_model_param (m, g, cria_model_get_param (m, "lm_head.weight") ? "lm_head.weight" : "transformer.wte.weight");
  return TRUE;
}

const CriaModelVTable cria_gpt2_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),
  .supports = gpt2_supports,
  .transposed = gpt2_transposed,
  .build = gpt2_build,
};
