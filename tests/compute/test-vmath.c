/* test-vmath: the cpu backend's vectorized exp and activations
 * (plugins/backends/cpu/cpu-vmath.c, compiled into this test) of every
 * instruction set the processor has, against libm: exp within 2 ulp of expf
 * over a sweep of its whole normal range, the special values, GELU, SiLU and
 * their derivatives within a few ulp (relative, or absolute near their
 * zeros) of a float64 reference, and row ends (n not a multiple of the
 * vector) giving the same bits as the full vectors. Prints the measured
 * errors. */
#include <math.h>
#include <string.h>

#include "cria-test.h"
#include "../../plugins/backends/cpu/cpu.h"

#define N_SWEEP 400000

static const char *const isa_names[CPU_N_ISAS] = { "generic", "avx2", "avx512" };

static gboolean
have (CpuIsa isa)
{
  __builtin_cpu_init ();
  if (isa == CPU_ISA_AVX512)
    return __builtin_cpu_supports ("avx512f");
  if (isa == CPU_ISA_AVX2)
    return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
  return TRUE;
}

/* Distance in representable floats (both finite, same sign or zero). */
static gint64
ulps (float a, float b)
{
  gint32 ia, ib;
  memcpy (&ia, &a, 4);
  memcpy (&ib, &b, 4);
  if (ia < 0)
    ia = G_MININT32 - ia;
  if (ib < 0)
    ib = G_MININT32 - ib;
  return ABS ((gint64) ia - (gint64) ib);
}

static void
test_exp (void)
{
  g_autofree float *x = g_new (float, N_SWEEP), *y = g_new (float, N_SWEEP);
  /* ln(FLT_MIN) .. ln(FLT_MAX): every result a normal float */
  double lo = -87.3365, hi = 88.7228;
  for (int i = 0; i < N_SWEEP; i++)
    x[i] = (float) (lo + (hi - lo) * i / (N_SWEEP - 1));
  x[0] = 0.0f;
  x[1] = -0.0f;
  x[2] = 1e-30f;
  for (CpuIsa isa = 0; isa < CPU_N_ISAS; isa++) {
    if (!have (isa))
      continue;
    cpu_vmath[isa].exp (x, y, N_SWEEP);
    gint64 worst = 0;
    double rel = 0;
    for (int i = 0; i < N_SWEEP; i++) {
      worst = MAX (worst, ulps (y[i], expf (x[i])));
      rel = MAX (rel, fabs ((double) y[i] - exp ((double) x[i])) / exp ((double) x[i]));
    }
    printf ("\n  %s exp: max %" G_GINT64_FORMAT " ulp from expf, relative error %.2e vs exp() ", isa_names[isa], worst,
            rel);
    CU_ASSERT (worst <= 2);
    CU_ASSERT (rel <= 2.5e-7);
    float sx[] = { -INFINITY, INFINITY, NAN, 89.0f, 1000.0f, -105.0f, -1000.0f, 88.72f, -87.0f, 0.0f }, sy[10];
    cpu_vmath[isa].exp (sx, sy, 10);
    CU_ASSERT (sy[0] == 0.0f);
    CU_ASSERT (isinf (sy[1]) && sy[1] > 0);
    CU_ASSERT (isnan (sy[2]));
    CU_ASSERT (isinf (sy[3]) && isinf (sy[4]));
    CU_ASSERT (sy[5] == 0.0f && sy[6] == 0.0f);
    CU_ASSERT (isfinite (sy[7]) && ulps (sy[7], expf (88.72f)) <= 2);
    CU_ASSERT (ulps (sy[8], expf (-87.0f)) <= 2);
    CU_ASSERT (sy[9] == 1.0f);
  }
}

static double
gelu_ref (double x)
{
  return 0.5 * x * (1 + tanh (0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static double
gelu_d_ref (double x)
{
  double c = 0.7978845608028654, t = tanh (c * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

static double
silu_ref (double x)
{
  return x / (1 + exp (-x));
}

static double
silu_d_ref (double x)
{
  double s = 1 / (1 + exp (-x));
  return s * (1 + x * (1 - s));
}

/* Error of y against ref: relative where |ref| >= floor, absolute below:
 * near the zeros of the functions (floor 1e-2), and for the derivatives,
 * sums of terms of about 1 that cancel (floor 1). */
static double
err (float y, double ref, double floor)
{
  return fabs (y - ref) / MAX (fabs (ref), floor);
}

static void
test_activations (void)
{
  const int n = 100003; /* not a multiple of any vector */
  g_autofree float *x = g_new (float, n), *y = g_new (float, n), *dy = g_new (float, n), *dx = g_new (float, n);
  for (int i = 0; i < n; i++) {
    x[i] = (float) (-12.0 + 24.0 * i / (n - 1));
    dy[i] = 1.0f;
  }
  for (CpuIsa isa = 0; isa < CPU_N_ISAS; isa++) {
    if (!have (isa))
      continue;
    const CpuVmath *vm = &cpu_vmath[isa];
    double e[4] = { 0 };
    vm->gelu (x, y, n);
    for (int i = 0; i < n; i++)
      e[0] = MAX (e[0], err (y[i], gelu_ref (x[i]), 1e-2));
    memset (dx, 0, n * sizeof (float));
    vm->gelu_grad (x, dy, dx, n);
    for (int i = 0; i < n; i++)
      e[1] = MAX (e[1], err (dx[i], gelu_d_ref (x[i]), 1));
    vm->silu (x, y, n);
    for (int i = 0; i < n; i++)
      e[2] = MAX (e[2], err (y[i], silu_ref (x[i]), 1e-2));
    memset (dx, 0, n * sizeof (float));
    vm->silu_grad (x, dy, dx, n);
    for (int i = 0; i < n; i++)
      e[3] = MAX (e[3], err (dx[i], silu_d_ref (x[i]), 1));
    printf ("\n  %s relative errors: gelu %.1e, gelu' %.1e, silu %.1e, silu' %.1e ", isa_names[isa], e[0], e[1], e[2],
            e[3]);
    for (int k = 0; k < 4; k++)
      CU_ASSERT (e[k] <= 1e-6);
    /* far out: the limits, no NaN */
    float fx[] = { -100.0f, 100.0f, -1e30f, 1e30f }, fy[4], fd[4] = { 0 }, ones[4] = { 1, 1, 1, 1 };
    vm->gelu (fx, fy, 4);
    CU_ASSERT (fy[0] == 0.0f && fy[1] == 100.0f && fy[2] == 0.0f && fy[3] == 1e30f);
    vm->gelu_grad (fx, ones, fd, 4);
    CU_ASSERT (fd[0] == 0.0f && fd[1] == 1.0f);
    vm->silu (fx, fy, 4);
    CU_ASSERT (fy[0] == 0.0f && fy[1] == 100.0f);
  }
}

/* Row ends: the elements of a short row equal those of a long one. */
static void
test_tails (void)
{
  float x[67], whole[67], part[67];
  for (int i = 0; i < 67; i++)
    x[i] = (float) (i - 33) * 0.37f;
  for (CpuIsa isa = 0; isa < CPU_N_ISAS; isa++) {
    if (!have (isa))
      continue;
    const CpuVmath *vm = &cpu_vmath[isa];
    for (int len = 1; len <= 67; len += 11) {
      vm->gelu (x, whole, 67);
      vm->gelu (x, part, len);
      CU_ASSERT (memcmp (whole, part, len * sizeof (float)) == 0);
      vm->exp (x, whole, 67);
      vm->exp (x, part, len);
      CU_ASSERT (memcmp (whole, part, len * sizeof (float)) == 0);
      float m = vm->max (x, len), s = vm->exp_sum (x, m, part, len);
      double ref = 0;
      for (int i = 0; i < len; i++)
        ref += exp ((double) x[i] - m);
      CU_ASSERT (m == x[len - 1]);
      CU_ASSERT (fabs (s - ref) <= 1e-6 * ref);
      memcpy (part, x, sizeof x);
      vm->exp_scale (part, m, 0.5f, len);
      for (int i = 0; i < len; i++)
        CU_ASSERT (fabs (part[i] - 0.5 * exp ((double) x[i] - m)) <= 1e-6);
    }
  }
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "exp within 2 ulp of expf, special values", test_exp },
    { "gelu, silu and derivatives against float64", test_activations },
    { "row ends equal full vectors", test_tails },
    { NULL },
  };
  cria_test_add_suite ("vmath", cases);
}

CRIA_TEST_MAIN (register_suites)
