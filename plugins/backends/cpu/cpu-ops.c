/* cpu-ops.c: the element-wise, normalization, position and shape ops of the
 * cpu backend, each forward beside its backward. Row-wise ops run their rows
 * on the thread pool; the task's context is the node. Backward kernels add
 * into the gradients of their sources (they may have several consumers). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

#define ROW_GRAIN 8
/* and at least this many elements a task: a decoding step's rows (a few
 * tokens) cost more to hand over to a thread than to compute */
#define ROW_GRAIN_ELEMENTS 16384

static gint64
last_dim (const CriaNode *n)
{
  return n->shape[n->n_dims - 1];
}

static gint64
row_grain (const CriaNode *n)
{
  return MAX (ROW_GRAIN, ROW_GRAIN_ELEMENTS / MAX (last_dim (n), 1));
}

static void
run_rows (gpointer be, CriaNode *n, CpuTaskFunc fn)
{
  CpuBackend *cpu = be;
  cpu_pool_run (cpu->pool, cpu_numel (n) / last_dim (n), row_grain (n), fn, n);
}

/* Element-wise ops over whole tensors, on the pool, this many elements a
 * task: enough to be worth a hand-off, and a multiple of every vector width,
 * so that each element takes the path it takes in one pass (the same floats
 * at any thread count). */
#define ELEM_GRAIN 65536

static void
run_elems (gpointer be, gint64 count, CpuTaskFunc fn, gpointer ctx)
{
  CpuBackend *cpu = be;
  cpu_pool_run (cpu->pool, count, ELEM_GRAIN, fn, ctx);
}

/* The kernels of a row-wise op: its tasks over the rows; backward only when
 * the input wants a gradient. */
#define DEFINE_ROW_KERNELS(NAME)                                                                                       \
  static gboolean NAME##_forward (gpointer be, CriaNode *n, GError **error)                                            \
  {                                                                                                                    \
    run_rows (be, n, NAME##_fwd_task);                                                                                 \
    return TRUE;                                                                                                       \
  }                                                                                                                    \
  static gboolean NAME##_backward (gpointer be, CriaNode *n, GError **error)                                           \
  {                                                                                                                    \
    if (n->src[0]->grad)                                                                                               \
      run_rows (be, n, NAME##_bwd_task);                                                                               \
    return NAME##_after_backward (n);                                                                                  \
  }

/* ---- embedding: y[t] = table[ids[t]];  dtable[ids[t]] += dy[t] ---------- */

static gboolean
check_ids (CriaNode *n, GError **error)
{
  const gint32 *ids = n->src[0]->value->data;
  gint64 V = n->src[1]->shape[0];
  for (gint64 t = 0, count = cpu_numel (n->src[0]); t < count; t++)
    if (ids[t] < 0 || ids[t] >= V) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "embedding: id %d at position %" G_GINT64_FORMAT " is outside the vocabulary of %" G_GINT64_FORMAT,
                   ids[t], t, V);
      return FALSE;
    }
  return TRUE;
}

static gboolean
embedding_forward (gpointer be, CriaNode *n, GError **error)
{
  if (!check_ids (n, error))
    return FALSE;
  const gint32 *ids = n->src[0]->value->data;
  CriaTensor *table = n->src[1]->value;
  gint64 D = last_dim (n);
  float *y = cpu_f32 (n->value);
  for (gint64 t = 0, count = cpu_numel (n->src[0]); t < count; t++) {
    const float *row = cpu_row_f32 (table, ids[t] * D, D, y + t * D);
    if (row != y + t * D)
      memcpy (y + t * D, row, (gsize) D * sizeof (float));
  }
  return TRUE;
}

static gboolean
embedding_backward (gpointer be, CriaNode *n, GError **error)
{
  CriaNode *table = n->src[1];
  if (!table->grad)
    return TRUE;
  const gint32 *ids = n->src[0]->value->data;
  gint64 D = last_dim (n);
  const float *dy = cpu_f32 (n->grad);
  float *dt = cpu_f32 (table->grad);
  for (gint64 t = 0, count = cpu_numel (n->src[0]); t < count; t++)
    for (gint64 d = 0; d < D; d++)
      dt[ids[t] * D + d] += dy[t * D + d];
  return TRUE;
}

/* ---- layernorm: y = (x - mu) r w + b, r = 1/sqrt(var + eps);
 *      rmsnorm:   y = x r w, r = 1/sqrt(mean(x^2) + eps): the same with mu = 0
 * and no bias. With xh = (x - mu) r and g = dy w:
 *   dx = r (g - mean(g) - xh mean(g xh))   (rmsnorm: without mean(g))
 *   dw += dy xh;  db += dy  (summed over rows afterwards, serially) ------------ */

/* Returns r of one row and sets its mean (0 for rmsnorm). */
static float
norm_stats (const CriaNode *n, const float *x, gint64 D, float *mu)
{
  float m = 0, var = 0;
  if (n->op == CRIA_OP_LAYERNORM) {
    for (gint64 i = 0; i < D; i++)
      m += x[i];
    m /= D;
  }
  for (gint64 i = 0; i < D; i++)
    var += (x[i] - m) * (x[i] - m);
  *mu = m;
  return 1.0f / sqrtf (var / D + n->fparam[0]);
}

static void
norm_fwd_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  CriaNode *n = data;
  gint64 D = last_dim (n);
  const float *x = cpu_f32 (n->src[0]->value), *w = cpu_f32 (n->src[1]->value);
  const float *b = n->op == CRIA_OP_LAYERNORM ? cpu_f32 (n->src[2]->value) : NULL;
  float *y = cpu_f32 (n->value);
  for (gint64 r = begin; r < end; r++) {
    float mu, rs = norm_stats (n, x + r * D, D, &mu);
    for (gint64 i = 0; i < D; i++)
      y[r * D + i] = (x[r * D + i] - mu) * rs * w[i] + (b ? b[i] : 0.0f);
  }
}

static void
norm_bwd_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  CriaNode *n = data;
  gint64 D = last_dim (n);
  const float *x = cpu_f32 (n->src[0]->value), *w = cpu_f32 (n->src[1]->value), *dy = cpu_f32 (n->grad);
  float *dx = cpu_f32 (n->src[0]->grad);
  gboolean centered = n->op == CRIA_OP_LAYERNORM;
  for (gint64 r = begin; r < end; r++) {
    const float *xr = x + r * D, *g = dy + r * D;
    float mu, rs = norm_stats (n, xr, D, &mu);
    float mg = 0, mgx = 0;
    for (gint64 i = 0; i < D; i++) {
      mg += g[i] * w[i];
      mgx += g[i] * w[i] * (xr[i] - mu) * rs;
    }
    mg = centered ? mg / D : 0.0f;
    mgx /= D;
    for (gint64 i = 0; i < D; i++)
      dx[r * D + i] += rs * (g[i] * w[i] - mg - (xr[i] - mu) * rs * mgx);
  }
}

static gboolean
norm_after_backward (CriaNode *n)
{
  CriaNode *w = n->src[1], *b = n->op == CRIA_OP_LAYERNORM ? n->src[2] : NULL;
  if (!w->grad && !(b && b->grad))
    return TRUE;
  gint64 D = last_dim (n), rows = cpu_numel (n) / D;
  const float *x = cpu_f32 (n->src[0]->value), *dy = cpu_f32 (n->grad);
  for (gint64 r = 0; r < rows; r++) {
    const float *xr = x + r * D, *g = dy + r * D;
    float mu, rs = norm_stats (n, xr, D, &mu);
    for (gint64 i = 0; i < D; i++) {
      if (w->grad)
        cpu_f32 (w->grad)[i] += g[i] * (xr[i] - mu) * rs;
      if (b && b->grad)
        cpu_f32 (b->grad)[i] += g[i];
    }
  }
  return TRUE;
}

DEFINE_ROW_KERNELS (norm)

/* ---- rope (rotate_half): for i < D/2, a = pos f_i,
 * y_i = x_i cos a - x_{i+D/2} sin a;  y_{i+D/2} = x_{i+D/2} cos a + x_i sin a.
 * The backward is the rotation by -a. Rows are (b, t, h). -------------------- */

#define ROPE_CACHE 256 /* half the head size, at most, for the cache of angles */

static void
rope_rotate (CriaNode *n, gint64 begin, gint64 end, const float *x, float *y, float sign, gboolean add)
{
  gint64 H = n->shape[2], D = n->shape[3], half = D / 2;
  const gint32 *pos = n->src[1]->value->data;
  const float *f = cpu_f32 (n->src[2]->value);
  /* the H heads of a position share its angles: cosf and sinf once for them */
  float cos_p[ROPE_CACHE], sin_p[ROPE_CACHE];
  gboolean cache = half <= ROPE_CACHE;
  gint64 cached = -1;
  for (gint64 r = begin; r < end; r++) {
    float p = (float) pos[r / H];
    const float *xr = x + r * D;
    float *yr = y + r * D;
    if (cache && r / H != cached) {
      for (gint64 i = 0; i < half; i++) {
        cos_p[i] = cosf (p * f[i]);
        sin_p[i] = sinf (p * f[i]);
      }
      cached = r / H;
    }
    for (gint64 i = 0; i < half; i++) {
      float a = p * f[i], c = cache ? cos_p[i] : cosf (a), s = sign * (cache ? sin_p[i] : sinf (a));
      float lo = xr[i] * c - xr[i + half] * s, hi = xr[i + half] * c + xr[i] * s;
      yr[i] = add ? yr[i] + lo : lo;
      yr[i + half] = add ? yr[i + half] + hi : hi;
    }
  }
}

static void
rope_fwd_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  CriaNode *n = data;
  rope_rotate (n, begin, end, cpu_f32 (n->src[0]->value), cpu_f32 (n->value), 1.0f, FALSE);
}

static void
rope_bwd_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  CriaNode *n = data;
  rope_rotate (n, begin, end, cpu_f32 (n->grad), cpu_f32 (n->src[0]->grad), -1.0f, TRUE);
}

#define rope_after_backward(n) TRUE
DEFINE_ROW_KERNELS (rope)

/* ---- unary activations: cpu-vmath.c (tanh-GELU as GPT-2, SiLU, SwiGLU) ---- */

static const CpuVmath *
vmath (gpointer be)
{
  return &cpu_vmath[((CpuBackend *) be)->isa];
}

/* Rows of an op whose kernels need the backend's vector routines: the
 * task's context carries the backend beside the node. */
typedef struct {
  const CpuVmath *vm;
  CriaNode *n;
  gboolean backward;
} VmTask;

static void
run_vm_rows (gpointer be, CriaNode *n, gboolean backward, CpuTaskFunc fn)
{
  CpuBackend *cpu = be;
  VmTask t = { vmath (be), n, backward };
  cpu_pool_run (cpu->pool, cpu_numel (n) / last_dim (n), row_grain (n), fn, &t);
}

static void
unary_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  gint64 D = last_dim (n), o = begin * D, count = (end - begin) * D;
  const float *x = cpu_f32 (n->src[0]->value) + o;
  gboolean gelu = n->op == CRIA_OP_GELU;
  if (t->backward)
    (gelu ? t->vm->gelu_grad : t->vm->silu_grad) (x, cpu_f32 (n->grad) + o, cpu_f32 (n->src[0]->grad) + o, count);
  else
    (gelu ? t->vm->gelu : t->vm->silu) (x, cpu_f32 (n->value) + o, count);
}

static gboolean
unary_forward (gpointer be, CriaNode *n, GError **error)
{
  run_vm_rows (be, n, FALSE, unary_task);
  return TRUE;
}

static gboolean
unary_backward (gpointer be, CriaNode *n, GError **error)
{
  if (n->src[0]->grad)
    run_vm_rows (be, n, TRUE, unary_task);
  return TRUE;
}

/* swiglu: y = silu(g) u;  dg += dy u silu'(g);  du += dy silu(g) */
static void
swiglu_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  const float *g = cpu_f32 (n->src[0]->value) + begin, *u = cpu_f32 (n->src[1]->value) + begin;
  if (!t->backward) {
    t->vm->swiglu (g, u, cpu_f32 (n->value) + begin, end - begin);
    return;
  }
  float *dg = n->src[0]->grad ? cpu_f32 (n->src[0]->grad) + begin : NULL;
  float *du = n->src[1]->grad ? cpu_f32 (n->src[1]->grad) + begin : NULL;
  t->vm->swiglu_grad (g, u, cpu_f32 (n->grad) + begin, dg, du, end - begin);
}

static gboolean
swiglu_forward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { vmath (be), n, FALSE };
  run_elems (be, cpu_numel (n), swiglu_task, &t);
  return TRUE;
}

static gboolean
swiglu_backward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { vmath (be), n, TRUE };
  if (n->src[0]->grad || n->src[1]->grad)
    run_elems (be, cpu_numel (n), swiglu_task, &t);
  return TRUE;
}

/* softmax over the last dim: y = e^(x - max) / sum;  dx += y (dy - sum(dy y)) */
static void
softmax_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  gint64 D = last_dim (n);
  for (gint64 r = begin; r < end && !t->backward; r++) {
    const float *x = cpu_f32 (n->src[0]->value) + r * D;
    float *y = cpu_f32 (n->value) + r * D;
    float s = t->vm->exp_sum (x, t->vm->max (x, D), y, D);
    for (gint64 i = 0; i < D; i++)
      y[i] /= s;
  }
  for (gint64 r = begin; r < end && t->backward; r++) {
    const float *y = cpu_f32 (n->value) + r * D, *dy = cpu_f32 (n->grad) + r * D;
    float *dx = cpu_f32 (n->src[0]->grad) + r * D;
    float s = 0;
    for (gint64 i = 0; i < D; i++)
      s += dy[i] * y[i];
    for (gint64 i = 0; i < D; i++)
      dx[i] += y[i] * (dy[i] - s);
  }
}

static gboolean
softmax_forward (gpointer be, CriaNode *n, GError **error)
{
  run_vm_rows (be, n, FALSE, softmax_task);
  return TRUE;
}

static gboolean
softmax_backward (gpointer be, CriaNode *n, GError **error)
{
  if (n->src[0]->grad)
    run_vm_rows (be, n, TRUE, softmax_task);
  return TRUE;
}

/* ---- add, mul (b broadcast over a's leading dims), scale --------------------- */

/* add: y = a + b;  da += dy;  db += sum dy.   mul: y = a b;  da += dy b;  db += sum dy a
 * On the pool: y and da by runs of elements, a row's worth (b repeats every
 * nb, na is a multiple: one division per run); db by columns, each summed over the
 * rows in order, so the same floats whatever the thread count. */
typedef struct {
  CriaNode *n;
  const float *b; /* b in f32 */
  gint64 nb, rows;
  gboolean backward;
} Binary;

/* y and da over elements [begin, end), a run of each row at a time */
CPU_VECTORIZED static void
binary_elems_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Binary *t = data;
  CriaNode *n = t->n;
  const float *a = cpu_f32 (n->src[0]->value), *b = t->b;
  const float *dy = t->backward ? cpu_f32 (n->grad) : NULL;
  float *y = t->backward ? cpu_f32 (n->src[0]->grad) : cpu_f32 (n->value);
  gboolean add = n->op == CRIA_OP_ADD;
  gint64 nb = t->nb;
  for (gint64 i = begin; i < end;) {
    gint64 r = i / nb * nb, j0 = i - r, j1 = MIN (nb, end - r);
    if (!t->backward && add)
      for (gint64 j = j0; j < j1; j++)
        y[r + j] = a[r + j] + b[j];
    else if (!t->backward)
      for (gint64 j = j0; j < j1; j++)
        y[r + j] = a[r + j] * b[j];
    else if (add)
      for (gint64 j = j0; j < j1; j++)
        y[r + j] += dy[r + j];
    else
      for (gint64 j = j0; j < j1; j++)
        y[r + j] += dy[r + j] * b[j];
    i = r + j1;
  }
}

CPU_VECTORIZED static void
binary_cols_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Binary *t = data;
  CriaNode *n = t->n;
  const float *a = cpu_f32 (n->src[0]->value), *dy = cpu_f32 (n->grad);
  float *db = cpu_f32 (n->src[1]->grad);
  gboolean add = n->op == CRIA_OP_ADD;
  gint64 nb = t->nb;
  for (gint64 r = 0; r < t->rows * nb; r += nb) {
    if (add)
      for (gint64 j = begin; j < end; j++)
        db[j] += dy[r + j];
    else
      for (gint64 j = begin; j < end; j++)
        db[j] += dy[r + j] * a[r + j];
  }
}

static gboolean
binary_run (gpointer be, CriaNode *n, gboolean backward)
{
  CpuBackend *cpu = be;
  CriaTensor *bt = n->src[1]->value;
  gint64 nb = cpu_numel (n->src[1]), rows = cpu_numel (n) / nb;
  g_autofree float *bconv = bt->dtype != CRIA_DTYPE_F32 ? g_new (float, nb) : NULL;
  Binary t = { n, cpu_row_f32 (bt, 0, nb, bconv), nb, rows, backward };
  if (!backward || n->src[0]->grad)
    run_elems (be, rows * nb, binary_elems_task, &t);
  if (backward && n->src[1]->grad)
    cpu_pool_run (cpu->pool, nb, MAX (16, 16384 / MAX (rows, 1)), binary_cols_task, &t);
  return TRUE;
}

static gboolean
binary_forward (gpointer be, CriaNode *n, GError **error)
{
  return binary_run (be, n, FALSE);
}

static gboolean
binary_backward (gpointer be, CriaNode *n, GError **error)
{
  return binary_run (be, n, TRUE);
}

/* y = s a;  da += s dy */
CPU_VECTORIZED static void
scale_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  float s = n->fparam[0];
  if (!t->backward) {
    const float *a = cpu_f32 (n->src[0]->value);
    float *y = cpu_f32 (n->value);
    for (gint64 i = begin; i < end; i++)
      y[i] = s * a[i];
    return;
  }
  float *da = cpu_f32 (n->src[0]->grad);
  const float *dy = cpu_f32 (n->grad);
  for (gint64 i = begin; i < end; i++)
    da[i] += s * dy[i];
}

static gboolean
scale_forward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, FALSE };
  run_elems (be, cpu_numel (n), scale_task, &t);
  return TRUE;
}

static gboolean
scale_backward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, TRUE };
  if (n->src[0]->grad)
    run_elems (be, cpu_numel (n), scale_task, &t);
  return TRUE;
}

/* ---- dropout: keep with probability 1 - p, y = x / (1 - p); the mask is a
 * hash of (seed, index), so backward recomputes it instead of storing it. ---- */

static inline gboolean
dropout_keep (guint64 seed, gint64 i, float p)
{
  guint64 z = seed + 0x9e3779b97f4a7c15ull * (guint64) (i + 1); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float) (z >> 40) * (1.0f / 16777216.0f) >= p;
}

static void
dropout_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  gboolean backward = t->backward;
  float p = n->fparam[0], k = 1.0f / (1.0f - p);
  guint64 seed = (guint64) n->iparam[0];
  const float *x = cpu_f32 (backward ? n->grad : n->src[0]->value);
  float *y = cpu_f32 (backward ? n->src[0]->grad : n->value);
  for (gint64 i = begin; i < end; i++) {
    float v = dropout_keep (seed, i, p) ? x[i] * k : 0.0f;
    y[i] = backward ? y[i] + v : v;
  }
}

static gboolean
dropout_forward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, FALSE };
  run_elems (be, cpu_numel (n), dropout_task, &t);
  return TRUE;
}

static gboolean
dropout_backward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, TRUE };
  if (n->src[0]->grad)
    run_elems (be, cpu_numel (n), dropout_task, &t);
  return TRUE;
}

/* ---- reshape, permute, concat, slice: moves, whose backward moves back ------ */

static void
reshape_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const VmTask *t = data;
  CriaNode *n = t->n;
  if (!t->backward) {
    memcpy (cpu_f32 (n->value) + begin, cpu_f32 (n->src[0]->value) + begin, (gsize) (end - begin) * sizeof (float));
    return;
  }
  float *da = cpu_f32 (n->src[0]->grad);
  const float *dy = cpu_f32 (n->grad);
  for (gint64 i = begin; i < end; i++)
    da[i] += dy[i];
}

static gboolean
reshape_forward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, FALSE };
  run_elems (be, cpu_numel (n), reshape_task, &t);
  return TRUE;
}

static gboolean
reshape_backward (gpointer be, CriaNode *n, GError **error)
{
  VmTask t = { NULL, n, TRUE };
  if (n->src[0]->grad)
    run_elems (be, cpu_numel (n), reshape_task, &t);
  return TRUE;
}

/* y[o0,o1,o2,o3] = x[...] with input dim perm[i] = output index o_i */
static void
permute_run (CriaNode *n, const float *src, float *dst, gboolean backward)
{
  const CriaNode *a = n->src[0];
  gint64 in_stride[CRIA_MAX_DIMS] = { 0 }, s = 1;
  for (int d = a->n_dims - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= a->shape[d];
  }
  gint64 st[CRIA_MAX_DIMS] = { 0, 0, 0, 0 };
  for (int i = 0; i < a->n_dims; i++)
    st[i] = in_stride[n->iparam[i]];
  gint64 o = 0;
  for (gint64 i0 = 0; i0 < n->shape[0]; i0++)
    for (gint64 i1 = 0; i1 < n->shape[1]; i1++)
      for (gint64 i2 = 0; i2 < n->shape[2]; i2++)
        for (gint64 i3 = 0; i3 < n->shape[3]; i3++, o++) {
          gint64 in = i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
          if (backward)
            dst[in] += src[o];
          else
            dst[o] = src[in];
        }
}

static gboolean
permute_forward (gpointer be, CriaNode *n, GError **error)
{
  permute_run (n, cpu_f32 (n->src[0]->value), cpu_f32 (n->value), FALSE);
  return TRUE;
}

static gboolean
permute_backward (gpointer be, CriaNode *n, GError **error)
{
  if (n->src[0]->grad)
    permute_run (n, cpu_f32 (n->grad), cpu_f32 (n->src[0]->grad), TRUE);
  return TRUE;
}

/* Elements after dim `dim` (exclusive) and rows before it. */
static void
split_dims (const CriaNode *n, int dim, gint64 *outer, gint64 *inner)
{
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < dim; d++)
    *outer *= n->shape[d];
  for (int d = dim + 1; d < n->n_dims; d++)
    *inner *= n->shape[d];
}

/* Copies a window of `len` x inner of each outer row between a part and the
 * whole (concat: the parts are the sources; slice: the part is the output). */
CPU_VECTORIZED static void
window_move (gint64 outer, gint64 part_row, gint64 whole_row, gint64 offset, float *part, float *whole,
             gboolean to_whole, gboolean add)
{
  for (gint64 r = 0; r < outer; r++) {
    float *p = part + r * part_row, *w = whole + r * whole_row + offset;
    for (gint64 i = 0; i < part_row; i++) {
      if (to_whole)
        w[i] = add ? w[i] + p[i] : p[i];
      else
        p[i] = add ? p[i] + w[i] : w[i];
    }
  }
}

static gboolean
concat_run (CriaNode *n, gboolean backward)
{
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 whole_row = n->shape[dim] * inner, offset = 0;
  for (int s = 0; s < 2; s++) {
    CriaNode *part = n->src[s];
    gint64 part_row = part->shape[dim] * inner;
    /* A first part that already is the output's prefix (a KV cache appended
     * in place: CriaModelGraph.cached_k) is not copied onto itself. */
    if (!backward && s == 0 && outer == 1 && part->value->data == n->value->data) {
      offset += part_row;
      continue;
    }
    if (!backward)
      window_move (outer, part_row, whole_row, offset, cpu_f32 (part->value), cpu_f32 (n->value), TRUE, FALSE);
    else if (part->grad)
      window_move (outer, part_row, whole_row, offset, cpu_f32 (part->grad), cpu_f32 (n->grad), FALSE, TRUE);
    offset += part_row;
  }
  return TRUE;
}

static gboolean
concat_forward (gpointer be, CriaNode *n, GError **error)
{
  return concat_run (n, FALSE);
}

static gboolean
concat_backward (gpointer be, CriaNode *n, GError **error)
{
  return concat_run (n, TRUE);
}

static gboolean
slice_run (CriaNode *n, gboolean backward)
{
  CriaNode *a = n->src[0];
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 part_row = n->shape[dim] * inner, whole_row = a->shape[dim] * inner, offset = n->iparam[1] * inner;
  if (!backward)
    window_move (outer, part_row, whole_row, offset, cpu_f32 (n->value), cpu_f32 (a->value), FALSE, FALSE);
  else if (a->grad)
    window_move (outer, part_row, whole_row, offset, cpu_f32 (n->grad), cpu_f32 (a->grad), TRUE, TRUE);
  return TRUE;
}

static gboolean
slice_forward (gpointer be, CriaNode *n, GError **error)
{
  return slice_run (n, FALSE);
}

static gboolean
slice_backward (gpointer be, CriaNode *n, GError **error)
{
  return slice_run (n, TRUE);
}

const CriaKernel cpu_elementwise_kernels[] = {
  [CRIA_OP_MATMUL] = { cpu_matmul_forward, cpu_matmul_backward },
  [CRIA_OP_EMBEDDING] = { embedding_forward, embedding_backward },
  [CRIA_OP_LAYERNORM] = { norm_forward, norm_backward },
  [CRIA_OP_RMSNORM] = { norm_forward, norm_backward },
  [CRIA_OP_ROPE] = { rope_forward, rope_backward },
  [CRIA_OP_ATTENTION] = { cpu_attention_forward, cpu_attention_backward },
  [CRIA_OP_GELU] = { unary_forward, unary_backward },
  [CRIA_OP_SILU] = { unary_forward, unary_backward },
  [CRIA_OP_SWIGLU] = { swiglu_forward, swiglu_backward },
  [CRIA_OP_SOFTMAX] = { softmax_forward, softmax_backward },
  [CRIA_OP_ADD] = { binary_forward, binary_backward },
  [CRIA_OP_MUL] = { binary_forward, binary_backward },
  [CRIA_OP_SCALE] = { scale_forward, scale_backward },
  [CRIA_OP_RESHAPE] = { reshape_forward, reshape_backward },
  [CRIA_OP_PERMUTE] = { permute_forward, permute_backward },
  [CRIA_OP_CONCAT] = { concat_forward, concat_backward },
  [CRIA_OP_SLICE] = { slice_forward, slice_backward },
  [CRIA_OP_DROPOUT] = { dropout_forward, dropout_backward },
  [CRIA_OP_LM_HEAD_CE] = { cpu_lm_head_ce_forward, cpu_lm_head_ce_backward },
  /* no backward: only frozen params are nf4, so no gradient reaches one */
  [CRIA_OP_DEQUANTIZE] = { cpu_dequantize_forward, NULL },
};
/* The table reaches the last op: a new op needs a kernel here (or a smaller
 * n_kernels in cpu.c, so that graphs using it fail at plan time). */
G_STATIC_ASSERT (G_N_ELEMENTS (cpu_elementwise_kernels) == CRIA_N_OPS);
