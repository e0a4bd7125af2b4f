/* test-gradcheck: the backward kernel of every op against central finite
 * differences of its forward.
 *
 * Each case builds a small graph whose trainable f32 params feed one op; the
 * loss is sum(out * R) for a fixed random R (a reshape and a matmul, which
 * are themselves checked), or the op's own loss for lm_head_ce. For every
 * element e of every param, (L(e + h) - L(e - h)) / 2h with h = 1e-2 must
 * match the analytic gradient within 5e-3 + 2e-2 |grad|: f32 forward passes
 * leave about 1e-5 |L| / h of rounding in the difference and the O(h^2)
 * truncation of smooth ops is below 1e-3 at these sizes. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

#define H 1e-2f
#define ABS_TOL 5e-3
#define REL_TOL 2e-2

typedef struct {
  CriaGraph *g;
  GRand *rand;
  GPtrArray *params; /* CriaNode* checked */
  GPtrArray *owned;  /* CriaTensor* */
} Check;

static CriaRegistry *registry;
static CriaBackend *backend;

static void
check_init (Check *c)
{
  c->g = cria_graph_new ();
  c->rand = g_rand_new_with_seed (42);
  c->params = g_ptr_array_new ();
  c->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
}

static CriaTensor *
random_tensor (Check *c, int n_dims, const gint64 *shape)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = (float) g_rand_double_range (c->rand, -1.0, 1.0);
  g_ptr_array_add (c->owned, t);
  return t;
}

/* A trainable param of random values, checked by finite differences. */
static CriaNode *
param (Check *c, int n_dims, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  gint64 shape[] = { d0, d1, d2, d3 };
  CriaNode *n = cria_graph_param (c->g, "p", random_tensor (c, n_dims, shape), TRUE);
  g_ptr_array_add (c->params, n);
  return n;
}

static CriaNode *
ints (Check *c, int n_dims, const gint64 *shape, const gint32 *values)
{
  CriaNode *n = cria_graph_input (c->g, "ids", CRIA_DTYPE_I32, n_dims, shape);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, n_dims, shape);
  memcpy (t->data, values, cria_tensor_nbytes (t));
  g_ptr_array_add (c->owned, t);
  g_assert (cria_node_set_value (n, t, NULL));
  return n;
}

static float
run_loss (Check *c, CriaNode *loss)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = cria_graph_forward (c->g, &error);
  if (!ok)
    printf ("\nforward: %s\n", error->message);
  CU_ASSERT_TRUE (ok);
  return ((float *) loss->value->data)[0];
}

/* Adds the loss, runs forward and backward, and compares every gradient. */
static void
check_finish (Check *c, CriaNode *out, const char *what)
{
  g_autoptr (GError) error = NULL;
  CriaNode *loss = out;
  if (out && out->op != CRIA_OP_LM_HEAD_CE) {
    gint64 n = out->shape[0] * out->shape[1] * out->shape[2] * out->shape[3];
    gint64 flat[] = { 1, n }, rshape[] = { n, 1 };
    CriaNode *r = cria_graph_param (c->g, "R", random_tensor (c, 2, rshape), FALSE);
    loss = cria_matmul (c->g, cria_reshape (c->g, out, 2, flat), r, FALSE, FALSE);
  }
  gboolean ok = cria_graph_check (c->g, &error) && cria_graph_backward (c->g, loss, &error) &&
                cria_graph_plan (c->g, backend, NULL, &error) && cria_graph_forward (c->g, &error) &&
                cria_graph_run_backward (c->g, &error);
  if (!ok)
    printf ("\n%s: %s\n", what, error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  guint bad = 0, total = 0;
  double worst = 0;
  for (guint p = 0; p < c->params->len; p++) {
    CriaNode *node = g_ptr_array_index (c->params, p);
    float *v = node->value->data;
    const float *grad = node->grad->data;
    for (gint64 e = 0; e < cria_tensor_numel (node->value); e++) {
      float saved = v[e];
      v[e] = saved + H;
      float lp = run_loss (c, loss);
      v[e] = saved - H;
      float lm = run_loss (c, loss);
      v[e] = saved;
      double num = ((double) lp - lm) / (2.0 * H);
      double err = fabs (num - grad[e]);
      worst = MAX (worst, err);
      total++;
      if (err > ABS_TOL + REL_TOL * fabs (grad[e])) {
        if (bad++ < 5)
          printf ("\n%s: param %u element %" G_GINT64_FORMAT ": analytic %g, numeric %g", what, p, e, (double) grad[e],
                  num);
      }
    }
  }
  if (bad)
    printf ("\n%s: %u of %u gradients off (worst %g)\n", what, bad, total, worst);
  CU_ASSERT_EQUAL (bad, 0);
  CU_ASSERT_TRUE (total > 0);
  cria_graph_free (c->g);
  g_rand_free (c->rand);
  g_ptr_array_unref (c->params);
  g_ptr_array_unref (c->owned);
}

static void
test_matmul (void)
{
  for (int t = 0; t < 4; t++) {
    Check c;
    check_init (&c);
    gboolean ta = t & 1, tb = (t >> 1) & 1;
    CriaNode *a = ta ? param (&c, 3, 2, 5, 3, 1) : param (&c, 3, 2, 3, 5, 1);
    CriaNode *b = tb ? param (&c, 2, 4, 5, 1, 1) : param (&c, 2, 5, 4, 1, 1);
    check_finish (&c, cria_matmul (c.g, a, b, ta, tb), "matmul");
  }
  Check c; /* batched B */
  check_init (&c);
  CriaNode *a = param (&c, 3, 2, 3, 4, 1), *b = param (&c, 3, 2, 4, 3, 1);
  check_finish (&c, cria_matmul (c.g, a, b, FALSE, FALSE), "matmul batched");
}

/* The gradient with respect to x through a frozen NF4 weight (QLoRA's base
 * layers); K = 100 makes the 64-element blocks cross rows of the weight. */
static void
test_matmul_nf4 (void)
{
  for (int tb = 0; tb < 2; tb++) {
    Check c;
    check_init (&c);
    gint64 ws[] = { tb ? 5 : 100, tb ? 100 : 5 };
    g_autoptr (CriaTensor) w4 = cria_nf4_quantize (random_tensor (&c, 2, ws), "w", NULL);
    CriaNode *x = param (&c, 3, 2, 3, 100, 1);
    check_finish (&c, cria_matmul (c.g, x, cria_graph_param (c.g, "w", w4, FALSE), FALSE, tb), "matmul nf4");
  }
}

static void
test_embedding (void)
{
  Check c;
  check_init (&c);
  gint64 shape[] = { 2, 3 };
  gint32 ids[] = { 0, 4, 2, 2, 1, 4 };
  check_finish (&c, cria_embedding (c.g, ints (&c, 2, shape, ids), param (&c, 2, 5, 3, 1, 1)), "embedding");
}

static void
test_norms (void)
{
  Check c;
  check_init (&c);
  CriaNode *x = param (&c, 3, 2, 3, 6, 1);
  check_finish (&c, cria_layernorm (c.g, x, param (&c, 1, 6, 1, 1, 1), param (&c, 1, 6, 1, 1, 1), 1e-5f), "layernorm");
  check_init (&c);
  x = param (&c, 2, 4, 6, 1, 1);
  check_finish (&c, cria_rmsnorm (c.g, x, param (&c, 1, 6, 1, 1, 1), 1e-6f), "rmsnorm");
}

static void
test_rope (void)
{
  Check c;
  check_init (&c);
  gint64 ps[] = { 2, 3 }, fs[] = { 2 };
  gint32 pos[] = { 0, 1, 2, 5, 0, 1 };
  CriaNode *x = param (&c, 4, 2, 3, 2, 4);
  CriaNode *f = cria_graph_param (c.g, "inv_freq", random_tensor (&c, 1, fs), FALSE);
  check_finish (&c, cria_rope (c.g, x, ints (&c, 2, ps, pos), f), "rope");
}

static void
test_attention (void)
{
  Check c;
  check_init (&c);
  /* GQA (4 query heads on 2 KV heads), two segments in the second sequence,
   * and a KV cache case (Tq = 3 of Tk = 4) */
  gint64 ss[] = { 2, 4 };
  gint32 seg[] = { 0, 0, 0, 0, 0, 0, 1, 1 };
  CriaNode *q = param (&c, 4, 2, 3, 4, 3), *k = param (&c, 4, 2, 4, 2, 3), *v = param (&c, 4, 2, 4, 2, 3);
  check_finish (&c, cria_attention (c.g, q, k, v, ints (&c, 2, ss, seg), 0.577f), "attention");
  check_init (&c);
  q = param (&c, 4, 1, 4, 2, 2);
  k = param (&c, 4, 1, 4, 2, 2);
  v = param (&c, 4, 1, 4, 2, 2);
  check_finish (&c, cria_attention (c.g, q, k, v, NULL, 0.7f), "attention without segments");
}

static void
test_unary (void)
{
  CriaNode *(*fns[]) (CriaGraph *, CriaNode *) = { cria_gelu, cria_silu, cria_softmax };
  const char *names[] = { "gelu", "silu", "softmax" };
  for (guint i = 0; i < G_N_ELEMENTS (fns); i++) {
    Check c;
    check_init (&c);
    check_finish (&c, fns[i](c.g, param (&c, 2, 3, 5, 1, 1)), names[i]);
  }
  Check c;
  check_init (&c);
  check_finish (&c, cria_swiglu (c.g, param (&c, 2, 3, 4, 1, 1), param (&c, 2, 3, 4, 1, 1)), "swiglu");
  check_init (&c);
  check_finish (&c, cria_scale (c.g, param (&c, 2, 3, 4, 1, 1), -1.5f), "scale");
  check_init (&c);
  check_finish (&c, cria_dropout (c.g, param (&c, 2, 4, 5, 1, 1), 0.3f, 7), "dropout");
}

static void
test_binary (void)
{
  for (int op = 0; op < 2; op++) {
    Check c;
    check_init (&c);
    CriaNode *a = param (&c, 3, 2, 3, 4, 1), *b = param (&c, 1, 4, 1, 1, 1);
    check_finish (&c, op ? cria_mul (c.g, a, b) : cria_add (c.g, a, b), op ? "mul" : "add");
    check_init (&c);
    a = param (&c, 2, 3, 4, 1, 1);
    b = param (&c, 2, 3, 4, 1, 1);
    check_finish (&c, op ? cria_mul (c.g, a, b) : cria_add (c.g, a, b), op ? "mul same" : "add same");
  }
}

static void
test_shapes (void)
{
  Check c;
  check_init (&c);
  int perm[] = { 2, 0, 3, 1 };
  check_finish (&c, cria_permute (c.g, param (&c, 4, 2, 3, 2, 2), perm), "permute");
  check_init (&c);
  check_finish (&c, cria_concat (c.g, param (&c, 3, 2, 2, 3, 1), param (&c, 3, 2, 1, 3, 1), 1), "concat");
  check_init (&c);
  check_finish (&c, cria_slice (c.g, param (&c, 3, 2, 5, 3, 1), 1, 1, 3), "slice");
  check_init (&c);
  /* a node read twice: its gradient accumulates from both consumers */
  CriaNode *x = param (&c, 2, 3, 4, 1, 1);
  check_finish (&c, cria_mul (c.g, cria_gelu (c.g, x), x), "two consumers");
}

static void
test_lm_head_ce (void)
{
  Check c;
  check_init (&c);
  gint64 ls[] = { 5 };
  gint32 labels[] = { 3, -100, 0, 6, -100 };
  CriaNode *h = param (&c, 2, 5, 4, 1, 1), *w = param (&c, 2, 7, 4, 1, 1);
  /* a chunk of 3 splits the vocabulary of 7 unevenly */
  check_finish (&c, cria_lm_head_ce (c.g, h, w, ints (&c, 1, ls, labels), 3), "lm_head_ce");
  /* Two heads on one weight: a backend that keeps a forward's logits for
   * its backward (cpu) meets the other head's forward in between. */
  check_init (&c);
  gint32 labels2[] = { 1, 2, -100, 5, 4 };
  h = param (&c, 2, 5, 4, 1, 1);
  w = param (&c, 2, 7, 4, 1, 1);
  CriaNode *h2 = param (&c, 2, 5, 4, 1, 1);
  CriaNode *ce1 = cria_lm_head_ce (c.g, h, w, ints (&c, 1, ls, labels), 3);
  CriaNode *ce2 = cria_lm_head_ce (c.g, h2, w, ints (&c, 1, ls, labels2), 7);
  check_finish (&c, cria_add (c.g, cria_slice (c.g, ce1, 0, 0, 1), cria_slice (c.g, ce2, 0, 0, 1)), "two lm_head_ce");
}

static void
test_every_op_covered (void)
{
  /* Keeps this file honest when an op is added to the enum. */
  CU_ASSERT_EQUAL (CRIA_N_OPS, 22); /* dequantize has no gradient: nothing to check */
}

static void
cleanup (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
}

static void
register_suites (void)
{
  atexit (cleanup);
  registry = cria_test_registry ();
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_assert (cria_props_set (props, "threads", "3", NULL));
  backend = cria_backend_new (p, props, NULL);
  g_assert (backend);
  static const CriaTestCase cases[] = {
    { "matmul", test_matmul },
    { "matmul with an nf4 weight", test_matmul_nf4 },
    { "embedding", test_embedding },
    { "layernorm and rmsnorm", test_norms },
    { "rope", test_rope },
    { "attention", test_attention },
    { "gelu, silu, softmax, swiglu, scale, dropout", test_unary },
    { "add and mul", test_binary },
    { "permute, concat, slice, reshape", test_shapes },
    { "lm_head_ce", test_lm_head_ce },
    { "every op covered", test_every_op_covered },
    { NULL },
  };
  cria_test_add_suite ("gradcheck", cases);
}

CRIA_TEST_MAIN (register_suites)
