/* cuda.h: what the files of the cuda backend share. */
#pragma once

#include <string.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cria/cria-backend.h>
#include <cria/cria-error.h>
#include <cria/cria-plugin.h>

/* cuBLASLt (540 MB) is opened when a backend is created, not linked: a
 * registry scan that loads this plugin does not map it. */
#define LT_FUNCS(X)                                                                                                    \
  X (cublasLtCreate)                                                                                                   \
  X (cublasLtDestroy)                                                                                                  \
  X (cublasLtGetStatusString)                                                                                          \
  X (cublasLtMatmul)                                                                                                   \
  X (cublasLtMatmulDescCreate)                                                                                         \
  X (cublasLtMatmulDescDestroy)                                                                                        \
  X (cublasLtMatmulDescSetAttribute)                                                                                   \
  X (cublasLtMatrixLayoutCreate)                                                                                       \
  X (cublasLtMatrixLayoutDestroy)                                                                                      \
  X (cublasLtMatrixLayoutSetAttribute)                                                                                 \
  X (cublasLtMatmulPreferenceCreate)                                                                                   \
  X (cublasLtMatmulPreferenceDestroy)                                                                                  \
  X (cublasLtMatmulPreferenceSetAttribute)                                                                             \
  X (cublasLtMatmulAlgoGetHeuristic)

typedef struct {
#define LT_POINTER(f_) __typeof__ (f_) *fn_##f_;
  LT_FUNCS (LT_POINTER)
#undef LT_POINTER
} CudaLt;

typedef struct {
  int device;
  struct cudaDeviceProp prop;
  cudaStream_t stream; /* every kernel and copy of the backend, in order */
  const CudaLt *blas;  /* the functions of libcublasLt */
  cublasLtHandle_t lt;
  void *lt_workspace; /* cuBLASLt's scratch, LT_WORKSPACE bytes */
  int *bad_id;        /* device word: an id or label was out of range (kernels cannot fail) */
  void *scratch;      /* per-kernel temporaries (norm statistics, logits chunks), grown */
  size_t scratch_bytes;
  void *wscratch; /* bf16/f16/NF4 weights widened for a product (cuda-weights.cu), grown */
  size_t wscratch_bytes;
  gboolean bf16_dot;  /* bf16 and NF4 weights times activations rounded to bf16 */
  gboolean tf32;      /* f32 products on tensor cores, inputs rounded to TF32 */
  size_t widen_bytes; /* the most of a weight widened at a time */
  /* activations=bf16: every op's output stored in bf16 (cuda_value_dtype),
   * every product bf16 x bf16 with f32 accumulation */
  gboolean bf16_act;
  void *oscratch; /* the bf16 operands of such a product (cuda_gemm), grown */
  size_t oscratch_bytes;
  void *sscratch; /* bf16 values widened for a kernel that reads f32 (cuda-kernels.cu), grown */
  size_t sscratch_bytes;
} CudaBackend;

/* What *bad_id holds: the first kernel that met an id it cannot take. */
enum { CUDA_BAD_NONE, CUDA_BAD_EMBEDDING_ID, CUDA_BAD_LABEL };

#define LT_WORKSPACE ((size_t) 32 << 20)

G_BEGIN_DECLS

/* FALSE with "cuda: WHAT: the runtime's message" unless e is cudaSuccess. */
gboolean cuda_check (cudaError_t e, const char *what, GError **error);
gboolean cuda_blas_init (CudaBackend *be, GError **error);
void cuda_blas_free (CudaBackend *be);
gboolean cuda_supports_op (gpointer backend, const CriaNode *node);
/* At least `bytes` of device scratch, valid until the next call: kernels of
 * one stream run in order, so one kernel's temporaries never meet another's. */
void *cuda_scratch (CudaBackend *be, size_t bytes, GError **error);
/* The same for weights widened by cuda_gemm_weight, apart from the above
 * (lm_head_ce's logits chunk is in it meanwhile). */
void *cuda_weight_scratch (CudaBackend *be, size_t bytes, GError **error);
/* The same for the operands cuda_gemm rounds to bf16 with activations=bf16,
 * apart from both above (they may hold those operands). */
void *cuda_operand_scratch (CudaBackend *be, size_t bytes, GError **error);
/* The same for the f32 copies of bf16 values that a kernel without bf16
 * loads reads (and its f32 output), apart from the three above: the
 * kernel's own temporaries go there meanwhile. Matmul, which reads bf16
 * itself, uses it for an f32 product it rounds. */
void *cuda_stage_scratch (CudaBackend *be, size_t bytes, GError **error);
/* The dtype a node's value is stored in (contract 1.3): bf16 for an f32
 * activation with activations=bf16 (lm_head_ce's losses excepted). */
CriaDType cuda_value_dtype (gpointer backend, const CriaNode *node);

/* One cuBLASLt product, row-major: C[M,N] (+)= op(A)[M,K] op(B)[K,N], each
 * operand as stored (A [M,K], [K,M] when ta; B [K,N], [N,K] when tb) with
 * `ld` elements between its rows; `batch` products sa, sb, sc elements apart
 * (sb = 0: one B for all); beta 1 adds to C. A and B are f32, or both bf16
 * (`bf16`), f32 compute (cuda-linear.cu). With activations=bf16, f32
 * operands are rounded to bf16 first, and a_bf16 or b_bf16 says that one
 * operand is a bf16 value already (read as it is). C is f32, or bf16
 * (c_bf16, beta 0 only: cuBLASLt rounds the f32 sums once). */
typedef struct {
  gint64 M, N, K;
  const void *A;
  gboolean ta;
  gint64 lda;
  const void *B;
  gboolean tb;
  gint64 ldb;
  void *C;
  gint64 ldc;
  float beta;
  gboolean bf16;
  gint64 batch, sa, sb, sc;
  gboolean a_bf16, b_bf16, c_bf16;
} CudaGemm;
gboolean cuda_gemm (CudaBackend *be, const CudaGemm *g, GError **error);

/* A matmul node's product: batch products of op(A) [M,K] and op(B) [K,N],
 * B shared by the batch when it has two dimensions. */
typedef struct {
  gint64 batch, M, N, K;
  gboolean ta, tb, b_shared;
} MatmulShape;
MatmulShape cuda_matmul_shape (const CriaNode *n);

/* C[M,N] (+)= op(A)[M,K] op(W)[K,N] for a 2-D weight W of any dtype (f32,
 * bf16, f16, NF4) whose first element is element w0 of `w` ([K,N] as
 * stored, [N,K] when tb); A and C f32 or bf16 as in cuda_gemm, without a
 * row stride (cuda-weights.cu). */
gboolean cuda_gemm_weight (CudaBackend *be, gint64 M, gint64 N, gint64 K, const void *A, gboolean a_bf16, gboolean ta,
                           const CriaTensor *w, gint64 w0, gboolean tb, void *C, gboolean c_bf16, float beta,
                           GError **error);

/* The largest head dimension the attention kernel takes (a warp per query
 * row, ATTN_MAX_D / 32 accumulators per lane). */
#define ATTN_MAX_D 512

/* cuda-kernels.cu: the kernel table (CRIA_N_OPS entries; NULL: not
 * implemented), filled by cuda_kernels_init when the plugin loads. */
extern CriaKernel cuda_kernels[];
void cuda_kernels_init (void);
/* cuda-weights.cu: matmul and embedding with weights that are not f32 (the
 * f32 kernels of the table stay for the rest) and dequantize; called by
 * cuda_kernels_init. */
void cuda_weights_init (void);
/* cuda-weights.cu: n floats rounded to bf16 (nearest, ties to even): into
 * y, or in place, each kept as the f32 of its bf16 value. */
gboolean cuda_to_bf16 (CudaBackend *be, const float *x, gint64 n, guint16 *y, GError **error);
/* n bf16 values widened to f32 (exact). */
gboolean cuda_from_bf16 (CudaBackend *be, const guint16 *x, gint64 n, float *y, GError **error);

/* cuda-optim.cu: the optimizer entries of contract 1.2. */
gboolean cuda_accumulate (gpointer self, float *dst, const float *src, gsize n, GError **error);
gboolean cuda_grad_sumsq (gpointer self, const CriaOptimSpan *spans, guint n_spans, float pre, double *sumsq,
                          GError **error);
gboolean cuda_adamw_step (gpointer self, const CriaOptimSpan *spans, guint n_spans, const CriaAdamwScalars *s,
                          GError **error);

G_END_DECLS

#ifdef __cplusplus
/* bf16 in kernels (.cu files only), as cria_bf16_to_f32 and
 * cria_f32_to_bf16: widening is exact; rounding is to nearest, ties to
 * even, and a NaN stays a quiet NaN. */
__device__ static inline float
cuda_bf16_value (guint16 h)
{
  guint32 u = (guint32) h << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

__device__ static inline guint16
cuda_bf16_round (float f)
{
  guint32 u;
  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (guint16) (u >> 16);
}
#endif
