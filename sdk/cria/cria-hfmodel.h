/* cria-hfmodel.h: Hugging Face model directories (config, weights, generation).
 *
 * A directory as `save_pretrained` writes it: config.json, then the weights as
 * model.safetensors, or model-0000x-of-0000y.safetensors + model.safetensors.index.json,
 * or pytorch_model.bin (a zip of pickles, read without executing anything);
 * generation_config.json when present. Weights are CriaWeight views that stay
 * valid while the CriaHfModel lives. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <cria/cria-dtype.h>
#include <cria/cria-safetensors.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_HF_ARCH_GPT2,    /* GPT2LMHeadModel */
  CRIA_HF_ARCH_LLAMA,   /* LlamaForCausalLM */
  CRIA_HF_ARCH_QWEN2,   /* Qwen2ForCausalLM */
  CRIA_HF_ARCH_MISTRAL, /* MistralForCausalLM */
} CriaHfArch;

/* The class name in config.json's "architectures". */
const char *cria_hf_arch_name (CriaHfArch arch);

typedef enum {
  CRIA_ROPE_SCALING_NONE,
  CRIA_ROPE_SCALING_LINEAR,  /* positions divided by factor */
  CRIA_ROPE_SCALING_DYNAMIC, /* NTK: theta grows once the sequence passes original_max_position_embeddings */
  CRIA_ROPE_SCALING_LLAMA3,  /* per-frequency blend by low/high_freq_factor (Llama 3.1) */
  CRIA_ROPE_SCALING_YARN,    /* NTK-by-parts with beta_fast/beta_slow and attention scaling */
} CriaRopeScalingType;

typedef struct {
  CriaRopeScalingType type;
  double factor;                            /* > 0 (1 when NONE) */
  gint64 original_max_position_embeddings;  /* llama3, yarn, dynamic; 0 when not given */
  double low_freq_factor, high_freq_factor; /* llama3 */
  double beta_fast, beta_slow;              /* yarn (defaults 32 and 1) */
  double attention_factor;                  /* yarn; 0 when not given (then 0.1 ln(factor) + 1) */
} CriaRopeScaling;

/* config.json, typed. Sizes are validated (positive, heads dividing hidden). */
typedef struct {
  CriaHfArch arch;
  gint64 hidden_size;
  gint64 n_layers;
  gint64 n_heads;
  gint64 n_kv_heads;        /* == n_heads for GPT-2 and when absent */
  gint64 head_dim;          /* hidden_size / n_heads unless given */
  gint64 intermediate_size; /* GPT-2: n_inner or 4 * n_embd */
  gint64 vocab_size;
  gint64 max_positions;
  double norm_eps;   /* rms_norm_eps or layer_norm_epsilon */
  double rope_theta; /* 0 for GPT-2 */
  CriaRopeScaling rope_scaling;
  gboolean tie_word_embeddings;
  gboolean attention_bias; /* q/k/v biases: always for Qwen2; LLaMA's attention_bias also biases o_proj */
  gboolean mlp_bias;
  gint64 sliding_window; /* 0: none (Qwen2 only when use_sliding_window) */
  char *hidden_act;      /* "silu", "gelu_new", ... */
  CriaDType torch_dtype; /* f32 when absent */
  gint64 bos_token_id;   /* -1 when absent */
  GArray *eos_token_ids; /* gint64; eos_token_id may be a list */
  gint64 pad_token_id;   /* -1 when absent */
  JsonObject *json;      /* the whole file, for keys not typed here */
} CriaHfConfig;

/* Sizes config.json may give, far above any released model: a larger one
 * is refused before anything is sized by it (one tensor name per layer, a
 * new model's weights). Past these, a checkpoint's own tensors bound them:
 * cria_hf_model_open() then checks every shape against them. */
#define CRIA_HF_MAX_LAYERS 1024
#define CRIA_HF_MAX_WIDTH (1 << 20)     /* hidden_size, intermediate_size, heads x head_dim */
#define CRIA_HF_MAX_VOCAB (1 << 24)     /* vocab_size */
#define CRIA_HF_MAX_POSITIONS (1 << 26) /* max_position_embeddings */

CriaHfConfig *cria_hf_config_parse (const char *text, gssize len, const char *file, GError **error);
CriaHfConfig *cria_hf_config_load (const char *path, GError **error);
void cria_hf_config_free (CriaHfConfig *config);

/* The tensor a checkpoint of `config` must hold. */
typedef struct {
  char *name;
  guint n_dims;
  gint64 shape[2];
  gboolean optional; /* lm_head.weight of a tied model */
} CriaHfTensorSpec;

/* Every tensor the architecture expects, in a stable order (CriaHfTensorSpec). */
GArray *cria_hf_config_expected_tensors (const CriaHfConfig *config);

typedef struct _CriaHfModel CriaHfModel;

/* Reads config.json and the weights' headers (safetensors are mapped, not
 * read); checks the tensors against the config (cria_hf_model_check). */
CriaHfModel *cria_hf_model_open (const char *dir, GError **error);
void cria_hf_model_free (CriaHfModel *model);

const char *cria_hf_model_get_dir (CriaHfModel *model);
const CriaHfConfig *cria_hf_model_get_config (CriaHfModel *model);
/* generation_config.json, or NULL when the directory has none. */
JsonObject *cria_hf_model_get_generation_config (CriaHfModel *model);
/* "model.safetensors", "model.safetensors.index.json" or "pytorch_model.bin". */
const char *cria_hf_model_get_weights_file (CriaHfModel *model);

guint cria_hf_model_get_n_weights (CriaHfModel *model);
const CriaWeight *cria_hf_model_get_weight (CriaHfModel *model, guint index);
/* Finds a weight by its Hugging Face name. GPT-2 files saved without the
 * "transformer." prefix answer to the prefixed name too. NULL when absent. */
const CriaWeight *cria_hf_model_lookup (CriaHfModel *model, const char *name);
/* Sum of the elements of every weight. */
gint64 cria_hf_model_get_n_parameters (CriaHfModel *model);

/* Checks that the weights are exactly the ones the config's architecture
 * expects with the shapes it implies; the error names every missing,
 * unexpected and mis-shaped tensor (up to a few of each). */
gboolean cria_hf_model_check (CriaHfModel *model, GError **error);

/* Writes `dir`/config.json (from config->json) and the weights: one
 * model.safetensors, or shards of at most `max_shard_bytes` (0: no limit)
 * named model-0000x-of-0000y.safetensors with their index. Every file is
 * written atomically; `weights` is an array of CriaWeight. */
gboolean cria_hf_model_write (const char *dir, const CriaHfConfig *config, const CriaWeight *weights, guint n_weights,
                              guint64 max_shard_bytes, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaHfConfig, cria_hf_config_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaHfModel, cria_hf_model_free)

G_END_DECLS
