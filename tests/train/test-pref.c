/* test-pref: `cria train --objective dpo|ipo|orpo` with a LoRA on
 * tests/models/tiny-llama against tests/train/pref_reference.py (PyTorch,
 * written from the papers and TRL's losses), step by step: the logged loss,
 * rewards, accuracy and margin within 1e-5 relative (rewards within 1e-5 of
 * their scale, the log-prob difference they are made of), and each adapter
 * gradient, recovered from AdamW's first moment in the step's checkpoint
 * (m_k = b1 m_(k-1) + (1 - b1) g_k), within 1e-5 of its largest magnitude.
 * A fresh LoRA (B = 0) makes the first DPO loss exactly ln 2 and the rewards
 * exactly 0. Then the preference layouts cria reads (TRL, UltraFeedback,
 * LLaMA-Factory's sharegpt ranking) and their errors. */
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "cria-test.h"

#define TOL 1e-5

static char *tmp, *model_dir, *data_path, *format_path;
static JsonParser *parser;
static JsonObject *golden;

static int
suite_init (void)
{
  tmp = cria_test_tmpdir ();
  model_dir = cria_test_tiny_model (tmp, "tiny-llama");
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", "pref-golden.json", NULL);
  parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, NULL))
    return 1;
  golden = json_node_get_object (json_parser_get_root (parser));
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (GString) lines = g_string_new (NULL);
  JsonArray *pairs = json_object_get_array_member (golden, "pairs");
  for (guint i = 0; i < json_array_get_length (pairs); i++) {
    json_generator_set_root (gen, json_array_get_element (pairs, i));
    g_autofree char *line = json_generator_to_data (gen, NULL);
    g_string_append_printf (lines, "%s\n", line);
  }
  data_path = g_build_filename (tmp, "pairs.jsonl", NULL);
  cria_test_write_file (data_path, lines->str);
  json_generator_set_root (gen, json_object_get_member (golden, "format"));
  g_autofree char *format = json_generator_to_data (gen, NULL);
  format_path = g_build_filename (tmp, "qa.json", NULL);
  cria_test_write_file (format_path, format);
  return 0;
}

static int
suite_clean (void)
{
  cria_test_rmtree (tmp);
  g_clear_pointer (&tmp, g_free);
  g_clear_pointer (&model_dir, g_free);
  g_clear_pointer (&data_path, g_free);
  g_clear_pointer (&format_path, g_free);
  g_clear_object (&parser);
  return 0;
}

/* The step lines of a run's log, by step. */
static GPtrArray *
step_lines (const char *dir, GPtrArray *keep)
{
  g_autofree char *path = g_build_filename (dir, "train-log.jsonl", NULL);
  g_autofree char *text = cria_test_read_file (path);
  GPtrArray *steps = g_ptr_array_new ();
  g_auto (GStrv) lines = g_strsplit (text ? text : "", "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    JsonParser *p = json_parser_new ();
    g_ptr_array_add (keep, p);
    if (!*lines[i] || !json_parser_load_from_data (p, lines[i], -1, NULL))
      continue;
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    if (json_object_has_member (o, "loss"))
      g_ptr_array_add (steps, o);
  }
  return steps;
}

/* The cria train options of golden case c. */
static GStrv
case_options (guint c)
{
  JsonObject *cs = json_array_get_object_element (json_object_get_array_member (golden, "cases"), c);
  JsonArray *opts = json_object_get_array_member (cs, "options");
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  for (guint i = 0; i < json_array_get_length (opts); i++)
    g_strv_builder_add (b, json_array_get_string_element (opts, i));
  return g_strv_builder_end (b);
}

/* The case's run, its log compared; returns the run directory. */
static char *
run_case (guint c, double *worst_loss, double *worst_reward)
{
  JsonObject *cs = json_array_get_object_element (json_object_get_array_member (golden, "cases"), c);
  g_auto (GStrv) options = case_options (c);
  g_autofree char *name = g_strdup_printf ("run-%u", c);
  char *out = g_build_filename (tmp, name, NULL);
  const char *common[] = { "train", "--model", model_dir,  "--data",    data_path,
                           "--out", out,       "--format", format_path, NULL };
  int rc = cria_test_run_cria_lists (NULL, common, (const char *const *) options, NULL);
  CU_ASSERT_EQUAL_FATAL (rc, 0);
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) got = step_lines (out, keep);
  JsonArray *steps = json_object_get_array_member (cs, "steps");
  CU_ASSERT_EQUAL_FATAL (got->len, json_array_get_length (steps));
  double beta = json_object_get_double_member (cs, "beta");
  for (guint s = 0; s < got->len; s++) {
    JsonObject *want = json_array_get_object_element (steps, s), *have = g_ptr_array_index (got, s);
    static const char *const keys[] = {
      "loss", "nll_loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"
    };
    for (guint k = 0; k < G_N_ELEMENTS (keys); k++) {
      if (!json_object_has_member (want, keys[k]))
        continue;
      CU_ASSERT_TRUE_FATAL (json_object_has_member (have, keys[k]));
      double w = json_object_get_double_member (want, keys[k]), h = json_object_get_double_member (have, keys[k]);
      /* A reward is beta times a log-prob difference: its scale is beta's. */
      double d = fabs (h - w) / (k < 2 ? fabs (w) : MAX (fabs (w), beta));
      if (k < 2)
        *worst_loss = MAX (*worst_loss, isnan (d) ? INFINITY : d);
      else
        *worst_reward = MAX (*worst_reward, isnan (d) ? INFINITY : d);
    }
  }
  return out;
}

/* The gradients of each step from the AdamW moments of its checkpoint. */
static double
grads_case (guint c, const char *out)
{
  JsonObject *cs = json_array_get_object_element (json_object_get_array_member (golden, "cases"), c);
  JsonArray *steps = json_object_get_array_member (cs, "steps");
  g_autoptr (CriaSafetensors) prev = NULL;
  double worst = 0;
  for (guint s = 0; s < json_array_get_length (steps); s++) {
    g_autofree char *name = g_strdup_printf ("checkpoint-%u", s + 1);
    g_autofree char *path = g_build_filename (out, "checkpoints", name, "optimizer.safetensors", NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (st);
    JsonObject *grads = json_object_get_object_member (json_array_get_object_element (steps, s), "grads");
    g_autoptr (GList) names = json_object_get_members (grads);
    for (GList *l = names; l; l = l->next) {
      JsonArray *want = json_object_get_array_member (grads, l->data);
      g_autofree char *key = g_strconcat (l->data, ".exp_avg", NULL);
      const CriaWeight *m = cria_safetensors_lookup (st, key);
      const CriaWeight *m0 = prev ? cria_safetensors_lookup (prev, key) : NULL;
      CU_ASSERT_PTR_NOT_NULL_FATAL (m);
      CU_ASSERT_EQUAL_FATAL ((guint) m->n_elements, json_array_get_length (want));
      double scale = 0, diff = 0;
      for (guint j = 0; j < json_array_get_length (want); j++) {
        double g = (((const float *) m->data)[j] - (m0 ? 0.9 * ((const float *) m0->data)[j] : 0)) / 0.1;
        double w = json_array_get_double_element (want, j);
        scale = MAX (scale, fabs (w));
        diff = MAX (diff, fabs (g - w));
      }
      /* lora_A has no gradient while B is 0 */
      worst = MAX (worst, scale > 0 ? diff / scale : diff);
    }
    g_clear_pointer (&prev, cria_safetensors_free);
    prev = g_steal_pointer (&st);
  }
  return worst;
}

static void
test_objectives (void)
{
  guint n = json_array_get_length (json_object_get_array_member (golden, "cases"));
  for (guint c = 0; c < n; c++) {
    JsonObject *cs = json_array_get_object_element (json_object_get_array_member (golden, "cases"), c);
    double worst_loss = 0, worst_reward = 0;
    g_autofree char *out = run_case (c, &worst_loss, &worst_reward);
    double worst_grad = grads_case (c, out);
    printf ("\n%s (beta %g, smoothing %g): largest relative difference: loss %.3g, rewards %.3g, gradients %.3g",
            json_object_get_string_member (cs, "objective"), json_object_get_double_member (cs, "beta"),
            json_object_get_double_member (cs, "smoothing"), worst_loss, worst_reward, worst_grad);
    CU_ASSERT_TRUE (worst_loss <= TOL);
    CU_ASSERT_TRUE (worst_reward <= TOL);
    CU_ASSERT_TRUE (worst_grad <= TOL);
    if (c == 0) {
      /* B = 0: the policy is the reference, bit for bit */
      g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_object_unref);
      g_autoptr (GPtrArray) got = step_lines (out, keep);
      JsonObject *first = g_ptr_array_index (got, 0);
      CU_ASSERT_EQUAL (json_object_get_double_member (first, "loss"), M_LN2);
      CU_ASSERT_EQUAL (json_object_get_double_member (first, "rewards/chosen"), 0.0);
      CU_ASSERT_EQUAL (json_object_get_double_member (first, "rewards/rejected"), 0.0);
      CU_ASSERT_EQUAL (json_object_get_double_member (first, "rewards/margins"), 0.0);
    }
  }
  printf ("\n");
}

/* The reference computed once (precompute-ref), read from --ref-model (the
 * same weights), or for full fine-tuning (always precomputed) gives the
 * first case's first step: ln 2 and zero rewards; the first two the same log
 * as the reference of the adapter switched off. */
static void
test_reference_variants (void)
{
  g_auto (GStrv) options = case_options (0);
  g_autofree char *base = g_build_filename (tmp, "run-0", NULL);
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) want = step_lines (base, keep);
  CU_ASSERT_TRUE_FATAL (want->len > 0);
  const char *precompute[] = { "--precompute-ref", NULL };
  const char *ref_model[] = { "--ref-model", model_dir, NULL };
  const char *full[] = { "--adapter", "full", "--lr", "1e-4", NULL };
  const char *const *variants[] = { precompute, ref_model, full };
  for (guint v = 0; v < G_N_ELEMENTS (variants); v++) {
    g_autofree char *name = g_strdup_printf ("run-ref-%u", v);
    g_autofree char *out = g_build_filename (tmp, name, NULL);
    const char *common[] = { "train", "--model", model_dir,  "--data",    data_path,
                             "--out", out,       "--format", format_path, NULL };
    int rc = cria_test_run_cria_lists (NULL, common, (const char *const *) options, variants[v], NULL);
    CU_ASSERT_EQUAL_FATAL (rc, 0);
    g_autoptr (GPtrArray) got = step_lines (out, keep);
    CU_ASSERT_EQUAL_FATAL (got->len, want->len);
    JsonObject *first = g_ptr_array_index (got, 0);
    CU_ASSERT_EQUAL (json_object_get_double_member (first, "loss"), M_LN2);
    CU_ASSERT_EQUAL (json_object_get_double_member (first, "rewards/margins"), 0.0);
    for (guint s = 0; v < 2 && s < got->len; s++)
      CU_ASSERT_EQUAL (json_object_get_double_member (g_ptr_array_index (got, s), "loss"),
                       json_object_get_double_member (g_ptr_array_index (want, s), "loss"));
  }
}

/* A DPO run stopped after a step and resumed logs what the run that never
 * stopped logged. */
static void
test_resume (void)
{
  g_auto (GStrv) options = case_options (0);
  g_autofree char *base = g_build_filename (tmp, "run-0", NULL);
  g_autofree char *out = g_build_filename (tmp, "run-resumed", NULL);
  g_autofree char *ckpt = g_build_filename (out, "checkpoints", "checkpoint-1", NULL);
  const char *common[] = { "train", "--model", model_dir,  "--data",    data_path,
                           "--out", out,       "--format", format_path, NULL };
  const char *stop[] = { "--stop-after", "1", NULL }, *resume[] = { "--resume", ckpt, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria_lists (NULL, common, (const char *const *) options, stop, NULL), 0);
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria_lists (NULL, common, (const char *const *) options, resume, NULL), 0);
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) want = step_lines (base, keep), got = step_lines (out, keep);
  CU_ASSERT_EQUAL_FATAL (got->len, want->len);
  for (guint s = 0; s < got->len; s++)
    CU_ASSERT_EQUAL (json_object_get_double_member (g_ptr_array_index (got, s), "rewards/margins"),
                     json_object_get_double_member (g_ptr_array_index (want, s), "rewards/margins"));
}

/* cria eval --compare on the pairs gives the rewards the trainer's last
 * evaluation logged for them (another code path: the generation runtime). */
static void
test_eval (void)
{
  g_auto (GStrv) options = case_options (0);
  g_autofree char *out = g_build_filename (tmp, "run-eval", NULL);
  const char *common[] = { "train", "--model", model_dir,  "--data",    data_path,
                           "--out", out,       "--format", format_path, NULL };
  const char *eval_data[] = { "--eval-data", data_path, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria_lists (NULL, common, (const char *const *) options, eval_data, NULL), 0);
  g_autofree char *log_path = g_build_filename (out, "train-log.jsonl", NULL);
  g_autofree char *log = cria_test_read_file (log_path);
  g_auto (GStrv) lines = g_strsplit (log, "\n", -1);
  guint last = g_strv_length (lines);
  while (last > 0 && !strstr (lines[last - 1], "eval_rewards"))
    last--;
  CU_ASSERT_TRUE_FATAL (last > 0);
  g_autoptr (JsonParser) lp = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (lp, lines[last - 1], -1, NULL));
  JsonObject *logged = json_node_get_object (json_parser_get_root (lp));
  const char *args[] = { "eval",   "--model", model_dir,         "--adapter", out,      "--compare",
                         "--data", data_path, "--prompt-format", format_path, "--json", NULL };
  g_autofree char *summary = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &summary, NULL), 0);
  g_autoptr (JsonParser) sp = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (sp, summary, -1, NULL));
  JsonObject *rewards = json_object_get_object_member (json_node_get_object (json_parser_get_root (sp)), "rewards");
  double want = json_object_get_double_member (logged, "eval_rewards/margins");
  double got = json_object_get_double_member (rewards, "margin");
  printf ("\neval_rewards/margins %.9g, cria eval's reward margin %.9g\n", want, got);
  CU_ASSERT_TRUE (fabs (got - want) <= 1e-5 * fabs (want));
  CU_ASSERT_EQUAL (json_object_get_double_member (rewards, "accuracy"),
                   json_object_get_double_member (logged, "eval_rewards/accuracies"));
}

/* A record in a preference layout, through the file source, as cria's JSON line. */
static char *
read_as (const char *row, char **err)
{
  g_autofree char *path = g_build_filename (tmp, "layout.jsonl", NULL);
  g_autofree char *text = g_strconcat (row, "\n", NULL);
  cria_test_write_file (path, text);
  g_autofree char *pipe = g_strdup_printf ("file location=%s ! jsonl location=-", path);
  const char *args[] = { "data", "--quiet", pipe, NULL };
  char *out = NULL;
  int rc = cria_test_run_cria (args, NULL, &out, err);
  if (rc != 0)
    g_clear_pointer (&out, g_free);
  else if (out)
    g_strchomp (out);
  return out;
}

static void
test_layouts (void)
{
  static const char *const cases[][2] = {
    { "{\"prompt\":\"2+2?\",\"chosen\":\"4\",\"rejected\":\"5\"}",
      "{\"instruction\":\"2+2?\",\"chosen\":\"4\",\"rejected\":\"5\"}" },
    /* TRL conversational, explicit prompt */
    { "{\"prompt\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"chosen\":[{\"role\":\"assistant\",\"content\":\"Hello\"}]"
      ","
      "\"rejected\":[{\"role\":\"assistant\",\"content\":\"Bye\"}]}",
      "{\"chosen\":\"Hello\",\"rejected\":\"Bye\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}" },
    /* UltraFeedback binarized: the prompt inside each answer's conversation, messages repeating chosen */
    { "{\"prompt\":\"Q\",\"prompt_id\":\"7\",\"chosen\":[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\","
      "\"content\":\"g\"}],\"rejected\":[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":"
      "\"b\"}],\"messages\":[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":\"g\"}],"
      "\"score_chosen\":8.0,\"score_rejected\":5.0}",
      "{\"chosen\":\"g\",\"rejected\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"Q\"}],\"prompt\":\"Q\","
      "\"prompt_id\":\"7\",\"score_chosen\":8.0,\"score_rejected\":5.0}" },
    /* LLaMA-Factory sharegpt ranking */
    { "{\"conversations\":[{\"from\":\"human\",\"value\":\"Hi\"}],\"chosen\":{\"from\":\"gpt\",\"value\":\"Hello\"},"
      "\"rejected\":{\"from\":\"gpt\",\"value\":\"Bye\"}}",
      "{\"chosen\":\"Hello\",\"rejected\":\"Bye\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}" },
    /* LLaMA-Factory alpaca ranking */
    { "{\"instruction\":\"Add\",\"input\":\"1 1\",\"chosen\":\"2\",\"rejected\":\"3\"}",
      "{\"instruction\":\"Add\",\"input\":\"1 1\",\"chosen\":\"2\",\"rejected\":\"3\"}" },
  };
  /* one file of every layout, one line each */
  g_autoptr (GString) rows = g_string_new (NULL), want = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_string_append_printf (rows, "%s%s", i ? "\n" : "", cases[i][0]);
    g_string_append_printf (want, "%s%s", i ? "\n" : "", cases[i][1]);
  }
  g_autofree char *err = NULL;
  g_autofree char *got = read_as (rows->str, &err);
  if (!got || strcmp (got, want->str))
    printf ("\ngot %s (%s)\n", got ? got : "nothing", err ? err : "");
  CU_ASSERT_STRING_EQUAL (got ? got : "", want->str);
  static const char *const bad[][2] = {
    { "{\"prompt\":\"x\",\"chosen\":\"a\"}", "layout.jsonl:1: field 'rejected': missing" },
    { "{\"chosen\":[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":\"g\"}],\"rejected\":[{"
      "\"role\":\"user\",\"content\":\"Z\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
      "layout.jsonl:1: field 'rejected': its conversation before the answer differs" },
    { "{\"prompt\":\"x\",\"chosen\":[{\"role\":\"user\",\"content\":\"g\"}],\"rejected\":\"b\"}",
      "layout.jsonl:1: field 'chosen': the answer (its last message) is the user's" },
    { "{\"prompt\":\"x\",\"chosen\":7,\"rejected\":\"b\"}", "layout.jsonl:1: field 'chosen': expected a string" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *why = NULL;
    g_autofree char *none = read_as (bad[i][0], &why);
    CU_ASSERT_PTR_NULL (none);
    if (!why || !strstr (why, bad[i][1]))
      printf ("\nbad case %u: %s\n", i, why ? why : "no error");
    CU_ASSERT_PTR_NOT_NULL (why ? strstr (why, bad[i][1]) : NULL);
  }
}

/* The alpaca, sharegpt and messages sinks write pairs that read back the
 * same; dataset_info.json marks a file of pairs as a ranking dataset. */
static void
test_sinks (void)
{
  g_autofree char *p1 = g_strdup_printf ("file location=%s ! jsonl location=-", data_path);
  const char *a1[] = { "data", "--quiet", p1, NULL };
  g_autofree char *want = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a1, NULL, &want, NULL), 0);
  for (guint k = 0; k < 3; k++) {
    static const char *const sinks[] = { "alpaca", "sharegpt", "messages" };
    g_autofree char *out = g_strdup_printf ("%s/pairs-%s.json", tmp, sinks[k]);
    g_autofree char *info = g_build_filename (tmp, "dataset_info.json", NULL);
    g_autofree char *pipe = g_strdup_printf ("file location=%s ! %s location=%s%s%s", data_path, sinks[k], out,
                                             k < 2 ? " dataset-info=" : "", k < 2 ? info : "");
    const char *args[] = { "data", "--quiet", pipe, NULL };
    CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, NULL), 0);
    g_autofree char *p2 = g_strdup_printf ("file location=%s ! jsonl location=-", out);
    const char *a2[] = { "data", "--quiet", p2, NULL };
    g_autofree char *got = NULL;
    CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a2, NULL, &got, NULL), 0);
    /* alpaca writes input "" and the single-turn pairs come back as conversations from the others */
    CU_ASSERT_PTR_NOT_NULL (strstr (got, "\"chosen\":\"Paris\",\"rejected\":\"Rome\""));
    CU_ASSERT_PTR_NOT_NULL (strstr (want, "\"chosen\":\"Paris\",\"rejected\":\"Rome\""));
    if (k < 2) {
      g_autofree char *text = cria_test_read_file (info);
      g_autoptr (JsonParser) p = json_parser_new ();
      CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (p, text, -1, NULL));
      g_autofree char *name = g_strdup_printf ("pairs-%s", sinks[k]);
      JsonObject *entry = json_object_get_object_member (json_node_get_object (json_parser_get_root (p)), name);
      CU_ASSERT_TRUE (json_object_get_boolean_member_with_default (entry, "ranking", FALSE));
      JsonObject *columns = json_object_get_object_member (entry, "columns");
      CU_ASSERT_STRING_EQUAL (json_object_get_string_member_with_default (columns, "chosen", ""), "chosen");
      CU_ASSERT_STRING_EQUAL (json_object_get_string_member_with_default (columns, "rejected", ""), "rejected");
    }
  }
}

/* pairs: k answers sampled by a generator (cria's local runtime on the
 * tiny model), scored against the output: a kept pair's scores differ by
 * the margin at least, the others are dropped as no-margin, and a second run
 * answers from the cache the same pairs. */
static void
test_make_pairs (void)
{
  g_autofree char *in = g_build_filename (tmp, "sft.jsonl", NULL);
  cria_test_write_file (in, "{\"instruction\":\"Say hi\",\"output\":\"hi there\"}\n"
                            "{\"instruction\":\"Add 2 and 3\",\"output\":\"5\"}\n"
                            "{\"instruction\":\"Color of sky?\",\"output\":\"blue\"}\n"
                            "{\"instruction\":\"Capital of France?\",\"output\":\"Paris\"}\n");
  g_autofree char *cache = g_build_filename (tmp, "gen-cache", NULL);
  g_autofree char *pipe = g_strdup_printf (
      "file location=%s ! pairs generator=\"local model=%s threads=1\" k=6 metric=\"bleu tokenize=char "
      "smoothing=method1\" margin=0.01 max-tokens=8 temperature=1.5 cache=%s ! jsonl location=-",
      in, model_dir, cache);
  const char *args[] = { "data", pipe, NULL };
  g_autofree char *first = NULL, *second = NULL, *err = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &first, &err), 0);
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &second, NULL), 0);
  CU_ASSERT_STRING_EQUAL (first, second);
  g_auto (GStrv) lines = g_strsplit (first, "\n", -1);
  guint kept = 0;
  for (guint i = 0; lines[i]; i++) {
    if (!*lines[i])
      continue;
    g_autoptr (JsonParser) p = json_parser_new ();
    CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (p, lines[i], -1, NULL));
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    CU_ASSERT_TRUE (json_object_has_member (o, "chosen") && json_object_has_member (o, "rejected"));
    CU_ASSERT_FALSE (json_object_has_member (o, "output"));
    double c = json_object_get_double_member (o, "score_chosen"),
           r = json_object_get_double_member (o, "score_rejected");
    CU_ASSERT_TRUE (c - r >= 0.01);
    kept++;
  }
  /* the summary on stderr counts what was dropped */
  g_autofree char *dropped = g_strdup_printf ("no-margin: %u", 4 - kept);
  CU_ASSERT_TRUE (kept > 0);
  CU_ASSERT_TRUE (kept == 4 || (err && strstr (err, dropped)));
}

/* An SFT objective needs no pairs; a preference objective refuses a record without them. */
static void
test_needs_pairs (void)
{
  g_autofree char *path = g_build_filename (tmp, "plain.jsonl", NULL);
  cria_test_write_file (path, "{\"instruction\":\"a\",\"output\":\"b\"}\n");
  g_autofree char *out = g_build_filename (tmp, "run-plain", NULL);
  const char *args[] = { "train",    "--model",   model_dir,     "--data", path,           "--out", out,
                         "--format", format_path, "--objective", "dpo",    "--max-length", "32",    NULL };
  g_autofree char *err = NULL;
  int rc = cria_test_run_cria (args, NULL, NULL, &err);
  CU_ASSERT_NOT_EQUAL (rc, 0);
  CU_ASSERT_PTR_NOT_NULL (err ? strstr (err, "record 1: field 'chosen': missing") : NULL);
}

static void
register_suites (void)
{
  CU_pSuite s = CU_add_suite ("pref", suite_init, suite_clean);
  CU_add_test (s, "objectives against the PyTorch reference", test_objectives);
  CU_add_test (s, "reference: precomputed, --ref-model, full fine-tuning", test_reference_variants);
  CU_add_test (s, "stopped and resumed = never stopped", test_resume);
  CU_add_test (s, "cria eval's rewards = the trainer's", test_eval);
  CU_add_test (s, "preference layouts", test_layouts);
  CU_add_test (s, "sinks write pairs", test_sinks);
  CU_add_test (s, "pairs transform", test_make_pairs);
  CU_add_test (s, "objective needs pairs", test_needs_pairs);
}

CRIA_TEST_MAIN (register_suites)
