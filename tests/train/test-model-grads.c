/* test-model-grads: LoRA and full fine-tuning gradients of one batch through
 * the tiny GPT-2, LLaMA, Qwen2 and Qwen3 checkpoints, against PyTorch autograd over
 * the reference architectures (tests/train/model_grads_reference.py ->
 * grads-NAME.safetensors).
 *
 * Each gradient tensor must agree within 1e-4 of its largest reference
 * magnitude, and the summed loss within 1e-5 relative. The adapter is
 * attached through the model's parameter table and the linear hook, as in
 * training; A and B come from the golden file (B = 0 at init would leave A
 * without a gradient). */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;

typedef struct {
  const char *name;
  const char *targets;
} ModelCase;

static const ModelCase model_cases[] = {
  { "tiny-gpt2", "attn.c_attn,c_proj" },
  { "tiny-llama", "q_proj,v_proj,down_proj" },
  { "tiny-qwen2", "q_proj,v_proj,down_proj" },
  { "tiny-qwen3", "q_proj,v_proj,down_proj" },
};

static CriaSafetensors *
open_golden (const char *model)
{
  g_autofree char *file = g_strdup_printf ("grads-%s.safetensors", model);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", file, NULL);
  g_autoptr (GError) error = NULL;
  CriaSafetensors *st = cria_safetensors_open (path, &error);
  if (!st)
    printf ("\n%s\n", error->message);
  return st;
}

static CriaModel *
open_model (const char *name)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (GError) error = NULL;
  CriaModel *m = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, &error);
  if (!m)
    printf ("\n%s\n", error->message);
  return m;
}

static CriaTensor *
golden_i32 (CriaSafetensors *st, const char *key)
{
  const CriaWeight *w = cria_safetensors_lookup (st, key);
  g_assert (w && w->dtype == CRIA_DTYPE_I32);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, 1, (gint64[]){ w->n_elements });
  memcpy (t->data, w->data, w->n_bytes);
  return t;
}

/* Runs forward and backward of the golden batch; returns the summed loss. */
static double
run_batch (CriaModel *model, CriaAdapter *adapter, CriaSafetensors *st, CriaGraph *g)
{
  g_autoptr (GError) error = NULL;
  cria_adapter_install (adapter, g);
  CriaModelShape shape = { .batch = 2, .seq = 8 };
  CriaModelGraph mg;
  gboolean ok = cria_model_build (model, g, &shape, &mg, &error);
  CU_ASSERT_TRUE_FATAL (ok);
  gint64 flat[] = { 16, cria_model_get_config (model)->hidden_size }, n[] = { 16 };
  CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
  CriaNode *ce = cria_lm_head_ce (g, cria_reshape (g, mg.hidden, 2, flat), mg.head, labels, 100);
  g_autoptr (CriaTensor) ids = golden_i32 (st, "ids");
  g_autoptr (CriaTensor) lab = golden_i32 (st, "labels");
  g_autoptr (CriaTensor) ids2 = cria_tensor_new_borrowed (CRIA_DTYPE_I32, 2, (gint64[]){ 2, 8 }, ids->data, NULL, NULL);
  g_autoptr (CriaTensor) pos = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ 2, 8 });
  for (int i = 0; i < 16; i++)
    ((gint32 *) pos->data)[i] = i % 8;
  ok = cria_graph_backward (g, ce, &error) && cria_graph_plan (g, backend, NULL, &error) &&
       cria_node_set_value (mg.ids, ids2, &error) && cria_node_set_value (mg.positions, pos, &error) &&
       cria_node_set_value (labels, lab, &error) && cria_graph_forward (g, &error) &&
       cria_graph_run_backward (g, &error);
  if (!ok)
    printf ("\n%s\n", error->message);
  cria_model_graph_clear (&mg);
  CU_ASSERT_TRUE_FATAL (ok);
  return ((float *) ce->value->data)[0];
}

static void
assert_grad (CriaGraph *g, CriaTensor *value, CriaSafetensors *st, const char *key)
{
  const CriaWeight *w = cria_safetensors_lookup (st, key);
  if (!w)
    printf ("\nno golden %s\n", key);
  CU_ASSERT_PTR_NOT_NULL_FATAL (w);
  gint64 n = cria_tensor_numel (value);
  CU_ASSERT_EQUAL_FATAL (n, w->n_elements);
  g_autofree float *sum = g_new0 (float, n);
  for (guint i = 0; i < cria_graph_n_nodes (g); i++) {
    CriaNode *node = cria_graph_node (g, i);
    if (node->op == CRIA_OP_PARAM && node->value == value && node->grad)
      for (gint64 k = 0; k < n; k++)
        sum[k] += ((float *) node->grad->data)[k];
  }
  const float *want = w->data;
  double scale = 0, worst = 0;
  for (gint64 k = 0; k < n; k++)
    scale = MAX (scale, fabs (want[k]));
  for (gint64 k = 0; k < n; k++)
    worst = MAX (worst, fabs (sum[k] - want[k]));
  if (worst > 1e-4 * scale)
    printf ("\n%s: worst difference %g against a scale of %g\n", key, worst, scale);
  CU_ASSERT_TRUE (worst <= 1e-4 * scale);
}

static void
check_loss (double got, CriaSafetensors *st, const char *key)
{
  double want = ((const float *) cria_safetensors_lookup (st, key)->data)[0];
  if (fabs (got - want) > 1e-5 * fabs (want))
    printf ("\n%s: %.9g, torch %.9g\n", key, got, want);
  CU_ASSERT_TRUE (fabs (got - want) <= 1e-5 * fabs (want));
}

static void
check_lora (const ModelCase *mc)
{
  g_autoptr (CriaSafetensors) st = open_golden (mc->name);
  g_autoptr (CriaModel) model = open_model (mc->name);
  CU_ASSERT_TRUE_FATAL (st && model);
  g_autoptr (GError) error = NULL;
  g_autofree char *spec = g_strdup_printf ("lora r=4 alpha=8 target-modules=%s", mc->targets);
  g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (registry, spec, &error);
  CU_ASSERT_TRUE_FATAL (a && cria_adapter_attach (a, model, 1, &error));
  GArray *params = cria_adapter_get_params (a);
  CU_ASSERT_TRUE (params->len >= 8);
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    const CriaWeight *w = cria_safetensors_lookup (st, p->name);
    if (!w)
      printf ("\nno golden %s\n", p->name);
    CU_ASSERT_TRUE_FATAL (w && w->n_elements == cria_tensor_numel (p->value));
    memcpy (p->value->data, w->data, w->n_bytes);
  }
  g_autoptr (CriaGraph) g = cria_graph_new ();
  check_loss (run_batch (model, a, st, g), st, "loss_lora");
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    g_autofree char *key = g_strconcat ("grad_lora.", p->name, NULL);
    assert_grad (g, p->value, st, key);
  }
}

static void
check_full (const ModelCase *mc)
{
  g_autoptr (CriaSafetensors) st = open_golden (mc->name);
  g_autoptr (CriaModel) model = open_model (mc->name);
  CU_ASSERT_TRUE_FATAL (st && model);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (registry, "full", &error);
  CU_ASSERT_TRUE_FATAL (a && cria_adapter_attach (a, model, 1, &error));
  GArray *params = cria_adapter_get_params (a);
  CU_ASSERT_EQUAL (params->len, cria_model_get_n_params (model));
  g_autoptr (CriaGraph) g = cria_graph_new ();
  check_loss (run_batch (model, a, st, g), st, "loss_full");
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    g_autofree char *key = g_strconcat ("grad_full.", p->name, NULL);
    assert_grad (g, p->value, st, key);
  }
}

static void
test_lora_gpt2 (void)
{
  check_lora (&model_cases[0]);
}
static void
test_lora_llama (void)
{
  check_lora (&model_cases[1]);
}
static void
test_lora_qwen2 (void)
{
  check_lora (&model_cases[2]);
}

static void
test_lora_qwen3 (void)
{
  check_lora (&model_cases[3]);
}
static void
test_full_gpt2 (void)
{
  check_full (&model_cases[0]);
}
static void
test_full_llama (void)
{
  check_full (&model_cases[1]);
}
static void
test_full_qwen2 (void)
{
  check_full (&model_cases[2]);
}

static void
test_full_qwen3 (void)
{
  check_full (&model_cases[3]);
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
  backend = cria_backend_open (registry, "cpu", NULL);
  g_assert (backend);
  atexit (teardown);
  static const CriaTestCase cases[] = {
    { "gpt2 lora = torch", test_lora_gpt2 },
    { "llama lora = torch", test_lora_llama },
    { "qwen2 lora = torch", test_lora_qwen2 },
    { "qwen3 lora = torch", test_lora_qwen3 },
    { "gpt2 full = torch", test_full_gpt2 },
    { "llama full = torch", test_full_llama },
    { "qwen2 full = torch", test_full_qwen2 },
    { "qwen3 full = torch", test_full_qwen3 },
    { NULL },
  };
  cria_test_add_suite ("model gradients", cases);
}

CRIA_TEST_MAIN (register_suites)
