/* cpu-each-isa.h: compiles the kernel body CPU_ISA_BODY names once per
 * instruction set the backend picks at run time (cpu.h's CpuIsa): with SFX
 * the name suffix (avx512, avx2, base), V and VI vectors of W floats and of
 * W ints, and the target set by a pragma. GCC's vector extensions keep one
 * source for the three.
 *
 *   #define CPU_ISA_BODY "cpu-vmath.h"
 *   #include "cpu-each-isa.h"
 */

#ifndef CPU_EACH_ISA_TYPES
#define CPU_EACH_ISA_TYPES
typedef float v4 __attribute__ ((vector_size (16), aligned (4)));
typedef float v8 __attribute__ ((vector_size (32), aligned (4)));
typedef float v16 __attribute__ ((vector_size (64), aligned (4)));
typedef gint32 i4 __attribute__ ((vector_size (16), aligned (4)));
typedef gint32 i8 __attribute__ ((vector_size (32), aligned (4)));
typedef gint32 i16 __attribute__ ((vector_size (64), aligned (4)));
#endif

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define SFX avx512
#define V v16
#define VI i16
#define W 16
#include CPU_ISA_BODY
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
#include CPU_ISA_BODY
#undef SFX
#undef V
#undef VI
#undef W
#pragma GCC pop_options

#define SFX base
#define V v4
#define VI i4
#define W 4
#include CPU_ISA_BODY
#undef SFX
#undef V
#undef VI
#undef W

#undef CPU_ISA_BODY
