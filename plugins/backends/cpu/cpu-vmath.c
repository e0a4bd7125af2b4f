/* cpu-vmath.c: the vectorized exp and activations of cpu-vmath.h, one copy
 * per instruction set, picked at run time by the backend's isa. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cpu.h"

typedef float v4 __attribute__ ((vector_size (16), aligned (4)));
typedef float v8 __attribute__ ((vector_size (32), aligned (4)));
typedef float v16 __attribute__ ((vector_size (64), aligned (4)));
typedef gint32 i4 __attribute__ ((vector_size (16), aligned (4)));
typedef gint32 i8 __attribute__ ((vector_size (32), aligned (4)));
typedef gint32 i16 __attribute__ ((vector_size (64), aligned (4)));

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define SFX avx512
#define V v16
#define VI i16
#define W 16
#include "cpu-vmath.h"
#undef SFX
#undef V
#undef VI
#undef W
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SFX avx2
#define V v8
#define VI i8
#define W 8
#include "cpu-vmath.h"
#undef SFX
#undef V
#undef VI
#undef W
#pragma GCC pop_options

#define SFX base
#define V v4
#define VI i4
#define W 4
#include "cpu-vmath.h"
#undef SFX
#undef V
#undef VI
#undef W

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
