/* cuda: the CUDA backend, built by ./configure where the CUDA toolkit is
 * found (--with-cuda=PATH, --without-cuda).
 *
 *   cria inspect cuda        (a model run picks it: --backend 'cuda device=1')
 *
 * Memory is device memory (contract 1.1, cria-backend.h): the core moves
 * data through upload, download and copy. Kernels and copies are queued on
 * one stream per backend; upload and download wait for it, so the host
 * buffer may be reused (or read) when they return, and synchronize reports
 * the first error of a queued kernel. Only this plugin links the CUDA
 * runtime and cuBLASLt: libcria and the cria program never do.
 *
 * NO KERNEL OF THIS PLUGIN HAS RUN ON A GPU YET: cuda-kernels.cu was only
 * compiled by nvcc, and run on the CPU by tests/cuda/sim/run.sh (stand-ins
 * for the CUDA runtime and cuBLASLt). It holds f32 kernels of every op but
 * dequantize (NF4 never reaches device memory yet); cuda-optim.cu holds the
 * optimizer step (contract 1.2), so training keeps gradients, moments and
 * params on the GPU. tests/cuda/
 * device-check.sh is what a GPU machine runs first. */
#include "config.h"

#include <string.h>

#include "cuda.h"

static const CriaPropSpec cuda_props[] = {
  { "device", CRIA_PROP_INT, "0", 0, 1024, NULL, "index of the GPU (as nvidia-smi numbers them)" }, CRIA_PROP_END
};

gboolean
cuda_check (cudaError_t e, const char *what, GError **error)
{
  if (e == cudaSuccess)
    return TRUE;
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "cuda: %s: %s", what, cudaGetErrorString (e));
  return FALSE;
}

static gpointer
cuda_create (const CriaProps *props, GError **error)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount (&n);
  if (e != cudaSuccess || n == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "cuda: no device found (%s)",
                 e != cudaSuccess ? cudaGetErrorString (e) : "cudaGetDeviceCount found 0 devices");
    return NULL;
  }
  int device = (int) cria_props_get_int (props, "device");
  if (device >= n) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "cuda: device %d asked for, %d found", device, n);
    return NULL;
  }
  CudaBackend *be = g_new0 (CudaBackend, 1);
  be->device = device;
  if (!cuda_check (cudaSetDevice (device), "cudaSetDevice", error) ||
      !cuda_check (cudaGetDeviceProperties (&be->prop, device), "cudaGetDeviceProperties", error) ||
      !cuda_check (cudaStreamCreateWithFlags (&be->stream, cudaStreamNonBlocking), "cudaStreamCreate", error) ||
      !cuda_check (cudaMalloc ((void **) &be->bad_id, sizeof (int)), "cudaMalloc", error) ||
      !cuda_check (cudaMemset (be->bad_id, 0, sizeof (int)), "cudaMemset", error) || !cuda_blas_init (be, error)) {
    if (be->bad_id)
      cudaFree (be->bad_id);
    if (be->stream)
      cudaStreamDestroy (be->stream);
    g_free (be);
    return NULL;
  }
  return be;
}

static void
cuda_destroy (gpointer self)
{
  CudaBackend *be = self;
  cudaSetDevice (be->device);
  cudaStreamSynchronize (be->stream);
  cuda_blas_free (be);
  cudaFree (be->scratch);
  cudaFree (be->bad_id);
  cudaStreamDestroy (be->stream);
  g_free (be);
}

void *
cuda_scratch (CudaBackend *be, size_t bytes, GError **error)
{
  if (bytes <= be->scratch_bytes)
    return be->scratch;
  /* queued kernels may still use the old one */
  if (!cuda_check (cudaStreamSynchronize (be->stream), "scratch", error))
    return NULL;
  cudaFree (be->scratch);
  be->scratch = NULL;
  be->scratch_bytes = 0;
  size_t grown = MAX (bytes, (size_t) 1 << 20);
  if (!cuda_check (cudaMalloc (&be->scratch, grown), "cannot allocate scratch memory", error)) {
    cudaGetLastError ();
    return NULL;
  }
  be->scratch_bytes = grown;
  return be->scratch;
}

static gpointer
cuda_alloc (gpointer self, gsize bytes, GError **error)
{
  CudaBackend *be = self;
  void *mem = NULL;
  /* cudaMalloc aligns to 256 bytes at least: the 64 of the contract */
  cudaError_t e = cudaMalloc (&mem, MAX (bytes, 64));
  if (e != cudaSuccess) {
    cudaGetLastError (); /* not sticky: clear it */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "cuda: cannot allocate %" G_GSIZE_FORMAT " bytes on %s: %s",
                 bytes, be->prop.name, cudaGetErrorString (e));
    return NULL;
  }
  return mem;
}

static void
cuda_free (gpointer self, gpointer mem)
{
  CudaBackend *be = self;
  /* kernels queued on the stream may still read it */
  cudaStreamSynchronize (be->stream);
  cudaFree (mem);
}

/* Errors of queued work are sticky: synchronize reports them. */
static void
cuda_zero (gpointer self, gpointer mem, gsize bytes)
{
  CudaBackend *be = self;
  cudaMemsetAsync (mem, 0, bytes, be->stream);
}

static gboolean
cuda_upload (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  CudaBackend *be = self;
  return cuda_check (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyHostToDevice, be->stream), "upload", error) &&
         cuda_check (cudaStreamSynchronize (be->stream), "upload", error);
}

static gboolean
cuda_download (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  CudaBackend *be = self;
  return cuda_check (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToHost, be->stream), "download", error) &&
         cuda_check (cudaStreamSynchronize (be->stream), "download", error);
}

static gboolean
cuda_copy (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  CudaBackend *be = self;
  return cuda_check (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToDevice, be->stream), "copy", error);
}

static gboolean
cuda_synchronize (gpointer self, GError **error)
{
  CudaBackend *be = self;
  int bad = 0;
  if (!cuda_check (cudaStreamSynchronize (be->stream), "a queued kernel failed", error) ||
      !cuda_check (cudaGetLastError (), "a kernel launch failed", error) ||
      !cuda_check (cudaMemcpy (&bad, be->bad_id, sizeof bad, cudaMemcpyDeviceToHost), "download", error))
    return FALSE;
  if (bad != CUDA_BAD_NONE) {
    cudaMemset (be->bad_id, 0, sizeof (int));
    g_set_error_literal (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                         bad == CUDA_BAD_LABEL ? "cuda: lm_head_ce: a label is outside the vocabulary"
                                               : "cuda: embedding: a token id is outside the vocabulary");
    return FALSE;
  }
  return TRUE;
}

static char *
cuda_describe (gpointer self)
{
  CudaBackend *be = self;
  return g_strdup_printf ("cuda: device %d, %s, %.0f GiB, compute capability %d.%d", be->device, be->prop.name,
                          (double) be->prop.totalGlobalMem / (1u << 30), be->prop.major, be->prop.minor);
}

static const CriaBackendVTable cuda_vtable = {
  CRIA_VTABLE_INIT (CriaBackendVTable),
  .create = cuda_create,
  .destroy = cuda_destroy,
  .alloc = cuda_alloc,
  .free = cuda_free,
  .zero = cuda_zero,
  .describe = cuda_describe,
  .kernels = cuda_kernels,
  .n_kernels = CRIA_N_OPS,
  .supports_op = cuda_supports_op,
  .device_memory = TRUE,
  .upload = cuda_upload,
  .download = cuda_download,
  .copy = cuda_copy,
  .synchronize = cuda_synchronize,
  .accumulate = cuda_accumulate,
  .grad_sumsq = cuda_grad_sumsq,
  .adamw_step = cuda_adamw_step,
};

static const CriaProviderInfo cuda_info = {
  .name = "cuda",
  .description = "Runs graphs on an NVIDIA GPU (CUDA, cuBLASLt): f32 kernels of every op but dequantize (NF4), never "
                 "run on a GPU yet",
  .example = "cria inspect cuda",
  .props = cuda_props,
  .rank = CRIA_RANK_NONE, /* chosen by name: --backend cuda */
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cuda_kernels_init ();
  cria_plugin_add_backend (plugin, &cuda_info, &cuda_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (cuda, "The CUDA compute backend", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
