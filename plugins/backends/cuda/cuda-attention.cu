/* cuda-attention.cu: the attention kernels of the cuda backend. How a
 * kernel runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- attention: causal softmax(scale q k^T) v with GQA (query head h reads
 * KV head h / (Hq / Hkv)), segment ids (a query sees keys of its own segment
 * only), a sliding window (the `window` most recent keys, itself included)
 * and a KV cache (the Tq queries are the last Tq of the Tk positions), as
 * cpu-attention.c. One warp per query row: lanes split the head dimension
 * (d = lane + 32 u), the keys are visited in order with a running max and
 * sum (online softmax). Nothing of size T x T is stored: backward recomputes
 * the scores, first per query row (its logsumexp, delta = dO.O, and dq), then
 * per key row (dk and dv, summed over the heads of its group and the queries
 * that see it), so that every warp owns the rows it writes. */

#define ATTN_PER_LANE (ATTN_MAX_D / 32)

typedef struct {
  const float *q, *k, *v, *o, *dout;
  const gint32 *seg;
  float *dq, *dk, *dv, *lse, *delta;
  gint64 B, Tq, Tk, Hq, Hkv, D, window;
  float scale;
} Attn;

__device__ static float
lane_dot (const float *x, const float *y, gint64 D)
{
  float s = 0;
  for (gint64 d = threadIdx.x & 31; d < D; d += 32)
    s += x[d] * y[d];
  return warp_sum (s);
}

/* Whether query position `pos` (its segment sq) sees key j. */
__device__ static bool
attn_sees (const Attn &a, gint64 b, gint64 pos, gint32 sq, gint64 j)
{
  if (j > pos || (a.window > 0 && j < pos - a.window + 1))
    return false;
  return !a.seg || a.seg[b * a.Tk + j] == sq;
}

/* The running max m and sum l of the row's visible scores, and the sum of
 * p_j v_j in acc (when not NULL), with p_j = e^(s_j - m). */
__device__ static void
attn_scan (const Attn &a, gint64 b, gint64 h, gint64 i, float *m_out, float *l_out, float *acc)
{
  gint64 pos = a.Tk - a.Tq + i, kvh = h / (a.Hq / a.Hkv), lane = threadIdx.x & 31;
  gint64 lo = a.window > 0 ? MAX ((gint64) 0, pos - a.window + 1) : 0;
  gint32 sq = a.seg ? a.seg[b * a.Tk + pos] : 0;
  const float *q = a.q + ((b * a.Tq + i) * a.Hq + h) * a.D;
  float m = -INFINITY, l = 0;
  for (gint64 j = lo; j <= pos; j++) {
    if (!attn_sees (a, b, pos, sq, j))
      continue;
    gint64 ko = ((b * a.Tk + j) * a.Hkv + kvh) * a.D;
    float s = a.scale * lane_dot (q, a.k + ko, a.D);
    float mn = fmaxf (m, s), corr = expf (m - mn), p = expf (s - mn);
    l = l * corr + p;
    if (acc)
#pragma unroll
      for (int u = 0; u < ATTN_PER_LANE; u++) {
        gint64 d = lane + 32 * u;
        if (d < a.D)
          acc[u] = acc[u] * corr + p * a.v[ko + d];
      }
    m = mn;
  }
  *m_out = m;
  *l_out = l;
}

__global__ static void
attn_fwd_k (Attn a, float *out)
{
  WARP_LOOP (r, a.B * a.Hq * a.Tq)
  {
    gint64 i = r % a.Tq, h = r / a.Tq % a.Hq, b = r / (a.Tq * a.Hq), lane = threadIdx.x & 31;
    float acc[ATTN_PER_LANE], m, l;
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++)
      acc[u] = 0;
    attn_scan (a, b, h, i, &m, &l, acc);
    float *o = out + ((b * a.Tq + i) * a.Hq + h) * a.D;
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++) {
      gint64 d = lane + 32 * u;
      if (d < a.D)
        o[d] = acc[u] / l;
    }
  }
}

/* dP_j = dO.v_j;  dS_j = P_j (dP_j - delta) scale;  dq += sum_j dS_j k_j.
 * Row r = (b Hq + h) Tq + i keeps its lse and delta for the keys' pass. */
__global__ static void
attn_bwd_rows_k (Attn a)
{
  WARP_LOOP (r, a.B * a.Hq * a.Tq)
  {
    gint64 i = r % a.Tq, h = r / a.Tq % a.Hq, b = r / (a.Tq * a.Hq), lane = threadIdx.x & 31;
    gint64 pos = a.Tk - a.Tq + i, kvh = h / (a.Hq / a.Hkv), qo = ((b * a.Tq + i) * a.Hq + h) * a.D;
    float m, l;
    attn_scan (a, b, h, i, &m, &l, NULL);
    float lse = m + logf (l), delta = lane_dot (a.dout + qo, a.o + qo, a.D);
    if (lane == 0) {
      a.lse[r] = lse;
      a.delta[r] = delta;
    }
    if (!a.dq)
      continue;
    gint32 sq = a.seg ? a.seg[b * a.Tk + pos] : 0;
    float acc[ATTN_PER_LANE];
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++)
      acc[u] = 0;
    for (gint64 j = 0; j <= pos; j++) {
      if (!attn_sees (a, b, pos, sq, j))
        continue;
      gint64 ko = ((b * a.Tk + j) * a.Hkv + kvh) * a.D;
      float p = expf (a.scale * lane_dot (a.q + qo, a.k + ko, a.D) - lse);
      float ds = p * (lane_dot (a.dout + qo, a.v + ko, a.D) - delta) * a.scale;
#pragma unroll
      for (int u = 0; u < ATTN_PER_LANE; u++) {
        gint64 d = lane + 32 * u;
        if (d < a.D)
          acc[u] += ds * a.k[ko + d];
      }
    }
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++) {
      gint64 d = lane + 32 * u;
      if (d < a.D)
        a.dq[qo + d] += acc[u];
    }
  }
}

/* dk_j += sum dS_j q;  dv_j += sum P_j dO, over the heads of the group and
 * the queries that see key j. Key row r = (b Tk + j) Hkv + kvh. */
__global__ static void
attn_bwd_keys_k (Attn a)
{
  WARP_LOOP (r, a.B * a.Tk * a.Hkv)
  {
    gint64 kvh = r % a.Hkv, j = r / a.Hkv % a.Tk, b = r / (a.Hkv * a.Tk), lane = threadIdx.x & 31;
    gint64 group = a.Hq / a.Hkv, ko = r * a.D;
    float dk[ATTN_PER_LANE], dv[ATTN_PER_LANE];
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++)
      dk[u] = dv[u] = 0;
    for (gint64 h = kvh * group; h < (kvh + 1) * group; h++)
      for (gint64 i = MAX ((gint64) 0, j - (a.Tk - a.Tq)); i < a.Tq; i++) {
        gint64 pos = a.Tk - a.Tq + i, qo = ((b * a.Tq + i) * a.Hq + h) * a.D, row = (b * a.Hq + h) * a.Tq + i;
        if (!attn_sees (a, b, pos, a.seg ? a.seg[b * a.Tk + pos] : 0, j))
          continue;
        float p = expf (a.scale * lane_dot (a.q + qo, a.k + ko, a.D) - a.lse[row]);
        float ds = p * (lane_dot (a.dout + qo, a.v + ko, a.D) - a.delta[row]) * a.scale;
#pragma unroll
        for (int u = 0; u < ATTN_PER_LANE; u++) {
          gint64 d = lane + 32 * u;
          if (d < a.D) {
            dk[u] += ds * a.q[qo + d];
            dv[u] += p * a.dout[qo + d];
          }
        }
      }
#pragma unroll
    for (int u = 0; u < ATTN_PER_LANE; u++) {
      gint64 d = lane + 32 * u;
      if (d < a.D) {
        if (a.dk)
          a.dk[ko + d] += dk[u];
        if (a.dv)
          a.dv[ko + d] += dv[u];
      }
    }
  }
}

static Attn
attn_args (const CriaNode *n)
{
  const CriaNode *q = n->src[0], *k = n->src[1];
  Attn a = {};
  a.q = f32 (q->value);
  a.k = f32 (k->value);
  a.v = f32 (n->src[2]->value);
  a.o = f32 (n->value);
  a.seg = n->n_src > 3 && n->src[3] ? i32 (n->src[3]->value) : NULL;
  a.B = q->shape[0];
  a.Tq = q->shape[1];
  a.Tk = k->shape[1];
  a.Hq = q->shape[2];
  a.Hkv = k->shape[2];
  a.D = q->shape[3];
  a.window = n->iparam[0];
  a.scale = n->fparam[0];
  return a;
}

gboolean
attention_forward (gpointer self, CriaNode *n, GError **error)
{
  Attn a = attn_args (n);
  attn_fwd_k<<<blocks_for_warps (a.B * a.Hq * a.Tq), THREADS, 0, be_of (self)->stream>>> (a, f32 (n->value));
  return launched (n, error);
}

gboolean
attention_backward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  Attn a = attn_args (n);
  a.dout = f32 (n->grad);
  a.dq = grad_or_null (n->src[0]);
  a.dk = grad_or_null (n->src[1]);
  a.dv = grad_or_null (n->src[2]);
  if (!a.dq && !a.dk && !a.dv)
    return TRUE;
  gint64 rows = a.B * a.Hq * a.Tq;
  a.lse = (float *) cuda_scratch (be, (size_t) (2 * rows) * sizeof (float), error);
  if (!a.lse)
    return FALSE;
  a.delta = a.lse + rows;
  attn_bwd_rows_k<<<blocks_for_warps (rows), THREADS, 0, be->stream>>> (a);
  if (!launched (n, error))
    return FALSE;
  if (!a.dk && !a.dv)
    return TRUE;
  attn_bwd_keys_k<<<blocks_for_warps (a.B * a.Tk * a.Hkv), THREADS, 0, be->stream>>> (a);
  return launched (n, error);
}
