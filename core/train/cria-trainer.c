/* cria-trainer.c: the pieces of the training loop — micro-batches through
 * graphs cached per sequence length, evaluation, the data position, the
 * log and progress bar, checkpoints and resume (cria-trainer-run.c drives them).
 *
 * One optimizer step is one window of grad-accum micro-batches of an epoch
 * (the last window of an epoch may be shorter). Gradients are summed over
 * the window and divided once by the number of learned tokens in it, so the
 * loss is the mean over tokens of the whole window, whatever the split into
 * micro-batches. Everything random (adapter init, data order, dropout) is a
 * function of the seed and the position, which is why a resumed run repeats
 * the loss curve of one that never stopped. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "cria-train-private.h"

/* Options that shape the numbers: a resumed run must agree on each. */
/* clang-format off */
static const char *const fingerprint_options[] = { "model",
                                                   "data",
                                                   "eval-data",
                                                   "eval-ratio",
                                                   "format",
                                                   "tokenizer",
                                                   "adapter",
                                                   "max-length",
                                                   "on-long",
                                                   "train-on-inputs",
                                                   "packing",
                                                   "batch-size",
                                                   "grad-accum",
                                                   "epochs",
                                                   "max-steps",
                                                   "lr",
                                                   "beta1",
                                                   "beta2",
                                                   "adam-eps",
                                                   "weight-decay",
                                                   "schedule",
                                                   "warmup-steps",
                                                   "warmup-ratio",
                                                   "max-grad-norm",
                                                   "seed",
                                                   "objective",
                                                   "beta",
                                                   "dpo-label-smoothing",
                                                   "ref-model",
                                                   NULL };
/* clang-format on */

void
trainer_graph_free (gpointer data)
{
  StepGraph *sg = data;
  cria_graph_free (sg->g);
  g_ptr_array_unref (sg->dropouts);
  for (guint i = 0; i < sg->n_params; i++)
    if (sg->grad_nodes[i])
      g_ptr_array_unref (sg->grad_nodes[i]);
  g_free (sg->grad_nodes);
  g_free (sg);
}

static guint64
mix64 (guint64 x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* ---- graphs ------------------------------------------------------------------- */

/* mode: eval | ref << 1 */
static void
drop_graphs (Trainer *t, gint mode)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, t->graphs);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (((*(gint64 *) key) >> 40) == (gint64) mode)
      g_hash_table_iter_remove (&it);
}

/* What a run holds, once, at its first training graph: the base's weights
 * as held (NF4 under qlora), the adapter's params, AdamW's two f32 moments
 * per param, and the planned activations with their gradients. */
static void
report_memory (Trainer *t, const CriaPlanStats *stats, guint n_blocks)
{
  gsize base = 0, adapter = 0;
  for (guint i = 0; i < cria_model_get_n_params (t->model); i++)
    base += cria_tensor_nbytes (cria_model_get_param (t->model, cria_model_get_param_name (t->model, i)));
  for (guint i = 0; i < t->params->len; i++)
    adapter += cria_tensor_nbytes (g_array_index (t->params, CriaAdapterParam, i).value);
  const double mib = 1048576.0;
  trainer_message (t,
                   "cria train: memory: base weights %.2f MiB as held, adapter %.2f MiB, optimizer state %.2f MiB, "
                   "activations %.2f MiB (planned%s; %.2f MiB without reuse), param grads %.2f MiB",
                   base / mib, adapter / mib, 2 * adapter / mib, stats->arena_bytes / mib,
                   t->recompute ? ", each block recomputed in backward" : "", stats->naive_bytes / mib,
                   stats->param_grad_bytes / mib);
  if (t->recompute && n_blocks == 0)
    trainer_message (t, "cria train: recompute: the model marks no blocks; nothing is recomputed");
  t->memory_reported = TRUE;
}

StepGraph *
trainer_graph (Trainer *t, gint64 T, gboolean eval, gboolean ref, GError **error)
{
  eval |= ref;
  gint64 key = T | ((gint64) eval << 40) | ((gint64) ref << 41);
  StepGraph *sg = g_hash_table_lookup (t->graphs, &key);
  if (sg)
    return sg;
  /* One graph per mode is kept: each holds the activation memory of its
   * length, and padded batches of many lengths would pile them up. */
  drop_graphs (t, eval | ref << 1);
  g_autoptr (CriaGraph) g = cria_graph_new ();
  /* The reference is the model with the adapter switched off: no hook. */
  if (!ref) {
    cria_adapter_set_training (t->adapter, !eval, 0);
    cria_adapter_install (t->adapter, g);
  }
  CriaModel *model = ref && t->ref_model ? t->ref_model : t->model;
  CriaModelShape shape = { .batch = t->batch, .seq = T, .segments = t->packing || t->train.pairs };
  CriaModelGraph mg;
  if (!cria_model_build (model, g, &shape, &mg, error))
    return NULL;
  const CriaHfConfig *c = cria_model_get_config (model);
  gint64 flat[] = { t->batch * T, c->hidden_size }, n[] = { t->batch * T };
  CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
  CriaNode *h = cria_reshape (g, mg.hidden, 2, flat);
  /* Preference objectives read each sequence's log-probability. */
  CriaNode *ce = t->train.pairs ? cria_lm_head_ce_rows (g, h, mg.head, labels, 1024)
                                : cria_lm_head_ce (g, h, mg.head, labels, 1024);
  cria_graph_mark_output (g, ce);
  sg = g_new0 (StepGraph, 1);
  sg->ids = mg.ids;
  sg->positions = mg.positions;
  sg->segments = mg.segments;
  sg->labels = labels;
  sg->ce = ce;
  cria_model_graph_clear (&mg);
  CriaPlanStats stats = { 0 };
  cria_graph_set_recompute (g, t->recompute && !eval);
  if (!cria_graph_check (g, error) || (!eval && !cria_graph_backward (g, ce, error)) ||
      !cria_graph_plan (g, t->backend, &stats, error)) {
    g_free (sg);
    return NULL;
  }
  if (!eval && !t->memory_reported)
    report_memory (t, &stats, cria_graph_n_blocks (g));
  sg->dropouts = g_ptr_array_new ();
  sg->grad_nodes = g_new0 (GPtrArray *, t->params->len);
  sg->n_params = t->params->len;
  for (guint i = 0; i < cria_graph_n_nodes (g); i++) {
    CriaNode *node = cria_graph_node (g, i);
    sg->n_param_grads += node->op == CRIA_OP_PARAM && node->grad;
    if (node->op == CRIA_OP_DROPOUT) {
      node->iparam[1] = node->iparam[0]; /* the adapter's seed for this node */
      g_ptr_array_add (sg->dropouts, node);
    }
  }
  sg->g = g_steal_pointer (&g);
  gint64 *k = g_new (gint64, 1);
  *k = key;
  g_hash_table_insert (t->graphs, k, sg);
  return sg;
}

/* The graph nodes of each param; cached per graph (an array per param). */
static GPtrArray *
nodes_of (StepGraph *sg, Trainer *t, guint i)
{
  if (!sg->grad_nodes[i]) {
    sg->grad_nodes[i] = g_ptr_array_new ();
    CriaTensor *v = g_array_index (t->params, CriaAdapterParam, i).value;
    for (guint k = 0; k < cria_graph_n_nodes (sg->g); k++) {
      CriaNode *node = cria_graph_node (sg->g, k);
      if (node->op == CRIA_OP_PARAM && cria_node_get_param_tensor (node) == v && node->grad)
        g_ptr_array_add (sg->grad_nodes[i], node);
    }
  }
  return sg->grad_nodes[i];
}

void
trainer_set_dropout_seed (StepGraph *sg, guint64 micro_seed)
{
  for (guint i = 0; i < sg->dropouts->len; i++) {
    CriaNode *d = g_ptr_array_index (sg->dropouts, i);
    d->iparam[0] = (gint64) mix64 (micro_seed ^ (guint64) d->iparam[1]);
  }
}

/* On the backend: the first micro-batch of a window copies its gradients
 * over the window's and the next add theirs, in the host path's order, so
 * the sums are the same bits. */
static gboolean
accumulate_on_device (Trainer *t, StepGraph *sg, GError **error)
{
  for (guint i = 0; i < t->params->len; i++) {
    GPtrArray *nodes = nodes_of (sg, t, i);
    float *acc = (float *) t->dev_grads->data + t->grad_off[i];
    for (guint k = 0; k < nodes->len; k++) {
      const float *gr = ((CriaNode *) g_ptr_array_index (nodes, k))->grad->data;
      if (!(k == 0 && t->grads_stale ? cria_backend_copy (t->backend, acc, gr, t->sizes[i] * sizeof (float), error)
                                     : cria_backend_accumulate (t->backend, acc, gr, t->sizes[i], error)))
        return FALSE;
    }
    if (nodes->len == 0 && t->grads_stale) {
      g_autoptr (CriaTensor) zero = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ (gint64) t->sizes[i] });
      if (!cria_tensor_write (t->dev_grads, t->grad_off[i] * sizeof (float), zero->data, cria_tensor_nbytes (zero),
                              error))
        return FALSE;
    }
  }
  return TRUE;
}

/* A device backend without the optimizer entries: each gradient
 * downloaded, added on the caller. */
static gboolean
accumulate_downloaded (Trainer *t, StepGraph *sg, GError **error)
{
  for (guint i = 0; i < t->params->len; i++) {
    GPtrArray *nodes = nodes_of (sg, t, i);
    float *acc = t->grads[i];
    for (guint k = 0; k < nodes->len; k++) {
      g_autoptr (CriaTensor) grad = cria_tensor_to_host (((CriaNode *) g_ptr_array_index (nodes, k))->grad, error);
      if (!grad)
        return FALSE;
      const float *gr = grad->data;
      if (k == 0 && t->grads_stale)
        memcpy (acc, gr, t->sizes[i] * sizeof (float));
      else
        for (gsize e = 0; e < t->sizes[i]; e++)
          acc[e] += gr[e];
    }
  }
  cria_graph_zero_grad (sg->g);
  return TRUE;
}

gboolean
trainer_accumulate_grads (Trainer *t, StepGraph *sg, GError **error)
{
  if (t->on_device) {
    if (!accumulate_on_device (t, sg, error))
      return FALSE;
    t->grads_stale = FALSE;
    cria_graph_zero_grad (sg->g);
    return TRUE;
  }
  for (guint i = 0; t->grads_stale && i < t->params->len; i++)
    if (nodes_of (sg, t, i)->len == 0)
      memset (t->grads[i], 0, t->sizes[i] * sizeof (float));
  if (!cria_backend_is_host (t->backend)) {
    if (!accumulate_downloaded (t, sg, error))
      return FALSE;
    t->grads_stale = FALSE;
    return TRUE;
  }
  /* A copy would be the same bits: the optimizer reads the graph's own. */
  gboolean lend = t->lend && t->grads_stale;
  guint n = t->params->len, most = 0, lent = 0, summed = 0;
  for (guint i = 0; i < n; i++) {
    GPtrArray *nodes = nodes_of (sg, t, i);
    if (lend && nodes->len == 1) {
      t->grads[i] = ((CriaNode *) g_ptr_array_index (nodes, 0))->grad->data;
      lent++;
    } else {
      most = MAX (most, nodes->len);
    }
  }
  /* The others on the optimizer's threads, a param's nodes one pass after
   * another in their order (the bits of one loop), each gradient zeroed
   * for the graph's next backward pass as it is read. */
  g_autofree float **src = g_new0 (float *, MAX (n, 1));
  for (guint k = 0; k < most; k++) {
    for (guint i = 0; i < n; i++) {
      GPtrArray *nodes = nodes_of (sg, t, i);
      src[i] = k < nodes->len && !(lend && nodes->len == 1) ? ((CriaNode *) g_ptr_array_index (nodes, k))->grad->data
                                                            : NULL;
      summed += src[i] != NULL;
    }
    cria_adamw_sum_grads (t->opt, t->grads, src, k == 0 && t->grads_stale, TRUE);
  }
  t->grads_stale = FALSE;
  if (lend) {
    t->lender = sg;
    t->lent_all = lent + summed == sg->n_param_grads;
  } else if (summed != sg->n_param_grads) {
    cria_graph_zero_grad (sg->g);
  }
  return TRUE;
}

void
trainer_return_grads (Trainer *t)
{
  if (!t->lender)
    return;
  if (!t->lent_zeroed)
    cria_graph_zero_grad (t->lender->g);
  for (guint i = 0; i < t->params->len; i++)
    t->grads[i] = t->grad_mem + t->grad_off[i];
  t->lender = NULL;
  t->lent_all = t->lent_zeroed = FALSE;
}

void
trainer_clear_stale_grads (Trainer *t)
{
  if (t->grads_stale && t->on_device)
    cria_tensor_zero (t->dev_grads);
  for (guint i = 0; t->grads_stale && !t->on_device && i < t->params->len; i++)
    memset (t->grads[i], 0, t->sizes[i] * sizeof (float));
  t->grads_stale = FALSE;
}

gboolean
trainer_upload_params (Trainer *t, GError **error)
{
  if (!t->params_dirty || cria_backend_is_host (t->backend))
    return TRUE;
  for (guint i = 0; i < t->params->len; i++)
    if (!cria_backend_update_tensor (t->backend, g_array_index (t->params, CriaAdapterParam, i).value, error))
      return FALSE;
  t->params_dirty = FALSE;
  return TRUE;
}

/* Forward (and backward when training) of one micro-batch; adds the loss
 * sum and the target count. */
gboolean
trainer_run_micro (Trainer *t, TrainSet *set, GPtrArray *rows, gboolean eval, guint64 micro_seed, double *loss_sum,
                   gint64 *count, GError **error)
{
  g_autoptr (GPtrArray) mine = trainer_my_rows (t, rows);
  /* the last micro-batch of an epoch may leave a rank nothing to do */
  if (mine->len == 0)
    return TRUE;
  TrainBatch b = { .B = t->batch };
  train_batch_fill (set, mine, t->max_length, t->packing, t->pad, &b);
  StepGraph *sg = trainer_upload_params (t, error) ? trainer_graph (t, b.T, eval, FALSE, error) : NULL;
  gboolean ok = sg && cria_node_set_value (sg->ids, b.ids, error) &&
                cria_node_set_value (sg->positions, b.positions, error) &&
                (!sg->segments || cria_node_set_value (sg->segments, b.segments, error)) &&
                cria_node_set_value (sg->labels, b.labels, error);
  if (ok) {
    trainer_set_dropout_seed (sg, micro_seed);
    ok = cria_graph_forward (sg->g, error);
  }
  if (ok && !eval) {
    ok = cria_graph_run_backward (sg->g, error) && trainer_accumulate_grads (t, sg, error);
  }
  float ce[2];
  ok = ok && cria_tensor_read (sg->ce->value, 0, ce, sizeof ce, error);
  if (ok) {
    *loss_sum += ce[0];
    *count += (gint64) ce[1];
    if (!eval)
      t->tokens_seen += b.n_tokens;
  }
  train_batch_clear (&b);
  return ok;
}

gboolean
trainer_evaluate (Trainer *t, double *loss, GError **error)
{
  guint n = t->eval.examples->len;
  g_autofree guint32 *order = g_new (guint32, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    order[i] = i;
  g_autoptr (GPtrArray) plan = train_plan_epoch (&t->eval, order, n, t->plan_batch, t->max_length, t->packing);
  double sum = 0;
  gint64 count = 0;
  for (guint i = 0; i < plan->len; i++)
    if (!trainer_run_micro (t, &t->eval, g_ptr_array_index (plan, i), TRUE, 0, &sum, &count, error))
      return FALSE;
  double stats[2] = { sum, (double) count };
  if (t->comm && !cria_comm_allreduce_sum (t->comm, stats, 2, CRIA_COMM_F64, error))
    return FALSE;
  *loss = stats[1] > 0 ? stats[0] / stats[1] : NAN;
  drop_graphs (t, 1); /* its memory is the training graph's between evaluations */
  return TRUE;
}

/* ---- data parallelism ------------------------------------------------------------ */

GPtrArray *
trainer_my_rows (Trainer *t, GPtrArray *rows)
{
  GPtrArray *mine = g_ptr_array_new ();
  for (guint i = (guint) (t->rank * t->batch); i < rows->len && i < (guint) ((t->rank + 1) * t->batch); i++)
    g_ptr_array_add (mine, g_ptr_array_index (rows, i));
  return mine;
}

/* Gradients go in buckets of this many floats: few messages, bounded memory. */
#define BUCKET_FLOATS ((gsize) 1 << 22)
/* Each param starts on 64 bytes (the backends' alignment); the gaps stay zero. */
#define GRAD_ALIGN ((gsize) 16)

/* The buckets: params in their order, as many as fit in BUCKET_FLOATS, a
 * larger param alone in its own. */
static void
layout_grads (Trainer *t)
{
  guint n = t->params->len;
  t->grad_off = g_new0 (gsize, MAX (n, 1));
  t->buckets = g_array_new (FALSE, FALSE, sizeof (TrainBucket));
  gsize at = 0, start = 0, end = 0;
  for (guint i = 0; i < n; i++) {
    gsize size = t->sizes[i];
    if (end > start && (size >= BUCKET_FLOATS || at + size - start > BUCKET_FLOATS)) {
      g_array_append_val (t->buckets, ((TrainBucket){ start, end - start }));
      start = at;
    }
    t->grad_off[i] = at;
    end = at + size;
    at = (end + GRAD_ALIGN - 1) / GRAD_ALIGN * GRAD_ALIGN;
  }
  if (end > start)
    g_array_append_val (t->buckets, ((TrainBucket){ start, end - start }));
  t->grad_total = MAX (at, 1);
}

gboolean
trainer_setup_grads (Trainer *t, GError **error)
{
  layout_grads (t);
  guint n = t->params->len;
  t->grads = g_new0 (float *, MAX (n, 1));
  if (!t->on_device || t->comm) {
    t->grad_mem = g_new0 (float, t->grad_total);
    for (guint i = 0; i < n && !t->on_device; i++)
      t->grads[i] = t->grad_mem + t->grad_off[i];
  }
  if (!t->on_device)
    return TRUE;
  gint64 total = (gint64) t->grad_total;
  t->dev_grads = cria_backend_tensor_new (t->backend, CRIA_DTYPE_F32, 1, &total, error);
  t->dev_m = t->dev_grads ? cria_backend_tensor_new (t->backend, CRIA_DTYPE_F32, 1, &total, error) : NULL;
  t->dev_v = t->dev_m ? cria_backend_tensor_new (t->backend, CRIA_DTYPE_F32, 1, &total, error) : NULL;
  if (!t->dev_v)
    return FALSE;
  t->resident = g_new0 (CriaTensor *, MAX (n, 1));
  t->spans = g_new0 (CriaOptimSpan, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    CriaAdapterParam *p = &g_array_index (t->params, CriaAdapterParam, i);
    t->resident[i] = cria_backend_get_resident (t->backend, p->value, error);
    if (!t->resident[i])
      return FALSE;
    gsize off = t->grad_off[i];
    t->spans[i] = (CriaOptimSpan){ t->resident[i]->data,
                                   (float *) t->dev_m->data + off,
                                   (float *) t->dev_v->data + off,
                                   (const float *) t->dev_grads->data + off,
                                   t->sizes[i],
                                   p->decay };
  }
  return TRUE;
}

void
trainer_clear_grads (Trainer *t)
{
  for (guint i = 0; t->resident && i < t->params->len; i++)
    g_clear_pointer (&t->resident[i], cria_tensor_unref);
  g_clear_pointer (&t->resident, g_free);
  g_clear_pointer (&t->dev_grads, cria_tensor_unref);
  g_clear_pointer (&t->dev_m, cria_tensor_unref);
  g_clear_pointer (&t->dev_v, cria_tensor_unref);
  g_clear_pointer (&t->spans, g_free);
  g_clear_pointer (&t->grads, g_free);
  g_clear_pointer (&t->grad_mem, g_free);
  g_clear_pointer (&t->grad_off, g_free);
  g_clear_pointer (&t->buckets, g_array_unref);
}

gboolean
trainer_sync_host (Trainer *t, GError **error)
{
  if (!t->host_stale)
    return TRUE;
  for (guint i = 0; i < t->params->len; i++) {
    CriaTensor *host = g_array_index (t->params, CriaAdapterParam, i).value;
    gsize n;
    float *m = cria_adamw_get_moment (t->opt, i, 0, &n), *v = cria_adamw_get_moment (t->opt, i, 1, &n);
    gsize off = t->grad_off[i] * sizeof (float);
    if (!cria_tensor_read (t->resident[i], 0, host->data, cria_tensor_nbytes (host), error) ||
        !cria_tensor_read (t->dev_m, off, m, n * sizeof (float), error) ||
        !cria_tensor_read (t->dev_v, off, v, n * sizeof (float), error))
      return FALSE;
  }
  t->host_stale = FALSE;
  return TRUE;
}

/* After the host's moments changed (a resume): the backend's copies. */
static gboolean
upload_moments (Trainer *t, GError **error)
{
  for (guint i = 0; t->on_device && i < t->params->len; i++) {
    gsize n;
    float *m = cria_adamw_get_moment (t->opt, i, 0, &n), *v = cria_adamw_get_moment (t->opt, i, 1, &n);
    gsize off = t->grad_off[i] * sizeof (float);
    if (!cria_tensor_write (t->dev_m, off, m, n * sizeof (float), error) ||
        !cria_tensor_write (t->dev_v, off, v, n * sizeof (float), error))
      return FALSE;
  }
  return TRUE;
}

/* The trainer's structure (each micro-batch's backward runs to the end,
 * then its grads are added to the window's) leaves nothing to overlap the
 * all-reduce with: it runs once per window, after the last backward, one
 * call per bucket, in place (MPI reduces host memory: on the backend's
 * optimizer path each bucket goes through grad_mem; an NCCL communicator
 * would reduce dev_grads' buckets where they are). */
gboolean
trainer_allreduce (Trainer *t, double *stats, guint n, GError **error)
{
  if (!t->comm)
    return TRUE;
  if (!cria_comm_allreduce_sum (t->comm, stats, n, CRIA_COMM_F64, error))
    return FALSE;
  for (guint b = 0; b < t->buckets->len; b++) {
    const TrainBucket *k = &g_array_index (t->buckets, TrainBucket, b);
    float *at = t->grad_mem + k->off;
    gsize off = k->off * sizeof (float), bytes = k->n * sizeof (float);
    if ((t->on_device && !cria_tensor_read (t->dev_grads, off, at, bytes, error)) ||
        !cria_comm_allreduce_sum (t->comm, at, k->n, CRIA_COMM_F32, error) ||
        (t->on_device && !cria_tensor_write (t->dev_grads, off, at, bytes, error)))
      return FALSE;
  }
  return TRUE;
}

/* ---- data position ------------------------------------------------------------- */

void
trainer_start_epoch (Trainer *t, guint32 *order)
{
  g_free (t->order);
  guint n = t->train.examples->len;
  t->order = order ? order : train_set_order (&t->train, t->seed, t->epoch, t->shuffle);
  g_clear_pointer (&t->plan, g_ptr_array_unref);
  t->plan = train_plan_epoch (&t->train, t->order, n, t->plan_batch, t->max_length, t->packing);
}

gint64
trainer_windows (Trainer *t)
{
  return ((gint64) t->plan->len + t->accum - 1) / t->accum;
}

/* Optimizer steps the epochs make (packing makes the count depend on the order). */
gint64
trainer_count_steps (Trainer *t, gint64 epochs)
{
  gint64 total = 0;
  guint n = t->train.examples->len;
  for (gint64 e = 0; e < epochs; e++) {
    g_autofree guint32 *order = train_set_order (&t->train, t->seed, e, t->shuffle);
    g_autoptr (GPtrArray) plan = train_plan_epoch (&t->train, order, n, t->plan_batch, t->max_length, t->packing);
    total += ((gint64) plan->len + t->accum - 1) / t->accum;
  }
  return total;
}

/* ---- reporting ------------------------------------------------------------------ */

void
trainer_log (Trainer *t, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_ptr_array_add (t->log, g_strdup_vprintf (format, ap));
  va_end (ap);
}

gboolean
trainer_write_log (Trainer *t, GError **error)
{
  g_autofree char *path = g_build_filename (t->out, "train-log.jsonl", NULL);
  CriaOutput *out = cria_output_open (path, error);
  if (!out)
    return FALSE;
  for (guint i = 0; i < t->log->len; i++)
    if (!cria_output_printf (out, error, "%s\n", (const char *) g_ptr_array_index (t->log, i))) {
      cria_output_abort (out);
      return FALSE;
    }
  return cria_output_commit (out, error);
}

double
trainer_elapsed (Trainer *t)
{
  return (double) (g_get_monotonic_time () - t->start_us) / 1e6;
}

double
trainer_run_seconds (Trainer *t)
{
  return t->seconds_before + trainer_elapsed (t);
}

void
trainer_progress (Trainer *t, gint64 steps_this_run, gint64 tokens_this_run)
{
  const char *mode = cria_props_get_string (t->o, "progress");
  if (t->rank != 0 || strcmp (mode, "never") == 0 || (strcmp (mode, "auto") == 0 && !isatty (STDERR_FILENO)))
    return;
  double s = trainer_elapsed (t);
  double eta = steps_this_run ? s / (double) steps_this_run * (double) (t->total_steps - t->step) : 0;
  int width = 24, done = (int) (width * t->step / MAX (t->total_steps, 1));
  char bar[32];
  for (int i = 0; i < width; i++)
    bar[i] = i < done ? '#' : '.';
  bar[width] = 0;
  cria_log_status (
      t->step == t->total_steps,
      "[%s] step %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "  loss %.4f  lr %.2e  %.0f tok/s  ETA %d:%02d:%02d ", bar,
      t->step, t->total_steps, t->last_loss, cria_adamw_get_lr (t->opt), s > 0 ? (double) tokens_this_run / s : 0.0,
      (int) (eta / 3600), (int) fmod (eta / 60, 60), (int) fmod (eta, 60));
}

/* ---- checkpoints ------------------------------------------------------------------- */

static JsonObject *
trainer_state (Trainer *t)
{
  JsonObject *s = json_object_new ();
  json_object_set_int_member (s, "step", t->step);
  json_object_set_int_member (s, "epoch", t->epoch);
  json_object_set_int_member (s, "window", t->window);
  json_object_set_int_member (s, "optimizer_step", cria_adamw_get_step (t->opt));
  json_object_set_int_member (s, "tokens_seen", t->tokens_seen);
  json_object_set_int_member (s, "nan_streak", t->nan_streak);
  json_object_set_int_member (s, "skipped_steps", t->n_skipped);
  json_object_set_int_member (s, "world_size", t->world);
  JsonArray *order = json_array_new ();
  for (guint i = 0; i < t->train.examples->len; i++)
    json_array_add_int_element (order, t->order[i]);
  json_object_set_array_member (s, "data_order", order);
  /* Every option of the run, so that --resume alone continues it; those
   * of fingerprint_options must agree when given again. */
  JsonObject *opts = json_object_new ();
  for (const CriaPropSpec *sp = cria_props_get_specs (t->o); sp->name; sp++) {
    const char *v = cria_props_get_text (t->o, sp->name);
    if (v && !train_option_is_per_invocation (sp->name))
      json_object_set_string_member (opts, sp->name, v);
  }
  json_object_set_object_member (s, "options", opts);
  json_object_set_double_member (s, "elapsed_s", trainer_run_seconds (t));
  JsonNode *extra = cria_adapter_save_state (t->adapter);
  if (extra)
    json_object_set_member (s, "adapter_state", extra);

  return s;
}

/* A hash of the trainable params' bytes, word by word (FNV-1a's mixing). */
static guint64
params_hash (Trainer *t)
{
  guint64 h = 0xcbf29ce484222325ull;
  for (guint i = 0; i < t->params->len; i++) {
    const guint32 *w = g_array_index (t->params, CriaAdapterParam, i).value->data;
    for (gsize e = 0; e < t->sizes[i]; e++)
      h = (h ^ w[e]) * 0x100000001b3ull;
  }
  return h;
}

gboolean
trainer_check_replicas (Trainer *t, GError **error)
{
  if (!t->comm)
    return TRUE;
  guint64 mine = params_hash (t), root = mine;
  if (!cria_comm_broadcast (t->comm, &root, sizeof root, 0, error))
    return FALSE;
  double differ = mine != root;
  if (!cria_comm_allreduce_sum (t->comm, &differ, 1, CRIA_COMM_F64, error))
    return FALSE;
  if (differ > 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED,
                 "distributed: at step %" G_GINT64_FORMAT " the params of %.0f rank(s) differ from rank 0's "
                 "(another model, adapter or checkpoint on some host?)",
                 t->step, differ);
    return FALSE;
  }
  return TRUE;
}

gboolean
trainer_save_checkpoint (Trainer *t, GError **error)
{
  /* every rank checks, rank 0 alone writes */
  if (!trainer_sync_host (t, error) || !trainer_check_replicas (t, error))
    return FALSE;
  if (t->rank != 0)
    return TRUE;
  g_autofree char *name = g_strdup_printf ("checkpoint-%" G_GINT64_FORMAT, t->step);
  g_autofree char *dir = g_build_filename (t->out, "checkpoints", name, NULL);
  g_autoptr (JsonObject) state = trainer_state (t);
  return train_checkpoint_save (dir, t->adapter, t->opt, state, cria_props_get_string (t->o, "model"), error) &&
         trainer_write_log (t, error);
}

/* Numbers compare by value: how a double is written has changed between
 * versions (0 then, 0.0 now), and a checkpoint must outlive that. */
static gboolean
same_option (const CriaProps *o, const char *name, const char *was, const char *now)
{
  /* An option a checkpoint does not name is older than it: it had its default. */
  for (const CriaPropSpec *sp = cria_props_get_specs (o); !was && sp && sp->name; sp++)
    if (!strcmp (sp->name, name))
      was = sp->default_value;
  if (!g_strcmp0 (was, now))
    return TRUE;
  if (!was || !now)
    return FALSE;
  for (const CriaPropSpec *sp = cria_props_get_specs (o); sp && sp->name; sp++)
    if (!strcmp (sp->name, name) && sp->type == CRIA_PROP_DOUBLE)
      return g_ascii_strtod (was, NULL) == g_ascii_strtod (now, NULL);
  return FALSE;
}

/* The curves of loss.png from a line of the log, so that a resumed run's
 * picture covers the whole run. */
static void
restore_curves (Trainer *t, JsonObject *line)
{
  double step = (double) cria_json_get_int (line, "step", 0);
  if (cria_json_member_is (line, "skipped", G_TYPE_STRING) && json_object_has_member (line, "skipped"))
    return;
  if (json_object_has_member (line, "loss") && cria_json_member_is (line, "loss", G_TYPE_DOUBLE))
    g_array_append_val (t->train_curve, ((CriaPlotPoint){ step, cria_json_get_double (line, "loss", NAN) }));
  if (json_object_has_member (line, "lr") && cria_json_member_is (line, "lr", G_TYPE_DOUBLE))
    g_array_append_val (t->lr_curve, ((CriaPlotPoint){ step, cria_json_get_double (line, "lr", NAN) }));
  if (json_object_has_member (line, "eval_loss") && cria_json_member_is (line, "eval_loss", G_TYPE_DOUBLE))
    g_array_append_val (t->eval_curve, ((CriaPlotPoint){ step, cria_json_get_double (line, "eval_loss", NAN) }));
}

gboolean
trainer_resume (Trainer *t, const char *dir, GError **error)
{
  t->params_dirty = TRUE; /* whatever part of it loads, the device copies are stale */
  g_autoptr (JsonObject) s = train_checkpoint_load (dir, t->adapter, t->opt, error);
  if (!s || !upload_moments (t, error))
    return FALSE;
  g_autofree char *s_path = g_build_filename (dir, "trainer_state.json", NULL);
  CriaTrainState st;
  if (!cria_train_state_read (s, s_path, t->train.examples->len, &st, error)) {
    g_prefix_error (error, "resume: ");
    return FALSE;
  }
  guint32 *o = st.data_order;
  for (const char *const *k = fingerprint_options; st.options && *k; k++) {
    const char *was = cria_json_get_string (st.options, *k, NULL);
    const char *now = cria_props_get_text (t->o, *k);
    if (!same_option (t->o, *k, was, now)) {
      g_free (o);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "resume: %s: option --%s was %s in the interrupted run, now %s (leave it out to continue the run)",
                   dir, *k, was ? was : "unset", now ? now : "unset");
      return FALSE;
    }
  }
  gint64 world = cria_json_get_int (s, "world_size", 1);
  if (world != t->world) {
    g_free (o);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "resume: %s: the run had %" G_GINT64_FORMAT " process(es), now %d: the global batch would differ "
                 "(run it with mpirun -np %" G_GINT64_FORMAT "%s)",
                 dir, world, t->world, world, world > 1 ? " and --distributed" : ", without --distributed");
    return FALSE;
  }
  t->step = st.step;
  t->epoch = st.epoch;
  t->window = st.window;
  t->tokens_seen = st.tokens_seen;
  t->nan_streak = st.nan_streak;
  t->n_skipped = st.skipped_steps;
  cria_adamw_set_step (t->opt, st.optimizer_step);
  trainer_start_epoch (t, o);
  if (!cria_adapter_load_state (t->adapter, st.adapter_state, error)) {
    g_prefix_error (error, "resume: %s/trainer_state.json: field adapter_state: ", dir);
    return FALSE;
  }

  /* The log of the run so far, up to the checkpoint. */
  g_autofree char *path = g_build_filename (t->out, "train-log.jsonl", NULL);
  g_autofree char *text = NULL;
  if (cria_file_get_contents (path, CRIA_INPUT_MAX_FILE_BYTES, &text, NULL, NULL)) {
    g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
      g_autoptr (JsonNode) node = *lines[i] ? cria_json_parse (lines[i], -1, path, i + 1, NULL) : NULL;
      JsonNode *step = node && JSON_NODE_HOLDS_OBJECT (node)
                           ? json_object_get_member (json_node_get_object (node), "step")
                           : NULL;
      if (step && JSON_NODE_HOLDS_VALUE (step) && json_node_get_value_type (step) == G_TYPE_INT64 &&
          json_node_get_int (step) <= t->step) {
        g_ptr_array_add (t->log, g_strdup (lines[i]));
        restore_curves (t, json_node_get_object (node));
      }
    }
  }
  t->seconds_before = cria_json_get_double (s, "elapsed_s", 0);
  g_autofree char *escaped = g_strescape (dir, NULL);
  trainer_log (t, "{\"event\":\"resume\",\"step\":%" G_GINT64_FORMAT ",\"from\":\"%s\"}", t->step, escaped);
  return TRUE;
}
