/* cpu-attention.c: causal multi-head attention with grouped KV heads,
 * segment ids and a sliding window, forward and backward. Nothing of size
 * T x T is ever stored: the blocked kernels (cpu-attention-blocked.h, one
 * instance per instruction set) keep a running softmax over key blocks and
 * recompute the scores in backward; the `rows` kernels below, one query row
 * at a time in scalar code, are the previous implementation, kept behind the
 * backend's `attention=rows` to compare against. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

#define BK 64 /* keys per block: a multiple of every ISA's 2W */
/* Attention of at most this many query x key x head-dim products runs on
 * the calling thread (cpu_attention_forward). */
#define ATTN_INLINE_WORK (1 << 20)

typedef struct {
  CpuBackend *be;
  gint64 B, Tq, Tk, Hq, Hkv, D, window;
  float scale;
  const float *q, *k, *v, *dout;
  const gint32 *seg;
  float *out, *dq, *dk, *dv;
  /* blocked kernels */
  gint64 group, Dp, BQ, Rmax, n_qblocks;
  float *lse, *delta; /* per [B, Hq, Tq] row, between the two backward passes */
} Attn;

/* A query row: its position among the keys, the first key it may see and its segment. */
typedef struct {
  gint64 pos, lo;
  gint32 seg;
} AttnRow;

/* A key block: keys j0 .. j0 + bk - 1 and their segment ids. */
typedef struct {
  gint64 j0, bk;
  const gint32 *seg;
  gboolean seg_const; /* one segment throughout: whole rows are in or out */
  gint32 seg0;
} AttnBlock;

typedef struct {
  float *Q, *Acc, *dO, *S, *dP, *Kt, *Vt, *Kp, *m, *l, *delta;
  AttnRow *rows;
} AttnScratch;

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
  a->group = a->Hq / a->Hkv;
  int w2 = be->isa == CPU_ISA_AVX512 ? 32 : be->isa == CPU_ISA_AVX2 ? 16 : 8;
  a->Dp = (a->D + w2 - 1) / w2 * w2;
  /* at least BK rows per task, so that a packed key block serves many rows
   * (and the keys pass's BK x Dp accumulators fit the rows' slots) */
  a->BQ = MAX (1, (BK + a->group - 1) / a->group);
  a->Rmax = a->group * a->BQ;
  a->n_qblocks = (a->Tq + a->BQ - 1) / a->BQ;
}

static void
attn_scratch (const Attn *a, int thread, AttnScratch *s)
{
  gint64 R = a->Rmax, Dp = a->Dp;
  gsize row_floats = ((gsize) R * sizeof (AttnRow) + 63) / 64 * 16;
  float *p = cpu_scratch (a->be, thread, row_floats + (gsize) (3 * R * Dp + 2 * R * BK + 3 * Dp * BK + 3 * R));
  s->rows = (AttnRow *) p;
  s->Q = p + row_floats;
  s->Acc = s->Q + R * Dp;
  s->dO = s->Acc + R * Dp;
  s->S = s->dO + R * Dp;
  s->dP = s->S + R * BK;
  s->Kt = s->dP + R * BK;
  s->Vt = s->Kt + Dp * BK;
  s->Kp = s->Vt + Dp * BK;
  s->m = s->Kp + Dp * BK;
  s->l = s->m + R;
  s->delta = s->l + R;
}

static inline void
attn_row (const Attn *a, gint64 b, gint64 i, AttnRow *row)
{
  row->pos = a->Tk - a->Tq + i;
  row->lo = a->window > 0 ? MAX (0, row->pos - a->window + 1) : 0;
  row->seg = a->seg ? a->seg[b * a->Tk + row->pos] : 0;
}

static inline void
attn_block (const Attn *a, gint64 b, gint64 j0, AttnBlock *kb)
{
  kb->j0 = j0;
  kb->bk = MIN (BK, a->Tk - j0);
  kb->seg = a->seg ? a->seg + b * a->Tk + j0 : NULL;
  kb->seg_const = TRUE;
  kb->seg0 = kb->seg ? kb->seg[0] : 0;
  for (gint64 c = 1; kb->seg && c < kb->bk; c++)
    kb->seg_const &= kb->seg[c] == kb->seg0;
}

#define CPU_ISA_BODY "cpu-attention-blocked.h"
#include "cpu-each-isa.h"

static const struct {
  CpuTaskFunc rows, keys;
} blocked[CPU_N_ISAS] = {
  [CPU_ISA_GENERIC] = { rows_task_base, keys_task_base },
  [CPU_ISA_AVX2] = { rows_task_avx2, keys_task_avx2 },
  [CPU_ISA_AVX512] = { rows_task_avx512, keys_task_avx512 },
};

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
  /* one decoded token over a short cache (a sequence of a batched step, a
   * few microseconds): on this thread, since waking another costs more */
  gboolean small = a.B * a.Hq * a.Tq * a.Tk * a.D <= ATTN_INLINE_WORK;
  gint64 rows = a.B * a.Hq * a.Tq, blocks = a.B * a.Hkv * a.n_qblocks;
  if (a.be->attention_rows)
    cpu_pool_run (a.be->pool, rows, small ? rows : 4, forward_task, &a);
  else
    cpu_pool_run (a.be->pool, blocks, small ? blocks : 1, blocked[a.be->isa].rows, &a);
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
  if (a.be->attention_rows) {
    cpu_pool_run (a.be->pool, a.B * a.Hkv, 1, backward_task, &a);
    return TRUE;
  }
  gsize n_rows = (gsize) (a.B * a.Hq * a.Tq);
  g_autofree float *lse = g_new (float, 2 * n_rows);
  a.lse = lse;
  a.delta = lse + n_rows;
  cpu_pool_run (a.be->pool, a.B * a.Hkv * a.n_qblocks, 1, blocked[a.be->isa].rows, &a);
  if (a.dk || a.dv)
    cpu_pool_run (a.be->pool, a.B * a.Hkv * ((a.Tk + BK - 1) / BK), 1, blocked[a.be->isa].keys, &a);
  return TRUE;
}
