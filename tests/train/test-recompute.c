/* test-recompute: activation recomputation (cria train --recompute) gives
 * the gradients of the plain backward pass bit for bit, and plans less
 * activation memory.
 *
 * Recomputing runs the same kernels on the same inputs with the same thread
 * count, so the loss and every parameter gradient must be the same bits, not
 * merely close: that is what is checked, on the tiny GPT-2, LLaMA, Qwen2 and
 * Mistral (sliding window) checkpoints, with LoRA (dropout on, so the
 * recomputed masks must match) and with full fine-tuning, on a packed batch.
 * The gradients of the plain pass are themselves checked against PyTorch by
 * test-model-grads. A hand-built graph covers values read across blocks,
 * which must be kept rather than recomputed. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;

#define B 2
#define T 16

typedef struct {
  double loss;
  gsize arena;
  GPtrArray *grads; /* f32 copies, one per trainable param node, in node order */
} Result;

static void
result_clear (Result *r)
{
  g_clear_pointer (&r->grads, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Result, result_clear)

static CriaTensor *
i32_tensor (const gint32 *v)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ B, T });
  memcpy (t->data, v, B * T * sizeof (gint32));
  return t;
}

/* Plans and runs one forward and backward pass of the finished graph `g`. */
static void
run_graph (CriaGraph *g, CriaNode *ce, gboolean recompute, Result *r)
{
  g_autoptr (GError) error = NULL;
  CriaPlanStats stats = { 0 };
  cria_graph_set_recompute (g, recompute);
  gboolean ok = cria_graph_backward (g, ce, &error) && cria_graph_plan (g, backend, &stats, &error) &&
                cria_graph_forward (g, &error) && cria_graph_run_backward (g, &error);
  if (!ok)
    printf ("\n%s\n", error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  r->loss = ((float *) ce->value->data)[0];
  r->arena = stats.arena_bytes;
  r->grads = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  for (guint i = 0; i < cria_graph_n_nodes (g); i++) {
    CriaNode *n = cria_graph_node (g, i);
    if (n->op == CRIA_OP_PARAM && n->grad)
      g_ptr_array_add (r->grads, cria_tensor_to_f32 (n->grad));
  }
}

/* One packed batch (two samples per row, kept apart by segment ids) through
 * `model` with `spec` attached. */
static void
run_model (const char *name, const char *spec, gboolean recompute, Result *r)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) model = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, &error);
  g_autoptr (CriaAdapter) a = model ? cria_adapter_new_from_spec (registry, spec, &error) : NULL;
  if (!a || !cria_adapter_attach (a, model, 7, &error))
    printf ("\n%s: %s\n", name, error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  /* B = 0 at init would give A no gradient: start from a small B */
  GArray *params = cria_adapter_get_params (a);
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    if (strstr (p->name, "lora_B"))
      for (gint64 k = 0; k < cria_tensor_numel (p->value); k++)
        ((float *) p->value->data)[k] = 0.01f * (float) ((k * 37 + i) % 11 - 5);
  }
  cria_adapter_set_training (a, TRUE, 3);
  g_autoptr (CriaGraph) g = cria_graph_new ();
  cria_adapter_install (a, g);
  CriaModelShape shape = { .batch = B, .seq = T, .segments = TRUE };
  CriaModelGraph mg;
  CU_ASSERT_TRUE_FATAL (cria_model_build (model, g, &shape, &mg, &error));
  CU_ASSERT_TRUE (cria_graph_n_blocks (g) == (guint) cria_model_get_config (model)->n_layers);
  gint64 flat[] = { B * T, cria_model_get_config (model)->hidden_size }, n[] = { B * T };
  CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
  CriaNode *ce = cria_lm_head_ce (g, cria_reshape (g, mg.hidden, 2, flat), mg.head, labels, 100);
  gint32 ids[B * T], pos[B * T], seg[B * T], lab[B * T];
  for (int i = 0; i < B * T; i++) {
    int t = i % T, first = t < 5 + i / T * 4;
    ids[i] = (i * 89 + 11) % 256;
    pos[i] = first ? t : t - (5 + i / T * 4);
    seg[i] = first ? 1 : 2;
    lab[i] = t == T - 1 || t % 7 == 3 ? CRIA_IGNORE_INDEX : (i * 53 + 5) % 256;
  }
  g_autoptr (CriaTensor) tid = i32_tensor (ids);
  g_autoptr (CriaTensor) tpos = i32_tensor (pos);
  g_autoptr (CriaTensor) tseg = i32_tensor (seg);
  g_autoptr (CriaTensor) tlab = cria_tensor_new (CRIA_DTYPE_I32, 1, n);
  memcpy (tlab->data, lab, sizeof lab);
  CU_ASSERT_TRUE_FATAL (cria_node_set_value (mg.ids, tid, &error) && cria_node_set_value (mg.positions, tpos, &error) &&
                        cria_node_set_value (mg.segments, tseg, &error) && cria_node_set_value (labels, tlab, &error));
  cria_model_graph_clear (&mg);
  run_graph (g, ce, recompute, r);
}

static void
assert_same (const char *what, Result *plain, Result *re)
{
  CU_ASSERT_TRUE (isfinite (plain->loss));
  if (memcmp (&plain->loss, &re->loss, sizeof (double)) != 0)
    printf ("\n%s: loss %.9g, recomputed %.9g\n", what, plain->loss, re->loss);
  CU_ASSERT_TRUE (memcmp (&plain->loss, &re->loss, sizeof (double)) == 0);
  CU_ASSERT_EQUAL_FATAL (plain->grads->len, re->grads->len);
  guint differ = 0;
  gboolean nonzero = FALSE;
  for (guint i = 0; i < plain->grads->len; i++) {
    CriaTensor *a = g_ptr_array_index (plain->grads, i), *b = g_ptr_array_index (re->grads, i);
    differ += memcmp (a->data, b->data, cria_tensor_nbytes (a)) != 0;
    for (gint64 k = 0; k < cria_tensor_numel (a); k++)
      nonzero |= ((float *) a->data)[k] != 0.0f;
  }
  if (differ)
    printf ("\n%s: %u of %u gradients differ\n", what, differ, plain->grads->len);
  CU_ASSERT_EQUAL (differ, 0);
  CU_ASSERT_TRUE (nonzero);
  if (re->arena >= plain->arena)
    printf ("\n%s: %zu bytes planned with recomputation, %zu without\n", what, re->arena, plain->arena);
  CU_ASSERT_TRUE (re->arena < plain->arena);
}

static void
check_model (const char *name, const char *spec)
{
  g_auto (Result) plain = { 0 };
  g_auto (Result) re = { 0 };
  run_model (name, spec, FALSE, &plain);
  run_model (name, spec, TRUE, &re);
  g_autofree char *what = g_strdup_printf ("%s, %s", name, spec);
  assert_same (what, &plain, &re);
}

#define LORA "lora r=4 alpha=8 target-modules=all-linear dropout=0.2"

static void
test_gpt2_lora (void)
{
  check_model ("tiny-gpt2", "lora r=4 alpha=8 target-modules=c_attn,c_proj,c_fc dropout=0.2");
}

static void
test_llama_lora (void)
{
  check_model ("tiny-llama", LORA);
}

static void
test_qwen2_lora (void)
{
  check_model ("tiny-qwen2", LORA);
}

static void
test_mistral_lora (void)
{
  check_model ("tiny-mistral", LORA);
}

static void
test_llama_full (void)
{
  check_model ("tiny-llama", "full");
}

static void
test_gpt2_full (void)
{
  check_model ("tiny-gpt2", "full");
}

/* Two blocks where the second reads an inner value of the first: that value
 * crosses blocks and must be kept, the rest of the first block recomputed. */
static void
build_crossing (CriaGraph *g, CriaTensor *w, CriaTensor *head, CriaTensor *x, CriaTensor *labels, CriaNode **ce)
{
  g_autoptr (GError) error = NULL;
  CriaNode *in = cria_graph_input (g, "x", CRIA_DTYPE_F32, 2, (gint64[]){ 6, 8 });
  CriaNode *wn = cria_graph_param (g, "w", w, TRUE);
  cria_graph_begin_block (g);
  CriaNode *h1 = cria_matmul (g, in, wn, FALSE, TRUE);
  CriaNode *s1 = cria_silu (g, h1);
  CriaNode *r1 = cria_add (g, in, cria_gelu (g, s1));
  cria_graph_begin_block (g);
  CriaNode *h2 = cria_matmul (g, r1, wn, FALSE, TRUE);
  CriaNode *r2 = cria_add (g, r1, cria_mul (g, cria_softmax (g, h2), h1));
  cria_graph_end_block (g);
  CriaNode *lab = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, (gint64[]){ 6 });
  *ce = cria_lm_head_ce (g, r2, cria_graph_param (g, "head", head, TRUE), lab, 3);
  CU_ASSERT_EQUAL (cria_graph_n_blocks (g), 2);
  CU_ASSERT_TRUE_FATAL (cria_graph_check (g, &error) && cria_node_set_value (in, x, &error) &&
                        cria_node_set_value (lab, labels, &error));
}

static void
test_crossing_blocks (void)
{
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 8, 8 });
  g_autoptr (CriaTensor) head = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 5, 8 });
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 6, 8 });
  g_autoptr (CriaTensor) labels = cria_tensor_new (CRIA_DTYPE_I32, 1, (gint64[]){ 6 });
  for (int i = 0; i < 64; i++)
    ((float *) w->data)[i] = 0.05f * (float) ((i * 29) % 13 - 6);
  for (int i = 0; i < 40; i++)
    ((float *) head->data)[i] = 0.1f * (float) ((i * 7) % 9 - 4);
  for (int i = 0; i < 48; i++)
    ((float *) x->data)[i] = 0.2f * (float) ((i * 17) % 11 - 5);
  for (int i = 0; i < 6; i++)
    ((gint32 *) labels->data)[i] = i == 2 ? CRIA_IGNORE_INDEX : i % 5;
  g_auto (Result) plain = { 0 };
  g_auto (Result) re = { 0 };
  CriaNode *ce;
  g_autoptr (CriaGraph) g1 = cria_graph_new ();
  build_crossing (g1, w, head, x, labels, &ce);
  run_graph (g1, ce, FALSE, &plain);
  g_autoptr (CriaGraph) g2 = cria_graph_new ();
  build_crossing (g2, w, head, x, labels, &ce);
  run_graph (g2, ce, TRUE, &re);
  /* A second pass through the same plan: the forward buffers are used again. */
  g_autoptr (GError) error = NULL;
  cria_graph_zero_grad (g2);
  CU_ASSERT_TRUE (cria_graph_forward (g2, &error) && cria_graph_run_backward (g2, &error));
  g_auto (Result) again = { 0 };
  again.loss = ((float *) ce->value->data)[0];
  CU_ASSERT_TRUE (memcmp (&again.loss, &plain.loss, sizeof (double)) == 0);
  CU_ASSERT_EQUAL_FATAL (plain.grads->len, 2);
  for (guint i = 0, k = 0; i < cria_graph_n_nodes (g2); i++) {
    CriaNode *n = cria_graph_node (g2, i);
    if (n->op == CRIA_OP_PARAM && n->grad) {
      CriaTensor *want = g_ptr_array_index (plain.grads, k++);
      CU_ASSERT_TRUE (memcmp (want->data, n->grad->data, cria_tensor_nbytes (want)) == 0);
    }
  }
  /* the graph is too small for a saving: only the bits are compared */
  re.arena = 0;
  assert_same ("crossing blocks", &plain, &re);
}

static void
teardown (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
}

static void
register_suites (void)
{
  registry = cria_test_registry ();
  g_autoptr (CriaProps) props = NULL;
  const CriaProvider *cpu = cria_registry_require (registry, CRIA_KIND_BACKEND, "cpu", NULL);
  g_assert (cpu);
  props = cria_provider_new_props (cpu);
  /* a fixed thread count: the kernels are then deterministic */
  g_assert (cria_props_set (props, "threads", "2", NULL));
  backend = cria_backend_new (cpu, props, NULL);
  g_assert (backend);
  atexit (teardown);
  static const CriaTestCase cases[] = {
    { "gpt2 lora: recomputed = plain, bit for bit", test_gpt2_lora },
    { "llama lora: recomputed = plain", test_llama_lora },
    { "qwen2 lora: recomputed = plain", test_qwen2_lora },
    { "mistral lora: recomputed = plain", test_mistral_lora },
    { "gpt2 full: recomputed = plain", test_gpt2_full },
    { "llama full: recomputed = plain", test_llama_full },
    { "values read across blocks are kept", test_crossing_blocks },
    { NULL },
  };
  cria_test_add_suite ("recompute", cases);
}

CRIA_TEST_MAIN (register_suites)
