/* test-ops: forward results of the cpu backend's ops against PyTorch
 * (tests/compute/op-goldens.json, written by gen-op-goldens.py), sgemm of
 * every instruction set against a float64 triple loop, the memory plan, and
 * the errors of bad graphs and bad inputs. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;
static JsonObject *goldens;
static JsonParser *parser;

/* the cpu backend on `isa`, two threads, and one more property set */
static CriaBackend *
open_backend_with (const char *isa, const char *key, const char *value, GError **error)
{
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_assert (cria_props_set (props, "isa", isa, NULL));
  g_assert (cria_props_set (props, "threads", "2", NULL));
  g_assert (cria_props_set (props, key, value, NULL));
  return cria_backend_new (p, props, error);
}

static CriaBackend *
open_backend (const char *isa, GError **error)
{
  return open_backend_with (isa, "threads", "2", error);
}

/* The backend for that isa, or NULL when this CPU lacks it (said once). */
static CriaBackend *
open_or_skip (const char *isa)
{
  g_autoptr (GError) error = NULL;
  CriaBackend *be = open_backend (isa, &error);
  if (!be)
    printf ("\n(skipping %s: %s)", isa, error->message);
  return be;
}

static JsonObject *
golden (const char *name)
{
  return json_object_get_object_member (json_object_get_object_member (goldens, "cases"), name);
}

/* A tensor from {"shape": [...], "data": [...]}: f32, or i32 when `ints`. */
static CriaTensor *
golden_tensor (JsonObject *c, const char *member, CriaDType dtype)
{
  JsonObject *o = json_object_get_object_member (c, member);
  JsonArray *shape = json_object_get_array_member (o, "shape");
  JsonArray *data = json_object_get_array_member (o, "data");
  gint64 dims[CRIA_MAX_DIMS];
  int n_dims = (int) json_array_get_length (shape);
  for (int i = 0; i < n_dims; i++)
    dims[i] = json_array_get_int_element (shape, i);
  CriaTensor *t = cria_tensor_new (dtype, n_dims, dims);
  for (guint i = 0; i < json_array_get_length (data); i++) {
    if (dtype == CRIA_DTYPE_F32)
      ((float *) t->data)[i] = (float) json_array_get_double_element (data, i);
    else if (dtype == CRIA_DTYPE_I32)
      ((gint32 *) t->data)[i] = (gint32) json_array_get_int_element (data, i);
    else
      ((guint16 *) t->data)[i] = (guint16) json_array_get_int_element (data, i);
  }
  return t;
}

static CriaNode *
leaf (CriaGraph *g, JsonObject *c, const char *member, CriaDType dtype)
{
  g_autoptr (CriaTensor) t = golden_tensor (c, member, dtype);
  if (dtype != CRIA_DTYPE_I32)
    return cria_graph_param (g, member, t, FALSE);
  CriaNode *n = cria_graph_input (g, member, dtype, t->n_dims, t->shape);
  g_assert (cria_node_set_value (n, t, NULL));
  return n;
}

/* Runs the graph whose last node is `out` and compares it with c.out:
 * |got - want| <= 1e-5 + 1e-5 |want| (f32 arithmetic against float64). */
static void
expect_out (CriaGraph *g, CriaNode *out, JsonObject *c, const char *what, double tol)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = cria_graph_plan (g, backend, NULL, &error) && cria_graph_forward (g, &error);
  if (!ok)
    printf ("\n%s: %s\n", what, error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  g_autoptr (CriaTensor) want = golden_tensor (c, "out", CRIA_DTYPE_F32);
  CU_ASSERT_EQUAL_FATAL (cria_tensor_numel (want), cria_shape_numel (out->n_dims, out->shape));
  const float *w = want->data, *got = out->value->data;
  guint bad = 0;
  for (gint64 i = 0; i < cria_tensor_numel (want); i++)
    if (fabs ((double) got[i] - w[i]) > tol + tol * fabs (w[i]) && bad++ < 3)
      printf ("\n%s[%" G_GINT64_FORMAT "]: got %.8g, want %.8g", what, i, (double) got[i], (double) w[i]);
  CU_ASSERT_EQUAL (bad, 0);
}

static void
test_norms (void)
{
  JsonObject *c = golden ("layernorm");
  g_autoptr (CriaGraph) g = cria_graph_new ();
  CriaNode *out = cria_layernorm (g, leaf (g, c, "x", CRIA_DTYPE_F32), leaf (g, c, "w", CRIA_DTYPE_F32),
                                  leaf (g, c, "b", CRIA_DTYPE_F32), (float) json_object_get_double_member (c, "eps"));
  expect_out (g, out, c, "layernorm", 1e-5);
  c = golden ("rmsnorm");
  g_autoptr (CriaGraph) g2 = cria_graph_new ();
  out = cria_rmsnorm (g2, leaf (g2, c, "x", CRIA_DTYPE_F32), leaf (g2, c, "w", CRIA_DTYPE_F32),
                      (float) json_object_get_double_member (c, "eps"));
  expect_out (g2, out, c, "rmsnorm", 1e-5);
}

static void
test_rope (void)
{
  JsonObject *c = golden ("rope");
  g_autoptr (CriaGraph) g = cria_graph_new ();
  CriaNode *out = cria_rope (g, leaf (g, c, "x", CRIA_DTYPE_F32), leaf (g, c, "positions", CRIA_DTYPE_I32),
                             leaf (g, c, "inv_freq", CRIA_DTYPE_F32));
  /* position 1000: f32 angles of ~1000 rad carry 3e-5 of rounding, as in HF */
  expect_out (g, out, c, "rope", 1e-4);
}

static void
test_attention (void)
{
  JsonObject *c = golden ("attention");
  g_autoptr (CriaGraph) g = cria_graph_new ();
  CriaNode *out = cria_attention (g, leaf (g, c, "q", CRIA_DTYPE_F32), leaf (g, c, "k", CRIA_DTYPE_F32),
                                  leaf (g, c, "v", CRIA_DTYPE_F32), leaf (g, c, "segments", CRIA_DTYPE_I32),
                                  (float) json_object_get_double_member (c, "scale"));
  expect_out (g, out, c, "attention", 1e-5);
}

static void
test_activations (void)
{
  CriaNode *(*fns[]) (CriaGraph *, CriaNode *) = { cria_gelu, cria_silu, cria_softmax };
  const char *names[] = { "gelu", "silu", "softmax" };
  for (guint i = 0; i < G_N_ELEMENTS (fns); i++) {
    JsonObject *c = golden (names[i]);
    g_autoptr (CriaGraph) g = cria_graph_new ();
    expect_out (g, fns[i](g, leaf (g, c, "x", CRIA_DTYPE_F32)), c, names[i], 1e-5);
  }
}

static void
test_lm_head_ce (void)
{
  JsonObject *c = golden ("lm_head_ce");
  for (gint64 chunk = 1; chunk <= 64; chunk *= 4) {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    CriaNode *out = cria_lm_head_ce (g, leaf (g, c, "h", CRIA_DTYPE_F32), leaf (g, c, "w", CRIA_DTYPE_F32),
                                     leaf (g, c, "labels", CRIA_DTYPE_I32), chunk);
    expect_out (g, out, c, "lm_head_ce", 1e-5);
  }
}

static void
test_narrow_weights (void)
{
  const char *names[] = { "matmul_bf16", "matmul_f16" };
  CriaDType types[] = { CRIA_DTYPE_BF16, CRIA_DTYPE_F16 };
  for (int i = 0; i < 2; i++) {
    JsonObject *c = golden (names[i]);
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (CriaTensor) bits = golden_tensor (c, "w_bits", types[i]);
    CriaNode *w = cria_graph_param (g, "w", bits, FALSE);
    expect_out (g, cria_matmul (g, leaf (g, c, "x", CRIA_DTYPE_F32), w, FALSE, TRUE), c, names[i], 1e-5);
  }
}

static void
test_conversions (void)
{
  JsonObject *c = golden ("convert");
  g_autoptr (CriaTensor) x = golden_tensor (c, "x", CRIA_DTYPE_F32);
  g_autoptr (CriaTensor) bf = golden_tensor (c, "bf16", CRIA_DTYPE_BF16);
  g_autoptr (CriaTensor) hf = golden_tensor (c, "f16", CRIA_DTYPE_F16);
  const float *v = x->data;
  guint bad = 0;
  for (gint64 i = 0; i < cria_tensor_numel (x); i++) {
    guint16 b = cria_f32_to_bf16 (v[i]), h = cria_f32_to_f16 (v[i]);
    if (b != ((guint16 *) bf->data)[i] || h != ((guint16 *) hf->data)[i]) {
      printf ("\n%.9g: bf16 %04x (torch %04x), f16 %04x (torch %04x)", (double) v[i], b, ((guint16 *) bf->data)[i], h,
              ((guint16 *) hf->data)[i]);
      bad++;
    }
    /* Every f16 converts back exactly to the value it rounds. */
    CU_ASSERT_EQUAL (cria_f32_to_f16 (cria_f16_to_f32 (h)), h);
  }
  CU_ASSERT_EQUAL (bad, 0);
  CU_ASSERT_TRUE (isnan (cria_bf16_to_f32 (cria_f32_to_bf16 (NAN))));
  CU_ASSERT_TRUE (isnan (cria_f16_to_f32 (cria_f32_to_f16 (NAN))));
  CU_ASSERT_TRUE (isinf (cria_f16_to_f32 (cria_f32_to_f16 (1e6f))));
}

/* C = A B^T and A^T B at awkward sizes, against a float64 loop, per ISA. */
static void
test_gemm_isas (void)
{
  const char *isas[] = { "generic", "avx2", "avx512" };
  const gint64 sizes[][3] = { { 1, 37, 29 },   { 3, 64, 100 }, { 13, 37, 29 },
                              { 70, 100, 65 }, { 7, 1, 5 },    { 30, 33, 600 } };
  GRand *rand = g_rand_new_with_seed (7);
  for (guint s = 0; s < G_N_ELEMENTS (isas); s++) {
    CriaBackend *be = open_or_skip (isas[s]);
    if (!be)
      continue;
    for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
      for (int tb = 0; tb < 2; tb++) {
        gint64 M = sizes[z][0], N = sizes[z][1], K = sizes[z][2];
        gint64 as[] = { M, K }, bs[] = { tb ? N : K, tb ? K : N };
        g_autoptr (CriaTensor) a = cria_tensor_new (CRIA_DTYPE_F32, 2, as);
        g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 2, bs);
        for (gint64 i = 0; i < M * K; i++)
          ((float *) a->data)[i] = (float) g_rand_double_range (rand, -1, 1);
        for (gint64 i = 0; i < N * K; i++)
          ((float *) b->data)[i] = (float) g_rand_double_range (rand, -1, 1);
        g_autoptr (CriaGraph) g = cria_graph_new ();
        CriaNode *out = cria_matmul (g, cria_graph_param (g, "a", a, FALSE), cria_graph_param (g, "b", b, FALSE), FALSE,
                                     tb);
        CU_ASSERT_TRUE_FATAL (cria_graph_plan (g, be, NULL, NULL) && cria_graph_forward (g, NULL));
        double worst = 0;
        for (gint64 i = 0; i < M; i++)
          for (gint64 j = 0; j < N; j++) {
            double want = 0;
            for (gint64 k = 0; k < K; k++)
              want += (double) ((float *) a->data)[i * K + k] * ((float *) b->data)[tb ? j * K + k : k * N + j];
            worst = MAX (worst, fabs (want - ((float *) out->value->data)[i * N + j]));
          }
        if (worst > 1e-4)
          printf ("\n%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " tb=%d: off by %g", isas[s], M, N,
                  K, tb, worst);
        CU_ASSERT_TRUE (worst <= 1e-4);
      }
    }
    cria_backend_free (be);
  }
  g_rand_free (rand);
}

/* x [M,K] times a weight, [N,K] transposed (tb) or [K,N], on `be`. */
static CriaTensor *
weight_product (CriaBackend *be, const float *x, gint64 M, const CriaTensor *w, gboolean tb)
{
  gint64 xs[] = { M, w->shape[tb ? 1 : 0] };
  g_autoptr (CriaTensor) a = cria_tensor_new (CRIA_DTYPE_F32, 2, xs);
  memcpy (a->data, x, cria_tensor_nbytes (a));
  g_autoptr (CriaGraph) g = cria_graph_new ();
  CriaNode *out = cria_matmul (g, cria_graph_param (g, "x", a, FALSE),
                               cria_graph_param (g, "w", (CriaTensor *) w, FALSE), FALSE, tb);
  if (!cria_graph_plan (g, be, NULL, NULL) || !cria_graph_forward (g, NULL))
    return NULL;
  /* the output lives in the graph's arena */
  CriaTensor *y = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ M, w->shape[tb ? 0 : 1] });
  memcpy (y->data, out->value->data, cria_tensor_nbytes (y));
  return y;
}

static CriaTensor *
bf16_product (CriaBackend *be, const float *x, gint64 M, const CriaTensor *w)
{
  return weight_product (be, x, M, w, TRUE);
}

/* bf16 and f16 weights, in both layouts, multiply as the f32 weights they
 * widen to, bit for bit: the f32 kernels run on panels widened as they are
 * packed. Sizes with partial 16 x 16 blocks and several K slices; more rows
 * than the dot-product paths take. */
static void
test_narrow_weight_layouts (void)
{
  const char *isas[] = { "avx2", "avx512" };
  const CriaDType types[] = { CRIA_DTYPE_BF16, CRIA_DTYPE_F16 };
  const gint64 sizes[][3] = { { 70, 50, 70 }, { 75, 64, 300 }, { 129, 33, 17 } };
  GRand *rand = g_rand_new_with_seed (23);
  for (guint s = 0; s < G_N_ELEMENTS (isas); s++) {
    CriaBackend *be = open_or_skip (isas[s]);
    if (!be)
      continue;
    for (guint t = 0; t < G_N_ELEMENTS (types); t++)
      for (guint z = 0; z < G_N_ELEMENTS (sizes); z++)
        for (int tb = 0; tb < 2; tb++) {
          gint64 M = sizes[z][0], N = sizes[z][1], K = sizes[z][2];
          gint64 ws[] = { tb ? N : K, tb ? K : N };
          g_autoptr (CriaTensor) narrow = cria_tensor_new (types[t], 2, ws);
          g_autoptr (CriaTensor) wide = cria_tensor_new (CRIA_DTYPE_F32, 2, ws);
          for (gint64 i = 0; i < N * K; i++) {
            float v = (float) g_rand_double_range (rand, -2, 2);
            guint16 h = types[t] == CRIA_DTYPE_BF16 ? cria_f32_to_bf16 (v) : cria_f32_to_f16 (v);
            ((guint16 *) narrow->data)[i] = h;
            ((float *) wide->data)[i] = types[t] == CRIA_DTYPE_BF16 ? cria_bf16_to_f32 (h) : cria_f16_to_f32 (h);
          }
          g_autofree float *x = g_new (float, M *K);
          for (gint64 i = 0; i < M * K; i++)
            x[i] = (float) g_rand_double_range (rand, -1, 1);
          g_autoptr (CriaTensor) got = weight_product (be, x, M, narrow, tb);
          g_autoptr (CriaTensor) want = weight_product (be, x, M, wide, tb);
          CU_ASSERT_PTR_NOT_NULL_FATAL (got);
          CU_ASSERT_PTR_NOT_NULL_FATAL (want);
          gboolean same = memcmp (got->data, want->data, cria_tensor_nbytes (want)) == 0;
          if (!same)
            printf ("\n%s %s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " tb=%d: not the f32 product",
                    isas[s], cria_dtype_name (types[t]), M, N, K, tb);
          CU_ASSERT_TRUE (same);
        }
    cria_backend_free (be);
  }
  g_rand_free (rand);
}

/* bf16 weights [N,K] times batches of `rows` rows each: against float64,
 * and each row of a batch bitwise equal to that row alone up to 64 rows (the
 * dot-product paths); with bf16-dot=true too (activations rounded to bf16:
 * AVX512-BF16 dot products where present). */
static void
bf16_batches (gint64 N, gint64 K, const gint64 *rows, guint n_rows)
{
  const char *isas[] = { "avx2", "avx512", "avx512 bf16-dot" };
  GRand *rand = g_rand_new_with_seed (17);
  gint64 ws[] = { N, K }, most = 0;
  for (guint r = 0; r < n_rows; r++)
    most = MAX (most, rows[r]);
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_BF16, 2, ws);
  for (gint64 i = 0; i < N * K; i++)
    ((guint16 *) w->data)[i] = cria_f32_to_bf16 ((float) g_rand_double_range (rand, -1, 1));
  g_autofree float *x = g_new (float, most *K);
  for (gint64 i = 0; i < most * K; i++)
    x[i] = (float) g_rand_double_range (rand, -1, 1);
  for (guint s = 0; s < G_N_ELEMENTS (isas); s++) {
    g_autoptr (GError) error = NULL;
    gboolean dot = s == 2;
    CriaBackend *be = dot ? open_backend_with ("avx512", "bf16-dot", "true", &error) : open_backend (isas[s], &error);
    if (!be) {
      printf ("\n(skipping %s: %s)", isas[s], error->message);
      continue;
    }
    for (guint r = 0; r < n_rows; r++) {
      gint64 M = rows[r];
      g_autoptr (CriaTensor) out = bf16_product (be, x, M, w);
      CU_ASSERT_PTR_NOT_NULL_FATAL (out);
      const float *y = out->data;
      double worst = 0;
      guint differ = 0;
      for (gint64 i = 0; i < M; i++) {
        for (gint64 j = 0; j < N; j++) {
          double want = 0;
          for (gint64 k = 0; k < K; k++)
            want += (double) (dot ? cria_bf16_to_f32 (cria_f32_to_bf16 (x[i * K + k])) : x[i * K + k]) *
                    cria_bf16_to_f32 (((guint16 *) w->data)[j * K + k]);
          worst = MAX (worst, fabs (want - y[i * N + j]));
        }
        g_autoptr (CriaTensor) alone = bf16_product (be, x + i * K, 1, w);
        CU_ASSERT_PTR_NOT_NULL_FATAL (alone);
        differ += memcmp (alone->data, y + i * N, (gsize) N * sizeof (float)) != 0;
      }
      if (worst > 1e-4 || (M <= 32 && differ))
        printf ("\n%s %" G_GINT64_FORMAT " rows of %" G_GINT64_FORMAT ": off by %g, %u rows differ from alone", isas[s],
                M, K, worst, differ);
      CU_ASSERT_TRUE (worst <= 1e-4);
      /* 64 rows on AVX-512 (DOT_BF16_MAX_ROWS), 32 elsewhere */
      if (M <= (s >= 1 ? 64 : 32))
        CU_ASSERT_EQUAL (differ, 0);
    }
    cria_backend_free (be);
  }
  g_rand_free (rand);
}

/* Decoding several sequences, a prompt: row counts and sizes that leave
 * partial blocks of rows, of columns and of K; then a wider weight whose
 * tasks take several spans of columns (DOT_SPAN_BYTES), the last partial. */
static void
test_bf16_batches (void)
{
  const gint64 rows[] = { 1, 3, 4, 5, 16, 17, 36, 64, 65 }, wide_rows[] = { 6, 16 };
  bf16_batches (37, 100, rows, G_N_ELEMENTS (rows));
  bf16_batches (302, 2050, wide_rows, G_N_ELEMENTS (wide_rows));
}

/* Matmul gradients at sizes with full register tiles and several K slices:
 * for L = sum (A op(B)) * R, dA and dB against float64 loops. */
static void
test_matmul_backward_large (void)
{
  const gint64 M = 20, N = 40, K = 300;
  GRand *rand = g_rand_new_with_seed (11);
  for (int tb = 0; tb < 2; tb++) {
    gint64 as[] = { M, K }, bs[] = { tb ? N : K, tb ? K : N }, rs[] = { M * N, 1 }, flat[] = { 1, M * N };
    g_autoptr (CriaTensor) a = cria_tensor_new (CRIA_DTYPE_F32, 2, as);
    g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 2, bs);
    g_autoptr (CriaTensor) r = cria_tensor_new (CRIA_DTYPE_F32, 2, rs);
    float *A = a->data, *B = b->data, *R = r->data;
    for (gint64 i = 0; i < M * K; i++)
      A[i] = (float) g_rand_double_range (rand, -1, 1);
    for (gint64 i = 0; i < N * K; i++)
      B[i] = (float) g_rand_double_range (rand, -1, 1);
    for (gint64 i = 0; i < M * N; i++)
      R[i] = (float) g_rand_double_range (rand, -1, 1);
    g_autoptr (CriaGraph) g = cria_graph_new ();
    CriaNode *an = cria_graph_param (g, "a", a, TRUE), *bn = cria_graph_param (g, "b", b, TRUE);
    CriaNode *c = cria_matmul (g, an, bn, FALSE, tb);
    CriaNode *loss = cria_matmul (g, cria_reshape (g, c, 2, flat), cria_graph_param (g, "r", r, FALSE), FALSE, FALSE);
    CU_ASSERT_TRUE_FATAL (cria_graph_backward (g, loss, NULL) && cria_graph_plan (g, backend, NULL, NULL) &&
                          cria_graph_forward (g, NULL) && cria_graph_run_backward (g, NULL));
    const float *dA = an->grad->data, *dB = bn->grad->data;
    double worst = 0;
    /* dA(i,k) = sum_n R(i,n) B(k,n);  dB(k,n) = sum_i A(i,k) R(i,n) */
    for (gint64 i = 0; i < M; i++)
      for (gint64 k = 0; k < K; k++) {
        double want = 0;
        for (gint64 n = 0; n < N; n++)
          want += (double) R[i * N + n] * B[tb ? n * K + k : k * N + n];
        worst = MAX (worst, fabs (want - dA[i * K + k]));
      }
    for (gint64 k = 0; k < K; k++)
      for (gint64 n = 0; n < N; n++) {
        double want = 0;
        for (gint64 i = 0; i < M; i++)
          want += (double) A[i * K + k] * R[i * N + n];
        worst = MAX (worst, fabs (want - dB[tb ? n * K + k : k * N + n]));
      }
    if (worst > 1e-4)
      printf ("\nmatmul backward tb=%d: off by %g", tb, worst);
    CU_ASSERT_TRUE (worst <= 1e-4);
  }
  g_rand_free (rand);
}

/* A chain of n ops needs two live buffers, not n. */
static void
test_plan_reuses_memory (void)
{
  g_autoptr (CriaGraph) g = cria_graph_new ();
  gint64 shape[] = { 64, 64 };
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, shape);
  ((float *) x->data)[0] = 1.0f;
  CriaNode *n = cria_graph_param (g, "x", x, FALSE);
  for (int i = 0; i < 10; i++)
    n = cria_scale (g, n, 2.0f);
  CriaPlanStats stats;
  CU_ASSERT_TRUE_FATAL (cria_graph_plan (g, backend, &stats, NULL));
  CU_ASSERT_EQUAL (stats.naive_bytes, 10 * 64 * 64 * 4);
  CU_ASSERT_EQUAL (stats.arena_bytes, 2 * 64 * 64 * 4);
  CU_ASSERT_TRUE (cria_graph_forward (g, NULL));
  CU_ASSERT_EQUAL (((float *) n->value->data)[0], 1024.0f);
  /* With backward, activations the backward reads stay alive. */
  g_autoptr (CriaGraph) g2 = cria_graph_new ();
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, shape);
  n = cria_graph_param (g2, "w", w, TRUE);
  for (int i = 0; i < 10; i++)
    n = cria_gelu (g2, n);
  gint64 flat[] = { 1, 64 * 64 }, col[] = { 64 * 64, 1 };
  g_autoptr (CriaTensor) r = cria_tensor_new (CRIA_DTYPE_F32, 2, col);
  CriaNode *loss = cria_matmul (g2, cria_reshape (g2, n, 2, flat), cria_graph_param (g2, "r", r, FALSE), FALSE, FALSE);
  CU_ASSERT_TRUE_FATAL (cria_graph_backward (g2, loss, NULL));
  CU_ASSERT_TRUE_FATAL (cria_graph_plan (g2, backend, &stats, NULL));
  CU_ASSERT_TRUE (stats.arena_bytes < stats.naive_bytes);
  CU_ASSERT_EQUAL (stats.param_grad_bytes, 64 * 64 * 4);
  CU_ASSERT_TRUE (cria_graph_forward (g2, NULL) && cria_graph_run_backward (g2, NULL));
}

static void
expect_error (GError *error, const char *fragment)
{
  if (!error || !strstr (error->message, fragment))
    printf ("\nerror '%s' lacks '%s'\n", error ? error->message : "(none)", fragment);
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, fragment));
  CU_ASSERT_PTR_NULL (error ? strchr (error->message, '\n') : NULL);
}

static void
test_bad_graphs (void)
{
  gint64 s23[] = { 2, 3 }, s43[] = { 4, 3 }, s3[] = { 3 };
  g_autoptr (CriaTensor) a = cria_tensor_new (CRIA_DTYPE_F32, 2, s23);
  g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 2, s43);
  g_autoptr (CriaTensor) bf = cria_tensor_new (CRIA_DTYPE_BF16, 2, s43);
  {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    CriaNode *x = cria_matmul (g, cria_graph_param (g, "a", a, FALSE), cria_graph_param (g, "b", b, FALSE), FALSE,
                               FALSE);
    CU_ASSERT_PTR_NULL (x);
    /* later builders propagate the first error */
    CU_ASSERT_PTR_NULL (cria_gelu (g, x));
    CU_ASSERT_FALSE (cria_graph_check (g, &error));
    expect_error (error, "matmul: inner dims differ: [2, 3] by [4, 3]");
  }
  {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    CU_ASSERT_PTR_NULL (cria_graph_param (g, "lm_head", bf, TRUE));
    CU_ASSERT_FALSE (cria_graph_check (g, &error));
    expect_error (error, "lm_head: a trainable weight must be f32");
  }
  {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    CriaNode *x = cria_graph_param (g, "a", a, FALSE);
    CU_ASSERT_PTR_NULL (cria_layernorm (g, x, cria_graph_param (g, "w", b, FALSE), x, 1e-5f));
    CU_ASSERT_FALSE (cria_graph_check (g, &error));
    expect_error (error, "layernorm: weight [4, 3] does not match the last dim of [2, 3]");
  }
  {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    CriaNode *ids = cria_graph_input (g, "ids", CRIA_DTYPE_I32, 1, s3);
    CriaNode *out = cria_embedding (g, ids, cria_graph_param (g, "wte", b, FALSE));
    CU_ASSERT_FALSE (cria_graph_backward (g, out, &error));
    expect_error (error, "must be a scalar");
    g_clear_error (&error);
    CU_ASSERT_FALSE (cria_graph_forward (g, &error));
    expect_error (error, "has not been planned");
    g_clear_error (&error);
    CU_ASSERT_TRUE_FATAL (cria_graph_plan (g, backend, NULL, &error));
    CU_ASSERT_FALSE (cria_graph_forward (g, &error));
    expect_error (error, "input ids has no value");
    g_clear_error (&error);
    g_autoptr (CriaTensor) idv = cria_tensor_new (CRIA_DTYPE_I32, 1, s3);
    ((gint32 *) idv->data)[2] = 9;
    CU_ASSERT_TRUE (cria_node_set_value (ids, idv, NULL));
    CU_ASSERT_FALSE (cria_graph_forward (g, &error));
    expect_error (error, "embedding: id 9 at position 2 is outside the vocabulary of 4");
    g_clear_error (&error);
    CU_ASSERT_FALSE (cria_node_set_value (ids, a, &error));
    expect_error (error, "ids: expected i32 [3], got f32 [2, 3]");
  }
  {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    gint64 s2[] = { 2 };
    CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, s2);
    CriaNode *ce = cria_lm_head_ce (g, cria_graph_param (g, "h", a, FALSE), cria_graph_param (g, "w", b, FALSE), labels,
                                    2);
    CU_ASSERT_FALSE (cria_graph_backward (g, ce, &error));
    expect_error (error, "does not depend on any trainable param");
    g_clear_error (&error);
    g_autoptr (CriaTensor) lv = cria_tensor_new (CRIA_DTYPE_I32, 1, s2);
    ((gint32 *) lv->data)[0] = -100;
    ((gint32 *) lv->data)[1] = -3;
    CU_ASSERT_TRUE (cria_node_set_value (labels, lv, NULL));
    CU_ASSERT_TRUE_FATAL (cria_graph_plan (g, backend, NULL, &error));
    CU_ASSERT_FALSE (cria_graph_forward (g, &error));
    expect_error (error, "lm_head_ce: label -3 of row 1 is outside the vocabulary of 4");
  }
  {
    /* shapes a config that disagrees with its tensors could produce */
    const struct {
      int n_dims;
      gint64 shape[4];
      const char *msg;
    } bad[] = {
      { 2, { 3, -1 }, "input: invalid shape [3, -1]" },
      { 2, { 3, 0 }, "input: invalid shape [3, 0]" },
      { 5, { 1, 1, 1, 1 }, "input: x: 5 dimensions (1 to 4)" },
      { 2, { G_MAXINT64 / 2, 16 }, "input: invalid shape" },
    };
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
      g_autoptr (CriaGraph) g = cria_graph_new ();
      g_autoptr (GError) error = NULL;
      CU_ASSERT_PTR_NULL (cria_graph_input (g, "x", CRIA_DTYPE_F32, bad[i].n_dims, bad[i].shape));
      CU_ASSERT_FALSE (cria_graph_check (g, &error));
      expect_error (error, bad[i].msg);
    }
    g_autoptr (CriaGraph) g = cria_graph_new ();
    g_autoptr (GError) error = NULL;
    CriaNode *x = cria_graph_param (g, "a", a, FALSE);
    gint64 s7[] = { 7 };
    int perm[] = { 0, 0 };
    CU_ASSERT_PTR_NULL (cria_reshape (g, x, 1, s7));
    CU_ASSERT_FALSE (cria_graph_check (g, &error));
    expect_error (error, "reshape: cannot view [2, 3] as [7]");
    g_autoptr (CriaGraph) g2 = cria_graph_new ();
    CU_ASSERT_PTR_NULL (cria_permute (g2, cria_graph_param (g2, "a", a, FALSE), perm));
    g_autoptr (CriaGraph) g3 = cria_graph_new ();
    CU_ASSERT_PTR_NULL (cria_slice (g3, cria_graph_param (g3, "a", a, FALSE), 1, 2, 2));
    g_clear_error (&error);
    CU_ASSERT_FALSE (cria_graph_check (g3, &error));
    expect_error (error, "slice: [2, +2) of dim 1 is outside [2, 3]");
  }
  {
    g_autoptr (GError) error = NULL;
    const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
    g_autoptr (CriaProps) props = cria_provider_new_props (p);
    CU_ASSERT_FALSE (cria_props_set (props, "isa", "sse9", &error));
    CU_ASSERT_PTR_NULL (cria_backend_open (registry, "gpu-of-dreams", NULL));
  }
}

/* A LoRA-like hook: out + (x A^T) B^T, attached without the "model" knowing. */
static CriaNode *
lora_hook (CriaGraph *g, const char *name, CriaNode *x, CriaNode *out, gpointer data)
{
  GPtrArray *seen = data;
  g_ptr_array_add (seen, g_strdup (name));
  if (!g_str_has_suffix (name, "q_proj"))
    return out;
  gint64 as[] = { 1, x->shape[x->n_dims - 1] }, bs[] = { out->shape[out->n_dims - 1], 1 };
  g_autoptr (CriaTensor) a = cria_tensor_new (CRIA_DTYPE_F32, 2, as);
  g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 2, bs);
  for (gint64 i = 0; i < as[1]; i++)
    ((float *) a->data)[i] = 1.0f;
  for (gint64 i = 0; i < bs[0]; i++)
    ((float *) b->data)[i] = 0.5f;
  CriaNode *down = cria_linear (g, "lora_A", x, cria_graph_param (g, "lora_A", a, TRUE), NULL);
  return cria_add (g, out, cria_matmul (g, down, cria_graph_param (g, "lora_B", b, TRUE), FALSE, TRUE));
}

static void
test_linear_hook (void)
{
  g_autoptr (CriaGraph) g = cria_graph_new ();
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  cria_graph_set_linear_hook (g, lora_hook, seen);
  gint64 xs[] = { 2, 3 }, ws[] = { 4, 3 }, bs[] = { 4 };
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, xs);
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_BF16, 2, ws);
  g_autoptr (CriaTensor) b = cria_tensor_new (CRIA_DTYPE_F32, 1, bs);
  for (int i = 0; i < 6; i++)
    ((float *) x->data)[i] = (float) i;
  for (int i = 0; i < 12; i++)
    ((guint16 *) w->data)[i] = cria_f32_to_bf16 (i == 0 ? 1.0f : 0.0f);
  ((float *) b->data)[3] = 2.0f;
  CriaNode *xn = cria_graph_param (g, "x", x, FALSE);
  CriaNode *q = cria_linear (g, "layers.0.q_proj", xn, cria_graph_param (g, "w", w, FALSE),
                             cria_graph_param (g, "b", b, FALSE));
  CriaNode *loss = cria_lm_head_ce (g, q, cria_graph_param (g, "head", w, FALSE), NULL, 1);
  CU_ASSERT_PTR_NULL (loss); /* no labels: refused, and said so */
  g_autoptr (GError) error = NULL;
  CU_ASSERT_FALSE (cria_graph_check (g, &error));
  expect_error (error, "lm_head_ce: input 2 is missing");
  CU_ASSERT_EQUAL (seen->len, 2);
  CU_ASSERT_STRING_EQUAL (g_ptr_array_index (seen, 0), "layers.0.q_proj");
  CU_ASSERT_STRING_EQUAL (g_ptr_array_index (seen, 1), "lora_A");
  CU_ASSERT_PTR_NOT_NULL (cria_graph_find (g, "layers.0.q_proj"));

  g_autoptr (CriaGraph) g2 = cria_graph_new ();
  cria_graph_set_linear_hook (g2, lora_hook, seen);
  xn = cria_graph_param (g2, "x", x, FALSE);
  q = cria_linear (g2, "layers.0.q_proj", xn, cria_graph_param (g2, "w", w, FALSE),
                   cria_graph_param (g2, "b", b, FALSE));
  CU_ASSERT_TRUE_FATAL (cria_graph_plan (g2, backend, NULL, NULL) && cria_graph_forward (g2, NULL));
  /* row 1 of x is (3, 4, 5): base = (3, 0, 0, 2), LoRA adds 0.5 * 12 = 6 */
  const float *y = q->value->data;
  CU_ASSERT_DOUBLE_EQUAL (y[4], 9.0, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL (y[5], 6.0, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL (y[7], 8.0, 1e-6);
}

static void
cleanup (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
  g_object_unref (parser);
}

static void
register_suites (void)
{
  atexit (cleanup);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "compute", "op-goldens.json", NULL);
  parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, NULL))
    g_error ("cannot read %s", path);
  goldens = json_node_get_object (json_parser_get_root (parser));
  registry = cria_test_registry ();
  backend = open_backend ("auto", NULL);
  g_assert (backend);
  static const CriaTestCase torch_cases[] = {
    { "layernorm and rmsnorm", test_norms },
    { "rope", test_rope },
    { "attention with GQA and segments", test_attention },
    { "gelu, silu, softmax", test_activations },
    { "lm_head_ce at several chunk sizes", test_lm_head_ce },
    { "bf16 and f16 weights", test_narrow_weights },
    { "bf16 and f16 weights in both layouts equal their f32 widening", test_narrow_weight_layouts },
    { "bf16 and f16 rounding", test_conversions },
    { NULL },
  };
  static const CriaTestCase other_cases[] = {
    { "sgemm of every ISA against float64", test_gemm_isas },
    { "bf16 weights times batches of rows", test_bf16_batches },
    { "matmul backward at larger sizes", test_matmul_backward_large },
    { "memory plan reuses buffers", test_plan_reuses_memory },
    { "bad graphs and inputs", test_bad_graphs },
    { "linear layers and the adapter hook", test_linear_hook },
    { NULL },
  };
  cria_test_add_suite ("ops against PyTorch", torch_cases);
  cria_test_add_suite ("cpu backend", other_cases);
}

CRIA_TEST_MAIN (register_suites)
