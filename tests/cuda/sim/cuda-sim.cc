/* cuda-sim.cc: the CUDA runtime of the CPU simulator (cuda_runtime_api.h).
 * "Device" memory is host memory, the stream runs everything at once, and a
 * kernel's grid runs on a pool of host threads, one per thread of a block:
 * blocks one after another, __syncthreads a barrier of the block, warp
 * shuffles a barrier of the warp. Enough to check the kernels' index
 * arithmetic, reductions and masks; nothing about speed or the real
 * hardware's memory model. */
#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "cuda_runtime_api.h"

thread_local SimDim threadIdx, blockIdx, blockDim, gridDim;

static thread_local std::barrier<> *block_barrier;
static thread_local std::barrier<> *warp_barrier;
static thread_local float *warp_slots;

extern "C" {

cudaError_t
cudaGetDeviceCount (int *n)
{
  *n = 1;
  return cudaSuccess;
}

cudaError_t
cudaSetDevice (int device)
{
  return device == 0 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t
cudaGetDeviceProperties (struct cudaDeviceProp *prop, int device)
{
  memset (prop, 0, sizeof *prop);
  strcpy (prop->name, "CPU simulator (tests/cuda/sim)");
  prop->totalGlobalMem = (size_t) 1 << 30;
  prop->major = 9;
  return cudaSuccess;
}

const char *
cudaGetErrorString (cudaError_t e)
{
  return e == cudaSuccess ? "no error" : "simulated error";
}

cudaError_t
cudaGetLastError (void)
{
  return cudaSuccess;
}

cudaError_t
cudaStreamCreateWithFlags (cudaStream_t *s, unsigned flags)
{
  *s = (cudaStream_t) malloc (1);
  return cudaSuccess;
}

cudaError_t
cudaStreamDestroy (cudaStream_t s)
{
  free (s);
  return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize (cudaStream_t s)
{
  return cudaSuccess;
}

cudaError_t
cudaMalloc (void **p, size_t bytes)
{
  /* garbage, as cudaMalloc's memory is: nothing may rely on zeros */
  *p = aligned_alloc (256, (bytes + 255) / 256 * 256);
  if (*p)
    memset (*p, 0xa5, bytes);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t
cudaFree (void *p)
{
  free (p);
  return cudaSuccess;
}

cudaError_t
cudaMemset (void *p, int v, size_t bytes)
{
  memset (p, v, bytes);
  return cudaSuccess;
}

cudaError_t
cudaMemsetAsync (void *p, int v, size_t bytes, cudaStream_t s)
{
  return cudaMemset (p, v, bytes);
}

cudaError_t
cudaMemcpy (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
  memmove (dst, src, bytes);
  return cudaSuccess;
}

cudaError_t
cudaMemcpyAsync (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
  return cudaMemcpy (dst, src, bytes, kind);
}
}

void
__syncthreads (void)
{
  block_barrier->arrive_and_wait ();
}

float
__shfl_xor_sync (unsigned mask, float v, int lane_mask)
{
  int lane = threadIdx.x & 31;
  warp_slots[lane] = v;
  warp_barrier->arrive_and_wait ();
  float r = warp_slots[lane ^ lane_mask];
  warp_barrier->arrive_and_wait ();
  return r;
}

int
atomicCAS (int *p, int expected, int desired)
{
  __atomic_compare_exchange_n (p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}

float
atomicAdd (float *p, float v)
{
  std::atomic_ref<float> a (*p);
  return a.fetch_add (v);
}

void
sim_run (unsigned grid, unsigned block, void (*body) (void *), void *data)
{
  if (block == 0 || block % 32 || block > 1024 || grid == 0 || grid > 65535u * 32) {
    fprintf (stderr, "cuda-sim: launch of %u blocks of %u threads refused\n", grid, block);
    abort ();
  }
  std::barrier<> bar (block);
  std::vector<std::unique_ptr<std::barrier<> > > warps;
  std::vector<float> slots (block);
  for (unsigned w = 0; w < block / 32; w++)
    warps.push_back (std::make_unique<std::barrier<> > (32));
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < block; t++)
    threads.emplace_back ([&, t] () {
      threadIdx = { t, 0, 0 };
      blockDim = { block, 1, 1 };
      gridDim = { grid, 1, 1 };
      block_barrier = &bar;
      warp_barrier = warps[t / 32].get ();
      warp_slots = slots.data () + t / 32 * 32;
      for (unsigned b = 0; b < grid; b++) {
        blockIdx = { b, 0, 0 };
        body (data);
        bar.arrive_and_wait (); /* the block is done before the next one uses its shared memory */
      }
    });
  for (auto &t : threads)
    t.join ();
}
