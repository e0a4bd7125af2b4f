/* cria-adapter.h: adapters (providers of kind CRIA_KIND_ADAPTER) — what a
 * fine-tuning method adds to or changes in a frozen model, and how it is
 * saved in PEFT's format.
 *
 * An adapter never sees the model's forward pass. It meets the model twice:
 *
 * - when it attaches, through the parameter table (CriaAdapterEntry): it
 *   may create its own tensors (LoRA's A and B, seeded), and replace table
 *   entries (a trainable f32 copy for full fine-tuning or a trained bias, a
 *   quantized weight for QLoRA's frozen base);
 * - on every graph built, through the graph's linear hook: it rewrites the
 *   named linear layers it targets (out + scale * B A dropout(x)).
 *
 * The trainer then works only with the adapter's list of trainable tensors
 * (CriaAdapterParam: a stable name, the f32 value it updates in place, and
 * whether weight decay applies) and calls the optional step hooks around each
 * optimizer step, which is where AdaLoRA masks ranks by importance and adds
 * its orthogonality regularizer. Saving writes adapter_config.json and
 * adapter_model.safetensors with PEFT's keys; extra state that PEFT does not
 * keep (AdaLoRA's importance averages) goes to checkpoints through
 * save_state/load_state. */
#pragma once

#include <cria/cria-graph.h>
#include <cria/cria-props.h>
#include <cria/cria-registry.h>
#include <cria/cria-safetensors.h>

G_BEGIN_DECLS

/* One entry of the model's parameter table, as an adapter sees it. */
typedef struct {
  const char *name;        /* Hugging Face name: "transformer.h.0.attn.c_attn.weight" */
  CriaTensor *tensor;      /* [out, in] for linear weights, whatever the file's layout */
  gboolean linear;         /* the weight of a linear layer the graph builds with cria_linear */
  gboolean fan_in_fan_out; /* the file stores it [in, out] (GPT-2's Conv1D) */
  /* Set by attach to replace the entry (the table takes its own reference;
   * the adapter keeps one). A trainable replacement must be f32. */
  CriaTensor *replacement;
  gboolean replacement_trainable;
  /* a linear layer PEFT adapts by default in this architecture (what
   * target-modules=auto means; the model provider says which) */
  gboolean default_target;
} CriaAdapterEntry;

/* A tensor the optimizer updates: f32, owned by the adapter. */
typedef struct {
  const char *name; /* the key it is saved under, stable across runs */
  CriaTensor *value;
  gboolean decay; /* FALSE for biases and norms */
} CriaAdapterParam;

/* What the step hooks see: grads[i] belongs to the i-th param, summed over
 * the accumulation window and already divided by the number of loss tokens. */
typedef struct {
  gint64 step;        /* the optimizer step about to be taken (0-based) */
  gint64 total_steps; /* of the run */
  float *const *grads;
  guint n_params;
} CriaAdapterStep;

struct _CriaAdapterVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaAdapterVTable) */
  /* PEFT's peft_type written in adapter_config.json ("LORA"); NULL when the
   * adapter saves a whole model instead (full fine-tuning). */
  const char *peft_type;
  gpointer (*create) (const CriaProps *props, GError **error);
  void (*destroy) (gpointer self);
  /* Checks the targets against the table (an adapter that targets nothing
   * fails here, before any compute), creates its tensors from `seed`, and
   * may set entries' replacements. `config` is the model's config.json. */
  gboolean (*attach) (gpointer self, CriaAdapterEntry *entries, guint n_entries, JsonObject *config, guint64 seed,
                      GError **error);
  /* The linear hook of every graph built for the model (see cria-graph.h);
   * NULL when the adapter only replaces entries. */
  CriaLinearHook linear;
  /* Appends CriaAdapterParam to `params` in a stable order. */
  void (*list_params) (gpointer self, GArray *params);
  /* Dropout and other training-only behaviour on or off (default on). May be NULL. */
  void (*set_training) (gpointer self, gboolean training, guint64 step_seed);
  /* Optional: adds the gradient of a regularizer to step->grads and returns
   * its value, which the trainer adds to the reported loss. */
  double (*regularize) (gpointer self, const CriaAdapterStep *step);
  /* Optional: after the gradients of a step are final and before the
   * optimizer runs (importance scores), and after it (rank masks). */
  gboolean (*before_step) (gpointer self, const CriaAdapterStep *step, GError **error);
  gboolean (*after_step) (gpointer self, const CriaAdapterStep *step, GError **error);
  /* Adds adapter_config.json's fields (peft_type, base model, task type are
   * written by the core) to `config`, and the tensors to save to `weights`
   * (CriaWeight with PEFT's key names, data owned by the adapter). */
  gboolean (*save) (gpointer self, JsonObject *config, GArray *weights, GError **error);
  /* Reads the fields of adapter_config.json back, before attach: the
   * properties the adapter was trained with. */
  gboolean (*configure) (gpointer self, JsonObject *config, const char *file, GError **error);
  /* After attach: copies the saved tensors in, checking every key and shape. */
  gboolean (*load) (gpointer self, CriaSafetensors *weights, GError **error);
  /* Optional: state a checkpoint needs beyond the params (a JSON object). */
  JsonNode *(*save_state) (gpointer self);
  gboolean (*load_state) (gpointer self, JsonNode *state, GError **error);
  /* Folds the adapter into the entries' tensors, which it may overwrite
   * (they are f32 copies made by the core). */
  gboolean (*merge) (gpointer self, CriaAdapterEntry *entries, guint n_entries, GError **error);
};

typedef struct _CriaAdapter CriaAdapter;

/* A detached adapter of `provider` with validated `props`. */
CriaAdapter *cria_adapter_new (const CriaProvider *provider, const CriaProps *props, GError **error);
/* "lora r=16 alpha=32 target-modules=q_proj,v_proj" */
CriaAdapter *cria_adapter_new_from_spec (CriaRegistry *registry, const char *spec, GError **error);
void cria_adapter_free (CriaAdapter *adapter);
const CriaProvider *cria_adapter_get_provider (CriaAdapter *adapter);
gpointer cria_adapter_get_instance (CriaAdapter *adapter);

/* Attaches to a table given by hand (tests, or a program with its own
 * layers). Replacements are left in the entries for the caller to install. */
gboolean cria_adapter_attach_entries (CriaAdapter *adapter, CriaAdapterEntry *entries, guint n_entries,
                                      JsonObject *config, guint64 seed, GError **error);
/* Installs the adapter's linear hook in a graph about to be built. */
void cria_adapter_install (CriaAdapter *adapter, CriaGraph *g);
/* The hook and its data, for code that installs hooks itself (cria_lm_set_linear_hook);
 * NULL when the adapter only replaces weights. */
CriaLinearHook cria_adapter_get_linear_hook (CriaAdapter *adapter, gpointer *user_data);
void cria_adapter_set_training (CriaAdapter *adapter, gboolean training, guint64 step_seed);

/* The trainable tensors (CriaAdapterParam), owned by the adapter. */
GArray *cria_adapter_get_params (CriaAdapter *adapter);

double cria_adapter_regularize (CriaAdapter *adapter, const CriaAdapterStep *step);
gboolean cria_adapter_before_step (CriaAdapter *adapter, const CriaAdapterStep *step, GError **error);
gboolean cria_adapter_after_step (CriaAdapter *adapter, const CriaAdapterStep *step, GError **error);

/* Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors
 * atomically; `base_model` goes to base_model_name_or_path (may be NULL). */
gboolean cria_adapter_save_peft (CriaAdapter *adapter, const char *dir, const char *base_model, GError **error);
/* Reads `dir`/adapter_config.json: the provider whose peft_type matches,
 * configured from the file, not attached yet. */
CriaAdapter *cria_adapter_open_peft (CriaRegistry *registry, const char *dir, GError **error);
/* After attach: loads `dir`/adapter_model.safetensors. */
gboolean cria_adapter_load_peft_weights (CriaAdapter *adapter, const char *dir, GError **error);

JsonNode *cria_adapter_save_state (CriaAdapter *adapter);
gboolean cria_adapter_load_state (CriaAdapter *adapter, JsonNode *state, GError **error);
gboolean cria_adapter_merge_entries (CriaAdapter *adapter, CriaAdapterEntry *entries, guint n_entries, GError **error);

/* QLoRA's frozen base: sets the replacement of every linear entry not
 * replaced yet to its NF4 quantization (cria-nf4.h), appends those tensors
 * to `quantized` (which takes a reference) and prints the sizes before and
 * after on stderr. */
gboolean cria_adapter_quantize_entries (CriaAdapterEntry *entries, guint n_entries, GPtrArray *quantized,
                                        GError **error);

/* ---- On a loaded model (cria-model.h) ---- */
typedef struct _CriaModel CriaModel;

/* Offers the model's parameter table to the adapter (linear = a 2-D weight
 * of a layer built with cria_linear: not the embeddings, not the output
 * head) and installs the replacements it makes. */
gboolean cria_adapter_attach (CriaAdapter *adapter, CriaModel *model, guint64 seed, GError **error);
/* What --adapter DIR does for generation: the PEFT directory opened,
 * attached to `model` and its weights loaded, every mismatch an error. The
 * modules it saved whole (modules_to_save) replace the base's; saved with
 * another number of rows than the vocabulary (LLaMA-Factory's resized
 * vocabulary for added tokens), they resize it (cria_model_reconfigure),
 * and the directory must hold the tokenizer of the added tokens. A
 * tokenizer in the directory becomes the model's (cria_model_get_tokenizer_dir).
 * Build the model's graphs after. */
CriaAdapter *cria_adapter_load (CriaRegistry *registry, CriaModel *model, const char *dir, GError **error);
/* Quantizes the model's linear weights to NF4 as qlora does at attach: what
 * `cria merge --nf4-base` does before merging a qlora adapter, so that it
 * goes into the weights the adapter was trained on. */
gboolean cria_adapter_quantize_model (CriaModel *model, GError **error);
/* Replaces the model's weights by f32 copies with the adapter folded in
 * (then cria_model_save writes a plain Hugging Face checkpoint). */
gboolean cria_adapter_merge (CriaAdapter *adapter, CriaModel *model, GError **error);

/* PEFT's target_modules rules for one linear module path
 * ("model.layers.0.self_attn.q_proj"): `targets` is "all-linear", a
 * comma-separated list of names (a name matches the whole path or its last
 * components after a dot), or, when it holds regex characters, a regular
 * expression that must match the whole path. */
gboolean cria_adapter_target_matches (const char *targets, GRegex *regex, const char *module);
/* The regex of `targets` when it is one, else NULL (no error). */
GRegex *cria_adapter_target_regex (const char *targets, GError **error);

/* ---- Helpers for adapters saved in PEFT's format (cria-adapter-util.c) ---- */

/* The key prefix of every tensor in adapter_model.safetensors. */
#define CRIA_ADAPTER_PEFT_PREFIX "base_model.model."

/* `targets` with "auto" resolved to PEFT's default for the architecture: the
 * module names of the entries marked default_target (comma-separated), or
 * all-linear when none is; transfer full. */
char *cria_adapter_resolve_targets (const char *targets, const CriaAdapterEntry *entries, guint n_entries);
/* A standard normal from two g_rand_double (Box-Muller): the same numbers
 * for the same seed on every machine. */
float cria_adapter_gaussian (GRand *rand);

/* adapter_config.json's target_modules: a list of the comma-separated
 * names, or the string itself for all-linear and a regex. */
void cria_adapter_config_set_targets (JsonObject *config, const char *targets, GRegex *regex);
/* Reads target_modules back (a list of names or a string) into *targets
 * (comma-joined) and *regex (the string's regex or NULL), replacing both;
 * leaves them when the field is absent or null. */
gboolean cria_adapter_config_get_targets (JsonObject *config, const char *file, char **targets, GRegex **regex,
                                          GError **error);
/* A number field of adapter_config.json into *value when present and not
 * null; the integer one must lie in [lo, hi]. Errors name file and field. */
gboolean cria_adapter_config_get_double (JsonObject *config, const char *field, const char *file, double *value,
                                         GError **error);
gboolean cria_adapter_config_get_int (JsonObject *config, const char *field, const char *file, gint64 lo, gint64 hi,
                                      gint64 *value, GError **error);

/* Copies saved tensor `key` (f32, bf16 or f16, of shape [shape...]) into
 * the f32 `dst`, which holds as many values. */
gboolean cria_adapter_copy_in (CriaSafetensors *st, const char *key, CriaTensor *dst, guint n_dims, const gint64 *shape,
                               GError **error);
/* The tensors of an adapter_model.safetensors that are whole modules of the
 * base saved for the adapter config's modules_to_save (a resized or trained
 * lm_head or embed_tokens, as LLaMA-Factory writes): tensor name -> the base
 * weight it replaces. PEFT saves "base_model.model.lm_head.weight" (its
 * "modules_to_save.default." removed); the unremoved form is read too.
 * Empty when adapter_config.json beside the file lists none; transfer full. */
GHashTable *cria_adapter_peft_saved_modules (CriaSafetensors *st, GError **error);
/* Appends an f32 CriaWeight (data not copied) to `weights`. */
void cria_adapter_add_weight (GArray *weights, const char *key, const float *data, guint n_dims, const gint64 *shape);
/* The entry called `name`, or NULL. */
CriaAdapterEntry *cria_adapter_find_entry (CriaAdapterEntry *entries, guint n_entries, const char *name);
/* W [out, in] += scale * B diag(E) A for B [out, r], A [r, in] and E [r]
 * (NULL: ones), each element's sum over the rank in double. */
void cria_adapter_add_low_rank (float *w, gint64 out, gint64 in, gint64 r, const float *b, const float *e,
                                const float *a, double scale);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaAdapter, cria_adapter_free)

G_END_DECLS
