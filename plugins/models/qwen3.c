/* qwen3.c: Qwen3ForCausalLM — LLaMA's decoder (RMSNorm, RoPE, grouped-query
 * attention, SwiGLU) with an RMSNorm over each head of q and of k before the
 * rotation (q_norm, k_norm: head_dim weights), a head_dim of its own that
 * need not be hidden_size / heads, no q/k/v biases unless attention_bias,
 * optionally tied embeddings, and sliding windows on the layers from
 * max_window_layers on when use_sliding_window (or as layer_types says).
 *
 *   cria generate --model Qwen3-0.6B "Name three colours." */
#include "config.h"

#include <string.h>

#include "models.h"

static const char *const qwen3_classes[] = { "Qwen3ForCausalLM", NULL };

static gboolean
qwen3_configure (CriaHfConfig *c, GError **error)
{
  if (!models_llama_configure (c, FALSE, error))
    return FALSE;
  gboolean sliding;
  gint64 first;
  if (!cria_hf_config_get_bool (c, "use_sliding_window", FALSE, &sliding, error) ||
      !cria_hf_config_get_int (c, "max_window_layers", 28, 0, &first, error))
    return FALSE;
  /* the widest window any layer has; qwen3_window says which layers */
  c->sliding_window = 0;
  return !sliding || cria_hf_config_get_int (c, "sliding_window", 0, 0, &c->sliding_window, error);
}

/* As transformers' Qwen3Config: layer_types when given, else sliding
 * attention from layer max_window_layers (default 28) on. */
static gint64
qwen3_window (const CriaHfConfig *c, gint64 layer)
{
  if (!c->sliding_window)
    return 0;
  JsonNode *types = json_object_get_member (c->json, "layer_types");
  if (types && JSON_NODE_HOLDS_ARRAY (types)) {
    JsonArray *a = json_node_get_array (types);
    JsonNode *t = layer < json_array_get_length (a) ? json_array_get_element (a, (guint) layer) : NULL;
    gboolean sliding = t && JSON_NODE_HOLDS_VALUE (t) && json_node_get_value_type (t) == G_TYPE_STRING &&
                       strcmp (json_node_get_string (t), "sliding_attention") == 0;
    return sliding ? c->sliding_window : 0;
  }
  gint64 first = 28; /* configure checked it is an integer */
  cria_hf_config_get_int (c, "max_window_layers", 28, 0, &first, NULL);
  return layer >= first ? c->sliding_window : 0;
}

static GArray *
qwen3_tensors (const CriaHfConfig *c)
{
  GArray *o = cria_hf_tensors_new ();
  models_llama_outer_tensors (c, o, TRUE);
  for (gint64 l = 0; l < c->n_layers; l++) {
    models_llama_layer_tensors (c, o, l, TRUE);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, c->head_dim, 0,
                         "model.layers.%" G_GINT64_FORMAT ".self_attn.q_norm.weight", l);
    cria_hf_tensors_add (o, CRIA_HF_TENSOR_NORM, 1, c->head_dim, 0,
                         "model.layers.%" G_GINT64_FORMAT ".self_attn.k_norm.weight", l);
  }
  models_llama_outer_tensors (c, o, FALSE);
  return o;
}

static gboolean
qwen3_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out, GError **error)
{
  static const ModelsLlamaVariant variant = { .qk_norm = TRUE, .window = qwen3_window };
  return models_llama_build (m, g, s, out, &variant, error);
}

static gboolean
qwen3_gguf_metadata (const CriaHfConfig *c, CriaGgufWriter *w, GError **error)
{
  if (c->sliding_window) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: use_sliding_window: llama.cpp's qwen3 has no sliding window", c->file);
    return FALSE;
  }
  return models_llama_gguf_metadata (c, w, "qwen3", error);
}

const CriaModelVTable cria_qwen3_vtable = {
  CRIA_VTABLE_INIT (CriaModelVTable),
  .classes = qwen3_classes,
  .configure = qwen3_configure,
  .tensors = qwen3_tensors,
  .canonical = models_llama_canonical,
  .build = qwen3_build,
  .default_targets = "q_proj,v_proj",
  .gguf_metadata = qwen3_gguf_metadata,
  .gguf_tensor_name = models_llama_gguf_tensor_name,
};
