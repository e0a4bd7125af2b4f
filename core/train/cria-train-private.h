/* cria-train-private.h: what the trainer's files share. */
#pragma once

#include <cria/cria.h>
#include <cria/cria-adapter.h>
#include <cria/cria-comm.h>
#include <cria/cria-trainer.h>

/* One tokenized example: ids and, per token, whether the model learns to
 * predict it (response tokens; every token with train-on-inputs). */
typedef struct {
  gint32 *ids;
  guint8 *learn;
  gint32 n;
} TrainExample;

/* What becomes of a record longer than max-length (the on-long option). */
typedef enum {
  TRAIN_LONG_SKIP,
  TRAIN_LONG_TRUNCATE,
  TRAIN_LONG_ERROR,
} TrainOnLong;

typedef struct {
  GArray *examples;      /* TrainExample */
  TrainOnLong on_long;   /* set before train_set_build */
  gint64 n_long_skipped; /* records skipped for their length */
  gint64 n_truncated;
  gint64 n_split; /* prompt-less texts cut into max-length pieces */
  gint64 n_tokens;
  gboolean pairs; /* preference pairs: examples 2i (chosen) and 2i + 1 (rejected) */
} TrainSet;

void train_set_init (TrainSet *set);
void train_set_clear (TrainSet *set);

/* Records from a file (JSON lines, JSON array, CSV; Alpaca or cria's form) or
 * from a pipeline description, which is run into a temporary file. */
GPtrArray *train_load_records (CriaRegistry *registry, const char *data, GError **error);

/* Renders, tokenizes, masks every record, and skips, truncates or refuses
 * the long ones as set->on_long says (a truncated one left with no token to
 * learn is skipped); fails naming the record when a record that fits has no
 * token to learn. `eos` < 0: none appended. */
gboolean train_set_build (TrainSet *set, GPtrArray *records, const char *what, const CriaPromptFormat *format,
                          CriaTokenizer *tok, gint64 max_length, gboolean train_on_inputs, gint32 eos, GError **error);

/* A micro-batch as the graph wants it: [B, T] ids, positions, segment ids,
 * and next-token labels (CRIA_IGNORE_INDEX where nothing is learned). */
typedef struct {
  gint64 B, T;
  CriaTensor *ids, *positions, *segments, *labels;
  gint64 n_targets; /* labels that are not ignored */
  gint64 n_tokens;  /* real (not padding) tokens */
  GArray *members;  /* the examples in the batch (guint32), in row order */
  gint32 *owner;    /* per label: its example's index in members, or -1 */
} TrainBatch;

void train_batch_clear (TrainBatch *b);

/* The micro-batches of one epoch over examples taken in `order`: each is a
 * GArray of example indices per row (packing puts several in a row). */
GPtrArray *train_plan_epoch (const TrainSet *set, const guint32 *order, guint n, gint64 batch, gint64 max_length,
                             gboolean packing);
/* Fills `out` for micro-batch `rows` (a GPtrArray of GArray of guint32). */
void train_batch_fill (const TrainSet *set, GPtrArray *rows, gint64 max_length, gboolean packing, gint32 pad,
                       TrainBatch *out);

/* A seeded permutation of n indices for one epoch. */
guint32 *train_epoch_order (guint n, guint64 seed, gint64 epoch);
/* The set's order for an epoch: its pairs permuted, each kept together;
 * the file order when !shuffle. */
guint32 *train_set_order (const TrainSet *set, guint64 seed, gint64 epoch, gboolean shuffle);

/* A JSON file that must hold an object (transfer full); errors name the file. */
JsonObject *train_load_json_object (const char *path, GError **error);
/* Writes a text file atomically (cria_output). */
gboolean train_write_text (const char *path, const char *text, GError **error);
/* The text of a JSON object, pretty or not (transfer full). */
char *train_json_text (JsonObject *object, gboolean pretty);

/* Options a checkpoint does not record (resume, stop-after, overwrite). */
gboolean train_option_is_per_invocation (const char *name);

/* Checkpoints (cria-train-checkpoint.c). `state` is the trainer's own JSON. */
gboolean train_checkpoint_save (const char *dir, CriaAdapter *adapter, CriaAdamW *opt, JsonObject *state,
                                const char *base_model, GError **error);
/* Loads params and moments into the run; returns trainer_state.json's object. */
JsonObject *train_checkpoint_load (const char *dir, CriaAdapter *adapter, CriaAdamW *opt, GError **error);

/* Whether the adapter reads or changes the gradients around a step
 * (regularize, before_step, after_step): then they are scaled in place. */
gboolean train_adapter_has_step_hooks (CriaAdapter *adapter);

/* ---- the trainer (cria-trainer.c, cria-trainer-run.c) ---- */
typedef enum { OBJECTIVE_SFT, OBJECTIVE_DPO, OBJECTIVE_IPO, OBJECTIVE_ORPO } TrainObjective;

/* A preference window or evaluation, summed over its pairs (cria-train-pref.c). */
typedef struct {
  double loss; /* the objective, already divided by the window's pairs (and tokens) */
  double chosen_rewards, rejected_rewards, margins, accuracies, chosen_logps, rejected_logps, nll, log_odds;
  gint64 pairs, chosen_tokens;
} PrefStats;
typedef struct {
  CriaGraph *g;
  CriaNode *ids, *positions, *segments, *labels, *ce;
  GPtrArray **grad_nodes; /* per param: the nodes holding it */
  guint n_params;
  guint n_param_grads; /* param nodes with a gradient */
  GPtrArray *dropouts;
} StepGraph;

/* A range of the gradient block reduced in one collective (floats). */
typedef struct {
  gsize off, n;
} TrainBucket;

typedef struct {
  const CriaProps *o;
  CriaRegistry *reg;
  CriaModel *model;
  CriaAdapter *adapter;
  CriaBackend *backend;
  CriaTokenizer *tok;
  TrainSet train, eval;
  GArray *params; /* CriaAdapterParam, the adapter's */
  /* The window's gradients, param i at float grad_off[i] of one block laid
   * out in buckets (TrainBucket, in param order) that a collective reduces
   * in place. On the host path grads[i] points into grad_mem and AdamW
   * steps the host params; with the backend's optimizer (on_device) the
   * block is dev_grads in the backend's memory, and grad_mem only stages
   * buckets for MPI (NULL in a run of one process). */
  float **grads;
  float *grad_mem;
  gsize *grad_off, grad_total;
  GArray *buckets;
  gboolean on_device;
  CriaTensor **resident;                 /* per param: the backend's copy, stepped in place */
  CriaTensor *dev_grads, *dev_m, *dev_v; /* grad_total floats each, in the same layout */
  CriaOptimSpan *spans;
  gboolean host_stale; /* the host params and moments are behind the backend's */
  /* grads hold the last window's sums: the window's first micro-batch
   * copies its gradients over them instead of adding to zeros */
  gboolean grads_stale;
  /* The window is one micro-batch of one process on a host backend, and
   * the adapter has no step hooks: the optimizer may read the graph's own
   * param gradients instead of copies (grads[i] then points into
   * `lender`'s graph, whose gradients are zeroed when trainer_return_grads
   * points grads back into grad_mem). */
  gboolean lend;
  StepGraph *lender;
  /* every gradient of lender's graph is lent or zeroed already: the update
   * may zero them as it reads them (lent_zeroed when it did) */
  gboolean lent_all, lent_zeroed;
  gsize *sizes;
  /* the host params changed since the backend's copies were uploaded (an
   * optimizer step, a resume); only device backends hold copies */
  gboolean params_dirty;
  CriaAdamW *opt;
  GHashTable *graphs; /* T | eval << 40 -> StepGraph */
  gint64 batch, accum, max_length, total_steps, step, epoch, window;
  /* Data parallelism (--distributed): this process is rank `rank` of
   * `world`; a micro-batch of the plan holds plan_batch = world * batch
   * rows, of which a rank computes rows [rank * batch, (rank + 1) * batch).
   * comm is NULL in a run of one process. */
  CriaComm *comm;
  int rank, world;
  gint64 plan_batch;
  gboolean packing, recompute;
  gboolean shuffle; /* false: every epoch in the file order */
  gboolean memory_reported;
  gint32 pad;
  guint64 seed;
  guint32 *order;
  GPtrArray *plan;                             /* micro-batches of the current epoch */
  GPtrArray *log;                              /* lines of train-log.jsonl */
  GArray *train_curve, *eval_curve, *lr_curve; /* the whole run's, a resumed one's too */
  gint64 tokens_seen, nan_streak, n_skipped;
  double last_loss, last_eval;
  /* preference objectives (cria-train-pref.c) */
  TrainObjective objective;
  double beta, smoothing;
  CriaModel *ref_model;         /* --ref-model, else NULL: the base with the adapter off */
  double *ref_train, *ref_eval; /* precomputed reference log-probs per example, or NULL */
  GArray *pref_curves[2];       /* train, eval: CriaPlotPoint of the reward margin */
  gint64 start_us;
  gint64 log_written_us; /* when train-log.jsonl was last written during the run */
  double seconds_before; /* of the invocations before a resume */
  char *out;
  char *pid_file; /* OUT/train.pid while the run goes on (rank 0), else NULL */
} Trainer;

void trainer_graph_free (gpointer data);
/* The graph of a micro-batch of length T, cached: training, evaluation, or
 * (ref) a forward-only graph of the reference: the model without the
 * adapter's hook, or --ref-model. */
StepGraph *trainer_graph (Trainer *t, gint64 T, gboolean eval, gboolean ref, GError **error);
/* Adds the param gradients of the graph's last backward pass to t->grads. */
gboolean trainer_accumulate_grads (Trainer *t, StepGraph *sg, GError **error);
/* After the optimizer step: the gradients lent by a graph go back to it. */
void trainer_return_grads (Trainer *t);
/* Zeroes the window's gradients if no micro-batch wrote them. */
void trainer_clear_stale_grads (Trainer *t);
/* Lays out the gradient block and its buckets, and on a backend with the
 * optimizer entries its device copies (setup_optimizer). */
gboolean trainer_setup_grads (Trainer *t, GError **error);
void trainer_clear_grads (Trainer *t);
/* Downloads the params and AdamW's moments after the backend stepped them:
 * before anything reads them on the host (checkpoints, outputs). */
gboolean trainer_sync_host (Trainer *t, GError **error);
/* Uploads the params to a device backend after the host changed them. */
gboolean trainer_upload_params (Trainer *t, GError **error);
/* Seeds the graph's dropout nodes for one micro-batch. */
void trainer_set_dropout_seed (StepGraph *sg, guint64 micro_seed);
gboolean trainer_run_micro (Trainer *t, TrainSet *set, GPtrArray *rows, gboolean eval, guint64 micro_seed,
                            double *loss_sum, gint64 *count, GError **error);
gboolean trainer_evaluate (Trainer *t, double *loss, GError **error);
/* Takes `order` (NULL: the seeded order of t->epoch) and plans the epoch. */
void trainer_start_epoch (Trainer *t, guint32 *order);
gint64 trainer_windows (Trainer *t);
gint64 trainer_count_steps (Trainer *t, gint64 epochs);
void trainer_log (Trainer *t, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* A note to the user, from rank 0 alone in a distributed run. */
#define trainer_message(t, ...)                                                                                        \
  G_STMT_START                                                                                                         \
  {                                                                                                                    \
    if ((t)->rank == 0)                                                                                                \
      g_message (__VA_ARGS__);                                                                                         \
  }                                                                                                                    \
  G_STMT_END
/* The rows of micro-batch `rows` (of the plan) that this rank computes, as
 * a new array holding references. */
GPtrArray *trainer_my_rows (Trainer *t, GPtrArray *rows);
/* Sums the window's gradients and `n` doubles at `stats` over the ranks
 * (nothing in a run of one process). */
gboolean trainer_allreduce (Trainer *t, double *stats, guint n, GError **error);
gboolean trainer_write_log (Trainer *t, GError **error);
double trainer_elapsed (Trainer *t);
/* Seconds of the whole run, over its resumes. */
double trainer_run_seconds (Trainer *t);
void trainer_progress (Trainer *t, gint64 steps_this_run, gint64 tokens_this_run);
/* Checks that every rank holds the same params (nothing in a run of one). */
gboolean trainer_check_replicas (Trainer *t, GError **error);
/* Rank 0 writes it (after trainer_check_replicas on every rank). */
gboolean trainer_save_checkpoint (Trainer *t, GError **error);
gboolean trainer_resume (Trainer *t, const char *dir, GError **error);

/* Preference objectives (cria-train-pref.c). */
gboolean pref_setup (Trainer *t, GError **error);
void pref_clear (Trainer *t);
gboolean pref_train_window (Trainer *t, guint first, guint last, PrefStats *st, GError **error);
gboolean pref_evaluate (Trainer *t, PrefStats *st, GError **error);
/* ,"NAME":value for each metric, NAME prefixed with `prefix` ("eval_"). */
void pref_append_metrics (GString *s, const PrefStats *st, const char *prefix, const Trainer *t);
