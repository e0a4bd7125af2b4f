/* cuda-ops.c: which nodes the cuda kernels take, and cuBLASLt's handle.
 *
 * Every op has a kernel (the table of cuda-kernels.cu, cuda-weights.cu);
 * a node is declined when it is planned, with the op named, for a dtype or
 * a shape the kernels do not take. */
#include "config.h"

#include <dlfcn.h>

#include "cuda.h"

/* Whether input i of the node may be a weight of that dtype other than f32:
 * b of matmul (bf16, f16 or NF4), the table of embedding and w of
 * lm_head_ce (bf16 or f16), the NF4 weight of dequantize. */
static gboolean
weight_ok (const CriaNode *node, int i, CriaDType dtype)
{
  gboolean half = dtype == CRIA_DTYPE_BF16 || dtype == CRIA_DTYPE_F16;
  switch (node->op) {
    case CRIA_OP_MATMUL:
      return i == 1 && (half || dtype == CRIA_DTYPE_NF4);
    case CRIA_OP_EMBEDDING:
    case CRIA_OP_LM_HEAD_CE:
      return i == 1 && half;
    case CRIA_OP_DEQUANTIZE:
      return i == 0 && dtype == CRIA_DTYPE_NF4;
    default:
      return FALSE;
  }
}

gboolean
cuda_supports_op (gpointer backend, const CriaNode *node)
{
  for (int i = 0; i < node->n_src; i++) {
    CriaDType t = node->src[i] ? node->src[i]->dtype : CRIA_DTYPE_F32;
    if (t != CRIA_DTYPE_F32 && t != CRIA_DTYPE_I32 && !weight_ok (node, i, t))
      return FALSE;
  }
  /* a warp per query row holds ATTN_MAX_D / 32 accumulators per lane */
  if (node->op == CRIA_OP_ATTENTION && node->shape[3] > ATTN_MAX_D)
    return FALSE;
  return node->dtype == CRIA_DTYPE_F32 || node->dtype == CRIA_DTYPE_I32;
}

/* libcublasLt.so.MAJOR of the toolkit built with: where the loader finds it,
 * else in the toolkit's directory that configure saw. */
static const CudaLt *
open_lt (GError **error)
{
  static CudaLt lt;
  static char *failed;
  static gsize once;
  if (g_once_init_enter (&once)) {
    static const char soname[] = "libcublasLt.so." G_STRINGIFY (CUBLAS_VER_MAJOR);
    void *h = dlopen (soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      g_autofree char *path = g_build_filename (CRIA_CUDA_LIBDIR, soname, NULL);
      h = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h)
      failed = g_strdup_printf ("cuda: cannot open %s: %s", soname, dlerror ());
#define LT_LOOKUP(f_)                                                                                                  \
  if (h && !failed && !(lt.fn_##f_ = (__typeof__ (f_) *) dlsym (h, #f_)))                                              \
    failed = g_strdup_printf ("cuda: %s has no %s", soname, #f_);
    LT_FUNCS (LT_LOOKUP)
#undef LT_LOOKUP
    g_once_init_leave (&once, 1);
  }
  if (failed) {
    g_set_error_literal (error, CRIA_ERROR, CRIA_ERROR_PLUGIN, failed);
    return NULL;
  }
  return &lt;
}

gboolean
cuda_blas_init (CudaBackend *be, GError **error)
{
  be->blas = open_lt (error);
  if (!be->blas)
    return FALSE;
  cublasStatus_t s = be->blas->fn_cublasLtCreate (&be->lt);
  if (s != CUBLAS_STATUS_SUCCESS) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "cuda: cublasLtCreate: %s",
                 be->blas->fn_cublasLtGetStatusString (s));
    return FALSE;
  }
  if (!cuda_check (cudaMalloc (&be->lt_workspace, LT_WORKSPACE), "cuBLASLt workspace", error)) {
    be->blas->fn_cublasLtDestroy (be->lt);
    return FALSE;
  }
  return TRUE;
}

void
cuda_blas_free (CudaBackend *be)
{
  cudaFree (be->lt_workspace);
  be->blas->fn_cublasLtDestroy (be->lt);
}
