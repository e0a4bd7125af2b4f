/* models.h: the architectures of the models plugin. */
#pragma once

#include <cria/cria-error.h>
#include <cria/cria-model.h>

extern const CriaModelVTable cria_llama_vtable;
extern const CriaModelVTable cria_gpt2_vtable;
extern const CriaModelVTable cria_qwen3_vtable;

/* llama.c, shared with the decoders built like LLaMA's (qwen3.c). */
typedef struct {
  gboolean qk_norm; /* RMSNorm of each head of q and k before RoPE */
  gint64 (*window) (const CriaHfConfig *c,
                    gint64 layer); /* the layer's sliding window (0: none); NULL: c->sliding_window */
} ModelsLlamaVariant;

/* The fields LLaMA's config shares with its descendants; `attention_bias`
 * is the default of the field of that name. */
G_GNUC_INTERNAL gboolean models_llama_configure (CriaHfConfig *c, gboolean attention_bias, GError **error);
/* Layer `l`'s tensors (o_bias: attention_bias also biases o_proj). */
G_GNUC_INTERNAL void models_llama_layer_tensors (const CriaHfConfig *c, GArray *o, gint64 l, gboolean o_bias);
/* The embedding (first) or the final norm and the head (not first). */
G_GNUC_INTERNAL void models_llama_outer_tensors (const CriaHfConfig *c, GArray *o, gboolean first);
G_GNUC_INTERNAL char *models_llama_canonical (const CriaHfConfig *c, const char *name);
G_GNUC_INTERNAL gboolean models_llama_build (CriaModel *m, CriaGraph *g, const CriaModelShape *s, CriaModelGraph *out,
                                             const ModelsLlamaVariant *variant, GError **error);
/* GGUF export: llama.cpp's tensor names (q/k rows permuted for the
 * "llama" architecture) and the hyperparameters under `arch`. */
G_GNUC_INTERNAL char *models_llama_gguf_tensor_name (const CriaHfConfig *c, const char *name, gint64 *permute_heads);
G_GNUC_INTERNAL gboolean models_llama_gguf_metadata (const CriaHfConfig *c, CriaGgufWriter *w, const char *arch,
                                                     GError **error);
