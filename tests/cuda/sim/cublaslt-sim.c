/* cublaslt-sim.c: libcublasLt.so.13 of the CPU simulator (cublasLt.h). A
 * naive column-major product in double; every shape the backend describes
 * is checked against the others, as the real library refuses a layout that
 * does not fit, and so are the types: the rows of cuBLAS's table of the
 * types cublasLtMatmul takes (cuBLAS documentation, cublasLtMatmul,
 * "Datatypes supported") that these types can form, with compute type
 * CUBLAS_COMPUTE_32F and scale type CUDA_R_32F: A and B of one type, f32,
 * bf16 or f16; C (= D) f32, or of A's type. A bf16 or f16 element is
 * widened exactly; an output in bf16 or f16 is rounded to nearest even.
 * CUBLAS_COMPUTE_32F_FAST_TF32 takes f32 A, B and C only, and rounds each
 * element of A and B to TF32 (10 bits of mantissa, to nearest even) as the
 * tensor cores would, the worst case the compute type allows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cublasLt.h"

struct SimDesc {
  int transa, transb;
  int tf32;
};
/* the operands' minimum alignments the algorithm may assume: A, B, C, D */
struct SimPref {
  uint32_t align[4];
};
struct SimLayout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld, stride;
  int32_t batch;
};

cublasStatus_t
cublasLtCreate (cublasLtHandle_t *h)
{
  *h = (cublasLtHandle_t) malloc (1);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtDestroy (cublasLtHandle_t h)
{
  free (h);
  return CUBLAS_STATUS_SUCCESS;
}

const char *
cublasLtGetStatusString (cublasStatus_t s)
{
  return s == CUBLAS_STATUS_SUCCESS         ? "success"
         : s == CUBLAS_STATUS_INVALID_VALUE ? "invalid value (sim)"
                                            : "not supported (sim)";
}

cublasStatus_t
cublasLtMatmulDescCreate (cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
  *d = calloc (1, sizeof (struct SimDesc));
  (*d)->tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  return (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_FAST_TF32) && scale == CUDA_R_32F
             ? CUBLAS_STATUS_SUCCESS
             : CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t
cublasLtMatmulDescDestroy (cublasLtMatmulDesc_t d)
{
  free (d);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulDescSetAttribute (cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *buf,
                                size_t size)
{
  if (size != sizeof (cublasOperation_t))
    return CUBLAS_STATUS_INVALID_VALUE;
  int v = *(const cublasOperation_t *) buf;
  if (attr == CUBLASLT_MATMUL_DESC_TRANSA)
    d->transa = v;
  else if (attr == CUBLASLT_MATMUL_DESC_TRANSB)
    d->transb = v;
  else
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatrixLayoutCreate (cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld)
{
  *l = calloc (1, sizeof (struct SimLayout));
  (*l)->type = type;
  (*l)->rows = rows;
  (*l)->cols = cols;
  (*l)->ld = ld;
  (*l)->batch = 1;
  int known = type == CUDA_R_32F || type == CUDA_R_16BF || type == CUDA_R_16F;
  return known && ld >= (int64_t) rows && rows > 0 && cols > 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t
cublasLtMatrixLayoutDestroy (cublasLtMatrixLayout_t l)
{
  free (l);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatrixLayoutSetAttribute (cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, const void *buf,
                                  size_t size)
{
  if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof (int32_t))
    l->batch = *(const int32_t *) buf;
  else if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && size == sizeof (int64_t))
    l->stride = *(const int64_t *) buf;
  else
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceCreate (cublasLtMatmulPreference_t *p)
{
  *p = malloc (sizeof (struct SimPref));
  for (int i = 0; i < 4; i++)
    (*p)->align[i] = 256; /* the real library's default */
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceDestroy (cublasLtMatmulPreference_t p)
{
  free (p);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmulPreferenceSetAttribute (cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                                      const void *buf, size_t size)
{
  if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == sizeof (size_t))
    return CUBLAS_STATUS_SUCCESS;
  if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES &&
      size == sizeof (uint32_t)) {
    p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = *(const uint32_t *) buf;
    return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

static const char *
type_name (cudaDataType_t t)
{
  return t == CUDA_R_32F ? "CUDA_R_32F" : t == CUDA_R_16BF ? "CUDA_R_16BF" : t == CUDA_R_16F ? "CUDA_R_16F" : "?";
}

/* Whether the table has a row for these types (scale 32F). */
static int
types_ok (cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C)
{
  int ok = d->tf32 ? A->type == CUDA_R_32F && B->type == CUDA_R_32F && C->type == CUDA_R_32F
                   : A->type == B->type && (C->type == CUDA_R_32F || C->type == A->type);
  if (!ok)
    fprintf (stderr, "cublaslt-sim: no cublasLtMatmul for A %s, B %s, C %s with %s\n", type_name (A->type),
             type_name (B->type), type_name (C->type), d->tf32 ? "CUBLAS_COMPUTE_32F_FAST_TF32" : "CUBLAS_COMPUTE_32F");
  return ok;
}

/* f rounded to TF32's 10 bits of mantissa, to nearest even */
static float
tf32 (float f)
{
  uint32_t u;
  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) < 0x7f800000u)
    u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
  memcpy (&f, &u, sizeof f);
  return f;
}

static float
load (cudaDataType_t t, const void *p, int64_t i)
{
  if (t == CUDA_R_32F)
    return ((const float *) p)[i];
  uint16_t h = ((const uint16_t *) p)[i];
  if (t == CUDA_R_16F) {
    _Float16 x;
    memcpy (&x, &h, sizeof x);
    return (float) x;
  }
  uint32_t u = (uint32_t) h << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

static void
store (cudaDataType_t t, void *p, int64_t i, float f)
{
  if (t == CUDA_R_32F) {
    ((float *) p)[i] = f;
  } else if (t == CUDA_R_16F) {
    _Float16 x = (_Float16) f;
    memcpy ((uint16_t *) p + i, &x, sizeof x);
  } else {
    uint32_t u;
    memcpy (&u, &f, sizeof u);
    ((uint16_t *) p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t) ((u >> 16) | 0x40)
                                                          : (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

/* m, n, k of the product, or FALSE when the layouts disagree */
static int
dims (cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C, uint64_t *m,
      uint64_t *n, uint64_t *k)
{
  *m = d->transa ? A->cols : A->rows;
  *k = d->transa ? A->rows : A->cols;
  uint64_t kb = d->transb ? B->cols : B->rows;
  *n = d->transb ? B->rows : B->cols;
  int ok = kb == *k && C->rows == *m && C->cols == *n && A->batch == C->batch && B->batch == C->batch;
  if (!ok)
    fprintf (stderr,
             "cublaslt-sim: layouts disagree: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu, batches %d %d %d\n",
             (unsigned long long) *m, (unsigned long long) *k, (unsigned long long) kb, (unsigned long long) *n,
             (unsigned long long) C->rows, (unsigned long long) C->cols, A->batch, B->batch, C->batch);
  return ok;
}

cublasStatus_t
cublasLtMatmulAlgoGetHeuristic (cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t A,
                                cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D,
                                cublasLtMatmulPreference_t pref, int requested,
                                cublasLtMatmulHeuristicResult_t *results, int *count)
{
  uint64_t m, n, k;
  if (requested < 1 || C != D || !dims (desc, A, B, C, &m, &n, &k))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!types_ok (desc, A, B, C))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  memset (results, 0, sizeof *results);
  /* the algorithm found relies on the alignments the preference allows */
  for (int i = 0; i < 4; i++)
    results->algo.data[i] = pref->align[i];
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasLtMatmul (cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *Av,
                cublasLtMatrixLayout_t A, const void *Bv, cublasLtMatrixLayout_t B, const void *beta, const void *Cv,
                cublasLtMatrixLayout_t C, void *Dv, cublasLtMatrixLayout_t D, const cublasLtMatmulAlgo_t *algo,
                void *workspace, size_t workspaceSize, cudaStream_t stream)
{
  uint64_t m, n, k;
  if (C != D || Cv != Dv || !dims (desc, A, B, C, &m, &n, &k))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!types_ok (desc, A, B, C))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const void *ptrs[4] = { Av, Bv, Cv, Dv };
  for (int i = 0; i < 4; i++)
    if ((uintptr_t) ptrs[i] % algo->data[i]) {
      fprintf (stderr, "cublaslt-sim: operand %d at %p is not aligned to the %llu bytes its algorithm assumes\n", i,
               ptrs[i], (unsigned long long) algo->data[i]);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  float al = *(const float *) alpha, be = *(const float *) beta;
  for (int32_t b = 0; b < C->batch; b++) {
    int64_t a0 = b * A->stride, b0 = b * B->stride, c0 = b * C->stride;
    for (uint64_t i = 0; i < m; i++)
      for (uint64_t j = 0; j < n; j++) {
        double s = 0;
        for (uint64_t p = 0; p < k; p++) {
          float x = load (A->type, Av, a0 + (int64_t) (desc->transa ? p + i * A->ld : i + p * A->ld));
          float y = load (B->type, Bv, b0 + (int64_t) (desc->transb ? j + p * B->ld : p + j * B->ld));
          if (desc->tf32) {
            x = tf32 (x);
            y = tf32 (y);
          }
          s += (double) x * y;
        }
        int64_t o = c0 + (int64_t) (i + j * C->ld);
        store (C->type, Dv, o, (float) (al * s + (be != 0 ? be * load (C->type, Dv, o) : 0.0)));
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}
