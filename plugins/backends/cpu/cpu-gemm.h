/* cpu-gemm.h: what the matrix products (cpu-gemm.c) and their dot-product
 * paths for decoding (cpu-dot.c) share: the product's description, vector
 * types, target attributes and the helpers both call. */
#pragma once

#include <immintrin.h>
#include <string.h>

#include "cpu.h"

/* Up to this many rows of A (a batch of decoded tokens), dot products beat
 * packing the weight (measured on Zen 5: 2x at 16 rows, even at 32), and
 * give each row the floats it gets alone. */
#define DOT_MAX_ROWS 32
/* bf16 weights with AVX-512 (dot4x4_bf16_avx512): up to here the dot
 * products beat converting the weight into packed f32 panels, a prompt of a
 * chat request included (bench-matmul on a busy 2-core Zen 5: 1.1-1.5x the
 * packed path at 36 rows, 0.6-1.2x at 128). */
#define DOT_BF16_MAX_ROWS 64

typedef float v4 __attribute__ ((vector_size (16), aligned (4)));
typedef float v8 __attribute__ ((vector_size (32), aligned (4)));
typedef float v16 __attribute__ ((vector_size (64), aligned (4)));
typedef guint16 h8 __attribute__ ((vector_size (16), aligned (2)));
typedef guint16 h16 __attribute__ ((vector_size (32), aligned (2)));
typedef guint32 u8v __attribute__ ((vector_size (32)));
typedef guint32 u16v __attribute__ ((vector_size (64)));
typedef guint16 h4 __attribute__ ((vector_size (8), aligned (2)));
typedef guint32 u4v __attribute__ ((vector_size (16)));

#define T_AVX512 __attribute__ ((target ("avx512f,avx2,fma")))
#define T_AVX2 __attribute__ ((target ("avx2,fma")))
#define T_BASE
#define T_BF16 __attribute__ ((target ("avx512f,avx512bf16,avx2,fma,prfchw")))

typedef struct {
  CpuBackend *be;
  gint64 M, N, K;
  const float *A;
  gint64 rsa, csa;
  const void *B;
  CriaDType btype;
  gint64 rsb, csb;
  float *C;
  gint64 ldc;
  gboolean accumulate;
  gint64 m_blocks; /* rows of C per task: m_block rows */
  gint64 m_block;
  gint64 group; /* panels of B per task of the f32 kernels (gemm_task) */
  /* bf16 products: A rounded, in pairs along K (lda words a row) */
  const guint32 *abf;
  gint64 lda;
  /* or A to be rounded into abf by the product's own tasks (see
   * round_rows_bf16): per A_CHUNK rows, 0 to do, 1 under way, 2 done */
  gint *a_state;
  const CriaNode *epi; /* a matmul whose epilogue runs on each finished block, or NULL */
  /* A packed for the f32 kernels, or NULL: rows i..i+MR_PACK-1 of A (i a
   * multiple of MR_PACK) at ap + i K, MR_PACK floats a k (the backend's
   * packed_a) */
  float *ap;
  CpuTaskFunc dot; /* the dot-product path's task, for dot_epilogue_task */
  gint64 span;     /* the bf16 dot-product paths: rows of B a span (DOT_SPAN_BYTES) */
  /* the AMX dot-product path: A's rows as B tiles (cpu_amx_dot_bf16) */
  const guint32 *bv;
  gint64 k2p;
} Gemm;

/* 16 bf16 or f16 values as the 16 floats they are (bf16: its bits are a
 * float's upper half). */
static inline __attribute__ ((always_inline)) T_AVX512 __m512i
widen16 (const guint16 *src, gboolean f16)
{
  __m256i h = _mm256_loadu_si256 ((const __m256i *) src);
  return f16 ? _mm512_castps_si512 (_mm512_cvtph_ps (h)) : _mm512_slli_epi32 (_mm512_cvtepu16_epi32 (h), 16);
}

/* r[c] lane j = r[j] lane c: a 16 x 16 transpose of 32-bit words in
 * registers. */
static inline __attribute__ ((always_inline)) T_AVX512 void
transpose16_regs (__m512i r[16])
{
  __m512i t[16];
#pragma GCC unroll 16
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_unpacklo_epi32 (r[j], r[j + 1]);
    t[j + 1] = _mm512_unpackhi_epi32 (r[j], r[j + 1]);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 16; j += 4) {
    r[j] = _mm512_unpacklo_epi64 (t[j], t[j + 2]);
    r[j + 1] = _mm512_unpackhi_epi64 (t[j], t[j + 2]);
    r[j + 2] = _mm512_unpacklo_epi64 (t[j + 1], t[j + 3]);
    r[j + 3] = _mm512_unpackhi_epi64 (t[j + 1], t[j + 3]);
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; m++) {
    t[m] = _mm512_shuffle_i32x4 (r[m], r[4 + m], 0x88);
    t[m + 4] = _mm512_shuffle_i32x4 (r[m], r[4 + m], 0xdd);
    t[m + 8] = _mm512_shuffle_i32x4 (r[8 + m], r[12 + m], 0x88);
    t[m + 12] = _mm512_shuffle_i32x4 (r[8 + m], r[12 + m], 0xdd);
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; m++) {
    r[m] = _mm512_shuffle_i32x4 (t[m], t[8 + m], 0x88);
    r[m + 8] = _mm512_shuffle_i32x4 (t[m], t[8 + m], 0xdd);
    r[m + 4] = _mm512_shuffle_i32x4 (t[m + 4], t[12 + m], 0x88);
    r[m + 12] = _mm512_shuffle_i32x4 (t[m + 4], t[12 + m], 0xdd);
  }
}

/* Elements [start, start + count) of an nf4 weight in f32, by the
 * processor's table lookup where it has one (cpu-gemm.c). */
void cpu_nf4_run (CpuIsa isa, const CriaTensor *t, gint64 start, gint64 count, float *out);
/* cpu_nf4_run on the product's weight, rounded to bf16 values with
 * bf16-dot (cpu-gemm.c). */
void cpu_gemm_nf4_run (const Gemm *g, gint64 start, gint64 count, float *out);
/* y = x rounded to bf16, 16 at a time (cpu-gemm.c). */
T_AVX512 void cpu_round_bf16_avx512 (const float *x, guint16 *y, gint64 n);
/* The dot-product paths (cpu-dot.c): TRUE when they ran the product. */
gboolean cpu_gemm_dot (Gemm *g, const CriaNode *epi);
