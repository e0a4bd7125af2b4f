/* cpu-linear.c: matmul (f32, bf16, f16 or nf4 weights) and the fused
 * lm-head + cross-entropy, both on cpu_gemm; the nf4 dequantize op. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

typedef struct {
  gint64 batch, M, N, K;
  gint64 rsa, csa, rsb, csb;
  gboolean b_batched;
} MatDims;

static void
mat_dims (const CriaNode *n, MatDims *d)
{
  const CriaNode *a = n->src[0], *b = n->src[1];
  gboolean ta = n->iparam[0], tb = n->iparam[1];
  int r = a->n_dims;
  d->M = n->shape[r - 2];
  d->N = n->shape[r - 1];
  d->K = ta ? a->shape[r - 2] : a->shape[r - 1];
  d->batch = cpu_numel (n) / (d->M * d->N);
  d->b_batched = b->n_dims > 2;
  d->rsa = ta ? 1 : d->K;
  d->csa = ta ? d->M : 1;
  d->rsb = tb ? 1 : d->N;
  d->csb = tb ? d->K : 1;
}

/* B of batch b for cpu_gemm; an nf4 B is the tensor (2-D, never batched). */
static const void *
b_slice (const CriaTensor *t, const MatDims *d, gint64 b)
{
  if (t->dtype == CRIA_DTYPE_NF4)
    return t;
  return (const char *) t->data + cria_dtype_bytes (t->dtype, (gsize) (d->b_batched ? b * d->K * d->N : 0));
}

/* ---- epilogues: the nodes after a linear layer's product (its bias, an
 * activation, a residual add) computed on each block of the product as the
 * gemm finishes it, rather than in passes of their own over memory. Each
 * element gets the operations of the nodes' own kernels, in their order, so
 * the same bits. */

static gboolean
is_f32_value (const CriaNode *n)
{
  return n->dtype == CRIA_DTYPE_F32;
}

/* The part of `next` other than `last` (NULL when it has none). */
static const CriaNode *
other_src (const CriaNode *next, const CriaNode *last)
{
  return next->n_src == 2 ? next->src[next->src[0] == last ? 1 : 0] : NULL;
}

gboolean
cpu_fuses (gpointer self, const CriaNode *m, const CriaNode *next)
{
  CpuBackend *be = self;
  /* the one-gemm path of cpu_matmul_forward: rows of x times one weight */
  if (!be->fuse || m->iparam[0] || m->src[1]->n_dims != 2 || !is_f32_value (next))
    return FALSE;
  const CriaNode *last = m->n_epilogue ? m->epilogue[m->n_epilogue - 1] : m;
  gint64 N = m->shape[m->n_dims - 1];
  /* The product is never stored in the matmul's value, so the first node
   * must be one whose backward does not read its input: an add. */
  if (!m->n_epilogue && next->op != CRIA_OP_ADD)
    return FALSE;
  switch (next->op) {
    case CRIA_OP_GELU:
    case CRIA_OP_SILU:
      return TRUE;
    case CRIA_OP_ADD: {
      const CriaNode *o = other_src (next, last);
      if (!o || o == last || !is_f32_value (o))
        return FALSE;
      if (next->src[1] == o && o->n_dims == 1 && o->shape[0] == N) /* a bias */
        return TRUE;
      return cpu_numel (o) == cpu_numel (next); /* a residual */
    }
    default:
      return FALSE;
  }
}

CPU_VECTORIZED void
cpu_epilogue (CpuBackend *be, const CriaNode *m, gint64 i0, gint64 i1, gint64 n0, gint64 nc)
{
  const CpuVmath *vm = &cpu_vmath[be->isa];
  gint64 N = m->shape[m->n_dims - 1];
  const CriaNode *last = m;
  for (int e = 0; e < m->n_epilogue; last = m->epilogue[e++]) {
    const CriaNode *next = m->epilogue[e];
    /* the first node's value holds the product: its op runs in place */
    const float *x = cpu_f32 (e == 0 ? next->value : last->value);
    float *y = cpu_f32 (next->value);
    const CriaNode *o = other_src (next, last);
    const float *ov = o ? cpu_f32 (o->value) : NULL;
    gboolean bias = o && o->n_dims == 1 && cpu_numel (o) == N && cpu_numel (next) != N;
    for (gint64 i = i0; i < i1; i++) {
      const float *xr = x + i * N + n0;
      float *yr = y + i * N + n0;
      switch (next->op) {
        case CRIA_OP_GELU:
          vm->gelu (xr, yr, nc);
          break;
        case CRIA_OP_SILU:
          vm->silu (xr, yr, nc);
          break;
        default: { /* add: a bias row, or the same element of a residual */
          const float *orow = bias ? ov + n0 : ov + i * N + n0;
          for (gint64 j = 0; j < nc; j++)
            yr[j] = xr[j] + orow[j];
        }
      }
    }
  }
}

/* C = op(A) op(B) */
gboolean
cpu_matmul_forward (gpointer self, CriaNode *n, GError **error)
{
  MatDims d;
  mat_dims (n, &d);
  const float *A = cpu_f32 (n->src[0]->value);
  float *C = cpu_f32 (n->value);
  if (n->n_epilogue > 0) { /* cpu_fuses took only the one-gemm layout */
    cpu_gemm_epilogue (self, n, d.batch * d.M, d.N, d.K, A, d.rsa, d.csa, b_slice (n->src[1]->value, &d, 0),
                       n->src[1]->dtype, d.rsb, d.csb, cpu_f32 (n->epilogue[0]->value), d.N);
    return TRUE;
  }
  if (!d.b_batched && !n->iparam[0]) {
    /* x[B,T,K] times one weight: all B*T rows in one product, so that the
     * weight is read once for a batch of sequences, not once per sequence. */
    cpu_gemm (self, d.batch * d.M, d.N, d.K, A, d.rsa, d.csa, b_slice (n->src[1]->value, &d, 0), n->src[1]->dtype,
              d.rsb, d.csb, C, d.N, FALSE);
    return TRUE;
  }
  for (gint64 b = 0; b < d.batch; b++)
    cpu_gemm (self, d.M, d.N, d.K, A + b * d.M * d.K, d.rsa, d.csa, b_slice (n->src[1]->value, &d, b), n->src[1]->dtype,
              d.rsb, d.csb, C + b * d.M * d.N, d.N, FALSE);
  return TRUE;
}

/* dA(i,k) += sum_n dC(i,n) B(k,n);  dB(k,n) += sum_i A(i,k) dC(i,n) */
gboolean
cpu_matmul_backward (gpointer self, CriaNode *n, GError **error)
{
  MatDims d;
  mat_dims (n, &d);
  CriaNode *a = n->src[0], *b = n->src[1];
  const float *A = cpu_f32 (a->value), *dC = cpu_f32 (n->grad);
  g_autofree float *bconv = NULL;
  if (!d.b_batched && !n->iparam[0]) {
    /* x[B,T,K] times one weight, as in the forward: all B*T rows in one
     * product each, so that dx reads the weight once and dW is summed
     * into once, not once per sequence */
    d.M *= d.batch;
    d.batch = 1;
  }
  for (gint64 t = 0; t < d.batch; t++) {
    const float *dCt = dC + t * d.M * d.N;
    const void *Bt = b_slice (b->value, &d, t);
    if (a->grad && !n->iparam[0]) {
      /* dA[M,K]: B'(n,k) = B(k,n) */
      cpu_gemm (self, d.M, d.K, d.N, dCt, d.N, 1, Bt, b->dtype, d.csb, d.rsb, cpu_f32 (a->grad) + t * d.M * d.K, d.K,
                TRUE);
    } else if (a->grad) {
      /* dA stored [K,M]: dA(k,i) = sum_n B(k,n) dC(i,n); B becomes the A operand, so f32 */
      const float *Bf = Bt;
      if (b->dtype != CRIA_DTYPE_F32) {
        if (!bconv)
          bconv = g_new (float, d.K *d.N);
        /* this rare layout (a weight times a transposed activation) converts B whole, nf4 included */
        if (b->dtype == CRIA_DTYPE_NF4)
          cria_nf4_dequantize_range (b->value, 0, d.K * d.N, bconv);
        else
          cria_convert_to_f32 (b->dtype, Bt, bconv, (gsize) (d.K * d.N));
        Bf = bconv;
      }
      cpu_gemm (self, d.K, d.M, d.N, Bf, d.rsb, d.csb, dCt, CRIA_DTYPE_F32, 1, d.N, cpu_f32 (a->grad) + t * d.M * d.K,
                d.M, TRUE);
    }
    if (b->grad) {
      float *dB = cpu_f32 (b->grad) + (d.b_batched ? t * d.K * d.N : 0);
      const float *At = A + t * d.M * d.K;
      if (!n->iparam[1]) /* dB[K,N] = A^T dC */
        cpu_gemm (self, d.K, d.N, d.M, At, d.csa, d.rsa, dCt, CRIA_DTYPE_F32, d.N, 1, dB, d.N, TRUE);
      else /* dB[N,K] = dC^T A */
        cpu_gemm (self, d.N, d.K, d.M, dCt, 1, d.N, At, CRIA_DTYPE_F32, d.rsa, d.csa, dB, d.K, TRUE);
    }
  }
  return TRUE;
}

/* The rows of the fused CE that have a label, gathered so that masked rows
 * (prompt tokens) cost nothing. */
/* A training step's logits are kept from the forward for the backward up to
 * this size, rather than computed again (a third of the lm head's products;
 * 50 MB for GPT-2 at 4 x 64 tokens). */
#define CE_KEEP_MAX_BYTES ((gsize) 256 << 20)

typedef struct {
  gint64 N, D, V, chunk, nv;
  gint64 *rows;  /* nv row indices */
  float *hv;     /* nv x D */
  float *logits; /* nv x chunk, the current chunk's */
  float *own;    /* logits' buffer when ce_keep is not used */
  float *keep;   /* or the backend's ce_keep: chunk v0 at keep + nv v0 */
  float *max, *sum, *target;
  const gint32 *labels;
  const CriaTensor *w;
  gint64 v0, c; /* the current chunk */
  const CpuVmath *vm;
} Ce;

static gboolean
ce_init (Ce *ce, CpuBackend *be, CriaNode *n, GError **error)
{
  ce->vm = &cpu_vmath[be->isa];
  CriaNode *h = n->src[0], *w = n->src[1], *labels = n->src[2];
  ce->N = h->shape[0];
  ce->D = h->shape[1];
  ce->V = w->shape[0];
  ce->chunk = MIN (n->iparam[0], ce->V);
  ce->labels = labels->value->data;
  ce->w = w->value;
  ce->rows = g_new (gint64, ce->N);
  ce->nv = 0;
  for (gint64 r = 0; r < ce->N; r++) {
    gint32 l = ce->labels[r];
    if (l == CRIA_IGNORE_INDEX)
      continue;
    if (l < 0 || l >= ce->V) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "lm_head_ce: label %d of row %" G_GINT64_FORMAT " is outside the vocabulary of %" G_GINT64_FORMAT, l,
                   r, ce->V);
      return FALSE;
    }
    ce->rows[ce->nv++] = r;
  }
  const float *H = cpu_f32 (h->value);
  ce->hv = g_new (float, MAX (ce->nv, 1) * ce->D);
  for (gint64 i = 0; i < ce->nv; i++)
    memcpy (ce->hv + i * ce->D, H + ce->rows[i] * ce->D, (gsize) ce->D * sizeof (float));
  gsize keep = (gsize) ce->nv * (gsize) ce->V;
  if (n->grad && ce->nv > 0 && keep * sizeof (float) <= CE_KEEP_MAX_BYTES) {
    /* a backward follows: the buffer is kept between steps */
    if (be->ce_keep_size < keep) {
      g_free (be->ce_keep);
      be->ce_keep = g_new (float, keep);
      be->ce_keep_size = keep;
    }
    ce->keep = be->ce_keep;
  } else {
    ce->own = g_new (float, MAX (ce->nv, 1) * ce->chunk);
  }
  ce->max = g_new (float, MAX (ce->nv, 1));
  ce->sum = g_new0 (float, MAX (ce->nv, 1));
  ce->target = g_new0 (float, MAX (ce->nv, 1));
  for (gint64 i = 0; i < ce->nv; i++)
    ce->max[i] = -INFINITY;
  return TRUE;
}

static void
ce_clear (Ce *ce)
{
  g_free (ce->rows);
  g_free (ce->hv);
  g_free (ce->own);
  g_free (ce->max);
  g_free (ce->sum);
  g_free (ce->target);
}

/* The buffer of chunk v0's logits. */
static void
ce_chunk (Ce *ce)
{
  ce->c = MIN (ce->chunk, ce->V - ce->v0);
  ce->logits = ce->keep ? ce->keep + ce->nv * ce->v0 : ce->own;
}

/* logits[i][j] = hv_i . w_{v0+j} */
static void
ce_logits (CpuBackend *be, Ce *ce)
{
  const void *W = (const char *) ce->w->data + cria_dtype_bytes (ce->w->dtype, (gsize) (ce->v0 * ce->D));
  cpu_gemm (be, ce->nv, ce->c, ce->D, ce->hv, ce->D, 1, W, ce->w->dtype, 1, ce->D, ce->logits, ce->c, FALSE);
}

/* Online log-sum-exp: (m, s) -> (max(m, x), s e^(m - m') + e^(x - m')) */
static void
ce_update_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  Ce *ce = data;
  for (gint64 i = begin; i < end; i++) {
    const float *x = ce->logits + i * ce->c;
    float m = MAX (ce->max[i], ce->vm->max (x, ce->c));
    float s = ce->sum[i] * expf (ce->max[i] - m) + ce->vm->exp_sum (x, m, NULL, ce->c);
    ce->max[i] = m;
    ce->sum[i] = s;
    gint64 l = ce->labels[ce->rows[i]];
    if (l >= ce->v0 && l < ce->v0 + ce->c)
      ce->target[i] = x[l - ce->v0];
  }
}

/* loss = sum over labelled rows of logsumexp(h W^T) - (h W^T)[label] */
gboolean
cpu_lm_head_ce_forward (gpointer self, CriaNode *n, GError **error)
{
  CpuBackend *be = self;
  Ce ce = { 0 };
  if (!ce_init (&ce, be, n, error)) {
    ce_clear (&ce);
    return FALSE;
  }
  if (ce.keep)
    be->ce_keep_node = NULL;
  for (ce.v0 = 0; ce.nv > 0 && ce.v0 < ce.V; ce.v0 += ce.chunk) {
    ce_chunk (&ce);
    ce_logits (be, &ce);
    cpu_pool_run (be->pool, ce.nv, 16, ce_update_task, &ce);
  }
  if (ce.keep)
    be->ce_keep_node = n;
  float *out = cpu_f32 (n->value);
  memset (out, 0, (gsize) cpu_numel (n) * sizeof (float));
  double loss = 0;
  for (gint64 i = 0; i < ce.nv; i++) {
    float lse = ce.max[i] + logf (ce.sum[i]);
    out[2 + ce.rows[i]] = lse;
    loss += (double) lse - ce.target[i];
  }
  out[0] = (float) loss;
  out[1] = (float) ce.nv;
  if (n->iparam[1]) /* per-row losses after the log-sum-exps */
    for (gint64 i = 0; i < ce.nv; i++)
      out[2 + ce.N + ce.rows[i]] = out[2 + ce.rows[i]] - ce.target[i];
  ce_clear (&ce);
  return TRUE;
}

typedef struct {
  Ce *ce;
  const float *lse;
  float g;
  const float *g_row; /* d/d ce_r of the per-row variant, or NULL */
} CeGrad;

/* dlogits = g (softmax - onehot(label)), g = d/d sum (+ d/d ce_r) */
static void
ce_dlogits_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  CeGrad *cg = data;
  Ce *ce = cg->ce;
  for (gint64 i = begin; i < end; i++) {
    float *x = ce->logits + i * ce->c;
    float lse = cg->lse[ce->rows[i]];
    float g = cg->g_row ? cg->g + cg->g_row[ce->rows[i]] : cg->g;
    ce->vm->exp_scale (x, lse, g, ce->c);
    gint64 l = ce->labels[ce->rows[i]];
    if (l >= ce->v0 && l < ce->v0 + ce->c)
      x[l - ce->v0] -= g;
  }
}

/* dh = dlogits W;  dW = dlogits^T h, chunk by chunk */
gboolean
cpu_lm_head_ce_backward (gpointer self, CriaNode *n, GError **error)
{
  CpuBackend *be = self;
  CriaNode *h = n->src[0], *w = n->src[1];
  Ce ce = { 0 };
  if (!ce_init (&ce, be, n, error)) {
    ce_clear (&ce);
    return FALSE;
  }
  CeGrad cg = { &ce, cpu_f32 (n->value) + 2, cpu_f32 (n->grad)[0], n->iparam[1] ? cpu_f32 (n->grad) + 2 + ce.N : NULL };
  float *dhv = h->grad ? g_new0 (float, MAX (ce.nv, 1) * ce.D) : NULL;
  /* the forward's logits, unless another forward ran since (the same
   * products on the same inputs: the same bits either way) */
  gboolean kept = ce.keep && be->ce_keep_node == n;
  be->ce_keep_node = NULL; /* turned into dlogits below */
  for (ce.v0 = 0; ce.nv > 0 && ce.v0 < ce.V; ce.v0 += ce.chunk) {
    ce_chunk (&ce);
    if (!kept)
      ce_logits (be, &ce);
    cpu_pool_run (be->pool, ce.nv, 16, ce_dlogits_task, &cg);
    const void *W = (const char *) ce.w->data + cria_dtype_bytes (ce.w->dtype, (gsize) (ce.v0 * ce.D));
    if (dhv)
      cpu_gemm (be, ce.nv, ce.D, ce.c, ce.logits, ce.c, 1, W, ce.w->dtype, ce.D, 1, dhv, ce.D, TRUE);
    if (w->grad)
      cpu_gemm (be, ce.c, ce.D, ce.nv, ce.logits, 1, ce.c, ce.hv, CRIA_DTYPE_F32, ce.D, 1,
                cpu_f32 (w->grad) + ce.v0 * ce.D, ce.D, TRUE);
  }
  if (dhv) {
    float *dh = cpu_f32 (h->grad);
    for (gint64 i = 0; i < ce.nv; i++)
      for (gint64 k = 0; k < ce.D; k++)
        dh[ce.rows[i] * ce.D + k] += dhv[i * ce.D + k];
  }
  g_free (dhv);
  ce_clear (&ce);
  return TRUE;
}

typedef struct {
  const CriaTensor *w;
  float *out;
} Dequant;

static void
dequantize_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  Dequant *dq = data;
  cria_nf4_dequantize_range (dq->w, begin * CRIA_NF4_BLOCK,
                             MIN (end * CRIA_NF4_BLOCK, cria_tensor_numel (dq->w)) - begin * CRIA_NF4_BLOCK,
                             dq->out + begin * CRIA_NF4_BLOCK);
}

/* Whole blocks per task, so each block scale is decoded once. */
gboolean
cpu_dequantize_forward (gpointer self, CriaNode *n, GError **error)
{
  CpuBackend *be = self;
  Dequant dq = { n->src[0]->value, cpu_f32 (n->value) };
  gint64 blocks = (cpu_numel (n) + CRIA_NF4_BLOCK - 1) / CRIA_NF4_BLOCK;
  cpu_pool_run (be->pool, blocks, 256, dequantize_task, &dq);
  return TRUE;
}
