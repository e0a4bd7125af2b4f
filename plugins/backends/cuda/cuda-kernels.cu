/* cuda-kernels.cu: the kernels of the cuda backend, f32 only.
 *
 * NEVER RUN ON A GPU: compiled by nvcc on a machine without one. Their math
 * mirrors plugins/backends/cpu/cpu-ops.c line for line; tests/cuda/
 * device-check.sh compares them with the cpu backend on a GPU machine.
 *
 * Each kernel is queued on the backend's stream and returns at once; the
 * launch error, if any, is reported by cudaGetLastError at synchronize. An
 * embedding id outside the table cannot be reported from a kernel: it sets
 * the backend's error word, which synchronize downloads. */
#include "config.h"

#include "cuda.h"

#define THREADS 256

static unsigned
blocks_for (gint64 n)
{
  gint64 b = (n + THREADS - 1) / THREADS;
  return (unsigned) MIN (b, (gint64) 65535 * 32);
}

#define GRID_LOOP(i_, n_) for (gint64 i_ = blockIdx.x * (gint64) blockDim.x + threadIdx.x; i_ < (n_); i_ += (gint64) gridDim.x * blockDim.x)

static gint64
numel (const CriaNode *n)
{
  return cria_shape_numel (n->n_dims, n->shape);
}

static float *
f32 (const CriaTensor *t)
{
  return (float *) t->data;
}

static CudaBackend *
be_of (gpointer self)
{
  return (CudaBackend *) self;
}

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
unary_fwd (int which, const float *x, float *y, gint64 n)
{
  GRID_LOOP (i, n)
  y[i] = which == UN_GELU ? gelu_f (x[i]) : silu_f (x[i]);
}

__global__ static void
unary_bwd (int which, const float *x, const float *dy, float *dx, gint64 n)
{
  GRID_LOOP (i, n)
  dx[i] += dy[i] * (which == UN_GELU ? gelu_d (x[i]) : silu_d (x[i]));
}

static gboolean
unary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  unary_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU,
                                                                         f32 (n->src[0]->value), f32 (n->value), count);
  return TRUE;
}

static gboolean
unary_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  unary_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU, f32 (n->src[0]->value), f32 (n->grad), f32 (n->src[0]->grad), count);
  return TRUE;
}

/* swiglu: y = silu(g) u;  dg += dy u silu'(g);  du += dy silu(g) */
__global__ static void
swiglu_fwd (const float *g, const float *u, float *y, gint64 n)
{
  GRID_LOOP (i, n)
  y[i] = silu_f (g[i]) * u[i];
}

__global__ static void
swiglu_bwd (const float *g, const float *u, const float *dy, float *dg, float *du, gint64 n)
{
  GRID_LOOP (i, n)
  {
    if (dg)
      dg[i] += dy[i] * u[i] * silu_d (g[i]);
    if (du)
      du[i] += dy[i] * silu_f (g[i]);
  }
}

static gboolean
swiglu_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  swiglu_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (f32 (n->src[0]->value),
                                                                          f32 (n->src[1]->value), f32 (n->value), count);
  return TRUE;
}

static gboolean
swiglu_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  float *dg = n->src[0]->grad ? f32 (n->src[0]->grad) : NULL, *du = n->src[1]->grad ? f32 (n->src[1]->grad) : NULL;
  swiglu_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      f32 (n->src[0]->value), f32 (n->src[1]->value), f32 (n->grad), dg, du, count);
  return TRUE;
}

/* add: y = a + b;  da += dy;  db += sum dy.   mul: y = a b;  da += dy b;  db += sum dy a
 * (b broadcast over a's leading dims: b[i % nb]) */
__global__ static void
binary_fwd (int add, const float *a, const float *b, float *y, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  y[i] = add ? a[i] + b[i % nb] : a[i] * b[i % nb];
}

__global__ static void
binary_bwd_a (int add, const float *b, const float *dy, float *da, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  da[i] += add ? dy[i] : dy[i] * b[i % nb];
}

/* one thread per element of b, summing its rows in order (as the cpu does) */
__global__ static void
binary_bwd_b (int add, const float *a, const float *dy, float *db, gint64 na, gint64 nb)
{
  GRID_LOOP (j, nb)
  {
    float s = db[j];
    for (gint64 i = j; i < na; i += nb)
      s += add ? dy[i] : dy[i] * a[i];
    db[j] = s;
  }
}

static gboolean
binary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  binary_fwd<<<blocks_for (na), THREADS, 0, be_of (self)->stream>>> (
      n->op == CRIA_OP_ADD, f32 (n->src[0]->value), f32 (n->src[1]->value), f32 (n->value), na, nb);
  return TRUE;
}

static gboolean
binary_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  cudaStream_t s = be_of (self)->stream;
  int add = n->op == CRIA_OP_ADD;
  if (n->src[0]->grad)
    binary_bwd_a<<<blocks_for (na), THREADS, 0, s>>> (add, f32 (n->src[1]->value), f32 (n->grad),
                                                        f32 (n->src[0]->grad), na, nb);
  if (n->src[1]->grad)
    binary_bwd_b<<<blocks_for (nb), THREADS, 0, s>>> (add, f32 (n->src[0]->value), f32 (n->grad),
                                                        f32 (n->src[1]->grad), na, nb);
  return TRUE;
}

/* y = s a;  da += s dy */
__global__ static void
scale_fwd (float k, const float *a, float *y, gint64 n)
{
  GRID_LOOP (i, n)
  y[i] = k * a[i];
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
  scale_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], f32 (n->src[0]->value),
                                                                         f32 (n->value), count);
  return TRUE;
}

static gboolean
scale_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  axpy<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], f32 (n->grad),
                                                                    f32 (n->src[0]->grad), count);
  return TRUE;
}

/* reshape: the same elements; its backward adds them back */
static gboolean
reshape_forward (gpointer self, CriaNode *n, GError **error)
{
  return cuda_check (cudaMemcpyAsync (n->value->data, n->src[0]->value->data, (size_t) numel (n) * sizeof (float),
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
  return TRUE;
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
      atomicCAS (bad, 0, 1); /* synchronize reports it */
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
  return TRUE;
}

static gboolean
embedding_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[1]->grad)
    return TRUE;
  gint64 T = numel (n->src[0]), V = n->src[1]->shape[0], D = n->shape[n->n_dims - 1];
  embedding_bwd<<<blocks_for (T * D), THREADS, 0, be_of (self)->stream>>> (
      (const gint32 *) n->src[0]->value->data, f32 (n->grad), f32 (n->src[1]->grad), T, D, V);
  return TRUE;
}

/* ---- matmul through cuBLASLt: C (+)= op(A) op(B), row-major, f32 ------------- */

/* Row-major C[M,N] = op(A)[M,K] op(B)[K,N] is column-major C^T = op(B)^T op(A)^T:
 * cuBLASLt gets B as its first operand. `batch` products, A, B and C
 * `sa`, `sb`, `sc` floats apart (sb = 0: one B for all); beta 1 adds to C. */
static gboolean
gemm (CudaBackend *be, gint64 M, gint64 N, gint64 K, const float *A, gboolean ta, const float *B, gboolean tb,
      float *C, float beta, gint64 batch, gint64 sa, gint64 sb, gint64 sc, GError **error)
{
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
  cublasStatus_t s = lt->fn_cublasLtMatmulDescCreate (&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatmulDescSetAttribute (desc, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa);
  /* stored shapes, column-major: B is [K,N] row-major = N x K col-major (ld N), or [N,K] = K x N (ld K) */
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&la, CUDA_R_32F, tb ? K : N, tb ? N : K, tb ? K : N);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&lb, CUDA_R_32F, ta ? M : K, ta ? K : M, ta ? M : K);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = lt->fn_cublasLtMatrixLayoutCreate (&lc, CUDA_R_32F, N, M, N);
  cublasLtMatrixLayout_t layouts[3] = { la, lb, lc };
  int64_t strides[3] = { sb, sa, sc };
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

typedef struct {
  gint64 batch, M, N, K;
  gboolean ta, tb, b_shared;
} MatmulShape;

static MatmulShape
matmul_shape (const CriaNode *n)
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

static gboolean
matmul_forward (gpointer self, CriaNode *n, GError **error)
{
  MatmulShape s = matmul_shape (n);
  const float *A = f32 (n->src[0]->value), *B = f32 (n->src[1]->value);
  float *C = f32 (n->value);
  if (s.b_shared && !s.ta) /* the batch folds into M */
    return gemm (be_of (self), s.batch * s.M, s.N, s.K, A, FALSE, B, s.tb, C, 0.0f, 1, 0, 0, 0, error);
  return gemm (be_of (self), s.M, s.N, s.K, A, s.ta, B, s.tb, C, 0.0f, s.batch, s.M * s.K, s.b_shared ? 0 : s.K * s.N,
               s.M * s.N, error);
}

/* dA: (!ta) dA[M,K] += dC op(B)^T;   (ta) dA[K,M] += op(B) dC^T
 * dB: (!tb) dB[K,N] += op(A)^T dC;   (tb) dB[N,K] += dC^T op(A)
 * A shared B sums over the batch: folded into the inner dim when A is not
 * transposed, one product per batch added in order otherwise. */
static gboolean
matmul_backward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  MatmulShape s = matmul_shape (n);
  const float *A = f32 (n->src[0]->value), *B = f32 (n->src[1]->value), *dC = f32 (n->grad);
  gint64 sa = s.M * s.K, sb = s.b_shared ? 0 : s.K * s.N, sc = s.M * s.N;
  if (n->src[0]->grad) {
    float *dA = f32 (n->src[0]->grad);
    gboolean ok = !s.ta ? gemm (be, s.M, s.K, s.N, dC, FALSE, B, !s.tb, dA, 1.0f, s.batch, sc, sb, sa, error)
                        : gemm (be, s.K, s.M, s.N, B, s.tb, dC, TRUE, dA, 1.0f, s.batch, sb, sc, sa, error);
    if (!ok)
      return FALSE;
  }
  if (!n->src[1]->grad)
    return TRUE;
  float *dB = f32 (n->src[1]->grad);
  if (!s.b_shared)
    return !s.tb ? gemm (be, s.K, s.N, s.M, A, !s.ta, dC, FALSE, dB, 1.0f, s.batch, sa, sc, sb, error)
                 : gemm (be, s.N, s.K, s.M, dC, TRUE, A, s.ta, dB, 1.0f, s.batch, sc, sa, sb, error);
  if (!s.ta) /* rows of every batch are rows of one [batch*M, K] A */
    return !s.tb ? gemm (be, s.K, s.N, s.batch * s.M, A, TRUE, dC, FALSE, dB, 1.0f, 1, 0, 0, 0, error)
                 : gemm (be, s.N, s.K, s.batch * s.M, dC, TRUE, A, FALSE, dB, 1.0f, 1, 0, 0, 0, error);
  for (gint64 i = 0; i < s.batch; i++) {
    const float *Ai = A + i * sa, *dCi = dC + i * sc;
    gboolean ok = !s.tb ? gemm (be, s.K, s.N, s.M, Ai, FALSE, dCi, FALSE, dB, 1.0f, 1, 0, 0, 0, error)
                        : gemm (be, s.N, s.K, s.M, dCi, TRUE, Ai, TRUE, dB, 1.0f, 1, 0, 0, 0, error);
    if (!ok)
      return FALSE;
  }
  return TRUE;
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
}
}
