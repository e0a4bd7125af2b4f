/* cpu-gemm.c: single-precision matrix multiply with runtime ISA dispatch.
 *
 * B is packed, one panel of NR columns at a time, into a K x NR f32 block
 * (converting bf16/f16 weights on the way: bf16 storage, f32 accumulation);
 * a micro-kernel then keeps an MR x NR tile of C in registers while it walks
 * K, broadcasting one element of A per row. The same C source is compiled for
 * AVX-512F, AVX2+FMA and the x86-64 baseline with target attributes, so the
 * build needs no special flags and `__builtin_cpu_supports` picks at run time.
 * Rows of C times a weight matrix with K contiguous (a linear layer on one or
 * a few tokens, as in decoding) skip packing: cpu-dot.c.
 *
 * With bf16 (or NF4) weights and the backend's bf16-dot=on, A is rounded to
 * bf16 as well: AVX-512-BF16's vdpbf16ps then multiplies pairs of bf16 along
 * K and accumulates in f32, twice the products per instruction of an f32
 * FMA. Off by default, since it changes results (by the rounding of A);
 * processors without AVX-512-BF16 round A the same way and run the f32
 * kernels, where a bf16 times a bf16 is exact. Where the processor has
 * AMX-BF16 (and vdpbf16ps no faster than an FMA), the packed path and the
 * dot-product path with bf16 weights run on AMX tiles instead (cpu-amx.c). */
#include "config.h"

#include "cpu-gemm.h"

#define MR 6
#define KC 256
/* Rows of the f32 tile with AVX-512 (kernel_f32_rows): 24 accumulators,
 * each k's 2 loads of B met by 12 broadcasts of A for 24 FMAs, where the
 * 6-row kernel has 8 loads for 12 FMAs; on an Intel Xeon (two 512-bit FMA
 * ports) the 6-row kernel ran at 50-58% of the FMA peak on training shapes,
 * the 12-row one 1.05-1.15x faster. A packed (Gemm.ap) is in groups of
 * MR_PACK rows, MR_PACK floats a k, whichever kernel reads it; the rows
 * left in a group take a tile of 8 or 4 rows. */
#define MR_PACK 12
/* Panels of B a task of the f32 kernels packs at most (see gemm_task). */
#define GROUP_MAX 8
/* K a slice for the AMX kernel: its sums stay in tiles for the whole
 * slice, and loading and storing them (32 x 32 floats of C) each 256 k
 * took a quarter of the kernel's time; the bf16 panel of a slice (128
 * KiB) stays in L2. */
#define KC_AMX 2048

/* One micro-kernel per ISA: V is the vector type of W floats, NR = 2W.
 * c(i, j) over an mr x nr tile; rows past mr repeat the last row of A, so
 * the loop has no branches, and are not stored. */
#define DEFINE_KERNEL(SUFFIX, TARGET, V, W)                                                                            \
  TARGET static void kernel_##SUFFIX (gint64 K, const float *A, gint64 rsa, gint64 csa, const float *Bp, float *C,     \
                                      gint64 ldc, int mr, int nr, gboolean accumulate)                                 \
  {                                                                                                                    \
    const float *a[MR];                                                                                                \
    for (int i = 0; i < MR; i++)                                                                                       \
      a[i] = A + (i < mr ? i : mr - 1) * rsa;                                                                          \
    V c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 }, c20 = { 0 }, c21 = { 0 };                                    \
    V c30 = { 0 }, c31 = { 0 }, c40 = { 0 }, c41 = { 0 }, c50 = { 0 }, c51 = { 0 };                                    \
    for (gint64 k = 0; k < K; k++) {                                                                                   \
      V b0 = *(const V *) (Bp + k * 2 * W), b1 = *(const V *) (Bp + k * 2 * W + W);                                    \
      gint64 o = k * csa;                                                                                              \
      float a0 = a[0][o], a1 = a[1][o], a2 = a[2][o], a3 = a[3][o], a4 = a[4][o], a5 = a[5][o];                        \
      c00 += a0 * b0;                                                                                                  \
      c01 += a0 * b1;                                                                                                  \
      c10 += a1 * b0;                                                                                                  \
      c11 += a1 * b1;                                                                                                  \
      c20 += a2 * b0;                                                                                                  \
      c21 += a2 * b1;                                                                                                  \
      c30 += a3 * b0;                                                                                                  \
      c31 += a3 * b1;                                                                                                  \
      c40 += a4 * b0;                                                                                                  \
      c41 += a4 * b1;                                                                                                  \
      c50 += a5 * b0;                                                                                                  \
      c51 += a5 * b1;                                                                                                  \
    }                                                                                                                  \
    V rows[MR][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 }, { c30, c31 }, { c40, c41 }, { c50, c51 } };            \
    for (int i = 0; i < mr; i++) {                                                                                     \
      float *out = C + i * ldc;                                                                                        \
      if (nr == 2 * W) {                                                                                               \
        V *o0 = (V *) out, *o1 = (V *) (out + W);                                                                      \
        if (accumulate) {                                                                                              \
          *o0 += rows[i][0];                                                                                           \
          *o1 += rows[i][1];                                                                                           \
        } else {                                                                                                       \
          *o0 = rows[i][0];                                                                                            \
          *o1 = rows[i][1];                                                                                            \
        }                                                                                                              \
      } else {                                                                                                         \
        float tmp[2 * W];                                                                                              \
        memcpy (tmp, &rows[i][0], sizeof (V));                                                                         \
        memcpy (tmp + W, &rows[i][1], sizeof (V));                                                                     \
        for (int j = 0; j < nr; j++)                                                                                   \
          out[j] = accumulate ? out[j] + tmp[j] : tmp[j];                                                              \
      }                                                                                                                \
    }                                                                                                                  \
  }

DEFINE_KERNEL (avx512, T_AVX512, v16, 16)
DEFINE_KERNEL (avx2, T_AVX2, v8, 8)
DEFINE_KERNEL (base, T_BASE, v4, 4)

/* Stores (or adds to C) the first mr rows of a tile of 32-column sums held
 * in registers: whole vectors, masked past nr (one element at a time, these
 * stores, waiting for C's lines, took 40% of the bf16 kernel's time). */
static inline __attribute__ ((always_inline)) T_AVX512 void
store_tile32 (const __m512 (*c)[2], float *C, gint64 ldc, int mr, int nr, gboolean accumulate)
{
  __mmask16 m0 = (__mmask16) (nr >= 16 ? 0xffff : (1u << nr) - 1);
  __mmask16 m1 = (__mmask16) (nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
  for (int i = 0; i < mr; i++) {
    float *out = C + i * ldc;
    __m512 v0 = c[i][0], v1 = c[i][1];
    if (accumulate) {
      v0 = _mm512_add_ps (_mm512_maskz_loadu_ps (m0, out), v0);
      v1 = _mm512_add_ps (_mm512_maskz_loadu_ps (m1, out + 16), v1);
    }
    _mm512_mask_storeu_ps (out, m0, v0);
    _mm512_mask_storeu_ps (out + 16, m1, v1);
  }
}

/* The f32 tile with AVX-512, ROWS rows: A(i, k) at a_i[k], a_i = A + i rsa
 * (rows past mr repeat the last row, computed and not stored), or, packed
 * (CSA = MR_PACK, zeros past M), at A[k CSA + i]: one pointer, where the
 * row pointers of the other form cost the packed kernel a fifth of its
 * speed with its operands in L1 (12 pointers and a bound kept on the
 * stack; Intel Xeon). Each c(i, j) is the sum along k that kernel_avx512
 * makes, so the same floats. */
static inline __attribute__ ((always_inline)) T_AVX512 void
kernel_f32_rows (int ROWS, int CSA, gint64 K, const float *A, gint64 rsa, const float *Bp, float *C, gint64 ldc, int mr,
                 int nr, gboolean accumulate)
{
  const float *a[MR_PACK];
  for (int i = 0; i < ROWS; i++)
    a[i] = A + (i < mr ? i : mr - 1) * rsa;
  __m512 c[MR_PACK][2];
#pragma GCC unroll 12
  for (int i = 0; i < ROWS; i++)
    c[i][0] = c[i][1] = _mm512_setzero_ps ();
  for (int i = 0; i < mr; i++) {
    __builtin_prefetch (C + i * ldc, 1, 3);
    __builtin_prefetch (C + i * ldc + 16, 1, 3);
  }
  for (gint64 k = 0; k < K; k++) {
    __m512 b0 = _mm512_loadu_ps (Bp + k * 32), b1 = _mm512_loadu_ps (Bp + k * 32 + 16);
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; i++) {
      __m512 x = _mm512_set1_ps (CSA == 1 ? a[i][k] : A[k * CSA + i]);
      c[i][0] = _mm512_fmadd_ps (x, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps (x, b1, c[i][1]);
    }
  }
  store_tile32 ((const __m512 (*)[2]) c, C, ldc, mr, nr, accumulate);
}

typedef void (*KernelF32Func) (gint64, const float *, gint64, const float *, float *, gint64, int, int, gboolean);

#define DEFINE_KERNEL_F32(ROWS, CSA, NAME)                                                                             \
  T_AVX512 static void NAME (gint64 K, const float *A, gint64 rsa, const float *Bp, float *C, gint64 ldc, int mr,      \
                             int nr, gboolean accumulate)                                                              \
  {                                                                                                                    \
    kernel_f32_rows (ROWS, CSA, K, A, rsa, Bp, C, ldc, mr, nr, accumulate);                                            \
  }
DEFINE_KERNEL_F32 (12, 1, kernel_f32_12)
DEFINE_KERNEL_F32 (8, 1, kernel_f32_8)
DEFINE_KERNEL_F32 (4, 1, kernel_f32_4)
DEFINE_KERNEL_F32 (12, MR_PACK, kernel_f32_packed_12)
DEFINE_KERNEL_F32 (8, MR_PACK, kernel_f32_packed_8)
DEFINE_KERNEL_F32 (4, MR_PACK, kernel_f32_packed_4)

/* [packed][tile]: tiles of 12, 8 and 4 rows */
static const KernelF32Func kernels_f32[2][3] = {
  { kernel_f32_12, kernel_f32_8, kernel_f32_4 },
  { kernel_f32_packed_12, kernel_f32_packed_8, kernel_f32_packed_4 },
};

/* NF4 blocks with AVX-512: the 16 scaled code values fit one register, so a
 * permute looks up 16 nibbles at once. The same products as
 * cria_nf4_dequantize_range, so the same floats. */
T_AVX512 static void
nf4_blocks_avx512 (const CriaTensor *t, gint64 block, gint64 n_blocks, float *out)
{
  /* lanes 2k and 2k+1 take the high and the low nibble of byte k (of 8) */
  static const gint32 first[16] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23 };
  static const gint32 second[16] = { 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31 };
  const CriaNf4State *s = t->nf4;
  const guint8 *d = (const guint8 *) t->data + block * (CRIA_NF4_BLOCK / 2);
  __m512 q = _mm512_loadu_ps (s->quant_map);
  __m512i i_first = _mm512_loadu_si512 (first), i_second = _mm512_loadu_si512 (second);
  __m512i low_mask = _mm512_set1_epi32 (15);
  for (gint64 b = 0; b < n_blocks; b++, d += CRIA_NF4_BLOCK / 2, out += CRIA_NF4_BLOCK) {
    __m512 lut = _mm512_mul_ps (q, _mm512_set1_ps (cria_nf4_block_absmax (s, block + b)));
    for (int h = 0; h < 2; h++) {
      __m512i bytes = _mm512_cvtepu8_epi32 (_mm_loadu_si128 ((const __m128i *) (d + 16 * h)));
      __m512i hi = _mm512_srli_epi32 (bytes, 4), lo = _mm512_and_si512 (bytes, low_mask);
      _mm512_storeu_ps (out + 32 * h, _mm512_permutexvar_ps (_mm512_permutex2var_epi32 (hi, i_first, lo), lut));
      _mm512_storeu_ps (out + 32 * h + 16, _mm512_permutexvar_ps (_mm512_permutex2var_epi32 (hi, i_second, lo), lut));
    }
  }
}

/* Elements [start, start + count) of an nf4 weight in f32: whole aligned
 * blocks by table lookup where the processor has one, the rest by libcria. */
void
cpu_nf4_run (CpuIsa isa, const CriaTensor *t, gint64 start, gint64 count, float *out)
{
  if (isa == CPU_ISA_AVX512 && start % CRIA_NF4_BLOCK == 0) {
    gint64 whole = count / CRIA_NF4_BLOCK;
    nf4_blocks_avx512 (t, start / CRIA_NF4_BLOCK, whole, out);
    start += whole * CRIA_NF4_BLOCK;
    out += whole * CRIA_NF4_BLOCK;
    count -= whole * CRIA_NF4_BLOCK;
  }
  if (count > 0)
    cria_nf4_dequantize_range (t, start, count, out);
}

/* y = x rounded to bf16 (to nearest, ties to even; NaN kept): the same bits
 * as cria_f32_to_bf16, 16 at a time. */
T_AVX512 void
cpu_round_bf16_avx512 (const float *x, guint16 *y, gint64 n)
{
  gint64 k = 0;
  for (; k + 16 <= n; k += 16) {
    u16v u;
    memcpy (&u, x + k, sizeof u);
    u16v r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    u16v nan = (u16v) ((u & 0x7fffffffu) > 0x7f800000u);
    r = (r & ~nan) | (((u >> 16) | 0x40u) & nan);
    h16 h = __builtin_convertvector(r, h16);
    memcpy (y + k, &h, sizeof h);
  }
  for (; k < n; k++)
    y[k] = cria_f32_to_bf16 (x[k]);
}

/* x rounded to bf16 values in place, as cpu_round_bf16_avx512 rounds. */
T_AVX512 static void
round_f32_avx512 (float *x, gint64 n)
{
  gint64 k = 0;
  for (; k + 16 <= n; k += 16) {
    u16v u;
    memcpy (&u, x + k, sizeof u);
    u16v r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    u16v nan = (u16v) ((u & 0x7fffffffu) > 0x7f800000u);
    r = (r & ~nan) | (((u & 0xffff0000u) | 0x400000u) & nan);
    memcpy (x + k, &r, sizeof r);
  }
  for (; k < n; k++)
    x[k] = cria_bf16_to_f32 (cria_f32_to_bf16 (x[k]));
}

/* Rows of the bf16 micro-kernel's tile: 24 accumulators, since vdpbf16ps
 * has a longer latency than an f32 FMA and 12 chains left it waiting (Zen
 * 5: 1.4x the f32 kernel with 6 rows; the sums are the same at any MR). */
#define MR_BF16 12
/* The short tile for the rows left over: 16 chains still cover the
 * latency, and 256 rows (a training sequence) are 20 x 12 + 2 x 8 instead
 * of 22 x 12, whose last tile computed 8 repeated rows for nothing. */
#define MR_BF16_SHORT 8

/* The bf16 micro-kernel, ROWS rows: A and the packed panel hold pairs of
 * bf16 along K in 32-bit words (A's rows lda words apart, the panel 32
 * words a pair); vdpbf16ps adds both products of a pair to an f32 lane.
 * A's pair is the last operand, so that it is an embedded broadcast from
 * memory. */
static inline __attribute__ ((always_inline)) T_BF16 void
kernel_bf16_rows (int ROWS, gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr,
                  int nr, gboolean accumulate)
{
  const guint32 *a[MR_BF16];
  for (int i = 0; i < ROWS; i++)
    a[i] = A + (i < mr ? i : mr - 1) * lda;
  __m512 c[MR_BF16][2];
#pragma GCC unroll 12
  for (int i = 0; i < ROWS; i++)
    c[i][0] = c[i][1] = _mm512_setzero_ps ();
  for (int i = 0; i < mr; i++) {
    __builtin_prefetch (C + i * ldc, 1, 3);
    __builtin_prefetch (C + i * ldc + 16, 1, 3);
  }
  for (gint64 k = 0; k < K2; k++) {
    __m512bh b0 = (__m512bh) _mm512_loadu_si512 (Bp + k * 32), b1 = (__m512bh) _mm512_loadu_si512 (Bp + k * 32 + 16);
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; i++) {
      __m512bh x = (__m512bh) _mm512_set1_epi32 ((int) a[i][k]);
      c[i][0] = _mm512_dpbf16_ps (c[i][0], b0, x);
      c[i][1] = _mm512_dpbf16_ps (c[i][1], b1, x);
    }
  }
  store_tile32 ((const __m512 (*)[2]) c, C, ldc, mr, nr, accumulate);
}

T_BF16 static void
kernel_bf16 (gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr, int nr,
             gboolean accumulate)
{
  kernel_bf16_rows (MR_BF16, K2, A, lda, Bp, C, ldc, mr, nr, accumulate);
}

T_BF16 static void
kernel_bf16_short (gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr, int nr,
                   gboolean accumulate)
{
  kernel_bf16_rows (MR_BF16_SHORT, K2, A, lda, Bp, C, ldc, mr, nr, accumulate);
}

/* The rows of the next bf16 tile, `left` rows being left: whole tiles of
 * MR_BF16, and the last 13 to 16 (or up to 8) in short tiles. */
static inline int
tile_rows_bf16 (gint64 left)
{
  return left > 16 || (left > MR_BF16_SHORT && left <= MR_BF16) ? MR_BF16 : MR_BF16_SHORT;
}

typedef void (*KernelFunc) (gint64, const float *, gint64, gint64, const float *, float *, gint64, int, int, gboolean);

static const struct {
  KernelFunc kernel;
  int nr;
} isas[CPU_N_ISAS] = {
  [CPU_ISA_GENERIC] = { kernel_base, 8 },
  [CPU_ISA_AVX2] = { kernel_avx2, 16 },
  [CPU_ISA_AVX512] = { kernel_avx512, 32 },
};

static inline float
b_at (const Gemm *g, gint64 k, gint64 n)
{
  gint64 o = k * g->rsb + n * g->csb;
  float v;
  switch (g->btype) {
    case CRIA_DTYPE_NF4:
      cria_nf4_dequantize_range (g->B, o, 1, &v);
      return v;
    case CRIA_DTYPE_BF16:
      return cria_bf16_to_f32 (((const guint16 *) g->B)[o]);
    case CRIA_DTYPE_F16:
      return cria_f16_to_f32 (((const guint16 *) g->B)[o]);
    default:
      return ((const float *) g->B)[o];
  }
}

/* cpu_nf4_run on the gemm's weight; with bf16-dot the values are rounded to
 * bf16, as the bf16 kernels round them, whichever kernels run. */
void
cpu_gemm_nf4_run (const Gemm *g, gint64 start, gint64 count, float *out)
{
  cpu_nf4_run (g->be->isa, g->B, start, count, out);
  if (g->be->bf16_dot && g->be->isa == CPU_ISA_AVX512)
    round_f32_avx512 (out, count);
  else if (g->be->bf16_dot)
    for (gint64 i = 0; i < count; i++)
      out[i] = cria_bf16_to_f32 (cria_f32_to_bf16 (out[i]));
}

T_AVX512 static void transpose16_avx512 (const guint16 *col0, gint64 stride, guint32 *dst);
T_AVX512 static void widen_rows_avx512 (const guint16 *B, gint64 rsb, gint64 kc, int nr, gboolean f16, float *Bp,
                                        int width);
T_AVX512 static void transpose16_widen_avx512 (const guint16 *col0, gint64 stride, gboolean f16, float *dst, gint64 ld);

/* Bp[k][j] = B(k0 + k, n0 + j) for k < kc, zero past the last column. */
static void
pack_panel (const Gemm *g, gint64 k0, gint64 kc, gint64 n0, int nr, int width, float *Bp)
{
  if (nr < width)
    memset (Bp, 0, (gsize) (kc * width) * sizeof (float));
  if (g->btype == CRIA_DTYPE_F32 && g->csb == 1) {
    const float *B = g->B;
    for (gint64 k = 0; k < kc; k++)
      memcpy (Bp + k * width, B + (k0 + k) * g->rsb + n0, (gsize) nr * sizeof (float));
    return;
  }
  gboolean half = g->btype == CRIA_DTYPE_BF16 || g->btype == CRIA_DTYPE_F16;
  gboolean f16 = g->btype == CRIA_DTYPE_F16;
  if (half && g->csb == 1) {
    /* [K,N] bf16 or f16 (a stored weight in backward, dX = dY W): rows
     * widened as they are copied; by b_at, one element at a time along k,
     * this was a third of a LoRA step on Qwen2.5's bf16 checkpoint */
    const guint16 *B = (const guint16 *) g->B + k0 * g->rsb + n0;
    if (g->be->isa == CPU_ISA_AVX512)
      widen_rows_avx512 (B, g->rsb, kc, nr, f16, Bp, width);
    else
      for (gint64 k = 0; k < kc; k++)
        for (int j = 0; j < nr; j++)
          Bp[k * width + j] = f16 ? cria_f16_to_f32 (B[k * g->rsb + j]) : cria_bf16_to_f32 (B[k * g->rsb + j]);
    return;
  }
  if (half && g->rsb == 1 && width == 32 && g->be->isa == CPU_ISA_AVX512) {
    /* [N,K] bf16 or f16 (a stored weight in the forward): 16 x 16 blocks
     * widened and transposed in registers, as the f32 weights are */
    const guint16 *B = g->B;
    gint64 kv = kc / 16 * 16;
    int jv = nr / 16 * 16;
    for (int j0 = 0; j0 < jv; j0 += 16)
      for (gint64 k = 0; k < kv; k += 16)
        transpose16_widen_avx512 (B + k0 + k + (n0 + j0) * g->csb, g->csb, f16, Bp + k * width + j0, width);
    for (int j = 0; j < nr; j++)
      for (gint64 k = j < jv ? kv : 0; k < kc; k++)
        Bp[k * width + j] = b_at (g, k0 + k, n0 + j);
    return;
  }
  if (g->btype == CRIA_DTYPE_NF4 && (g->rsb == 1 || g->csb == 1)) {
    /* Dequantize runs of contiguous elements, a block scale at a time. */
    float run[KC];
    if (g->csb == 1)
      for (gint64 k = 0; k < kc; k++)
        cpu_gemm_nf4_run (g, (k0 + k) * g->rsb + n0, nr, Bp + k * width);
    else
      for (int j = 0; j < nr; j++) {
        cpu_gemm_nf4_run (g, k0 + (n0 + j) * g->csb, kc, run);
        for (gint64 k = 0; k < kc; k++)
          Bp[k * width + j] = run[k];
      }
    return;
  }
  if (g->rsb == 1 && g->btype == CRIA_DTYPE_F32 && width == 32 && g->be->isa == CPU_ISA_AVX512) {
    /* [N,K] f32 weights: 16 x 16 blocks transposed in registers (a float
     * moved as the 32-bit word it is); one float at a time this was 7% of
     * a full fine-tuning step */
    const float *B = g->B;
    gint64 kv = kc / 16 * 16;
    int jv = nr / 16 * 16;
    for (int j0 = 0; j0 < jv; j0 += 16)
      for (gint64 k = 0; k < kv; k += 16)
        transpose16_avx512 ((const guint16 *) (B + k0 + k + (n0 + j0) * g->csb), 2 * g->csb,
                            (guint32 *) (Bp + k * width + j0));
    for (int j = 0; j < nr; j++)
      for (gint64 k = j < jv ? kv : 0; k < kc; k++)
        Bp[k * width + j] = B[k0 + k + (n0 + j) * g->csb];
    return;
  }
  if (g->rsb == 1 && (g->btype == CRIA_DTYPE_F32 || g->btype == CRIA_DTYPE_BF16)) {
    /* [N,K] weights (linear layers, the lm head): a column of B is a row in
     * memory; a block of 16 columns at a time, so that the scattered stores
     * into Bp land in a few cache lines */
    for (int j0 = 0; j0 < nr; j0 += 16)
      for (gint64 k = 0; k < kc; k++)
        for (int j = j0; j < MIN (nr, j0 + 16); j++) {
          gint64 o = k0 + k + (n0 + j) * g->csb;
          Bp[k * width + j] = g->btype == CRIA_DTYPE_F32 ? ((const float *) g->B)[o]
                                                         : cria_bf16_to_f32 (((const guint16 *) g->B)[o]);
        }
    return;
  }
  /* Walk each column of B along k: contiguous for [N,K] weights. */
  for (int j = 0; j < nr; j++)
    for (gint64 k = 0; k < kc; k++)
      Bp[k * width + j] = b_at (g, k0 + k, n0 + j);
}

/* Packs rows [begin MR_PACK, end MR_PACK) of A for the f32 kernels
 * (Gemm.ap); the rows past M are zeros. */
static void
pack_a_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  for (gint64 p = begin; p < end; p++) {
    gint64 i0 = p * MR_PACK;
    int mr = (int) MIN (MR_PACK, g->M - i0);
    float *dst = g->ap + i0 * g->K;
    const float *a = g->A + i0 * g->rsa;
    if (mr < MR_PACK)
      memset (dst, 0, (gsize) (MR_PACK * g->K) * sizeof (float));
    if (g->rsa == 1) /* A transposed: a k's rows are contiguous */
      for (gint64 k = 0; k < g->K; k++)
        memcpy (dst + k * MR_PACK, a + k * g->csa, (gsize) mr * sizeof (float));
    else
      for (int r = 0; r < mr; r++)
        for (gint64 k = 0; k < g->K; k++)
          dst[k * MR_PACK + r] = a[r * g->rsa + k * g->csa];
  }
}

/* The lines of B that pack_panel (or pack_panel_bf16) reads for a slice:
 * `rows` runs of `len` bytes, `stride` bytes apart (none when B is not an
 * f32 or bf16 matrix in memory with one of its strides 1). */
typedef struct {
  const char *base;
  gint64 rows, len, stride;
} Prefetch;

static void
prefetch_init (const Gemm *g, gint64 k0, gint64 n0, int nr, Prefetch *pf)
{
  pf->rows = 0;
  if ((g->btype != CRIA_DTYPE_F32 && g->btype != CRIA_DTYPE_BF16) || k0 >= g->K || n0 >= g->N ||
      (g->csb != 1 && g->rsb != 1))
    return;
  gint64 kc = MIN (KC, g->K - k0), size = g->btype == CRIA_DTYPE_F32 ? 4 : 2;
  gboolean by_rows = g->csb == 1; /* [K,N]: a run of nr elements for each k */
  pf->base = (const char *) g->B + (k0 * g->rsb + n0 * g->csb) * size;
  pf->rows = by_rows ? kc : nr;
  pf->len = (by_rows ? nr : kc) * size;
  pf->stride = (by_rows ? g->rsb : g->csb) * size;
}

/* Part `part` of `parts` of the slice's lines into L2. Always inlined: as
 * a function of its own GCC finds it free of side effects (a prefetch
 * counts as none) and drops the calls. */
static inline __attribute__ ((always_inline)) void
prefetch_part (const Prefetch *pf, gint64 part, gint64 parts)
{
  for (gint64 r = part * pf->rows / parts; r < (part + 1) * pf->rows / parts; r++) {
    const char *row = pf->base + r * pf->stride;
    for (gint64 o = 0; o < pf->len + 63; o += 64)
      __builtin_prefetch (row + MIN (o, pf->len - 1), 0, 2);
  }
}

/* One task: a group of g->group panels of NR columns times a block of
 * rows, K in slices of KC. Each panel's slice is packed (KC x NR floats,
 * 32 KiB for AVX-512, the group's in L2), then each tile of rows of A (in
 * L1) meets every panel of the group in turn: A is read from memory once
 * per group rather than once per panel. One panel per task read all of A
 * (a few MiB at K = 3072, past L2) for every 32 columns: a copy of the
 * loop on one Xeon core ran 1.15-1.5x faster with 8 panels than with 1
 * (516 x 768 x 3072, 516 x 2304 x 768, 2048^3). The sums are unchanged. */
static void
gemm_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  int width = isas[g->be->isa].nr;
  KernelFunc kernel = isas[g->be->isa].kernel;
  float *Bp = cpu_scratch (g->be, thread, (gsize) (KC * width * g->group));
  for (gint64 t = begin; t < end; t++) {
    gint64 grp = t / g->m_blocks, mb = t % g->m_blocks;
    gint64 n0 = grp * g->group * width;
    int np = (int) MIN (g->group, (g->N - n0 + width - 1) / width);
    gint64 i_end = MIN (g->M, (mb + 1) * g->m_block);
    for (gint64 k0 = 0; k0 < g->K; k0 += KC) {
      gint64 kc = MIN (KC, g->K - k0);
      for (int p = 0; p < np; p++)
        pack_panel (g, k0, kc, n0 + p * width, (int) MIN (width, g->N - n0 - p * width), width, Bp + p * KC * width);
      /* no prefetch of the next slice here, unlike the bf16 task: the
       * calls GCC had dropped all along, once made to run, gained nothing
       * measurable on Qwen's f32 shapes (Zen 5), nor with the 12-row
       * kernel on an Intel Xeon */
      gboolean acc = g->accumulate || k0 > 0;
      int step = g->be->isa == CPU_ISA_AVX512 ? MR_PACK : MR;
      for (gint64 i = mb * g->m_block; i < i_end;) {
        int mr = (int) MIN (step, i_end - i);
        for (int p = 0; p < np; p++) {
          gint64 n = n0 + p * width;
          int nr = (int) MIN (width, g->N - n);
          const float *bp = Bp + p * KC * width;
          float *c = g->C + i * g->ldc + n;
          if (g->be->isa == CPU_ISA_AVX512) {
            KernelF32Func kf = kernels_f32[g->ap != NULL][mr > 8 ? 0 : mr > 4 ? 1 : 2];
            if (g->ap)
              kf (kc, g->ap + i * g->K + k0 * MR_PACK, 1, bp, c, g->ldc, mr, nr, acc);
            else
              kf (kc, g->A + i * g->rsa + k0, g->rsa, bp, c, g->ldc, mr, nr, acc);
          } else if (g->ap) { /* MR rows of a group at a time */
            const float *ap = g->ap + (i - i % MR_PACK) * g->K + k0 * MR_PACK + i % MR_PACK;
            kernel (kc, ap, 1, MR_PACK, bp, c, g->ldc, mr, nr, acc);
          } else {
            kernel (kc, g->A + i * g->rsa + k0 * g->csa, g->rsa, g->csa, bp, c, g->ldc, mr, nr, acc);
          }
        }
        i += mr;
      }
    }
    if (g->epi) /* while the block is still in cache */
      cpu_epilogue (g->be, g->epi, mb * g->m_block, i_end, n0, MIN (np * width, g->N - n0));
  }
}

/* dst[j] = r0[j] | r1[j] << 16 for 32 columns: two rows of B along n made
 * into pair words (only the bf16 kernels call it, so AVX-512 is there). */
T_AVX512 static void
pair_rows_avx512 (const guint16 *r0, const guint16 *r1, guint32 *dst)
{
  for (int h = 0; h < 32; h += 16) {
    h16 x, y;
    memcpy (&x, r0 + h, sizeof x);
    memcpy (&y, r1 + h, sizeof y);
    u16v w = __builtin_convertvector(x, u16v) | __builtin_convertvector(y, u16v) << 16;
    memcpy (dst + h, &w, sizeof w);
  }
}

/* Bp[k * width + j] = B[k * rsb + j] widened to f32, for kc rows of nr. */
T_AVX512 static void
widen_rows_avx512 (const guint16 *B, gint64 rsb, gint64 kc, int nr, gboolean f16, float *Bp, int width)
{
  int nv = nr / 16 * 16;
  for (gint64 k = 0; k < kc; k++) {
    const guint16 *row = B + k * rsb;
    float *dst = Bp + k * width;
    for (int j = 0; j < nv; j += 16)
      _mm512_storeu_si512 (dst + j, widen16 (row + j, f16));
    for (int j = nv; j < nr; j++)
      dst[j] = f16 ? cria_f16_to_f32 (row[j]) : cria_bf16_to_f32 (row[j]);
  }
}

/* dst[c * ld + j] = column j's element c widened, for 16 columns (column j
 * at col0 + j * stride) and 16 elements. */
T_AVX512 static void
transpose16_widen_avx512 (const guint16 *col0, gint64 stride, gboolean f16, float *dst, gint64 ld)
{
  __m512i r[16];
  for (int j = 0; j < 16; j++)
    r[j] = widen16 (col0 + j * stride, f16);
  transpose16_regs (r);
  for (int c = 0; c < 16; c++)
    _mm512_storeu_si512 (dst + c * ld, r[c]);
}

/* dst[c * 32 + j] = the pair word c of column j, for 16 columns (column j
 * at col0 + j * stride bf16) and 16 pair words (only the bf16 kernels call
 * it). */
T_AVX512 static void
transpose16_avx512 (const guint16 *col0, gint64 stride, guint32 *dst)
{
  __m512i r[16];
  for (int j = 0; j < 16; j++)
    r[j] = _mm512_loadu_si512 (col0 + j * stride);
  transpose16_regs (r);
  for (int c = 0; c < 16; c++)
    _mm512_storeu_si512 (dst + c * 32, r[c]);
}

/* The panel of pair words for the bf16 kernel: Bp[k2][j] holds B(k0 + 2 k2,
 * n0 + j) in its low half and B(k0 + 2 k2 + 1, n0 + j) in its high half,
 * zero past kc and nr. bf16 weights are copied as they are; others (NF4) go
 * through the f32 panel and are rounded. */
static void
pack_panel_bf16 (const Gemm *g, gint64 k0, gint64 kc, gint64 n0, int nr, float *f32, guint32 *Bp)
{
  gint64 kc2 = (kc + 1) / 2;
  /* the first two cases write every word of a full panel */
  if (nr < 32 || !(g->btype == CRIA_DTYPE_BF16 && (g->rsb == 1 || g->csb == 1)))
    memset (Bp, 0, (gsize) (kc2 * 32) * sizeof (guint32));
  if (g->btype == CRIA_DTYPE_BF16 && g->rsb == 1) {
    /* a linear layer's [N,K] weight: each pair is one word of the column */
    const guint16 *B = g->B;
    /* 16 x 16 blocks of pair words by registers; one word at a time this
     * was 5% of a bf16 LoRA step */
    gint64 k2v = nr == 32 ? kc / 2 / 16 * 16 : 0;
    for (int j0 = 0; j0 < 32 && k2v > 0; j0 += 16)
      for (gint64 k2 = 0; k2 < k2v; k2 += 16)
        transpose16_avx512 (B + k0 + 2 * k2 + (n0 + j0) * g->csb, g->csb, Bp + k2 * 32 + j0);
    for (int j = 0; j < nr; j++) {
      const guint16 *col = B + k0 + (n0 + j) * g->csb;
      for (gint64 k2 = k2v; k2 < kc / 2; k2++)
        memcpy (Bp + k2 * 32 + j, col + 2 * k2, sizeof (guint32));
      if (kc & 1)
        Bp[(kc / 2) * 32 + j] = col[kc - 1];
    }
    return;
  }
  if (g->btype == CRIA_DTYPE_BF16 && g->csb == 1 && nr == 32) {
    /* the same weight in backward (dX = dY W): rows of B are along n, so a
     * pair word joins two rows; one word at a time this was 80% of
     * packing and 15% of a bf16 LoRA step */
    const guint16 *B = (const guint16 *) g->B + k0 * g->rsb + n0;
    gint64 k2 = 0;
    for (; 2 * k2 + 1 < kc; k2++)
      pair_rows_avx512 (B + 2 * k2 * g->rsb, B + (2 * k2 + 1) * g->rsb, Bp + k2 * 32);
    if (kc & 1)
      for (int j = 0; j < 32; j++)
        Bp[k2 * 32 + j] = B[2 * k2 * g->rsb + j];
    return;
  }
  if (g->btype == CRIA_DTYPE_BF16) {
    const guint16 *B = g->B;
    for (int j = 0; j < nr; j++)
      for (gint64 k = 0; k < kc; k++)
        Bp[(k / 2) * 32 + j] |= (guint32) B[(k0 + k) * g->rsb + (n0 + j) * g->csb] << (16 * (k & 1));
    return;
  }
  pack_panel (g, k0, kc, n0, nr, 32, f32);
  for (gint64 k = 0; k < kc; k++)
    for (int j = 0; j < nr; j++)
      Bp[(k / 2) * 32 + j] |= (guint32) cria_f32_to_bf16 (f32[k * 32 + j]) << (16 * (k & 1));
}

/* Rows of A a thread rounds at a time in round_rows_bf16. */
#define A_CHUNK 16

/* Rows [i0, i1) of A rounded into g->abf (A's rows contiguous): the
 * chunks no thread has taken are rounded here, then those that another
 * thread is rounding are waited for. The product's tasks round A as they
 * first need it, rather than a pass of its own before them: one hand-off
 * to the pool a product instead of two (a bf16 LoRA step makes hundreds). */
static void
round_rows_bf16 (const Gemm *g, gint64 i0, gint64 i1)
{
  gint64 c0 = i0 / A_CHUNK, c1 = (i1 + A_CHUNK - 1) / A_CHUNK;
  for (gint64 c = c0; c < c1; c++) {
    gint todo = 0;
    if (!__atomic_compare_exchange_n (&g->a_state[c], &todo, 1, FALSE, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      continue;
    for (gint64 i = c * A_CHUNK; i < MIN (g->M, (c + 1) * A_CHUNK); i++) {
      guint16 *dst = (guint16 *) (g->abf + i * g->lda);
      cpu_round_bf16_avx512 (g->A + i * g->rsa, dst, g->K);
      if (g->K % 2 == 1) /* the pair word's other half */
        dst[g->K] = 0;
    }
    __atomic_store_n (&g->a_state[c], 2, __ATOMIC_RELEASE);
  }
  for (gint64 c = c0; c < c1; c++)
    for (guint turn = 1; __atomic_load_n (&g->a_state[c], __ATOMIC_ACQUIRE) != 2; turn++)
      if (turn % 1024 == 0) /* its thread was preempted */
        g_thread_yield ();
}

static void
gemm_bf16_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  /* not NF4, which packs through f32 runs of up to KC */
  gint64 kcmax = g->be->amx && g->btype == CRIA_DTYPE_BF16 ? KC_AMX : KC;
  /* a panel's pair words, kcmax / 2 rows (a multiple of the tiles' 16) */
  gint64 panel_words = kcmax / 2 * 32;
  float *f32 = cpu_scratch (g->be, thread, (gsize) (KC * 32 + g->group * panel_words));
  guint32 *Bp = (guint32 *) (f32 + KC * 32);
  if (g->be->amx)
    cpu_amx_begin ();
  for (gint64 t = begin; t < end; t++) {
    gint64 grp = t / g->m_blocks, mb = t % g->m_blocks;
    gint64 n0 = grp * g->group * 32;
    int np = (int) MIN (g->group, (g->N - n0 + 31) / 32);
    gint64 i_end = MIN (g->M, (mb + 1) * g->m_block);
    if (g->a_state)
      round_rows_bf16 (g, mb * g->m_block, i_end);
    for (gint64 k0 = 0; k0 < g->K; k0 += kcmax) {
      gint64 kc = MIN (kcmax, g->K - k0), kc2 = (kc + 1) / 2;
      for (int p = 0; p < np; p++)
        pack_panel_bf16 (g, k0, kc, n0 + p * 32, (int) MIN (32, g->N - n0 - p * 32), f32, Bp + p * panel_words);
      if (g->be->amx) {
        /* each panel's pair rows up to the tiles' 16, zero: see
         * cpu_amx_kernel_bf16. As in gemm_task, each block of rows meets
         * the group's panels in turn. No prefetch of the next slice,
         * unlike the AVX512-BF16 kernel: a slice is 2048 k, a line of B
         * each for [K,N] weights, and these prefetches took a tenth of a
         * Qwen2.5 LoRA step (1.05x without) */
        for (int p = 0; p < np; p++)
          memset (Bp + p * panel_words + kc2 * 32, 0, (gsize) (((kc2 + 15) / 16 * 16 - kc2) * 32) * sizeof (guint32));
        for (gint64 i = mb * g->m_block; i < i_end; i += 32)
          for (int p = 0; p < np; p++) {
            gint64 n = n0 + p * 32;
            cpu_amx_kernel_bf16 (kc2, g->abf + i * g->lda + k0 / 2, g->lda, Bp + p * panel_words, g->C + i * g->ldc + n,
                                 g->ldc, (int) MIN (32, i_end - i), (int) MIN (32, g->N - n), g->accumulate || k0 > 0);
          }
        continue;
      }
      /* the weight comes from memory (a frozen weight is read once a pass,
       * too big for the caches): the group's next slice, or the next
       * group's first, is fetched while the rows walk this one; unfetched,
       * packing waited on it for 13% of a bf16 Qwen2.5-0.5B LoRA step */
      Prefetch pf;
      gint64 calls = 0, call = 0;
      for (gint64 i = mb * g->m_block; i < i_end; i += tile_rows_bf16 (i_end - i))
        calls += np;
      if (k0 + KC < g->K) {
        prefetch_init (g, k0 + KC, n0, (int) MIN (np * 32, g->N - n0), &pf);
      } else {
        gint64 next = (t + 1) / g->m_blocks * g->group * 32;
        prefetch_init (g, 0, next, (int) MIN (g->group * 32, g->N - next), &pf);
      }
      for (gint64 i = mb * g->m_block, rows; i < i_end; i += rows) {
        rows = tile_rows_bf16 (i_end - i);
        for (int p = 0; p < np; p++) {
          gint64 n = n0 + p * 32;
          prefetch_part (&pf, call++, calls);
          (rows == MR_BF16 ? kernel_bf16 : kernel_bf16_short) (
              kc2, g->abf + i * g->lda + k0 / 2, g->lda, Bp + p * panel_words, g->C + i * g->ldc + n, g->ldc,
              (int) MIN (rows, i_end - i), (int) MIN (32, g->N - n), g->accumulate || k0 > 0);
        }
      }
    }
    if (g->epi)
      cpu_epilogue (g->be, g->epi, mb * g->m_block, i_end, n0, MIN (np * 32, g->N - n0));
  }
  if (g->be->amx)
    cpu_amx_end ();
}

/* Rows of A rounded to bf16: into pair words for the bf16 kernels (out16),
 * or back to f32 for the f32 kernels (out32), K a row. */
typedef struct {
  const Gemm *g;
  guint16 *out16;
  float *out32;
} RoundA;

static void
round_a_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const RoundA *r = data;
  const Gemm *g = r->g;
  float *row = cpu_scratch (g->be, thread, (gsize) (g->K + g->K / 2 + 1));
  guint16 *h = (guint16 *) (row + g->K);
  for (gint64 i = begin; i < end; i++) {
    const float *a = g->A + i * g->rsa;
    if (g->csa != 1) {
      for (gint64 k = 0; k < g->K; k++)
        row[k] = a[k * g->csa];
      a = row;
    }
    guint16 *dst = r->out16 ? r->out16 + i * 2 * g->lda : h;
    if (g->be->isa == CPU_ISA_AVX512)
      cpu_round_bf16_avx512 (a, dst, g->K);
    else
      for (gint64 k = 0; k < g->K; k++)
        dst[k] = cria_f32_to_bf16 (a[k]);
    if (r->out16 && g->K % 2 == 1) /* the pair word's other half */
      dst[g->K] = 0;
    if (r->out32)
      for (gint64 k = 0; k < g->K; k++)
        r->out32[i * g->K + k] = cria_bf16_to_f32 (h[k]);
  }
}

/* Runs the epilogue of g->epi over rows, all columns, after a product
 * whose tasks do not (K = 0). */
static void
epilogue_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  cpu_epilogue (g->be, g->epi, begin, end, 0, g->N);
}

static gboolean gemm_products (Gemm *g);

/* The product, then the epilogue where the product's tasks did not run it. */
static void
gemm_run (Gemm *g)
{
  const CriaNode *epi = g->epi;
  if (gemm_products (g) && epi && g->M > 0 && g->N > 0) {
    g->epi = epi;
    cpu_pool_run (g->be->pool, g->M, 1, epilogue_task, g);
  }
}

void
cpu_gemm (CpuBackend *be, gint64 M, gint64 N, gint64 K, const float *A, gint64 rsa, gint64 csa, const void *B,
          CriaDType btype, gint64 rsb, gint64 csb, float *C, gint64 ldc, gboolean accumulate)
{
  Gemm g = { be, M, N, K, A, rsa, csa, B, btype, rsb, csb, C, ldc, accumulate, 1, M };
  gemm_run (&g);
}

void
cpu_gemm_epilogue (CpuBackend *be, const CriaNode *node, gint64 M, gint64 N, gint64 K, const float *A, gint64 rsa,
                   gint64 csa, const void *B, CriaDType btype, gint64 rsb, gint64 csb, float *C, gint64 ldc)
{
  Gemm g = { be, M, N, K, A, rsa, csa, B, btype, rsb, csb, C, ldc, FALSE, 1, M };
  g.epi = node;
  gemm_run (&g);
}

/* Runs the product on the pool; TRUE when the epilogue (g->epi) is still to
 * run: K = 0 leaves it. */
static gboolean
gemm_products (Gemm *gp)
{
  Gemm g = *gp;
  CpuBackend *be = g.be;
  gint64 M = g.M, N = g.N, K = g.K, csa = g.csa, rsb = g.rsb;
  CriaDType btype = g.btype;
  if (M <= 0 || N <= 0)
    return FALSE;
  const CriaNode *epi = g.epi;
  g.epi = NULL;
  if (K <= 0) {
    for (gint64 i = 0; i < M && !g.accumulate; i++)
      memset (g.C + i * g.ldc, 0, (gsize) N * sizeof (float));
    return TRUE;
  }
  g_autofree guint32 *abf = NULL;
  g_autofree float *a32 = NULL;
  g_autofree gint *a_state = NULL;
  if (be->bf16_dot && (btype == CRIA_DTYPE_BF16 || btype == CRIA_DTYPE_NF4)) {
    gboolean native = be->isa == CPU_ISA_AVX512 && be->has_bf16;
    RoundA r = { &g, NULL, NULL };
    /* a few rows (decoding) are rounded by the caller: handing them to
     * the pool took longer than rounding them */
    gint64 grain = MAX (MAX (1, 32768 / K), M / (4 * cpu_pool_n_threads (be->pool)));
    if (native) {
      g.lda = (K + 1) / 2;
      /* the AMX kernel reads A for whole tiles of 16 rows, and zero rows
       * are past M (its sums are dropped, but Inf times zero is NaN) */
      gint64 rows = be->amx ? (M + 31) / 32 * 32 : M;
      abf = g_malloc ((gsize) (rows * g.lda) * sizeof (guint32));
      memset (abf + M * g.lda, 0, (gsize) ((rows - M) * g.lda) * sizeof (guint32));
      r.out16 = (guint16 *) abf;
      g.abf = abf;
      /* the packed path rounds A in its own tasks; not for NF4, whose
       * tasks also dequantize their panels: a QLoRA step ran 4-8% slower
       * with the rounding among them than with a pass of its own */
      if (csa == 1 && btype == CRIA_DTYPE_BF16 && !(M <= DOT_BF16_MAX_ROWS && rsb == 1))
        g.a_state = a_state = g_new0 (gint, (M + A_CHUNK - 1) / A_CHUNK);
      else
        cpu_pool_run (be->pool, M, grain, round_a_task, &r);
    } else {
      /* the same products, by the f32 kernels: A rounded, B widened */
      a32 = g_malloc ((gsize) (M * K) * sizeof (float));
      r.out32 = a32;
      cpu_pool_run (be->pool, M, grain, round_a_task, &r);
      g.A = a32;
      g.rsa = K;
      g.csa = 1;
      csa = 1;
    }
  }
  if (cpu_gemm_dot (&g, epi))
    return FALSE;
  g.epi = epi;
  int width = g.abf ? 32 : isas[be->isa].nr;
  gint64 panels = (N + width - 1) / width;
  /* Split M too when there are few panels for the threads. */
  int threads = cpu_pool_n_threads (be->pool);
  /* A transposed (dW = X^T dY): a k's rows are contiguous but the ks are
   * far apart, in a few L1 sets that the kernel's walk along k thrashes;
   * packed, a row block is one run (1.2x on dW products). With AVX-512 A
   * is packed for the taller tile as well. */
  gboolean pack_a = !g.abf && csa != 1;
  int mr = be->isa == CPU_ISA_AVX512 || pack_a ? MR_PACK : MR;
  g.m_block = M;
  /* AMX tiles are 32 rows: a task's blocks then read A only in its own
   * rows (another task may be rounding its own meanwhile) */
  if (g.abf && be->amx)
    mr = 32;
  if (panels < 4 * threads && M > 4 * mr) {
    gint64 want = (4 * threads + panels - 1) / panels;
    g.m_block = MAX ((8 * MR + mr - 1) / mr * mr, ((M + want - 1) / want + mr - 1) / mr * mr);
  }
  g.m_blocks = (M + g.m_block - 1) / g.m_block;
  /* Panels a task (gemm_task, gemm_bf16_task): as many as keep the
   * threads' shares within 5% of even, at least two tasks a thread, at
   * most GROUP_MAX (their slices, 32 KiB each for the f32 kernels, stay in
   * L2; AMX's are 128 KiB). */
  g.group = 1;
  if (panels >= 4 * threads)
    for (gint64 group = g.abf && be->amx ? GROUP_MAX / 2 : GROUP_MAX; group > 1; group--) {
      gint64 tasks = (panels + group - 1) / group, rounds = (tasks + threads - 1) / threads;
      if (tasks >= 2 * threads && 100 * panels >= 95 * threads * rounds * group) {
        g.group = group;
        break;
      }
    }
  if (pack_a) {
    /* kept between products: fresh pages cost a fault each, as much as
     * the packing */
    gint64 mp = (M + MR_PACK - 1) / MR_PACK;
    gsize n = (gsize) (mp * MR_PACK * K);
    if (be->packed_a_size < n) {
      g_aligned_free (be->packed_a);
      be->packed_a = g_aligned_alloc (n, sizeof (float), 64);
      be->packed_a_size = n;
    }
    g.ap = be->packed_a;
    cpu_pool_run (be->pool, mp, MAX (1, mp / (4 * threads)), pack_a_task, &g);
  }
  /* Each task packs its own panels: 1/m_block of the work, for balance. */
  cpu_pool_run (be->pool, (panels + g.group - 1) / g.group * g.m_blocks, 1, g.abf ? gemm_bf16_task : gemm_task, &g);
  return FALSE;
}
