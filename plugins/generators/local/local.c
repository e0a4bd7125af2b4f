/* local: a generator that runs a model directory on cria's own runtime.
 *
 *   cria data 'file location=seeds.jsonl ! selfinstruct generator="local model=../shared/models/stories260K" ! jsonl location=out.jsonl'
 *
 * The same request gives the same text as `cria serve` on the same model and
 * settings: both go through CriaLmRunner. A batch of requests (Self-Instruct
 * and Evol-Instruct ask in batches) is decoded together, `batch` sequences
 * per step, each with the text it gets alone. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>
#include <cria/cria-generator.h>

static const CriaPropSpec local_props[] = {
  { "model", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "the Hugging Face model directory (config.json, weights, tokenizer), or ORG/NAME pulled by cria pull",
    CRIA_PROP_FLAG_REQUIRED },
  { "dtype", CRIA_PROP_ENUM, "auto", 0, 0, "auto|f32|bf16", "weights in memory: as stored, f32 or bf16" },
  { "backend", CRIA_PROP_STRING, "cpu", 0, 0, NULL, "the compute backend and its properties" },
  { "threads", CRIA_PROP_INT, "0", 0, 1024, NULL, "threads of the cpu backend (0: every core)" },
  { "prompt-format", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "prompt format of conversations: a format (alpaca, chatml, llama2, vicuna, a JSON file) or a .jinja template; "
    "unset or auto: the format recorded in the model directory, else the model's chat template, as cria serve" },
  { "add-special", CRIA_PROP_BOOL, "true", 0, 0, NULL, "add the tokenizer's special tokens (BOS) to each prompt" },
  { "max-tokens", CRIA_PROP_INT, "256", 1, G_MAXINT, NULL, "tokens to generate when a request does not say" },
  { "temperature", CRIA_PROP_DOUBLE, "0", 0, 100, NULL,
    "sampling temperature when a request does not say (0: greedy)" },
  { "top-p", CRIA_PROP_DOUBLE, "1", 1e-9, 1, NULL, "nucleus sampling threshold when a request does not say (1: off)" },
  { "top-k", CRIA_PROP_INT, "0", 0, G_MAXINT, NULL, "sample among the K most likely tokens (0: all)" },
  { "repetition-penalty", CRIA_PROP_DOUBLE, "1", 1e-9, 100, NULL,
    "divide the logits of tokens already present by this (1: off)" },
  { "batch", CRIA_PROP_INT, "16", 1, 256, NULL,
    "requests decoded together, one forward pass for all (1: one at a time); the texts do not change" },
  CRIA_PROP_END
};

typedef struct {
  CriaLmStack stack;
  CriaPromptFormat *format;
  CriaLmRunner *runner;
  char *identity;
  guint batch;
  GMutex lock; /* batch=1: one request at a time on the model */
} Local;

static void
local_destroy (gpointer data)
{
  Local *self = data;
  g_clear_pointer (&self->runner, cria_lm_runner_free);
  g_clear_pointer (&self->format, cria_prompt_format_free);
  cria_lm_stack_clear (&self->stack);
  g_free (self->identity);
  g_mutex_clear (&self->lock);
  g_free (self);
}

static gpointer
local_create (const CriaProps *props, CriaRegistry *registry, GError **error)
{
  const char *dtype_name = cria_props_get_string (props, "dtype");
  CriaModelDType dtype = !strcmp (dtype_name, "f32")    ? CRIA_MODEL_DTYPE_F32
                         : !strcmp (dtype_name, "bf16") ? CRIA_MODEL_DTYPE_BF16
                                                        : CRIA_MODEL_DTYPE_AUTO;
  Local *self = g_new0 (Local, 1);
  g_mutex_init (&self->lock);
  const char *format = cria_props_get_string (props, "prompt-format");
  const char *model = cria_props_get_string (props, "model");
  g_autofree char *dir = model ? cria_hf_resolve_model (model, error) : NULL;
  /* The prompt is chosen as cria serve chooses it: a named format, the one
   * a full fine-tune recorded, else the model's own chat template. */
  g_autofree char *recorded = dir && (!format || !strcmp (format, "auto")) ? cria_prompt_format_recorded (dir) : NULL;
  if (recorded)
    format = recorded;
  if (format && !strcmp (format, "auto"))
    format = NULL;
  if (!dir ||
      (format && !g_str_has_suffix (format, ".jinja") && !(self->format = cria_prompt_format_load (format, error))) ||
      !cria_lm_stack_open (&self->stack, registry, dir, dtype, cria_props_get_string (props, "backend"),
                           (int) cria_props_get_int (props, "threads"), TRUE, error)) {
    local_destroy (self);
    return NULL;
  }
  CriaSampling s;
  cria_sampling_init (&s);
  s.max_new_tokens = cria_props_get_int (props, "max-tokens");
  s.temperature = cria_props_get_double (props, "temperature");
  s.top_p = cria_props_get_double (props, "top-p");
  s.top_k = cria_props_get_int (props, "top-k");
  s.repetition_penalty = cria_props_get_double (props, "repetition-penalty");
  cria_sampling_add_model_stops (&s, self->stack.model);
  gboolean special = cria_props_get_bool (props, "add-special");
  self->runner = cria_lm_runner_new (self->stack.lm, self->stack.tokenizer, self->format, &s, special);
  cria_lm_runner_set_chat (self->runner, dir, format);
  cria_sampling_clear (&s);
  /* `batch` is not in the cache key: the texts do not change with it. */
  self->batch = (guint) cria_props_get_int (props, "batch");
  if (self->batch > 1)
    cria_lm_runner_set_batch (self->runner, self->batch);
  /* Everything that changes the text goes into the cache key. */
  g_autofree char *abs = g_canonicalize_filename (dir, NULL);
  char t[G_ASCII_DTOSTR_BUF_SIZE], p[G_ASCII_DTOSTR_BUF_SIZE], r[G_ASCII_DTOSTR_BUF_SIZE];
  self->identity = g_strdup_printf (
      "local %s dtype=%s format=%s add-special=%d max-tokens=%" G_GINT64_FORMAT " temperature=%s top-p=%s "
      "top-k=%" G_GINT64_FORMAT " repetition-penalty=%s",
      abs, dtype_name, format ? format : "auto", special, cria_props_get_int (props, "max-tokens"),
      g_ascii_dtostr (t, sizeof t, cria_props_get_double (props, "temperature")),
      g_ascii_dtostr (p, sizeof p, cria_props_get_double (props, "top-p")), cria_props_get_int (props, "top-k"),
      g_ascii_dtostr (r, sizeof r, cria_props_get_double (props, "repetition-penalty")));
  return self;
}

static char *
local_describe (gpointer data)
{
  return g_strdup (((Local *) data)->identity);
}

static gboolean
local_generate (gpointer data, const CriaGenRequest *req, CriaGenResult *res, GCancellable *cancellable, GError **error)
{
  Local *self = data;
  if (self->batch > 1)
    return cria_lm_runner_generate (self->runner, req, NULL, NULL, cancellable, res, error);
  g_mutex_lock (&self->lock);
  gboolean ok = cria_lm_runner_generate (self->runner, req, NULL, NULL, cancellable, res, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

static guint
local_max_concurrency (gpointer data)
{
  return ((Local *) data)->batch;
}

static const CriaGeneratorVTable local_vtable = {
  CRIA_VTABLE_INIT (CriaGeneratorVTable),
  .create = local_create,
  .destroy = local_destroy,
  .describe = local_describe,
  .generate = local_generate,
  .max_concurrency = local_max_concurrency,
};

static const CriaProviderInfo local_info = {
  .name = "local",
  .description = "Generates with cria's own runtime on a Hugging Face model directory",
  .example = "selfinstruct generator=\"local model=../shared/models/stories260K max-tokens=64\"",
  .props = local_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_generator (plugin, &local_info, &local_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (local, "Generator on cria's own model runtime", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later",
                    "cria");
