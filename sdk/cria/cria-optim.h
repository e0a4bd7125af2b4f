/* cria-optim.h: AdamW with fp32 state, learning-rate schedules, gradient clipping.
 *
 * The optimizer works on flat f32 arrays, whatever owns them (a LoRA matrix,
 * a full weight): the trainer registers each trainable tensor once and hands
 * the gradients of a step in the same order. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_SCHEDULE_CONSTANT, /* warmup, then lr */
  CRIA_SCHEDULE_LINEAR,   /* warmup, then linear decay to 0 at total_steps */
  CRIA_SCHEDULE_COSINE,   /* warmup, then half a cosine down to 0 at total_steps */
} CriaSchedule;

typedef struct {
  double lr;
  double beta1, beta2, eps;
  double weight_decay; /* decoupled, as torch.optim.AdamW */
  CriaSchedule schedule;
  gint64 warmup_steps;
  gint64 total_steps;
} CriaOptimConfig;

/* torch.optim.AdamW's defaults with lr 1e-3, constant schedule, no warmup. */
void cria_optim_config_init (CriaOptimConfig *config);
/* "constant", "linear", "cosine"; FALSE for anything else. */
gboolean cria_schedule_from_name (const char *name, CriaSchedule *schedule);
/* Warmup steps from a ratio of the total, rounded up as transformers does. */
gint64 cria_warmup_from_ratio (double ratio, gint64 total_steps);
/* The learning rate of optimizer step `step` (0-based), as the schedulers of
 * transformers (get_*_schedule_with_warmup) give it. */
double cria_schedule_lr (const CriaOptimConfig *config, gint64 step);

typedef struct _CriaAdamW CriaAdamW;

/* The order of the gradient norm's sums: each param in pieces of
 * CRIA_OPTIM_NORM_CHUNK floats from its start, each piece summed in
 * CRIA_OPTIM_NORM_LANES lanes (element i of the piece into lane
 * i % LANES, in order), then every lane of every piece, param after param,
 * added in that order into one double. The result does not depend on the
 * thread count; a backend following it gives the same bits. */
#define CRIA_OPTIM_NORM_CHUNK ((gsize) 1 << 16)
#define CRIA_OPTIM_NORM_LANES 8

/* One param for a backend's optimizer entries (cria-backend.h, contract
 * 1.2): n floats each, in the backend's memory. grad_sumsq reads grad only. */
typedef struct {
  float *param, *m, *v;
  const float *grad;
  gsize n;
  gboolean decay;
} CriaOptimSpan;

/* What one AdamW step computes for every element, with every scalar rounded
 * to float once on the host (in double from lr, betas, eps, weight decay
 * and the step count t, as PyTorch computes them):
 *   g = (grad * pre) * post      x = param * shrink (1 without decay)
 *   m = fmaf (one_b1, g, m * b1)   v = fmaf (one_b2 * g, g, v * b2)
 *   param = fmaf (-step_size, m / (sqrtf (v) * inv_bias2_sqrt + eps), x)
 * shrink = 1 - lr wd, one_b = 1 - b, inv_bias2_sqrt = 1 / sqrt (1 - b2^t),
 * step_size = lr / (1 - b1^t); only the fmaf written are fused. */
typedef struct {
  float shrink;
  float pre, post;
  float b1, b2, one_b1, one_b2;
  float inv_bias2_sqrt, eps, step_size;
} CriaAdamwScalars;

CriaAdamW *cria_adamw_new (const CriaOptimConfig *config);
void cria_adamw_free (CriaAdamW *opt);
/* Registers a parameter of n floats; `decay` FALSE exempts it from weight
 * decay (biases and norms, by convention). Returns its index. The optimizer
 * keeps the pointer: the parameter must outlive it. */
guint cria_adamw_add (CriaAdamW *opt, const char *name, float *param, gsize n, gboolean decay);
guint cria_adamw_get_n_params (CriaAdamW *opt);
/* One step on every parameter with grads[i] for parameter i, at the schedule's
 * learning rate for the current step; then the step count advances. */
void cria_adamw_step (CriaAdamW *opt, const float *const *grads);
/* cria_adamw_step with each gradient taken as (g * pre) * post, every product
 * rounded to float as a pass scaling the gradients in place would round it
 * (the trainer's mean over targets, then clipping's coefficient), without
 * those passes; grads are left as they are. */
void cria_adamw_step_scaled (CriaAdamW *opt, const float *const *grads, float pre, float post);
/* cria_adamw_step_scaled, then each piece of the gradients is zeroed right
 * after the update read it, while it is in cache: for a caller that would
 * zero them next (a graph's gradients before its next backward pass). */
void cria_adamw_step_scaled_zero (CriaAdamW *opt, float *const *grads, float pre, float post);
/* The scalars of the next step at the schedule's learning rate (what
 * cria_adamw_step_scaled computes), then the step count advances: for a
 * caller that runs the update elsewhere (cria_backend_adamw_step). */
void cria_adamw_next_scalars (CriaAdamW *opt, float pre, float post, CriaAdamwScalars *s);
/* sums[i] += grads[i] for every registered parameter (sums[i] = grads[i]
 * with `copy`), element by element, a NULL grads[i] skipped; with `zero`
 * each piece of grads[i] is zeroed once read, while it is in cache. On the
 * threads of the passes: a trainer's sum of its micro-batches' gradients. */
void cria_adamw_sum_grads (CriaAdamW *opt, float *const *sums, float *const *grads, gboolean copy, gboolean zero);
/* The global L2 norm of the gradients of the registered parameters, each
 * taken as g * pre, summed as cria_clip_grad_norm sums. */
double cria_adamw_grad_norm (CriaAdamW *opt, const float *const *grads, float pre);
/* Threads of the two passes above (default 1): their results do not depend
 * on it. */
void cria_adamw_set_threads (CriaAdamW *opt, guint n_threads);
/* The optimizer steps taken so far (the schedule position). */
gint64 cria_adamw_get_step (CriaAdamW *opt);
/* The learning rate the next step will use. */
double cria_adamw_get_lr (CriaAdamW *opt);

/* The state of parameter i for checkpoints: first and second moments. */
float *cria_adamw_get_moment (CriaAdamW *opt, guint i, int which, gsize *n);
const char *cria_adamw_get_name (CriaAdamW *opt, guint i);
/* Restores the step count (the moments are restored through get_moment). */
void cria_adamw_set_step (CriaAdamW *opt, gint64 step);

/* Scales the gradients so that their global L2 norm is at most max_norm
 * (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
 * max_norm <= 0 only measures. */
double cria_clip_grad_norm (float *const *grads, const gsize *sizes, guint n, double max_norm);
/* The factor clip_grad_norm_ scales by for a measured norm: 1 when the norm
 * is within max_norm or max_norm <= 0. */
float cria_clip_coef (double norm, double max_norm);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaAdamW, cria_adamw_free)

G_END_DECLS
