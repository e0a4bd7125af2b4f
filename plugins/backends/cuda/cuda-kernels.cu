/* cuda-kernels.cu: the kernels of the cuda backend, f32 (and bf16 values
 * with activations=bf16: see the end of this file; weights of
 * other dtypes: cuda-weights.cu). Their helpers, and how a kernel runs:
 * cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- element-wise ---------------------------------------------------------- */

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

__device__ static float
gelu_f (float x)
{
  return 0.5f * x * (1.0f + tanhf (GELU_C * (x + 0.044715f * x * x * x)));
}

__device__ static float
gelu_d (float x)
{
  float t = tanhf (GELU_C * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
}

__device__ static float
silu_f (float x)
{
  return x / (1.0f + expf (-x));
}

__device__ static float
silu_d (float x)
{
  float s = 1.0f / (1.0f + expf (-x));
  return s * (1.0f + x * (1.0f - s));
}

enum { UN_GELU, UN_SILU };

__global__ static void
unary_fwd (int which, Val x, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float v = ld (x, i);
    st (y, i, which == UN_GELU ? gelu_f (v) : silu_f (v));
  }
}

__global__ static void
unary_bwd (int which, Val x, const float *dy, float *dx, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float v = ld (x, i);
    dx[i] += dy[i] * (which == UN_GELU ? gelu_d (v) : silu_d (v));
  }
}

static gboolean
unary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  unary_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU,
                                                                         val (n->src[0]->value), val (n->value), count);
  return launched (n, error);
}

static gboolean
unary_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  unary_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU, val (n->src[0]->value), f32 (n->grad), f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* swiglu: y = silu(g) u;  dg += dy u silu'(g);  du += dy silu(g) */
__global__ static void
swiglu_fwd (Val g, Val u, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  st (y, i, silu_f (ld (g, i)) * ld (u, i));
}

__global__ static void
swiglu_bwd (Val g, Val u, const float *dy, float *dg, float *du, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float gi = ld (g, i);
    if (dg)
      dg[i] += dy[i] * ld (u, i) * silu_d (gi);
    if (du)
      du[i] += dy[i] * silu_f (gi);
  }
}

static gboolean
swiglu_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  swiglu_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      val (n->src[0]->value), val (n->src[1]->value), val (n->value), count);
  return launched (n, error);
}

static gboolean
swiglu_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  float *dg = n->src[0]->grad ? f32 (n->src[0]->grad) : NULL, *du = n->src[1]->grad ? f32 (n->src[1]->grad) : NULL;
  swiglu_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      val (n->src[0]->value), val (n->src[1]->value), f32 (n->grad), dg, du, count);
  return launched (n, error);
}

/* add: y = a + b;  da += dy;  db += sum dy.   mul: y = a b;  da += dy b;  db += sum dy a
 * (b broadcast over a's leading dims: b[i % nb]) */
__global__ static void
binary_fwd (int add, Val a, Val b, Val y, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  {
    float x = ld (a, i), z = ld (b, i % nb);
    st (y, i, add ? x + z : x * z);
  }
}

__global__ static void
binary_bwd_a (int add, Val b, const float *dy, float *da, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  da[i] += add ? dy[i] : dy[i] * ld (b, i % nb);
}

/* one thread per element of b, summing its rows in order (as the cpu does) */
__global__ static void
binary_bwd_b (int add, Val a, const float *dy, float *db, gint64 na, gint64 nb)
{
  GRID_LOOP (j, nb)
  {
    float s = db[j];
    for (gint64 i = j; i < na; i += nb)
      s += add ? dy[i] : dy[i] * ld (a, i);
    db[j] = s;
  }
}

static gboolean
binary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  binary_fwd<<<blocks_for (na), THREADS, 0, be_of (self)->stream>>> (n->op == CRIA_OP_ADD, val (n->src[0]->value),
                                                                       val (n->src[1]->value), val (n->value), na, nb);
  return launched (n, error);
}

static gboolean
binary_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  cudaStream_t s = be_of (self)->stream;
  int add = n->op == CRIA_OP_ADD;
  if (n->src[0]->grad)
    binary_bwd_a<<<blocks_for (na), THREADS, 0, s>>> (add, val (n->src[1]->value), f32 (n->grad),
                                                        f32 (n->src[0]->grad), na, nb);
  if (n->src[1]->grad)
    binary_bwd_b<<<blocks_for (nb), THREADS, 0, s>>> (add, val (n->src[0]->value), f32 (n->grad),
                                                        f32 (n->src[1]->grad), na, nb);
  return launched (n, error);
}

/* y = s a;  da += s dy */
__global__ static void
scale_fwd (float k, Val a, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  st (y, i, k * ld (a, i));
}

__global__ static void
axpy (float k, const float *x, float *y, gint64 n)
{
  GRID_LOOP (i, n)
  y[i] += k * x[i];
}

static gboolean
scale_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  scale_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], val (n->src[0]->value),
                                                                         val (n->value), count);
  return launched (n, error);
}

static gboolean
scale_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  axpy<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], f32 (n->grad),
                                                                    f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* reshape: the same elements; its backward adds them back */
static gboolean
reshape_forward (gpointer self, CriaNode *n, GError **error)
{
  /* bf16 values with activations=bf16 (forward_stored), moved as they are */
  size_t esize = is_bf16 (n->value) ? sizeof (guint16) : sizeof (float);
  return cuda_check (cudaMemcpyAsync (n->value->data, n->src[0]->value->data, (size_t) numel (n) * esize,
                                      cudaMemcpyDeviceToDevice, be_of (self)->stream),
                     "reshape", error);
}

static gboolean
reshape_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  axpy<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (1.0f, f32 (n->grad), f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* ---- embedding: y[t] = table[ids[t]];  dtable[ids[t]] += dy[t] ------------- */

__global__ static void
embedding_fwd (const gint32 *ids, const float *table, float *y, gint64 T, gint64 D, gint64 V, int *bad)
{
  GRID_LOOP (i, T * D)
  {
    gint64 t = i / D, d = i % D;
    gint32 id = ids[t];
    if (id < 0 || id >= V) {
      atomicCAS (bad, CUDA_BAD_NONE, CUDA_BAD_EMBEDDING_ID); /* synchronize reports it */
      y[i] = 0;
    } else {
      y[i] = table[id * D + d];
    }
  }
}

/* atomics: ids may repeat, so the order of the sums is not the cpu's */
__global__ static void
embedding_bwd (const gint32 *ids, const float *dy, float *dt, gint64 T, gint64 D, gint64 V)
{
  GRID_LOOP (i, T * D)
  {
    gint32 id = ids[i / D];
    if (id >= 0 && id < V)
      atomicAdd (&dt[id * D + i % D], dy[i]);
  }
}

static gboolean
embedding_forward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  gint64 T = numel (n->src[0]), V = n->src[1]->shape[0], D = n->shape[n->n_dims - 1];
  embedding_fwd<<<blocks_for (T * D), THREADS, 0, be->stream>>> ((const gint32 *) n->src[0]->value->data,
                                                                   f32 (n->src[1]->value), f32 (n->value), T, D, V,
                                                                   be->bad_id);
  return launched (n, error);
}

static gboolean
embedding_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[1]->grad)
    return TRUE;
  gint64 T = numel (n->src[0]), V = n->src[1]->shape[0], D = n->shape[n->n_dims - 1];
  embedding_bwd<<<blocks_for (T * D), THREADS, 0, be_of (self)->stream>>> (
      (const gint32 *) n->src[0]->value->data, f32 (n->grad), f32 (n->src[1]->grad), T, D, V);
  return launched (n, error);
}

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
static gboolean
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
static gboolean
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

static gboolean
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

static gboolean
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

static gboolean
rope_forward (gpointer self, CriaNode *n, GError **error)
{
  return rope_run (be_of (self), n, FALSE, error);
}

static gboolean
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

static gboolean
softmax_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 D = last_dim (n), rows = numel (n) / D;
  softmax_fwd_k<<<blocks_for_rows (rows), THREADS, 0, be_of (self)->stream>>> (val (n->src[0]->value), val (n->value),
                                                                                 rows, D);
  return launched (n, error);
}

static gboolean
softmax_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 D = last_dim (n), rows = numel (n) / D;
  softmax_bwd_k<<<blocks_for_rows (rows), THREADS, 0, be_of (self)->stream>>> (val (n->value), f32 (n->grad),
                                                                                 f32 (n->src[0]->grad), rows, D);
  return launched (n, error);
}

/* ---- dropout: the cpu backend's mask, a splitmix64 hash of (seed, index),
 * recomputed in backward; kept elements scaled by 1/(1-p). -------------------- */

__device__ static bool
dropout_keep (guint64 seed, gint64 i, float p)
{
  guint64 z = seed + 0x9e3779b97f4a7c15ull * (guint64) (i + 1); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float) (z >> 40) * (1.0f / 16777216.0f) >= p;
}

__global__ static void
dropout_k (Val x, Val y, gint64 n, guint64 seed, float p, float k, int add)
{
  GRID_LOOP (i, n)
  {
    float v = dropout_keep (seed, i, p) ? ld (x, i) * k : 0.0f;
    st (y, i, add ? ld (y, i) + v : v);
  }
}

static gboolean
dropout_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  float p = n->fparam[0], k = 1.0f / (1.0f - p);
  gint64 count = numel (n);
  dropout_k<<<blocks_for (count), THREADS, 0, be->stream>>> (val (backward ? n->grad : n->src[0]->value),
                                                               val (backward ? n->src[0]->grad : n->value), count,
                                                               (guint64) n->iparam[0], p, k, backward);
  return launched (n, error);
}

static gboolean
dropout_forward (gpointer self, CriaNode *n, GError **error)
{
  return dropout_run (be_of (self), n, FALSE, error);
}

static gboolean
dropout_backward (gpointer self, CriaNode *n, GError **error)
{
  return n->src[0]->grad ? dropout_run (be_of (self), n, TRUE, error) : TRUE;
}

/* ---- permute, concat, slice: moves, whose backward moves (adds) back ------ */

typedef struct {
  gint64 shape[CRIA_MAX_DIMS]; /* of the output, 1 past its dims */
  gint64 st[CRIA_MAX_DIMS];    /* the input's stride of each output dim */
} Perm;

/* y[o0,o1,o2,o3] = x[sum o_i st_i]: a bijection, so backward has no races.
 * half: a forward of bf16 values (activations=bf16), moved as they are. */
__global__ static void
permute_k (Perm pm, const void *src, void *dst, gint64 n, int backward, int half)
{
  GRID_LOOP (o, n)
  {
    gint64 rest = o, in = 0;
    for (int d = CRIA_MAX_DIMS - 1; d >= 0; d--) {
      in += rest % pm.shape[d] * pm.st[d];
      rest /= pm.shape[d];
    }
    if (backward)
      ((float *) dst)[in] += ((const float *) src)[o];
    else if (half)
      ((guint16 *) dst)[o] = ((const guint16 *) src)[in];
    else
      ((float *) dst)[o] = ((const float *) src)[in];
  }
}

static gboolean
permute_run (CudaBackend *be, CriaNode *n, const void *src, void *dst, gboolean backward, GError **error)
{
  const CriaNode *a = n->src[0];
  gint64 in_stride[CRIA_MAX_DIMS] = { 0 }, s = 1;
  for (int d = a->n_dims - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= a->shape[d];
  }
  Perm pm;
  for (int i = 0; i < CRIA_MAX_DIMS; i++) {
    pm.shape[i] = n->shape[i];
    pm.st[i] = i < a->n_dims ? in_stride[n->iparam[i]] : 0;
  }
  gint64 count = numel (n);
  permute_k<<<blocks_for (count), THREADS, 0, be->stream>>> (pm, src, dst, count, backward,
                                                               !backward && is_bf16 (n->value));
  return launched (n, error);
}

static gboolean
permute_forward (gpointer self, CriaNode *n, GError **error)
{
  return permute_run (be_of (self), n, n->src[0]->value->data, n->value->data, FALSE, error);
}

static gboolean
permute_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  return permute_run (be_of (self), n, f32 (n->grad), f32 (n->src[0]->grad), TRUE, error);
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

/* cpu-ops.c's window_move, one thread per element of the part; half: bf16
 * values (a forward with activations=bf16), moved as they are */
__global__ static void
window_k (gint64 outer, gint64 part_row, gint64 whole_row, gint64 offset, void *part, void *whole, int to_whole,
          int add, int half)
{
  GRID_LOOP (e, outer * part_row)
  {
    gint64 r = e / part_row, i = e % part_row, at = r * whole_row + offset + i;
    if (half) {
      guint16 *p = (guint16 *) part + e, *w = (guint16 *) whole + at;
      if (to_whole)
        *w = *p;
      else
        *p = *w;
      continue;
    }
    float *p = (float *) part + e, *w = (float *) whole + at;
    if (to_whole)
      *w = add ? *w + *p : *p;
    else
      *p = add ? *p + *w : *w;
  }
}

static gboolean
window_move (CudaBackend *be, const CriaNode *n, gint64 outer, gint64 part_row, gint64 whole_row, gint64 offset,
             void *part, void *whole, gboolean to_whole, gboolean add, GError **error)
{
  /* only a forward moves values; gradients are f32 */
  int half = !add && is_bf16 (n->value);
  window_k<<<blocks_for (outer * part_row), THREADS, 0, be->stream>>> (outer, part_row, whole_row, offset, part,
                                                                         whole, to_whole, add, half);
  return launched (n, error);
}

static gboolean
concat_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 whole_row = n->shape[dim] * inner, offset = 0;
  for (int s = 0; s < 2; s++) {
    CriaNode *part = n->src[s];
    gint64 part_row = part->shape[dim] * inner;
    gboolean ok = TRUE;
    if (!backward)
      ok = window_move (be, n, outer, part_row, whole_row, offset, part->value->data, n->value->data, TRUE, FALSE,
                        error);
    else if (part->grad)
      ok = window_move (be, n, outer, part_row, whole_row, offset, f32 (part->grad), f32 (n->grad), FALSE, TRUE,
                        error);
    if (!ok)
      return FALSE;
    offset += part_row;
  }
  return TRUE;
}

static gboolean
concat_forward (gpointer self, CriaNode *n, GError **error)
{
  return concat_run (be_of (self), n, FALSE, error);
}

static gboolean
concat_backward (gpointer self, CriaNode *n, GError **error)
{
  return concat_run (be_of (self), n, TRUE, error);
}

static gboolean
slice_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  CriaNode *a = n->src[0];
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 part_row = n->shape[dim] * inner, whole_row = a->shape[dim] * inner, offset = n->iparam[1] * inner;
  if (!backward)
    return window_move (be, n, outer, part_row, whole_row, offset, n->value->data, a->value->data, FALSE, FALSE, error);
  if (!a->grad)
    return TRUE;
  return window_move (be, n, outer, part_row, whole_row, offset, f32 (n->grad), f32 (a->grad), TRUE, TRUE, error);
}

static gboolean
slice_forward (gpointer self, CriaNode *n, GError **error)
{
  return slice_run (be_of (self), n, FALSE, error);
}

static gboolean
slice_backward (gpointer self, CriaNode *n, GError **error)
{
  return slice_run (be_of (self), n, TRUE, error);
}

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

static gboolean
attention_forward (gpointer self, CriaNode *n, GError **error)
{
  Attn a = attn_args (n);
  attn_fwd_k<<<blocks_for_warps (a.B * a.Hq * a.Tq), THREADS, 0, be_of (self)->stream>>> (a, f32 (n->value));
  return launched (n, error);
}

static gboolean
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

static gboolean
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

static gboolean
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

/* ---- activations=bf16: values stored in bf16 (cuda_value_dtype). Matmul
 * (cuBLASLt reads and writes bf16), dequantize, the element-wise ops,
 * norms, rope and softmax (through Val: loads widen, stores round) and the
 * moves (reshape, permute, slice, concat: bf16 values moved as they are,
 * never rounded) take them as stored. Embedding, attention and lm_head_ce
 * read and write f32: stage () widens the
 * bf16 values it reads into f32 scratch and puts them in place of the
 * stored ones for the call; a forward's output goes to f32 scratch too and
 * is rounded into the node's bf16 value after. So each such kernel gives
 * its f32 result rounded to bf16, and the graph keeps bf16 (half the
 * memory) between kernels; the scratch holds one kernel's operands at a
 * time. lm_head_ce's output (the loss sums, each row's logsumexp) is no
 * activation: it stays f32. ------------------------------------------------ */

/* the kernels as written, which the table's entries call or stage */
static CriaKernel plain[CRIA_N_OPS];

/* Whether the node's kernel reads and writes its values as stored. */
static gboolean
takes_stored (const CriaNode *n, gboolean backward)
{
  switch (n->op) {
    case CRIA_OP_MATMUL:
    case CRIA_OP_DEQUANTIZE:
    case CRIA_OP_GELU:
    case CRIA_OP_SILU:
    case CRIA_OP_SWIGLU:
    case CRIA_OP_ADD:
    case CRIA_OP_MUL:
    case CRIA_OP_SCALE:
    case CRIA_OP_LAYERNORM:
    case CRIA_OP_RMSNORM:
    case CRIA_OP_ROPE:
    case CRIA_OP_SOFTMAX:
    case CRIA_OP_DROPOUT:
      return TRUE;
    case CRIA_OP_RESHAPE:
    case CRIA_OP_PERMUTE:
    case CRIA_OP_SLICE:
    case CRIA_OP_CONCAT: /* a move of values of one dtype (an f32 input rounds) */
      if (backward)
        return TRUE; /* moves gradients only */
      for (int i = 0; i < n->n_src; i++)
        if (n->src[i]->value->dtype != n->value->dtype)
          return FALSE;
      return TRUE;
    default:
      return FALSE;
  }
}

typedef struct {
  CriaNode *node;
  CriaTensor *stored;
  CriaTensor staged; /* an f32 tensor over scratch */
  size_t offset;     /* of its data in the scratch */
} Staged;

static gboolean
stage (gpointer self, CriaNode *n, gboolean backward, GError **error)
{
  CudaBackend *be = be_of (self);
  Staged st[CRIA_MAX_SRC + 1];
  int k = 0;
  size_t bytes = 0;
  /* the bf16 activations the kernel reads (each once), and the node's own;
   * a bf16 param is a weight, which the kernels read as it is */
  for (int i = 0; i <= n->n_src; i++) {
    CriaNode *m = i < n->n_src ? n->src[i] : n;
    gboolean seen = FALSE;
    for (int j = 0; j < k; j++)
      seen |= st[j].node == m;
    if (!m || seen || m->op == CRIA_OP_PARAM || m->op == CRIA_OP_INPUT || !is_bf16 (m->value))
      continue;
    st[k].node = m;
    st[k].stored = m->value;
    st[k].staged = *m->value;
    st[k].staged.dtype = CRIA_DTYPE_F32;
    st[k].offset = bytes;
    bytes += ((size_t) cria_tensor_numel (m->value) * sizeof (float) + 255) / 256 * 256;
    k++;
  }
  char *mem = (char *) cuda_stage_scratch (be, MAX (bytes, 1), error);
  if (!mem)
    return FALSE;
  for (int j = 0; j < k; j++) {
    st[j].staged.data = mem + st[j].offset;
    /* a forward writes its own value: nothing to widen */
    if ((backward || st[j].node != n) && !cuda_from_bf16 (be, (const guint16 *) st[j].stored->data,
                                                          cria_tensor_numel (st[j].stored), f32 (&st[j].staged), error))
      return FALSE;
  }
  for (int j = 0; j < k; j++)
    st[j].node->value = &st[j].staged;
  gboolean ok = backward ? plain[n->op].backward (self, n, error) : plain[n->op].forward (self, n, error);
  for (int j = 0; j < k; j++)
    st[j].node->value = st[j].stored;
  for (int j = 0; ok && !backward && j < k; j++)
    if (st[j].node == n)
      ok = cuda_to_bf16 (be, f32 (&st[j].staged), numel (n), (guint16 *) n->value->data, error);
  return ok;
}

static gboolean
forward_stored (gpointer self, CriaNode *n, GError **error)
{
  if (!be_of (self)->bf16_act || takes_stored (n, FALSE))
    return plain[n->op].forward (self, n, error);
  return stage (self, n, FALSE, error);
}

static gboolean
backward_stored (gpointer self, CriaNode *n, GError **error)
{
  if (!be_of (self)->bf16_act || takes_stored (n, TRUE))
    return plain[n->op].backward (self, n, error);
  return stage (self, n, TRUE, error);
}

/* ---- the table ------------------------------------------------------------- */

static CriaKernel
k (gboolean (*fwd) (gpointer, CriaNode *, GError **), gboolean (*bwd) (gpointer, CriaNode *, GError **))
{
  CriaKernel kernel = { fwd, bwd };
  return kernel;
}

extern "C" {

CriaKernel cuda_kernels[CRIA_N_OPS];

void
cuda_kernels_init (void)
{
  cuda_kernels[CRIA_OP_MATMUL] = k (matmul_forward, matmul_backward);
  cuda_kernels[CRIA_OP_EMBEDDING] = k (embedding_forward, embedding_backward);
  cuda_kernels[CRIA_OP_GELU] = k (unary_forward, unary_backward);
  cuda_kernels[CRIA_OP_SILU] = k (unary_forward, unary_backward);
  cuda_kernels[CRIA_OP_SWIGLU] = k (swiglu_forward, swiglu_backward);
  cuda_kernels[CRIA_OP_ADD] = k (binary_forward, binary_backward);
  cuda_kernels[CRIA_OP_MUL] = k (binary_forward, binary_backward);
  cuda_kernels[CRIA_OP_SCALE] = k (scale_forward, scale_backward);
  cuda_kernels[CRIA_OP_RESHAPE] = k (reshape_forward, reshape_backward);
  cuda_kernels[CRIA_OP_LAYERNORM] = k (norm_forward, norm_backward);
  cuda_kernels[CRIA_OP_RMSNORM] = k (norm_forward, norm_backward);
  cuda_kernels[CRIA_OP_ROPE] = k (rope_forward, rope_backward);
  cuda_kernels[CRIA_OP_ATTENTION] = k (attention_forward, attention_backward);
  cuda_kernels[CRIA_OP_SOFTMAX] = k (softmax_forward, softmax_backward);
  cuda_kernels[CRIA_OP_PERMUTE] = k (permute_forward, permute_backward);
  cuda_kernels[CRIA_OP_CONCAT] = k (concat_forward, concat_backward);
  cuda_kernels[CRIA_OP_SLICE] = k (slice_forward, slice_backward);
  cuda_kernels[CRIA_OP_DROPOUT] = k (dropout_forward, dropout_backward);
  cuda_kernels[CRIA_OP_LM_HEAD_CE] = k (lm_head_ce_forward, lm_head_ce_backward);
  /* weights that are not f32, and dequantize */
  cuda_weights_init ();
  for (int op = 0; op < CRIA_N_OPS; op++)
    if (cuda_kernels[op].forward) {
      plain[op] = cuda_kernels[op];
      cuda_kernels[op].forward = forward_stored;
      if (cuda_kernels[op].backward)
        cuda_kernels[op].backward = backward_stored;
    }
}
}
