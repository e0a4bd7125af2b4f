/* cpu-vmath.c: the vectorized exp and activations of cpu-vmath.h, one copy
 * per instruction set, picked at run time by the backend's isa. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

#define CPU_ISA_BODY "cpu-vmath.h"
#include "cpu-each-isa.h"

#define VMATH_TABLE(S)                                                                                                 \
  {                                                                                                                    \
    exp_array_##S, gelu_##S, gelu_grad_##S, silu_##S, silu_grad_##S, swiglu_##S, swiglu_grad_##S, max_##S,             \
        exp_sum_##S, exp_scale_##S                                                                                     \
  }

const CpuVmath cpu_vmath[CPU_N_ISAS] = {
  [CPU_ISA_GENERIC] = VMATH_TABLE (base),
  [CPU_ISA_AVX2] = VMATH_TABLE (avx2),
  [CPU_ISA_AVX512] = VMATH_TABLE (avx512),
};
