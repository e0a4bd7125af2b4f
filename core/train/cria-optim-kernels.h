/* cria-optim-kernels.h: AdamW's element-wise update and the squared sums of
 * gradient clipping, compiled apart (core/train/Makefile.inc) so that they
 * vectorize. */
#pragma once

#include <cria/cria-optim.h>

#define OPTIM_NORM_LANES CRIA_OPTIM_NORM_LANES

/* shrink: 1 - lr * weight_decay, or 1; each gradient is used as (g * pre) * post */
typedef CriaAdamwScalars OptimAdamw;

void optim_kernel_adamw (float *param, float *m, float *v, const float *g, gsize n, const OptimAdamw *s);
/* Adds (double) (g[i] * pre)^2 to lanes[i % OPTIM_NORM_LANES]. */
void optim_kernel_sumsq (const float *g, gsize n, float pre, double *lanes);
/* sum[i] += g[i] */
void optim_kernel_add (float *sum, const float *g, gsize n);
