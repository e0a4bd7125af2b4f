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

/* config.json, typed. Reading it takes two steps, since only the model
 * provider of the class knows its field names and defaults:
 * cria_hf_config_parse fills `architecture`, `torch_dtype` and the token ids
 * and keeps the whole file in `json`; the provider's configure then fills the
 * sizes from `json` with the cria_hf_config_get_* helpers, and
 * cria_hf_config_check validates what every architecture shares (positive
 * sizes, heads dividing, token ids below vocab_size). */
typedef struct {
  char *file;         /* the path errors name */
  char *architecture; /* the class name of "architectures", e.g. what a provider lists in `classes` */
  gint64 hidden_size;
  gint64 n_layers;
  gint64 n_heads;
  gint64 n_kv_heads; /* the provider sets it (n_heads when the file has no such field) */
  gint64 head_dim;   /* per attention head (not always hidden_size / n_heads) */
  gint64 intermediate_size;
  gint64 vocab_size;
  gint64 max_positions;
  double norm_eps;
  double rope_theta; /* 0 for a model without rotary positions */
  CriaRopeScaling rope_scaling;
  gboolean tie_word_embeddings;
  gboolean attention_bias; /* the attention projections carry biases (which ones is the provider's rule) */
  gboolean mlp_bias;
  gint64 sliding_window; /* 0: none */
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
/* What every architecture shares, once the provider has filled the sizes. */
gboolean cria_hf_config_check (const CriaHfConfig *config, GError **error);

/* For providers' configure: a field of config->json, with a one-line error
 * naming the file and the field. get_int: `dflt` < 0 makes the field
 * required and the value must be >= `min`; get_number: a positive number;
 * null counts as absent everywhere. */
gboolean cria_hf_config_has (const CriaHfConfig *config, const char *name);
gboolean cria_hf_config_get_int (const CriaHfConfig *config, const char *name, gint64 dflt, gint64 min, gint64 *out,
                                 GError **error);
gboolean cria_hf_config_get_number (const CriaHfConfig *config, const char *name, double dflt, double *out,
                                    GError **error);
gboolean cria_hf_config_get_bool (const CriaHfConfig *config, const char *name, gboolean dflt, gboolean *out,
                                  GError **error);
/* Transfer full. */
gboolean cria_hf_config_get_string (const CriaHfConfig *config, const char *name, const char *dflt, char **out,
                                    GError **error);
/* rope_theta (default `theta`) and rope_scaling, for models with rotary positions. */
gboolean cria_hf_config_get_rope (CriaHfConfig *config, double theta, GError **error);
/* The rotary frequencies of a model read by cria_hf_config_get_rope, for
 * cria_rope: inv_freq[i] = rope_theta^(-2i/dim) for i < dim/2, reshaped by
 * rope_scaling; `dim` is the rotated width (the head size, or less for a
 * partial rotation) and `seq` the length the dynamic NTK scaling looks at.
 * `attention_factor` receives the factor YaRN multiplies cos and sin by (1
 * for the other scalings). */
void cria_hf_config_rope_inv_freq (const CriaHfConfig *config, gint64 dim, gint64 seq, float *inv_freq,
                                   double *attention_factor);

/* What a tensor is, which fixes how `cria model init` fills it and whether
 * adapters may attach to it. */
typedef enum {
  CRIA_HF_TENSOR_LINEAR, /* a linear layer's weight (cria_linear): normal(0, initializer_range * init_scale) */
  CRIA_HF_TENSOR_MATRIX, /* another matrix (embeddings, output head): normal(0, initializer_range) */
  CRIA_HF_TENSOR_NORM,   /* a norm's weight: ones */
  CRIA_HF_TENSOR_BIAS,   /* a bias: zeros */
} CriaHfTensorRole;

/* A tensor a checkpoint must hold, as the provider lists it. */
typedef struct {
  char *name;
  guint n_dims;
  gint64 shape[2];   /* as the file stores it */
  gboolean optional; /* lm_head.weight of a tied model */
  CriaHfTensorRole role;
  double init_scale; /* multiplies initializer_range for LINEAR (1 unless set) */
} CriaHfTensorSpec;

/* An empty list of CriaHfTensorSpec that frees its names. */
GArray *cria_hf_tensors_new (void);
/* Appends one tensor of shape [d0] (n_dims 1) or [d0, d1] named by `format`;
 * the returned spec stays valid until the next append. */
CriaHfTensorSpec *cria_hf_tensors_add (GArray *list, CriaHfTensorRole role, guint n_dims, gint64 d0, gint64 d1,
                                       const char *format, ...) G_GNUC_PRINTF (6, 7);

typedef struct _CriaHfModel CriaHfModel;

/* Reads config.json (cria_hf_config_parse: the sizes are left to the model
 * provider, see cria_model_open_files) and the weights' headers
 * (safetensors are mapped, not read). Nothing is checked against the
 * architecture yet. */
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
/* Finds a weight by its name (as cria_hf_model_rename left it). NULL when absent. */
const CriaWeight *cria_hf_model_lookup (CriaHfModel *model, const char *name);
/* Sum of the elements of every weight. */
gint64 cria_hf_model_get_n_parameters (CriaHfModel *model);

/* Gives each weight the name `canonical` returns for its file name (newly
 * allocated; NULL drops a buffer that no model reads), so that files saved
 * under older spellings answer to one name. Fails when two weights end up
 * with one name. Lets the provider of the class fill the config's sizes. */
gboolean cria_hf_model_rename (CriaHfModel *model, char *(*canonical) (const CriaHfConfig *config, const char *name),
                               GError **error);
CriaHfConfig *cria_hf_model_get_config_mutable (CriaHfModel *model);

/* Checks that the weights are exactly `expected` (CriaHfTensorSpec, the
 * provider's list) with the shapes it gives; the error names every missing,
 * unexpected and mis-shaped tensor (up to a few of each). */
gboolean cria_hf_model_check (CriaHfModel *model, const GArray *expected, GError **error);

/* Writes `dir`/config.json (from config->json) and the weights: one
 * model.safetensors, or shards of at most `max_shard_bytes` (0: no limit)
 * named model-0000x-of-0000y.safetensors with their index. Every file is
 * written atomically; `weights` is an array of CriaWeight. */
gboolean cria_hf_model_write (const char *dir, const CriaHfConfig *config, const CriaWeight *weights, guint n_weights,
                              guint64 max_shard_bytes, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaHfConfig, cria_hf_config_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaHfModel, cria_hf_model_free)

G_END_DECLS
