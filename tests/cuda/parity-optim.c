/* parity-optim.c: test-cuda-parity's optim group: the optimizer on the
 * backend (contract 1.2) and cria train runs against the cpu's. */
#include <glib/gstdio.h>
#include <cria/cria-safetensors.h>
#include <cria/cria-trainer.h>

#include "parity-test.h"

/* ---- optim ------------------------------------------------------------------------ */

/* AdamW through the backend's entries against cria_adamw on the host, on the
 * same gradients (each the float sum of two pieces, added by accumulate):
 * three steps with clipping, a param past one norm chunk, one without decay. */
void
test_optim_kernels (void)
{
  if (!cria_backend_has_optimizer (dev)) {
    record (G_OPTIM, "optimizer entries (contract 1.2)", INFINITY);
    return;
  }
  static const gsize sizes[] = { CRIA_OPTIM_NORM_CHUNK + 4467, 1000, 37 };
  enum { N = G_N_ELEMENTS (sizes) };
  CriaOptimConfig c;
  cria_optim_config_init (&c);
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  g_autoptr (CriaAdamW) host = cria_adamw_new (&c), shadow = cria_adamw_new (&c);
  g_autoptr (GRand) rand = g_rand_new_with_seed (5);
  g_autoptr (GError) error = NULL;
  float *params[N], *grads[N], *piece[N];
  CriaTensor *dp[N], *dm[N], *dv[N], *dg[N], *dpiece[N];
  CriaOptimSpan spans[N];
  gboolean ok = TRUE;
  for (guint k = 0; k < N; k++) {
    gint64 n = (gint64) sizes[k];
    params[k] = g_new (float, n);
    grads[k] = g_new (float, n);
    piece[k] = g_new (float, n);
    for (gint64 i = 0; i < n; i++)
      params[k][i] = (float) g_rand_double_range (rand, -1, 1);
    cria_adamw_add (host, "p", params[k], sizes[k], k != 1);
    cria_adamw_add (shadow, "p", params[k], sizes[k], k != 1);
    dp[k] = cria_backend_tensor_new (dev, CRIA_DTYPE_F32, 1, &n, NULL);
    dm[k] = cria_backend_tensor_new (dev, CRIA_DTYPE_F32, 1, &n, NULL);
    dv[k] = cria_backend_tensor_new (dev, CRIA_DTYPE_F32, 1, &n, NULL);
    dg[k] = cria_backend_tensor_new (dev, CRIA_DTYPE_F32, 1, &n, NULL);
    dpiece[k] = cria_backend_tensor_new (dev, CRIA_DTYPE_F32, 1, &n, NULL);
    ok = ok && cria_tensor_write (dp[k], 0, params[k], n * sizeof (float), &error);
    spans[k] = (CriaOptimSpan){ dp[k]->data, dm[k]->data, dv[k]->data, dg[k]->data, sizes[k], k != 1 };
  }
  gboolean same_norm = TRUE;
  for (int step = 0; ok && step < 3; step++) {
    for (guint k = 0; ok && k < N; k++) {
      for (gsize i = 0; i < sizes[k]; i++) {
        grads[k][i] = (float) g_rand_double_range (rand, -3, 3);
        piece[k][i] = (float) g_rand_double_range (rand, -3, 3);
      }
      ok = cria_tensor_write (dg[k], 0, grads[k], sizes[k] * sizeof (float), &error) &&
           cria_tensor_write (dpiece[k], 0, piece[k], sizes[k] * sizeof (float), &error) &&
           cria_backend_accumulate (dev, dg[k]->data, dpiece[k]->data, sizes[k], &error);
      for (gsize i = 0; i < sizes[k]; i++)
        grads[k][i] += piece[k][i];
    }
    const float pre = 1.0f / 7.0f;
    double norm = cria_adamw_grad_norm (host, (const float *const *) grads, pre), sumsq = 0;
    ok = ok && cria_backend_grad_sumsq (dev, spans, N, pre, &sumsq, &error);
    same_norm &= sqrt (sumsq) == norm;
    float coef = cria_clip_coef (norm, 50.0); /* below the norm: clipped */
    CU_ASSERT_TRUE (coef < 1.0f);
    cria_adamw_step_scaled (host, (const float *const *) grads, pre, coef);
    CriaAdamwScalars sc;
    cria_adamw_next_scalars (shadow, pre, cria_clip_coef (sqrt (sumsq), 50.0), &sc);
    ok = ok && cria_backend_adamw_step (dev, spans, N, &sc, &error);
  }
  if (!ok)
    printf ("\noptimizer entries on %s: %s\n", cria_backend_get_name (dev), error->message);
  record (G_OPTIM, "grad norm = cpu's bits", ok && same_norm ? 0 : INFINITY);
  gboolean same = ok;
  for (guint k = 0; k < N; k++) {
    gsize n;
    g_autofree float *back = g_new (float, sizes[k]);
    CriaTensor *dev_t[] = { dp[k], dm[k], dv[k] };
    const float *want[] = { params[k], cria_adamw_get_moment (host, k, 0, &n), cria_adamw_get_moment (host, k, 1, &n) };
    for (int w = 0; same && w < 3; w++)
      same = cria_tensor_read (dev_t[w], 0, back, sizes[k] * sizeof (float), NULL) &&
             memcmp (back, want[w], sizes[k] * sizeof (float)) == 0;
    cria_tensor_unref (dp[k]);
    cria_tensor_unref (dm[k]);
    cria_tensor_unref (dv[k]);
    cria_tensor_unref (dg[k]);
    cria_tensor_unref (dpiece[k]);
    g_free (params[k]);
    g_free (grads[k]);
    g_free (piece[k]);
  }
  record (G_OPTIM, "3 AdamW steps: params and moments = cpu's bits", same ? 0 : INFINITY);
}

typedef struct {
  char *tmp, *model, *data, *format;
} TrainFixture;

static void
fixture_init (TrainFixture *f, const char *model)
{
  f->tmp = cria_test_tmpdir ();
  f->model = cria_test_tiny_model (f->tmp, model);
  f->format = cria_test_short_format (f->tmp);
  f->data = cria_test_sums_data (f->tmp, 16, 13, 50);
}

static void
fixture_clear (TrainFixture *f)
{
  cria_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f->model);
  g_free (f->data);
  g_free (f->format);
}

/* cria train in this process into TMP/OUT on `backend`; `extra`: NAME,
 * VALUE pairs, NULL-terminated. */
static gboolean
train_on (TrainFixture *f, const char *backend, const char *out, const char *const *extra)
{
  g_autoptr (CriaProps) o = cria_props_new (cria_train_option_specs ());
  g_autofree char *dir = g_build_filename (f->tmp, out, NULL);
  const char *common[] = { "model",      f->model, "data",     f->data, "format",    f->format, "max-length", "48",
                           "batch-size", "2",      "threads",  "1",     "seed",      "3",       "out",        dir,
                           "backend",    backend,  "progress", "never", "overwrite", "true",    NULL };
  g_autoptr (GError) error = NULL;
  gboolean ok = TRUE;
  for (const char *const *kv = common; ok && *kv; kv += 2)
    ok = cria_props_set (o, kv[0], kv[1], &error);
  for (const char *const *kv = extra; ok && *kv; kv += 2)
    ok = cria_props_set (o, kv[0], kv[1], &error);
  ok = ok && cria_train_run (registry, o, &error);
  if (!ok)
    printf ("\ncria train on %s: %s\n", backend, error->message);
  return ok;
}

/* The largest relative difference of the tensors of two safetensors files
 * (INFINITY when they do not hold the same names and shapes). */
static double
file_diff (const char *a, const char *b)
{
  g_autoptr (CriaSafetensors) sa = cria_safetensors_open (a, NULL), sb = cria_safetensors_open (b, NULL);
  if (!sa || !sb || cria_safetensors_get_n_weights (sa) != cria_safetensors_get_n_weights (sb))
    return INFINITY;
  double worst = 0;
  for (guint i = 0; i < cria_safetensors_get_n_weights (sa); i++) {
    const CriaWeight *wa = cria_safetensors_get_weight (sa, i), *wb = cria_safetensors_lookup (sb, wa->name);
    if (!wb || wa->dtype != CRIA_DTYPE_F32 || wb->n_elements != wa->n_elements)
      return INFINITY;
    /* exact means every bit: max |a - b| of equal values is 0 */
    worst = MAX (worst, memcmp (wa->data, wb->data, wa->n_bytes) == 0
                            ? 0
                            : MAX (cria_test_rel_diff (wb->data, wa->data, wa->n_elements), 1e-300));
  }
  return worst;
}

/* The "loss" and "grad_norm" of every step line of a run's log. */
static GArray *
log_values (const char *tmp, const char *out)
{
  g_autofree char *path = g_build_filename (tmp, out, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (path);
  GArray *v = g_array_new (FALSE, FALSE, sizeof (double));
  g_auto (GStrv) lines = text ? cria_test_lines (text) : NULL;
  for (guint i = 0; lines && lines[i]; i++) {
    g_autoptr (JsonNode) node = *lines[i] ? json_from_string (lines[i], NULL) : NULL;
    JsonObject *line = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
    if (!line || !json_object_has_member (line, "loss") || !json_object_has_member (line, "grad_norm"))
      continue;
    double x[] = { json_object_get_double_member (line, "loss"), json_object_get_double_member (line, "grad_norm") };
    g_array_append_vals (v, x, 2);
  }
  return v;
}

/* Compares two runs' logs, last checkpoint (params, moments) and outputs. */
static void
compare_runs (TrainFixture *f, const char *what, const char *a, const char *b, const char *ckpt, const char *result)
{
  g_autoptr (GArray) la = log_values (f->tmp, a), lb = log_values (f->tmp, b);
  double worst = la->len == lb->len && la->len >= 4 ? 0 : INFINITY;
  for (guint i = 0; isfinite (worst) && i < la->len; i++) {
    double x = g_array_index (la, double, i), y = g_array_index (lb, double, i);
    worst = MAX (worst, x == y ? 0 : fabs (y - x) / MAX (fabs (x), 1e-300));
  }
  g_autofree char *what_log = g_strdup_printf ("%s: losses and grad norms (%u steps)", what, la->len / 2);
  record (G_OPTIM, what_log, worst);
  /* Params and moments after several steps: AdamW divides m by sqrt(v),
   * which makes the kernels' rounding differences in the gradients of
   * elements near 0 large (the simulator: 2e-5 on params, 2e-6 on
   * moments); the step itself is exact (test_optim_kernels). */
  double state_tol = groups[G_OPTIM].tol == 0 ? 0 : MODEL_TOL;
  static const char *const files[] = { "params.safetensors", "optimizer.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *pa = g_build_filename (f->tmp, a, "checkpoints", ckpt, files[i], NULL);
    g_autofree char *pb = g_build_filename (f->tmp, b, "checkpoints", ckpt, files[i], NULL);
    g_autofree char *w = g_strdup_printf ("%s: %s %s", what, ckpt, files[i]);
    record_tol (G_OPTIM, w, file_diff (pa, pb), state_tol);
  }
  g_autofree char *ra = g_build_filename (f->tmp, a, result, NULL), *rb = g_build_filename (f->tmp, b, result, NULL);
  g_autofree char *w = g_strdup_printf ("%s: %s", what, result);
  record_tol (G_OPTIM, w, file_diff (ra, rb), state_tol);
}

/* Bytes devsim downloaded in the runs since the last call (CRIA_DEVSIM_STATS). */
static guint64
devsim_downloads (const char *stats)
{
  g_autofree char *text = cria_test_read_file (stats);
  guint64 total = 0;
  g_auto (GStrv) lines = text ? cria_test_lines (text) : NULL;
  for (guint i = 0; lines && lines[i]; i++) {
    guint64 n, bytes;
    if (sscanf (lines[i], "downloads %" G_GUINT64_FORMAT " bytes %" G_GUINT64_FORMAT, &n, &bytes) == 2)
      total += bytes;
  }
  g_unlink (stats);
  return total;
}

/* LoRA on tiny-llama, grad-accum 2, weight decay, a linear schedule with
 * warmup, and a max-grad-norm every step's norm exceeds. */
void
test_optim_lora (void)
{
  TrainFixture f;
  fixture_init (&f, "tiny-llama");
  const char *name = cria_backend_get_name (dev);
  g_autofree char *stats = g_build_filename (f.tmp, "devsim-stats", NULL);
  g_setenv ("CRIA_DEVSIM_STATS", stats, TRUE);
  const char *opts[] = { "adapter",
                         "lora r=4 alpha=8 target-modules=q_proj,v_proj,down_proj",
                         "grad-accum",
                         "2",
                         "max-steps",
                         "5",
                         "lr",
                         "5e-2",
                         "weight-decay",
                         "0.1",
                         "warmup-steps",
                         "1",
                         "max-grad-norm",
                         "0.001",
                         NULL };
  gboolean ok = train_on (&f, "cpu", "cpu", opts) && train_on (&f, name, "dev", opts);
  guint64 bytes = devsim_downloads (stats);
  if (!ok) {
    record (G_OPTIM, "lora runs", INFINITY);
  } else {
    compare_runs (&f, "lora", "cpu", "dev", "checkpoint-5", "adapter_model.safetensors");
    g_autoptr (GArray) norms = log_values (f.tmp, "cpu");
    CU_ASSERT_TRUE (norms->len == 10 && g_array_index (norms, double, 1) > 0.001); /* clipping was active */
    if (!strcmp (name, "devsim")) {
      /* What may cross: the loss of each micro-batch, and the params and
       * moments once for the final checkpoint. The gradients of 10
       * micro-batches would be 10 times the params. */
      g_autofree char *p = g_build_filename (f.tmp, "dev", "checkpoints", "checkpoint-5", "params.safetensors", NULL);
      g_autoptr (CriaSafetensors) st = cria_safetensors_open (p, NULL);
      guint64 param_bytes = 0;
      for (guint i = 0; st && i < cria_safetensors_get_n_weights (st); i++)
        param_bytes += cria_safetensors_get_weight (st, i)->n_bytes;
      printf ("\nlora on devsim: %" G_GUINT64_FORMAT " bytes downloaded, trainable params %" G_GUINT64_FORMAT
              " bytes\n",
              bytes, param_bytes);
      record (G_OPTIM, "lora on devsim: no gradient downloaded",
              param_bytes > 0 && bytes <= 3 * param_bytes + 4096 ? 0 : INFINITY);
    }
  }
  g_unsetenv ("CRIA_DEVSIM_STATS");
  fixture_clear (&f);
}

/* Full fine-tuning of tiny-gpt2 (tied embeddings), clipping active; then a
 * run stopped at step 2 on one backend and resumed on the other, both ways,
 * equals the run that never stopped. */
void
test_optim_full (void)
{
  TrainFixture f;
  fixture_init (&f, "tiny-gpt2");
  const char *name = cria_backend_get_name (dev);
  const char *opts[] = { "adapter",      "full", "max-steps",     "4",    "lr", "1e-3",
                         "weight-decay", "0.01", "max-grad-norm", "0.01", NULL };
  const char *stop[] = { "adapter", "full",          "max-steps", "4",          "lr", "1e-3", "weight-decay",
                         "0.01",    "max-grad-norm", "0.01",      "stop-after", "2",  NULL };
  if (!train_on (&f, "cpu", "cpu", opts) || !train_on (&f, name, "dev", opts)) {
    record (G_OPTIM, "full runs", INFINITY);
    fixture_clear (&f);
    return;
  }
  compare_runs (&f, "full", "cpu", "dev", "checkpoint-4", "model.safetensors");
  /* one run directory per way: stopped on one backend, resumed on the other */
  const char *ways[][2] = { { name, "cpu" }, { "cpu", name } };
  for (guint w = 0; w < G_N_ELEMENTS (ways); w++) {
    g_autofree char *out = g_strdup_printf ("%s-then-%s", ways[w][0], ways[w][1]);
    g_autofree char *ckpt = g_build_filename (f.tmp, out, "checkpoints", "checkpoint-2", NULL);
    const char *resume[] = { "adapter", "full",          "max-steps", "4",      "lr", "1e-3", "weight-decay",
                             "0.01",    "max-grad-norm", "0.01",      "resume", ckpt, NULL };
    g_autofree char *what = g_strdup_printf ("full, stopped on %s, resumed on %s", ways[w][0], ways[w][1]);
    if (!train_on (&f, ways[w][0], out, stop) || !train_on (&f, ways[w][1], out, resume)) {
      record (G_OPTIM, what, INFINITY);
      continue;
    }
    compare_runs (&f, what, "cpu", out, "checkpoint-4", "model.safetensors");
  }
  fixture_clear (&f);
}
