/* cuda-rows.cu: the row-wise kernels of the cuda backend: layernorm and
 * rmsnorm, rope and softmax. How a kernel runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- layernorm and rmsnorm (cpu-ops.c): y = (x - mu) r w + b with
 * r = 1/sqrt(var + eps); rmsnorm is the same with mu = 0 and no bias. With
 * xh = (x - mu) r and g = dy w:
 *   dx += r (g - mean(g) - xh mean(g xh))   (rmsnorm: without mean(g))
 *   dw += dy xh;  db += dy, summed over the rows in order, one thread a column.
 * Each row's mu and r go to scratch first, computed as norm_stats does. ---- */

__global__ static void
norm_stats_k (Val x, gint64 rows, gint64 D, int centered, float eps, float *mu, float *rs)
{
  ROW_LOOP (r, rows)
  {
    float m = 0;
    if (centered) {
      float s = 0;
      for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
        s += ld (x, r * D + i);
      m = block_reduce (s, false) / (float) D;
    }
    float v = 0;
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x) {
      float c = ld (x, r * D + i) - m;
      v += c * c;
    }
    v = block_reduce (v, false);
    if (threadIdx.x == 0) {
      mu[r] = m;
      rs[r] = 1.0f / sqrtf (v / (float) D + eps);
    }
  }
}

__global__ static void
norm_fwd_k (Val x, const float *w, const float *b, const float *mu, const float *rs, Val y, gint64 rows, gint64 D)
{
  GRID_LOOP (e, rows * D)
  {
    gint64 r = e / D, i = e % D;
    st (y, e, (ld (x, e) - mu[r]) * rs[r] * w[i] + (b ? b[i] : 0.0f));
  }
}

__global__ static void
norm_dx_k (Val x, const float *w, const float *dy, const float *mu, const float *rs, float *dx, gint64 rows, gint64 D,
           int centered)
{
  ROW_LOOP (r, rows)
  {
    const float *g = dy + r * D;
    float m = mu[r], k = rs[r], mg = 0, mgx = 0;
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x) {
      mg += g[i] * w[i];
      mgx += g[i] * w[i] * (ld (x, r * D + i) - m) * k;
    }
    mg = block_reduce (mg, false);
    mgx = block_reduce (mgx, false);
    mg = centered ? mg / (float) D : 0.0f;
    mgx /= (float) D;
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      dx[r * D + i] += k * (g[i] * w[i] - mg - (ld (x, r * D + i) - m) * k * mgx);
  }
}

__global__ static void
norm_dw_k (Val x, const float *dy, const float *mu, const float *rs, float *dw, float *db, gint64 rows, gint64 D)
{
  GRID_LOOP (i, D)
  {
    float sw = dw ? dw[i] : 0.0f, sb = db ? db[i] : 0.0f;
    for (gint64 r = 0; r < rows; r++) {
      float g = dy[r * D + i];
      sw += g * (ld (x, r * D + i) - mu[r]) * rs[r];
      sb += g;
    }
    if (dw)
      dw[i] = sw;
    if (db)
      db[i] = sb;
  }
}

/* Queues the statistics of every row; NULL with an error when the scratch
 * cannot be had. */
static float *
norm_stats (CudaBackend *be, CriaNode *n, GError **error)
{
  gint64 D = last_dim (n), rows = numel (n) / D;
  float *mu = (float *) cuda_scratch (be, (size_t) (2 * rows) * sizeof (float), error);
  if (!mu)
    return NULL;
  norm_stats_k<<<blocks_for_rows (rows), THREADS, 0, be->stream>>> (
      val (n->src[0]->value), rows, D, n->op == CRIA_OP_LAYERNORM, n->fparam[0], mu, mu + rows);
  return launched (n, error) ? mu : NULL;
}

gboolean
norm_forward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  gint64 D = last_dim (n), rows = numel (n) / D;
  float *mu = norm_stats (be, n, error);
  if (!mu)
    return FALSE;
  const float *b = n->op == CRIA_OP_LAYERNORM ? f32 (n->src[2]->value) : NULL;
  norm_fwd_k<<<blocks_for (rows * D), THREADS, 0, be->stream>>> (val (n->src[0]->value), f32 (n->src[1]->value), b,
                                                                   mu, mu + rows, val (n->value), rows, D);
  return launched (n, error);
}

gboolean
norm_backward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  gint64 D = last_dim (n), rows = numel (n) / D;
  float *dw = grad_or_null (n->src[1]), *db = n->op == CRIA_OP_LAYERNORM ? grad_or_null (n->src[2]) : NULL;
  if (!n->src[0]->grad && !dw && !db)
    return TRUE;
  float *mu = norm_stats (be, n, error);
  if (!mu)
    return FALSE;
  Val x = val (n->src[0]->value);
  const float *dy = f32 (n->grad);
  if (n->src[0]->grad)
    norm_dx_k<<<blocks_for_rows (rows), THREADS, 0, be->stream>>> (x, f32 (n->src[1]->value), dy, mu, mu + rows,
                                                                   f32 (n->src[0]->grad), rows, D,
                                                                   n->op == CRIA_OP_LAYERNORM);
  if (dw || db)
    norm_dw_k<<<blocks_for (D), THREADS, 0, be->stream>>> (x, dy, mu, mu + rows, dw, db, rows, D);
  return launched (n, error);
}

/* ---- rope (rotate_half), as cpu-ops.c: for i < D/2, a = pos f_i,
 * y_i = x_i cos a - x_{i+D/2} sin a;  y_{i+D/2} = x_{i+D/2} cos a + x_i sin a;
 * the backward is the rotation by -a, added. Rows are (b, t, h): the
 * position of row r is pos[r / H]. The model's scaling (linear, dynamic
 * NTK, YaRN, llama3) is all in inv_freq: one kernel serves every variant. */

__global__ static void
rope_k (Val x, Val y, const gint32 *pos, const float *f, gint64 rows, gint64 H, gint64 half, float sign, int add)
{
  GRID_LOOP (e, rows * half)
  {
    gint64 r = e / half, i = e % half, at = r * 2 * half + i;
    float p = (float) pos[r / H];
    float a = p * f[i], c = cosf (a), s = sign * sinf (a);
    float x0 = ld (x, at), x1 = ld (x, at + half);
    float lo = x0 * c - x1 * s, hi = x1 * c + x0 * s;
    st (y, at, add ? ld (y, at) + lo : lo);
    st (y, at + half, add ? ld (y, at + half) + hi : hi);
  }
}

static gboolean
rope_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  gint64 H = n->shape[2], half = n->shape[3] / 2, rows = numel (n) / n->shape[3];
  Val x = val (backward ? n->grad : n->src[0]->value), y = val (backward ? n->src[0]->grad : n->value);
  rope_k<<<blocks_for (rows * half), THREADS, 0, be->stream>>> (x, y, i32 (n->src[1]->value), f32 (n->src[2]->value),
                                                                  rows, H, half, backward ? -1.0f : 1.0f, backward);
  return launched (n, error);
}

gboolean
rope_forward (gpointer self, CriaNode *n, GError **error)
{
  return rope_run (be_of (self), n, FALSE, error);
}

gboolean
rope_backward (gpointer self, CriaNode *n, GError **error)
{
  return n->src[0]->grad ? rope_run (be_of (self), n, TRUE, error) : TRUE;
}

/* ---- softmax over the last dim: y = e^(x - max) / sum;  dx += y (dy - sum(dy y)) */

/* the exponentials are computed again for the output rather than kept in
 * it: a bf16 y would round them before the division */
__global__ static void
softmax_fwd_k (Val x, Val y, gint64 rows, gint64 D)
{
  ROW_LOOP (r, rows)
  {
    float m = -INFINITY, s = 0;
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      m = fmaxf (m, ld (x, r * D + i));
    m = block_reduce (m, true);
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      s += expf (ld (x, r * D + i) - m);
    s = block_reduce (s, false);
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      st (y, r * D + i, expf (ld (x, r * D + i) - m) / s);
  }
}

__global__ static void
softmax_bwd_k (Val y, const float *dy, float *dx, gint64 rows, gint64 D)
{
  ROW_LOOP (r, rows)
  {
    const float *g = dy + r * D;
    float s = 0;
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      s += g[i] * ld (y, r * D + i);
    s = block_reduce (s, false);
    for (gint64 i = threadIdx.x; i < D; i += blockDim.x)
      dx[r * D + i] += ld (y, r * D + i) * (g[i] - s);
  }
}

gboolean
softmax_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 D = last_dim (n), rows = numel (n) / D;
  softmax_fwd_k<<<blocks_for_rows (rows), THREADS, 0, be_of (self)->stream>>> (val (n->src[0]->value), val (n->value),
                                                                                 rows, D);
  return launched (n, error);
}

gboolean
softmax_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 D = last_dim (n), rows = numel (n) / D;
  softmax_bwd_k<<<blocks_for_rows (rows), THREADS, 0, be_of (self)->stream>>> (val (n->value), f32 (n->grad),
                                                                                 f32 (n->src[0]->grad), rows, D);
  return launched (n, error);
}
