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

#include "cria-optim-kernels.h"

/* The unit of work of the passes over every parameter: threads take chunks
 * in turn, and the norm sums each chunk's lanes apart and then the chunks in
 * their order, so that the result does not depend on the thread count. */
#define CHUNK CRIA_OPTIM_NORM_CHUNK

typedef struct {
  guint k;
  gsize off, n;
} Chunk;

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
  GArray *chunks; /* Chunk; NULL until a pass needs them */
  guint n_threads;
  GThreadPool *pool; /* n_threads - 1 helpers of the calling thread */
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
  opt->n_threads = 1;
  g_array_set_clear_func (opt->params, (GDestroyNotify) param_clear);
  return opt;
}

void
cria_adamw_free (CriaAdamW *opt)
{
  if (!opt)
    return;
  if (opt->pool)
    g_thread_pool_free (opt->pool, FALSE, TRUE);
  g_clear_pointer (&opt->chunks, g_array_unref);
  g_array_unref (opt->params);
  g_free (opt);
}

guint
cria_adamw_add (CriaAdamW *opt, const char *name, float *param, gsize n, gboolean decay)
{
  g_return_val_if_fail (opt != NULL, G_MAXUINT);
  Param p = { g_strdup (name), param, g_new0 (float, n), g_new0 (float, n), n, decay };
  g_array_append_val (opt->params, p);
  g_clear_pointer (&opt->chunks, g_array_unref);
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
cria_adamw_set_threads (CriaAdamW *opt, guint n_threads)
{
  g_return_if_fail (opt != NULL);
  n_threads = MAX (n_threads, 1);
  if (n_threads == opt->n_threads)
    return;
  if (opt->pool)
    g_thread_pool_free (opt->pool, FALSE, TRUE);
  opt->pool = NULL;
  opt->n_threads = n_threads;
}

/* One pass over the chunks: AdamW's update, the squared sums of the norm
 * (lanes: OPTIM_NORM_LANES per chunk), or the sum of gradients into `sums`
 * (copied over them with `copy`; a NULL gradient is skipped). */
typedef struct {
  CriaAdamW *opt;
  const float *const *grads;
  OptimAdamw s[2]; /* without, with weight decay */
  double *lanes;
  float *const *sums;
  gboolean copy;
  gboolean zero; /* each gradient chunk is zeroed once read */
  gint next;
  guint running;
  GMutex lock;
  GCond done;
} Pass;

static void
pass_run (Pass *j)
{
  GArray *chunks = j->opt->chunks;
  for (;;) {
    guint c = (guint) g_atomic_int_add (&j->next, 1);
    if (c >= chunks->len)
      return;
    const Chunk *ch = &g_array_index (chunks, Chunk, c);
    if (!j->grads[ch->k])
      continue;
    const float *g = j->grads[ch->k] + ch->off;
    if (j->sums) {
      if (j->copy)
        memcpy (j->sums[ch->k] + ch->off, g, ch->n * sizeof (float));
      else
        optim_kernel_add (j->sums[ch->k] + ch->off, g, ch->n);
    } else if (j->lanes) {
      optim_kernel_sumsq (g, ch->n, j->s[0].pre, j->lanes + (gsize) c * OPTIM_NORM_LANES);
    } else {
      Param *p = &g_array_index (j->opt->params, Param, ch->k);
      optim_kernel_adamw (p->param + ch->off, p->m + ch->off, p->v + ch->off, g, ch->n, &j->s[p->decay != 0]);
    }
    if (j->zero) /* while the chunk is in cache */
      memset ((float *) g, 0, ch->n * sizeof (float));
  }
}

static void
pass_help (gpointer data, gpointer user_data)
{
  Pass *j = data;
  pass_run (j);
  g_mutex_lock (&j->lock);
  if (--j->running == 0)
    g_cond_signal (&j->done);
  g_mutex_unlock (&j->lock);
}

static void
pass_go (CriaAdamW *opt, Pass *j)
{
  if (!opt->chunks) {
    opt->chunks = g_array_new (FALSE, FALSE, sizeof (Chunk));
    for (guint k = 0; k < opt->params->len; k++) {
      gsize n = g_array_index (opt->params, Param, k).n;
      for (gsize off = 0; off < n; off += CHUNK) {
        Chunk ch = { k, off, MIN (CHUNK, n - off) };
        g_array_append_val (opt->chunks, ch);
      }
    }
  }
  j->opt = opt;
  guint helpers = MIN (opt->n_threads, MAX (opt->chunks->len, 1)) - 1;
  if (helpers > 0 && !opt->pool)
    opt->pool = g_thread_pool_new (pass_help, NULL, (gint) opt->n_threads - 1, TRUE, NULL);
  g_mutex_init (&j->lock);
  g_cond_init (&j->done);
  j->running = helpers;
  for (guint h = 0; h < helpers; h++)
    g_thread_pool_push (opt->pool, j, NULL);
  pass_run (j);
  g_mutex_lock (&j->lock);
  while (j->running > 0)
    g_cond_wait (&j->done, &j->lock);
  g_mutex_unlock (&j->lock);
  g_mutex_clear (&j->lock);
  g_cond_clear (&j->done);
}

void
cria_adamw_step (CriaAdamW *opt, const float *const *grads)
{
  cria_adamw_step_scaled (opt, grads, 1.0f, 1.0f);
}

void
cria_adamw_next_scalars (CriaAdamW *opt, float pre, float post, CriaAdamwScalars *s)
{
  g_return_if_fail (opt != NULL);
  g_return_if_fail (s != NULL);
  const CriaOptimConfig *c = &opt->config;
  double lr = cria_schedule_lr (c, opt->step);
  opt->step++;
  /* Scalars in double, as PyTorch computes them in Python before the float kernel. */
  double bias1 = 1.0 - pow (c->beta1, (double) opt->step);
  double bias2 = 1.0 - pow (c->beta2, (double) opt->step);
  /* Each scalar is rounded to float once, as PyTorch's kernels receive it. */
  *s = (CriaAdamwScalars){
    .shrink = (float) (1.0 - lr * c->weight_decay),
    .pre = pre,
    .post = post,
    .b1 = (float) c->beta1,
    .b2 = (float) c->beta2,
    .one_b1 = (float) (1.0 - c->beta1),
    .one_b2 = (float) (1.0 - c->beta2),
    /* torch divides by a scalar as a multiply by its reciprocal */
    .inv_bias2_sqrt = (float) (1.0 / sqrt (bias2)),
    .eps = (float) c->eps,
    .step_size = (float) (lr / bias1),
  };
}

static void
step_scaled (CriaAdamW *opt, const float *const *grads, float pre, float post, gboolean zero)
{
  OptimAdamw s;
  cria_adamw_next_scalars (opt, pre, post, &s);
  Pass j = { .grads = grads, .s = { s, s }, .zero = zero };
  j.s[0].shrink = 1.0f; /* no weight decay */
  pass_go (opt, &j);
}

void
cria_adamw_step_scaled (CriaAdamW *opt, const float *const *grads, float pre, float post)
{
  g_return_if_fail (opt != NULL);
  g_return_if_fail (grads != NULL);
  step_scaled (opt, grads, pre, post, FALSE);
}

void
cria_adamw_step_scaled_zero (CriaAdamW *opt, float *const *grads, float pre, float post)
{
  g_return_if_fail (opt != NULL);
  g_return_if_fail (grads != NULL);
  step_scaled (opt, (const float *const *) grads, pre, post, TRUE);
}

void
cria_adamw_sum_grads (CriaAdamW *opt, float *const *sums, float *const *grads, gboolean copy, gboolean zero)
{
  g_return_if_fail (opt != NULL);
  g_return_if_fail (sums != NULL);
  g_return_if_fail (grads != NULL);
  Pass j = { .grads = (const float *const *) grads, .sums = sums, .copy = copy, .zero = zero };
  pass_go (opt, &j);
}

double
cria_adamw_grad_norm (CriaAdamW *opt, const float *const *grads, float pre)
{
  g_return_val_if_fail (opt != NULL, 0.0);
  g_return_val_if_fail (grads != NULL, 0.0);
  gsize n = 0;
  for (guint k = 0; k < opt->params->len; k++)
    n += (g_array_index (opt->params, Param, k).n + CHUNK - 1) / CHUNK;
  g_autofree double *lanes = g_new0 (double, n *OPTIM_NORM_LANES);
  Pass j = { .grads = grads, .s = { { .pre = pre } }, .lanes = lanes };
  pass_go (opt, &j);
  double sum = 0.0;
  for (gsize i = 0; i < n * OPTIM_NORM_LANES; i++)
    sum += lanes[i];
  return sqrt (sum);
}

float
cria_clip_coef (double norm, double max_norm)
{
  /* torch: clip_coef = max_norm / (total_norm + 1e-6), applied when < 1 */
  return max_norm > 0 && norm > max_norm ? (float) (max_norm / (norm + 1e-6)) : 1.0f;
}

double
cria_clip_grad_norm (float *const *grads, const gsize *sizes, guint n, double max_norm)
{
  g_return_val_if_fail (grads != NULL || n == 0, 0.0);
  g_return_val_if_fail (sizes != NULL || n == 0, 0.0);
  /* in cria_adamw_grad_norm's order */
  double sum = 0.0;
  for (guint k = 0; k < n; k++)
    for (gsize off = 0; off < sizes[k]; off += CHUNK) {
      double lanes[OPTIM_NORM_LANES] = { 0 };
      optim_kernel_sumsq (grads[k] + off, MIN (CHUNK, sizes[k] - off), 1.0f, lanes);
      for (int l = 0; l < OPTIM_NORM_LANES; l++)
        sum += lanes[l];
    }
  double norm = sqrt (sum);
  float coef = cria_clip_coef (norm, max_norm);
  if (coef != 1.0f)
    for (guint k = 0; k < n; k++)
      for (gsize i = 0; i < sizes[k]; i++)
        grads[k][i] *= coef;
  return norm;
}
