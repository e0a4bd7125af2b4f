/* cpu-amx.c: the bf16 micro-kernel on AMX tiles (Sapphire Rapids and later).
 *
 * TDPBF16PS multiplies a 16 x 32 tile of bf16 by a 32 x 16 one into a 16 x
 * 16 tile of f32 sums: eight times the products a cycle of an AVX-512 FMA,
 * where vdpbf16ps, on the processors that have AMX too, runs at the FMA's
 * rate and gained nothing over the f32 kernels. The operands are the
 * packed bf16 path's as they are (cpu-gemm.c): a row of A in pair words is
 * a row of an A tile, and the packed panel's 32 columns of pair words are
 * two B tiles side by side (the VNNI layout). Compiled with target
 * attributes, so the build needs no special flags; cpu_amx_init tells
 * whether the processor and the kernel allow it. */
#include "config.h"

#include <string.h>

#include "cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define T_AMX __attribute__ ((target ("amx-tile,amx-bf16,avx512f")))

/* Linux lends the tile data state (8 KiB of the context) only to processes
 * that ask for it. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

gboolean
cpu_amx_init (void)
{
  static gsize done = 0;
  static gboolean ok = FALSE;
  if (g_once_init_enter (&done)) {
    unsigned a, b, c = 0, d = 0, c1 = 0;
    /* AMX-BF16 and AMX-TILE, and the OS saving both tile states (XCR0,
     * which xgetbv reads only where OSXSAVE says the OS enabled it) */
    if (__get_cpuid (1, &a, &b, &c1, &d) && (c1 >> 27 & 1) && __get_cpuid_count (7, 0, &a, &b, &c, &d) &&
        (d >> 22 & 1) && (d >> 24 & 1)) {
#if defined(__linux__)
      unsigned lo, hi;
      __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      ok = (lo & 0x60000) == 0x60000 && syscall (SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
    }
    g_once_init_leave (&done, 1);
  }
  return ok;
}

/* Palette 1, every tile 16 rows of 64 bytes: 0-3 the sums (rows 0-15 and
 * 16-31 times columns 0-15 and 16-31), 4-5 A (rows 0-15, 16-31), 6-7 B
 * (columns 0-15, 16-31). Static: ldtilecfg reads 64 bytes, but its
 * intrinsic tells the compiler of 8, so a local one could be read before
 * it is all written. */
static const struct {
  guint8 palette, start_row, reserved[14];
  guint16 colsb[16];
  guint8 rows[16];
} __attribute__ ((aligned (64))) tile_config = {
  .palette = 1,
  .colsb = { 64, 64, 64, 64, 64, 64, 64, 64 },
  .rows = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

/* The tile intrinsics are asm statements that tell the compiler of no
 * memory they touch: a barrier where C code hands memory to them or takes
 * it back. */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

T_AMX void
cpu_amx_begin (void)
{
  MEMORY_BARRIER ();
  _tile_loadconfig (&tile_config);
}

T_AMX void
cpu_amx_end (void)
{
  /* the tiles back in their init state: the kernel then skips saving them
   * on a context switch */
  _tile_release ();
}

/* The sums tile (h, j): loaded from C, or from a copy of its part in C when
 * partial. */
#define LOAD_C(T, h, j)                                                                                                \
  do {                                                                                                                 \
    int rh = MIN (16, mr - 16 * (h)), cj = MIN (16, nr - 16 * (j));                                                    \
    float *c = C + 16 * (h) *ldc + 16 * (j);                                                                           \
    if (!accumulate)                                                                                                   \
      _tile_zero (T);                                                                                                  \
    else if (rh == 16 && cj == 16)                                                                                     \
      _tile_loadd (T, c, ldc * 4);                                                                                     \
    else {                                                                                                             \
      memset (part, 0, sizeof part);                                                                                   \
      for (int r = 0; r < rh; r++)                                                                                     \
        memcpy (part[r], c + r * ldc, (gsize) MAX (cj, 0) * sizeof (float));                                           \
      MEMORY_BARRIER ();                                                                                               \
      _tile_loadd (T, part, 64);                                                                                       \
    }                                                                                                                  \
  } while (0)

#define STORE_C(T, h, j)                                                                                               \
  do {                                                                                                                 \
    int rh = MIN (16, mr - 16 * (h)), cj = MIN (16, nr - 16 * (j));                                                    \
    float *c = C + 16 * (h) *ldc + 16 * (j);                                                                           \
    if (rh == 16 && cj == 16)                                                                                          \
      _tile_stored (T, c, ldc * 4);                                                                                    \
    else if (cj > 0) {                                                                                                 \
      _tile_stored (T, part, 64);                                                                                      \
      MEMORY_BARRIER ();                                                                                               \
      for (int r = 0; r < rh; r++)                                                                                     \
        memcpy (c + r * ldc, part[r], (gsize) cj * sizeof (float));                                                    \
    }                                                                                                                  \
  } while (0)

T_AMX void
cpu_amx_kernel_bf16 (gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr, int nr,
                     gboolean accumulate)
{
  float part[16][16] __attribute__ ((aligned (64)));
  guint32 tail[32][16] __attribute__ ((aligned (64)));
  gboolean low = mr > 16; /* the second row of tiles */
  gint64 k16 = K2 / 16 * 16;
  MEMORY_BARRIER ();
  LOAD_C (0, 0, 0);
  LOAD_C (1, 0, 1);
  if (low) {
    LOAD_C (2, 1, 0);
    LOAD_C (3, 1, 1);
  }
  for (gint64 k = 0; k <= k16; k += 16) {
    const guint32 *a = A + k;
    gint64 stride = lda * 4;
    if (k == k16) {
      if (k == K2)
        break;
      /* the last pair words of the rows, zero past K2 (as the panel is):
       * what lies past them in A may be a later row's Inf, and Inf times
       * zero is NaN */
      memset (tail, 0, sizeof tail);
      for (int r = 0; r < mr; r++)
        memcpy (tail[r], A + r * lda + k, (gsize) (K2 - k) * sizeof (guint32));
      MEMORY_BARRIER ();
      a = tail[0];
      stride = 64;
    }
    _tile_loadd (6, Bp + k * 32, 128);
    _tile_loadd (7, Bp + k * 32 + 16, 128);
    _tile_loadd (4, a, stride);
    _tile_dpbf16ps (0, 4, 6);
    _tile_dpbf16ps (1, 4, 7);
    if (low) {
      _tile_loadd (5, a + 16 * (stride / 4), stride);
      _tile_dpbf16ps (2, 5, 6);
      _tile_dpbf16ps (3, 5, 7);
    }
  }
  STORE_C (0, 0, 0);
  STORE_C (1, 0, 1);
  if (low) {
    STORE_C (2, 1, 0);
    STORE_C (3, 1, 1);
  }
  MEMORY_BARRIER ();
}

/* The dot-product path on AMX (decoding: up to 64 rows of A). The weight W
 * [N,K] in bf16 is the A operand, read in place, nn (up to 16) of its rows
 * (columns of C) a tile; the rows of A are the B operand, packed by the
 * caller as blocks of 16 rows (bv: block b's pair row k2 at bv + (b k2p +
 * k2) 16, zero past K and past the rows). out[b][r][m] = C(16 b + m, n0 +
 * r). A sum runs along k in the same order whatever the number of rows, so
 * a batched row gets the floats it gets alone. */
T_AMX void
cpu_amx_dot_bf16 (const guint16 *W, gint64 ldw, int nn, gint64 K, const guint32 *bv, gint64 k2p, int blocks,
                  float (*out)[16][16])
{
  guint16 tail[16][32] __attribute__ ((aligned (64)));
  gint64 K2 = (K + 1) / 2;
  MEMORY_BARRIER ();
  _tile_zero (0);
  _tile_zero (1);
  _tile_zero (2);
  _tile_zero (3);
  for (gint64 k2 = 0; k2 < K2; k2 += 16) {
    const guint16 *a = W + 2 * k2;
    gint64 stride = ldw * 2;
    if (nn < 16 || 2 * k2 + 32 > K) {
      /* rows past nn, or k past K: zeros, not what lies there (another
       * row's Inf times a zero would be NaN, or past the weight's end) */
      memset (tail, 0, sizeof tail);
      gint64 kk = MIN (32, K - 2 * k2);
      for (int r = 0; r < nn; r++)
        memcpy (tail[r], W + r * ldw + 2 * k2, (gsize) kk * sizeof (guint16));
      MEMORY_BARRIER ();
      a = tail[0];
      stride = 64;
    }
    _tile_loadd (4, a, stride);
    _tile_loadd (5, bv + k2 * 16, 64);
    _tile_dpbf16ps (0, 4, 5);
    if (blocks > 1) {
      _tile_loadd (6, bv + (k2p + k2) * 16, 64);
      _tile_dpbf16ps (1, 4, 6);
    }
    if (blocks > 2) {
      _tile_loadd (7, bv + (2 * k2p + k2) * 16, 64);
      _tile_dpbf16ps (2, 4, 7);
    }
    if (blocks > 3) {
      _tile_loadd (5, bv + (3 * k2p + k2) * 16, 64);
      _tile_dpbf16ps (3, 4, 5);
    }
  }
  _tile_stored (0, out[0], 64);
  if (blocks > 1)
    _tile_stored (1, out[1], 64);
  if (blocks > 2)
    _tile_stored (2, out[2], 64);
  if (blocks > 3)
    _tile_stored (3, out[3], 64);
  MEMORY_BARRIER ();
}

#else /* not x86-64 */

gboolean
cpu_amx_init (void)
{
  return FALSE;
}

void
cpu_amx_begin (void)
{}

void
cpu_amx_end (void)
{}

void
cpu_amx_kernel_bf16 (gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr, int nr,
                     gboolean accumulate)
{
  g_assert_not_reached ();
}

void
cpu_amx_dot_bf16 (const guint16 *W, gint64 ldw, int nn, gint64 K, const guint32 *bv, gint64 k2p, int blocks,
                  float (*out)[16][16])
{
  g_assert_not_reached ();
}

#endif
