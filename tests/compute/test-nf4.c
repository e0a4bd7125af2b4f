/* test-nf4: NF4 quantization against tests/compute/nf4_reference.py (an
 * independent numpy implementation of bitsandbytes' algorithm), bit for bit;
 * the matmul and dequantize kernels with NF4 weights against the same
 * kernels on the dequantized f32 weight; the logits of tiny-llama and
 * tiny-gpt2 with qlora attached against those of their dequantized weights;
 * and the failure paths. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static const char *const fixtures[] = { "normal", "heavy", "zeros", "equal", "odd", "single", "nested" };

static CriaSafetensors *golden;
static CriaRegistry *registry;
static CriaBackend *backend;

static const CriaWeight *
weight (const char *fixture, const char *suffix)
{
  g_autofree char *name = g_strconcat (fixture, suffix, NULL);
  const CriaWeight *w = cria_safetensors_lookup (golden, name);
  if (!w)
    printf ("\n%s is missing from the golden file\n", name);
  CU_ASSERT_PTR_NOT_NULL_FATAL (w);
  return w;
}

/* A tensor owning a copy of a golden weight (files give no alignment). */
static CriaTensor *
tensor_of (const CriaWeight *w)
{
  gint64 shape[CRIA_MAX_DIMS];
  for (guint i = 0; i < w->n_dims; i++)
    shape[i] = w->shape[i];
  CriaTensor *t = cria_tensor_new (w->dtype, (int) w->n_dims, shape);
  memcpy (t->data, w->data, w->n_bytes);
  return t;
}

static void
assert_same_bytes (const void *a, const void *b, gsize n, const char *fixture, const char *what)
{
  gboolean same = memcmp (a, b, n) == 0;
  if (!same)
    printf ("\n%s: %s differs from the reference\n", fixture, what);
  CU_ASSERT_TRUE (same);
}

static void
test_maps (void)
{
  const CriaWeight *q = cria_safetensors_lookup (golden, "quant_map");
  const CriaWeight *d = cria_safetensors_lookup (golden, "nested_quant_map");
  CU_ASSERT_PTR_NOT_NULL_FATAL (q);
  CU_ASSERT_PTR_NOT_NULL_FATAL (d);
  assert_same_bytes (cria_nf4_quant_map (), q->data, 16 * sizeof (float), "maps", "quant_map");
  float map[256];
  cria_nf4_dynamic_map (map);
  assert_same_bytes (map, d->data, sizeof map, "maps", "nested_quant_map");
  CU_ASSERT_EQUAL (map[127], 0.0f);
  CU_ASSERT_EQUAL (map[255], 1.0f);
}

static void
test_golden (void)
{
  for (guint f = 0; f < G_N_ELEMENTS (fixtures); f++) {
    const char *name = fixtures[f];
    g_autoptr (CriaTensor) input = tensor_of (weight (name, ".input"));
    const CriaWeight *packed = weight (name, ".weight"), *absmax = weight (name, ".weight.absmax");
    const CriaWeight *nested = weight (name, ".weight.nested_absmax");
    const CriaWeight *offset = weight (name, ".weight.nested_offset"), *deq = weight (name, ".dequantized");
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaTensor) q = cria_nf4_quantize (input, name, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (q);
    CU_ASSERT_EQUAL (q->dtype, CRIA_DTYPE_NF4);
    CU_ASSERT_EQUAL (q->nf4->source_dtype, input->dtype);
    CU_ASSERT_EQUAL_FATAL (cria_tensor_nbytes (q), packed->n_bytes);
    CU_ASSERT_EQUAL_FATAL (q->nf4->n_blocks, absmax->n_elements);
    CU_ASSERT_EQUAL_FATAL (q->nf4->n_nested, nested->n_elements);
    assert_same_bytes (q->data, packed->data, packed->n_bytes, name, "the packed codes");
    assert_same_bytes (q->nf4->absmax, absmax->data, absmax->n_bytes, name, "absmax");
    assert_same_bytes (q->nf4->nested_absmax, nested->data, nested->n_bytes, name, "nested_absmax");
    assert_same_bytes (&q->nf4->offset, offset->data, sizeof (float), name, "nested_offset");
    g_autoptr (CriaTensor) y = cria_tensor_to_f32 (q);
    assert_same_bytes (y->data, deq->data, deq->n_bytes, name, "the dequantized values");

    /* the same weight from its checkpoint parts */
    const CriaWeight *qm = cria_safetensors_lookup (golden, "quant_map");
    const CriaWeight *dm = cria_safetensors_lookup (golden, "nested_quant_map");
    float off;
    memcpy (&off, offset->data, sizeof off);
    g_autofree float *nested_copy = g_memdup2 (nested->data, nested->n_bytes);
    g_autofree float *qm_copy = g_memdup2 (qm->data, qm->n_bytes), *dm_copy = g_memdup2 (dm->data, dm->n_bytes);
    g_autoptr (CriaTensor) loaded = cria_nf4_tensor_new (input->n_dims, input->shape, input->dtype, packed->data,
                                                         packed->n_bytes, absmax->data, absmax->n_elements, nested_copy,
                                                         nested->n_elements, off, qm_copy, dm_copy, name, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (loaded);
    g_autoptr (CriaTensor) y2 = cria_nf4_dequantize (loaded);
    assert_same_bytes (y2->data, deq->data, deq->n_bytes, name, "the dequantized checkpoint");
  }
}

/* Any range, odd starts and block-crossing lengths included, is a slice of the whole. */
static void
test_ranges (void)
{
  g_autoptr (CriaTensor) input = tensor_of (weight ("odd", ".input"));
  g_autoptr (CriaTensor) q = cria_nf4_quantize (input, "odd", NULL);
  g_autoptr (CriaTensor) all = cria_nf4_dequantize (q);
  gint64 n = cria_tensor_numel (q);
  const float *ref = all->data;
  float buf[300];
  gint64 starts[] = { 0, 1, 63, 64, 65, 127, 200, 258 };
  for (guint i = 0; i < G_N_ELEMENTS (starts); i++)
    for (gint64 len = 1; starts[i] + len <= n; len += 37) {
      cria_nf4_dequantize_range (q, starts[i], len, buf);
      CU_ASSERT_EQUAL (memcmp (buf, ref + starts[i], (gsize) len * sizeof (float)), 0);
    }
}

/* A weight large enough to be cut between threads: its codes are those of
 * its slices, and an error names the first bad element of a late block. */
static void
test_large (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (9);
  gint64 shape[] = { 4096, 80 }, slice = 4096 * 80 / 4;
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, shape);
  float *d = w->data;
  for (gint64 i = 0; i < 4096 * 80; i++)
    d[i] = (float) g_rand_double_range (rand, -1, 1);
  g_autoptr (CriaTensor) q = cria_nf4_quantize (w, "w", NULL);
  for (int s = 0; s < 4; s++) {
    g_autoptr (CriaTensor) part = cria_tensor_new_borrowed (CRIA_DTYPE_F32, 1, &slice, d + s * slice, NULL, NULL);
    g_autoptr (CriaTensor) qp = cria_nf4_quantize (part, "part", NULL);
    CU_ASSERT_EQUAL (memcmp ((guint8 *) q->data + s * slice / 2, qp->data, (gsize) slice / 2), 0);
  }
  d[300001] = INFINITY;
  d[300007] = NAN;
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (cria_nf4_quantize (w, "w", &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "w: element 300001 is inf"));
}

static void
test_errors (void)
{
  gint64 shape[] = { 3, 50 };
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_F32, 2, shape);
  ((float *) t->data)[77] = NAN;
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (cria_nf4_quantize (t, "layers.0.q_proj.weight", &error));
  CU_ASSERT_PTR_NOT_NULL_FATAL (error);
  CU_ASSERT_PTR_NOT_NULL (strstr (error->message, "layers.0.q_proj.weight: element 77"));
  g_clear_error (&error);
  g_autoptr (CriaTensor) ints = cria_tensor_new (CRIA_DTYPE_I32, 2, shape);
  CU_ASSERT_PTR_NULL (cria_nf4_quantize (ints, "ids", &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "not i32"));
  g_clear_error (&error);

  /* checkpoint parts whose sizes disagree with the shape: 150 values are 75 bytes, 3 blocks, 1 nested block */
  guint8 packed[76] = { 0 }, absmax[4] = { 0 };
  float nested[2] = { 1, 1 };
  struct {
    gsize packed;
    gint64 blocks, nested;
    float offset;
    const char *message;
  } bad[] = {
    { 76, 3, 1, 0, "packed data (bytes) has 76 entries, expected 75 for shape [3, 50]" },
    { 75, 4, 1, 0, "absmax has 4 entries, expected 3" },
    { 75, 3, 2, 0, "nested_absmax has 2 entries, expected 1" },
    { 75, 3, 1, INFINITY, "nested_offset is inf" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    CriaTensor *r = cria_nf4_tensor_new (2, shape, CRIA_DTYPE_BF16, packed, bad[i].packed, absmax, bad[i].blocks,
                                         nested, bad[i].nested, bad[i].offset, NULL, NULL, "w.weight", &error);
    CU_ASSERT_PTR_NULL (r);
    CU_ASSERT_PTR_NOT_NULL_FATAL (error);
    if (!strstr (error->message, bad[i].message) || !g_str_has_prefix (error->message, "w.weight: "))
      printf ("\nunexpected: %s\n", error->message);
    CU_ASSERT_PTR_NOT_NULL (strstr (error->message, bad[i].message));
    g_clear_error (&error);
  }
  nested[0] = NAN;
  CU_ASSERT_PTR_NULL (cria_nf4_tensor_new (2, shape, CRIA_DTYPE_BF16, packed, 75, absmax, 3, nested, 1, 0, NULL, NULL,
                                           "w.weight", &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "nested_absmax[0] is nan"));
}

#define Q_PROJ "model.layers.0.self_attn.q_proj.weight"
#define STATE ".quant_state.bitsandbytes__nf4"

static char *
checkpoint_path (void)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "compute", "nf4-checkpoint.safetensors", NULL);
}

/* A bitsandbytes checkpoint with and without double quantization. */
static void
test_load (void)
{
  g_autofree char *path = checkpoint_path ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  const char *names[] = { "model.layers.0.mlp.down_proj.weight", Q_PROJ };
  const char *goldens[] = { "nested.dequantized", "odd.dequantized_plain" };
  CriaDType dtypes[] = { CRIA_DTYPE_BF16, CRIA_DTYPE_F32 };
  for (guint i = 0; i < 2; i++) {
    g_autoptr (CriaTensor) w = cria_nf4_load (st, names[i], &error);
    if (!w)
      printf ("\n%s\n", error->message);
    CU_ASSERT_PTR_NOT_NULL_FATAL (w);
    CU_ASSERT_EQUAL (w->nf4->source_dtype, dtypes[i]);
    const CriaWeight *want = cria_safetensors_lookup (golden, goldens[i]);
    CU_ASSERT_EQUAL_FATAL (cria_tensor_numel (w), want->n_elements);
    CU_ASSERT_EQUAL (w->shape[0], want->shape[0]);
    g_autoptr (CriaTensor) y = cria_tensor_to_f32 (w);
    assert_same_bytes (y->data, want->data, want->n_bytes, names[i], "the loaded weight");
  }
}

/* The q_proj weight rewritten with one part changed or left out. */
static char *
write_variant (const char *dir, const char *state_json, const char *omit)
{
  g_autofree char *src = checkpoint_path ();
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (src, NULL);
  g_autoptr (CriaSafetensorsWriter) wr = cria_safetensors_writer_new ();
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    CriaWeight w = *cria_safetensors_get_weight (st, i);
    if (!g_str_has_prefix (w.name, Q_PROJ) || (omit && g_str_equal (w.name + strlen (Q_PROJ), omit)))
      continue;
    if (state_json && g_str_has_suffix (w.name, STATE)) {
      w.data = state_json;
      w.n_bytes = strlen (state_json);
      w.n_elements = w.shape[0] = (gint64) w.n_bytes;
    }
    g_assert (cria_safetensors_writer_add (wr, &w, NULL));
  }
  char *path = g_build_filename (dir, "variant.safetensors", NULL);
  g_assert (cria_safetensors_writer_write (wr, path, NULL));
  return path;
}

static void
test_load_errors (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
#define GOOD "\"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [7, 37]"
  struct {
    const char *state, *omit, *message;
  } cases[] = {
    { "{\"quant_type\": \"fp4\", " GOOD "}", NULL, STATE ": quant_type is \"fp4\"; cria reads nf4" },
    { "{\"quant_type\": \"nf4\", \"blocksize\": 128, \"dtype\": \"float32\", \"shape\": [7, 37]}", NULL,
      STATE ": blocksize is not 64" },
    { "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"int8\", \"shape\": [7, 37]}", NULL,
      STATE ": dtype \"int8\" is not bfloat16, float16 or float32" },
    { "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [7, -37]}", NULL,
      STATE ": shape holds a size that is not a positive integer" },
    { "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [7, 38]}", NULL,
      Q_PROJ ": has 130 values, expected 133" },
    { "{\"quant_type\": \"nf4\", " GOOD ", \"nested_offset\": 0.5, \"nested_blocksize\": 256, "
      "\"nested_dtype\": \"float32\"}",
      NULL, Q_PROJ ".absmax: is f32, expected u8" },
    { "{\"quant_type\": \"nf4\", " GOOD ", \"nested_offset\": \"x\", \"nested_blocksize\": 256, "
      "\"nested_dtype\": \"float32\"}",
      NULL, STATE ": nested_offset is not a number" },
    { "{\"quant_type\": \"nf4\", " GOOD, NULL, STATE ": not JSON" },
    { "[1, 2]", NULL, STATE ": not a JSON object" },
    { NULL, ".absmax", Q_PROJ ".absmax: is missing" },
    { NULL, ".quant_map", Q_PROJ ".quant_map: is missing" },
    { NULL, STATE, STATE ": is missing" },
  };
#undef GOOD
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *path = write_variant (dir, cases[i].state, cases[i].omit);
    g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (st);
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaTensor) w = cria_nf4_load (st, Q_PROJ, &error);
    CU_ASSERT_PTR_NULL (w);
    CU_ASSERT_PTR_NOT_NULL_FATAL (error);
    gboolean ok = g_str_has_prefix (error->message, path) && strstr (error->message, cases[i].message);
    if (!ok)
      printf ("\ncase %u: unexpected: %s\n", i, error->message);
    CU_ASSERT_TRUE (ok);
  }
  cria_test_rmtree (dir);
}

static CriaTensor *
random_f32 (GRand *rand, int n_dims, const gint64 *shape, double scale)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = (float) g_rand_double_range (rand, -scale, scale);
  return t;
}

/* out = x op(w), and with a gradient the dx of sum(out * R); the same graph
 * with w as an NF4 param and as its dequantized f32 copy must agree exactly. */
static CriaTensor *
run_matmul (CriaTensor *x, CriaTensor *w, gboolean trans_b, gboolean grad, CriaTensor **dx)
{
  g_autoptr (CriaGraph) g = cria_graph_new ();
  g_autoptr (GError) error = NULL;
  CriaNode *xn = cria_graph_param (g, "x", x, grad);
  CriaNode *out = cria_matmul (g, xn, cria_graph_param (g, "w", w, FALSE), FALSE, trans_b);
  CriaNode *loss = out;
  if (grad) {
    gint64 n = cria_shape_numel (out->n_dims, out->shape), flat[] = { 1, n }, rs[] = { n, 1 };
    g_autoptr (GRand) rand = g_rand_new_with_seed (3);
    g_autoptr (CriaTensor) r = random_f32 (rand, 2, rs, 1.0);
    cria_graph_mark_output (g, out);
    loss = cria_matmul (g, cria_reshape (g, out, 2, flat), cria_graph_param (g, "R", r, FALSE), FALSE, FALSE);
  }
  gboolean ok = cria_graph_check (g, &error) && (!grad || cria_graph_backward (g, loss, &error)) &&
                cria_graph_plan (g, backend, NULL, &error) && cria_graph_forward (g, &error) &&
                (!grad || cria_graph_run_backward (g, &error));
  if (!ok)
    printf ("\nmatmul: %s\n", error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  /* the values live in the graph's arena: copy them out */
  if (dx)
    *dx = cria_tensor_to_f32 (xn->grad);
  return cria_tensor_to_f32 (out->value);
}

static void
test_matmul (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  /* M = 1 and 3 take the dot-product path, 37 the packed gemm; K = 100 makes
   * blocks cross rows, K = 320 aligns rows to blocks (the vector lookup) */
  gint64 ms[] = { 1, 3, 37 }, ks[] = { 100, 320 };
  for (guint i = 0; i < G_N_ELEMENTS (ms) * 2; i++)
    for (int trans_b = 0; trans_b < 2; trans_b++) {
      gint64 K = ks[i % 2], N = 70;
      gint64 xs[] = { ms[i / 2], K }, ws[] = { trans_b ? N : K, trans_b ? K : N };
      g_autoptr (CriaTensor) x = random_f32 (rand, 2, xs, 1.0);
      g_autoptr (CriaTensor) w = random_f32 (rand, 2, ws, 0.1);
      g_autoptr (CriaTensor) w4 = cria_nf4_quantize (w, "w", NULL);
      g_autoptr (CriaTensor) wf = cria_tensor_to_f32 (w4);
      gboolean grad = ms[i / 2] != 1;
      CriaTensor *dx4 = NULL, *dxf = NULL;
      g_autoptr (CriaTensor) y4 = run_matmul (x, w4, trans_b, grad, grad ? &dx4 : NULL);
      g_autoptr (CriaTensor) yf = run_matmul (x, wf, trans_b, grad, grad ? &dxf : NULL);
      CU_ASSERT_EQUAL (memcmp (y4->data, yf->data, cria_tensor_nbytes (yf)), 0);
      if (grad)
        CU_ASSERT_EQUAL (memcmp (dx4->data, dxf->data, cria_tensor_nbytes (dxf)), 0);
      cria_tensor_unref (dx4);
      cria_tensor_unref (dxf);
    }
}

static void
test_dequantize_op (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (5);
  gint64 ws[] = { 300, 70 };
  g_autoptr (CriaTensor) w = random_f32 (rand, 2, ws, 1.0);
  g_autoptr (CriaTensor) w4 = cria_nf4_quantize (w, "w", NULL);
  g_autoptr (CriaTensor) ref = cria_nf4_dequantize (w4);
  g_autoptr (CriaGraph) g = cria_graph_new ();
  g_autoptr (GError) error = NULL;
  CriaNode *out = cria_dequantize (g, cria_graph_param (g, "w", w4, FALSE));
  gboolean ok = cria_graph_plan (g, backend, NULL, &error) && cria_graph_forward (g, &error);
  CU_ASSERT_TRUE_FATAL (ok);
  CU_ASSERT_EQUAL (out->dtype, CRIA_DTYPE_F32);
  CU_ASSERT_EQUAL (memcmp (out->value->data, ref->data, cria_tensor_nbytes (ref)), 0);
}

/* What graph building refuses, with the first error kept. */
static void
test_graph_errors (void)
{
  gint64 ws[] = { 4, 64 }, xs[] = { 2, 4, 64 };
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, ws);
  g_autoptr (CriaTensor) w4 = cria_nf4_quantize (w, "w", NULL);
  g_autoptr (CriaTensor) bare = cria_tensor_new (CRIA_DTYPE_NF4, 2, ws);
  g_autoptr (CriaTensor) w3 = cria_tensor_new (CRIA_DTYPE_F32, 3, xs);
  g_autoptr (CriaTensor) w34 = cria_nf4_quantize (w3, "w3", NULL);
  struct {
    const char *message;
  } cases[] = {
    { "a trainable weight must be f32" },
    { "without its quantization state" },
    { "expected an nf4 param" },
    { "an nf4 b must be a 2-D param" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    CriaNode *x = cria_graph_input (g, "x", CRIA_DTYPE_F32, 3, xs);
    if (i == 0)
      cria_graph_param (g, "w", w4, TRUE);
    else if (i == 1)
      cria_graph_param (g, "w", bare, FALSE);
    else if (i == 2)
      cria_dequantize (g, cria_graph_param (g, "w", w, FALSE));
    else
      cria_matmul (g, x, cria_graph_param (g, "w3", w34, FALSE), FALSE, TRUE);
    const GError *e = cria_graph_get_error (g);
    CU_ASSERT_PTR_NOT_NULL_FATAL (e);
    if (!strstr (e->message, cases[i].message))
      printf ("\nunexpected: %s\n", e->message);
    CU_ASSERT_PTR_NOT_NULL (strstr (e->message, cases[i].message));
  }
}

/* The logits of `model` for `ids`, through `adapter`'s hook when given. */
static CriaTensor *
logits_of (CriaModel *model, CriaAdapter *adapter, const gint32 *ids, gsize n)
{
  g_autoptr (CriaLm) lm = cria_lm_new (model, backend);
  if (adapter) {
    gpointer data = NULL;
    CriaLinearHook hook = cria_adapter_get_linear_hook (adapter, &data);
    cria_lm_set_linear_hook (lm, hook, data);
  }
  g_autoptr (GError) error = NULL;
  CriaTensor *logits = cria_lm_logits (lm, ids, n, &error);
  if (!logits)
    printf ("\n%s\n", error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (logits);
  return logits;
}

/* A model with qlora attached (B = 0: the adapter adds nothing) computes
 * the logits of the same model whose linear weights were replaced by
 * dequantize (quantize (W)), the dequantizer test_golden checks bit for bit
 * against nf4_reference.py. */
static void
test_qlora_logits (void)
{
  static const struct {
    const char *model;
    guint n_linear; /* layers x the linear weights of a block */
  } cases[] = { { "tiny-llama", 2 * 7 }, { "tiny-gpt2", 2 * 4 } };
  const gint32 ids[] = { 1, 84, 104, 101, 32, 113, 117, 105, 99, 107, 32, 98, 114, 111, 119, 110, 46, 200, 3 };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", cases[c].model, NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaModel) quantized = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, &error);
    g_autoptr (CriaModel) plain = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, &error);
    CU_ASSERT_TRUE_FATAL (quantized && plain);
    g_autoptr (CriaAdapter)
        adapter = cria_adapter_new_from_spec (registry, "qlora r=4 target-modules=all-linear", &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (adapter);
    CU_ASSERT_TRUE_FATAL (cria_adapter_attach (adapter, quantized, 7, &error));
    g_autoptr (CriaTensor) base = logits_of (plain, NULL, ids, G_N_ELEMENTS (ids));
    guint n_nf4 = 0;
    for (guint i = 0; i < cria_model_get_n_params (quantized); i++) {
      const char *name = cria_model_get_param_name (quantized, i);
      CriaTensor *w = cria_model_get_param (quantized, name);
      if (w->dtype != CRIA_DTYPE_NF4)
        continue;
      g_autoptr (CriaTensor) deq = cria_nf4_dequantize (w);
      CU_ASSERT_TRUE_FATAL (cria_model_set_param (plain, name, deq, FALSE, &error));
      n_nf4++;
    }
    CU_ASSERT_EQUAL (n_nf4, cases[c].n_linear);
    g_autoptr (CriaTensor) with_nf4 = logits_of (quantized, adapter, ids, G_N_ELEMENTS (ids));
    g_autoptr (CriaTensor) with_deq = logits_of (plain, NULL, ids, G_N_ELEMENTS (ids));
    CU_ASSERT_EQUAL_FATAL (cria_tensor_numel (with_nf4), cria_tensor_numel (with_deq));
    const float *a = with_nf4->data, *b = with_deq->data, *o = base->data;
    double worst = 0, moved = 0;
    for (gint64 i = 0; i < cria_tensor_numel (with_deq); i++) {
      worst = MAX (worst, fabs (a[i] - b[i]) / MAX (1.0, fabs (b[i])));
      moved = MAX (moved, fabs (b[i] - o[i]));
    }
    printf ("\n%s: NF4 base vs dequantized weights: largest logit difference %g (quantization moved them by %g)\n",
            cases[c].model, worst, moved);
    CU_ASSERT_TRUE (worst <= 1e-5);
    CU_ASSERT_TRUE (moved > 1e-4); /* quantization did change the weights */
  }
}

static void
cleanup (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
  cria_safetensors_free (golden);
}

static void
register_suites (void)
{
  atexit (cleanup);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "compute", "nf4-golden.safetensors",
                                            NULL);
  g_autoptr (GError) error = NULL;
  golden = cria_safetensors_open (path, &error);
  if (!golden) {
    fprintf (stderr, "%s\n", error->message);
    exit (99);
  }
  registry = cria_test_registry ();
  backend = cria_backend_open (registry, "cpu", &error);
  g_assert (backend);
  static const CriaTestCase cases[] = {
    { "NF4 and dynamic maps", test_maps },
    { "quantize and dequantize match the reference", test_golden },
    { "dequantize any range", test_ranges },
    { "a weight quantized by several threads", test_large },
    { "bad weights and checkpoint parts", test_errors },
    { "load a bitsandbytes checkpoint", test_load },
    { "malformed bitsandbytes checkpoints", test_load_errors },
    { "matmul with an nf4 weight", test_matmul },
    { "dequantize op", test_dequantize_op },
    { "graph errors", test_graph_errors },
    { "qlora base logits = logits of the dequantized weights", test_qlora_logits },
    { NULL },
  };
  cria_test_add_suite ("nf4", cases);
}

CRIA_TEST_MAIN (register_suites)
