/* cuda-ops.c: which nodes the cuda kernels take, and cuBLASLt's handle.
 *
 * Ops without a kernel (cuda-kernels.cu: only dequantize, since NF4 tensors
 * never reach device memory yet) refuse a graph when it is planned, with the
 * op named ("backend 'cuda' does not implement op 'dequantize'"). */
#include "config.h"

#include <dlfcn.h>

#include "cuda.h"

gboolean
cuda_supports_op (gpointer backend, const CriaNode *node)
{
  /* f32 only for now: bf16/f16 weights and NF4 come with their kernels */
  for (int i = 0; i < node->n_src; i++)
    if (node->src[i] && node->src[i]->dtype != CRIA_DTYPE_F32 && node->src[i]->dtype != CRIA_DTYPE_I32)
      return FALSE;
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
