/* parity-weights.c: test-cuda-parity's groups of weights that are not f32
 * (weights, bf16-dot, weights-model) and the tf32 group. */
#include <cria/cria-safetensors.h>

#include "parity-test.h"

/* ---- weights that are not f32 ------------------------------------------------ */

static const CriaDType weight_dtypes[] = { CRIA_DTYPE_BF16, CRIA_DTYPE_F16, CRIA_DTYPE_NF4 };
/* a weight case's variant: its dtype (bits 3-4), then the case's own bits */
#define W_BF16 0
#define W_F16 8
#define W_NF4 16
#define W_DTYPE(v_) weight_dtypes[((v_) >> 3) & 3]

/* A frozen weight of random values rounded to `dtype`, or quantized to NF4. */
static CriaNode *
weight (Op *o, CriaDType dtype, int n_dims, const gint64 *shape)
{
  CriaTensor *f = random_tensor (o, n_dims, shape), *t;
  if (dtype == CRIA_DTYPE_NF4) {
    t = cria_nf4_quantize (f, "w", NULL);
  } else {
    t = cria_tensor_new (dtype, n_dims, shape);
    cria_convert_from_f32 (dtype, f->data, t->data, (gsize) cria_tensor_numel (f));
  }
  g_ptr_array_add (o->owned, t);
  return cria_graph_param (o->g, "w", t, FALSE);
}

/* An NF4 weight of tests/compute/nf4-checkpoint.safetensors, as
 * bitsandbytes saved it: 0 q_proj (f32 block scales, no double
 * quantization), 1 down_proj (double quantized, two nested blocks). */
static CriaNode *
checkpoint_weight (Op *o, int which)
{
  static const char *const names[] = { "model.layers.0.self_attn.q_proj.weight",
                                       "model.layers.0.mlp.down_proj.weight" };
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "compute",
                                            "nf4-checkpoint.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &error);
  CriaTensor *t = st ? cria_nf4_load (st, names[which], &error) : NULL;
  if (!t)
    return cria_graph_fail (o->g, "%s", error->message);
  g_ptr_array_add (o->owned, t);
  return cria_graph_param (o->g, "w", t, FALSE);
}

/* variant: bit 0 trans_a, bit 1 trans_b, bit 2 a batched b, the dtype, bit
 * 5 an NF4 weight over two nested blocks (129 x 131) */
static CriaNode *
build_weight_matmul (Op *o, int v)
{
  gboolean ta = v & 1, tb = v & 2, batched = v & 4, large = v & 32;
  gint64 B = 3, M = 37, N = large ? 131 : 29, K = large ? 129 : 45;
  CriaNode *a = ta ? param (o, B, K, M, 0) : param (o, B, M, K, 0);
  gint64 shape[] = { B, tb ? N : K, tb ? K : N };
  CriaNode *w = batched ? weight (o, W_DTYPE (v), 3, shape) : weight (o, W_DTYPE (v), 2, shape + 1);
  return cria_matmul (o->g, a, w, ta, tb);
}

/* x [2, 7, in] times a checkpoint's NF4 weight [out, in], as a linear layer */
static CriaNode *
build_checkpoint_matmul (Op *o, int which)
{
  CriaNode *w = checkpoint_weight (o, which);
  if (!w)
    return NULL;
  return cria_matmul (o->g, param (o, 2, 7, w->shape[1], 0), w, FALSE, TRUE);
}

/* dequantize (plus a param, whose gradient is compared too): 0 and 1 the
 * checkpoint's weights, 2 a quantized 129 x 131 */
static CriaNode *
build_dequantize (Op *o, int v)
{
  CriaNode *w = v < 2 ? checkpoint_weight (o, v) : weight (o, CRIA_DTYPE_NF4, 2, (gint64[]){ 129, 131 });
  if (!w)
    return NULL;
  return cria_add (o->g, cria_dequantize (o->g, w), param (o, w->shape[0], w->shape[1], 0, 0));
}

static CriaNode *
build_weight_embedding (Op *o, int v)
{
  gint32 ids[2 * 19];
  for (int i = 0; i < 38; i++)
    ids[i] = (i * 7 + 3) % 53;
  CriaNode *id = ints (o, 2, (gint64[]){ 2, 19 }, ids);
  CriaNode *e = cria_embedding (o->g, id, weight (o, W_DTYPE (v), 2, (gint64[]){ 53, 33 }));
  return cria_add (o->g, e, param (o, 33, 0, 0, 0));
}

/* variant: the dtype, bit 0 the per-row variant (seeded backward) */
static CriaNode *
build_weight_ce (Op *o, int v)
{
  gint64 N = 21, D = 35, V = 103;
  gint32 labels[21];
  for (int i = 0; i < N; i++)
    labels[i] = i % 5 == 2 ? CRIA_IGNORE_INDEX : (i * 37 + 11) % V;
  CriaNode *h = param (o, N, D, 0, 0), *w = weight (o, W_DTYPE (v), 2, (gint64[]){ V, D });
  CriaNode *l = ints (o, 1, (gint64[]){ N }, labels);
  if (!(v & 1))
    return cria_lm_head_ce (o->g, h, w, l, 16);
  o->seed = g_new0 (float, 2 + 2 * N);
  o->seed[0] = 0.5f;
  for (int i = 0; i < N; i++)
    o->seed[2 + N + i] = (float) g_rand_double_range (o->rand, -1.0, 1.0);
  return cria_lm_head_ce_rows (o->g, h, w, l, 16);
}

/* the four layouts of a weight matmul */
/* clang-format off */
#define WCASE(name_, v_) { name_, build_weight_matmul, (v_) }
#define LAYOUTS(name_, d_) \
  WCASE (name_, d_), WCASE (name_ " trans_b", (d_) | 2), WCASE (name_ " trans_a", (d_) | 1), \
  WCASE (name_ " trans_a trans_b", (d_) | 3)
/* clang-format on */

void
test_weights_ops (void)
{
  static const OpCase cases[] = {
    LAYOUTS ("matmul bf16", W_BF16),
    LAYOUTS ("matmul f16", W_F16),
    LAYOUTS ("matmul nf4", W_NF4),
    { "matmul bf16 batched b", build_weight_matmul, W_BF16 | 4 },
    { "matmul f16 batched b trans_a trans_b", build_weight_matmul, W_F16 | 7 },
    { "matmul nf4 two nested blocks trans_b", build_weight_matmul, W_NF4 | 32 | 2 },
    { "matmul nf4 checkpoint, f32 scales", build_checkpoint_matmul, 0 },
    { "matmul nf4 checkpoint, double quantized", build_checkpoint_matmul, 1 },
    { "dequantize checkpoint, f32 scales", build_dequantize, 0 },
    { "dequantize checkpoint, double quantized", build_dequantize, 1 },
    { "dequantize 129x131", build_dequantize, 2 },
    { "embedding bf16", build_weight_embedding, W_BF16 },
    { "embedding f16", build_weight_embedding, W_F16 },
    { "lm_head_ce bf16", build_weight_ce, W_BF16 },
    { "lm_head_ce f16", build_weight_ce, W_F16 },
    { "lm_head_ce_rows bf16 seeded", build_weight_ce, W_BF16 | 1 },
    { NULL },
  };
  check_cases (G_WEIGHTS, cpu, dev, "", cases);
}

/* The weight widened 1 KiB at a time: several products, and on a C of
 * other columns (trans_b) or into one C (otherwise). */
void
test_weights_slices (void)
{
  static const OpCase cases[] = {
    LAYOUTS ("matmul nf4", W_NF4),
    { "matmul bf16 trans_b", build_weight_matmul, W_BF16 | 2 },
    { "matmul f16", build_weight_matmul, W_F16 },
    { "matmul f16 batched b trans_a trans_b", build_weight_matmul, W_F16 | 7 },
    { "lm_head_ce bf16", build_weight_ce, W_BF16 },
    { NULL },
  };
  check_cases (G_WEIGHTS, cpu, dev_slices, " (in slices)", cases);
}

/* bf16-dot leaves f16 weights alone: the default path's results. */
void
test_weights_f16_dot (void)
{
  static const OpCase cases[] = {
    { "matmul f16 trans_b", build_weight_matmul, W_F16 | 2 },
    { "lm_head_ce f16", build_weight_ce, W_F16 },
    { NULL },
  };
  check_cases (G_WEIGHTS, cpu_dot, dev_dot, " (bf16-dot)", cases);
}

void
test_bf16_dot_ops (void)
{
  static const OpCase cases[] = {
    LAYOUTS ("matmul bf16", W_BF16),
    LAYOUTS ("matmul nf4", W_NF4),
    { "matmul bf16 batched b", build_weight_matmul, W_BF16 | 4 },
    { "matmul nf4 two nested blocks trans_b", build_weight_matmul, W_NF4 | 32 | 2 },
    { "matmul nf4 checkpoint, f32 scales", build_checkpoint_matmul, 0 },
    { "lm_head_ce bf16", build_weight_ce, W_BF16 },
    { "lm_head_ce_rows bf16 seeded", build_weight_ce, W_BF16 | 1 },
    { NULL },
  };
  static const OpCase sliced[] = {
    LAYOUTS ("matmul nf4", W_NF4),
    { "lm_head_ce bf16", build_weight_ce, W_BF16 },
    { NULL },
  };
  check_cases (G_BF16_DOT, cpu_dot, dev_dot, "", cases);
  check_cases (G_BF16_DOT, cpu_dot, dev_dot_slices, " (in slices)", sliced);
}

/* tf32=true against the cpu's f32: every product through cuBLASLt */
void
test_tf32_ops (void)
{
  static const OpCase cases[] = {
    { "matmul", build_matmul, 0 },
    { "matmul trans_a", build_matmul, 1 },
    { "matmul trans_b", build_matmul, 2 },
    { "matmul trans_a trans_b", build_matmul, 3 },
    { "matmul batched b trans_a trans_b", build_matmul, 7 },
    { "lm_head_ce chunked", build_lm_head_ce, 0 },
    { "matmul bf16 trans_b", build_weight_matmul, W_BF16 | 2 },
    { "matmul nf4", build_weight_matmul, W_NF4 },
    { NULL },
  };
  check_cases (G_TF32, cpu, dev_tf32, " (tf32)", cases);
}

static void
check_logits_as (int group, const char *name, CriaModelDType dtype, CriaBackend *ref, CriaBackend *be)
{
  g_autoptr (CriaTensor) a = model_logits_as (name, dtype, ref);
  g_autoptr (CriaTensor) b = model_logits_as (name, dtype, be);
  g_autofree char *what = g_strdup_printf ("%s logits (%s)", name,
                                           dtype == CRIA_MODEL_DTYPE_BF16 ? "bf16" : "as stored");
  record (group, what, rel_diff (b, a));
}

/* A training step with `spec` on the two backends: the loss, the label count
 * and every adapter gradient (within grad_tol; 0: the group's tolerance). */
void
check_adapter_step (int group, const char *name, const char *spec, CriaBackend *ref, CriaBackend *be, double grad_tol)
{
  float ca[2], cb[2];
  g_autoptr (GPtrArray) ga = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  g_autoptr (GPtrArray) gb = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  g_autoptr (GError) error = NULL;
  g_autofree char *what = g_strdup_printf ("%s %s", name, spec);
  if (!cria_test_adapter_step (registry, name, spec, ref, ca, ga, &error) ||
      !cria_test_adapter_step (registry, name, spec, be, cb, gb, &error) || ga->len != gb->len || ga->len == 0) {
    printf ("\n%s: %s\n", what, error ? error->message : "no gradients");
    record (group, what, INFINITY);
    return;
  }
  g_autofree char *what_loss = g_strdup_printf ("%s: loss", what);
  g_autofree char *what_count = g_strdup_printf ("%s: label count", what);
  record (group, what_loss, fabs ((double) cb[0] - ca[0]) / MAX (fabs ((double) ca[0]), 1e-30));
  record (group, what_count, ca[1] == cb[1] && ca[1] > 0 ? 0 : INFINITY);
  double worst = 0;
  for (guint i = 0; i < ga->len; i++)
    worst = MAX (worst, rel_diff (g_ptr_array_index (gb, i), g_ptr_array_index (ga, i)));
  g_autofree char *what_grads = g_strdup_printf ("%s: adapter gradients", what);
  record_tol (group, what_grads, worst, grad_tol > 0 ? grad_tol : groups[group].tol);
}

void
test_weights_model (void)
{
  check_logits_as (G_WEIGHTS_MODEL, "tiny-qwen2-bf16", CRIA_MODEL_DTYPE_AUTO, cpu, dev);
  check_logits_as (G_WEIGHTS_MODEL, "tiny-llama", CRIA_MODEL_DTYPE_BF16, cpu, dev);
  check_logits_as (G_WEIGHTS_MODEL, "tiny-gpt2", CRIA_MODEL_DTYPE_BF16, cpu, dev);
  check_adapter_step (G_WEIGHTS_MODEL, "tiny-llama", QLORA_SPEC, cpu, dev, 0);
}

void
test_bf16_dot_model (void)
{
  check_logits_as (G_BF16_DOT, "tiny-qwen2-bf16", CRIA_MODEL_DTYPE_AUTO, cpu_dot, dev_dot);
  check_adapter_step (G_BF16_DOT, "tiny-llama", QLORA_SPEC, cpu_dot, dev_dot, 0);
}
