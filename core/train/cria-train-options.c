/* cria-train-options.c: the options of a training run, one table that
 * `cria train` parses, its -f JSON file fills and cria-train(1) lists. */
#include "config.h"

#include <string.h>

#include "cria-train-private.h"

static const CriaPropSpec train_specs[] = {
  { "model", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "Hugging Face model directory to fine-tune, or ORG/NAME pulled by cria pull", CRIA_PROP_FLAG_REQUIRED },
  { "data", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "training records: a file (JSON lines, JSON array, CSV; Alpaca, ShareGPT, messages) or a pipeline",
    CRIA_PROP_FLAG_REQUIRED },
  { "out", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "output directory: adapter or model, train-log.jsonl, loss.png, report.json, checkpoints/",
    CRIA_PROP_FLAG_REQUIRED },
  { "eval-data", CRIA_PROP_STRING, NULL, 0, 0, NULL, "evaluation records, in the forms data takes" },
  { "eval-ratio", CRIA_PROP_DOUBLE, "0", 0, 0.9, NULL,
    "fraction of the training records held out for evaluation (seeded), when eval-data is not given" },
  { "format", CRIA_PROP_STRING, "alpaca", 0, 0, NULL, "prompt format: a name under share/formats or a path" },
  { "tokenizer", CRIA_PROP_STRING, NULL, 0, 0, NULL, "tokenizer file or directory; default: the model directory" },
  { "adapter", CRIA_PROP_STRING, "lora", 0, 0, NULL,
    "adapter and its properties, as in a pipeline: 'lora r=8 alpha=16 target-modules=q_proj,v_proj' or full" },
  { "max-length", CRIA_PROP_INT, "512", 2, 1 << 20, NULL,
    "tokens per example (longer records: see on-long; a text without a prompt is cut into pieces), and per packed "
    "row" },
  { "on-long", CRIA_PROP_ENUM, "skip", 0, 0, "truncate|skip|error",
    "a record longer than max-length: skip it (counted), truncate its tail (skipped when no response token is left) "
    "or stop the run" },
  { "train-on-inputs", CRIA_PROP_BOOL, "false", 0, 0, NULL, "also learn the prompt's tokens, not only the response's" },
  { "packing", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "pack several examples per row, kept apart by segment and position ids, instead of padding" },
  { "shuffle", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "take the examples in a new seeded order each epoch; false: in the data's order every epoch (eval-ratio's "
    "held-out choice stays seeded)" },
  { "batch-size", CRIA_PROP_INT, "4", 1, 65536, NULL, "rows per micro-batch" },
  { "grad-accum", CRIA_PROP_INT, "1", 1, 65536, NULL, "micro-batches per optimizer step" },
  { "epochs", CRIA_PROP_INT, "1", 1, 100000, NULL, "passes over the data (unless max-steps is given)" },
  { "max-steps", CRIA_PROP_INT, "0", 0, 1e12, NULL, "optimizer steps to take; 0: as many as the epochs make" },
  { "lr", CRIA_PROP_DOUBLE, "2e-4", 0, 10, NULL, "peak learning rate" },
  { "beta1", CRIA_PROP_DOUBLE, "0.9", 0, 1, NULL, "AdamW's first-moment decay" },
  { "beta2", CRIA_PROP_DOUBLE, "0.999", 0, 1, NULL, "AdamW's second-moment decay" },
  { "adam-eps", CRIA_PROP_DOUBLE, "1e-8", 0, 1, NULL, "AdamW's epsilon" },
  { "weight-decay", CRIA_PROP_DOUBLE, "0", 0, 10, NULL, "decoupled weight decay (matrices only, not biases or norms)" },
  { "schedule", CRIA_PROP_ENUM, "linear", 0, 0, "constant|linear|cosine", "learning-rate schedule after warmup" },
  { "warmup-steps", CRIA_PROP_INT, "0", 0, 1e12, NULL, "steps of linear warmup from 0" },
  { "warmup-ratio", CRIA_PROP_DOUBLE, "0", 0, 1, NULL, "warmup as a fraction of the steps (when warmup-steps is 0)" },
  { "max-grad-norm", CRIA_PROP_DOUBLE, "1", 0, 1e9, NULL, "clip the global gradient norm to this; 0: no clipping" },
  { "recompute", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "keep only each transformer block's input between the passes and recompute the block in backward" },
  { "eval-every", CRIA_PROP_INT, "0", 0, 1e12, NULL, "evaluation loss every N steps (and at the end); 0: at the end" },
  { "save-every", CRIA_PROP_INT, "0", 0, 1e12, NULL, "checkpoint every N steps (and at the end); 0: at the end only" },
  { "resume", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "continue exactly from a checkpoint directory; the options not given are the run's own" },
  { "overwrite", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "write into an out directory that is not empty and not the run being resumed" },
  { "stop-after", CRIA_PROP_INT, "0", 0, 1e12, NULL,
    "stop with a checkpoint after N steps of this invocation, as Ctrl-C does (time-boxed runs)" },
  { "nan-limit", CRIA_PROP_INT, "5", 1, 1e6, NULL,
    "non-finite loss or gradients skip the step; this many in a row abort the run" },
  { "seed", CRIA_PROP_INT, "42", 0, 1e15, NULL, "seed of the adapter's init, data order and dropout" },
  { "threads", CRIA_PROP_INT, "0", 0, 4096, NULL,
    "compute threads; 0: every core (runs are bitwise reproducible at a fixed count)" },
  { "backend", CRIA_PROP_STRING, "cpu", 0, 0, NULL, "compute backend and its properties (e.g. \"cpu fuse=false\")" },
  { "base-dtype", CRIA_PROP_ENUM, "auto", 0, 0, "auto|f32|bf16",
    "the model's weights in memory (auto: as stored); bf16 also rounds activations to bf16 for the products with "
    "the frozen weights (the backend's bf16-dot: AMX tiles or AVX512-BF16 dot products on cpu, bf16 cuBLASLt "
    "products on cuda; f32 sums)" },
  { "save-dtype", CRIA_PROP_ENUM, "f32", 0, 0, "f32|bf16|f16", "weight type of a fully fine-tuned model saved" },
  { "progress", CRIA_PROP_ENUM, "auto", 0, 0, "auto|always|never", "progress bar on stderr (auto: on a terminal)" },
  { "objective", CRIA_PROP_ENUM, "sft", 0, 0, "sft|dpo|ipo|orpo",
    "sft: supervised (a pair learns its chosen answer); dpo, ipo, orpo: preference pairs (chosen, rejected)" },
  { "beta", CRIA_PROP_DOUBLE, "0.1", 1e-6, 1e6, NULL,
    "DPO's and IPO's beta (strength of the reference's pull); ORPO's lambda (weight of the odds-ratio term)" },
  { "dpo-label-smoothing", CRIA_PROP_DOUBLE, "0", 0, 0.5, NULL,
    "cDPO: the probability that a pair's labels are flipped (dpo only)" },
  { "ref-model", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "reference model directory for dpo and ipo; default: the model with the adapter switched off" },
  { "precompute-ref", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "compute the reference log-probs of every pair once before training instead of at each step (always for "
    "adapter=full without ref-model)" },
  { "distributed", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "data-parallel training in the processes mpirun started: batch-size rows per process, gradients summed" },
  { "dist-timeout", CRIA_PROP_DOUBLE, "600", 0, 1e9, NULL,
    "with distributed: seconds a rank waits for the others in a collective before it stops the job; 0: forever" },
  CRIA_PROP_END
};

const CriaPropSpec *
cria_train_option_specs (void)
{
  return train_specs;
}

/* Options that belong to one invocation, not to the run: a checkpoint does
 * not record them and a resumed run does not inherit them. */
static const char *const invocation_options[] = { "resume",      "stop-after",   "overwrite",
                                                  "distributed", "dist-timeout", NULL };

gboolean
train_option_is_per_invocation (const char *name)
{
  return g_strv_contains (invocation_options, name);
}

gboolean
cria_train_options_from_checkpoint (CriaProps *props, const char *const *given, GError **error)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const char *dir = cria_props_get_string (props, "resume");
  if (!dir)
    return TRUE;
  g_autofree char *path = g_build_filename (dir, "trainer_state.json", NULL);
  g_autoptr (JsonObject) state = train_load_json_object (path, error);
  if (!state) {
    g_prefix_error (error, "resume: ");
    return FALSE;
  }
  if (!cria_json_member_is (state, "options", JSON_TYPE_OBJECT)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "resume: %s: field options: expected an object", path);
    return FALSE;
  }
  JsonObject *recorded = cria_json_get_object (state, "options");
  JsonObjectIter it;
  const char *name;
  JsonNode *value;
  json_object_iter_init (&it, recorded ? recorded : state);
  while (recorded && json_object_iter_next (&it, &name, &value)) {
    if (train_option_is_per_invocation (name) || (given && g_strv_contains (given, name)))
      continue; /* given again: the trainer checks that it agrees */
    if (!strcmp (name, "out") || JSON_NODE_HOLDS_NULL (value))
      continue; /* out: below, where the checkpoint is now */
    if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "resume: %s: field options.%s: expected a string", path, name);
      return FALSE;
    }
    if (!cria_props_set (props, name, json_node_get_string (value), error)) {
      g_prefix_error (error, "resume: %s: field options.%s: ", path, name);
      return FALSE;
    }
  }
  if (given && g_strv_contains (given, "out"))
    return TRUE;
  /* A checkpoint is OUT/checkpoints/checkpoint-STEP: the run's directory is
   * found from it, so a moved run directory still resumes in place. */
  g_autofree char *parent = g_path_get_dirname (dir);
  g_autofree char *base = g_path_get_basename (parent);
  g_autofree char *out = NULL;
  if (!strcmp (base, "checkpoints"))
    out = g_path_get_dirname (parent);
  else if (recorded && cria_json_get_string (recorded, "out", NULL))
    out = g_strdup (cria_json_get_string (recorded, "out", NULL));
  return !out || cria_props_set (props, "out", out, error);
}

gboolean
cria_train_options_set_json (CriaProps *props, JsonNode *root, const char *file, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a JSON object of options", file);
    return FALSE;
  }
  JsonObjectIter it;
  const char *name;
  JsonNode *value;
  json_object_iter_init (&it, json_node_get_object (root));
  while (json_object_iter_next (&it, &name, &value)) {
    if (!cria_props_set_json (props, name, value, error)) {
      g_prefix_error (error, "%s: ", file);
      return FALSE;
    }
  }
  return TRUE;
}
