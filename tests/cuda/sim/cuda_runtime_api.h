/* cuda_runtime_api.h of the CPU simulator (tests/cuda/sim/run.sh): the part
 * of the CUDA runtime the cuda backend uses, on host memory and threads, so
 * that its kernels run where no GPU is. Not the real API: only what
 * plugins/backends/cuda calls. */
#pragma once

#include <math.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorLaunchFailure = 4
} cudaError_t;
typedef enum {
  cudaMemcpyHostToHost,
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice
} cudaMemcpyKind;
typedef struct SimStream *cudaStream_t;
#define cudaStreamNonBlocking 1u

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
};

cudaError_t cudaGetDeviceCount (int *n);
cudaError_t cudaSetDevice (int device);
cudaError_t cudaGetDeviceProperties (struct cudaDeviceProp *prop, int device);
const char *cudaGetErrorString (cudaError_t e);
cudaError_t cudaGetLastError (void);
cudaError_t cudaStreamCreateWithFlags (cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy (cudaStream_t s);
cudaError_t cudaStreamSynchronize (cudaStream_t s);
cudaError_t cudaMalloc (void **p, size_t bytes);
cudaError_t cudaFree (void *p);
cudaError_t cudaMemset (void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync (void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpy (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);

#ifdef __cplusplus
}

/* ---- device code on host threads: one pool of blockDim threads runs the
 * blocks of a grid one after the other; __syncthreads is a barrier of the
 * block, a warp shuffle a barrier of the warp's 32 threads. ---------------- */
struct SimDim {
  unsigned x, y, z;
};
extern thread_local SimDim threadIdx, blockIdx;
extern thread_local SimDim blockDim, gridDim;

#define __global__
#define __device__
#define __shared__ static
void __syncthreads (void);
float __shfl_xor_sync (unsigned mask, float v, int lane_mask);
int atomicCAS (int *p, int expected, int desired);
float atomicAdd (float *p, float v);

/* the round-to-nearest intrinsics, one rounding each and never fused (what
 * the kernels ask of nvcc by them): plain operations here, which g++ does
 * not contract without -mfma */
static inline float
__fmul_rn (float a, float b)
{
  return a * b;
}
static inline float
__fadd_rn (float a, float b)
{
  return a + b;
}
static inline float
__fdiv_rn (float a, float b)
{
  return a / b;
}
static inline float
__fsqrt_rn (float a)
{
  return sqrtf (a);
}
static inline double
__dmul_rn (double a, double b)
{
  return a * b;
}
static inline double
__dadd_rn (double a, double b)
{
  return a + b;
}

void sim_run (unsigned grid, unsigned block, void (*body) (void *), void *data);

template <typename F> struct SimLauncher {
  F f;
  unsigned grid, block;
  template <typename... A> void operator() (A... a)
  {
    auto call = [&] () { f (a...); };
    sim_run (
        grid, block, [] (void *d) { (*(decltype (call) *) d) (); }, &call);
  }
};
/* kernel<<<grid, block, shared, stream>>> (args) becomes
 * SIM_LAUNCH (kernel, grid, block, shared, stream) (args) (run.sh's sed) */
#define SIM_LAUNCH(k_, g_, b_, ...) (SimLauncher<decltype (&k_)>{ &k_, (unsigned) (g_), (unsigned) (b_) })
#endif
