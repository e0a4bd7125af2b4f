/* cuda-kernels.h: what the kernel files of the cuda backend share (.cu
 * files only): the grids, a value's loads and stores, the reductions, and
 * the kernels of the table (cuda-kernels.cu), file by file.
 *
 * NEVER RUN ON A GPU: compiled by nvcc on a machine without one. Their math
 * mirrors the cpu backend's (plugins/backends/cpu/cpu-ops.c, cpu-linear.c,
 * cpu-attention.c) index for index; tests/cuda/test-cuda-parity compares
 * them with the cpu backend on a GPU machine (tests/cuda/device-check.sh).
 * Correctness over speed: one thread per element, one block per row of a
 * row-wise op, one warp per query (or key) row of attention.
 *
 * Each kernel is queued on the backend's stream and returns at once; a
 * launch error is reported at once (cudaGetLastError after each launch), an
 * execution error at synchronize. An id or label outside the vocabulary
 * cannot be reported from a kernel: it sets the backend's error word, which
 * synchronize downloads. Every grid is one-dimensional, at most
 * MAX_BLOCKS blocks, its kernels looping over 64-bit indices. */
#pragma once

#include <math.h>

#include "cuda.h"

#define THREADS 256
#define MAX_BLOCKS ((gint64) 65535 * 32)

static inline unsigned
blocks_for (gint64 n)
{
  gint64 b = (n + THREADS - 1) / THREADS;
  return (unsigned) MAX (1, MIN (b, MAX_BLOCKS));
}

/* One block per row (row-wise ops), or one warp per row (attention). */
static inline unsigned
blocks_for_rows (gint64 rows)
{
  return (unsigned) MAX (1, MIN (rows, MAX_BLOCKS));
}

static inline unsigned
blocks_for_warps (gint64 rows)
{
  return blocks_for_rows ((rows + THREADS / 32 - 1) / (THREADS / 32));
}

#define GRID_LOOP(i_, n_)                                                                                              \
  for (gint64 i_ = blockIdx.x * (gint64) blockDim.x + threadIdx.x; i_ < (n_); i_ += (gint64) gridDim.x * blockDim.x)
#define ROW_LOOP(r_, n_) for (gint64 r_ = blockIdx.x; r_ < (n_); r_ += gridDim.x)
/* the warp's row: every lane of a warp has the same r_ */
#define WARP_LOOP(r_, n_)                                                                                              \
  for (gint64 r_ = (blockIdx.x * (gint64) blockDim.x + threadIdx.x) / 32; r_ < (n_);                                   \
       r_ += (gint64) gridDim.x * blockDim.x / 32)

static inline gint64
numel (const CriaNode *n)
{
  return cria_shape_numel (n->n_dims, n->shape);
}

static inline float *
f32 (const CriaTensor *t)
{
  return (float *) t->data;
}

static inline gboolean
is_bf16 (const CriaTensor *t)
{
  return t->dtype == CRIA_DTYPE_BF16;
}

/* Element i of a value stored in f32 or bf16. */
static inline const char *
elem (const CriaTensor *t, gint64 i)
{
  return (const char *) t->data + (size_t) i * (is_bf16 (t) ? sizeof (guint16) : sizeof (float));
}

/* A value as a kernel reads or writes it: f32, or bf16 with
 * activations=bf16 (`half` is the same for every thread of a launch, so no
 * warp diverges on it). ld widens; st rounds to nearest even, so a kernel
 * storing bf16 gives its f32 result rounded. Gradients are plain f32. */
typedef struct {
  void *p;
  int half;
} Val;

static inline Val
val (const CriaTensor *t)
{
  Val v = { t->data, is_bf16 (t) };
  return v;
}

__device__ static inline float
ld (Val v, gint64 i)
{
  return v.half ? cuda_bf16_value (((const guint16 *) v.p)[i]) : ((const float *) v.p)[i];
}

__device__ static inline void
st (Val v, gint64 i, float x)
{
  if (v.half)
    ((guint16 *) v.p)[i] = cuda_bf16_round (x);
  else
    ((float *) v.p)[i] = x;
}

static inline const gint32 *
i32 (const CriaTensor *t)
{
  return (const gint32 *) t->data;
}

static inline float *
grad_or_null (const CriaNode *n)
{
  return n->grad ? f32 (n->grad) : NULL;
}

static inline CudaBackend *
be_of (gpointer self)
{
  return (CudaBackend *) self;
}

static inline gint64
last_dim (const CriaNode *n)
{
  return n->shape[n->n_dims - 1];
}

/* The launch just queued: FALSE with "cuda: OP: ..." when it was refused. */
static inline gboolean
launched (const CriaNode *n, GError **error)
{
  return cuda_check (cudaGetLastError (), cria_op_name (n->op), error);
}

/* ---- reductions ------------------------------------------------------------ */

__device__ static inline float
warp_sum (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

__device__ static inline float
warp_max (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, o));
  return v;
}

/* The sum (or max) of v over the block, in every thread; every thread of the
 * block calls it (blockDim.x a multiple of 32). */
__device__ static inline float
block_reduce (float v, bool is_max)
{
  __shared__ float part[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = is_max ? warp_max (v) : warp_sum (v);
  __syncthreads (); /* part may still be read by the previous call */
  if (lane == 0)
    part[warp] = v;
  __syncthreads ();
  v = lane < n_warps ? part[lane] : (is_max ? -INFINITY : 0.0f);
  return is_max ? warp_max (v) : warp_sum (v);
}

/* ---- the kernels of the table ----------------------------------------------- */

/* NAME_forward and NAME_backward, the two halves of a CriaKernel */
#define CUDA_KERNEL(name_)                                                                                             \
  gboolean name_##_forward (gpointer self, CriaNode *n, GError **error);                                               \
  gboolean name_##_backward (gpointer self, CriaNode *n, GError **error)

/* cuda-elementwise.cu */
CUDA_KERNEL (unary);
CUDA_KERNEL (swiglu);
CUDA_KERNEL (binary);
CUDA_KERNEL (scale);
CUDA_KERNEL (reshape);
CUDA_KERNEL (dropout);
/* cuda-rows.cu */
CUDA_KERNEL (norm);
CUDA_KERNEL (rope);
CUDA_KERNEL (softmax);
/* cuda-moves.cu */
CUDA_KERNEL (embedding);
CUDA_KERNEL (permute);
CUDA_KERNEL (concat);
CUDA_KERNEL (slice);
/* cuda-linear.cu */
CUDA_KERNEL (matmul);
CUDA_KERNEL (lm_head_ce);
/* cuda-attention.cu */
CUDA_KERNEL (attention);
