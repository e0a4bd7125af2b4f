/* cpu-attention.c: causal multi-head attention with grouped KV heads and
 * segment ids, forward and backward. Scores are recomputed in backward (one
 * row at a time), so nothing of size T x T is ever stored. */
#include "config.h"

#include <math.h>

#include "cpu.h"

typedef struct {
  CpuBackend *be;
  gint64 B, Tq, Tk, Hq, Hkv, D, window;
  float scale;
  const float *q, *k, *v, *dout;
  const gint32 *seg;
  float *out, *dq, *dk, *dv;
} Attn;

static void
attn_init (Attn *a, CpuBackend *be, CriaNode *n)
{
  CriaNode *q = n->src[0], *k = n->src[1];
  *a = (Attn){ be,          q->shape[0], q->shape[1],  k->shape[1], q->shape[2],
               k->shape[2], q->shape[3], n->iparam[0], n->fparam[0] };
  a->q = cpu_f32 (q->value);
  a->k = cpu_f32 (k->value);
  a->v = cpu_f32 (n->src[2]->value);
  a->seg = n->n_src > 3 ? n->src[3]->value->data : NULL;
  a->out = cpu_f32 (n->value);
}

static inline float
dot (const float *x, const float *y, gint64 n)
{
  float s = 0;
  for (gint64 i = 0; i < n; i++)
    s += x[i] * y[i];
  return s;
}

static inline void
axpy (float *y, float alpha, const float *x, gint64 n)
{
  for (gint64 i = 0; i < n; i++)
    y[i] += alpha * x[i];
}

/* p_j = softmax_j (scale q.k_j) over the keys j <= the query's position in
 * its segment; returns the query's position. */
static gint64
attn_probs (const Attn *a, gint64 b, gint64 h, gint64 i, float *p)
{
  gint64 pos = a->Tk - a->Tq + i, kvh = h / (a->Hq / a->Hkv);
  const float *q = a->q + ((b * a->Tq + i) * a->Hq + h) * a->D;
  const gint32 *seg = a->seg ? a->seg + b * a->Tk : NULL;
  float m = -INFINITY;
  gint64 first = a->window > 0 ? MAX (0, pos - a->window + 1) : 0;
  for (gint64 j = 0; j <= pos; j++) {
    if (j < first || (seg && seg[j] != seg[pos])) {
      p[j] = -INFINITY;
      continue;
    }
    p[j] = a->scale * dot (q, a->k + ((b * a->Tk + j) * a->Hkv + kvh) * a->D, a->D);
    m = MAX (m, p[j]);
  }
  float sum = 0;
  for (gint64 j = 0; j <= pos; j++) {
    p[j] = expf (p[j] - m); /* exp(-inf) = 0 for other segments */
    sum += p[j];
  }
  for (gint64 j = 0; j <= pos; j++)
    p[j] /= sum;
  return pos;
}

/* out_i = sum_j p_j v_j */
static void
forward_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Attn *a = data;
  float *p = cpu_scratch (a->be, thread, (gsize) a->Tk);
  for (gint64 r = begin; r < end; r++) {
    gint64 i = r % a->Tq, h = (r / a->Tq) % a->Hq, b = r / (a->Tq * a->Hq);
    gint64 kvh = h / (a->Hq / a->Hkv);
    gint64 pos = attn_probs (a, b, h, i, p);
    float *o = a->out + ((b * a->Tq + i) * a->Hq + h) * a->D;
    for (gint64 d = 0; d < a->D; d++)
      o[d] = 0;
    for (gint64 j = 0; j <= pos; j++)
      if (p[j] != 0)
        axpy (o, p[j], a->v + ((b * a->Tk + j) * a->Hkv + kvh) * a->D, a->D);
  }
}

gboolean
cpu_attention_forward (gpointer self, CriaNode *n, GError **error)
{
  Attn a;
  attn_init (&a, self, n);
  cpu_pool_run (a.be->pool, a.B * a.Hq * a.Tq, 4, forward_task, &a);
  return TRUE;
}

/* dP_j = dO.v_j;  dS_j = P_j (dP_j - sum_l P_l dP_l);
 * dq += scale sum_j dS_j k_j;  dk_j += scale dS_j q;  dv_j += P_j dO.
 * One task per (batch, kv head) owns its rows of dk and dv: no races. */
static void
backward_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Attn *a = data;
  float *p = cpu_scratch (a->be, thread, (gsize) (2 * a->Tk));
  float *dp = p + a->Tk;
  gint64 group = a->Hq / a->Hkv;
  for (gint64 r = begin; r < end; r++) {
    gint64 b = r / a->Hkv, kvh = r % a->Hkv;
    for (gint64 h = kvh * group; h < (kvh + 1) * group; h++) {
      for (gint64 i = 0; i < a->Tq; i++) {
        gint64 pos = attn_probs (a, b, h, i, p);
        gint64 qo = ((b * a->Tq + i) * a->Hq + h) * a->D;
        const float *dO = a->dout + qo;
        float total = 0;
        for (gint64 j = 0; j <= pos; j++) {
          dp[j] = p[j] != 0 ? dot (dO, a->v + ((b * a->Tk + j) * a->Hkv + kvh) * a->D, a->D) : 0;
          total += p[j] * dp[j];
        }
        for (gint64 j = 0; j <= pos; j++) {
          if (p[j] == 0)
            continue;
          gint64 ko = ((b * a->Tk + j) * a->Hkv + kvh) * a->D;
          float ds = p[j] * (dp[j] - total) * a->scale;
          if (a->dq)
            axpy (a->dq + qo, ds, a->k + ko, a->D);
          if (a->dk)
            axpy (a->dk + ko, ds, a->q + qo, a->D);
          if (a->dv)
            axpy (a->dv + ko, p[j], dO, a->D);
        }
      }
    }
  }
}

gboolean
cpu_attention_backward (gpointer self, CriaNode *n, GError **error)
{
  Attn a;
  attn_init (&a, self, n);
  a.dout = cpu_f32 (n->grad);
  a.dq = n->src[0]->grad ? cpu_f32 (n->src[0]->grad) : NULL;
  a.dk = n->src[1]->grad ? cpu_f32 (n->src[1]->grad) : NULL;
  a.dv = n->src[2]->grad ? cpu_f32 (n->src[2]->grad) : NULL;
  cpu_pool_run (a.be->pool, a.B * a.Hkv, 1, backward_task, &a);
  return TRUE;
}
