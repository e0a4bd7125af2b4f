/* test-attention: the cpu backend's blocked attention kernels (every
 * instruction set the processor has) against its scalar one-row-at-a-time
 * kernels (`attention=rows`, the implementation that the op goldens and the
 * model tests against PyTorch validated), forward and all three gradients.
 *
 * Shapes are odd on purpose: head sizes and sequence lengths that do not
 * divide the 64-key blocks or the vector widths, GQA groups of 1 to 7, a KV
 * cache (fewer queries than keys, down to one: decoding), packed segments and
 * a non-contiguous segment pattern, a sliding window. Results must agree
 * within 1e-5 of each tensor's largest magnitude, and the blocked kernels
 * must give the same bits at 1 and at 3 threads. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

typedef struct {
  gint64 B, Tq, Tk, Hq, Hkv, D, window;
  int segments; /* 0 none, 1 packed runs, 2 alternating ids */
} Shape;

static CriaRegistry *registry;

typedef struct {
  float *out, *dq, *dk, *dv;
  gint64 n_out, n_q, n_kv;
} Result;

static void
result_clear (Result *r)
{
  g_free (r->out);
  g_free (r->dq);
  g_free (r->dk);
  g_free (r->dv);
}

static CriaBackend *
make_backend (const char *isa, const char *attention, const char *threads)
{
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_assert (cria_props_set (props, "threads", threads, NULL));
  g_assert (cria_props_set (props, "isa", isa, NULL));
  g_assert (cria_props_set (props, "attention", attention, NULL));
  /* NULL when the processor lacks the ISA */
  return cria_backend_new (p, props, NULL);
}

static CriaTensor *
random_tensor (GRand *rand, int n_dims, const gint64 *shape, double range)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = (float) g_rand_double_range (rand, -range, range);
  return t;
}

static float *
copy_floats (const CriaTensor *t)
{
  return g_memdup2 (t->data, cria_tensor_nbytes (t));
}

/* Forward and backward of sum(attention(q, k, v) * R) on a backend. */
static void
run_case (const Shape *s, CriaBackend *backend, Result *res)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32) (s->Tq * 131 + s->Tk * 7 + s->D));
  gint64 qs[] = { s->B, s->Tq, s->Hq, s->D }, ks[] = { s->B, s->Tk, s->Hkv, s->D };
  gint64 n_out = s->B * s->Tq * s->Hq * s->D, rs[] = { n_out, 1 }, flat[] = { 1, n_out }, ss[] = { s->B, s->Tk };
  /* scores of a few units: softmaxes neither flat nor one-hot */
  g_autoptr (CriaTensor) tq = random_tensor (rand, 4, qs, 2.0);
  g_autoptr (CriaTensor) tk = random_tensor (rand, 4, ks, 2.0);
  g_autoptr (CriaTensor) tv = random_tensor (rand, 4, ks, 1.0);
  g_autoptr (CriaTensor) tr = random_tensor (rand, 2, rs, 1.0);
  g_autoptr (CriaTensor) tseg = cria_tensor_new (CRIA_DTYPE_I32, 2, ss);
  gint32 *seg = tseg->data;
  for (gint64 b = 0; b < s->B; b++) {
    gint32 id = 0;
    for (gint64 j = 0; j < s->Tk; j++) {
      if (s->segments == 1 && j > 0 && g_rand_int_range (rand, 0, 40) == 0)
        id++;
      seg[b * s->Tk + j] = s->segments == 2 ? (gint32) ((j / 3 + b) % 2) : id;
    }
  }
  CriaGraph *g = cria_graph_new ();
  CriaNode *q = cria_graph_param (g, "q", tq, TRUE), *k = cria_graph_param (g, "k", tk, TRUE);
  CriaNode *v = cria_graph_param (g, "v", tv, TRUE);
  CriaNode *segs = NULL;
  if (s->segments) {
    segs = cria_graph_input (g, "segments", CRIA_DTYPE_I32, 2, ss);
    g_assert (cria_node_set_value (segs, tseg, NULL));
  }
  float scale = 1.0f / sqrtf ((float) s->D);
  CriaNode *out = cria_attention_window (g, q, k, v, segs, scale, s->window);
  cria_graph_mark_output (g, out);
  CriaNode *loss = cria_matmul (g, cria_reshape (g, out, 2, flat), cria_graph_param (g, "R", tr, FALSE), FALSE, FALSE);
  cria_test_run_graph (g, loss, backend, NULL);
  res->out = copy_floats (out->value);
  res->dq = copy_floats (q->grad);
  res->dk = copy_floats (k->grad);
  res->dv = copy_floats (v->grad);
  res->n_out = n_out;
  res->n_q = n_out;
  res->n_kv = s->B * s->Tk * s->Hkv * s->D;
  cria_graph_free (g);
}

/* max |x - ref| / max |ref| */
static double
rel_err (const float *x, const float *ref, gint64 n)
{
  double err = 0, big = 0;
  for (gint64 i = 0; i < n; i++) {
    err = MAX (err, fabs ((double) x[i] - ref[i]));
    big = MAX (big, fabs ((double) ref[i]));
  }
  return big > 0 ? err / big : err;
}

static const Shape shapes[] = {
  { 1, 1, 1, 1, 1, 1, 0, 0 },       /* the smallest */
  { 2, 67, 67, 4, 2, 13, 0, 1 },    /* odd head size, packed segments */
  { 1, 130, 130, 3, 3, 64, 0, 2 },  /* segments that alternate within blocks */
  { 2, 129, 129, 2, 1, 40, 17, 0 }, /* a sliding window, GQA 2 */
  { 1, 65, 200, 14, 2, 64, 0, 1 },  /* GQA 7, a KV cache of 135 keys */
  { 3, 1, 300, 4, 2, 80, 0, 0 },    /* decoding: one query over 300 keys */
  { 1, 5, 77, 6, 6, 33, 50, 1 },    /* a window and a KV cache */
  { 1, 192, 192, 1, 1, 128, 0, 0 }, /* whole blocks, the widest head */
};

static void
test_blocked_vs_rows (void)
{
  const char *isas[] = { "avx512", "avx2", "generic" };
  g_autoptr (CriaBackend) rows = make_backend ("auto", "rows", "3");
  g_assert (rows);
  for (guint c = 0; c < G_N_ELEMENTS (shapes); c++) {
    const Shape *s = &shapes[c];
    Result ref = { 0 };
    run_case (s, rows, &ref);
    for (guint i = 0; i < G_N_ELEMENTS (isas); i++) {
      g_autoptr (CriaBackend) blocked = make_backend (isas[i], "blocked", "3");
      if (!blocked)
        continue; /* the processor lacks it */
      Result got = { 0 };
      run_case (s, blocked, &got);
      double e[] = { rel_err (got.out, ref.out, ref.n_out), rel_err (got.dq, ref.dq, ref.n_q),
                     rel_err (got.dk, ref.dk, ref.n_kv), rel_err (got.dv, ref.dv, ref.n_kv) };
      for (int t = 0; t < 4; t++) {
        if (e[t] > 1e-5)
          printf ("\ncase %u %s: %s off by %g", c, isas[i], (const char *[]){ "out", "dq", "dk", "dv" }[t], e[t]);
        CU_ASSERT (e[t] <= 1e-5);
      }
      result_clear (&got);
    }
    result_clear (&ref);
  }
}

static void
test_threads_bitwise (void)
{
  g_autoptr (CriaBackend) one = make_backend ("auto", "blocked", "1");
  g_autoptr (CriaBackend) three = make_backend ("auto", "blocked", "3");
  for (guint c = 1; c < G_N_ELEMENTS (shapes); c += 3) {
    Result a = { 0 }, b = { 0 };
    run_case (&shapes[c], one, &a);
    run_case (&shapes[c], three, &b);
    CU_ASSERT (memcmp (a.out, b.out, (gsize) a.n_out * sizeof (float)) == 0);
    CU_ASSERT (memcmp (a.dq, b.dq, (gsize) a.n_q * sizeof (float)) == 0);
    CU_ASSERT (memcmp (a.dk, b.dk, (gsize) a.n_kv * sizeof (float)) == 0);
    CU_ASSERT (memcmp (a.dv, b.dv, (gsize) a.n_kv * sizeof (float)) == 0);
    result_clear (&a);
    result_clear (&b);
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
    { "blocked kernels equal the row kernels", test_blocked_vs_rows },
    { "the same bits at 1 and 3 threads", test_threads_bitwise },
    { NULL },
  };
  cria_test_add_suite ("attention", cases);
}

CRIA_TEST_MAIN (register_suites)
