/* cria-trainer.h: supervised fine-tuning of a model with an adapter.
 *
 * The run is described by one property set (the table below), which the
 * `cria train` command fills from its options or from a JSON file, and which
 * cria-train(1) documents: the model, the data and its prompt format, the
 * adapter, the optimizer and its schedule, batching, evaluation,
 * checkpoints. The trainer writes into the output directory the adapter
 * (PEFT's format) or, for full fine-tuning, the whole model; train-log.jsonl,
 * loss.png and report.json; and checkpoints/checkpoint-STEP, from which
 * `resume` continues exactly where the run stopped. */
#pragma once

#include <cria/cria-props.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

/* The options of a run, ending with CRIA_PROP_END. */
const CriaPropSpec *cria_train_option_specs (void);

/* Sets `props` (made from cria_train_option_specs()) from a train config
 * file's JSON: an object of option: value. Errors name `file`. */
gboolean cria_train_options_set_json (CriaProps *props, JsonNode *root, const char *file, GError **error);

/* For `--resume DIR` alone: sets every option the checkpoint DIR (the
 * `resume` option of `props`) recorded and `given` (NULL-terminated names
 * the user set) does not name; `out` becomes the run directory holding the
 * checkpoint. Options given again are checked against the checkpoint by
 * cria_train_run. Does nothing when `resume` is unset. */
gboolean cria_train_options_from_checkpoint (CriaProps *props, const char *const *given, GError **error);

/* The counters of a checkpoint's trainer_state.json, checked against a run of
 * `n_examples` training examples. Borrowed parts stay valid while the
 * object lives; data_order is the caller's (g_free). */
typedef struct {
  gint64 step, epoch, window, tokens_seen, nan_streak, skipped_steps, optimizer_step;
  guint32 *data_order;     /* n_examples indices below n_examples */
  JsonObject *options;     /* option name -> its text when the run began; NULL when absent */
  JsonNode *adapter_state; /* for the adapter; NULL when absent */
} CriaTrainState;

gboolean cria_train_state_read (JsonObject *state, const char *file, guint n_examples, CriaTrainState *out,
                                GError **error);

/* Checks everything that can be checked before compute (files, format,
 * tokenizer, adapter against the model, data after truncation), then
 * trains. Fails with CRIA_ERROR_CANCELLED after saving a checkpoint when
 * cria_train_interrupt() was called. */
gboolean cria_train_run (CriaRegistry *registry, const CriaProps *options, GError **error);

/* Asks a running cria_train_run to save a checkpoint and stop after the
 * current step; async-signal-safe (call it from a SIGINT handler). */
void cria_train_interrupt (void);

G_END_DECLS
