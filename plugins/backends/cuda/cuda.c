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
 * Weights may be f32, bf16 or f16 (two bytes an element in device memory,
 * as on the host) or NF4 (packed codes and block scales, the layout of
 * cria_nf4_device_layout): cuda-weights.cu widens them for cuBLASLt, or
 * with bf16-dot multiplies bf16 by bf16 as the cpu backend's bf16-dot does.
 * cuda-optim.cu holds the optimizer step (contract 1.2), so training keeps
 * gradients, moments and params on the GPU.
 *
 * activations=bf16 (--backend 'cuda activations=bf16', any verb) is mixed
 * precision as autocast does it: every f32 op value but lm_head_ce's losses
 * is stored in bf16 (cuda_value_dtype, contract 1.3: the core plans the
 * activation arena in two bytes an element), each cuBLASLt product reads
 * bf16 operands (f32 params rounded on the way, cuda_gemm), accumulates in
 * f32 and writes bf16; kernels that read f32 get their bf16 inputs widened
 * in scratch (cuda-kernels.cu); the reductions inside norms, softmax,
 * attention and the loss stay f32, and so do gradients, the params that
 * train and their optimizer state.
 *
 * NO KERNEL OF THIS PLUGIN HAS RUN ON A GPU YET: its .cu files were only
 * compiled by nvcc, and run on the CPU by tests/cuda/sim/run.sh (stand-ins
 * for the CUDA runtime and cuBLASLt). They hold kernels of every op.
 * tests/cuda/device-check.sh is what a GPU machine runs first. */
#include "config.h"

#include <string.h>

#include "cuda.h"

static const CriaPropSpec cuda_props[] = {
  { "device", CRIA_PROP_INT, "0", 0, 1024, NULL, "index of the GPU (as nvidia-smi numbers them)" },
  { "bf16-dot", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "products with bf16 weights (--dtype bf16) and NF4 weights round the activations to bf16 too and accumulate "
    "in f32, as the cpu backend's bf16-dot: cuBLASLt with bf16 operands (tensor cores), f32 output; off widens "
    "the weight to f32 and keeps f32 activations" },
  { "tf32", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "f32 products (f32 weights, widened weights, the lm head's logits) on tensor cores with their inputs "
    "rounded to TF32 (10 bits of mantissa; CUBLAS_COMPUTE_32F_FAST_TF32): faster, about 1e-3 relative error; "
    "off computes them in full f32" },
  { "activations", CRIA_PROP_ENUM, "f32", 0, 0, "f32|bf16",
    "bf16: every op's output (hidden states, attention inputs and outputs, MLP intermediates) stored in bf16 and "
    "every product bf16 x bf16 in cuBLASLt with f32 accumulation; norms, softmax and the loss accumulate in f32, "
    "gradients, trainable params (master weights) and optimizer state stay f32. Stored in 2 bytes: half the "
    "activation memory of f32. f32: f32 throughout" },
  { "widen-kib", CRIA_PROP_INT, "262144", 1, G_MAXINT, NULL,
    "KiB of device scratch a bf16, f16 or NF4 weight is widened into for a product: a larger weight goes "
    "through it in slices of whole rows, one product each (the default holds a linear layer of an 8B model)" },
  CRIA_PROP_END
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
  be->bf16_dot = cria_props_get_bool (props, "bf16-dot");
  be->tf32 = cria_props_get_bool (props, "tf32");
  be->bf16_act = strcmp (cria_props_get_string (props, "activations"), "bf16") == 0;
  be->widen_bytes = (size_t) cria_props_get_int (props, "widen-kib") << 10;
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
  cudaFree (be->wscratch);
  cudaFree (be->oscratch);
  cudaFree (be->sscratch);
  cudaFree (be->bad_id);
  cudaStreamDestroy (be->stream);
  g_free (be);
}

/* *mem of at least `bytes`, grown when it is smaller. */
static void *
grow (CudaBackend *be, void **mem, size_t *size, size_t bytes, GError **error)
{
  if (bytes <= *size)
    return *mem;
  /* queued kernels may still use the old one */
  if (!cuda_check (cudaStreamSynchronize (be->stream), "scratch", error))
    return NULL;
  cudaFree (*mem);
  *mem = NULL;
  *size = 0;
  size_t grown = MAX (bytes, (size_t) 1 << 20);
  if (!cuda_check (cudaMalloc (mem, grown), "cannot allocate scratch memory", error)) {
    cudaGetLastError ();
    return NULL;
  }
  *size = grown;
  return *mem;
}

void *
cuda_scratch (CudaBackend *be, size_t bytes, GError **error)
{
  return grow (be, &be->scratch, &be->scratch_bytes, bytes, error);
}

void *
cuda_weight_scratch (CudaBackend *be, size_t bytes, GError **error)
{
  return grow (be, &be->wscratch, &be->wscratch_bytes, bytes, error);
}

void *
cuda_operand_scratch (CudaBackend *be, size_t bytes, GError **error)
{
  return grow (be, &be->oscratch, &be->oscratch_bytes, bytes, error);
}

void *
cuda_stage_scratch (CudaBackend *be, size_t bytes, GError **error)
{
  return grow (be, &be->sscratch, &be->sscratch_bytes, bytes, error);
}

CriaDType
cuda_value_dtype (gpointer self, const CriaNode *node)
{
  CudaBackend *be = self;
  /* lm_head_ce's output (the loss sums, each row's logsumexp) is no activation */
  if (be->bf16_act && node->dtype == CRIA_DTYPE_F32 && node->op != CRIA_OP_LM_HEAD_CE)
    return CRIA_DTYPE_BF16;
  return node->dtype;
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
  return g_strdup_printf ("cuda: device %d, %s, %.0f GiB, compute capability %d.%d%s", be->device, be->prop.name,
                          (double) be->prop.totalGlobalMem / (1u << 30), be->prop.major, be->prop.minor,
                          be->bf16_act ? ", bf16 activations" : "");
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
  .value_dtype = cuda_value_dtype,
};

static const CriaProviderInfo cuda_info = {
  .name = "cuda",
  .description = "Runs graphs on an NVIDIA GPU (CUDA, cuBLASLt): kernels of every op, with f32, bf16, f16 and NF4 "
                 "weights, f32 or bf16 activations; never run on a GPU yet",
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
