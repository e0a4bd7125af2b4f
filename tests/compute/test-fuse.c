/* test-fuse: matmul epilogues (the cpu backend's fuse=true: a linear
 * layer's bias, GELU/SiLU and residual add computed on each block of the
 * product) against the same graphs run op by op (fuse=false): the loss, every
 * output and every gradient must be the same bits, on every instruction set,
 * with sizes that leave partial tiles and panels, few rows (the dot-product
 * path), and with activation recomputation. The plan must have fused what it
 * can and nothing it cannot (a node read twice, an operand computed after
 * the product, an output). */
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;

static CriaBackend *
make_backend (const char *isa, gboolean fuse)
{
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_BACKEND, "cpu");
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_assert (cria_props_set (props, "threads", "3", NULL));
  g_assert (cria_props_set (props, "isa", isa, NULL));
  g_assert (cria_props_set (props, "fuse", fuse ? "true" : "false", NULL));
  return cria_backend_new (p, props, NULL); /* NULL when the processor lacks the ISA */
}

typedef enum {
  CHAIN_GELU_RESIDUAL,
  CHAIN_SILU,
  CHAIN_READ_TWICE,
  CHAIN_LATE_OPERAND,
  CHAIN_OUTPUT,
  CHAIN_NO_BIAS
} Chain;

typedef struct {
  gint64 B, T, K, N;
} Size;

static CriaTensor *
random_tensor (GRand *rand, int n_dims, const gint64 *shape)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    ((float *) t->data)[i] = (float) g_rand_double_range (rand, -2, 2);
  return t;
}

typedef struct {
  CriaGraph *g;
  CriaNode *mm, *loss, *out;
  CriaNode *params[5];
  int n_params;
  CriaTensor *tensors[6];
} Built;

static void
built_clear (Built *b)
{
  cria_graph_free (b->g);
  for (int i = 0; i < 6; i++)
    cria_tensor_unref (b->tensors[i]);
}

/* loss = sum(out * R) after the chain on y = x w^T + b */
static void
build (Built *b, const Size *s, Chain chain, gboolean recompute)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32) (s->B * 1000 + s->K * 10 + s->N));
  gint64 xs[] = { s->B, s->T, s->K }, ws[] = { s->N, s->K }, bs[] = { s->N }, ys[] = { s->B, s->T, s->N };
  gint64 flat[] = { 1, s->B * s->T * s->N }, rs[] = { s->B * s->T * s->N, 1 };
  memset (b, 0, sizeof *b);
  b->tensors[0] = random_tensor (rand, 3, xs);
  b->tensors[1] = random_tensor (rand, 2, ws);
  b->tensors[2] = random_tensor (rand, 1, bs);
  b->tensors[3] = random_tensor (rand, 3, ys);
  b->tensors[4] = random_tensor (rand, 2, rs);
  b->tensors[5] = random_tensor (rand, 2, ws);
  CriaGraph *g = b->g = cria_graph_new ();
  cria_graph_set_recompute (g, recompute);
  CriaNode *x = cria_graph_param (g, "x", b->tensors[0], TRUE);
  CriaNode *w = cria_graph_param (g, "w", b->tensors[1], TRUE);
  CriaNode *bias = cria_graph_param (g, "b", b->tensors[2], TRUE);
  CriaNode *res = cria_graph_param (g, "res", b->tensors[3], TRUE);
  CriaNode *w2 = cria_graph_param (g, "w2", b->tensors[5], TRUE);
  CriaNode *r = cria_graph_input (g, "R", CRIA_DTYPE_F32, 2, rs);
  g_assert (cria_node_set_value (r, b->tensors[4], NULL));
  b->params[0] = x;
  b->params[1] = w;
  b->params[2] = bias;
  b->params[3] = res;
  b->params[4] = w2;
  b->n_params = 5;
  cria_graph_begin_block (g);
  CriaNode *h = cria_scale (g, res, 0.5f); /* computed before the product */
  CriaNode *y = cria_linear (g, "fc", x, w, chain == CHAIN_NO_BIAS ? NULL : bias);
  b->mm = cria_graph_find (g, "fc");
  CriaNode *out = NULL;
  switch (chain) {
    case CHAIN_GELU_RESIDUAL:
      out = cria_add (g, h, cria_gelu (g, y));
      break;
    case CHAIN_SILU:
      out = cria_silu (g, y);
      break;
    case CHAIN_READ_TWICE: /* the bias add is read by two nodes: only the bias is fused */
      out = cria_mul (g, cria_gelu (g, y), y);
      break;
    case CHAIN_LATE_OPERAND: /* a LoRA-like branch computed after the product */
      out = cria_add (g, y, cria_matmul (g, x, w2, FALSE, TRUE));
      break;
    case CHAIN_OUTPUT: /* the bias add's value is an output: it ends the chain */
      out = cria_gelu (g, y);
      cria_graph_mark_output (g, y);
      out = cria_add (g, out, h);
      break;
    case CHAIN_NO_BIAS: /* gelu's backward reads the product, which the epilogue does not store */
      out = cria_gelu (g, y);
      break;
  }
  cria_graph_end_block (g);
  b->out = out;
  cria_graph_mark_output (g, out);
  b->loss = cria_matmul (g, cria_reshape (g, out, 2, flat), r, FALSE, FALSE);
  g_assert (cria_graph_check (g, NULL));
}

static void
run (Built *b, CriaBackend *be, CriaPlanStats *stats)
{
  cria_test_run_graph (b->g, b->loss, be, stats);
}

static gboolean
same (CriaTensor *a, CriaTensor *b)
{
  if (!a || !b) /* a param the chain does not use */
    return a == b;
  return cria_tensor_numel (a) == cria_tensor_numel (b) && memcmp (a->data, b->data, cria_tensor_nbytes (a)) == 0;
}

static void
check (const char *isa, CriaBackend *fused, CriaBackend *plain, const Size *s, Chain chain, gboolean recompute)
{
  /* epilogue nodes of each chain; with recomputation, a chain also ends
   * where the next node is not recomputed (an output) while the product is */
  static const int expect[2][6] = { { 3, 2, 1, 1, 1, 0 }, { 2, 1, 1, 1, 0, 0 } };
  Built a, b;
  build (&a, s, chain, recompute);
  build (&b, s, chain, recompute);
  CriaPlanStats sa = { 0 }, sb = { 0 };
  run (&a, fused, &sa);
  run (&b, plain, &sb);
  CU_ASSERT_EQUAL (a.mm->n_epilogue, expect[recompute][chain]);
  CU_ASSERT_EQUAL (b.mm->n_epilogue, 0);
  /* the product a fused matmul never stores takes no buffer of its own */
  if (a.mm->n_epilogue > 0) {
    CU_ASSERT_PTR_EQUAL (a.mm->value->data, a.mm->epilogue[0]->value->data);
    CU_ASSERT (sa.naive_bytes < sb.naive_bytes);
  }
  gboolean ok = same (a.loss->value, b.loss->value) && same (a.out->value, b.out->value);
  for (int i = 0; i < a.n_params; i++)
    ok &= same (a.params[i]->grad, b.params[i]->grad);
  if (!ok)
    printf ("\n  %s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " K=%" G_GINT64_FORMAT " N=%" G_GINT64_FORMAT
            " chain %d recompute %d differs ",
            isa, s->B, s->T, s->K, s->N, chain, recompute);
  CU_ASSERT (ok);
  built_clear (&a);
  built_clear (&b);
}

static void
test_fused_equals_plain (void)
{
  /* 37 rows: partial MR tiles and panels; 5 rows: the dot-product path */
  static const Size sizes[] = { { 1, 37, 301, 70 }, { 5, 1, 67, 45 }, { 2, 40, 48, 33 } };
  const char *isas[] = { "avx512", "avx2", "generic" };
  int ran = 0;
  for (guint i = 0; i < G_N_ELEMENTS (isas); i++) {
    g_autoptr (CriaBackend) fused = make_backend (isas[i], TRUE);
    g_autoptr (CriaBackend) plain = make_backend (isas[i], FALSE);
    if (!fused)
      continue;
    for (guint j = 0; j < G_N_ELEMENTS (sizes); j++)
      for (Chain c = CHAIN_GELU_RESIDUAL; c <= CHAIN_NO_BIAS; c++)
        for (int re = 0; re < 2; re++)
          check (isas[i], fused, plain, &sizes[j], c, re);
    ran++;
  }
  CU_ASSERT (ran > 0);
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
    { "epilogues give the bits of the ops run alone", test_fused_equals_plain },
    { NULL },
  };
  cria_test_add_suite ("fuse", cases);
}

CRIA_TEST_MAIN (register_suites)
