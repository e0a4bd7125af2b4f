/* cria-optim-kernels.c: the loops of cria-optim.c over every parameter.
 *
 * Built with -fno-math-errno (sqrtf of a second moment is never negative, and
 * errno kept GCC from vectorizing it) and, on x86-64 with GCC, cloned for
 * AVX-512 and AVX2+FMA, the clone picked when libcria loads. Every clone
 * rounds as the plain C does: fmaf is written out where a fused product is
 * meant, and fp-contract=off keeps GCC from fusing the others, so a run's
 * numbers do not depend on the CPU's vector width. */
#include "config.h"

#include <math.h>

#include "cria-optim-kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define KERNEL                                                                                                         \
  __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize ("O3", "fp-contract=off")))
#else
#define KERNEL
#endif

KERNEL void
optim_kernel_adamw (float *restrict param, float *restrict m, float *restrict v, const float *restrict g, gsize n,
                    const OptimAdamw *s)
{
  const float shrink = s->shrink, pre = s->pre, post = s->post, b1 = s->b1, b2 = s->b2;
  const float one_b1 = s->one_b1, one_b2 = s->one_b2, inv_bias2_sqrt = s->inv_bias2_sqrt, eps = s->eps;
  const float neg_step = -s->step_size;
  for (gsize i = 0; i < n; i++) {
    float gi = g[i] * pre * post;
    float x = param[i] * shrink;
    float mi = fmaf (one_b1, gi, m[i] * b1);
    float vi = fmaf (one_b2 * gi, gi, v[i] * b2);
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf (vi) * inv_bias2_sqrt + eps;
    param[i] = fmaf (neg_step, mi / denom, x);
  }
}

/* A float's square is exact in double, so only the order of the sums
 * matters: fixed by the lanes, whatever the vector width. */
KERNEL void
optim_kernel_sumsq (const float *restrict g, gsize n, float pre, double *restrict lanes)
{
  double a[OPTIM_NORM_LANES];
  for (int j = 0; j < OPTIM_NORM_LANES; j++)
    a[j] = lanes[j];
  gsize i = 0;
  for (; i + OPTIM_NORM_LANES <= n; i += OPTIM_NORM_LANES)
    for (int j = 0; j < OPTIM_NORM_LANES; j++) {
      double x = (double) (g[i + j] * pre);
      a[j] += x * x;
    }
  for (int j = 0; i + (gsize) j < n; j++) {
    double x = (double) (g[i + (gsize) j] * pre);
    a[j] += x * x;
  }
  for (int j = 0; j < OPTIM_NORM_LANES; j++)
    lanes[j] = a[j];
}

KERNEL void
optim_kernel_add (float *restrict sum, const float *restrict g, gsize n)
{
  for (gsize i = 0; i < n; i++)
    sum[i] += g[i];
}
