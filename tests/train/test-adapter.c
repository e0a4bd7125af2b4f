/* test-adapter: the lora and full adapters on a hand-built network, against
 * PyTorch autograd (tests/train/lora_reference.py -> lora-golden.json), and
 * PEFT's directory layout: key names, shapes, config fields, loading back,
 * mismatches, merging.
 *
 * Gradients must agree within 1e-4 of the largest reference magnitude of
 * their tensor: elementwise relative error is meaningless for entries that
 * are zero up to rounding. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;
static JsonObject *golden;
static JsonParser *golden_parser;

typedef struct {
  gint64 V, D, B, T;
  CriaAdapterEntry entries[4];
  CriaTensor *tensors[4]; /* E, W0, b0, W1 */
  CriaGraph *g;
  CriaNode *loss;
} Net;

static CriaTensor *
golden_tensor (const char *key, int n_dims, const gint64 *shape)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  JsonArray *a = json_object_get_array_member (golden, key);
  g_assert (a && (gint64) json_array_get_length (a) == cria_tensor_numel (t));
  float *d = t->data;
  for (guint i = 0; i < json_array_get_length (a); i++)
    d[i] = (float) json_array_get_double_element (a, i);
  return t;
}

static void
net_init (Net *n)
{
  memset (n, 0, sizeof *n);
  n->V = json_object_get_int_member (golden, "V");
  n->D = json_object_get_int_member (golden, "D");
  n->B = json_object_get_int_member (golden, "B");
  n->T = json_object_get_int_member (golden, "T");
  n->tensors[0] = golden_tensor ("E", 2, (gint64[]){ n->V, n->D });
  n->tensors[1] = golden_tensor ("W0", 2, (gint64[]){ n->D, n->D });
  n->tensors[2] = golden_tensor ("b0", 1, (gint64[]){ n->D });
  n->tensors[3] = golden_tensor ("W1", 2, (gint64[]){ n->D, n->D });
  static const char *const names[] = { "embed.weight", "layers.0.proj.weight", "layers.0.proj.bias",
                                       "layers.1.proj.weight" };
  for (int i = 0; i < 4; i++)
    n->entries[i] = (CriaAdapterEntry){ .name = names[i], .tensor = n->tensors[i], .linear = i == 1 || i == 3 };
}

static void
net_clear (Net *n)
{
  for (int i = 0; i < 4; i++)
    cria_tensor_unref (n->tensors[i]);
  cria_graph_free (n->g);
}

static CriaNode *
ints_input (CriaGraph *g, const char *key, int n_dims, const gint64 *shape)
{
  CriaNode *node = cria_graph_input (g, key, CRIA_DTYPE_I32, n_dims, shape);
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_I32, n_dims, shape);
  JsonArray *a = json_object_get_array_member (golden, key);
  for (guint i = 0; i < json_array_get_length (a); i++)
    ((gint32 *) t->data)[i] = (gint32) json_array_get_int_element (a, i);
  g_assert (cria_node_set_value (node, t, NULL));
  return node;
}

/* The entry's tensor, or what the adapter replaced it with (then trainable). */
static CriaNode *
entry_param (CriaGraph *g, CriaAdapterEntry *e)
{
  return cria_graph_param (g, e->name, e->replacement ? e->replacement : e->tensor, e->replacement_trainable);
}

/* Builds, plans and runs forward and backward; the adapter may be NULL. */
static float
net_run (Net *n, CriaAdapter *adapter)
{
  g_autoptr (GError) error = NULL;
  cria_graph_free (n->g);
  CriaGraph *g = n->g = cria_graph_new ();
  if (adapter)
    cria_adapter_install (adapter, g);
  gint64 bt[] = { n->B, n->T }, flat_n[] = { n->B * n->T }, flat_nd[] = { n->B * n->T, n->D };
  CriaNode *ids = ints_input (g, "ids", 2, bt);
  CriaNode *emb = entry_param (g, &n->entries[0]);
  CriaNode *x = cria_embedding (g, ids, emb);
  CriaNode *h = cria_linear (g, "layers.0.proj", x, entry_param (g, &n->entries[1]), entry_param (g, &n->entries[2]));
  h = cria_gelu (g, h);
  CriaNode *y = cria_linear (g, "layers.1.proj", h, entry_param (g, &n->entries[3]), NULL);
  CriaNode *labels = ints_input (g, "labels", 1, flat_n);
  n->loss = cria_lm_head_ce (g, cria_reshape (g, y, 2, flat_nd), emb, labels, 4);
  /* Without an adapter nothing trains: forward only. */
  gboolean ok = cria_graph_check (g, &error) && (!adapter || cria_graph_backward (g, n->loss, &error)) &&
                cria_graph_plan (g, backend, NULL, &error) && cria_graph_forward (g, &error) &&
                (!adapter || cria_graph_run_backward (g, &error));
  if (!ok)
    printf ("\n%s\n", error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  return ((float *) n->loss->value->data)[0];
}

/* The gradient of a tensor: the sum over the graph's param nodes holding it. */
static CriaTensor *
grad_of (CriaGraph *g, CriaTensor *value)
{
  CriaTensor *sum = cria_tensor_new (CRIA_DTYPE_F32, value->n_dims, value->shape);
  for (guint i = 0; i < cria_graph_n_nodes (g); i++) {
    CriaNode *node = cria_graph_node (g, i);
    if (node->op != CRIA_OP_PARAM || node->value != value || !node->grad)
      continue;
    for (gint64 k = 0; k < cria_tensor_numel (value); k++)
      ((float *) sum->data)[k] += ((float *) node->grad->data)[k];
  }
  return sum;
}

static void
assert_close (const char *what, CriaTensor *got, JsonArray *want)
{
  CU_ASSERT_EQUAL_FATAL (cria_tensor_numel (got), (gint64) json_array_get_length (want));
  double scale = 0, worst = 0;
  for (guint i = 0; i < json_array_get_length (want); i++)
    scale = MAX (scale, fabs (json_array_get_double_element (want, i)));
  for (guint i = 0; i < json_array_get_length (want); i++)
    worst = MAX (worst, fabs (((float *) got->data)[i] - json_array_get_double_element (want, i)));
  if (worst > 1e-4 * scale)
    printf ("\n%s: worst difference %g against a scale of %g\n", what, worst, scale);
  CU_ASSERT_TRUE (scale > 0);
  CU_ASSERT_TRUE (worst <= 1e-4 * scale);
}

static CriaAdapter *
lora_new (const char *extra)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *spec = g_strdup_printf ("lora r=4 alpha=8 target-modules=proj bias=lora_only %s", extra);
  CriaAdapter *a = cria_adapter_new_from_spec (registry, spec, &error);
  if (!a)
    printf ("\n%s\n", error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  return a;
}

/* LoRA's A and B from the golden file instead of the seeded init (B = 0 would
 * leave A without a gradient). */
static void
set_golden_lora (CriaAdapter *a)
{
  static const char *const keys[] = { "A0", "B0", "A1", "B1" };
  GArray *params = cria_adapter_get_params (a);
  CU_ASSERT_EQUAL_FATAL (params->len, 5); /* A0 B0 A1 B1 b0 */
  for (guint i = 0; i < 4; i++) {
    CriaTensor *t = g_array_index (params, CriaAdapterParam, i).value;
    g_autoptr (CriaTensor) v = golden_tensor (keys[i], t->n_dims, t->shape);
    memcpy (t->data, v->data, cria_tensor_nbytes (t));
  }
}

static void
check_lora_case (const char *case_name, const char *extra)
{
  Net n;
  net_init (&n);
  g_autoptr (CriaAdapter) a = lora_new (extra);
  g_autoptr (GError) error = NULL;
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, &error));
  set_golden_lora (a);
  float loss = net_run (&n, a);
  JsonObject *want = json_object_get_object_member (golden, case_name);
  CU_ASSERT_DOUBLE_EQUAL (loss, json_object_get_double_member (want, "loss"),
                          1e-5 * fabs (json_object_get_double_member (want, "loss")));
  static const char *const keys[] = { "grad_A0", "grad_B0", "grad_A1", "grad_B1", "grad_b0" };
  GArray *params = cria_adapter_get_params (a);
  for (guint i = 0; i < 5; i++) {
    g_autoptr (CriaTensor) grad = grad_of (n.g, g_array_index (params, CriaAdapterParam, i).value);
    assert_close (keys[i], grad, json_object_get_array_member (want, keys[i]));
  }
  net_clear (&n);
}

static void
test_lora_gradients (void)
{
  check_lora_case ("lora", "");
}

static void
test_rslora_gradients (void)
{
  check_lora_case ("rslora", "use-rslora=true");
}

static void
test_full_gradients (void)
{
  Net n;
  net_init (&n);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (registry, "full", &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, &error));
  GArray *params = cria_adapter_get_params (a);
  CU_ASSERT_EQUAL_FATAL (params->len, 4);
  net_run (&n, a);
  static const char *const keys[] = { "grad_E", "grad_W0", "grad_b0", "grad_W1" };
  JsonObject *want = json_object_get_object_member (golden, "full");
  for (guint i = 0; i < 4; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    CU_ASSERT_EQUAL (p->decay, p->value->n_dims == 2);
    g_autoptr (CriaTensor) grad = grad_of (n.g, p->value);
    assert_close (keys[i], grad, json_object_get_array_member (want, keys[i]));
  }
  net_clear (&n);
}

static void
test_init (void)
{
  Net n;
  net_init (&n);
  g_autoptr (CriaAdapter) a = lora_new ("");
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, NULL));
  GArray *params = cria_adapter_get_params (a);
  CriaTensor *a0 = g_array_index (params, CriaAdapterParam, 0).value;
  CriaTensor *b0 = g_array_index (params, CriaAdapterParam, 1).value;
  double bound = 1.0 / sqrt ((double) n.D), max_a = 0, max_b = 0;
  for (gint64 i = 0; i < cria_tensor_numel (a0); i++)
    max_a = MAX (max_a, fabs (((float *) a0->data)[i]));
  for (gint64 i = 0; i < cria_tensor_numel (b0); i++)
    max_b = MAX (max_b, fabs (((float *) b0->data)[i]));
  CU_ASSERT_TRUE (max_a > 0 && max_a <= bound);
  CU_ASSERT_EQUAL (max_b, 0);
  /* B = 0: the adapted network starts as the base network. */
  float with = net_run (&n, a);
  float without = net_run (&n, NULL);
  CU_ASSERT_EQUAL (with, without);
  net_clear (&n);
}

static void
test_target_rules (void)
{
  CU_ASSERT_TRUE (cria_adapter_target_matches ("q_proj,v_proj", NULL, "model.layers.0.self_attn.q_proj"));
  CU_ASSERT_FALSE (cria_adapter_target_matches ("q_proj", NULL, "model.layers.0.self_attn.qq_proj"));
  CU_ASSERT_TRUE (cria_adapter_target_matches ("attn.c_attn", NULL, "transformer.h.1.attn.c_attn"));
  CU_ASSERT_TRUE (cria_adapter_target_matches ("all-linear", NULL, "model.layers.0.mlp.up_proj"));
  g_autoptr (GRegex) re = cria_adapter_target_regex (".*\\.(q|v)_proj", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (re);
  CU_ASSERT_TRUE (cria_adapter_target_matches (".*\\.(q|v)_proj", re, "model.layers.3.self_attn.v_proj"));
  CU_ASSERT_FALSE (cria_adapter_target_matches (".*\\.(q|v)_proj", re, "model.layers.3.self_attn.k_proj"));
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (cria_adapter_target_regex ("(unclosed", &error));
  CU_ASSERT_PTR_NOT_NULL (error);
}

static void
test_no_target (void)
{
  Net n;
  net_init (&n);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (registry, "lora target-modules=q_proj", &error);
  CU_ASSERT_FALSE (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, &error));
  CU_ASSERT_PTR_NOT_NULL_FATAL (error);
  CU_ASSERT_PTR_NOT_NULL (strstr (error->message, "matches no linear layer"));
  g_clear_error (&error);
  CU_ASSERT_PTR_NULL (cria_adapter_new_from_spec (registry, "lora r=0", &error));
  CU_ASSERT_PTR_NOT_NULL (error);
  net_clear (&n);
}

static void
test_peft_layout (void)
{
  Net n;
  net_init (&n);
  g_autofree char *dir = cria_test_tmpdir ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) a = lora_new ("dropout=0.1");
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, &error));
  set_golden_lora (a);
  CU_ASSERT_TRUE_FATAL (cria_adapter_save_peft (a, dir, "tiny-base", &error));

  g_autofree char *st_path = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 5);
  const CriaWeight *wa = cria_safetensors_lookup (st, "base_model.model.layers.0.proj.lora_A.weight");
  const CriaWeight *wb = cria_safetensors_lookup (st, "base_model.model.layers.1.proj.lora_B.weight");
  const CriaWeight *wbias = cria_safetensors_lookup (st, "base_model.model.layers.0.proj.bias");
  CU_ASSERT_PTR_NOT_NULL_FATAL (wa);
  CU_ASSERT_PTR_NOT_NULL_FATAL (wb);
  CU_ASSERT_PTR_NOT_NULL (wbias);
  CU_ASSERT_TRUE (wa->shape[0] == 4 && wa->shape[1] == n.D);
  CU_ASSERT_TRUE (wb->shape[0] == n.D && wb->shape[1] == 4);

  g_autofree char *cfg_path = g_build_filename (dir, "adapter_config.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, cfg_path, NULL));
  JsonObject *cfg = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "peft_type"), "LORA");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "task_type"), "CAUSAL_LM");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "base_model_name_or_path"), "tiny-base");
  CU_ASSERT_EQUAL (json_object_get_int_member (cfg, "r"), 4);
  CU_ASSERT_DOUBLE_EQUAL (json_object_get_double_member (cfg, "lora_alpha"), 8, 0);
  CU_ASSERT_DOUBLE_EQUAL (json_object_get_double_member (cfg, "lora_dropout"), 0.1, 1e-12);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "bias"), "lora_only");
  CU_ASSERT_FALSE (json_object_get_boolean_member (cfg, "use_rslora"));
  CU_ASSERT_FALSE (json_object_get_boolean_member (cfg, "fan_in_fan_out"));
  CU_ASSERT_TRUE (json_object_get_boolean_member (cfg, "init_lora_weights"));
  JsonArray *targets = json_object_get_array_member (cfg, "target_modules");
  CU_ASSERT_TRUE (targets && json_array_get_length (targets) == 1);

  /* Back in: a fresh adapter configured from the file, attached, loaded. */
  g_autoptr (CriaAdapter) b = cria_adapter_open_peft (registry, dir, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (b);
  Net m;
  net_init (&m);
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (b, m.entries, 4, NULL, 99, &error));
  CU_ASSERT_TRUE_FATAL (cria_adapter_load_peft_weights (b, dir, &error));
  GArray *pa = cria_adapter_get_params (a), *pb = cria_adapter_get_params (b);
  CU_ASSERT_EQUAL_FATAL (pa->len, pb->len);
  for (guint i = 0; i < pa->len; i++) {
    CriaTensor *ta = g_array_index (pa, CriaAdapterParam, i).value, *tb = g_array_index (pb, CriaAdapterParam, i).value;
    CU_ASSERT_EQUAL (memcmp (ta->data, tb->data, cria_tensor_nbytes (ta)), 0);
  }

  /* The same directory against a network of another width: one clear error. */
  g_autoptr (CriaAdapter) c = cria_adapter_open_peft (registry, dir, &error);
  CriaAdapterEntry narrow[2];
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 6, 6 });
  narrow[0] = (CriaAdapterEntry){ .name = "layers.0.proj.weight", .tensor = w, .linear = TRUE };
  narrow[1] = (CriaAdapterEntry){ .name = "layers.1.proj.weight", .tensor = w, .linear = TRUE };
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (c, narrow, 2, NULL, 1, &error));
  CU_ASSERT_FALSE (cria_adapter_load_peft_weights (c, dir, &error));
  CU_ASSERT_PTR_NOT_NULL_FATAL (error);
  CU_ASSERT_PTR_NOT_NULL (strstr (error->message, "the model needs [4, 6]"));
  g_clear_error (&error);

  /* Only one of the two layers in the model: the other's tensors are strays. */
  g_autoptr (CriaAdapter) d = cria_adapter_open_peft (registry, dir, &error);
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (d, m.entries, 2, NULL, 1, &error));
  CU_ASSERT_FALSE (cria_adapter_load_peft_weights (d, dir, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "matches no adapted layer"));
  g_clear_error (&error);

  /* A config that is not PEFT's. */
  cria_test_write_file (cfg_path, "{\"peft_type\": \"PROMPT_TUNING\"}");
  CU_ASSERT_PTR_NULL (cria_adapter_open_peft (registry, dir, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "field peft_type"));
  g_clear_error (&error);
  cria_test_write_file (cfg_path, "{\"peft_type\": \"LORA\", \"r\": \"eight\"}");
  CU_ASSERT_PTR_NULL (cria_adapter_open_peft (registry, dir, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "field r"));

  net_clear (&m);
  net_clear (&n);
  cria_test_rmtree (dir);
}

/* Merged weights without the adapter give the loss of base + adapter. */
static void
test_merge (void)
{
  Net n;
  net_init (&n);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) a = lora_new ("");
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (a, n.entries, 4, NULL, 7, &error));
  set_golden_lora (a);
  ((float *) n.entries[2].replacement->data)[0] += 0.25f; /* a trained bias */
  float with = net_run (&n, a);
  Net m;
  net_init (&m);
  CU_ASSERT_TRUE_FATAL (cria_adapter_merge_entries (a, m.entries, 4, &error));
  float merged = net_run (&m, NULL);
  CU_ASSERT_DOUBLE_EQUAL (merged, with, 1e-5 * fabs (with));
  CU_ASSERT_NOT_EQUAL (with, net_run (&n, NULL));
  net_clear (&m);
  net_clear (&n);
}

static void
suite_teardown (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
  g_object_unref (golden_parser);
}

static void
suite_setup (void)
{
  registry = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  backend = cria_backend_open (registry, "cpu", &error);
  g_assert (backend);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", "lora-golden.json", NULL);
  golden_parser = json_parser_new ();
  g_assert (json_parser_load_from_file (golden_parser, path, NULL));
  golden = json_node_get_object (json_parser_get_root (golden_parser));
  atexit (suite_teardown);
}

static void
register_suites (void)
{
  suite_setup ();
  static const CriaTestCase cases[] = {
    { "lora gradients = torch", test_lora_gradients },
    { "rslora gradients = torch", test_rslora_gradients },
    { "full fine-tuning gradients = torch", test_full_gradients },
    { "PEFT init: uniform A, zero B", test_init },
    { "target_modules rules", test_target_rules },
    { "targets matching nothing", test_no_target },
    { "PEFT directory: keys, shapes, config, load, mismatch", test_peft_layout },
    { "merge = base + adapter", test_merge },
    { NULL },
  };
  cria_test_add_suite ("adapter", cases);
}

CRIA_TEST_MAIN (register_suites)
