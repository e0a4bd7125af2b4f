/* test-adalora-train: `cria train --adapter adalora` on tests/models/tiny-llama
 * and tiny-gpt2 (Conv1D weights) step by step against tests/train/adalora_train_reference.py, which trains
 * the same text with PEFT's AdaLoRA layer, regularizer and RankAllocator in
 * PyTorch (AdamW, clipping, linear schedule) from the same initial A and B.
 *
 * Per step: the logged loss within 1e-5 relative, E after the step (from the
 * step's checkpoint) within 1e-5 and zero exactly where the reference masked
 * it; at the end the rank pattern equal and the saved adapter within 1e-4.
 * Then a run stopped twice (in the budget schedule and after the final
 * masking) and resumed must repeat the uninterrupted run bit for bit: the
 * importance averages and the rank pattern go through the checkpoints. */
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "cria-test.h"

#define LOSS_TOL 1e-5
#define E_TOL 1e-5
#define FINAL_TOL 1e-4

static char *tmp;
/* of the suite's model */
static char *model_dir, *data_path, *run_a;
static GStrv options; /* the reference's cria train options */
static JsonParser *parser;
static JsonObject *golden;

static int
suite_clean (void)
{
  g_clear_pointer (&model_dir, g_free);
  g_clear_pointer (&data_path, g_free);
  g_clear_pointer (&run_a, g_free);
  g_clear_pointer (&options, g_strfreev);
  g_clear_object (&parser);
  golden = NULL;
  return 0;
}

/* The golden run of model `name`, its model directory and its data. */
static int
suite_init (const char *name)
{
  g_autofree char *base = g_build_filename (tmp, name, NULL);
  model_dir = cria_test_tiny_model (base, name);
  g_autofree char *file = g_strdup_printf ("adalora-train-golden-%s.json", name);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", file, NULL);
  parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, NULL))
    return 1;
  golden = json_node_get_object (json_parser_get_root (parser));
  JsonArray *opts = json_object_get_array_member (golden, "options");
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  for (guint i = 0; i < json_array_get_length (opts); i++)
    g_strv_builder_add (b, json_array_get_string_element (opts, i));
  options = g_strv_builder_end (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) record = json_node_new (JSON_NODE_OBJECT);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "output", json_object_get_string_member (golden, "text"));
  json_node_take_object (record, o);
  json_generator_set_root (gen, record);
  g_autofree char *line = json_generator_to_data (gen, NULL);
  g_autofree char *text = g_strconcat (line, "\n", NULL);
  data_path = g_build_filename (base, "text.jsonl", NULL);
  cria_test_write_file (data_path, text);
  run_a = g_build_filename (base, "run-a", NULL);
  return 0;
}

static int
init_llama (void)
{
  return suite_init ("tiny-llama");
}

static int
init_gpt2 (void)
{
  return suite_init ("tiny-gpt2");
}

static void
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
}

/* cria train with the reference's options, then `extra`; stderr in *err
 * (may be NULL: printed on failure). */
static int
train (const char *out, const char *const *extra, char **err)
{
  const char *common[] = { "train", "--model", model_dir, "--data", data_path, "--out", out, NULL };
  return cria_test_run_cria_lists (err, common, (const char *const *) options, extra, NULL);
}

static gboolean
run_a_once (void)
{
  g_autofree char *report = g_build_filename (run_a, "report.json", NULL);
  return g_file_test (report, G_FILE_TEST_EXISTS) || train (run_a, NULL, NULL) == 0;
}

/* The step lines of a run's log: "loss" by step (1-based; NAN where none). */
static GArray *
logged_losses (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (path);
  GArray *losses = g_array_new (FALSE, FALSE, sizeof (double));
  g_auto (GStrv) lines = g_strsplit (text ? text : "", "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    g_autoptr (JsonParser) p = json_parser_new ();
    if (!*lines[i] || !json_parser_load_from_data (p, lines[i], -1, NULL))
      continue;
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    if (!json_object_has_member (o, "loss"))
      continue;
    guint step = (guint) json_object_get_int_member (o, "step");
    double nan = NAN;
    while (losses->len < step)
      g_array_append_val (losses, nan);
    g_array_index (losses, double, step - 1) = json_object_get_double_member (o, "loss");
  }
  return losses;
}

static const char *
module_name (guint m)
{
  return json_array_get_string_element (json_object_get_array_member (golden, "modules"), m);
}

/* The f32 tensor KEY of module m ("lora_E") in a safetensors file. */
static const CriaWeight *
tensor_of (CriaSafetensors *st, guint m, const char *key)
{
  g_autofree char *name = g_strdup_printf ("base_model.model.%s.%s", module_name (m), key);
  const CriaWeight *w = cria_safetensors_lookup (st, name);
  if (!w)
    printf ("\n%s: no tensor %s\n", cria_safetensors_get_path (st), name);
  CU_ASSERT_PTR_NOT_NULL_FATAL (w);
  CU_ASSERT_EQUAL_FATAL (w->dtype, CRIA_DTYPE_F32);
  return w;
}

static void
test_losses (void)
{
  CU_ASSERT_TRUE_FATAL (run_a_once ());
  JsonArray *steps = json_object_get_array_member (golden, "steps");
  g_autoptr (GArray) got = logged_losses (run_a);
  CU_ASSERT_EQUAL_FATAL (got->len, json_array_get_length (steps));
  double worst = 0;
  for (guint s = 0; s < got->len; s++) {
    double want = json_object_get_double_member (json_array_get_object_element (steps, s), "loss");
    double rel = fabs (g_array_index (got, double, s) - want) / fabs (want);
    worst = MAX (worst, isnan (rel) ? INFINITY : rel);
  }
  printf ("\nlargest relative loss difference over %u steps: %.3g\n", got->len, worst);
  CU_ASSERT_TRUE (worst <= LOSS_TOL);
}

/* E after every step, from the step's checkpoint: the same values, and zero
 * exactly where the reference's masks put zeros. */
static void
test_masks_per_step (void)
{
  CU_ASSERT_TRUE_FATAL (run_a_once ());
  JsonArray *steps = json_object_get_array_member (golden, "steps");
  guint n_mod = json_array_get_length (json_object_get_array_member (golden, "modules"));
  double worst = 0;
  guint zero_mismatch = 0;
  for (guint s = 0; s < json_array_get_length (steps); s++) {
    JsonObject *step = json_array_get_object_element (steps, s);
    g_autofree char *name = g_strdup_printf ("checkpoint-%u", s + 1);
    g_autofree char *path = g_build_filename (run_a, "checkpoints", name, "params.safetensors", NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (st);
    JsonArray *es = json_object_get_array_member (step, "E");
    for (guint m = 0; m < n_mod; m++) {
      JsonArray *want = json_array_get_array_element (es, m);
      const CriaWeight *w = tensor_of (st, m, "lora_E");
      CU_ASSERT_EQUAL_FATAL ((guint) w->n_elements, json_array_get_length (want));
      const float *e = w->data;
      for (guint j = 0; j < json_array_get_length (want); j++) {
        double v = json_array_get_double_element (want, j);
        worst = MAX (worst, fabs (e[j] - v));
        zero_mismatch += (e[j] == 0.0f) != (v == 0.0);
      }
    }
  }
  printf ("\nE per step: largest difference %.3g, %u zero/non-zero mismatches\n", worst, zero_mismatch);
  CU_ASSERT_TRUE (worst <= E_TOL);
  CU_ASSERT_EQUAL (zero_mismatch, 0);
}

/* The saved adapter: PEFT's rank_pattern equal, the kept ranks of A, E, B
 * within FINAL_TOL. */
static void
test_final_adapter (void)
{
  CU_ASSERT_TRUE_FATAL (run_a_once ());
  g_autofree char *cfg_path = g_build_filename (run_a, "adapter_config.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, cfg_path, NULL));
  JsonObject *pattern = json_object_get_object_member (json_node_get_object (json_parser_get_root (p)), "rank_pattern");
  CU_ASSERT_PTR_NOT_NULL_FATAL (pattern);
  g_autofree char *st_path = g_build_filename (run_a, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  JsonArray *want_pattern = json_object_get_array_member (golden, "rank_pattern");
  JsonArray *finals = json_object_get_array_member (golden, "final");
  double worst = 0;
  for (guint m = 0; m < json_array_get_length (finals); m++) {
    g_autofree char *key = g_strconcat (module_name (m), ".lora_E.default", NULL);
    JsonArray *kept_want = json_array_get_array_element (want_pattern, m);
    JsonArray *kept_got = json_object_get_array_member (pattern, key);
    CU_ASSERT_PTR_NOT_NULL_FATAL (kept_got);
    guint r = json_array_get_length (kept_want), k = 0;
    CU_ASSERT_EQUAL_FATAL (json_array_get_length (kept_got), r);
    for (guint j = 0; j < r; j++) {
      CU_ASSERT_EQUAL (json_array_get_boolean_element (kept_got, j), json_array_get_boolean_element (kept_want, j));
      k += json_array_get_boolean_element (kept_want, j);
    }
    /* A [r, in] keeps rows, E [r, 1] entries, B [out, r] columns. */
    JsonObject *f = json_array_get_object_element (finals, m);
    const char *keys[] = { "lora_A", "lora_E", "lora_B" };
    for (guint t = 0; t < 3; t++) {
      JsonArray *full = json_object_get_array_member (f, keys[t]);
      const CriaWeight *w = tensor_of (st, m, keys[t]);
      gint64 n = json_array_get_length (full);
      gint64 cols = t == 1 ? 1 : n / r; /* in for A, out for B */
      CU_ASSERT_EQUAL_FATAL (w->n_elements, (gint64) k * cols);
      const float *got = w->data;
      for (gint64 i = 0, c = 0; i < n; i++) {
        gint64 rank = t == 2 ? i % r : i / cols;
        if (!json_array_get_boolean_element (kept_want, (guint) rank))
          continue;
        /* B's kept columns stay in row order, k per row */
        gint64 at = t == 2 ? (i / r) * k + c % k : c;
        worst = MAX (worst, fabs (got[at] - json_array_get_double_element (full, (guint) i)));
        c++;
      }
    }
  }
  printf ("\nsaved adapter: largest difference %.3g\n", worst);
  CU_ASSERT_TRUE (worst <= FINAL_TOL);
}

static gboolean
same_file (const char *a, const char *b)
{
  gsize na = 0, nb = 0;
  g_autofree char *da = NULL, *db = NULL;
  return g_file_get_contents (a, &da, &na, NULL) && g_file_get_contents (b, &db, &nb, NULL) && na == nb &&
         memcmp (da, db, na) == 0;
}

/* Stopped at step 7 (ranks being allocated, importance averages running)
 * and at 13 (after the final masking), resumed each time: the loss curve
 * and the adapter are those of the run that never stopped. */
static void
test_resume (void)
{
  CU_ASSERT_TRUE_FATAL (run_a_once ());
  g_autofree char *b = g_strconcat (run_a, "-resumed", NULL);
  CU_ASSERT_EQUAL_FATAL (train (b, (const char *[]){ "--stop-after", "7", NULL }, NULL), 0);
  g_autofree char *c7 = g_build_filename (b, "checkpoints", "checkpoint-7", NULL);
  CU_ASSERT_EQUAL_FATAL (train (b, (const char *[]){ "--resume", c7, "--stop-after", "6", NULL }, NULL), 0);
  g_autofree char *c13 = g_build_filename (b, "checkpoints", "checkpoint-13", NULL);
  CU_ASSERT_EQUAL_FATAL (train (b, (const char *[]){ "--resume", c13, NULL }, NULL), 0);
  g_autoptr (GArray) la = logged_losses (run_a), lb = logged_losses (b);
  CU_ASSERT_EQUAL_FATAL (la->len, lb->len);
  CU_ASSERT_EQUAL (memcmp (la->data, lb->data, la->len * sizeof (double)), 0);
  static const char *const files[] = { "adapter_model.safetensors", "adapter_config.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *fa = g_build_filename (run_a, files[i], NULL), *fb = g_build_filename (b, files[i], NULL);
    if (!same_file (fa, fb))
      printf ("\n%s differs after resuming\n", files[i]);
    CU_ASSERT_TRUE (same_file (fa, fb));
  }
}

/* A checkpoint whose adalora state was damaged is refused with a line
 * naming the file and the field, before any step. */
static void
test_bad_state (void)
{
  g_autofree char *out = g_build_filename (tmp, "tiny-llama", "run-bad", NULL);
  CU_ASSERT_EQUAL_FATAL (train (out, (const char *[]){ "--stop-after", "2", NULL }, NULL), 0);
  g_autofree char *ckpt = g_build_filename (out, "checkpoints", "checkpoint-2", NULL);
  g_autofree char *path = g_build_filename (ckpt, "trainer_state.json", NULL);
  g_autofree char *good = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (good);
  enum { MODULE0, STATE, ROOT }; /* where the damage goes */
  static const struct {
    int where;
    const char *member, *value, *message;
  } cases[] = {
    { MODULE0, "exp_avg_ipt.lora_A", "\"AAAA\"", "modules[0].exp_avg_ipt.lora_A is not 128 f32 values" },
    { MODULE0, "exp_avg_unc.lora_E", "17", "modules[0].exp_avg_unc.lora_E is not 4 f32 values" },
    { MODULE0, "kept", "[true,5,true,true]", "modules[0] is not model.layers.0.self_attn.q_proj with 4 booleans" },
    { MODULE0, "module", "\"model.layers.9.q_proj\"", "modules[0] is not model.layers.0.self_attn.q_proj" },
    { STATE, "modules", "[]", "modules does not hold the 6 adapted layers" },
    { STATE, "total_step", "\"16\"", "total_step of the resumed state" },
    { ROOT, "adapter_state", "7", "adalora: not an object" },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autoptr (JsonParser) p = json_parser_new ();
    CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (p, good, -1, NULL));
    JsonObject *root = json_node_get_object (json_parser_get_root (p));
    JsonObject *state = json_object_get_object_member (root, "adapter_state");
    CU_ASSERT_PTR_NOT_NULL_FATAL (state);
    JsonObject *target = cases[c].where == ROOT ? root : state;
    if (cases[c].where == MODULE0)
      target = json_array_get_object_element (json_object_get_array_member (state, "modules"), 0);
    json_object_set_member (target, cases[c].member, json_from_string (cases[c].value, NULL));
    g_autoptr (JsonGenerator) gen = json_generator_new ();
    json_generator_set_root (gen, json_parser_get_root (p));
    g_autofree char *text = json_generator_to_data (gen, NULL);
    cria_test_write_file (path, text);
    g_autofree char *err = NULL;
    int status = train (out, (const char *[]){ "--resume", ckpt, NULL }, &err);
    CU_ASSERT_EQUAL (status, 1);
    gboolean named = err && strstr (err, "checkpoint-2/trainer_state.json: field adapter_state: ") &&
                     strstr (err, cases[c].message);
    if (!named)
      printf ("\ncase %u: expected '%s' in: %s\n", c, cases[c].message, err ? err : "(nothing)");
    CU_ASSERT_TRUE (named);
  }
}

static void
register_suites (void)
{
  tmp = cria_test_tmpdir ();
  atexit (teardown);
  static const CriaTestCase common[] = {
    { "loss per step = PEFT AdaLoRA in torch", test_losses },
    { "E and its masks per step = the reference's", test_masks_per_step },
    { "saved adapter and rank pattern = the reference's", test_final_adapter },
    { "stopped and resumed twice = never stopped", test_resume },
    { NULL },
  };
  CU_pSuite llama = CU_add_suite ("adalora-train tiny-llama", init_llama, suite_clean);
  CU_pSuite gpt2 = CU_add_suite ("adalora-train tiny-gpt2", init_gpt2, suite_clean);
  for (const CriaTestCase *c = common; c->name; c++) {
    CU_add_test (llama, c->name, c->func);
    CU_add_test (gpt2, c->name, c->func);
  }
  CU_add_test (llama, "a damaged adalora checkpoint state is refused", test_bad_state);
}

CRIA_TEST_MAIN (register_suites)
