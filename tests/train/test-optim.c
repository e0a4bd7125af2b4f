/* test-optim: AdamW, schedules and gradient clipping against PyTorch
 * (goldens by tests/train/gen-optim-golden.py with torch.optim.AdamW). */
#include <math.h>
#include <string.h>

#include <cria/cria-optim.h>

#include "cria-test.h"

static JsonObject *golden;
static JsonNode *root;

static int
setup (void)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", "optim-golden.json", NULL);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, &e))
    return 1;
  root = json_node_copy (json_parser_get_root (parser));
  golden = json_node_get_object (root);
  return 0;
}

static int
teardown (void)
{
  json_node_unref (root);
  return 0;
}

static float *
floats (JsonArray *a)
{
  guint n = json_array_get_length (a);
  float *out = g_new (float, n);
  for (guint i = 0; i < n; i++)
    out[i] = (float) json_array_get_double_element (a, i);
  return out;
}

/* Largest difference relative to max(|want|, 1e-3). cria rounds the same float
 * operations as PyTorch (fused where its vector kernels fuse), so most values are
 * bit-identical; elements that PyTorch handles in the scalar tail after its
 * vector lanes may differ by an ulp (about 1e-7 relative). */
static double
max_rel_diff (const float *got, JsonArray *want)
{
  double worst = 0;
  for (guint i = 0; i < json_array_get_length (want); i++) {
    double w = json_array_get_double_element (want, i);
    double d = fabs ((double) got[i] - w) / MAX (fabs (w), 1e-3);
    worst = MAX (worst, d);
  }
  return worst;
}

static void
test_adamw (void)
{
  JsonArray *cases = json_object_get_array_member (golden, "adamw");
  for (guint c = 0; c < json_array_get_length (cases); c++) {
    JsonObject *k = json_array_get_object_element (cases, c);
    CriaOptimConfig cfg;
    cria_optim_config_init (&cfg);
    cfg.lr = json_object_get_double_member (k, "lr");
    cfg.weight_decay = json_object_get_double_member (k, "weight_decay");
    cfg.warmup_steps = json_object_get_int_member (k, "warmup");
    cfg.total_steps = json_object_get_int_member (k, "total");
    CU_ASSERT_TRUE (cria_schedule_from_name (json_object_get_string_member (k, "schedule"), &cfg.schedule));
    g_autoptr (CriaAdamW) opt = cria_adamw_new (&cfg);
    JsonArray *start = json_object_get_array_member (k, "start");
    JsonArray *decay = json_object_get_array_member (k, "decay");
    guint np = json_array_get_length (start);
    float *params[8];
    for (guint i = 0; i < np; i++) {
      JsonArray *a = json_array_get_array_element (start, i);
      params[i] = floats (a);
      cria_adamw_add (opt, "p", params[i], json_array_get_length (a), json_array_get_boolean_element (decay, i));
    }
    JsonArray *steps = json_object_get_array_member (k, "grads");
    JsonArray *lrs = json_object_get_array_member (k, "lrs");
    for (guint s = 0; s < json_array_get_length (steps); s++) {
      JsonArray *gs = json_array_get_array_element (steps, s);
      float *grads[8];
      for (guint i = 0; i < np; i++)
        grads[i] = floats (json_array_get_array_element (gs, i));
      double want_lr = json_array_get_double_element (lrs, s);
      CU_ASSERT_DOUBLE_EQUAL (cria_adamw_get_lr (opt), want_lr, 1e-15 + 1e-12 * want_lr);
      cria_adamw_step (opt, (const float *const *) grads);
      for (guint i = 0; i < np; i++)
        g_free (grads[i]);
    }
    CU_ASSERT_EQUAL (cria_adamw_get_step (opt), (gint64) json_array_get_length (steps));
    JsonArray *final = json_object_get_array_member (k, "final");
    JsonArray *m = json_object_get_array_member (k, "exp_avg");
    JsonArray *v = json_object_get_array_member (k, "exp_avg_sq");
    for (guint i = 0; i < np; i++) {
      gsize n;
      double dp = max_rel_diff (params[i], json_array_get_array_element (final, i));
      double dm = max_rel_diff (cria_adamw_get_moment (opt, i, 0, &n), json_array_get_array_element (m, i));
      double dv = max_rel_diff (cria_adamw_get_moment (opt, i, 1, &n), json_array_get_array_element (v, i));
      printf ("\n  %s param %u: max relative difference %.3g (moments %.3g, %.3g)",
              json_object_get_string_member (k, "name"), i, dp, dm, dv);
      CU_ASSERT (dp < 1e-6);
      CU_ASSERT (dm < 1e-6);
      CU_ASSERT (dv < 1e-6);
      g_free (params[i]);
    }
  }
  printf ("\n");
}

static void
test_schedules (void)
{
  JsonArray *table = json_object_get_array_member (golden, "schedules");
  for (guint t = 0; t < json_array_get_length (table); t++) {
    JsonObject *k = json_array_get_object_element (table, t);
    CriaOptimConfig cfg;
    cria_optim_config_init (&cfg);
    cfg.lr = 2e-4;
    cfg.warmup_steps = json_object_get_int_member (k, "warmup");
    cfg.total_steps = json_object_get_int_member (k, "total");
    cria_schedule_from_name (json_object_get_string_member (k, "schedule"), &cfg.schedule);
    JsonArray *lrs = json_object_get_array_member (k, "lrs");
    for (guint s = 0; s < json_array_get_length (lrs); s++)
      CU_ASSERT_DOUBLE_EQUAL (cria_schedule_lr (&cfg, s), json_array_get_double_element (lrs, s), 1e-18);
  }
  CriaSchedule sch;
  CU_ASSERT_FALSE (cria_schedule_from_name ("exponential", &sch));
  CU_ASSERT_EQUAL (cria_warmup_from_ratio (0.1, 95), 10);
  CU_ASSERT_EQUAL (cria_warmup_from_ratio (0.0, 95), 0);
}

static void
test_clip (void)
{
  JsonObject *k = json_object_get_object_member (golden, "clip");
  JsonArray *g = json_object_get_array_member (k, "grads");
  float *grads[2] = { floats (json_array_get_array_element (g, 0)), floats (json_array_get_array_element (g, 1)) };
  gsize sizes[2] = { json_array_get_length (json_array_get_array_element (g, 0)),
                     json_array_get_length (json_array_get_array_element (g, 1)) };
  double norm = cria_clip_grad_norm (grads, sizes, 2, json_object_get_double_member (k, "max_norm"));
  CU_ASSERT_DOUBLE_EQUAL (norm, json_object_get_double_member (k, "norm"), 1e-5 * norm);
  JsonArray *clipped = json_object_get_array_member (k, "clipped");
  for (guint i = 0; i < 2; i++) {
    CU_ASSERT (max_rel_diff (grads[i], json_array_get_array_element (clipped, i)) < 1e-6);
    g_free (grads[i]);
  }
}

/* The trainer's path: the mean and the clipping folded into the norm's and
 * AdamW's passes, on several threads, equals scaling the gradients in place
 * and stepping on one thread, bit for bit. Sizes not a multiple of the
 * chunks or the vector lanes. */
static void
test_scaled_threads (void)
{
  const gsize sizes[] = { 3, 200003, 65536 + 17 };
  enum { N = G_N_ELEMENTS (sizes) };
  CriaOptimConfig c;
  cria_optim_config_init (&c);
  c.weight_decay = 0.1;
  float *params[2][N], *grads[2][N];
  CriaAdamW *one = cria_adamw_new (&c), *many = cria_adamw_new (&c);
  cria_adamw_set_threads (many, 3);
  GRand *r = g_rand_new_with_seed (7);
  for (guint k = 0; k < N; k++) {
    for (int a = 0; a < 2; a++) {
      params[a][k] = g_new (float, sizes[k]);
      grads[a][k] = g_new (float, sizes[k]);
    }
    for (gsize i = 0; i < sizes[k]; i++) {
      params[0][k][i] = params[1][k][i] = (float) g_rand_double_range (r, -1, 1);
      grads[0][k][i] = grads[1][k][i] = (float) g_rand_double_range (r, -3, 3);
    }
    cria_adamw_add (one, "p", params[0][k], sizes[k], k != 1);
    cria_adamw_add (many, "p", params[1][k], sizes[k], k != 1);
  }
  const float inv = 1.0f / 37.0f;
  for (int step = 0; step < 3; step++) {
    double norm_many = cria_adamw_grad_norm (many, (const float *const *) grads[1], inv);
    for (guint k = 0; k < N; k++)
      for (gsize i = 0; i < sizes[k]; i++)
        grads[0][k][i] *= inv;
    double norm_one = cria_clip_grad_norm (grads[0], sizes, N, 0.5);
    CU_ASSERT_EQUAL (norm_one, norm_many);
    CU_ASSERT (norm_one > 0.5);
    cria_adamw_step (one, (const float *const *) grads[0]);
    cria_adamw_step_scaled (many, (const float *const *) grads[1], inv, cria_clip_coef (norm_many, 0.5));
    for (guint k = 0; k < N; k++) {
      CU_ASSERT (memcmp (params[0][k], params[1][k], sizes[k] * sizeof (float)) == 0);
      gsize n;
      const float *v_one = cria_adamw_get_moment (one, k, 1, &n), *v_many = cria_adamw_get_moment (many, k, 1, &n);
      CU_ASSERT (memcmp (v_one, v_many, n * sizeof (float)) == 0);
      memcpy (grads[0][k], grads[1][k], sizes[k] * sizeof (float));
    }
  }
  CU_ASSERT_EQUAL (cria_clip_coef (0.25, 0.5), 1.0f);
  CU_ASSERT_EQUAL (cria_clip_coef (2.0, 0), 1.0f);
  g_rand_free (r);
  cria_adamw_free (one);
  cria_adamw_free (many);
  for (int a = 0; a < 2; a++)
    for (guint k = 0; k < N; k++) {
      g_free (params[a][k]);
      g_free (grads[a][k]);
    }
}

/* The passes a trainer runs on its gradients: sums (copy, then add, a NULL
 * gradient skipped) element for element as a loop makes them, and a step
 * that zeroes what it read equals the plain one; on several threads. */
static void
test_sum_and_zero (void)
{
  const gsize sizes[] = { 5, 65536 * 2 + 3 };
  enum { N = G_N_ELEMENTS (sizes) };
  CriaOptimConfig c;
  cria_optim_config_init (&c);
  float *params[2][N], *sums[N], *want[N], *g1[N], *g2[N];
  CriaAdamW *plain = cria_adamw_new (&c), *zeroing = cria_adamw_new (&c);
  cria_adamw_set_threads (zeroing, 2);
  GRand *r = g_rand_new_with_seed (11);
  for (guint k = 0; k < N; k++) {
    gsize n = sizes[k];
    params[0][k] = g_new (float, n);
    params[1][k] = g_new (float, n);
    sums[k] = g_new (float, n);
    want[k] = g_new (float, n);
    g1[k] = g_new (float, n);
    g2[k] = g_new (float, n);
    for (gsize i = 0; i < n; i++) {
      params[0][k][i] = params[1][k][i] = (float) g_rand_double_range (r, -1, 1);
      g1[k][i] = (float) g_rand_double_range (r, -3, 3);
      g2[k][i] = (float) g_rand_double_range (r, -3, 3);
      sums[k][i] = NAN; /* copied over */
      want[k][i] = k == 0 ? g1[k][i] : g1[k][i] + g2[k][i];
    }
    cria_adamw_add (plain, "p", params[0][k], n, TRUE);
    cria_adamw_add (zeroing, "p", params[1][k], n, TRUE);
  }
  float *second[N] = { NULL, g2[1] };
  cria_adamw_sum_grads (zeroing, sums, g1, TRUE, FALSE);
  cria_adamw_sum_grads (zeroing, sums, second, FALSE, TRUE);
  for (guint k = 0; k < N; k++) {
    CU_ASSERT (memcmp (sums[k], want[k], sizes[k] * sizeof (float)) == 0);
    CU_ASSERT (g1[k][0] != 0.0f);
    CU_ASSERT (k == 0 || (g2[k][0] == 0.0f && g2[k][sizes[k] - 1] == 0.0f));
  }
  const float inv = 1.0f / 7.0f;
  cria_adamw_step_scaled (plain, (const float *const *) want, inv, 0.5f);
  cria_adamw_step_scaled_zero (zeroing, sums, inv, 0.5f);
  for (guint k = 0; k < N; k++) {
    CU_ASSERT (memcmp (params[0][k], params[1][k], sizes[k] * sizeof (float)) == 0);
    gboolean zero = TRUE;
    for (gsize i = 0; i < sizes[k]; i++)
      zero &= sums[k][i] == 0.0f;
    CU_ASSERT (zero);
  }
  g_rand_free (r);
  cria_adamw_free (plain);
  cria_adamw_free (zeroing);
  for (guint k = 0; k < N; k++) {
    g_free (params[0][k]);
    g_free (params[1][k]);
    g_free (sums[k]);
    g_free (want[k]);
    g_free (g1[k]);
    g_free (g2[k]);
  }
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "AdamW steps equal torch.optim.AdamW", test_adamw },
    { "learning-rate schedules", test_schedules },
    { "gradient clipping equals clip_grad_norm_", test_clip },
    { "scaled and threaded steps equal the in-place ones", test_scaled_threads },
    { "gradient sums and a step that zeroes what it read", test_sum_and_zero },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("optim", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
