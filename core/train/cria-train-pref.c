/* cria-train-pref.c: preference objectives — DPO (Rafailov et al. 2023, with
 * cDPO's label smoothing), IPO (Azar et al. 2023) and ORPO (Hong et al.
 * 2024) — on the trainer's graphs.
 *
 *   cria train --objective dpo --model M --data pairs.jsonl --out run
 *
 * A pair is two examples of the set, chosen then rejected, in one row of a
 * micro-batch and kept apart by segment ids. One forward pass gives each
 * row's cross-entropy (cria_lm_head_ce_rows), hence each sequence's
 * log-probability summed over its response tokens; the objective of the
 * window is computed here in double precision, and its gradient with respect
 * to each sequence's log-probability seeds the backward pass
 * (cria_graph_run_backward_seeded), so one backward does the whole batch.
 *
 * The reference log-probabilities come from the same model with the
 * adapter's hook left out (LoRA and QLoRA: the base), from --ref-model, or,
 * computed once before training (precompute-ref, and always for full
 * fine-tuning, whose weights are the trained ones), from a table that
 * checkpoints keep. The formulas follow TRL's DPOTrainer and ORPOTrainer:
 *   DPO:  h = (pc - rc) - (pr - rr), loss = -(1-e) log s(b h) - e log s(-b h)
 *   IPO:  the same h on log-probs averaged over each answer's tokens,
 *         loss = (h - 1/(2b))^2
 *   ORPO: a = average log-probs, log_odds = (ac - ar) - (log(1-e^ac) - log(1-e^ar)),
 *         loss = NLL(chosen tokens) - b log s(log_odds)
 * rewards: b (p - r) (DPO, IPO; averaged for IPO), b a (ORPO); the
 * losses and rewards are means over the window's pairs, ORPO's NLL the
 * mean over the window's chosen tokens. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cria-train-private.h"

static double
log_sigmoid (double x)
{
  return x >= 0 ? -log1p (exp (-x)) : x - log1p (exp (x));
}

static double
sigmoid (double x)
{
  return x >= 0 ? 1 / (1 + exp (-x)) : exp (x) / (1 + exp (x));
}

/* log(1 - e^a) for a < 0, accurate near 0 and far from it */
static double
log1m_exp (double a)
{
  return a > -M_LN2 ? log (-expm1 (a)) : log1p (-exp (a));
}

/* Each member's log-probability (summed over its learned tokens) and token
 * count from a per-row cross-entropy output. */
static void
member_logps (const TrainBatch *b, const float *ce, double *logp, gint64 *ntok)
{
  gint64 N = b->B * b->T;
  for (guint m = 0; m < b->members->len; m++) {
    logp[m] = 0;
    ntok[m] = 0;
  }
  for (gint64 i = 0; i < N; i++)
    if (b->owner[i] >= 0) {
      logp[b->owner[i]] -= ce[2 + N + i];
      ntok[b->owner[i]]++;
    }
}

static gboolean
set_inputs (StepGraph *sg, TrainBatch *b, GError **error)
{
  return cria_node_set_value (sg->ids, b->ids, error) && cria_node_set_value (sg->positions, b->positions, error) &&
         cria_node_set_value (sg->segments, b->segments, error) && cria_node_set_value (sg->labels, b->labels, error);
}

/* The reference's log-probs of a batch's members, by a forward pass. */
static gboolean
reference_logps (Trainer *t, TrainBatch *b, double *ref, GError **error)
{
  StepGraph *sg = trainer_upload_params (t, error) ? trainer_graph (t, b->T, TRUE, TRUE, error) : NULL;
  if (!sg || !set_inputs (sg, b, error) || !cria_graph_forward (sg->g, error))
    return FALSE;
  g_autoptr (CriaTensor) ce = cria_tensor_to_host (sg->ce->value, error);
  if (!ce)
    return FALSE;
  g_autofree gint64 *ntok = g_new (gint64, MAX (b->members->len, 1));
  member_logps (b, ce->data, ref, ntok);
  return TRUE;
}

/* One pair's loss and its gradient with respect to the summed log-probs. */
typedef struct {
  double loss, d_chosen, d_rejected, reward_c, reward_r, log_odds;
} PairLoss;

static void
pair_loss (const Trainer *t, double pc, double pr, double rc, double rr, gint64 nc, gint64 nr, PairLoss *o)
{
  double b = t->beta, e = t->smoothing;
  memset (o, 0, sizeof *o);
  switch (t->objective) {
    case OBJECTIVE_DPO: {
      double h = (pc - rc) - (pr - rr);
      o->loss = -(1 - e) * log_sigmoid (b * h) - e * log_sigmoid (-b * h);
      double dh = -(1 - e) * b * sigmoid (-b * h) + e * b * sigmoid (b * h);
      o->d_chosen = dh;
      o->d_rejected = -dh;
      o->reward_c = b * (pc - rc);
      o->reward_r = b * (pr - rr);
      break;
    }
    case OBJECTIVE_IPO: {
      double ac = (pc - rc) / (double) nc, ar = (pr - rr) / (double) nr;
      double h = ac - ar, d = h - 1 / (2 * b);
      o->loss = d * d;
      o->d_chosen = 2 * d / (double) nc;
      o->d_rejected = -2 * d / (double) nr;
      o->reward_c = b * ac;
      o->reward_r = b * ar;
      break;
    }
    case OBJECTIVE_ORPO: {
      double ac = pc / (double) nc, ar = pr / (double) nr;
      double lo = (ac - ar) - (log1m_exp (ac) - log1m_exp (ar));
      o->loss = -b * log_sigmoid (lo);
      double dlo = -b * sigmoid (-lo);
      /* d log_odds / d a = 1 + e^a / (1 - e^a) = 1 / (1 - e^a) */
      o->d_chosen = dlo / -expm1 (ac) / (double) nc;
      o->d_rejected = -dlo / -expm1 (ar) / (double) nr;
      o->reward_c = b * ac;
      o->reward_r = b * ar;
      o->log_odds = lo;
      break;
    }
    case OBJECTIVE_SFT:
    default:
      g_assert_not_reached ();
  }
}

/* Forward (and backward when training) of one micro-batch of pairs. `ref`:
 * the set's precomputed reference log-probs or NULL; the objective is
 * divided by `pairs` and ORPO's NLL by `tokens`, the window's counts. */
static gboolean
pref_micro (Trainer *t, TrainSet *set, GPtrArray *rows, gboolean eval, guint64 micro_seed, const double *ref_table,
            double pairs, double tokens, PrefStats *st, GError **error)
{
  TrainBatch b = { .B = t->batch };
  train_batch_fill (set, rows, t->max_length, TRUE, t->pad, &b);
  guint nm = b.members->len;
  g_autofree double *logp = g_new (double, MAX (nm, 1));
  g_autofree double *ref = g_new0 (double, MAX (nm, 1));
  g_autofree gint64 *ntok = g_new (gint64, MAX (nm, 1));
  gboolean ok = TRUE;
  if (t->objective != OBJECTIVE_ORPO) {
    if (ref_table)
      for (guint m = 0; m < nm; m++)
        ref[m] = ref_table[g_array_index (b.members, guint32, m)];
    else
      ok = reference_logps (t, &b, ref, error);
  }
  StepGraph *sg = ok && trainer_upload_params (t, error) ? trainer_graph (t, b.T, eval, FALSE, error) : NULL;
  ok = sg && set_inputs (sg, &b, error);
  if (ok) {
    trainer_set_dropout_seed (sg, micro_seed);
    ok = cria_graph_forward (sg->g, error);
  }
  if (!ok) {
    train_batch_clear (&b);
    return FALSE;
  }
  gint64 N = b.B * b.T;
  g_autoptr (CriaTensor) ce = cria_tensor_to_host (sg->ce->value, error);
  if (!ce) {
    train_batch_clear (&b);
    return FALSE;
  }
  member_logps (&b, ce->data, logp, ntok);
  /* d objective / d logp of each member */
  g_autofree double *dlogp = g_new0 (double, MAX (nm, 1));
  for (guint m = 0; m + 1 < nm; m += 2) {
    g_assert (g_array_index (b.members, guint32, m) % 2 == 0);
    PairLoss pl;
    pair_loss (t, logp[m], logp[m + 1], ref[m], ref[m + 1], ntok[m], ntok[m + 1], &pl);
    st->loss += pl.loss / pairs;
    dlogp[m] = pl.d_chosen / pairs;
    dlogp[m + 1] = pl.d_rejected / pairs;
    st->chosen_rewards += pl.reward_c;
    st->rejected_rewards += pl.reward_r;
    st->margins += pl.reward_c - pl.reward_r;
    st->accuracies += pl.reward_c > pl.reward_r;
    st->chosen_logps += logp[m];
    st->rejected_logps += logp[m + 1];
    st->log_odds += pl.log_odds;
    st->pairs++;
    st->chosen_tokens += ntok[m];
    if (t->objective == OBJECTIVE_ORPO) {
      st->nll += -logp[m];
      st->loss += -logp[m] / tokens;
    }
  }
  if (!eval) {
    /* logp = -sum of the member's row losses: d/d ce_r = -d/d logp */
    g_autofree float *seed = g_new0 (float, 2 + 2 * N);
    for (gint64 i = 0; i < N; i++) {
      gint32 m = b.owner[i];
      if (m < 0)
        continue;
      double d = -dlogp[m];
      if (t->objective == OBJECTIVE_ORPO && m % 2 == 0)
        d += 1 / tokens; /* the chosen answer's NLL */
      seed[2 + N + i] = (float) d;
    }
    ok = cria_graph_run_backward_seeded (sg->g, seed, (gsize) (2 + 2 * N), error) &&
         trainer_accumulate_grads (t, sg, error);
    t->tokens_seen += b.n_tokens;
  }
  train_batch_clear (&b);
  return ok;
}

/* The pairs and the chosen answers' learned tokens of micro-batches [first, last). */
static void
window_counts (const TrainSet *set, GPtrArray *plan, guint first, guint last, double *pairs, double *tokens)
{
  *pairs = *tokens = 0;
  for (guint k = first; k < last; k++) {
    GPtrArray *rows = g_ptr_array_index (plan, k);
    for (guint r = 0; r < rows->len; r++) {
      GArray *row = g_ptr_array_index (rows, r);
      for (guint i = 0; i < row->len; i++) {
        guint32 id = g_array_index (row, guint32, i);
        if (id % 2)
          continue;
        const TrainExample *e = &g_array_index (set->examples, TrainExample, id);
        *pairs += 1;
        for (gint32 p = 1; p < e->n; p++)
          *tokens += e->learn[p];
      }
    }
  }
}

/* The micro-batches of a set in its own order (evaluation, precomputing). */
static GPtrArray *
plan_in_order (Trainer *t, TrainSet *set)
{
  guint n = set->examples->len;
  g_autofree guint32 *order = g_new (guint32, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    order[i] = i;
  return train_plan_epoch (set, order, n, t->batch, t->max_length, t->packing);
}

gboolean
pref_train_window (Trainer *t, guint first, guint last, PrefStats *st, GError **error)
{
  double pairs, tokens;
  window_counts (&t->train, t->plan, first, last, &pairs, &tokens);
  for (guint k = first; k < last; k++) {
    guint64 micro_seed = t->seed ^ ((guint64) t->epoch << 32 | k) * 0x9e3779b97f4a7c15ull;
    if (!pref_micro (t, &t->train, g_ptr_array_index (t->plan, k), FALSE, micro_seed, t->ref_train, pairs, tokens, st,
                     error))
      return FALSE;
  }
  return TRUE;
}

gboolean
pref_evaluate (Trainer *t, PrefStats *st, GError **error)
{
  g_autoptr (GPtrArray) plan = plan_in_order (t, &t->eval);
  double pairs, tokens;
  window_counts (&t->eval, plan, 0, plan->len, &pairs, &tokens);
  for (guint i = 0; i < plan->len; i++)
    if (!pref_micro (t, &t->eval, g_ptr_array_index (plan, i), TRUE, 0, t->ref_eval, pairs, tokens, st, error))
      return FALSE;
  return TRUE;
}

void
pref_append_metrics (GString *s, const PrefStats *st, const char *prefix, const Trainer *t)
{
  double n = st->pairs ? (double) st->pairs : NAN;
  g_string_append_printf (s,
                          ",\"%srewards/chosen\":%.17g,\"%srewards/rejected\":%.17g,\"%srewards/accuracies\":%.17g,"
                          "\"%srewards/margins\":%.17g,\"%slogps/chosen\":%.17g,\"%slogps/rejected\":%.17g",
                          prefix, st->chosen_rewards / n, prefix, st->rejected_rewards / n, prefix, st->accuracies / n,
                          prefix, st->margins / n, prefix, st->chosen_logps / n, prefix, st->rejected_logps / n);
  if (t->objective == OBJECTIVE_ORPO)
    g_string_append_printf (s, ",\"%snll_loss\":%.17g,\"%slog_odds_chosen\":%.17g", prefix,
                            st->chosen_tokens ? st->nll / (double) st->chosen_tokens : NAN, prefix, st->log_odds / n);
  g_string_append_printf (s, ",\"%spairs\":%" G_GINT64_FORMAT, prefix, st->pairs);
}

/* Reference log-probs of every example of a set, once. */
static double *
precompute (Trainer *t, TrainSet *set, GError **error)
{
  double *table = g_new0 (double, MAX (set->examples->len, 1));
  g_autoptr (GPtrArray) plan = plan_in_order (t, set);
  for (guint k = 0; k < plan->len; k++) {
    TrainBatch b = { .B = t->batch };
    train_batch_fill (set, g_ptr_array_index (plan, k), t->max_length, TRUE, t->pad, &b);
    g_autofree double *ref = g_new (double, MAX (b.members->len, 1));
    gboolean ok = reference_logps (t, &b, ref, error);
    for (guint m = 0; ok && m < b.members->len; m++)
      table[g_array_index (b.members, guint32, m)] = ref[m];
    train_batch_clear (&b);
    if (!ok) {
      g_free (table);
      return NULL;
    }
  }
  return table;
}

gboolean
pref_setup (Trainer *t, GError **error)
{
  if (t->objective == OBJECTIVE_SFT || t->objective == OBJECTIVE_ORPO)
    return TRUE;
  const CriaAdapterVTable *vt = cria_provider_get_vtable (cria_adapter_get_provider (t->adapter));
  /* Full fine-tuning trains the weights themselves: nothing to switch off. */
  gboolean must = !t->ref_model && !vt->linear;
  if (!must && !cria_props_get_bool (t->o, "precompute-ref"))
    return TRUE;
  /* Before a resumed run loads its checkpoint: the weights are still the base's. */
  t->ref_train = precompute (t, &t->train, error);
  t->ref_eval = t->ref_train ? precompute (t, &t->eval, error) : NULL;
  return t->ref_eval != NULL;
}

void
pref_clear (Trainer *t)
{
  g_clear_pointer (&t->ref_train, g_free);
  g_clear_pointer (&t->ref_eval, g_free);
  g_clear_pointer (&t->ref_model, cria_model_free);
  for (guint i = 0; i < 2; i++)
    g_clear_pointer (&t->pref_curves[i], g_array_unref);
}
