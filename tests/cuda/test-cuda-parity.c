/* test-cuda-parity: the cuda backend against the cpu backend, through the
 * public compute API only, in groups:
 *
 *   ops    every op with a cuda kernel, forward and backward, on odd sizes
 *          that divide no tile: the op's value and the gradient of every
 *          param feeding it within 1e-5 relative (max |a - b| / max |b|).
 *          The loss is sum(out * R) for a fixed random R, or the op's own
 *          for lm_head_ce (its per-row variant with a seeded backward).
 *   model  the logits of every tiny checkpoint in tests/models (in f32)
 *          within 1e-4 relative; greedy decoding with KV caches (tiny-qwen2,
 *          and tiny-mistral's sliding window) gives the same ids.
 *   train  one LoRA step of test-model-grads's golden batch: the loss within
 *          1e-4, the same label count, every adapter gradient within 1e-4.
 *   weights  weights that are not f32, as the ops group checks ops (1e-5):
 *          matmul with bf16, f16 and NF4 b in every layout (A's gradient),
 *          NF4 of a bitsandbytes checkpoint (with and without double
 *          quantization), dequantize, embedding and lm_head_ce with bf16
 *          and f16 weights; again with the weight widened in slices (a
 *          backend with widen-kib=1, where it has that property), and f16
 *          weights with bf16-dot on (which leaves them alone).
 *   bf16-dot  both backends with bf16-dot=true: matmul with bf16 and NF4
 *          weights (activations rounded to bf16), lm_head_ce with bf16 w,
 *          the logits of tiny-qwen2-bf16 and a QLoRA step, within 1e-2.
 *   weights-model  the logits of tiny checkpoints held in bf16 (tiny-qwen2-
 *          bf16 as stored, tiny-llama and tiny-gpt2 converted) and one
 *          QLoRA step of tiny-llama (NF4 base): within 1e-4.
 *          Against devsim (the cpu kernels) these three must be exact.
 *   optim  the optimizer on the backend (contract 1.2): AdamW steps with
 *          clipping on the same gradients bit for bit; then cria train runs
 *          (LoRA with grad-accum, full fine-tuning, clipping active) whose
 *          losses and norms equal the cpu's: exactly on devsim, within
 *          1e-6 relative elsewhere, params and moments exactly on devsim,
 *          within 1e-4 elsewhere (AdamW's m / sqrt(v) enlarges the
 *          gradients' rounding differences); checkpoints resume across
 *          backends; on devsim, no gradient is downloaded.
 *   tf32   the cuda backend with tf32=true (f32 products on TF32 tensor
 *          cores) against the cpu's f32: matmul in every layout, lm_head_ce,
 *          products with widened bf16 and NF4 weights, within 1e-2.
 *   bf16-act  the backend with activations=bf16 (every op's output stored
 *          in bf16, bf16 x bf16 products, f32 gradients and master
 *          weights) against the cpu's f32 within 1e-2: every case of the
 *          ops group forward and backward, a LoRA and a QLoRA step's loss;
 *          the logits of every tiny checkpoint within 3e-2 and the
 *          adapter gradients within 5e-2, QLoRA's 1e-1 (ACT_MODEL_TOL).
 *          Exact, anywhere: every forward value of the ops
 *          (lm_head_ce's losses excepted) is stored in bf16 (the ops
 *          group's in f32), and a LoRA step of tiny-llama plans its
 *          activation values, and a forward pass its arena, in about half
 *          the bytes of f32 (0.45 to 0.55). Exact on the
 *          simulator (within a bf16 rounding elsewhere): a product's value
 *          is f32(sum of bf16(a) bf16(b)) rounded to bf16, its gradients
 *          f32(sum of bf16(dy) bf16(operand)), computed here in double.
 *          Skipped where the backend has no activations property.
 *
 * Each group prints one summary line at the end ("parity ops: ok, ...");
 * CRIA_PARITY_GROUPS ("ops,model") runs only those named.
 * Skips (77), saying why, where the backend cannot be opened: a machine
 * without a GPU, or a build without the cuda plugin. CRIA_PARITY_BACKEND
 * names another backend to compare with the cpu (devsim, the test backend of
 * tests/compute, checks this program on a machine without a GPU). Run on a
 * GPU machine by tests/cuda/device-check.sh. Built again as
 * test-weights-devsim and test-optim-devsim, which run the weights (and tf32)
 * and optim groups on devsim in make check.
 *
 * The groups' checks: parity-ops.c, parity-model.c (model, train),
 * parity-weights.c (weights, bf16-dot, weights-model, tf32), parity-act.c
 * (bf16-act) and parity-optim.c; what they share: parity-test.h. */
#include "parity-test.h"

/* what test-weights-devsim and test-optim-devsim, built from these files,
 * compare by default */
#ifndef PARITY_BACKEND
#define PARITY_BACKEND "cuda"
#define PARITY_GROUPS NULL
#endif

CriaRegistry *registry;
CriaBackend *cpu, *dev, *cpu_dot, *dev_dot, *dev_slices, *dev_dot_slices, *dev_tf32, *dev_act;

/* The backend `name` with the properties of `spec` ("bf16-dot=true
 * widen-kib=1") that it has; the others are left out. */
static CriaBackend *
open_with (const char *name, const char *spec)
{
  g_autoptr (GError) error = NULL;
  const CriaProvider *p = cria_registry_require (registry, CRIA_KIND_BACKEND, name, &error);
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  g_auto (GStrv) words = g_strsplit (spec, " ", -1);
  for (char **w = words; *w; w++) {
    g_auto (GStrv) kv = g_strsplit (*w, "=", 2);
    cria_props_set (props, kv[0], kv[1], NULL);
  }
  CriaBackend *b = cria_backend_new (p, props, &error);
  if (!b)
    g_error ("%s %s: %s", name, spec, error->message);
  return b;
}

static void
teardown (void)
{
  print_summary ();
  for (int i = 0; i < N_GROUPS; i++)
    if (groups[i].bad)
      g_string_free (groups[i].bad, TRUE);
  cria_backend_free (dev_act);
  cria_backend_free (dev_tf32);
  cria_backend_free (dev_dot_slices);
  cria_backend_free (dev_slices);
  cria_backend_free (dev_dot);
  cria_backend_free (cpu_dot);
  cria_backend_free (dev);
  cria_backend_free (cpu);
  cria_registry_free (registry);
}

static void
register_suites (void)
{
  const char *name = g_getenv ("CRIA_PARITY_BACKEND") ? g_getenv ("CRIA_PARITY_BACKEND") : PARITY_BACKEND;
  g_autofree char *devsim = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "compute", "devsim", ".libs",
                                              NULL);
  registry = cria_registry_new ();
  cria_registry_add_path (registry, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_add_path (registry, devsim);
  cria_registry_scan (registry);
  g_autoptr (GError) error = NULL;
  dev = cria_backend_open (registry, name, &error);
  if (!dev) {
    printf ("SKIP: backend %s cannot be opened here: %s\n", name, error->message);
    g_clear_error (&error);
    g_clear_pointer (&devsim, g_free);
    cria_registry_free (registry);
    exit (CRIA_TEST_SKIP);
  }
  cpu = cria_backend_open (registry, "cpu", NULL);
  g_assert (cpu);
  cpu_dot = open_with ("cpu", "bf16-dot=true");
  dev_dot = open_with (name, "bf16-dot=true");
  dev_slices = open_with (name, "widen-kib=1");
  dev_dot_slices = open_with (name, "bf16-dot=true widen-kib=1");
  dev_tf32 = open_with (name, "tf32=true");
  g_autoptr (CriaProps)
      dev_props = cria_provider_new_props (cria_registry_require (registry, CRIA_KIND_BACKEND, name, NULL));
  if (cria_props_set (dev_props, "activations", "bf16", NULL)) /* where the backend has it */
    dev_act = open_with (name, "activations=bf16");
  /* devsim runs the cpu kernels: there the weights, optim and tf32 groups
   * must be exact (it has no tf32 property) */
  if (strcmp (name, "devsim") == 0)
    for (int i = G_WEIGHTS; i <= G_TF32; i++)
      groups[i].tol = 0;
  g_autofree char *desc = cria_backend_describe (dev);
  printf ("comparing %s with the cpu backend\n", desc);
  atexit (teardown);
  static const CriaTestCase ops[] = {
    { "matmul, embedding, lm_head_ce", test_ops_linear },
    { "norms, rope, activations, dropout, add, mul", test_ops_rows },
    { "attention: causal, GQA, segments, window, KV cache", test_ops_attention },
    { "reshape, permute, concat, slice", test_ops_moves },
    { NULL },
  };
  static const CriaTestCase model[] = {
    { "logits of every tiny model", test_model_logits },
    { "greedy decoding with KV caches", test_model_decode },
    { NULL },
  };
  static const CriaTestCase train[] = {
    { "one LoRA step: loss and adapter gradients", test_train_lora },
    { NULL },
  };
  static const CriaTestCase weights[] = {
    { "matmul, dequantize, embedding, lm_head_ce: bf16, f16, nf4 weights", test_weights_ops },
    { "the same, weights widened in slices", test_weights_slices },
    { "f16 weights with bf16-dot", test_weights_f16_dot },
    { NULL },
  };
  static const CriaTestCase bf16_dot[] = {
    { "bf16-dot: matmul and lm_head_ce with bf16 and nf4 weights", test_bf16_dot_ops },
    { "bf16-dot: bf16 logits, a QLoRA step", test_bf16_dot_model },
    { NULL },
  };
  static const CriaTestCase weights_model[] = {
    { "bf16 logits, a QLoRA step", test_weights_model },
    { NULL },
  };
  static const CriaTestCase optim[] = {
    { "AdamW and the gradient norm on the backend's entries", test_optim_kernels },
    { "LoRA runs: grad-accum, clipping, no gradient downloaded", test_optim_lora },
    { "full fine-tuning runs, resumed across backends", test_optim_full },
    { NULL },
  };
  static const CriaTestCase tf32[] = {
    { "tf32: matmul, lm_head_ce, widened weights", test_tf32_ops },
    { NULL },
  };
  static const CriaTestCase bf16_act[] = {
    { "bf16-act: every op forward and backward", test_bf16_act_ops },
    { "bf16-act: where the products round", test_bf16_act_rounding },
    { "bf16-act: logits of every tiny model, LoRA and QLoRA steps", test_bf16_act_model },
    { "bf16-act: activation memory halved", test_bf16_act_memory },
    { NULL },
  };
  const CriaTestCase *suites[N_GROUPS] = { ops, model, train, weights, bf16_dot, weights_model, optim, tf32, bf16_act };
  const char *groups_env = g_getenv ("CRIA_PARITY_GROUPS") ? g_getenv ("CRIA_PARITY_GROUPS") : PARITY_GROUPS;
  g_auto (GStrv) only = groups_env ? g_strsplit (groups_env, ",", -1) : NULL;
  for (int i = 0; i < N_GROUPS; i++)
    if (!only || g_strv_contains ((const char *const *) only, groups[i].name)) {
      g_autofree char *suite = g_strdup_printf ("parity %s", groups[i].name);
      cria_test_add_suite (suite, suites[i]);
    }
}

CRIA_TEST_MAIN (register_suites)
