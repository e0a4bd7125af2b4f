/* cria-model.h: causal language models — architectures (providers of kind
 * CRIA_KIND_MODEL) and a model loaded from a Hugging Face directory.
 *
 * The core owns the weights: cria_model_open reads the directory, asks each
 * model provider whether it builds the config's architecture, and keeps every
 * weight in a parameter table under its Hugging Face name, in the layout
 * [out, in] of a linear layer (a provider whose files store a weight
 * transposed, as a Conv1D layout does, says so and the core transposes it on
 * the way in and out). A provider only builds the forward pass from core ops,
 * taking weights with cria_model_param; it never sees adapters, which attach
 * through the graph's linear hook, or training, which swaps table entries for
 * trainable f32 copies (full fine-tuning) or quantized ones (QLoRA). */
#pragma once

#include <cria/cria-graph.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-props.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

typedef struct _CriaModel CriaModel;
typedef struct _CriaGgufWriter CriaGgufWriter;

/* What one forward pass is built for. */
typedef struct {
  gint64 batch;       /* B sequences */
  gint64 seq;         /* T new tokens in each */
  gint64 past;        /* P tokens already in the KV cache (0 when training) */
  gboolean segments;  /* an i32 [B, P+T] segment-id input isolates packed samples */
  gboolean kv_output; /* keep each layer's keys and values (for a KV cache) */
  /* A ragged batch (decoding several sequences at once): B cached lengths,
   * one per sequence, and `past` their largest (what a length check or a
   * dynamic rotary scaling reads; the batch only holds sequences for which
   * that gives the same model). NULL: every sequence has `past`. The
   * provider needs nothing more: cria_model_add_inputs and
   * cria_model_attention handle it, and positions come from the input. */
  const gint64 *pasts;
} CriaModelShape;

/* The nodes of a built forward pass. Inputs are set by the caller before
 * running: ids and positions (i32 [B,T]), segments, and the cached keys and
 * values of each layer when past > 0. */
typedef struct {
  CriaNode *ids;
  CriaNode *positions;
  CriaNode *segments;                /* NULL unless shape->segments */
  CriaNode **past_k, **past_v;       /* n_layers inputs f32 [B,P,Hkv,Dh], or NULL when P == 0;
                                      * ragged: n_layers * B inputs [1,P_b,Hkv,Dh] at l * B + b
                                      * (NULL where P_b == 0) */
  CriaNode **present_k, **present_v; /* n_layers f32 [B,P+T,Hkv,Dh] (marked outputs when kv_output);
                                      * ragged: the new positions only, [B,T,Hkv,Dh] */
  CriaNode *hidden;                  /* f32 [B,T,hidden] after the final norm */
  CriaNode *head;                    /* the lm-head weight [vocab, hidden] (the embedding when tied) */
  /* What attention reads, the cached keys and values followed by the new
   * ones (a concat): n_layers [B,P+T,Hkv,Dh], or ragged n_layers * B
   * [1,P_b+T,Hkv,Dh] at l * B + b; NULL where there is no past. Appending
   * in place: on a host backend, a caller may set one's value (after
   * planning) to a buffer whose first P positions are the past input's own
   * storage; the concat then writes only the new positions after them. */
  CriaNode **cached_k, **cached_v;
} CriaModelGraph;

/* A model provider owns its architecture: the class names it handles, the
 * fields it reads from config.json, the tensors a checkpoint holds, how new
 * weights start and the forward pass. The core knows no architecture by
 * name. Members after `build` may be added in later minor versions: the
 * core reads a member only when `size` covers it (CRIA_VTABLE_HAS). Among
 * providers claiming one class name, the highest rank (CriaProviderInfo)
 * builds it; equal ranks go to the first in the search path. */
struct _CriaModelVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaModelVTable) */
  /* The Hugging Face class names of config.json's "architectures" it
   * handles, NULL-terminated (the "...ForCausalLM" strings). */
  const char *const *classes;
  /* Fills config's sizes from config->json (cria_hf_config_get_*); the core
   * then checks what every architecture shares (cria_hf_config_check). */
  gboolean (*configure) (CriaHfConfig *config, GError **error);
  /* Every tensor a checkpoint of `config` holds, in a stable order
   * (cria_hf_tensors_new and cria_hf_tensors_add); transfer full. The
   * checker, the loader, `cria model init` and adapters use this list. */
  GArray *(*tensors) (const CriaHfConfig *config);
  /* The name a file's tensor is known by (newly allocated), NULL for a
   * buffer no model reads; may be NULL (names as stored). */
  char *(*canonical) (const CriaHfConfig *config, const char *name);
  /* TRUE for weights the file stores as [in, out] (a Conv1D layout); may be NULL. */
  gboolean (*transposed) (const CriaHfConfig *config, const char *name);
  /* Builds the forward pass of `shape` into `g` and fills `out`, from
   * cria_model_get_config and cria_model_param. Shape errors stay in the graph. */
  gboolean (*build) (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out, GError **error);
  /* PEFT's default target_modules for the architecture (comma-separated),
   * what target-modules=auto means; NULL: all-linear. */
  const char *default_targets;
  /* Optional, for GGUF export (cria-gguf.h), as llama.cpp's converter
   * (convert_hf_to_gguf.py) writes the architecture: sets
   * general.architecture (the name llama.cpp knows it by) and the
   * hyperparameters llama.cpp reads under that prefix, and may add tensors
   * the file needs beyond the table (LLaMA 3's rope_freqs). Fails with a
   * one-line error for a config llama.cpp cannot run as cria does. */
  gboolean (*gguf_metadata) (const CriaHfConfig *config, CriaGgufWriter *gguf, GError **error);
  /* With gguf_metadata: the GGUF name of the table's weight `name` (newly
   * allocated), NULL for one the file leaves out. *permute_heads is set to
   * the number of heads when the converter permutes the rows of the weight
   * (and of its bias, and of a LoRA B) from Hugging Face's rotate-half RoPE
   * to llama.cpp's interleaved one, else 0. */
  char *(*gguf_tensor_name) (const CriaHfConfig *config, const char *name, gint64 *permute_heads);
};

/* How weights are held in memory: as stored in the file (mapped, not copied,
 * where the layout allows), or converted. Vectors (norms, biases) are always
 * f32 since the ops compute in f32. */
typedef enum {
  CRIA_MODEL_DTYPE_AUTO,
  CRIA_MODEL_DTYPE_F32,
  CRIA_MODEL_DTYPE_BF16,
} CriaModelDType;

/* The model provider of `registry` for the class name `architecture`: the
 * highest rank among those listing it. */
const CriaProvider *cria_model_find_provider (CriaRegistry *registry, const char *architecture, GError **error);
/* The provider's vtable, or NULL for a provider of another kind. */
const CriaModelVTable *cria_model_provider_vtable (const CriaProvider *provider);

/* Lets the model provider for config's class (the highest rank) fill the
 * config's sizes from its JSON, then checks what every architecture shares
 * (cria_hf_config_check). Returns the provider. */
const CriaProvider *cria_model_configure (CriaRegistry *registry, CriaHfConfig *config, GError **error);

/* Opens `dir`'s files (cria_hf_model_open), lets the provider for its class
 * read config.json, renames the tensors as it says and checks them against
 * its list. The weights are not loaded. `provider` and `tensors` (its list,
 * transfer full) may be NULL. */
CriaHfModel *cria_model_open_files (CriaRegistry *registry, const char *dir, const CriaProvider **provider,
                                    GArray **tensors, GError **error);

/* Opens `dir` with the model provider of `registry` for its class. */
CriaModel *cria_model_open (CriaRegistry *registry, const char *dir, CriaModelDType dtype, GError **error);
void cria_model_free (CriaModel *model);

const CriaHfConfig *cria_model_get_config (CriaModel *model);
CriaHfModel *cria_model_get_files (CriaModel *model);
const CriaProvider *cria_model_get_provider (CriaModel *model);
const char *cria_model_get_dir (CriaModel *model);
/* The provider's entry for a weight of the table, or NULL. */
const CriaHfTensorSpec *cria_model_get_param_spec (CriaModel *model, const char *name);
/* PEFT's default target_modules of the model's architecture (see the vtable). */
const char *cria_model_get_default_targets (CriaModel *model);

/* The parameter table, in the file's order. */
guint cria_model_get_n_params (CriaModel *model);
const char *cria_model_get_param_name (CriaModel *model, guint index);
/* The tensor under a Hugging Face name ([out, in] for linear weights), or NULL. */
CriaTensor *cria_model_get_param (CriaModel *model, const char *name);
gboolean cria_model_param_is_trainable (CriaModel *model, const char *name);
/* Replaces a table entry (same shape; a trainable one must be f32). Takes a
 * reference on `tensor`. */
gboolean cria_model_set_param (CriaModel *model, const char *name, CriaTensor *tensor, gboolean trainable,
                               GError **error);
/* Changes members of the model's config.json (`changes`: vocab_size, as
 * transformers' resize_token_embeddings writes it; tie_word_embeddings
 * false, for a head of its own) and the parameter table with them: the
 * provider reads the changed config, and its tensor list says which weights
 * change shape. Each such weight, and each one the table lacked (the head
 * of an untied model), comes from `weights` (name -> CriaTensor, shaped as
 * the new list says; a reference is taken), which may also replace others;
 * every other entry stays. On failure nothing changes and the error names
 * `source` and the tensor. A graph built before sees the old weights: build
 * graphs after. */
gboolean cria_model_reconfigure (CriaModel *model, JsonObject *changes, GHashTable *weights, const char *source,
                                 GError **error);
/* The directory of the model's tokenizer files: its own, unless an adapter
 * brought its tokenizer (cria_model_set_tokenizer_dir). cria_model_save
 * copies the tokenizer files from there. */
const char *cria_model_get_tokenizer_dir (CriaModel *model);
void cria_model_set_tokenizer_dir (CriaModel *model, const char *dir);
/* For a weight whose bytes are mapped from the model's safetensors files and
 * that nothing will read again (QLoRA's base weight once quantized): lets its
 * pages leave resident memory now, while the mapping stays for the other
 * weights (a read would fault them back in from the file). Weights held in
 * owned memory are left alone. */
void cria_model_drop_weight_pages (CriaTensor *weight);

/* For providers: the graph node of a weight, created on first use in `g` and
 * shared after (a tied head and the embedding are one node). NULL with the
 * error kept in the graph when the table has no such weight. */
CriaNode *cria_model_param (CriaModel *model, CriaGraph *g, const char *name);

/* For providers: the inputs of `shape` (ids, positions, segments, the cached
 * keys and values) and room for each layer's present keys and values. */
gboolean cria_model_add_inputs (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out);
/* For providers: attention of q [B,T,Hq,Dh] over layer `layer`'s cached keys
 * and values followed by k and v [B,T,Hkv,Dh], which become the layer's
 * present keys and values. Returns [B,T,Hq*Dh]. */
CriaNode *cria_model_attention (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out,
                                gint64 layer, CriaNode *q, CriaNode *k, CriaNode *v, float scale, gint64 window);

/* Builds the forward pass through the provider and checks the graph. */
gboolean cria_model_build (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out,
                           GError **error);
void cria_model_graph_clear (CriaModelGraph *out);

/* Writes the table as a Hugging Face directory (config.json, safetensors,
 * sharded above `max_shard_bytes`), in the file layout the provider reads,
 * each weight in `dtype` (f32, bf16 or f16). Copies generation_config.json
 * from the model's directory and the tokenizer's files (tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json, ...) from
 * cria_model_get_tokenizer_dir, when they are there. */
gboolean cria_model_save (CriaModel *model, const char *dir, CriaDType dtype, guint64 max_shard_bytes, GError **error);

/* Writes `dir` as a new model of the config.json at `config_path` (a copy
 * of it, and weights initialized as transformers does, by the roles of the
 * provider's tensor list: matrices normal(0, initializer_range times the
 * tensor's init_scale), biases 0, norms 1), drawn from `seed`. dtype is f32
 * or bf16. */
gboolean cria_model_init_dir (CriaRegistry *registry, const char *config_path, const char *dir, guint64 seed,
                              CriaDType dtype, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaModel, cria_model_free)

G_END_DECLS
