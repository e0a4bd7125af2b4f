/* cria-trainer-run.c: a training run from its options — every check that can
 * fail before compute, the loop of optimizer steps, and the outputs. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "cria-train-private.h"

static volatile sig_atomic_t interrupted;

void
cria_train_interrupt (void)
{
  interrupted = 1;
}

static void
trainer_clear (Trainer *t)
{
  g_clear_pointer (&t->graphs, g_hash_table_unref);
  trainer_clear_grads (t);
  g_free (t->sizes);
  g_clear_pointer (&t->opt, cria_adamw_free);
  g_clear_pointer (&t->plan, g_ptr_array_unref);
  g_free (t->order);
  train_set_clear (&t->train);
  train_set_clear (&t->eval);
  g_clear_pointer (&t->backend, cria_backend_free);
  g_clear_pointer (&t->adapter, cria_adapter_free);
  g_clear_pointer (&t->tok, cria_tokenizer_free);
  g_clear_pointer (&t->model, cria_model_free);
  g_clear_pointer (&t->log, g_ptr_array_unref);
  g_clear_pointer (&t->train_curve, g_array_unref);
  g_clear_pointer (&t->eval_curve, g_array_unref);
  g_clear_pointer (&t->lr_curve, g_array_unref);
  pref_clear (t);
  if (t->pid_file)
    g_unlink (t->pid_file);
  g_free (t->pid_file);
  g_free (t->out);
  /* last: under MPI this finalizes it */
  g_clear_pointer (&t->comm, cria_comm_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Trainer, trainer_clear)

/* ---- setup: everything that can fail before compute ---------------------------- */

static gboolean
check_vocab (Trainer *t, TrainSet *set, GError **error)
{
  gint64 vocab = cria_model_get_config (t->model)->vocab_size;
  for (guint i = 0; i < set->examples->len; i++) {
    const TrainExample *e = &g_array_index (set->examples, TrainExample, i);
    for (gint32 k = 0; k < e->n; k++)
      if (e->ids[k] < 0 || e->ids[k] >= vocab) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "the tokenizer gives id %d, beyond the model's vocabulary of %" G_GINT64_FORMAT
                     " (a tokenizer of another model?)",
                     e->ids[k], vocab);
        return FALSE;
      }
  }
  return TRUE;
}

static gboolean
setup_data (Trainer *t, GError **error)
{
  const CriaProps *o = t->o;
  g_autoptr (CriaPromptFormat) format = cria_prompt_format_load (cria_props_get_string (o, "format"), error);
  if (!format)
    return FALSE;
  const char *data = cria_props_get_string (o, "data");
  g_autoptr (GPtrArray) records = train_load_records (t->reg, data, error);
  if (!records)
    return FALSE;
  g_autoptr (GPtrArray) eval_records = NULL;
  const char *eval_data = cria_props_get_string (o, "eval-data");
  double ratio = cria_props_get_double (o, "eval-ratio");
  if (eval_data) {
    eval_records = train_load_records (t->reg, eval_data, error);
    if (!eval_records)
      return FALSE;
  } else {
    /* A seeded choice of records, kept in their file order. */
    eval_records = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
    guint n_eval = (guint) ceil (ratio * records->len);
    g_autofree guint32 *order = train_epoch_order (records->len, t->seed, -1);
    g_autofree gboolean *held = g_new0 (gboolean, MAX (records->len, 1));
    for (guint i = 0; i < n_eval && i + 1 < records->len; i++)
      held[order[i]] = TRUE;
    g_autoptr (GPtrArray) kept = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
    for (guint i = 0; i < records->len; i++)
      g_ptr_array_add (held[i] ? eval_records : kept, g_steal_pointer (&records->pdata[i]));
    g_ptr_array_unref (records);
    records = g_steal_pointer (&kept);
  }
  if (records->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "data %s: no records to train on", data);
    return FALSE;
  }
  gint32 eos = cria_tokenizer_special_id (t->tok, CRIA_SPECIAL_EOS);
  const CriaHfConfig *c = cria_model_get_config (t->model);
  if (eos < 0 && c->eos_token_ids && c->eos_token_ids->len)
    eos = (gint32) g_array_index (c->eos_token_ids, gint64, 0);
  gint32 pad = cria_tokenizer_special_id (t->tok, CRIA_SPECIAL_PAD);
  t->pad = pad >= 0 ? pad : eos >= 0 ? eos : 0;
  gboolean inputs = cria_props_get_bool (o, "train-on-inputs");
  t->train.pairs = t->eval.pairs = t->objective != OBJECTIVE_SFT;
  const char *on_long = cria_props_get_string (o, "on-long");
  t->train.on_long = t->eval.on_long = !strcmp (on_long, "error")      ? TRAIN_LONG_ERROR
                                       : !strcmp (on_long, "truncate") ? TRAIN_LONG_TRUNCATE
                                                                       : TRAIN_LONG_SKIP;
  if (!train_set_build (&t->train, records, data, format, t->tok, t->max_length, inputs, eos, error))
    return FALSE;
  if (t->train.examples->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "data %s: all %u records are longer than max-length %" G_GINT64_FORMAT
                 " and were skipped (on-long=%s): a larger --max-length?",
                 data, records->len, t->max_length, on_long);
    return FALSE;
  }
  return train_set_build (&t->eval, eval_records, eval_data ? eval_data : data, format, t->tok, t->max_length, inputs,
                          eos, error) &&
         check_vocab (t, &t->train, error) && check_vocab (t, &t->eval, error);
}

static gboolean
setup_backend (Trainer *t, GError **error)
{
  /* A spec with properties ("cpu fuse=false"), as the other verbs take it;
   * --threads, when given, over the spec's. */
  const CriaProvider *p;
  g_autoptr (CriaProps) props = NULL;
  if (!cria_registry_parse_spec (t->reg, CRIA_KIND_BACKEND, cria_props_get_string (t->o, "backend"), &p, &props, error))
    return FALSE;
  gint64 n = cria_props_get_int (t->o, "threads");
  g_autofree char *threads = g_strdup_printf ("%" G_GINT64_FORMAT, n);
  gboolean bf16 = strcmp (cria_props_get_string (t->o, "base-dtype"), "bf16") == 0;
  /* what the backend has of them (cuda has no threads) */
  for (const CriaPropSpec *s = cria_props_get_specs (props); s->name; s++)
    if ((n > 0 && strcmp (s->name, "threads") == 0 && !cria_props_set (props, "threads", threads, error)) ||
        (bf16 && strcmp (s->name, "bf16-dot") == 0 && !cria_props_set (props, "bf16-dot", "true", error)))
      return FALSE;
  t->backend = cria_backend_new (p, props, error);
  return t->backend != NULL;
}

static gboolean
setup_optimizer (Trainer *t, GError **error)
{
  const CriaProps *o = t->o;
  CriaOptimConfig oc;
  cria_optim_config_init (&oc);
  oc.lr = cria_props_get_double (o, "lr");
  oc.beta1 = cria_props_get_double (o, "beta1");
  oc.beta2 = cria_props_get_double (o, "beta2");
  oc.eps = cria_props_get_double (o, "adam-eps");
  oc.weight_decay = cria_props_get_double (o, "weight-decay");
  if (!cria_schedule_from_name (cria_props_get_string (o, "schedule"), &oc.schedule)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "unknown schedule");
    return FALSE;
  }
  oc.total_steps = t->total_steps;
  oc.warmup_steps = cria_props_get_int (o, "warmup-steps");
  if (oc.warmup_steps == 0)
    oc.warmup_steps = cria_warmup_from_ratio (cria_props_get_double (o, "warmup-ratio"), t->total_steps);
  t->opt = cria_adamw_new (&oc);
  t->params = cria_adapter_get_params (t->adapter);
  t->sizes = g_new0 (gsize, MAX (t->params->len, 1));
  /* The backend's optimizer entries (contract 1.2) keep the step where the
   * params are; adapters with step hooks (adalora) read and change the
   * gradients on the host, so they keep the host path. */
  gboolean f32 = TRUE;
  for (guint i = 0; i < t->params->len; i++) {
    CriaAdapterParam *p = &g_array_index (t->params, CriaAdapterParam, i);
    t->sizes[i] = (gsize) cria_tensor_numel (p->value);
    f32 &= p->value->dtype == CRIA_DTYPE_F32;
    cria_adamw_add (t->opt, p->name, p->value->data, t->sizes[i], p->decay);
  }
  t->on_device = cria_backend_has_optimizer (t->backend) && f32 && !train_adapter_has_step_hooks (t->adapter);
  if (!cria_backend_is_host (t->backend) && !t->on_device)
    trainer_message (t, "cria train: the optimizer steps on the host: %s",
                     !cria_backend_has_optimizer (t->backend) ? "the backend has no optimizer entries"
                     : !f32                                   ? "a trainable param is not f32"
                                                              : "the adapter's step hooks read the gradients there");
  gint64 threads = cria_props_get_int (o, "threads");
  cria_adamw_set_threads (t->opt, threads > 0 ? (guint) threads : g_get_num_processors ());
  return trainer_setup_grads (t, error);
}

/* Whether `dir` holds `inner` (or is it), by their real paths. */
static gboolean
path_contains (const char *dir, const char *inner)
{
  g_autofree char *a = realpath (dir, NULL), *b = realpath (inner, NULL);
  if (!a || !b)
    return FALSE;
  gsize n = strlen (a);
  return !strncmp (a, b, n) && (b[n] == '/' || b[n] == 0);
}

/* A run writes into `out` only when it is new, empty, or the run that the
 * resumed checkpoint belongs to: another run's files are not mixed with
 * these (or written over) unless --overwrite says so. */
static gboolean
check_out (Trainer *t, GError **error)
{
  if (cria_props_get_bool (t->o, "overwrite"))
    return TRUE;
  g_autoptr (GDir) d = g_dir_open (t->out, 0, NULL);
  if (!d || !g_dir_read_name (d))
    return TRUE;
  const char *from = cria_props_get_string (t->o, "resume");
  if (from && path_contains (t->out, from))
    return TRUE;
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
               "out %s: the directory is not empty and holds no checkpoint being resumed (--resume); "
               "another --out, or --overwrite to write into it",
               t->out);
  return FALSE;
}

/* --distributed: the communicator, before anything that takes time, so that
 * a cria built without MPI says so at once. Under mpirun without it, every
 * process would train the same run into the same directory: refused. */
static gboolean
setup_distributed (Trainer *t, GError **error)
{
  int launcher_rank = 0, launcher_size = cria_comm_launcher_size (&launcher_rank);
  t->world = 1;
  if (!cria_props_get_bool (t->o, "distributed")) {
    if (launcher_size > 1) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "this is process %d of %d that mpirun started: add --distributed to train one model in them "
                   "(or start one process)",
                   launcher_rank, launcher_size);
      return FALSE;
    }
    return TRUE;
  }
  if (t->objective != OBJECTIVE_SFT) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "--distributed trains --objective sft only (preference objectives are not distributed yet)");
    return FALSE;
  }
  t->comm = cria_comm_new_mpi (cria_props_get_double (t->o, "dist-timeout"), error);
  if (!t->comm) {
    g_prefix_error (error, "--distributed: ");
    return FALSE;
  }
  t->rank = cria_comm_get_rank (t->comm);
  t->world = cria_comm_get_size (t->comm);
  return TRUE;
}

static gboolean
setup (Trainer *t, GError **error)
{
  const CriaProps *o = t->o;
  if (!cria_props_check_required (o, error))
    return FALSE;
  t->out = g_strdup (cria_props_get_string (o, "out"));
  t->seed = (guint64) cria_props_get_int (o, "seed");
  t->batch = cria_props_get_int (o, "batch-size");
  t->accum = cria_props_get_int (o, "grad-accum");
  t->max_length = cria_props_get_int (o, "max-length");
  t->packing = cria_props_get_bool (o, "packing");
  t->shuffle = cria_props_get_bool (o, "shuffle");
  t->recompute = cria_props_get_bool (o, "recompute");
  static const char *const objectives[] = { "sft", "dpo", "ipo", "orpo" };
  for (guint i = 0; i < G_N_ELEMENTS (objectives); i++)
    if (!strcmp (cria_props_get_string (o, "objective"), objectives[i]))
      t->objective = (TrainObjective) i;
  t->beta = cria_props_get_double (o, "beta");
  t->smoothing = cria_props_get_double (o, "dpo-label-smoothing");
  t->log = g_ptr_array_new_with_free_func (g_free);
  t->train_curve = g_array_new (FALSE, FALSE, sizeof (CriaPlotPoint));
  t->eval_curve = g_array_new (FALSE, FALSE, sizeof (CriaPlotPoint));
  t->lr_curve = g_array_new (FALSE, FALSE, sizeof (CriaPlotPoint));
  for (guint i = 0; i < 2; i++)
    t->pref_curves[i] = g_array_new (FALSE, FALSE, sizeof (CriaPlotPoint));
  t->graphs = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, trainer_graph_free);
  train_set_init (&t->train);
  train_set_init (&t->eval);

  if (!setup_distributed (t, error))
    return FALSE;
  t->plan_batch = t->batch * t->world;
  if (!check_out (t, error))
    return FALSE;
  const char *model_dir = cria_props_get_string (o, "model");
  const char *base_dtype = cria_props_get_string (o, "base-dtype");
  t->model = cria_model_open (t->reg, model_dir,
                              strcmp (base_dtype, "bf16") == 0  ? CRIA_MODEL_DTYPE_BF16
                              : strcmp (base_dtype, "f32") == 0 ? CRIA_MODEL_DTYPE_F32
                                                                : CRIA_MODEL_DTYPE_AUTO,
                              error);
  if (!t->model)
    return FALSE;
  gint64 max_pos = cria_model_get_config (t->model)->max_positions;
  if (max_pos > 0 && t->max_length > max_pos) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "max-length %" G_GINT64_FORMAT " is beyond the %" G_GINT64_FORMAT " positions of model %s",
                 t->max_length, max_pos, model_dir);
    return FALSE;
  }
  const char *tok = cria_props_get_string (o, "tokenizer");
  t->tok = cria_tokenizer_load (t->reg, tok ? tok : model_dir, error);
  if (!t->tok)
    return FALSE;
  const char *ref_dir = cria_props_get_string (o, "ref-model");
  if (ref_dir && (t->objective == OBJECTIVE_DPO || t->objective == OBJECTIVE_IPO)) {
    t->ref_model = cria_model_open (t->reg, ref_dir, CRIA_MODEL_DTYPE_AUTO, error);
    if (!t->ref_model) {
      g_prefix_error (error, "ref-model: ");
      return FALSE;
    }
    if (cria_model_get_config (t->ref_model)->vocab_size != cria_model_get_config (t->model)->vocab_size) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "ref-model %s: a vocabulary of %" G_GINT64_FORMAT " tokens, the model's has %" G_GINT64_FORMAT,
                   ref_dir, cria_model_get_config (t->ref_model)->vocab_size,
                   cria_model_get_config (t->model)->vocab_size);
      return FALSE;
    }
  }
  t->adapter = cria_adapter_new_from_spec (t->reg, cria_props_get_string (o, "adapter"), error);
  if (!t->adapter || !cria_adapter_attach (t->adapter, t->model, t->seed, error)) {
    g_prefix_error (error, "adapter: ");
    return FALSE;
  }
  if (!setup_data (t, error))
    return FALSE;
  trainer_start_epoch (t, NULL);
  gint64 max_steps = cria_props_get_int (o, "max-steps");
  t->total_steps = max_steps > 0 ? max_steps : trainer_count_steps (t, cria_props_get_int (o, "epochs"));
  if (!setup_backend (t, error) || !setup_optimizer (t, error) || !pref_setup (t, error))
    return FALSE;
  if (t->rank == 0 && g_mkdir_with_parents (t->out, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", t->out, g_strerror (errno));
    return FALSE;
  }
  /* Whom to send Ctrl-C from elsewhere (cria ui's Stop): written whole,
   * removed when the run ends. */
  g_autofree char *pid = g_strdup_printf ("%d\n", (int) getpid ());
  g_autofree char *pid_file = g_build_filename (t->out, "train.pid", NULL);
  if (t->rank == 0 && !g_file_set_contents (pid_file, pid, -1, error))
    return FALSE;
  if (t->rank == 0)
    t->pid_file = g_steal_pointer (&pid_file);
  const char *from = cria_props_get_string (o, "resume");
  return (!from || trainer_resume (t, from, error)) && trainer_check_replicas (t, error);
}

/* ---- the loop -------------------------------------------------------------------- */

/* Returns FALSE on a skipped step (non-finite loss or gradients). A skipped
 * step still counts (t->step, the data it used) but AdamW's count, which sets
 * both its bias correction and the schedule's position, stays: transformers'
 * Trainer does not step its scheduler either when the loss scaler skips. */
static void
scale_grads (Trainer *t, float by)
{
  for (guint i = 0; by != 1.0f && i < t->params->len; i++)
    for (gsize e = 0; e < t->sizes[i]; e++)
      t->grads[i][e] *= by;
}

/* `inv`: the gradients are sums, and the step's are their mean over targets.
 * Without adapter hooks the mean and the clipping happen inside the norm's
 * and AdamW's passes, with the roundings of the passes in place. */
/* The same step on the backend's copies: only the squared norm crosses. */
static gboolean
optimizer_step_on_device (Trainer *t, float inv, double *loss, double *norm, double *lr, GError **error)
{
  *lr = cria_adamw_get_lr (t->opt);
  double sumsq;
  if (!cria_backend_grad_sumsq (t->backend, t->spans, t->params->len, inv, &sumsq, error))
    return FALSE;
  *norm = sqrt (sumsq);
  if (!isfinite (*loss) || !isfinite (*norm))
    return FALSE;
  CriaAdamwScalars s;
  cria_adamw_next_scalars (t->opt, inv, cria_clip_coef (*norm, cria_props_get_double (t->o, "max-grad-norm")), &s);
  t->host_stale = TRUE;
  return cria_backend_adamw_step (t->backend, t->spans, t->params->len, &s, error);
}

static gboolean
optimizer_step (Trainer *t, float inv, double *loss, double *norm, double *lr, GError **error)
{
  if (t->on_device)
    return optimizer_step_on_device (t, inv, loss, norm, lr, error);
  CriaAdapterStep st = { t->step, t->total_steps, t->grads, t->params->len };
  gboolean hooks = train_adapter_has_step_hooks (t->adapter);
  if (hooks) {
    scale_grads (t, inv);
    inv = 1.0f;
  }
  const float *const *grads = (const float *const *) t->grads;
  *loss += cria_adapter_regularize (t->adapter, &st);
  *lr = cria_adamw_get_lr (t->opt);
  double max_norm = cria_props_get_double (t->o, "max-grad-norm");
  *norm = cria_adamw_grad_norm (t->opt, grads, inv);
  if (!isfinite (*loss) || !isfinite (*norm))
    return FALSE;
  if (!cria_adapter_before_step (t->adapter, &st, error))
    return FALSE;
  /* before_step may change the gradients: measured again */
  float coef = cria_clip_coef (hooks && max_norm > 0 ? cria_adamw_grad_norm (t->opt, grads, 1.0f) : *norm, max_norm);
  if (hooks) {
    scale_grads (t, coef); /* after_step reads them clipped */
    coef = 1.0f;
  }
  /* Gradients read in place from the graph (never with hooks) are zeroed
   * for its next backward pass by the update itself. */
  if (t->lent_all) {
    cria_adamw_step_scaled_zero (t->opt, t->grads, inv, coef);
    t->lent_zeroed = TRUE;
  } else {
    cria_adamw_step_scaled (t->opt, grads, inv, coef);
  }
  t->params_dirty = TRUE;
  return cria_adapter_after_step (t->adapter, &st, error);
}

/* `stop`: whether any rank was interrupted (every rank stops at the same step). */
static gboolean
train_step (Trainer *t, gboolean *stop, GError **error)
{
  if (t->window >= trainer_windows (t)) {
    t->epoch++;
    t->window = 0;
    trainer_start_epoch (t, NULL);
  }
  t->grads_stale = TRUE;
  gint64 tokens_before = t->tokens_seen;
  double sum = 0;
  gint64 count = 0;
  guint first = (guint) (t->window * t->accum), last = (guint) MIN ((t->window + 1) * t->accum, (gint64) t->plan->len);
  PrefStats pref = { 0 };
  if (t->train.pairs && !pref_train_window (t, first, last, &pref, error))
    return FALSE;
  /* Not to an adapter with step hooks: adalora keeps the gradient
   * pointers of its first step for the whole run. */
  t->lend = !t->train.pairs && !t->comm && last - first == 1 && !train_adapter_has_step_hooks (t->adapter);
  for (guint k = first; !t->train.pairs && k < last; k++) {
    guint64 micro_seed = t->seed ^ ((guint64) t->epoch << 32 | k) * 0x9e3779b97f4a7c15ull;
    if (!trainer_run_micro (t, &t->train, g_ptr_array_index (t->plan, k), FALSE, micro_seed, &sum, &count, error))
      return FALSE;
  }
  t->lend = FALSE;
  trainer_clear_stale_grads (t); /* no micro-batch of this rank's */
  t->window++;
  /* One process with the global batch sums the same terms (in another
   * order): the loss is divided by the learned tokens of every rank. */
  double stats[] = { sum, (double) count, (double) (t->tokens_seen - tokens_before), interrupted };
  *stop = interrupted;
  if (t->comm) {
    if (!trainer_allreduce (t, stats, G_N_ELEMENTS (stats), error))
      return FALSE;
    sum = stats[0];
    count = (gint64) stats[1];
    t->tokens_seen = tokens_before + (gint64) stats[2];
    *stop = stats[3] > 0;
  }
  /* Preference objectives divided by their own counts already. */
  float inv = t->train.pairs ? 1.0f : count ? 1.0f / (float) count : 0.0f;
  double loss = t->train.pairs ? pref.loss : count ? sum / (double) count : NAN, norm = 0, lr = 0;
  if (t->train.pairs)
    count = pref.pairs;
  GError *hook_error = NULL;
  gboolean stepped = optimizer_step (t, inv, &loss, &norm, &lr, &hook_error);
  trainer_return_grads (t);
  if (hook_error) {
    g_propagate_error (error, hook_error);
    return FALSE;
  }
  t->step++;
  if (!stepped) {
    t->nan_streak++;
    t->n_skipped++;
    trainer_log (t,
                 "{\"step\":%" G_GINT64_FORMAT ",\"skipped\":\"non-finite %s\",\"skipped_steps\":%" G_GINT64_FORMAT "}",
                 t->step, isfinite (loss) ? "gradients" : "loss", t->n_skipped);
    trainer_message (t, "cria train: step %" G_GINT64_FORMAT " skipped: non-finite %s (%" G_GINT64_FORMAT " in a row)",
                     t->step, isfinite (loss) ? "gradients" : "loss", t->nan_streak);
    if (t->nan_streak >= cria_props_get_int (t->o, "nan-limit")) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED,
                   "%" G_GINT64_FORMAT
                   " steps in a row had a non-finite loss or gradients (--nan-limit %" G_GINT64_FORMAT
                   "): stopping at step %" G_GINT64_FORMAT " (lower lr? an Inf or NaN in the model or data?)",
                   t->nan_streak, cria_props_get_int (t->o, "nan-limit"), t->step);
      return FALSE;
    }
    return TRUE;
  }
  t->nan_streak = 0;
  t->last_loss = loss;
  g_array_append_val (t->train_curve, ((CriaPlotPoint){ (double) t->step, loss }));
  g_array_append_val (t->lr_curve, ((CriaPlotPoint){ (double) t->step, lr }));
  g_autoptr (GString) extra = g_string_new (NULL);
  if (t->train.pairs) {
    pref_append_metrics (extra, &pref, "", t);
    g_array_append_val (t->pref_curves[0], ((CriaPlotPoint){ (double) t->step, pref.margins / (double) pref.pairs }));
  }
  trainer_log (t,
               "{\"step\":%" G_GINT64_FORMAT ",\"epoch\":%" G_GINT64_FORMAT ",\"loss\":%.17g,\"lr\":%.17g,"
               "\"grad_norm\":%.9g,\"%s\":%" G_GINT64_FORMAT "%s,\"elapsed_s\":%.3f}",
               t->step, t->epoch, loss, lr, norm, t->train.pairs ? "loss_pairs" : "loss_tokens", count, extra->str,
               trainer_run_seconds (t));
  /* The log on disk follows the run about every second, for those who
   * watch it (cria ui); rank 0 writes it, and a resume keeps only its lines up to the checkpoint. */
  gint64 now = g_get_monotonic_time ();
  if (t->rank == 0 && now - t->log_written_us >= G_USEC_PER_SEC) {
    t->log_written_us = now;
    return trainer_write_log (t, error);
  }
  return TRUE;
}

static gboolean
eval_now (Trainer *t, GError **error)
{
  if (t->eval.examples->len == 0)
    return TRUE;
  double loss;
  g_autoptr (GString) extra = g_string_new (NULL);
  if (t->train.pairs) {
    PrefStats st = { 0 };
    if (!pref_evaluate (t, &st, error))
      return FALSE;
    loss = st.loss;
    pref_append_metrics (extra, &st, "eval_", t);
    g_array_append_val (t->pref_curves[1], ((CriaPlotPoint){ (double) t->step, st.margins / (double) st.pairs }));
  } else if (!trainer_evaluate (t, &loss, error)) {
    return FALSE;
  }
  t->last_eval = loss;
  g_array_append_val (t->eval_curve, ((CriaPlotPoint){ (double) t->step, loss }));
  trainer_log (t, "{\"step\":%" G_GINT64_FORMAT ",\"eval_loss\":%.17g%s}", t->step, loss, extra->str);
  return TRUE;
}

/* ---- outputs ------------------------------------------------------------------------ */

/* loss.png: the whole run's curves (a resumed run's too), the learning
 * rate below them; written at the end and when a run stops early. */
static gboolean
write_plot (Trainer *t, GError **error)
{
  if (t->rank != 0)
    return TRUE;
  g_autofree char *png = g_build_filename (t->out, "loss.png", NULL);
  CriaPlotSeries series[] = {
    { "train loss", (const CriaPlotPoint *) (void *) t->train_curve->data, t->train_curve->len },
    { "eval loss", (const CriaPlotPoint *) (void *) t->eval_curve->data, t->eval_curve->len },
    { "train reward margin", (const CriaPlotPoint *) (void *) t->pref_curves[0]->data, t->pref_curves[0]->len },
    { "eval reward margin", (const CriaPlotPoint *) (void *) t->pref_curves[1]->data, t->pref_curves[1]->len },
  };
  /* Preference runs add their reward margins (chosen - rejected). */
  guint n_series = t->train.pairs ? 4 : t->eval_curve->len ? 2 : 1;
  CriaPlotSeries lr = { "learning rate", (const CriaPlotPoint *) (void *) t->lr_curve->data, t->lr_curve->len };
  g_autofree char *model = g_path_get_basename (cria_props_get_string (t->o, "model"));
  g_autofree char *title = g_strdup_printf ("cria train: %s + %s", model, cria_props_get_string (t->o, "adapter"));
  CriaPlotOptions options = { .title = title,
                              .x_label = "step",
                              .y_label = t->train.pairs ? "loss, reward margin" : "loss (mean per learned token)",
                              .lower = &lr,
                              .n_lower = 1,
                              .lower_label = "learning rate" };
  g_autoptr (GError) plot_error = NULL;
  if (cria_plot_png_panels (png, &options, series, n_series, 800, 600, &plot_error))
    return TRUE;
  /* an install without the plot module (and cairo) still trains */
  if (!g_error_matches (plot_error, CRIA_ERROR, CRIA_ERROR_PLUGIN)) {
    g_propagate_error (error, g_steal_pointer (&plot_error));
    return FALSE;
  }
  trainer_message (t, "loss.png not drawn: %s", plot_error->message);
  return TRUE;
}

static gboolean
write_outputs (Trainer *t, gint64 steps_run, gint64 tokens_run, GError **error)
{
  if (t->rank != 0)
    return TRUE;
  if (!trainer_sync_host (t, error))
    return FALSE;
  const CriaProps *o = t->o;
  const CriaAdapterVTable *vt = cria_provider_get_vtable (cria_adapter_get_provider (t->adapter));
  const char *model_dir = cria_props_get_string (o, "model");
  if (vt->peft_type) {
    if (!cria_adapter_save_peft (t->adapter, t->out, model_dir, error))
      return FALSE;
  } else {
    CriaDType dtype = CRIA_DTYPE_F32;
    cria_dtype_from_name (cria_props_get_string (o, "save-dtype"), &dtype);
    if (!cria_model_save (t->model, t->out, dtype, 0, error))
      return FALSE;
  }
  /* generate, chat, serve and eval prompt the result as it was trained. */
  if (!cria_prompt_format_record (t->out, cria_props_get_string (o, "format"), error))
    return FALSE;
  if (!write_plot (t, error))
    return FALSE;

  double secs = trainer_elapsed (t), run_secs = trainer_run_seconds (t);
  gint64 n_params = 0;
  for (guint i = 0; i < t->params->len; i++)
    n_params += (gint64) t->sizes[i];
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
#define MEMBER_INT(k, v) (json_builder_set_member_name (b, k), json_builder_add_int_value (b, v))
#define MEMBER_DOUBLE(k, v) (json_builder_set_member_name (b, k), json_builder_add_double_value (b, v))
  MEMBER_INT ("steps", t->step);
  MEMBER_INT ("epochs_started", t->epoch + 1);
  MEMBER_INT ("train_examples", t->train.examples->len);
  MEMBER_INT ("eval_examples", t->eval.examples->len);
  MEMBER_INT ("truncated_examples", t->train.n_truncated + t->eval.n_truncated);
  MEMBER_INT ("split_texts", t->train.n_split + t->eval.n_split);
  MEMBER_INT ("trainable_parameters", n_params);
  MEMBER_INT ("tokens_seen", t->tokens_seen);
  MEMBER_INT ("skipped_steps", t->n_skipped);
  MEMBER_DOUBLE ("final_loss", t->last_loss);
  if (t->eval_curve->len)
    MEMBER_DOUBLE ("final_eval_loss", t->last_eval);
  MEMBER_DOUBLE ("seconds", run_secs);
  MEMBER_DOUBLE ("tokens_per_second", secs > 0 ? (double) tokens_run / secs : 0.0);
  MEMBER_INT ("steps_this_run", steps_run);
  MEMBER_DOUBLE ("seconds_this_run", secs);
  MEMBER_INT ("long_skipped_examples", t->train.n_long_skipped + t->eval.n_long_skipped);
  MEMBER_INT ("processes", t->world);
  /* rank 0's seconds inside collectives: the share of a step spent communicating */
  MEMBER_DOUBLE ("communication_seconds", t->comm ? cria_comm_get_seconds (t->comm) : 0.0);
#undef MEMBER_INT
#undef MEMBER_DOUBLE
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = train_json_text (json_node_get_object (root), TRUE);
  g_autofree char *report = g_build_filename (t->out, "report.json", NULL);
  if (!train_write_text (report, text, error))
    return FALSE;
  g_autofree char *eval = t->eval_curve->len ? g_strdup_printf (", eval loss %.4f", t->last_eval) : g_strdup ("");
  cria_log_result ("trained %s with %s: %" G_GINT64_FORMAT " steps, %" G_GINT64_FORMAT
                   " trainable parameters, final loss %.4f%s\n%" G_GINT64_FORMAT " examples (%" G_GINT64_FORMAT
                   " truncated to %" G_GINT64_FORMAT " tokens), %.1f s, %.0f tokens/s; written to %s",
                   model_dir, cria_provider_get_name (cria_adapter_get_provider (t->adapter)), t->step, n_params,
                   t->last_loss, eval, (gint64) t->train.examples->len, t->train.n_truncated, t->max_length, secs,
                   secs > 0 ? (double) tokens_run / secs : 0.0, t->out);
  return TRUE;
}

static gboolean
run (Trainer *t, GError **error)
{
  const CriaProps *options = t->o;
  /* Before setup, not after: a Ctrl-C while the model loads (train.pid is
   * written by then) stops the run at its first step. */
  interrupted = 0;
  if (!setup (t, error))
    return FALSE;
  t->start_us = g_get_monotonic_time ();
  gint64 eval_every = cria_props_get_int (options, "eval-every");
  gint64 save_every = cria_props_get_int (options, "save-every");
  gint64 stop_after = cria_props_get_int (options, "stop-after");
  gint64 steps_run = 0, tokens_start = t->tokens_seen;
  if (t->train.n_long_skipped + t->eval.n_long_skipped)
    trainer_message (
        t, "cria train: %" G_GINT64_FORMAT " records longer than max-length %" G_GINT64_FORMAT " skipped (on-long=%s)",
        t->train.n_long_skipped + t->eval.n_long_skipped, t->max_length, cria_props_get_string (options, "on-long"));
  if (t->train.n_truncated)
    trainer_message (t, "cria train: %" G_GINT64_FORMAT " of %u examples truncated to max-length %" G_GINT64_FORMAT,
                     t->train.n_truncated, t->train.examples->len, t->max_length);
  if (t->train.n_split)
    trainer_message (t,
                     "cria train: %" G_GINT64_FORMAT " texts longer than max-length %" G_GINT64_FORMAT
                     " cut into pieces (%u examples)",
                     t->train.n_split, t->max_length, t->train.examples->len);
  while (t->step < t->total_steps) {
    gboolean cancel = FALSE;
    if (!train_step (t, &cancel, error))
      return FALSE;
    steps_run++;
    if (eval_every > 0 && t->step % eval_every == 0 && t->step < t->total_steps && !eval_now (t, error))
      return FALSE;
    if (save_every > 0 && t->step % save_every == 0 && t->step < t->total_steps && !trainer_save_checkpoint (t, error))
      return FALSE;
    trainer_progress (t, steps_run, t->tokens_seen - tokens_start);
    gboolean stop = stop_after > 0 && steps_run >= stop_after;
    if ((cancel || stop) && t->step < t->total_steps) {
      if (!trainer_save_checkpoint (t, error) || !write_plot (t, error))
        return FALSE;
      g_autofree char *name = g_strdup_printf ("checkpoint-%" G_GINT64_FORMAT, t->step);
      g_autofree char *dir = g_build_filename (t->out, "checkpoints", name, NULL);
      if (cancel) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_CANCELLED,
                     "interrupted at step %" G_GINT64_FORMAT "; checkpoint saved: continue with --resume %s", t->step,
                     dir);
        return FALSE;
      }
      trainer_message (t, "cria train: stopped after %" G_GINT64_FORMAT " steps; continue with --resume %s", steps_run,
                       dir);
      return TRUE;
    }
  }
  return eval_now (t, error) && trainer_save_checkpoint (t, error) &&
         write_outputs (t, steps_run, t->tokens_seen - tokens_start, error);
}

gboolean
cria_train_run (CriaRegistry *registry, const CriaProps *options, GError **error)
{
  g_return_val_if_fail (registry != NULL, FALSE);
  g_return_val_if_fail (options != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_auto (Trainer) t = { .o = options, .reg = registry };
  GError *local = NULL;
  if (run (&t, &local))
    return TRUE;
  /* The other ranks would wait for this one in their next collective:
   * stop them all now, saying why (an interrupted run stopped together). */
  if (t.comm && t.world > 1 && !g_error_matches (local, CRIA_ERROR, CRIA_ERROR_CANCELLED))
    cria_comm_abort (t.comm, local->message);
  g_propagate_error (error, local);
  return FALSE;
}
