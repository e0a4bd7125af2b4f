/* parity-act.c: test-cuda-parity's bf16-act group: the backend with
 * activations=bf16 against the cpu's f32. */
#include "parity-test.h"

/* ---- bf16 activations ------------------------------------------------------------ */

static gboolean
have_act (void)
{
  if (!dev_act)
    printf ("\nbf16-act: skipped: %s has no activations property\n", cria_backend_get_name (dev));
  return dev_act != NULL;
}

/* Every case of the ops group, against the cpu's f32; each forward value
 * must be made of bf16 values. */
void
test_bf16_act_ops (void)
{
  static const OpCase *const lists[] = { linear_cases, row_cases, attention_cases, move_cases };
  if (!have_act ())
    return;
  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    check_cases (G_BF16_ACT, cpu, dev_act, " (bf16 act)", lists[i]);
}

static float
bf16 (float x)
{
  return cria_bf16_to_f32 (cria_f32_to_bf16 (x));
}

/* What build_matmul's product must give with activations=bf16 where each
 * operand is rounded to bf16 and summed exactly (the simulator's cuBLASLt
 * sums in double: products of bf16 values are exact there): the value
 * f32(sum bf16(a) bf16(b)) rounded to bf16, and the gradients f32(sum
 * bf16(dy) bf16(operand)), dy = bf16(R) (the loss is sum(y R)), not
 * rounded (gradients stay f32). Variants whose gradients are one cuBLASLt
 * product each (a batch-shared B with trans_a sums its batches in f32). */
static void
check_act_product (int v, gboolean exact)
{
  gboolean ta = v & 1, tb = v & 2, batched = v & 4;
  const gint64 B = 3, M = 37, N = 29, K = 45;
  OpCase c = { "matmul", build_matmul, v };
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  g_autofree char *what = g_strdup_printf ("matmul variant %d: rounded where the kernels round", v);
  /* run_op's random values again: a, b, then R */
  Op o = { cria_graph_new (), g_rand_new_with_seed (17), g_ptr_array_new (),
           g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref), NULL };
  CriaNode *y = build_matmul (&o, v);
  gint64 ny = cria_shape_numel (y->n_dims, y->shape), rshape[] = { ny, 1 };
  const float *r = random_tensor (&o, 2, rshape)->data;
  const float *a = ((CriaTensor *) g_ptr_array_index (o.owned, 0))->data;
  const float *w = ((CriaTensor *) g_ptr_array_index (o.owned, 1))->data;
  if (!run_op (dev_act, &c, out) || out->len != 3) {
    record (G_BF16_ACT, what, INFINITY);
  } else {
    gint64 na = B * M * K, nb = (batched ? B : 1) * K * N;
    g_autofree double *da = g_new0 (double, na), *db = g_new0 (double, nb);
    g_autofree float *yv = g_new (float, ny), *dav = g_new (float, na), *dbv = g_new (float, nb);
    for (gint64 t = 0; t < B; t++)
      for (gint64 m = 0; m < M; m++)
        for (gint64 n = 0; n < N; n++) {
          double s = 0, dy = bf16 (r[(t * M + m) * N + n]);
          for (gint64 k = 0; k < K; k++) {
            gint64 ia = ta ? (t * K + k) * M + m : (t * M + m) * K + k;
            gint64 ib = (batched ? t * K * N : 0) + (tb ? n * K + k : k * N + n);
            s += (double) bf16 (a[ia]) * bf16 (w[ib]);
            da[ia] += dy * bf16 (w[ib]);
            db[ib] += dy * bf16 (a[ia]);
          }
          yv[(t * M + m) * N + n] = bf16 ((float) s);
        }
    for (gint64 i = 0; i < na; i++)
      dav[i] = (float) da[i];
    for (gint64 i = 0; i < nb; i++)
      dbv[i] = (float) db[i];
    const float *want[] = { yv, dav, dbv };
    const gint64 len[] = { ny, na, nb };
    /* elsewhere cuBLASLt sums in f32 (a few 1e-6), which may move the
     * value's rounding by one bf16 step (2^-8 relative) */
    const double tol[] = { exact ? 0 : 1.0 / 256, exact ? 0 : 1e-4, exact ? 0 : 1e-4 };
    static const char *const part[] = { "value", "dA", "dB" };
    for (int i = 0; i < 3; i++) {
      CriaTensor *got = g_ptr_array_index (out, i);
      g_autofree char *w_part = g_strdup_printf ("%s (%s)", what, part[i]);
      record_tol (G_BF16_ACT, w_part,
                  cria_tensor_numel (got) == len[i] ? cria_test_rel_diff (got->data, want[i], len[i]) : INFINITY,
                  tol[i]);
    }
  }
  cria_graph_free (o.g);
  g_rand_free (o.rand);
  g_ptr_array_unref (o.params);
  g_ptr_array_unref (o.owned);
}

void
test_bf16_act_rounding (void)
{
  if (!have_act ())
    return;
  g_autofree char *desc = cria_backend_describe (dev_act);
  gboolean sim = strstr (desc, "simulator") != NULL;
  static const int variants[] = { 0, 2, 5, 7 };
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    check_act_product (variants[i], sim);
}

/* Whole models: every tiny checkpoint's logits (tiny-qwen2-bf16's with its
 * bf16 weights), a LoRA step of two and a QLoRA step: the adapter's params
 * are the f32 master weights, their gradients f32. */
void
test_bf16_act_model (void)
{
  if (!have_act ())
    return;
  check_every_model (G_BF16_ACT, dev_act, ACT_MODEL_TOL);
  check_adapter_step (G_BF16_ACT, "tiny-llama", "lora r=4 alpha=8 target-modules=q_proj,v_proj,down_proj", cpu, dev_act,
                      ACT_GRAD_TOL);
  check_adapter_step (G_BF16_ACT, "tiny-gpt2", "lora r=4 alpha=8 target-modules=attn.c_attn,c_proj", cpu, dev_act,
                      ACT_GRAD_TOL);
  check_adapter_step (G_BF16_ACT, "tiny-llama", QLORA_SPEC, cpu, dev_act, ACT_QLORA_GRAD_TOL);
}

/* The activation memory of tiny-llama's LoRA step (batch 2 x 8) planned on
 * a backend: the bytes of every op's value (what the step keeps for
 * backward, before buffers are shared), the arena of the forward pass alone
 * (what generation keeps) and the arena of forward and backward (values and
 * their f32 gradients, shared by liveness). FALSE with the error printed. */
static gboolean
act_memory (CriaBackend *be, gsize *values, gsize *fwd_arena, gsize *step_arena)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-llama", NULL);
  g_autoptr (CriaModel) model = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, &error);
  g_autoptr (CriaAdapter)
      a = model
              ? cria_adapter_new_from_spec (registry, "lora r=4 alpha=8 target-modules=q_proj,v_proj,down_proj", &error)
              : NULL;
  gboolean ok = a && cria_adapter_attach (a, model, 1, &error);
  for (int backward = 0; ok && backward < 2; backward++) {
    g_autoptr (CriaGraph) g = cria_graph_new ();
    cria_adapter_install (a, g);
    CriaModelShape shape = { .batch = 2, .seq = 8 };
    CriaModelGraph mg;
    ok = cria_model_build (model, g, &shape, &mg, &error);
    if (!ok)
      break;
    gint64 flat[] = { 16, cria_model_get_config (model)->hidden_size }, n[] = { 16 };
    CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
    CriaNode *loss = cria_lm_head_ce (g, cria_reshape (g, mg.hidden, 2, flat), mg.head, labels, 100);
    CriaPlanStats stats;
    ok = (!backward || cria_graph_backward (g, loss, &error)) && cria_graph_plan (g, be, &stats, &error);
    if (ok && backward) {
      *step_arena = stats.arena_bytes;
      *values = 0;
      for (guint i = 0; i < cria_graph_n_nodes (g); i++) {
        CriaNode *node = cria_graph_node (g, i);
        if (node->op != CRIA_OP_INPUT && node->op != CRIA_OP_PARAM)
          *values += cria_tensor_nbytes (node->value);
      }
    } else if (ok) {
      *fwd_arena = stats.arena_bytes;
    }
    cria_model_graph_clear (&mg);
  }
  if (!ok)
    printf ("\nactivation memory on %s: %s\n", cria_backend_get_name (be), error ? error->message : "?");
  return ok;
}

/* activations=bf16 halves the activations: the values of a training step
 * and the arena of a forward pass within 0.45 to 0.55 of f32's (integer
 * ids and the loss's row statistics stay as they are). The step's arena
 * also holds the f32 gradients of activations: printed, not checked. */
void
test_bf16_act_memory (void)
{
  if (!have_act ())
    return;
  gsize v32 = 0, f32 = 0, s32 = 0, v16 = 0, f16 = 0, s16 = 0;
  if (!act_memory (dev, &v32, &f32, &s32) || !act_memory (dev_act, &v16, &f16, &s16)) {
    record (G_BF16_ACT, "activation memory", INFINITY);
    return;
  }
  printf ("\nactivation memory of a tiny-llama LoRA step (f32 -> bf16 activations): values %" G_GSIZE_FORMAT
          " -> %" G_GSIZE_FORMAT " bytes (%.3f), forward arena %" G_GSIZE_FORMAT " -> %" G_GSIZE_FORMAT
          " (%.3f), step arena with f32 gradients %" G_GSIZE_FORMAT " -> %" G_GSIZE_FORMAT " (%.3f)\n",
          v32, v16, (double) v16 / v32, f32, f16, (double) f16 / f32, s32, s16, (double) s16 / s32);
  double rv = (double) v16 / v32, rf = (double) f16 / f32;
  record (G_BF16_ACT, "activation values of a step, about half", rv >= 0.45 && rv <= 0.55 ? 0 : INFINITY);
  record (G_BF16_ACT, "forward arena, about half", rf >= 0.45 && rf <= 0.55 ? 0 : INFINITY);
}
