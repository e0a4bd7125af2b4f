/* test-hfmodel: config.json parsing, the tensor checks each architecture
 * implies, sharded directories and writing them, on the checkpoints in
 * tests/models and the real ones in ../shared/models. */
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cria-test.h"
#include "modelfiles-test.h"

static char *
model_path (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
}

static CriaRegistry *registry;

/* A directory checked against its provider's tensor list. */
static CriaHfModel *
open_checked (const char *dir, GError **error)
{
  if (!registry)
    registry = cria_test_registry ();
  return cria_model_open_files (registry, dir, NULL, NULL, error);
}

/* config.json as the provider of its class reads it. */
static gboolean
configure (const char *json, GError **error)
{
  if (!registry)
    registry = cria_test_registry ();
  g_autoptr (CriaHfConfig) c = cria_hf_config_parse (json, -1, "config.json", error);
  return c && cria_model_configure (registry, c, error);
}

static void
expect_config_error (const char *json, const char *needle)
{
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (configure (json, &e));
  assert_message (e, needle);
  CU_ASSERT_TRUE (g_str_has_prefix (e->message, "config.json"));
}

static void
test_open_checkpoints (void)
{
  static const struct {
    const char *name;
    const char *arch;
    gint64 params;
  } models[] = {
    { "tiny-gpt2", "GPT2LMHeadModel", 35712 },       { "tiny-llama", "LlamaForCausalLM", 34976 },
    { "tiny-qwen2", "Qwen2ForCausalLM", 33056 },     { "tiny-qwen2-bf16", "Qwen2ForCausalLM", 33056 },
    { "tiny-mistral", "MistralForCausalLM", 34976 }, { "tiny-llama-yarn", "LlamaForCausalLM", 34976 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (models); i++) {
    g_autofree char *dir = model_path (models[i].name);
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaHfModel) m = open_checked (dir, &e);
    if (!m)
      printf ("\n  %s: %s\n", models[i].name, e->message);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    CU_ASSERT_STRING_EQUAL (cria_hf_model_get_config (m)->architecture, models[i].arch);
    if (cria_hf_model_get_n_parameters (m) != models[i].params)
      printf ("\n  %s: %" G_GINT64_FORMAT " parameters\n", models[i].name, cria_hf_model_get_n_parameters (m));
    CU_ASSERT_EQUAL (cria_hf_model_get_n_parameters (m), models[i].params);
    CU_ASSERT_PTR_NOT_NULL (cria_hf_model_get_generation_config (m));
    CU_ASSERT_STRING_EQUAL (cria_hf_model_get_weights_file (m), "model.safetensors");
  }
}

static void
test_config_fields (void)
{
  g_autofree char *dir = model_path ("tiny-qwen2-bf16");
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaHfModel) m = open_checked (dir, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  const CriaHfConfig *c = cria_hf_model_get_config (m);
  CU_ASSERT_EQUAL (c->hidden_size, 32);
  CU_ASSERT_EQUAL (c->n_heads, 4);
  CU_ASSERT_EQUAL (c->n_kv_heads, 2);
  CU_ASSERT_EQUAL (c->head_dim, 8);
  CU_ASSERT_EQUAL (c->intermediate_size, 96);
  CU_ASSERT_TRUE (c->attention_bias);
  CU_ASSERT_TRUE (c->tie_word_embeddings);
  CU_ASSERT_EQUAL (c->torch_dtype, CRIA_DTYPE_BF16);
  CU_ASSERT_DOUBLE_EQUAL (c->rope_theta, 1e6, 1e-9);
  CU_ASSERT_EQUAL (c->rope_scaling.type, CRIA_ROPE_SCALING_NONE);
  CU_ASSERT_EQUAL (c->sliding_window, 0);
  CU_ASSERT_EQUAL (c->eos_token_ids->len, 2);
  CU_ASSERT_EQUAL (g_array_index (c->eos_token_ids, gint64, 1), 3);
  CU_ASSERT_EQUAL (cria_hf_model_lookup (m, "model.layers.1.self_attn.k_proj.bias")->dtype, CRIA_DTYPE_BF16);
  CU_ASSERT_PTR_NULL (cria_hf_model_lookup (m, "lm_head.weight"));

  g_autofree char *ldir = model_path ("tiny-llama");
  g_autoptr (CriaHfModel) l = open_checked (ldir, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (l);
  const CriaRopeScaling *rs = &cria_hf_model_get_config (l)->rope_scaling;
  CU_ASSERT_EQUAL (rs->type, CRIA_ROPE_SCALING_LLAMA3);
  CU_ASSERT_DOUBLE_EQUAL (rs->factor, 8, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL (rs->high_freq_factor, 4, 1e-9);
  CU_ASSERT_EQUAL (rs->original_max_position_embeddings, 16);
  CU_ASSERT_FALSE (cria_hf_model_get_config (l)->attention_bias);

  g_autofree char *mdir = model_path ("tiny-mistral");
  g_autoptr (CriaHfModel) mi = open_checked (mdir, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (mi);
  CU_ASSERT_EQUAL (cria_hf_model_get_config (mi)->sliding_window, 4);

  g_autofree char *ydir = model_path ("tiny-llama-yarn");
  g_autoptr (CriaHfModel) y = open_checked (ydir, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (y);
  CU_ASSERT_EQUAL (cria_hf_model_get_config (y)->rope_scaling.type, CRIA_ROPE_SCALING_YARN);
  CU_ASSERT_DOUBLE_EQUAL (cria_hf_model_get_config (y)->rope_scaling.beta_fast, 32, 1e-9);
}

static void
test_config_errors (void)
{
  const char *llama = "\"hidden_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                      "\"intermediate_size\":8,\"vocab_size\":16";
  expect_config_error ("{\"architectures\":[\"BertModel\"]}",
                       "architectures: no model plugin builds the architecture BertModel (known: ");
  expect_config_error ("{}", "architectures: missing");
  expect_config_error ("[1]", "not a JSON object");
  expect_config_error ("{\"architectures\":", "config.json:");
  g_autofree char *no_layers = g_strdup ("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32}");
  expect_config_error (no_layers, "num_hidden_layers: missing");
  g_autofree char *neg = g_strdup_printf ("{\"architectures\":[\"LlamaForCausalLM\"],%s,\"num_key_value_heads\":3}",
                                          llama);
  expect_config_error (neg, "num_key_value_heads: does not divide num_attention_heads");
  g_autofree char *str = g_strdup_printf ("{\"architectures\":[\"Qwen2ForCausalLM\"],%s,\"rms_norm_eps\":\"x\"}",
                                          llama);
  expect_config_error (str, "rms_norm_eps: not a positive number");
  g_autofree char *rope = g_strdup_printf (
      "{\"architectures\":[\"LlamaForCausalLM\"],%s,\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":2}}",
      llama);
  expect_config_error (rope, "rope_scaling.rope_type: 'longrope' is not supported");
  g_autofree char *l3 = g_strdup_printf (
      "{\"architectures\":[\"LlamaForCausalLM\"],%s,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":2}}", llama);
  expect_config_error (l3, "original_max_position_embeddings: missing");
  g_autofree char *eos = g_strdup_printf ("{\"architectures\":[\"LlamaForCausalLM\"],%s,\"eos_token_id\":[1,99]}",
                                          llama);
  expect_config_error (eos, "eos_token_id: not below vocab_size");
  g_autofree char *dtype = g_strdup_printf ("{\"architectures\":[\"LlamaForCausalLM\"],%s,\"torch_dtype\":\"int8\"}",
                                            llama);
  expect_config_error (dtype, "torch_dtype");
  expect_config_error ("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":10,\"n_layer\":1,\"n_head\":4,"
                       "\"vocab_size\":5,\"n_positions\":4}",
                       "n_head: does not divide n_embd");
}

/* Opens a checkpoint of tests/models and writes it again into `dir`. */
static CriaHfModel *
write_copy (const char *name, const char *dir, guint64 max_shard_bytes)
{
  g_autofree char *src = model_path (name);
  g_autoptr (GError) e = NULL;
  CriaHfModel *m = open_checked (src, &e); /* the names a provider gives */
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  g_autoptr (GArray) ws = g_array_new (FALSE, FALSE, sizeof (CriaWeight));
  for (guint i = 0; i < cria_hf_model_get_n_weights (m); i++)
    g_array_append_val (ws, *cria_hf_model_get_weight (m, i));
  CU_ASSERT_TRUE_FATAL (
      cria_hf_model_write (dir, cria_hf_model_get_config (m), (CriaWeight *) ws->data, ws->len, max_shard_bytes, &e));
  return m;
}

/* Copies a checkpoint of tests/models into `dir` with its config edited. */
static void
copy_model (const char *name, const char *dir, const char *from, const char *to)
{
  cria_hf_model_free (write_copy (name, dir, 0));
  if (from) {
    g_autofree char *cpath = g_build_filename (dir, "config.json", NULL);
    g_autofree char *text = cria_test_read_file (cpath);
    char **parts = g_strsplit (text, from, 2);
    CU_ASSERT_EQUAL_FATAL (g_strv_length (parts), 2);
    g_autofree char *edited = g_strjoinv (to, parts);
    g_strfreev (parts);
    cria_test_write_file (cpath, edited);
  }
}

static void
test_config_disagrees_with_tensors (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  copy_model ("tiny-llama", dir, "\"intermediate_size\" : 64", "\"intermediate_size\" : 48");
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "the weights do not match config.json (LlamaForCausalLM): shape of "
                     "model.layers.0.mlp.gate_proj.weight is [64, 32], config.json implies [48, 32]");
  g_clear_error (&e);
  copy_model ("tiny-llama", dir, "\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 3");
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "missing model.layers.2.input_layernorm.weight");
  g_clear_error (&e);
  copy_model ("tiny-llama", dir, "\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 1");
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "unexpected model.layers.1.");
  assert_message (e, "problems in all");
  g_clear_error (&e);
  /* A LLaMA checkpoint declared as Qwen2 lacks the q/k/v biases. */
  copy_model ("tiny-llama", dir, "LlamaForCausalLM", "Qwen2ForCausalLM");
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "missing model.layers.0.self_attn.q_proj.bias");
  cria_test_rmtree (dir);
}

static gboolean
same_weights (CriaHfModel *a, CriaHfModel *b)
{
  if (cria_hf_model_get_n_weights (a) != cria_hf_model_get_n_weights (b))
    return FALSE;
  for (guint i = 0; i < cria_hf_model_get_n_weights (a); i++) {
    const CriaWeight *x = cria_hf_model_get_weight (a, i), *y = cria_hf_model_lookup (b, x->name);
    if (!y || x->dtype != y->dtype || x->n_bytes != y->n_bytes || memcmp (x->data, y->data, x->n_bytes))
      return FALSE;
  }
  return TRUE;
}

static void
test_sharded (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autoptr (GError) e = NULL;
  /* Written whole first: the sharded write must replace that layout. */
  cria_hf_model_free (write_copy ("tiny-qwen2", dir, 0));
  g_autoptr (CriaHfModel) m = write_copy ("tiny-qwen2", dir, 40000);
  g_autofree char *single = g_build_filename (dir, "model.safetensors", NULL);
  CU_ASSERT_FALSE (g_file_test (single, G_FILE_TEST_EXISTS));
  g_autofree char *shard4 = g_build_filename (dir, "model-00004-of-00004.safetensors", NULL);
  g_autofree char *shard5 = g_build_filename (dir, "model-00005-of-00005.safetensors", NULL);
  CU_ASSERT_TRUE (g_file_test (shard4, G_FILE_TEST_EXISTS) || g_file_test (shard5, G_FILE_TEST_EXISTS));
  g_autoptr (CriaHfModel) r = open_checked (dir, &e);
  if (!r)
    printf ("\n  %s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (r);
  CU_ASSERT_STRING_EQUAL (cria_hf_model_get_weights_file (r), "model.safetensors.index.json");
  CU_ASSERT_TRUE (same_weights (m, r));
  CU_ASSERT_EQUAL (cria_hf_model_get_n_parameters (r), cria_hf_model_get_n_parameters (m));

  /* The index names a tensor its shard lacks, then a shard that is missing. */
  g_autofree char *index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  g_autofree char *text = cria_test_read_file (index);
  char **parts = g_strsplit (text, "\"model.norm.weight\"", 2);
  g_autofree char *lying = g_strjoinv ("\"model.ghost.weight\" : \"model-00001-of-00004.safetensors\",\n"
                                       "    \"model.norm.weight\"",
                                       parts);
  g_strfreev (parts);
  cria_test_write_file (index, lying);
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "model.ghost.weight");
  g_clear_error (&e);
  cria_test_write_file (index, text);
  g_autofree char *shard1 = g_build_filename (dir, "model-00001-of-00004.safetensors", NULL);
  g_autofree char *shard1_5 = g_build_filename (dir, "model-00001-of-00005.safetensors", NULL);
  g_remove (shard1);
  g_remove (shard1_5);
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "which is missing");
  g_clear_error (&e);
  cria_test_write_file (index, "{\"weight_map\":{\"a\":\"../../etc/passwd\"}}");
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "does not name a file in the directory");
  cria_test_rmtree (dir);
}

static void
test_missing_pieces (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "config.json");
  g_clear_error (&e);
  copy_model ("tiny-gpt2", dir, NULL, NULL);
  g_autofree char *weights = g_build_filename (dir, "model.safetensors", NULL);
  g_remove (weights);
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "no weights");
  g_clear_error (&e);
  g_file_set_contents (weights, "\x08\0\0\0\0\0\0\0{}      ", 16, NULL);
  CU_ASSERT_PTR_NULL (open_checked (dir, &e));
  assert_message (e, "missing transformer.wte.weight");
  cria_test_rmtree (dir);
}

static void
test_golden_files (void)
{
  static const char *const names[] = { "tiny-gpt2",       "tiny-llama", "tiny-llama-linear", "tiny-llama-dynamic",
                                       "tiny-llama-yarn", "tiny-qwen2", "tiny-qwen2-bf16",   "tiny-mistral" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *file = g_strconcat (names[i], ".safetensors", NULL);
    g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "golden", file, NULL);
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL (st);
    const CriaWeight *logits = cria_safetensors_lookup (st, "logits");
    const CriaWeight *ids = cria_safetensors_lookup (st, "input_ids");
    CU_ASSERT_PTR_NOT_NULL_FATAL (logits);
    CU_ASSERT_PTR_NOT_NULL_FATAL (ids);
    CU_ASSERT_EQUAL (logits->shape[0], ids->shape[0]);
    CU_ASSERT_EQUAL (logits->shape[1], 256);
    CU_ASSERT_EQUAL (cria_safetensors_lookup (st, "greedy_ids")->n_elements, 8);
  }
}

static void
test_real_checkpoints (void)
{
  static const char *const names[] = { "stories260K", "tiny-random-llama", "tiny-gpt2" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SHARED"), "models", names[i], NULL);
    if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
      continue;
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaHfModel) m = open_checked (dir, &e);
    if (!m)
      printf ("\n  %s: %s\n", names[i], e->message);
    CU_ASSERT_PTR_NOT_NULL (m);
  }
}

static void
test_verb (void)
{
  g_autofree char *dir = model_path ("tiny-qwen2");
  g_autofree char *out = NULL, *err = NULL;
  const char *args[] = { "model", "info", "--json", "--tensors", dir, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, &out, &err), 0);
  g_autoptr (JsonNode) node = json_from_string (out, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (node);
  JsonObject *o = json_node_get_object (node);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "architecture"), "Qwen2ForCausalLM");
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "parameters"), 33056);
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (o, "tensors")), 26);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_autofree char *bad = cria_test_tmpdir ();
  g_autofree char *config = g_build_filename (bad, "config.json", NULL);
  cria_test_write_file (config, "{\"architectures\":[\"BertModel\"]}");
  const char *bad_args[] = { "model", "info", bad, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (bad_args, NULL, &out, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "cria model: "));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "no model plugin builds the architecture BertModel"));
  g_clear_pointer (&err, g_free);
  const char *usage[] = { "model", "frobnicate", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (usage, NULL, NULL, &err), 2);
  cria_test_rmtree (bad);
}

/* cria-random-model must give the values random_weights.py computes in numpy
 * (the goldens of the real-shape checkpoints rest on it). */
static void
test_random_model (void)
{
  static const struct {
    const char *name;
    guint32 f32[3];
    guint16 bf16[3];
  } want[] = {
    { "model.norm.weight", { 0x3f7c5f64, 0x3f7b4ebd, 0x3f83bf7f }, { 0x3f7c, 0x3f7b, 0x3f84 } },
    { "model.embed_tokens.weight", { 0xbe81c708, 0xbd17b9b6, 0x3df46046 }, { 0xbe82, 0xbd18, 0x3df4 } },
    { "model.layers.0.self_attn.q_proj.bias", { 0x3d53faf3, 0x3d366a4a, 0xbdbe15f6 }, { 0x3d54, 0x3d36, 0xbdbe } },
  };
  g_autofree char *tool = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "modelfiles", "cria-random-model",
                                            NULL);
  g_autofree char *config = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-qwen2",
                                              "config.json", NULL);
  g_autofree char *dir = cria_test_tmpdir ();
  for (int bf16 = 0; bf16 < 2; bf16++) {
    const char *argv[] = { tool, config, dir, "7", bf16 ? "bf16" : "f32", NULL };
    int status = -1;
    CU_ASSERT_TRUE_FATAL (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, NULL, NULL, &status, NULL));
    CU_ASSERT_EQUAL_FATAL (status, 0);
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaHfModel) m = open_checked (dir, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    CU_ASSERT_EQUAL (cria_hf_model_get_config (m)->torch_dtype, bf16 ? CRIA_DTYPE_BF16 : CRIA_DTYPE_F32);
    for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
      const CriaWeight *w = cria_hf_model_lookup (m, want[i].name);
      CU_ASSERT_PTR_NOT_NULL_FATAL (w);
      for (int j = 0; j < 3; j++) {
        guint32 got = bf16 ? ((const guint16 *) w->data)[j] : ((const guint32 *) w->data)[j];
        CU_ASSERT_EQUAL (got, bf16 ? want[i].bf16[j] : want[i].f32[j]);
      }
    }
  }
  cria_test_rmtree (dir);
}

static void
free_registry (void)
{
  g_clear_pointer (&registry, cria_registry_free);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "open the test checkpoints", test_open_checkpoints },
    { "typed config", test_config_fields },
    { "config errors", test_config_errors },
    { "config disagreeing with tensors", test_config_disagrees_with_tensors },
    { "sharded write and read, lying index", test_sharded },
    { "missing config and weights", test_missing_pieces },
    { "golden files", test_golden_files },
    { "real checkpoints", test_real_checkpoints },
    { "cria model info", test_verb },
    { "seeded random checkpoints", test_random_model },
    { NULL },
  };
  cria_test_add_suite ("hfmodel", cases);
  atexit (free_registry);
}

CRIA_TEST_MAIN (register_suites)
