/* test-adalora: the rank allocator and the orthogonal regularizer against
 * tests/train/adalora_reference.py (PEFT's RankAllocator behaviour written
 * independently in torch). Both sides draw the same parameter updates and
 * gradients from splitmix64; budgets, masking steps and kept ranks must
 * match exactly, scores, thresholds, E and the regularizer within 1e-6
 * relative. */
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "cria-test.h"

#define REL_TOL 1e-6

static JsonParser *parser;

typedef struct {
  guint64 state;
} SplitMix;

static guint64
splitmix_next (SplitMix *s)
{
  guint64 z = (s->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* (2u - 1) * scale in f32, u a 24-bit fraction: exact on both sides. */
static void
draw (SplitMix *s, float *out, gint64 n, float scale)
{
  for (gint64 i = 0; i < n; i++) {
    float u = (float) (splitmix_next (s) >> 40) * 0x1p-24f;
    out[i] = (2.0f * u - 1.0f) * scale;
  }
}

typedef struct {
  gint64 out, in, r;
  float grad_scale;
  float *w[3], *g[3], *d[3], *reg_d[3]; /* P, E, Q; reg_d for P and Q only */
} Mod;

static gint64
part (const Mod *m, int p)
{
  return p == 0 ? m->out * m->r : p == 1 ? m->r : m->r * m->in;
}

static void
draw_module (SplitMix *s, Mod *m, float **dst, float scale_p, float scale_e, float scale_q)
{
  float scales[3] = { scale_p, scale_e, scale_q };
  for (int p = 0; p < 3; p++)
    draw (s, dst[p], part (m, p), scales[p]);
}

static gboolean
close_to (double got, double want, double floor)
{
  return fabs (got - want) <= REL_TOL * MAX (fabs (want), floor);
}

/* Compares an array of floats with a JSON array, counting mismatches. */
static guint
compare_array (const float *got, JsonArray *want, gint64 n, double floor, gboolean zeros_exact, const char *what,
               gint64 step)
{
  guint bad = 0;
  if ((gint64) json_array_get_length (want) != n) {
    printf ("\nstep %" G_GINT64_FORMAT ": %s has %u values, expected %" G_GINT64_FORMAT "\n", step, what,
            json_array_get_length (want), n);
    return 1;
  }
  for (gint64 i = 0; i < n; i++) {
    double w = json_array_get_double_element (want, (guint) i);
    gboolean ok = zeros_exact && (w == 0 || got[i] == 0) ? got[i] == w : close_to (got[i], w, floor);
    if (!ok && bad++ < 3)
      printf ("\nstep %" G_GINT64_FORMAT ": %s[%" G_GINT64_FORMAT "] = %.9g, reference %.9g", step, what, i,
              (double) got[i], w);
  }
  return bad;
}

static void
test_reference (void)
{
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  JsonObject *cfg = json_object_get_object_member (root, "config");
  CriaAdaloraConfig config = {
    .target_r = (int) json_object_get_int_member (cfg, "target_r"),
    .tinit = (int) json_object_get_int_member (cfg, "tinit"),
    .tfinal = (int) json_object_get_int_member (cfg, "tfinal"),
    .delta_t = (int) json_object_get_int_member (cfg, "delta_t"),
    .total_step = (int) json_object_get_int_member (cfg, "total_step"),
    .beta1 = json_object_get_double_member (cfg, "beta1"),
    .beta2 = json_object_get_double_member (cfg, "beta2"),
  };
  double orth_weight = json_object_get_double_member (cfg, "orth_reg_weight");
  JsonArray *jmods = json_object_get_array_member (root, "modules");
  guint n_mods = json_array_get_length (jmods);
  CU_ASSERT_EQUAL_FATAL (n_mods, 3);
  Mod mods[3];
  CriaAdaloraModule cm[3];
  float *reg_dP[3], *reg_dQ[3];
  SplitMix rng = { (guint64) json_object_get_int_member (root, "seed") };
  for (guint i = 0; i < n_mods; i++) {
    JsonObject *o = json_array_get_object_element (jmods, i);
    Mod *m = &mods[i];
    m->out = json_object_get_int_member (o, "out");
    m->in = json_object_get_int_member (o, "in");
    m->r = json_object_get_int_member (o, "r");
    m->grad_scale = (float) json_object_get_double_member (o, "grad_scale");
    for (int p = 0; p < 3; p++) {
      m->w[p] = g_new0 (float, part (m, p));
      m->g[p] = g_new0 (float, part (m, p));
      m->d[p] = g_new0 (float, part (m, p));
      m->reg_d[p] = g_new0 (float, part (m, p));
    }
    draw_module (&rng, m, m->w, 0.3f, 1.0f, 0.3f);
    cm[i] = (CriaAdaloraModule){ "m", m->out, m->in, m->r, m->w[0], m->w[1], m->w[2], m->g[0], m->g[1], m->g[2] };
    reg_dP[i] = m->reg_d[0];
    reg_dQ[i] = m->reg_d[2];
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdalora) alloc = cria_adalora_new (&config, cm, n_mods, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (alloc);

  JsonArray *steps = json_object_get_array_member (root, "steps");
  guint bad = 0, maskings = 0;
  for (guint s = 0; s < json_array_get_length (steps); s++) {
    JsonObject *rec = json_array_get_object_element (steps, s);
    gint64 step = json_object_get_int_member (rec, "step");
    for (guint i = 0; i < n_mods; i++) {
      draw_module (&rng, &mods[i], mods[i].d, 0.01f, 0.01f, 0.01f);
      for (int p = 0; p < 3; p++)
        for (gint64 e = 0; e < part (&mods[i], p); e++)
          mods[i].w[p][e] += mods[i].d[p][e];
      for (int p = 0; p < 3; p++)
        memset (mods[i].reg_d[p], 0, (gsize) part (&mods[i], p) * sizeof (float));
    }
    double reg = cria_adalora_orth_reg (cm, n_mods, orth_weight, reg_dP, reg_dQ);
    if (!close_to (reg, json_object_get_double_member (rec, "reg"), 0)) {
      printf ("\nstep %" G_GINT64_FORMAT ": regularizer %.12g, reference %.12g", step, reg,
              json_object_get_double_member (rec, "reg"));
      bad++;
    }
    if (json_object_has_member (rec, "reg_dP"))
      for (guint i = 0; i < n_mods; i++) {
        JsonArray *dp = json_array_get_array_element (json_object_get_array_member (rec, "reg_dP"), i);
        JsonArray *dq = json_array_get_array_element (json_object_get_array_member (rec, "reg_dQ"), i);
        bad += compare_array (mods[i].reg_d[0], dp, part (&mods[i], 0), 1e-3, FALSE, "dR/dP", step);
        bad += compare_array (mods[i].reg_d[2], dq, part (&mods[i], 2), 1e-3, FALSE, "dR/dQ", step);
      }
    for (guint i = 0; i < n_mods; i++)
      draw_module (&rng, &mods[i], mods[i].g, mods[i].grad_scale, mods[i].grad_scale, mods[i].grad_scale);

    gint64 budget = -1;
    gboolean masked = cria_adalora_step (alloc, (int) step, &budget);
    if (budget != json_object_get_int_member (rec, "budget") ||
        masked != json_object_get_boolean_member (rec, "masked")) {
      printf ("\nstep %" G_GINT64_FORMAT ": budget %" G_GINT64_FORMAT " masked %d, reference %" G_GINT64_FORMAT " %d",
              step, budget, masked, json_object_get_int_member (rec, "budget"),
              json_object_get_boolean_member (rec, "masked"));
      bad++;
    }
    if (masked && json_object_get_boolean_member (rec, "masked")) {
      maskings++;
      double thr = json_object_get_double_member (rec, "threshold");
      if (!close_to (cria_adalora_threshold (alloc), thr, 0)) {
        printf ("\nstep %" G_GINT64_FORMAT ": threshold %.9g, reference %.9g", step,
                (double) cria_adalora_threshold (alloc), thr);
        bad++;
      }
      for (guint i = 0; i < n_mods; i++) {
        JsonArray *sc = json_array_get_array_element (json_object_get_array_member (rec, "scores"), i);
        bad += compare_array (cria_adalora_scores (alloc, i), sc, mods[i].r, 0, FALSE, "score", step);
        JsonArray *kept = json_array_get_array_element (json_object_get_array_member (rec, "kept"), i);
        gint64 n_kept = 0, want_kept = 0;
        const gboolean *pattern = cria_adalora_rank_pattern (alloc, i, &n_kept);
        for (gint64 j = 0; j < mods[i].r; j++) {
          gboolean want = json_array_get_boolean_element (kept, (guint) j);
          want_kept += want;
          if (pattern[j] != want) {
            printf ("\nstep %" G_GINT64_FORMAT ": module %u rank %" G_GINT64_FORMAT " kept %d, reference %d", step, i,
                    j, pattern[j], want);
            bad++;
          }
        }
        CU_ASSERT_EQUAL (n_kept, want_kept);
      }
    }
    for (guint i = 0; i < n_mods; i++) {
      JsonArray *e = json_array_get_array_element (json_object_get_array_member (rec, "E"), i);
      bad += compare_array (mods[i].w[1], e, mods[i].r, 0, TRUE, "E", step);
    }
  }
  if (bad)
    printf ("\n%u mismatches\n", bad);
  CU_ASSERT_EQUAL (bad, 0);
  CU_ASSERT_EQUAL (maskings, 10);
  for (guint i = 0; i < n_mods; i++)
    for (int p = 0; p < 3; p++) {
      g_free (mods[i].w[p]);
      g_free (mods[i].g[p]);
      g_free (mods[i].d[p]);
      g_free (mods[i].reg_d[p]);
    }
}

static void
test_bad_config (void)
{
  float w[64] = { 0 };
  CriaAdaloraModule m = { "q_proj", 4, 4, 4, w, w, w, w, w, w };
  CriaAdaloraConfig good = { 2, 1, 1, 1, 10, 0.85, 0.85 };
  struct {
    CriaAdaloraConfig config;
    gint64 r;
    const char *message;
  } cases[] = {
    { { 2, 1, 1, 1, 10, 1.0, 0.85 }, 4, "beta1 and beta2 must be in (0, 1)" },
    { { 2, 1, 1, 1, 10, 0.85, 0.0 }, 4, "beta1 and beta2 must be in (0, 1)" },
    { { 2, 1, 1, 0, 10, 0.85, 0.85 }, 4, "deltaT must be at least 1" },
    { { 2, 5, 5, 1, 10, 0.85, 0.85 }, 4, "total_step must exceed tinit + tfinal" },
    { { 5, 1, 1, 1, 10, 0.85, 0.85 }, 4, "the target budget 5 exceeds the initial 4" },
    { good, 0, "module q_proj: needs out, in, r >= 1" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    m.r = cases[i].r;
    CU_ASSERT_PTR_NULL (cria_adalora_new (&cases[i].config, &m, 1, &error));
    CU_ASSERT_PTR_NOT_NULL_FATAL (error);
    if (!strstr (error->message, cases[i].message))
      printf ("\nunexpected: %s\n", error->message);
    CU_ASSERT_PTR_NOT_NULL (strstr (error->message, cases[i].message));
  }
  g_autoptr (GError) error = NULL;
  m.r = 4;
  CU_ASSERT_PTR_NULL (cria_adalora_new (&good, &m, 0, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "no module"));
}

/* Before any masking every rank is kept; with k < 1 nothing is masked. */
static void
test_edges (void)
{
  float w[20], g[20]; /* P 2x4, E 4, Q 4x2 */
  for (int i = 0; i < 20; i++)
    w[i] = g[i] = (float) (i + 1);
  CriaAdaloraModule m = { "m", 2, 2, 4, w, w + 8, w + 12, g, g, g };
  /* target 4 = init: the budget never falls, every masking has k = 0 */
  CriaAdaloraConfig c = { 4, 0, 0, 1, 5, 0.5, 0.5 };
  g_autoptr (CriaAdalora) a = cria_adalora_new (&c, &m, 1, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  gint64 n_kept = 0;
  CU_ASSERT_PTR_NULL (cria_adalora_scores (a, 0));
  CU_ASSERT_TRUE (isnan (cria_adalora_threshold (a)));
  cria_adalora_rank_pattern (a, 0, &n_kept);
  CU_ASSERT_EQUAL (n_kept, 4);
  for (int step = 1; step <= 5; step++) {
    gint64 budget;
    CU_ASSERT_TRUE (cria_adalora_step (a, step, &budget));
    CU_ASSERT_EQUAL (budget, 4);
  }
  cria_adalora_rank_pattern (a, 0, &n_kept);
  CU_ASSERT_EQUAL (n_kept, 4);
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL (w[8 + i], (float) (9 + i));
  /* an orthonormal P and Q: no regularizer and no gradient */
  float eye[4] = { 1, 0, 0, 1 }, dp[4] = { 0 }, dq[4] = { 0 };
  CriaAdaloraModule o = { "o", 2, 2, 2, eye, eye, eye, eye, eye, eye };
  float *dps[] = { dp }, *dqs[] = { dq };
  CU_ASSERT_EQUAL (cria_adalora_orth_reg (&o, 1, 0.5, dps, dqs), 0.0);
  CU_ASSERT_EQUAL (dp[0] + dp[1] + dp[2] + dp[3] + dq[0] + dq[1] + dq[2] + dq[3], 0.0f);
}

static void
cleanup (void)
{
  g_object_unref (parser);
}

static void
register_suites (void)
{
  atexit (cleanup);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", "adalora-golden.json",
                                            NULL);
  g_autoptr (GError) error = NULL;
  parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, &error)) {
    fprintf (stderr, "%s: %s\n", path, error->message);
    exit (99);
  }
  static const CriaTestCase cases[] = {
    { "scores, budgets, masks and regularizer match the reference", test_reference },
    { "invalid configurations", test_bad_config },
    { "no masking below k = 1; orthonormal factors", test_edges },
    { NULL },
  };
  cria_test_add_suite ("adalora", cases);
}

CRIA_TEST_MAIN (register_suites)
