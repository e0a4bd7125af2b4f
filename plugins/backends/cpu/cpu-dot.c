/* cpu-dot.c: the products of a few rows of A (decoding, up to a batch of
 * DOT_MAX_ROWS sequences) with a weight whose K is contiguous, as dot
 * products: no packing, four rows of A sharing each load of B (and with
 * bf16 weights and AVX-512, up to DOT_BF16_MAX_ROWS rows, each converted
 * load of B shared by four rows of A as well; with bf16-dot, vdpbf16ps or
 * AMX tiles). Each C(i, n) is summed in one order whatever the batch, so a
 * row decoded in a batch gets the floats it gets alone. */
#include "config.h"

#include "cpu-gemm.h"

/* The dot-product paths with bf16 weights walk a task's columns in spans of
 * about this many bytes of B (in L2): every group of four rows of A walks
 * the span before the next group (only four rows of A in L1), and all the
 * span's tiles share fetching the next span meanwhile, so the weights stream
 * from memory while the tiles compute. Fetched a block ahead by the first
 * group of rows, the stream stalled while the other groups computed (a
 * batch of 16 against the 151936 x 896 lm head on a busy 2-core Zen 5:
 * 1.15-1.2x, with tasks of several spans). */
#define DOT_SPAN_BYTES (128 * 1024)
/* Spans a task takes at most: the prefetch of a task's last span is for
 * whichever thread takes the next task, wasted on this one. */
#define DOT_SPANS_PER_TASK 16

/* Dot products of f32 rows of A with rows of B of any float type. */
#define DEFINE_DOT(SUFFIX, TARGET, V, W, H, U)                                                                         \
  TARGET static float dot_f32_##SUFFIX (const float *x, const float *y, gint64 n)                                      \
  {                                                                                                                    \
    V s0 = { 0 }, s1 = { 0 };                                                                                          \
    gint64 k = 0;                                                                                                      \
    for (; k + 2 * W <= n; k += 2 * W) {                                                                               \
      s0 += *(const V *) (x + k) * *(const V *) (y + k);                                                               \
      s1 += *(const V *) (x + k + W) * *(const V *) (y + k + W);                                                       \
    }                                                                                                                  \
    s0 += s1;                                                                                                          \
    float s = 0;                                                                                                       \
    for (int j = 0; j < W; j++)                                                                                        \
      s += s0[j];                                                                                                      \
    for (; k < n; k++)                                                                                                 \
      s += x[k] * y[k];                                                                                                \
    return s;                                                                                                          \
  }                                                                                                                    \
  TARGET static float dot_bf16_##SUFFIX (const float *x, const guint16 *y, gint64 n)                                   \
  {                                                                                                                    \
    V s0 = { 0 };                                                                                                      \
    gint64 k = 0;                                                                                                      \
    for (; k + W <= n; k += W) {                                                                                       \
      U bits = __builtin_convertvector(*(const H *) (y + k), U) << 16;                                                 \
      s0 += *(const V *) (x + k) * (V) bits;                                                                           \
    }                                                                                                                  \
    float s = 0;                                                                                                       \
    for (int j = 0; j < W; j++)                                                                                        \
      s += s0[j];                                                                                                      \
    for (; k < n; k++)                                                                                                 \
      s += x[k] * cria_bf16_to_f32 (y[k]);                                                                             \
    return s;                                                                                                          \
  }                                                                                                                    \
  /* Four rows of A against one row of B: each row's sums in the order of                                            \
   * dot_f32 (so the same floats), with B loaded once for the four. */ \
  TARGET static void dot4_f32_##SUFFIX (const float *x0, gint64 rs, const float *y, gint64 n, float *out)              \
  {                                                                                                                    \
    const float *x1 = x0 + rs, *x2 = x1 + rs, *x3 = x2 + rs;                                                           \
    V a0 = { 0 }, a1 = { 0 }, b0 = { 0 }, b1 = { 0 }, c0 = { 0 }, c1 = { 0 }, d0 = { 0 }, d1 = { 0 };                  \
    gint64 k = 0;                                                                                                      \
    for (; k + 2 * W <= n; k += 2 * W) {                                                                               \
      V y0 = *(const V *) (y + k), y1 = *(const V *) (y + k + W);                                                      \
      a0 += *(const V *) (x0 + k) * y0;                                                                                \
      a1 += *(const V *) (x0 + k + W) * y1;                                                                            \
      b0 += *(const V *) (x1 + k) * y0;                                                                                \
      b1 += *(const V *) (x1 + k + W) * y1;                                                                            \
      c0 += *(const V *) (x2 + k) * y0;                                                                                \
      c1 += *(const V *) (x2 + k + W) * y1;                                                                            \
      d0 += *(const V *) (x3 + k) * y0;                                                                                \
      d1 += *(const V *) (x3 + k + W) * y1;                                                                            \
    }                                                                                                                  \
    V acc[4] = { a0 + a1, b0 + b1, c0 + c1, d0 + d1 };                                                                 \
    const float *x[4] = { x0, x1, x2, x3 };                                                                            \
    for (int r = 0; r < 4; r++) {                                                                                      \
      float s = 0;                                                                                                     \
      for (int j = 0; j < W; j++)                                                                                      \
        s += acc[r][j];                                                                                                \
      for (gint64 t = k; t < n; t++)                                                                                   \
        s += x[r][t] * y[t];                                                                                           \
      out[r] = s;                                                                                                      \
    }                                                                                                                  \
  }                                                                                                                    \
  TARGET static void dot4_bf16_##SUFFIX (const float *x0, gint64 rs, const guint16 *y, gint64 n, float *out)           \
  {                                                                                                                    \
    const float *x1 = x0 + rs, *x2 = x1 + rs, *x3 = x2 + rs;                                                           \
    V a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };                                                                      \
    gint64 k = 0;                                                                                                      \
    for (; k + W <= n; k += W) {                                                                                       \
      V yk = (V) (__builtin_convertvector(*(const H *) (y + k), U) << 16);                                             \
      a += *(const V *) (x0 + k) * yk;                                                                                 \
      b += *(const V *) (x1 + k) * yk;                                                                                 \
      c += *(const V *) (x2 + k) * yk;                                                                                 \
      d += *(const V *) (x3 + k) * yk;                                                                                 \
    }                                                                                                                  \
    V acc[4] = { a, b, c, d };                                                                                         \
    const float *x[4] = { x0, x1, x2, x3 };                                                                            \
    for (int r = 0; r < 4; r++) {                                                                                      \
      float s = 0;                                                                                                     \
      for (int j = 0; j < W; j++)                                                                                      \
        s += acc[r][j];                                                                                                \
      for (gint64 t = k; t < n; t++)                                                                                   \
        s += x[r][t] * cria_bf16_to_f32 (y[t]);                                                                        \
      out[r] = s;                                                                                                      \
    }                                                                                                                  \
  }

DEFINE_DOT (avx512, T_AVX512, v16, 16, h16, u16v)
DEFINE_DOT (avx2, T_AVX2, v8, 8, h8, u8v)
DEFINE_DOT (base, T_BASE, v4, 4, h4, u4v)

/* Four rows of A against four bf16 rows of B (ys apart), for a batch of
 * decoded tokens: the 16 sums each in the order of dot_bf16_avx512 (so the
 * floats a row gets alone), with each load of A met by four rows of B and
 * each converted row of B by four rows of A: 16 independent FMA chains, so
 * the FMA units stay busy where dot4 waits on each chain's latency. */
T_AVX512 static void
dot4x4_bf16_avx512 (const float *x0, gint64 rs, const guint16 *y0, gint64 ys, gint64 n, const guint16 *pf, int npf,
                    float out[4][4])
{
  const float *x1 = x0 + rs, *x2 = x1 + rs, *x3 = x2 + rs;
  const guint16 *y1 = y0 + ys, *y2 = y1 + ys, *y3 = y2 + ys;
  v16 c00 = { 0 }, c01 = { 0 }, c02 = { 0 }, c03 = { 0 }, c10 = { 0 }, c11 = { 0 }, c12 = { 0 }, c13 = { 0 };
  v16 c20 = { 0 }, c21 = { 0 }, c22 = { 0 }, c23 = { 0 }, c30 = { 0 }, c31 = { 0 }, c32 = { 0 }, c33 = { 0 };
  gint64 k = 0;
  for (; k + 16 <= n; k += 16) {
    v16 w0 = (v16) widen16 (y0 + k, FALSE);
    v16 w1 = (v16) widen16 (y1 + k, FALSE);
    v16 w2 = (v16) widen16 (y2 + k, FALSE);
    v16 w3 = (v16) widen16 (y3 + k, FALSE);
    if ((k & 31) == 0)
      for (int p = 0; p < npf; p++)
        _mm_prefetch ((const char *) (pf + p * ys + k), _MM_HINT_T0);
    v16 a = *(const v16 *) (x0 + k);
    c00 += a * w0;
    c01 += a * w1;
    c02 += a * w2;
    c03 += a * w3;
    a = *(const v16 *) (x1 + k);
    c10 += a * w0;
    c11 += a * w1;
    c12 += a * w2;
    c13 += a * w3;
    a = *(const v16 *) (x2 + k);
    c20 += a * w0;
    c21 += a * w1;
    c22 += a * w2;
    c23 += a * w3;
    a = *(const v16 *) (x3 + k);
    c30 += a * w0;
    c31 += a * w1;
    c32 += a * w2;
    c33 += a * w3;
  }
  /* lane l of every sum at once (transposed), added lane after lane: the
   * order of dot_bf16_avx512's sums. One float at a time, these 256 adds
   * were a sixth of the function's time at K = 896. */
  __m512i v[16] = { (__m512i) c00, (__m512i) c01, (__m512i) c02, (__m512i) c03, (__m512i) c10, (__m512i) c11,
                    (__m512i) c12, (__m512i) c13, (__m512i) c20, (__m512i) c21, (__m512i) c22, (__m512i) c23,
                    (__m512i) c30, (__m512i) c31, (__m512i) c32, (__m512i) c33 };
  transpose16_regs (v);
  v16 sum = { 0 };
#pragma GCC unroll 16
  for (int l = 0; l < 16; l++)
    sum += (v16) v[l];
  const float *x[4] = { x0, x1, x2, x3 };
  const guint16 *y[4] = { y0, y1, y2, y3 };
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) {
      float s = sum[r * 4 + j];
      for (gint64 t = k; t < n; t++)
        s += x[r][t] * cria_bf16_to_f32 (y[j][t]);
      out[r][j] = s;
    }
}

/* out[j] = the sum of v[j]'s 16 lanes, for j < 16, as (((l + 8) + (l + 4))
 * + (l + 2)) + (l + 1): by 128-bit and in-lane shuffles, 16 sums at once. */
T_AVX512 static void
reduce16_avx512 (const __m512 *v, float *out)
{
  __m512 b[8], c[4], d[2];
  for (int p = 0; p < 8; p++)
    b[p] = _mm512_add_ps (_mm512_shuffle_f32x4 (v[2 * p], v[2 * p + 1], 0x44),
                          _mm512_shuffle_f32x4 (v[2 * p], v[2 * p + 1], 0xee));
  /* b[p]: v[2p]'s 8 half sums, then v[2p + 1]'s */
  for (int q = 0; q < 4; q++)
    c[q] = _mm512_add_ps (_mm512_shuffle_f32x4 (b[2 * q], b[2 * q + 1], 0x88),
                          _mm512_shuffle_f32x4 (b[2 * q], b[2 * q + 1], 0xdd));
  /* c[q]: 4 sums of v[4q + j] in 128-bit lane j */
  for (int h = 0; h < 2; h++)
    d[h] = _mm512_add_ps (_mm512_shuffle_ps (c[2 * h], c[2 * h + 1], 0x44),
                          _mm512_shuffle_ps (c[2 * h], c[2 * h + 1], 0xee));
  /* d[h], lane j: 2 sums of v[8h + j], then 2 of v[8h + 4 + j] */
  __m512 e = _mm512_add_ps (_mm512_shuffle_ps (d[0], d[1], 0x88), _mm512_shuffle_ps (d[0], d[1], 0xdd));
  /* e, lane j: the sums of v[j], v[4 + j], v[8 + j], v[12 + j] */
  const __m512i order = _mm512_setr_epi32 (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_ps (out, _mm512_permutexvar_ps (order, e));
}

/* The bf16-dot products of decoding (AVX512-BF16), R rounded rows of A
 * (x, rs bf16 apart) against C bf16 rows of B (ys apart): out[r * 4 + c].
 * Every C(i, n) is summed in one order whatever tile computes it (so a
 * row of a batch gets the floats it gets alone): one accumulator, a
 * vdpbf16ps per 32 k, its lanes summed by reduce16_avx512, then the K % 32
 * left over one by one. While it runs it fetches npf rows of pf (ys
 * apart), a cache line a row per 32 k: the weights of a later tile. */
static inline __attribute__ ((always_inline)) T_BF16 void
dot_tile_bf16 (int R, int C, const guint16 *x, gint64 rs, const guint16 *y, gint64 ys, gint64 n, const guint16 *pf,
               int npf, float *out)
{
  __m512 acc[16];
#pragma GCC unroll 16
  for (int t = 0; t < 16; t++)
    acc[t] = _mm512_setzero_ps ();
  gint64 k32 = n / 32 * 32;
  for (gint64 k = 0; k < k32; k += 32) {
    __m512bh w[4];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
      w[c] = (__m512bh) _mm512_loadu_si512 (y + c * ys + k);
    for (int p = 0; p < npf; p++)
      _mm_prefetch ((const char *) (pf + p * ys + k), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      __m512bh a = (__m512bh) _mm512_loadu_si512 (x + r * rs + k);
#pragma GCC unroll 4
      for (int c = 0; c < C; c++)
        acc[r * 4 + c] = _mm512_dpbf16_ps (acc[r * 4 + c], a, w[c]);
    }
  }
  reduce16_avx512 (acc, out);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      for (gint64 t = k32; t < n; t++)
        out[r * 4 + c] += cria_bf16_to_f32 (x[r * rs + t]) * cria_bf16_to_f32 (y[c * ys + t]);
}

typedef void (*DotTileFunc) (const guint16 *, gint64, const guint16 *, gint64, gint64, const guint16 *, int, float *);
#define DEFINE_DOT_TILE(R, C)                                                                                          \
  T_BF16 static void dot_tile_bf16_##R##x##C (const guint16 *x, gint64 rs, const guint16 *y, gint64 ys, gint64 n,      \
                                              const guint16 *pf, int npf, float *out)                                  \
  {                                                                                                                    \
    dot_tile_bf16 (R, C, x, rs, y, ys, n, pf, npf, out);                                                               \
  }
DEFINE_DOT_TILE (1, 1)
DEFINE_DOT_TILE (1, 2)
DEFINE_DOT_TILE (1, 3)
DEFINE_DOT_TILE (1, 4)
DEFINE_DOT_TILE (2, 1)
DEFINE_DOT_TILE (2, 2)
DEFINE_DOT_TILE (2, 3)
DEFINE_DOT_TILE (2, 4)
DEFINE_DOT_TILE (3, 1)
DEFINE_DOT_TILE (3, 2)
DEFINE_DOT_TILE (3, 3)
DEFINE_DOT_TILE (3, 4)
DEFINE_DOT_TILE (4, 1)
DEFINE_DOT_TILE (4, 2)
DEFINE_DOT_TILE (4, 3)
DEFINE_DOT_TILE (4, 4)
/* [R - 1][C - 1] */
static const DotTileFunc dot_tiles_bf16[4][4] = {
  { dot_tile_bf16_1x1, dot_tile_bf16_1x2, dot_tile_bf16_1x3, dot_tile_bf16_1x4 },
  { dot_tile_bf16_2x1, dot_tile_bf16_2x2, dot_tile_bf16_2x3, dot_tile_bf16_2x4 },
  { dot_tile_bf16_3x1, dot_tile_bf16_3x2, dot_tile_bf16_3x3, dot_tile_bf16_3x4 },
  { dot_tile_bf16_4x1, dot_tile_bf16_4x2, dot_tile_bf16_4x3, dot_tile_bf16_4x4 },
};

typedef float (*DotF32Func) (const float *, const float *, gint64);
typedef float (*DotBf16Func) (const float *, const guint16 *, gint64);
typedef void (*Dot4F32Func) (const float *, gint64, const float *, gint64, float *);
typedef void (*Dot4Bf16Func) (const float *, gint64, const guint16 *, gint64, float *);

static const struct {
  DotF32Func dot_f32;
  DotBf16Func dot_bf16;
  Dot4F32Func dot4_f32;
  Dot4Bf16Func dot4_bf16;
} dots[CPU_N_ISAS] = {
  [CPU_ISA_GENERIC] = { dot_f32_base, dot_bf16_base, dot4_f32_base, dot4_bf16_base },
  [CPU_ISA_AVX2] = { dot_f32_avx2, dot_bf16_avx2, dot4_f32_avx2, dot4_bf16_avx2 },
  [CPU_ISA_AVX512] = { dot_f32_avx512, dot_bf16_avx512, dot4_f32_avx512, dot4_bf16_avx512 },
};

/* Which rows of B a tile of the bf16 dot-product paths fetches while it
 * runs: an equal share of the span after [n0, n1) (g->span rows), spread
 * over the span's tiles; except in a task's first span, which nothing
 * fetched: there its first group of rows (reading it from memory) fetches
 * the block two ahead, and the other groups share the next span. */
typedef struct {
  gint64 n0, n1, ahead, tiles, t;
  gboolean lead;
} SpanFetch;

static inline void
span_fetch_init (SpanFetch *f, const Gemm *g, gint64 begin, gint64 n0, gint64 n1, gint64 groups)
{
  f->n0 = n0;
  f->n1 = n1;
  f->ahead = CLAMP (g->N - n1, 0, g->span);
  f->lead = n0 == begin && groups > 1;
  f->tiles = (f->lead ? groups - 1 : groups) * ((n1 - n0 + 3) / 4);
  f->t = 0;
}

static inline const guint16 *
span_fetch_next (SpanFetch *f, const Gemm *g, gint64 i, gint64 n, int *npf)
{
  const guint16 *b = g->B;
  if (f->lead && i == 0) {
    *npf = (int) CLAMP (f->n1 - (n + 8), 0, 4);
    return b + (n + 8) * g->csb;
  }
  gint64 first = f->ahead * f->t / f->tiles, last = f->ahead * (f->t + 1) / f->tiles;
  f->t++;
  *npf = (int) (last - first);
  return b + (f->n1 + first) * g->csb;
}

/* C(i + r, n + j) = (or +=) s[r * 4 + j], for an R x C tile of the
 * dot-product paths: a row of four at once where it can (the scalar loop
 * was a tenth of a decoding batch's products). */
static inline void
store_tile (const Gemm *g, gint64 i, gint64 n, int R, int C, const float *s)
{
  for (int r = 0; r < R; r++) {
    float *c = g->C + (i + r) * g->ldc + n;
    if (C == 4) {
      __m128 v = _mm_loadu_ps (s + r * 4);
      _mm_storeu_ps (c, g->accumulate ? _mm_add_ps (_mm_loadu_ps (c), v) : v);
    } else
      for (int j = 0; j < C; j++)
        c[j] = g->accumulate ? c[j] + s[r * 4 + j] : s[r * 4 + j];
  }
}

/* Columns [begin, end) of the bf16-dot products of a few rows (decoding):
 * blocks of four rows of B met by every group of four rows of A, by
 * dot_tiles_bf16; an NF4 row is dequantized and rounded to bf16 first. */
static void
dot_bf16_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  const guint16 *a = (const guint16 *) g->abf;
  gint64 rs = 2 * g->lda;
  float s[16];
  if (g->btype == CRIA_DTYPE_NF4) {
    float *row = cpu_scratch (g->be, thread, (gsize) (g->K + g->K / 2 + 1));
    guint16 *row16 = (guint16 *) (row + g->K);
    for (gint64 n = begin; n < end; n++) {
      cpu_nf4_run (g->be->isa, g->B, n * g->csb, g->K, row);
      cpu_round_bf16_avx512 (row, row16, g->K);
      for (gint64 i = 0; i < g->M; i += 4) {
        int R = (int) MIN (4, g->M - i);
        dot_tiles_bf16[R - 1][0](a + i * rs, rs, row16, 0, g->K, NULL, 0, s);
        for (int r = 0; r < R; r++) {
          float *c = g->C + (i + r) * g->ldc + n;
          *c = g->accumulate ? *c + s[r * 4] : s[r * 4];
        }
      }
    }
    return;
  }
  const guint16 *b = g->B;
  gint64 groups = (g->M + 3) / 4;
  for (gint64 n0 = begin; n0 < end; n0 += g->span) {
    gint64 n1 = MIN (n0 + g->span, end);
    SpanFetch f;
    span_fetch_init (&f, g, begin, n0, n1, groups);
    for (gint64 i = 0; i < g->M; i += 4) {
      int R = (int) MIN (4, g->M - i);
      for (gint64 n = n0; n < n1; n += 4) {
        int C = (int) MIN (4, n1 - n);
        int npf;
        const guint16 *pf = span_fetch_next (&f, g, i, n, &npf);
        dot_tiles_bf16[R - 1][C - 1](a + i * rs, rs, b + n * g->csb, g->csb, g->K, pf, npf, s);
        store_tile (g, i, n, R, C, s);
      }
    }
  }
}

/* Columns [begin, end) of the dot-product path on AMX, 16 at a time (begin
 * a multiple of 16). */
static void
dot_amx_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  const guint16 *w = g->B;
  int blocks = (int) ((g->M + 15) / 16);
  float (*out)[16][16] = (float (*)[16][16]) cpu_scratch (g->be, thread, 4 * 16 * 16);
  cpu_amx_begin ();
  for (gint64 n0 = begin; n0 < end; n0 += 16) {
    int nn = (int) MIN (16, end - n0);
    cpu_amx_dot_bf16 (w + n0 * g->csb, g->csb, nn, g->K, g->bv, g->k2p, blocks, out);
    for (gint64 i = 0; i < g->M; i++) {
      float *c = g->C + i * g->ldc + n0;
      for (int r = 0; r < nn; r++) {
        float v = out[i / 16][r][i % 16];
        c[r] = g->accumulate ? c[r] + v : v;
      }
    }
  }
  cpu_amx_end ();
}

/* C(i, n) for rows [i0, i1) of A and column n, whose weight row is `bf`
 * (f32) or else the bf16 row of B: four rows at a time, then one by one. */
static void
dot_rows (const Gemm *g, gint64 i0, gint64 i1, gint64 n, const float *bf)
{
  CpuIsa isa = g->be->isa;
  const guint16 *bh = (const guint16 *) g->B + n * g->csb;
  float s[4];
  gint64 i = i0;
  for (; i + 4 <= i1; i += 4) {
    const float *a = g->A + i * g->rsa;
    if (bf)
      dots[isa].dot4_f32 (a, g->rsa, bf, g->K, s);
    else
      dots[isa].dot4_bf16 (a, g->rsa, bh, g->K, s);
    for (int r = 0; r < 4; r++) {
      float *c = g->C + (i + r) * g->ldc + n;
      *c = g->accumulate ? *c + s[r] : s[r];
    }
  }
  for (; i < i1; i++) {
    const float *a = g->A + i * g->rsa;
    s[0] = bf ? dots[isa].dot_f32 (a, bf, g->K) : dots[isa].dot_bf16 (a, bh, g->K);
    float *c = g->C + i * g->ldc + n;
    *c = g->accumulate ? *c + s[0] : s[0];
  }
}

/* dot_task for bf16 rows of B with AVX-512: blocks of four rows of B (in
 * L1) met by every group of four rows of A, the rows of A left over by
 * dot_bf16 and the columns left over by dot_rows; the same floats. */
static void
dot_block_bf16 (const Gemm *g, gint64 begin, gint64 end)
{
  gint64 M4 = g->M / 4 * 4;
  const guint16 *b = g->B;
  for (gint64 n0 = begin; n0 < end; n0 += g->span) {
    gint64 n1 = MIN (n0 + g->span, end), n4 = n0 + (n1 - n0) / 4 * 4;
    SpanFetch f;
    span_fetch_init (&f, g, begin, n0, n4, M4 / 4);
    for (gint64 i = 0; i < M4; i += 4)
      for (gint64 n = n0; n < n4; n += 4) {
        float s[4][4];
        int npf;
        const guint16 *pf = span_fetch_next (&f, g, i, n, &npf);
        dot4x4_bf16_avx512 (g->A + i * g->rsa, g->rsa, b + n * g->csb, g->csb, g->K, pf, npf, s);
        store_tile (g, i, n, 4, 4, s[0]);
      }
    for (gint64 n = n0; n < n4 && M4 < g->M; n++)
      dot_rows (g, M4, g->M, n, NULL);
    for (gint64 n = n4; n < n1; n++)
      dot_rows (g, 0, g->M, n, NULL);
  }
}

/* Whether dot_task takes dot_block_bf16, whose tasks want whole spans
 * (dot_span_grain). */
static inline gboolean
dot_by_blocks (const Gemm *g)
{
  return g->btype == CRIA_DTYPE_BF16 && g->be->isa == CPU_ISA_AVX512 && g->M >= 4;
}

/* Columns [begin, end): each C(i, n) is one dot product of row i of A with
 * row n of B, summed in the same order whatever M is (a row decoded alone
 * or in a batch gets the same floats). f16 and nf4 rows are converted once
 * and met by every row of A; f32 and bf16 rows are read in place, so each
 * group of four rows of A (in L1) walks all the task's weight rows (in L2)
 * before the next group. */
static void
dot_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  if (g->btype == CRIA_DTYPE_F16 || g->btype == CRIA_DTYPE_NF4) {
    float *row = cpu_scratch (g->be, thread, (gsize) g->K);
    for (gint64 n = begin; n < end; n++) {
      gint64 o = n * g->csb;
      if (g->btype == CRIA_DTYPE_NF4)
        cpu_gemm_nf4_run (g, o, g->K, row);
      else
        cria_convert_to_f32 (CRIA_DTYPE_F16, (const guint16 *) g->B + o, row, (gsize) g->K);
      dot_rows (g, 0, g->M, n, row);
    }
    return;
  }
  gboolean f32 = g->btype == CRIA_DTYPE_F32;
  if (dot_by_blocks (g)) {
    dot_block_bf16 (g, begin, end);
    return;
  }
  for (gint64 i = 0; i < g->M; i += 4)
    for (gint64 n = begin; n < end; n++)
      dot_rows (g, i, MIN (i + 4, g->M), n, f32 ? (const float *) g->B + n * g->csb : NULL);
}

/* A dot-product path's columns, then the epilogue on them: one hand-off to
 * the pool for both (a decoding step runs a few hundred products, and on a
 * busy machine a wake-up can take longer than a small product). The
 * epilogue is element-wise with the same floats on any run of columns. */
static void
dot_epilogue_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Gemm *g = data;
  g->dot (data, begin, end, thread);
  if (g->epi)
    cpu_epilogue (g->be, g->epi, 0, g->M, begin, end - begin);
}

/* Sets g->span for the bf16 dot-product paths and returns their tasks'
 * columns: whole spans (so that a task's next span is mostly its own), at
 * most DOT_SPAN_BYTES of B a span and DOT_SPANS_PER_TASK spans a task, about
 * four tasks a thread where that allows (for balance). */
static gint64
dot_span_grain (Gemm *g)
{
  gint64 most = MAX (4, DOT_SPAN_BYTES / (2 * g->K) / 4 * 4);
  gint64 tasks = 4 * cpu_pool_n_threads (g->be->pool);
  gint64 cols = ((g->N + tasks - 1) / tasks + 3) / 4 * 4;
  gint64 spans = MIN (DOT_SPANS_PER_TASK, (cols + most - 1) / most);
  g->span = MIN (most, ((cols + spans - 1) / spans + 3) / 4 * 4);
  return spans * g->span;
}

/* The dot-product paths, for a few rows of A against a weight with K
 * contiguous (decoding): TRUE when they ran the product and its epilogue.
 * A is already rounded into g->abf where the bf16 dot products run. */
gboolean
cpu_gemm_dot (Gemm *gp, const CriaNode *epi)
{
  Gemm g = *gp;
  CpuBackend *be = g.be;
  gint64 M = g.M, N = g.N, csa = g.csa, rsb = g.rsb;
  CriaDType btype = g.btype;
  g_autofree guint32 *bv = NULL;
  if (g.abf && M <= DOT_BF16_MAX_ROWS && rsb == 1) {
    gint64 grain_n;
    if (be->amx && btype == CRIA_DTYPE_BF16) {
      /* A's rows as B tiles, 16 rows a block, zero past K and M */
      gint64 k2p = (g.lda + 15) / 16 * 16;
      bv = g_malloc0 ((gsize) (((M + 15) / 16) * k2p * 16) * sizeof (guint32));
      for (gint64 i = 0; i < M; i++)
        for (gint64 k2 = 0; k2 < g.lda; k2++)
          bv[((i / 16) * k2p + k2) * 16 + i % 16] = g.abf[i * g.lda + k2];
      g.bv = bv;
      g.k2p = k2p;
      g.dot = dot_amx_task;
      gint64 tasks = 4 * cpu_pool_n_threads (be->pool);
      grain_n = MAX (16, ((N + tasks - 1) / tasks + 15) / 16 * 16);
    } else {
      /* whole blocks of four columns where it can */
      g.dot = dot_bf16_task;
      grain_n = dot_span_grain (&g);
    }
    g.epi = epi;
    cpu_pool_run (be->pool, N, grain_n, dot_epilogue_task, &g);
    return TRUE;
  }
  gint64 dot_max = btype == CRIA_DTYPE_BF16 && be->isa == CPU_ISA_AVX512 ? DOT_BF16_MAX_ROWS : DOT_MAX_ROWS;
  if (!g.abf && M <= dot_max && csa == 1 && rsb == 1) {
    /* Enough columns per chunk to amortize the hand-off, few enough to balance. */
    gint64 grain = MAX (1, MIN (64, N / (4 * cpu_pool_n_threads (be->pool))));
    if (dot_by_blocks (&g))
      grain = dot_span_grain (&g);
    g.epi = epi;
    g.dot = dot_task;
    cpu_pool_run (be->pool, N, grain, dot_epilogue_task, &g);
    return TRUE;
  }
  return FALSE;
}
