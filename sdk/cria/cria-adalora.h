/* cria-adalora.h: AdaLoRA's rank allocation (Zhang et al. 2023), as PEFT's
 * RankAllocator and AdaLoraModel do it, on plain f32 arrays.
 *
 * Each adapted module holds delta W = P diag(E) Q with P [out, r] (PEFT's
 * lora_B), E [r] (lora_E) and Q [r, in] (lora_A). After every optimizer step
 * (before the gradients are zeroed) the trainer calls cria_adalora_step:
 *
 *   step < T - tfinal:   sensitivity I = |w * grad w| of every entry of P, E, Q;
 *                        Ibar = b1 Ibar + (1 - b1) I;  U = b2 U + (1 - b2) |I - Ibar|
 *                        (the new Ibar), in that order; then, if the schedule
 *                        says so, masking to the budget.
 *   step == T - tfinal:  no update; masking to the final budget; the scores
 *                        are reset and the mask becomes the rank pattern.
 *   step > T - tfinal:   E is masked with the rank pattern again.
 *
 * Budget (b(t), masking?): t <= tinit: (init budget, no); t > T - tfinal:
 * (target budget, yes); otherwise the cubic decay
 *   b(t) = int ((init - target) (1 - (t - tinit) / (T - tfinal - tinit))^3 + target)
 * in double, masking when t % deltaT == 0. init is the sum of the modules'
 * ranks, target = target_r * the number of modules.
 *
 * Masking: each triplet i of a module scores
 *   S_i = s(E_i) + mean_j s(Q_ij) + mean_j s(P_ji),  s = Ibar * U
 * (means over in and out); the threshold is the k-th smallest score over all
 * modules, k = init - b(t) (torch.kthvalue), and every E_i with S_i <= the
 * threshold is set to 0 (ties can mask more than k). With k < 1 nothing is
 * masked (PEFT raises there).
 *
 * Orthogonal regularizer, as PEFT adds it to the loss:
 *   R = w / (2 M) * sum over modules (||Q Q^T - I||_F + ||P^T P - I||_F)
 * with M modules (PEFT averages over the lora_A and lora_B params it sees):
 * the Frobenius norm itself, not its square. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  int target_r;   /* average rank after allocation */
  int tinit;      /* steps of warmup before any masking */
  int tfinal;     /* last steps, trained with the final mask */
  int delta_t;    /* steps between two maskings */
  int total_step; /* T */
  double beta1;   /* EMA of the sensitivity, in (0, 1) */
  double beta2;   /* EMA of the uncertainty, in (0, 1) */
} CriaAdaloraConfig;

/* One adapted module. The arrays belong to the caller, who updates them
 * between steps; cria_adalora_step reads the gradients and zeroes masked
 * entries of E. */
typedef struct {
  const char *name;
  gint64 out, in, r;
  float *P, *E, *Q;
  const float *dP, *dE, *dQ;
} CriaAdaloraModule;

typedef struct _CriaAdalora CriaAdalora;

/* Checks the config and the modules (copied, arrays not). */
CriaAdalora *cria_adalora_new (const CriaAdaloraConfig *config, const CriaAdaloraModule *modules, guint n_modules,
                               GError **error);
void cria_adalora_free (CriaAdalora *adalora);

/* The budget at `step` and whether the schedule masks then. */
gint64 cria_adalora_budget (const CriaAdalora *adalora, int step, gboolean *mask);
/* update_and_allocate after the optimizer step `step`. Returns TRUE when E
 * was masked to a budget (stored in *budget) at this step. */
gboolean cria_adalora_step (CriaAdalora *adalora, int step, gint64 *budget);

/* The triplet scores S of module m at the last masking (r values), and the
 * threshold used; NULL and NAN before the first masking. */
const float *cria_adalora_scores (const CriaAdalora *adalora, guint module);
float cria_adalora_threshold (const CriaAdalora *adalora);
/* Ranks of module m kept by the last masking (r flags, all TRUE before one),
 * and how many: what a saved adapter keeps of E, the rows of Q and the
 * columns of P (PEFT's rank_pattern). */
const gboolean *cria_adalora_rank_pattern (const CriaAdalora *adalora, guint module, gint64 *n_kept);

/* What a checkpoint keeps to continue a run exactly: the importance
 * averages of module m's part (0: P, 1: E, 2: Q), Ibar or, with
 * `uncertainty`, U, writable, of *n floats; and the kept ranks, which
 * set_rank_pattern restores (r flags). The scores and threshold of the last
 * masking are not state: they are recomputed at the next masking. */
float *cria_adalora_importance (CriaAdalora *adalora, guint module, int part, gboolean uncertainty, gsize *n);
void cria_adalora_set_rank_pattern (CriaAdalora *adalora, guint module, const gboolean *kept);

/* R above; when dP and dQ are not NULL, dR/dP and dR/dQ of each module are
 * added to dP[m] and dQ[m] (a module whose norm is 0 adds nothing). */
double cria_adalora_orth_reg (const CriaAdaloraModule *modules, guint n_modules, double weight, float **dP, float **dQ);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaAdalora, cria_adalora_free)

G_END_DECLS
