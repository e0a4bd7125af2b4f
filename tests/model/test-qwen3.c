/* test-qwen3: Qwen3ForCausalLM, an architecture added by a model plugin
 * alone (plugins/models/qwen3.c), through the cria verbs on the checkpoints
 * tests/reference/make_test_models.py wrote in Hugging Face's layout
 * (tests/models/tiny-qwen3*, tokenizer included): model info, inspect,
 * logits and greedy generation against the PyTorch reference's goldens
 * (tests/golden/tiny-qwen3*.safetensors), and LoRA training whose adapter
 * then generates. The logits of the library path and LoRA/full gradients
 * are checked by test-models and test-model-grads. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static char *tmp;

static char *
src_path (const char *dir, const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", dir, name, NULL);
}

static JsonObject *
parse_object (const char *text)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  if (!text || !json_parser_load_from_data (p, text, -1, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (p);
  return root && JSON_NODE_HOLDS_OBJECT (root) ? json_object_ref (json_node_get_object (root)) : NULL;
}

/* The golden's prompt as "1,17,...". */
static char *
prompt_ids (const CriaWeight *ids)
{
  GString *s = g_string_new (NULL);
  for (gint64 i = 0; i < ids->n_elements; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? "," : "", ((const gint64 *) ids->data)[i]);
  return g_string_free (s, FALSE);
}

static void
test_info_and_inspect (void)
{
  g_autofree char *dir = src_path ("models", "tiny-qwen3");
  g_autofree char *out = NULL;
  const char *a[] = { "model", "info", "--json", "--tensors", dir, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a, NULL, &out, NULL), 0);
  g_autoptr (JsonObject) o = parse_object (out);
  CU_ASSERT_PTR_NOT_NULL_FATAL (o);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "architecture"), "Qwen3ForCausalLM");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "provider"), "qwen3");
  /* head_dim is its own, not hidden_size / heads (8) */
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "head_dim"), 16);
  CU_ASSERT_FALSE (json_object_get_boolean_member (o, "attention_bias"));
  /* embedding, 11 per layer (q_norm and k_norm among them), final norm, head */
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (o, "tensors")), 1 + 2 * 11 + 2);

  g_autofree char *iout = NULL;
  const char *i[] = { "inspect", "qwen3", NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (i, NULL, &iout, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (iout, "Classes:     Qwen3ForCausalLM"));
  g_autofree char *lout = NULL;
  const char *l[] = { "inspect", "llama", NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (l, NULL, &lout, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (lout, "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM"));
}

/* A checkpoint whose q_norm has the wrong size is refused, naming it. */
static void
test_misshaped_norm (void)
{
  g_autofree char *dir = g_build_filename (tmp, "bad", NULL);
  g_assert (g_mkdir_with_parents (dir, 0755) == 0);
  g_autofree char *from = src_path ("models", "tiny-qwen3");
  static const char *const files[] = { "config.json", "model.safetensors", "tokenizer.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *src = g_build_filename (from, files[i], NULL), *dst = g_build_filename (dir, files[i], NULL);
    gsize len = 0;
    g_autofree char *bytes = NULL;
    g_assert (g_file_get_contents (src, &bytes, &len, NULL));
    if (i == 0) { /* head_dim 8: every q/k/v/o projection and q_norm/k_norm disagree */
      char **parts = g_strsplit (bytes, "\"head_dim\": 16", 2);
      CU_ASSERT_EQUAL_FATAL (g_strv_length (parts), 2);
      g_autofree char *edited = g_strjoinv ("\"head_dim\": 8", parts);
      g_strfreev (parts);
      cria_test_write_file (dst, edited);
    } else {
      g_assert (g_file_set_contents (dst, bytes, (gssize) len, NULL));
    }
  }
  g_autofree char *err = NULL;
  const char *a[] = { "model", "info", dir, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a, NULL, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "(Qwen3ForCausalLM)"));
  CU_ASSERT_PTR_NOT_NULL (
      err && strstr (err, "shape of model.layers.0.self_attn.q_proj.weight is [64, 32], config.json implies [32, 32]"));
}

static void
check_logits_and_greedy (const char *name)
{
  g_autofree char *file = g_strconcat (name, ".safetensors", NULL);
  g_autofree char *golden = src_path ("golden", file);
  g_autoptr (CriaSafetensors) g = cria_safetensors_open (golden, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (g);
  const CriaWeight *ids = cria_safetensors_lookup (g, "input_ids"), *want = cria_safetensors_lookup (g, "logits");
  const CriaWeight *greedy = cria_safetensors_lookup (g, "greedy_ids");
  CU_ASSERT_TRUE_FATAL (ids && want && greedy);
  g_autofree char *dir = src_path ("models", name);
  g_autofree char *list = prompt_ids (ids);
  g_autofree char *path = g_build_filename (tmp, file, NULL);
  const char *a[] = { "logits", "-m", dir, "--ids", list, "--out", path, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a, NULL, NULL, NULL), 0);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  const CriaWeight *got = cria_safetensors_lookup (st, "logits");
  CU_ASSERT_PTR_NOT_NULL_FATAL (got);
  CU_ASSERT_EQUAL_FATAL (got->n_elements, want->n_elements);
  CU_ASSERT_EQUAL_FATAL (got->dtype, CRIA_DTYPE_F32);
  double d = 0, m = 0;
  for (gint64 i = 0; i < want->n_elements; i++) {
    d = MAX (d, fabs ((double) ((const float *) got->data)[i] - ((const float *) want->data)[i]));
    m = MAX (m, fabs ((double) ((const float *) want->data)[i]));
  }
  if (d / m > 1e-4)
    printf ("\n  %s: cria logits differ by %.3g of the largest\n", name, d / m);
  CU_ASSERT_TRUE (d / m <= 1e-4);

  g_autofree char *out = NULL;
  const char *b[] = { "generate", "--json", "-m", dir, "-n", "8", "--ids", list, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (b, NULL, &out, NULL), 0);
  g_autoptr (JsonObject) o = parse_object (out);
  CU_ASSERT_PTR_NOT_NULL_FATAL (o);
  JsonArray *gen = json_object_get_array_member (o, "ids");
  CU_ASSERT_EQUAL_FATAL (json_array_get_length (gen), (guint) greedy->n_elements);
  for (guint i = 0; i < json_array_get_length (gen); i++)
    CU_ASSERT_EQUAL (json_array_get_int_element (gen, i), ((const gint64 *) greedy->data)[i]);
}

static void
test_logits_generate (void)
{
  check_logits_and_greedy ("tiny-qwen3");
  check_logits_and_greedy ("tiny-qwen3-tied");
}

/* cria train --adapter lora: the loss falls, the adapter targets PEFT's
 * default for the architecture (q_proj, v_proj, said by the provider), and
 * it loads back for generation. */
static void
test_train_lora (void)
{
  g_autofree char *dir = src_path ("models", "tiny-qwen3");
  g_autofree char *data = g_build_filename (tmp, "train.jsonl", NULL);
  g_autoptr (GString) text = g_string_new (NULL);
  for (int i = 0; i < 16; i++)
    g_string_append_printf (text, "{\"instruction\":\"add\",\"input\":\"%d + %d\",\"output\":\"%d\"}\n", i, 2 * i,
                            3 * i);
  cria_test_write_file (data, text->str);
  g_autofree char *format = cria_test_short_format (tmp);
  g_autofree char *out = g_build_filename (tmp, "run", NULL);
  const char *a[] = { "train",
                      "--model",
                      dir,
                      "--data",
                      data,
                      "--format",
                      format,
                      "--adapter",
                      "lora r=4 alpha=8",
                      "--lr",
                      "3e-2",
                      "--max-length",
                      "48",
                      "--batch-size",
                      "4",
                      "--epochs",
                      "3",
                      "--threads",
                      "1",
                      "--out",
                      out,
                      NULL };
  g_autofree char *err = NULL;
  int rc = cria_test_run_cria (a, NULL, NULL, &err);
  if (rc != 0)
    printf ("\n  %s\n", err);
  CU_ASSERT_EQUAL_FATAL (rc, 0);
  g_autofree char *log = g_build_filename (out, "train-log.jsonl", NULL);
  g_autofree char *lines = cria_test_read_file (log);
  CU_ASSERT_PTR_NOT_NULL_FATAL (lines);
  g_auto (GStrv) rows = g_strsplit (lines, "\n", -1);
  double first = -1, last = -1;
  for (char **r = rows; *r; r++) {
    g_autoptr (JsonObject) o = parse_object (*r);
    if (!o || !json_object_has_member (o, "loss") || !json_object_has_member (o, "step"))
      continue;
    last = json_object_get_double_member (o, "loss");
    if (first < 0)
      first = last;
  }
  CU_ASSERT_TRUE (first > 0 && last < first);
  g_autofree char *cfg = g_build_filename (out, "adapter_config.json", NULL);
  g_autofree char *ctext = cria_test_read_file (cfg);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ctext);
  CU_ASSERT_PTR_NOT_NULL (strstr (ctext, "q_proj"));
  CU_ASSERT_PTR_NOT_NULL (strstr (ctext, "v_proj"));
  CU_ASSERT_PTR_NULL (strstr (ctext, "k_proj"));
  g_autofree char *gout = NULL;
  const char *g[] = { "generate", "-m", dir, "--adapter", out, "-n", "4", "add 3 + 6", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (g, NULL, &gout, NULL), 0);
}

/* Other providers claiming Qwen3ForCausalLM: the higher rank is chosen,
 * whatever the load order; at equal rank the first in the search path stays. */
static const char *const other_classes[] = { "Qwen3ForCausalLM", NULL };
static CriaModelVTable low_vtable, high_vtable;
static const CriaPropSpec no_props[] = { CRIA_PROP_END };
static const CriaProviderInfo low_info = {
  .name = "qwen3-low",
  .description = "a second provider of Qwen3ForCausalLM, at the built-in's rank",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY,
};
static const CriaProviderInfo high_info = {
  .name = "qwen3-high",
  .description = "a third provider of Qwen3ForCausalLM, above the built-in's rank",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY + 1,
};

static gboolean
low_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_model (plugin, &low_info, &low_vtable);
  return TRUE;
}

static gboolean
high_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_model (plugin, &high_info, &high_vtable);
  return TRUE;
}

static const CriaPluginDescriptor low_plugin = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR,   "low",   "1",
                                                 "MIT",          "a second Qwen3", "tests", low_init };
static const CriaPluginDescriptor high_plugin = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR,  "high",  "1",
                                                  "MIT",          "a third Qwen3", "tests", high_init };

static void
test_rank (void)
{
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  const CriaProvider *builtin = cria_registry_lookup (reg, CRIA_KIND_MODEL, "qwen3");
  CU_ASSERT_PTR_NOT_NULL_FATAL (builtin);
  /* copies of the plugin's own vtable under other names */
  low_vtable = *cria_model_provider_vtable (builtin);
  low_vtable.classes = other_classes;
  high_vtable = low_vtable;
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE_FATAL (cria_registry_add_static (reg, &low_plugin, &e));
  const CriaProvider *low = cria_registry_lookup (reg, CRIA_KIND_MODEL, "qwen3-low");
  CU_ASSERT_PTR_NOT_NULL_FATAL (low);
  CU_ASSERT_PTR_EQUAL (cria_model_find_provider (reg, "Qwen3ForCausalLM", NULL), builtin);
  CU_ASSERT_TRUE_FATAL (cria_registry_add_static (reg, &high_plugin, &e));
  const CriaProvider *high = cria_registry_lookup (reg, CRIA_KIND_MODEL, "qwen3-high");
  CU_ASSERT_PTR_NOT_NULL_FATAL (high);
  CU_ASSERT_PTR_EQUAL (cria_model_find_provider (reg, "Qwen3ForCausalLM", NULL), high);
  g_autofree char *dir = src_path ("models", "tiny-qwen3");
  g_autoptr (CriaModel) m = cria_model_open (reg, dir, CRIA_MODEL_DTYPE_AUTO, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  CU_ASSERT_PTR_EQUAL (cria_model_get_provider (m), high);
  /* a vtable too short to hold build is never used */
  high_vtable.size = G_STRUCT_OFFSET (CriaModelVTable, build);
  CU_ASSERT_PTR_NULL (cria_model_provider_vtable (high));
  CU_ASSERT_PTR_EQUAL (cria_model_find_provider (reg, "Qwen3ForCausalLM", NULL), builtin);
  CU_ASSERT_PTR_NULL (cria_model_find_provider (reg, "NoSuchForCausalLM", &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "known: "));
}

static void
remove_tmp (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
}

static void
register_suites (void)
{
  tmp = cria_test_tmpdir ();
  atexit (remove_tmp);
  static const CriaTestCase cases[] = {
    { "model info and inspect", test_info_and_inspect },
    { "a mis-shaped checkpoint", test_misshaped_norm },
    { "logits and greedy ids against PyTorch", test_logits_generate },
    { "train a LoRA adapter", test_train_lora },
    { "two providers of one class: rank", test_rank },
    { NULL },
  };
  cria_test_add_suite ("qwen3", cases);
}

CRIA_TEST_MAIN (register_suites)
