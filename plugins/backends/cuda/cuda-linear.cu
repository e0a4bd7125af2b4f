/* cuda-linear.cu: the products of the cuda backend, through cuBLASLt:
 * matmul (f32 weights; others: cuda-weights.cu) and the fused lm-head +
 * cross-entropy. How a kernel runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- matmul through cuBLASLt: C (+)= op(A) op(B), row-major, f32 ------------- */

/* The largest power of two (at most 256) that divides the address. */
static uint32_t
ptr_align (const void *p)
{
  uintptr_t a = (uintptr_t) p;
  uint32_t align = 256;
  while (align > 1 && a % align)
    align /= 2;
  return align;
}

/* The elements an operand of a product spans: `rows` rows of `cols`, `ld`
 * apart, in each of `batch` products `stride` apart. */
static gint64
operand_span (gint64 rows, gint64 cols, gint64 ld, gint64 batch, gint64 stride)
{
  return (rows - 1) * ld + cols + (batch - 1) * stride;
}

/* activations=bf16: each f32 operand rounded to bf16 in scratch (all it
 * spans, gaps included, so that strides stay), a bf16 value read as it is,
 * then their bf16 product. */
static gboolean
gemm_bf16 (CudaBackend *be, const CudaGemm *g, GError **error)
{
  gint64 na = g->a_bf16 ? 0 : operand_span (g->ta ? g->K : g->M, g->ta ? g->M : g->K, g->lda, g->batch, g->sa);
  gint64 nb = g->b_bf16 ? 0 : operand_span (g->tb ? g->N : g->K, g->tb ? g->K : g->N, g->ldb, g->batch, g->sb);
  size_t a_bytes = ((size_t) na * sizeof (guint16) + 255) / 256 * 256;
  CudaGemm h = *g;
  if (na + nb > 0) {
    guint16 *a = (guint16 *) cuda_operand_scratch (be, a_bytes + (size_t) nb * sizeof (guint16), error);
    if (!a)
      return FALSE;
    guint16 *b = a + a_bytes / sizeof (guint16);
    if ((na && !cuda_to_bf16 (be, (const float *) g->A, na, a, error)) ||
        (nb && !cuda_to_bf16 (be, (const float *) g->B, nb, b, error)))
      return FALSE;
    h.A = na ? a : g->A;
    h.B = nb ? b : g->B;
  }
  h.bf16 = TRUE;
  h.a_bf16 = h.b_bf16 = FALSE;
  return cuda_gemm (be, &h, error);
}

/* Row-major C[M,N] = op(A)[M,K] op(B)[K,N] is column-major C^T = op(B)^T op(A)^T:
 * cuBLASLt gets B as its first operand (cuda.h). */
extern "C" gboolean
cuda_gemm (CudaBackend *be, const CudaGemm *g, GError **error)
{
  if (!g->bf16 && (be->bf16_act || g->a_bf16 || g->b_bf16))
    return gemm_bf16 (be, g, error);
  gint64 M = g->M, N = g->N, K = g->K, batch = g->batch;
  gboolean ta = g->ta, tb = g->tb;
  const void *A = g->A, *B = g->B;
  void *C = g->C;
  float beta = g->beta;
  /* a bf16 C holds a value: written once, never added to */
  g_return_val_if_fail (!g->c_bf16 || beta == 0.0f, FALSE);
  /* f32 or bf16 operands, f32 output: cuBLASLt's CUBLAS_COMPUTE_32F rows;
   * f32 operands on TF32 tensor cores only when the user asked (tf32) */
  cudaDataType_t ab = g->bf16 ? CUDA_R_16BF : CUDA_R_32F;
  cublasComputeType_t compute = be->tf32 && !g->bf16 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const CudaLt *lt = be->blas;
  cublasLtMatmulDesc_t desc = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  float alpha = 1.0f;
  int32_t nb = (int32_t) batch;
  size_t ws = LT_WORKSPACE;
  cublasLtMatmulHeuristicResult_t h;
  int found = 0;
  /* first operand: B^T as stored (N x K col-major when tb, else K... see layouts) */
  cublasStatus_t s = lt->fn_cublasLtMatmulDescCreate (&desc, compute, CUDA_R_32F);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa);
  /* stored shapes, column-major: B is [K,N] row-major = N x K col-major (ld N), or [N,K] = K x N (ld K) */
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&la, ab, tb ? K : N, tb ? N : K, g->ldb);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&lb, ab, ta ? M : K, ta ? K : M, g->lda);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&lc, g->c_bf16 ? CUDA_R_16BF : CUDA_R_32F, N, M, g->ldc);
  cublasLtMatrixLayout_t layouts[3] = { la, lb, lc };
  int64_t strides[3] = { g->sb, g->sa, g->sc };
  for (int i = 0; i < 3 && s == CUBLAS_STATUS_SUCCESS && batch > 1; i++) {
    s = lt->fn_cublasLtMatrixLayoutSetAttribute (layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = lt->fn_cublasLtMatrixLayoutSetAttribute (layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i],
                                                sizeof strides[i]);
  }
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulPreferenceCreate (&pref);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulPreferenceSetAttribute (pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  /* The heuristic assumes 256-byte aligned operands unless told: arena
   * offsets are 64-byte aligned, chunks of lm_head_ce's weight and slices of
   * a batch anything a float allows. Its operands in its order: B, A, C, C. */
  uint32_t align[4] = { ptr_align (B), ptr_align (A), ptr_align (C), ptr_align (C) };
  for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
    s = lt->fn_cublasLtMatmulPreferenceSetAttribute (
        pref, (cublasLtMatmulPreferenceAttributes_t) (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i), &align[i],
        sizeof align[i]);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulAlgoGetHeuristic (be->lt, desc, la, lb, lc, lc, pref, 1, &h, &found);
  if (s == CUBLAS_STATUS_SUCCESS && found == 0)
    s = CUBLAS_STATUS_NOT_SUPPORTED;
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmul (be->lt, desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &h.algo, be->lt_workspace, ws,
                            be->stream);
  if (pref)
    lt->fn_cublasLtMatmulPreferenceDestroy (pref);
  if (lc)
    lt->fn_cublasLtMatrixLayoutDestroy (lc);
  if (lb)
    lt->fn_cublasLtMatrixLayoutDestroy (lb);
  if (la)
    lt->fn_cublasLtMatrixLayoutDestroy (la);
  if (desc)
    lt->fn_cublasLtMatmulDescDestroy (desc);
  if (s != CUBLAS_STATUS_SUCCESS) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED,
                 "cuda: matmul %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT ": %s", M, N, K,
                 lt->fn_cublasLtGetStatusString (s));
    return FALSE;
  }
  return TRUE;
}

/* Which operands of gemm are bf16 values (activations=bf16). */
enum { A16 = 1, B16 = 2, C16 = 4 };

static gboolean
gemm_as (CudaBackend *be, int bf, gint64 M, gint64 N, gint64 K, const void *A, gboolean ta, const void *B, gboolean tb,
         void *C, float beta, gint64 batch, gint64 sa, gint64 sb, gint64 sc, GError **error)
{
  CudaGemm g = { M, N, K, A, ta, ta ? M : K, B, tb, tb ? K : N, C, N, beta, FALSE, batch, sa, sb, sc };
  g.a_bf16 = (bf & A16) != 0;
  g.b_bf16 = (bf & B16) != 0;
  g.c_bf16 = (bf & C16) != 0;
  return cuda_gemm (be, &g, error);
}

static gboolean
gemm (CudaBackend *be, gint64 M, gint64 N, gint64 K, const float *A, gboolean ta, const float *B, gboolean tb, float *C,
      float beta, gint64 batch, gint64 sa, gint64 sb, gint64 sc, GError **error)
{
  return gemm_as (be, 0, M, N, K, A, ta, B, tb, C, beta, batch, sa, sb, sc, error);
}

MatmulShape
cuda_matmul_shape (const CriaNode *n)
{
  const CriaNode *a = n->src[0], *b = n->src[1];
  int ra = a->n_dims, rb = b->n_dims;
  MatmulShape s;
  s.ta = n->iparam[0] != 0;
  s.tb = n->iparam[1] != 0;
  s.M = n->shape[ra - 2];
  s.N = n->shape[ra - 1];
  s.K = s.ta ? a->shape[ra - 2] : a->shape[ra - 1];
  s.batch = 1;
  for (int i = 0; i < ra - 2; i++)
    s.batch *= a->shape[i];
  s.b_shared = rb == 2;
  return s;
}

/* With activations=bf16 each operand and the product may be a bf16 value:
 * cuBLASLt reads and writes them as stored (an f32 param is rounded). */
gboolean
matmul_forward (gpointer self, CriaNode *n, GError **error)
{
  MatmulShape s = cuda_matmul_shape (n);
  const CriaTensor *a = n->src[0]->value, *b = n->src[1]->value;
  int bf = (is_bf16 (a) ? A16 : 0) | (is_bf16 (b) ? B16 : 0) | (is_bf16 (n->value) ? C16 : 0);
  if (s.b_shared && !s.ta) /* the batch folds into M */
    return gemm_as (be_of (self), bf, s.batch * s.M, s.N, s.K, a->data, FALSE, b->data, s.tb, n->value->data, 0.0f, 1,
                    0, 0, 0, error);
  return gemm_as (be_of (self), bf, s.M, s.N, s.K, a->data, s.ta, b->data, s.tb, n->value->data, 0.0f, s.batch,
                  s.M * s.K, s.b_shared ? 0 : s.K * s.N, s.M * s.N, error);
}

/* dA: (!ta) dA[M,K] += dC op(B)^T;   (ta) dA[K,M] += op(B) dC^T
 * dB: (!tb) dB[K,N] += op(A)^T dC;   (tb) dB[N,K] += dC^T op(A)
 * A shared B sums over the batch: folded into the inner dim when A is not
 * transposed, one product per batch added in order otherwise. */
gboolean
matmul_backward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  MatmulShape s = cuda_matmul_shape (n);
  /* A and B as stored (bf16 values read as they are); dC, dA, dB f32 */
  const CriaTensor *ta = n->src[0]->value, *tb = n->src[1]->value;
  const void *A = ta->data, *B = tb->data;
  int a16 = is_bf16 (ta), b16 = is_bf16 (tb);
  const float *dC = f32 (n->grad);
  gint64 sa = s.M * s.K, sb = s.b_shared ? 0 : s.K * s.N, sc = s.M * s.N;
  if (n->src[0]->grad) {
    float *dA = f32 (n->src[0]->grad);
    gboolean ok = !s.ta ? gemm_as (be, b16 ? B16 : 0, s.M, s.K, s.N, dC, FALSE, B, !s.tb, dA, 1.0f, s.batch, sc, sb, sa,
                                   error)
                        : gemm_as (be, b16 ? A16 : 0, s.K, s.M, s.N, B, s.tb, dC, TRUE, dA, 1.0f, s.batch, sb, sc, sa,
                                   error);
    if (!ok)
      return FALSE;
  }
  if (!n->src[1]->grad)
    return TRUE;
  float *dB = f32 (n->src[1]->grad);
  if (!s.b_shared)
    return !s.tb ? gemm_as (be, a16 ? A16 : 0, s.K, s.N, s.M, A, !s.ta, dC, FALSE, dB, 1.0f, s.batch, sa, sc, sb, error)
                 : gemm_as (be, a16 ? B16 : 0, s.N, s.K, s.M, dC, TRUE, A, s.ta, dB, 1.0f, s.batch, sc, sa, sb, error);
  if (!s.ta) /* rows of every batch are rows of one [batch*M, K] A */
    return !s.tb
               ? gemm_as (be, a16 ? A16 : 0, s.K, s.N, s.batch * s.M, A, TRUE, dC, FALSE, dB, 1.0f, 1, 0, 0, 0, error)
               : gemm_as (be, a16 ? B16 : 0, s.N, s.K, s.batch * s.M, dC, TRUE, A, FALSE, dB, 1.0f, 1, 0, 0, 0, error);
  for (gint64 i = 0; i < s.batch; i++) {
    const void *Ai = elem (ta, i * sa);
    const float *dCi = dC + i * sc;
    gboolean ok = !s.tb ? gemm_as (be, a16 ? A16 : 0, s.K, s.N, s.M, Ai, FALSE, dCi, FALSE, dB, 1.0f, 1, 0, 0, 0, error)
                        : gemm_as (be, a16 ? B16 : 0, s.N, s.K, s.M, dCi, TRUE, Ai, TRUE, dB, 1.0f, 1, 0, 0, 0, error);
    if (!ok)
      return FALSE;
  }
  return TRUE;
}

/* ---- lm_head_ce (cpu-linear.c): h [N,D], w [V,D], labels [N] ->
 * [loss sum, count, lse of each row (, ce of each row)]. The logits are
 * computed `chunk` vocabulary entries at a time by cuBLASLt into scratch,
 * never whole; each row keeps a running max, sum and its label's logit.
 * Rows labelled CRIA_IGNORE_INDEX are computed but not counted (the cpu
 * gathers the labelled ones first; the sums are the same). The loss is
 * summed in double in row order, as the cpu does. Backward recomputes each
 * chunk's logits, turns them into g (softmax - onehot(label)), and adds
 * dlogits W to dh and dlogits^T h to dW. --------------------------------- */

typedef struct {
  float *logits; /* N x chunk */
  float *max, *sum, *target;
} CeScratch;

static gboolean
ce_scratch (CudaBackend *be, gint64 N, gint64 chunk, CeScratch *s, GError **error)
{
  s->logits = (float *) cuda_scratch (be, (size_t) (N * chunk + 3 * N) * sizeof (float), error);
  s->max = s->logits ? s->logits + N * chunk : NULL;
  s->sum = s->max ? s->max + N : NULL;
  s->target = s->sum ? s->sum + N : NULL;
  return s->logits != NULL;
}

__device__ static bool
ce_counted (gint32 label, gint64 V, int *bad)
{
  if (label == CRIA_IGNORE_INDEX)
    return false;
  if (label < 0 || label >= V) {
    atomicCAS (bad, CUDA_BAD_NONE, CUDA_BAD_LABEL);
    return false;
  }
  return true;
}

__global__ static void
ce_init_k (CeScratch s, gint64 N)
{
  GRID_LOOP (r, N)
  {
    s.max[r] = -INFINITY;
    s.sum[r] = 0;
    s.target[r] = 0;
  }
}

/* Online log-sum-exp over one chunk: (m, s) -> (max(m, x), s e^(m - m') + sum e^(x - m')) */
__global__ static void
ce_update_k (CeScratch s, const gint32 *labels, gint64 N, gint64 V, gint64 v0, gint64 c, int *bad)
{
  ROW_LOOP (r, N)
  {
    gint32 label = labels[r];
    if (!ce_counted (label, V, bad))
      continue; /* the same for every thread of the block */
    const float *x = s.logits + r * c;
    float m = -INFINITY, e = 0;
    for (gint64 j = threadIdx.x; j < c; j += blockDim.x)
      m = fmaxf (m, x[j]);
    m = fmaxf (s.max[r], block_reduce (m, true));
    for (gint64 j = threadIdx.x; j < c; j += blockDim.x)
      e += expf (x[j] - m);
    e = block_reduce (e, false);
    if (threadIdx.x == 0) {
      s.sum[r] = s.sum[r] * expf (s.max[r] - m) + e;
      s.max[r] = m;
      if (label >= v0 && label < v0 + c)
        s.target[r] = x[label - v0];
    }
  }
}

/* One thread: the sums in row order. */
__global__ static void
ce_finish_k (CeScratch s, const gint32 *labels, gint64 N, gint64 V, int rows, float *out)
{
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  double loss = 0;
  gint64 count = 0;
  for (gint64 r = 0; r < N; r++) {
    gint32 label = labels[r];
    bool counted = label != CRIA_IGNORE_INDEX && label >= 0 && label < V;
    float lse = counted ? s.max[r] + logf (s.sum[r]) : 0.0f;
    out[2 + r] = lse;
    if (rows)
      out[2 + N + r] = counted ? lse - s.target[r] : 0.0f;
    if (counted) {
      loss += (double) lse - s.target[r];
      count++;
    }
  }
  out[0] = (float) loss;
  out[1] = (float) count;
}

/* logits become g (e^(x - lse) - onehot(label)), g = d/d sum (+ d/d ce_r);
 * 0 on rows that are not counted */
__global__ static void
ce_dlogits_k (float *x, const gint32 *labels, const float *lse, const float *grad, int rows, gint64 N, gint64 V,
              gint64 v0, gint64 c)
{
  GRID_LOOP (e, N * c)
  {
    gint64 r = e / c, j = e % c;
    gint32 label = labels[r];
    if (label == CRIA_IGNORE_INDEX || label < 0 || label >= V) {
      x[e] = 0;
      continue;
    }
    float g = rows ? grad[0] + grad[2 + N + r] : grad[0];
    x[e] = g * expf (x[e] - lse[r]);
    if (label == v0 + j)
      x[e] -= g;
  }
}

static gboolean gemm (CudaBackend *be, gint64 M, gint64 N, gint64 K, const float *A, gboolean ta, const float *B,
                      gboolean tb, float *C, float beta, gint64 batch, gint64 sa, gint64 sb, gint64 sc,
                      GError **error);

/* logits[N, c] = h w[v0 : v0 + c]^T */
static gboolean
ce_logits (CudaBackend *be, const CriaNode *n, const CeScratch *s, gint64 v0, gint64 c, GError **error)
{
  gint64 N = n->src[0]->shape[0], D = n->src[0]->shape[1];
  return cuda_gemm_weight (be, N, c, D, f32 (n->src[0]->value), FALSE, FALSE, n->src[1]->value, v0 * D, TRUE, s->logits,
                           FALSE, 0.0f, error);
}

gboolean
lm_head_ce_forward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  const gint32 *labels = i32 (n->src[2]->value);
  gint64 N = n->src[0]->shape[0], V = n->src[1]->shape[0], chunk = MIN (n->iparam[0], V);
  CeScratch s;
  if (!ce_scratch (be, N, chunk, &s, error))
    return FALSE;
  ce_init_k<<<blocks_for (N), THREADS, 0, be->stream>>> (s, N);
  if (!launched (n, error))
    return FALSE;
  for (gint64 v0 = 0; v0 < V; v0 += chunk) {
    gint64 c = MIN (chunk, V - v0);
    if (!ce_logits (be, n, &s, v0, c, error))
      return FALSE;
    ce_update_k<<<blocks_for_rows (N), THREADS, 0, be->stream>>> (s, labels, N, V, v0, c, be->bad_id);
    if (!launched (n, error))
      return FALSE;
  }
  ce_finish_k<<<1, 32, 0, be->stream>>> (s, labels, N, V, n->iparam[1] != 0, f32 (n->value));
  return launched (n, error);
}

gboolean
lm_head_ce_backward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  CriaNode *h = n->src[0], *w = n->src[1];
  if (!h->grad && !w->grad)
    return TRUE;
  const gint32 *labels = i32 (n->src[2]->value);
  gint64 N = h->shape[0], D = h->shape[1], V = w->shape[0], chunk = MIN (n->iparam[0], V);
  CeScratch s;
  if (!ce_scratch (be, N, chunk, &s, error))
    return FALSE;
  for (gint64 v0 = 0; v0 < V; v0 += chunk) {
    gint64 c = MIN (chunk, V - v0);
    if (!ce_logits (be, n, &s, v0, c, error))
      return FALSE;
    ce_dlogits_k<<<blocks_for (N * c), THREADS, 0, be->stream>>> (s.logits, labels, f32 (n->value) + 2, f32 (n->grad),
                                                                    n->iparam[1] != 0, N, V, v0, c);
    if (!launched (n, error))
      return FALSE;
    /* dh[N,D] += dlogits[N,c] w[v0:v0+c];  dw[v0:v0+c] += dlogits^T h */
    if (h->grad && !cuda_gemm_weight (be, N, D, c, s.logits, FALSE, FALSE, w->value, v0 * D, FALSE, f32 (h->grad),
                                      FALSE, 1.0f, error))
      return FALSE;
    if (w->grad && !gemm (be, c, D, N, s.logits, TRUE, f32 (h->value), FALSE, f32 (w->grad) + v0 * D, 1.0f, 1, 0, 0,
                          0, error))
      return FALSE;
  }
  return TRUE;
}
