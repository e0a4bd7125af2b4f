/* cria-optim.c: AdamW (decoupled weight decay) and the learning-rate schedules.
 *
 * The update follows torch.optim.AdamW step for step, in float, so that a step
 * equals PyTorch's to rounding:
 *   p <- p * (1 - lr*wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
 *   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)          */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-optim.h>

typedef struct {
  char *name;
  float *param;
  float *m, *v;
  gsize n;
  gboolean decay;
} Param;

struct _CriaAdamW {
  CriaOptimConfig config;
  GArray *params; /* Param */
  gint64 step;
};

void
cria_optim_config_init (CriaOptimConfig *c)
{
  g_return_if_fail (c != NULL);
  *c = (CriaOptimConfig){
    .lr = 1e-3,
    .beta1 = 0.9,
    .beta2 = 0.999,
    .eps = 1e-8,
    .weight_decay = 1e-2,
    .schedule = CRIA_SCHEDULE_CONSTANT,
    .warmup_steps = 0,
    .total_steps = 0,
  };
}

gboolean
cria_schedule_from_name (const char *name, CriaSchedule *schedule)
{
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (schedule != NULL, FALSE);
  static const char *const names[] = { "constant", "linear", "cosine" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    if (strcmp (name, names[i]) == 0) {
      *schedule = (CriaSchedule) i;
      return TRUE;
    }
  }
  return FALSE;
}

gint64
cria_warmup_from_ratio (double ratio, gint64 total_steps)
{
  return (gint64) ceil (ratio * (double) total_steps);
}

double
cria_schedule_lr (const CriaOptimConfig *c, gint64 step)
{
  g_return_val_if_fail (c != NULL, 0.0);
  double factor;
  if (step < c->warmup_steps) {
    factor = (double) step / (double) MAX (1, c->warmup_steps);
  } else if (c->schedule == CRIA_SCHEDULE_CONSTANT) {
    factor = 1.0;
  } else {
    double progress = (double) (step - c->warmup_steps) / (double) MAX (1, c->total_steps - c->warmup_steps);
    if (c->schedule == CRIA_SCHEDULE_LINEAR)
      factor = MAX (0.0, (double) (c->total_steps - step) / (double) MAX (1, c->total_steps - c->warmup_steps));
    else
      factor = MAX (0.0, 0.5 * (1.0 + cos (G_PI * progress)));
  }
  return c->lr * factor;
}

static void
param_clear (Param *p)
{
  g_free (p->name);
  g_free (p->m);
  g_free (p->v);
}

CriaAdamW *
cria_adamw_new (const CriaOptimConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  CriaAdamW *opt = g_new0 (CriaAdamW, 1);
  opt->config = *config;
  opt->params = g_array_new (FALSE, TRUE, sizeof (Param));
  g_array_set_clear_func (opt->params, (GDestroyNotify) param_clear);
  return opt;
}

void
cria_adamw_free (CriaAdamW *opt)
{
  if (!opt)
    return;
  g_array_unref (opt->params);
  g_free (opt);
}

guint
cria_adamw_add (CriaAdamW *opt, const char *name, float *param, gsize n, gboolean decay)
{
  g_return_val_if_fail (opt != NULL, G_MAXUINT);
  Param p = { g_strdup (name), param, g_new0 (float, n), g_new0 (float, n), n, decay };
  g_array_append_val (opt->params, p);
  return opt->params->len - 1;
}

guint
cria_adamw_get_n_params (CriaAdamW *opt)
{
  g_return_val_if_fail (opt != NULL, 0);
  return opt->params->len;
}

gint64
cria_adamw_get_step (CriaAdamW *opt)
{
  g_return_val_if_fail (opt != NULL, 0);
  return opt->step;
}

void
cria_adamw_set_step (CriaAdamW *opt, gint64 step)
{
  g_return_if_fail (opt != NULL);
  opt->step = step;
}

double
cria_adamw_get_lr (CriaAdamW *opt)
{
  g_return_val_if_fail (opt != NULL, 0.0);
  return cria_schedule_lr (&opt->config, opt->step);
}

float *
cria_adamw_get_moment (CriaAdamW *opt, guint i, int which, gsize *n)
{
  g_return_val_if_fail (opt != NULL, NULL);
  g_return_val_if_fail (i < opt->params->len, NULL);
  g_return_val_if_fail (n != NULL, NULL);
  Param *p = &g_array_index (opt->params, Param, i);
  *n = p->n;
  return which == 0 ? p->m : p->v;
}

const char *
cria_adamw_get_name (CriaAdamW *opt, guint i)
{
  g_return_val_if_fail (opt != NULL, NULL);
  g_return_val_if_fail (i < opt->params->len, NULL);
  return g_array_index (opt->params, Param, i).name;
}

void
cria_adamw_step (CriaAdamW *opt, const float *const *grads)
{
  g_return_if_fail (opt != NULL);
  g_return_if_fail (grads != NULL);
  const CriaOptimConfig *c = &opt->config;
  double lr = cria_schedule_lr (c, opt->step);
  opt->step++;
  /* Scalars in double, as PyTorch computes them in Python before the float kernel. */
  double bias1 = 1.0 - pow (c->beta1, (double) opt->step);
  double bias2 = 1.0 - pow (c->beta2, (double) opt->step);
  /* Each scalar is rounded to float once, as PyTorch's kernels receive it. */
  float step_size = (float) (lr / bias1);
  float inv_bias2_sqrt = (float) (1.0 / sqrt (bias2)); /* torch divides by a scalar as a multiply by its reciprocal */
  float b1 = (float) c->beta1, b2 = (float) c->beta2, eps = (float) c->eps;
  float one_b1 = (float) (1.0 - c->beta1), one_b2 = (float) (1.0 - c->beta2);
  for (guint k = 0; k < opt->params->len; k++) {
    Param *p = &g_array_index (opt->params, Param, k);
    const float *g = grads[k];
    float shrink = p->decay ? (float) (1.0 - lr * c->weight_decay) : 1.0f;
    for (gsize i = 0; i < p->n; i++) {
      float x = p->param[i] * shrink;
      p->m[i] = fmaf (one_b1, g[i], p->m[i] * b1);
      p->v[i] = fmaf (one_b2 * g[i], g[i], p->v[i] * b2);
      float denom = sqrtf (p->v[i]) * inv_bias2_sqrt + eps;
      p->param[i] = fmaf (-step_size, p->m[i] / denom, x);
    }
  }
}

double
cria_clip_grad_norm (float *const *grads, const gsize *sizes, guint n, double max_norm)
{
  g_return_val_if_fail (grads != NULL || n == 0, 0.0);
  g_return_val_if_fail (sizes != NULL || n == 0, 0.0);
  double sum = 0.0;
  for (guint k = 0; k < n; k++)
    for (gsize i = 0; i < sizes[k]; i++)
      sum += (double) grads[k][i] * (double) grads[k][i];
  double norm = sqrt (sum);
  if (max_norm > 0 && norm > max_norm) {
    /* torch: clip_coef = max_norm / (total_norm + 1e-6), applied when < 1 */
    float coef = (float) (max_norm / (norm + 1e-6));
    for (guint k = 0; k < n; k++)
      for (gsize i = 0; i < sizes[k]; i++)
        grads[k][i] *= coef;
  }
  return norm;
}
