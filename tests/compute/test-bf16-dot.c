/* test-bf16-dot: the cpu backend's bf16-dot=true products (AVX512-BF16 dot
 * products where present, the f32 kernels on rounded activations on every
 * other instruction set) against a reference that rounds both operands to
 * bf16 and multiplies in f64. Weights in bf16 ([N,K] as in a linear layer,
 * and [K,N]) and in NF4; sizes that leave partial panels (of under and
 * over 16 columns), odd K, 1 to 4 rows (the dot-product path of
 * decoding) and up to 256 (the packed path of training); x's gradient through the frozen weight too. Each result must be within 1e-6 of the largest reference value,
 * and must differ from the product of unrounded activations (the option
 * took effect). */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;

static CriaBackend *
make_backend_amx (const char *isa, const char *amx)
{
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_assert (cria_props_set (props, "threads", "3", NULL));
  g_assert (cria_props_set (props, "isa", isa, NULL));
  g_assert (cria_props_set (props, "bf16-dot", "true", NULL));
  g_assert (cria_props_set (props, "amx", amx, NULL));
  return cria_backend_new (p, props, NULL); /* NULL when the processor lacks the ISA */
}

static CriaBackend *
make_backend (const char *isa)
{
  return make_backend_amx (isa, "false");
}

/* Whether the backend runs the packed bf16 products on AMX tiles. */
static gboolean
has_amx (CriaBackend *be)
{
  g_autofree char *desc = cria_backend_describe (be);
  return strstr (desc, "amx") != NULL;
}

static double
round_bf16 (float x)
{
  return cria_bf16_to_f32 (cria_f32_to_bf16 (x));
}

typedef struct {
  gint64 M, N, K;
  gboolean trans_b; /* the weight is [N,K] */
  gboolean nf4;
} Case;

static void
check (const char *isa, CriaBackend *be, const Case *c)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32) (c->M * 1000 + c->N + c->K));
  gint64 xs[] = { c->M, c->K }, ws[] = { c->trans_b ? c->N : c->K, c->trans_b ? c->K : c->N }, ys[] = { c->M, c->N };
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, xs);
  g_autoptr (CriaTensor) w32 = cria_tensor_new (CRIA_DTYPE_F32, 2, ws);
  g_autoptr (CriaTensor) dy = cria_tensor_new (CRIA_DTYPE_F32, 2, ys);
  for (gint64 i = 0; i < cria_tensor_numel (x); i++)
    ((float *) x->data)[i] = (float) g_rand_double_range (rand, -1, 1);
  for (gint64 i = 0; i < cria_tensor_numel (w32); i++)
    ((float *) w32->data)[i] = (float) g_rand_double_range (rand, -1, 1);
  for (gint64 i = 0; i < cria_tensor_numel (dy); i++)
    ((float *) dy->data)[i] = (float) g_rand_double_range (rand, -1, 1);
  g_autoptr (CriaTensor) w = NULL;
  if (c->nf4) {
    w = cria_nf4_quantize (w32, "w", NULL);
  } else {
    w = cria_tensor_new (CRIA_DTYPE_BF16, 2, ws);
    cria_convert_from_f32 (CRIA_DTYPE_BF16, w32->data, w->data, (gsize) cria_tensor_numel (w32));
  }
  g_autoptr (CriaTensor) wf = cria_tensor_to_f32 (w); /* the weight's values, exact */
  const float *W = wf->data, *X = x->data, *DY = dy->data;

  CriaGraph *g = cria_graph_new ();
  CriaNode *xn = cria_graph_param (g, "x", x, TRUE);
  CriaNode *y = cria_matmul (g, xn, cria_graph_param (g, "w", w, FALSE), FALSE, c->trans_b);
  cria_graph_mark_output (g, y);
  gint64 flat[] = { 1, c->M * c->N }, rs[] = { c->M * c->N, 1 };
  g_autoptr (CriaTensor) r = cria_tensor_new (CRIA_DTYPE_F32, 2, rs);
  memcpy (r->data, dy->data, cria_tensor_nbytes (dy));
  CriaNode *loss = cria_matmul (g, cria_reshape (g, y, 2, flat), cria_graph_param (g, "r", r, FALSE), FALSE, FALSE);
  cria_test_run_graph (g, loss, be, NULL);

  /* y = bf16(x) bf16(w); dx = bf16(dy) bf16(w)^T, each in f64 */
  double err = 0, big = 0, err_exact = 0, derr = 0, dbig = 0;
#define WAT(k, n) ((double) W[c->trans_b ? (n) *c->K + (k) : (k) *c->N + (n)])
  for (gint64 i = 0; i < c->M; i++) {
    for (gint64 n = 0; n < c->N; n++) {
      double ref = 0, exact = 0;
      for (gint64 k = 0; k < c->K; k++) {
        ref += round_bf16 (X[i * c->K + k]) * round_bf16 ((float) WAT (k, n));
        exact += (double) X[i * c->K + k] * WAT (k, n);
      }
      double got = ((const float *) y->value->data)[i * c->N + n];
      err = MAX (err, fabs (got - ref));
      err_exact = MAX (err_exact, fabs (got - exact));
      big = MAX (big, fabs (ref));
    }
    for (gint64 k = 0; k < c->K; k++) {
      double ref = 0;
      for (gint64 n = 0; n < c->N; n++)
        ref += round_bf16 (DY[i * c->N + n]) * round_bf16 ((float) WAT (k, n));
      double got = ((const float *) xn->grad->data)[i * c->K + k];
      derr = MAX (derr, fabs (got - ref));
      dbig = MAX (dbig, fabs (ref));
    }
  }
#undef WAT
  if (err > 1e-6 * big || derr > 1e-6 * dbig || err_exact < 1e-4 * big)
    printf ("\n%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "%s%s: y off by %g, dx by %g; %g from "
            "the unrounded product",
            isa, c->M, c->N, c->K, c->trans_b ? " [N,K]" : " [K,N]", c->nf4 ? " nf4" : "", err / big, derr / dbig,
            err_exact / big);
  CU_ASSERT (err <= 1e-6 * big);
  CU_ASSERT (derr <= 1e-6 * dbig);
  CU_ASSERT (err_exact >= 1e-4 * big);
  cria_graph_free (g);
}

/* The last three are a training sequence's rows, past the dot-product
 * path: tiles of 12 rows and short ones of 8 (256 = 20 x 12 + 2 x 8; 255
 * leaves 7 in the last), several K slices, a partial last panel. */
static void
test_products (void)
{
  static const Case cases[] = {
    { 37, 70, 301, TRUE, FALSE },
    { 37, 70, 301, FALSE, FALSE },
    { 3, 100, 64, TRUE, FALSE },
    { 2, 33, 77, TRUE, FALSE },
    { 1, 50, 600, TRUE, FALSE },
    { 20, 45, 128, TRUE, TRUE },
    { 4, 40, 192, TRUE, TRUE },
    { 30, 56, 96, TRUE, FALSE },
    { 256, 70, 600, TRUE, FALSE },
    { 255, 40, 301, TRUE, FALSE },
    { 100, 36, 530, FALSE, FALSE },
    /* AMX's 32 x 32 blocks of 16 x 16 tiles, K in 32s: partial ones of
     * each, a block of one row, one k, split row blocks, K slices of 2048 */
    { 1, 16, 1, FALSE, FALSE },
    { 17, 1, 33, FALSE, FALSE },
    { 33, 47, 31, TRUE, FALSE },
    { 65, 33, 65, TRUE, FALSE },
    { 300, 100, 1000, TRUE, FALSE },
    { 80, 40, 192, TRUE, TRUE },
    { 70, 40, 2100, TRUE, FALSE },
    { 40, 2100, 33, FALSE, FALSE },
    { 150, 40, 100, TRUE, FALSE },
  };
  const char *isas[] = { "avx512", "avx2", "generic" };
  int ran = 0;
  for (guint i = 0; i < G_N_ELEMENTS (isas); i++) {
    g_autoptr (CriaBackend) be = make_backend (isas[i]);
    if (!be)
      continue;
    for (guint j = 0; j < G_N_ELEMENTS (cases); j++)
      check (isas[i], be, &cases[j]);
    ran++;
  }
  CU_ASSERT (ran > 0);
  g_autoptr (CriaBackend) amx = make_backend_amx ("avx512", "true");
  if (amx && has_amx (amx))
    for (guint j = 0; j < G_N_ELEMENTS (cases); j++)
      check ("amx", amx, &cases[j]);
}

static void
fill (CriaTensor *t, GRand *rand)
{
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    ((float *) t->data)[i] = (float) g_rand_double_range (rand, -1, 1);
}

/* s = gelu(x w^T + b) + x v (w [N,K], v [K,N] in bf16), or without the
 * GELU, and the gradient of x (the two products accumulated into it), with
 * the backend `be`: into s_out and dx_out. The bias and GELU run as the
 * first product's epilogue. */
static void
run_pair (CriaBackend *be, gint64 M, gint64 N, gint64 K, gboolean gelu, float *s_out, float *dx_out)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32) (M * 7 + N * 3 + K));
  gint64 xs[] = { M, K }, ws[] = { N, K }, vs[] = { K, N }, bs[] = { N }, rs[] = { M * N, 1 }, flat[] = { 1, M * N };
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, xs);
  g_autoptr (CriaTensor) w32 = cria_tensor_new (CRIA_DTYPE_F32, 2, ws);
  g_autoptr (CriaTensor) v32 = cria_tensor_new (CRIA_DTYPE_F32, 2, vs);
  g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 1, bs);
  g_autoptr (CriaTensor) r = cria_tensor_new (CRIA_DTYPE_F32, 2, rs);
  fill (x, rand);
  fill (w32, rand);
  fill (v32, rand);
  fill (b, rand);
  fill (r, rand);
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_BF16, 2, ws);
  g_autoptr (CriaTensor) v = cria_tensor_new (CRIA_DTYPE_BF16, 2, vs);
  cria_convert_from_f32 (CRIA_DTYPE_BF16, w32->data, w->data, (gsize) cria_tensor_numel (w32));
  cria_convert_from_f32 (CRIA_DTYPE_BF16, v32->data, v->data, (gsize) cria_tensor_numel (v32));

  CriaGraph *g = cria_graph_new ();
  CriaNode *xn = cria_graph_param (g, "x", x, TRUE);
  CriaNode *h = cria_matmul (g, xn, cria_graph_param (g, "w", w, FALSE), FALSE, TRUE);
  h = cria_add (g, h, cria_graph_param (g, "b", b, FALSE));
  if (gelu)
    h = cria_gelu (g, h);
  CriaNode *s = cria_add (g, h, cria_matmul (g, xn, cria_graph_param (g, "v", v, FALSE), FALSE, FALSE));
  cria_graph_mark_output (g, s);
  CriaNode *loss = cria_matmul (g, cria_reshape (g, s, 2, flat), cria_graph_param (g, "r", r, FALSE), FALSE, FALSE);
  cria_test_run_graph (g, loss, be, NULL);
  memcpy (s_out, s->value->data, (gsize) (M * N) * sizeof (float));
  memcpy (dx_out, xn->grad->data, (gsize) (M * K) * sizeof (float));
  cria_graph_free (g);
}

static double
max_abs (const float *x, gint64 n)
{
  double m = 0;
  for (gint64 i = 0; i < n; i++)
    m = MAX (m, fabs (x[i]));
  return m;
}

static double
max_diff (const float *x, const float *y, gint64 n)
{
  double m = 0;
  for (gint64 i = 0; i < n; i++)
    m = MAX (m, fabs ((double) x[i] - y[i]));
  return m;
}

/* Where the processor has AMX: its products against the AVX512-BF16 ones
 * (amx=false), both sums of the same bf16 products in f32, with a fused
 * epilogue and gradients accumulated; and the same floats on a second
 * run (a fixed thread count gives the same bits). */
static void
test_amx (void)
{
  g_autoptr (CriaBackend) amx = make_backend_amx ("avx512", "true");
  if (!amx || !has_amx (amx)) {
    printf ("(no AMX here) ");
    return;
  }
  g_autoptr (CriaBackend) vec = make_backend_amx ("avx512", "false");
  CU_ASSERT_FATAL (vec != NULL && !has_amx (vec));
  static const gint64 shapes[][3] = {
    { 1, 16, 1 },     { 17, 33, 31 },     { 65, 47, 33 },     { 100, 70, 301 },
    { 256, 64, 512 }, { 300, 100, 1000 }, { 70, 2100, 2100 }, { 150, 40, 100 },
  };
  for (guint i = 0; i < 2 * G_N_ELEMENTS (shapes); i++) {
    gint64 M = shapes[i / 2][0], N = shapes[i / 2][1], K = shapes[i / 2][2];
    gboolean gelu = i % 2;
    g_autofree float *s1 = g_new (float, M *N), *s2 = g_new (float, M *N), *s3 = g_new (float, M *N);
    g_autofree float *d1 = g_new (float, M *K), *d2 = g_new (float, M *K), *d3 = g_new (float, M *K);
    run_pair (amx, M, N, K, gelu, s1, d1);
    run_pair (vec, M, N, K, gelu, s2, d2);
    run_pair (amx, M, N, K, gelu, s3, d3);
    /* through the GELU, the gradient's products take the two runs' slightly
     * different values rounded to bf16, which may round apart by a bf16
     * step: compared without it */
    double se = max_diff (s1, s2, M * N) / max_abs (s2, M * N);
    double de = gelu ? 0 : max_diff (d1, d2, M * K) / max_abs (d2, M * K);
    if (se > 2e-6 || de > 2e-6)
      printf ("\n%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "%s: amx off by %g, dx by %g", M, N, K,
              gelu ? " gelu" : "", se, de);
    CU_ASSERT (se <= 2e-6);
    CU_ASSERT (de <= 2e-6);
    CU_ASSERT (memcmp (s1, s3, (gsize) (M * N) * sizeof (float)) == 0);
    CU_ASSERT (memcmp (d1, d3, (gsize) (M * K) * sizeof (float)) == 0);
  }
}

static void
cleanup (void)
{
  cria_registry_free (registry);
}

static void
register_suites (void)
{
  atexit (cleanup);
  registry = cria_test_registry ();
  static const CriaTestCase cases[] = {
    { "bf16 products equal bf16-rounded f64 products", test_products },
    { "AMX products equal AVX512-BF16 ones", test_amx },
    { NULL },
  };
  cria_test_add_suite ("bf16-dot", cases);
}

CRIA_TEST_MAIN (register_suites)
