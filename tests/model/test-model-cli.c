/* test-model-cli: cria generate, logits, chat and eval on a small Qwen2
 * checkpoint made here (cria-random-model) with a byte-level BPE tokenizer
 * trained here (cria tokenizer train), so nothing outside the tree is needed.
 * The numbers themselves are checked against PyTorch in test-models; this
 * checks the verbs: their outputs, files, options and errors. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cria-test.h"

static char *tmp, *model;

static const char config[] =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 32,"
    " \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"vocab_size\": 320, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,"
    " \"hidden_act\": \"silu\", \"tie_word_embeddings\": true, \"eos_token_id\": 0, \"torch_dtype\": \"float32\"}";

static const char records[] =
    "{\"instruction\": \"Say hello.\", \"output\": \"Hello there, friend.\"}\n"
    "{\"instruction\": \"Name a colour.\", \"output\": \"Blue is a colour.\", \"id\": \"c1\"}\n"
    "{\"instruction\": \"Where?\", \"output\": \"In the park.\", \"references\": [\"in the park\", \"at the park\"]}\n";

static int
setup (void)
{
  tmp = cria_test_tmpdir ();
  model = g_build_filename (tmp, "model", NULL);
  g_autofree char *cfg = g_build_filename (tmp, "config.json", NULL);
  g_autofree char *text = g_build_filename (tmp, "text.txt", NULL);
  cria_test_write_file (cfg, config);
  g_autoptr (GString) corpus = g_string_new (NULL);
  for (int i = 0; i < 20; i++)
    g_string_append (corpus, "Hello there, friend. Blue is a colour. In the park the quick brown fox jumps.\n");
  cria_test_write_file (text, corpus->str);
  g_autofree char *tool = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "modelfiles", "cria-random-model",
                                            NULL);
  const char *argv[] = { tool, cfg, model, "3", "f32", NULL };
  int status;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL) ||
      status != 0)
    return 1;
  const char *train[] = { "tokenizer", "train", "-n", "320", "-s", "<|endoftext|>", "-o", model, text, NULL };
  return cria_test_run_cria (train, NULL, NULL, NULL) == 0 ? 0 : 1;
}

static int
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (model);
  return 0;
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

static void
test_generate (void)
{
  g_autofree char *out = NULL, *out2 = NULL, *out3 = NULL;
  const char *a[] = { "generate",      "--json", "-m",     model, "-n",    "12",
                      "--temperature", "0.8",    "--seed", "5",   "Hello", NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a, NULL, &out, NULL), 0);
  CU_ASSERT_EQUAL (cria_test_run_cria (a, NULL, &out2, NULL), 0);
  g_autoptr (JsonObject) o = parse_object (out);
  g_autoptr (JsonObject) o2 = parse_object (out2);
  CU_ASSERT_PTR_NOT_NULL_FATAL (o);
  CU_ASSERT_PTR_NOT_NULL_FATAL (o2);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "text"), json_object_get_string_member (o2, "text"));
  JsonArray *ids = json_object_get_array_member (o, "ids");
  const char *finish = json_object_get_string_member (o, "finish_reason");
  CU_ASSERT_TRUE (strcmp (finish, "length") == 0 ? json_array_get_length (ids) == 12 : strcmp (finish, "stop") == 0);
  /* Greedy from ids: the same ids as greedy from the text they encode. */
  const char *b[] = { "generate", "--json", "-m", model, "-n", "6", "Hello", NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (b, NULL, &out3, NULL), 0);
  g_autoptr (JsonObject) g1 = parse_object (out3);
  CU_ASSERT_PTR_NOT_NULL_FATAL (g1);
  g_autofree char *tok_out = NULL;
  const char *t[] = { "tokenize", "-t", model, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (t, "Hello\n", &tok_out, NULL), 0);
  g_strdelimit (tok_out, "[]", ' ');
  g_autofree char *out4 = NULL;
  const char *c[] = { "generate", "--json", "-m", model, "-n", "6", "--ids", g_strstrip (tok_out), NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (c, NULL, &out4, NULL), 0);
  g_autoptr (JsonObject) g2 = parse_object (out4);
  CU_ASSERT_PTR_NOT_NULL_FATAL (g2);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (g1, "text"), json_object_get_string_member (g2, "text"));
}

static void
test_logits (void)
{
  g_autofree char *path = g_build_filename (tmp, "logits.safetensors", NULL);
  const char *a[] = { "logits", "-m", model, "--text", "Hello there", "--out", path, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a, NULL, NULL, NULL), 0);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  const CriaWeight *ids = cria_safetensors_lookup (st, "input_ids"), *l = cria_safetensors_lookup (st, "logits");
  CU_ASSERT_TRUE_FATAL (ids && l);
  CU_ASSERT_EQUAL (l->shape[0], ids->shape[0]);
  CU_ASSERT_EQUAL (l->shape[1], 320);
  g_autofree char *err = NULL;
  const char *bad[] = { "logits", "-m", model, "--ids", "1,999", "--out", path, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (bad, NULL, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "token id 999 at position 1"));
}

static void
test_chat (void)
{
  g_autofree char *out = NULL;
  const char *a[] = { "chat", "-m", model, "-p", "chatml", "-n", "5", "--system", "Be brief.", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a, "Hello\n/reset\nName a colour.\n", &out, NULL), 0);
  /* One reply line per user turn. */
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  CU_ASSERT_EQUAL (g_strv_length (lines), 3);
}

static void
test_eval (void)
{
  g_autofree char *data = g_build_filename (tmp, "eval.jsonl", NULL);
  g_autofree char *dir = g_build_filename (tmp, "eval-out", NULL);
  cria_test_write_file (data, records);
  g_autofree char *out = NULL;
  const char *a[] = { "eval", "-m", model,   "--data", data,     "-M", "bleu,rouge,perplexity,distinct",
                      "-n",   "8",  "--out", dir,      "--json", NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (a, NULL, &out, NULL), 0);
  g_autoptr (JsonObject) summary = parse_object (out);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  CU_ASSERT_EQUAL (json_object_get_int_member (summary, "examples"), 3);
  JsonObject *m = json_object_get_object_member (summary, "model");
  CU_ASSERT_TRUE (json_object_has_member (m, "bleu") && json_object_has_member (m, "perplexity"));
  /* A random model over a 320-token vocabulary: perplexity near the vocabulary size. */
  double ppl = json_object_get_double_member (json_object_get_object_member (m, "perplexity"), "perplexity");
  CU_ASSERT_TRUE (ppl > 100 && ppl < 1000);
  g_autofree char *pred_path = g_build_filename (dir, "predictions.jsonl", NULL);
  g_autofree char *pred = cria_test_read_file (pred_path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (pred);
  g_auto (GStrv) lines = g_strsplit (g_strstrip (pred), "\n", -1);
  CU_ASSERT_EQUAL_FATAL (g_strv_length (lines), 3);
  g_autoptr (JsonObject) third = parse_object (lines[2]);
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (third, "references")), 2);
  CU_ASSERT_TRUE (json_object_has_member (third, "prediction") && json_object_has_member (third, "scores"));
  g_autoptr (JsonObject) second = parse_object (lines[1]);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (second, "id"), "c1");
  g_autofree char *txt_path = g_build_filename (dir, "summary.txt", NULL);
  g_autofree char *txt = cria_test_read_file (txt_path);
  CU_ASSERT_PTR_NOT_NULL (txt && strstr (txt, "rougeL_f"));
}

/* A new model: transformers' initialization, fixed by the seed. */
static void
test_model_init (void)
{
  g_autofree char *cfg = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-gpt2", "config.json",
                                           NULL);
  g_autofree char *a = g_build_filename (tmp, "init-a", NULL), *b = g_build_filename (tmp, "init-b", NULL);
  g_autofree char *c = g_build_filename (tmp, "init-c", NULL);
  const char *ra[] = { "model", "init", "--seed", "3", cfg, a, NULL };
  const char *rb[] = { "model", "init", "--seed", "3", cfg, b, NULL };
  const char *rc[] = { "model", "init", "--seed", "4", cfg, c, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (ra, NULL, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (rb, NULL, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (rc, NULL, NULL, NULL), 0);
  g_autofree char *fa = g_build_filename (a, "model.safetensors", NULL),
                  *fb = g_build_filename (b, "model.safetensors", NULL);
  g_autofree char *fc = g_build_filename (c, "model.safetensors", NULL);
  g_autoptr (CriaSafetensors) sa = cria_safetensors_open (fa, NULL), sb = cria_safetensors_open (fb, NULL);
  g_autoptr (CriaSafetensors) sc = cria_safetensors_open (fc, NULL);
  CU_ASSERT_TRUE_FATAL (sa && sb && sc);
  const CriaWeight *wa = cria_safetensors_lookup (sa, "transformer.wte.weight");
  const CriaWeight *wb = cria_safetensors_lookup (sb, "transformer.wte.weight");
  const CriaWeight *wc = cria_safetensors_lookup (sc, "transformer.wte.weight");
  CU_ASSERT_TRUE_FATAL (wa && wb && wc);
  CU_ASSERT_TRUE (memcmp (wa->data, wb->data, wa->n_bytes) == 0);
  CU_ASSERT_FALSE (memcmp (wa->data, wc->data, wa->n_bytes) == 0);
  const float *v = wa->data;
  double sum = 0, sq = 0;
  for (gint64 i = 0; i < wa->n_elements; i++) {
    sum += v[i];
    sq += (double) v[i] * v[i];
  }
  double mean = sum / wa->n_elements, std = sqrt (sq / wa->n_elements - mean * mean);
  CU_ASSERT_DOUBLE_EQUAL (mean, 0, 0.002);
  CU_ASSERT_DOUBLE_EQUAL (std, 0.02, 0.001);
  const CriaWeight *ln_w = cria_safetensors_lookup (sa, "transformer.h.0.ln_1.weight");
  const CriaWeight *ln_b = cria_safetensors_lookup (sa, "transformer.h.0.ln_1.bias");
  CU_ASSERT_EQUAL (((const float *) ln_w->data)[0], 1.0f);
  CU_ASSERT_EQUAL (((const float *) ln_b->data)[0], 0.0f);
  const char *info[] = { "model", "info", a, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (info, NULL, NULL, NULL), 0);
}

static void
expect_error (const char *const *args, int status, const char *needle)
{
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, NULL, &err), status);
  if (!err || !strstr (err, needle))
    printf ("\n  expected \"%s\" in: %s\n", needle, err ? err : "(nothing)");
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, needle));
}

static void
test_errors (void)
{
  g_autofree char *data = g_build_filename (tmp, "noref.jsonl", NULL);
  cria_test_write_file (data, "{\"instruction\": \"a\"}\n");
  const char *e1[] = { "eval", "-m", model, NULL };
  expect_error (e1, 2, "--data FILE is required");
  const char *e2[] = { "eval", "-m", model, "--data", "/nonexistent/x.jsonl", NULL };
  expect_error (e2, 1, "/nonexistent/x.jsonl");
  const char *e3[] = { "eval", "-m", model, "--data", data, "-M", "nosuchmetric", NULL };
  expect_error (e3, 1, "nosuchmetric");
  const char *e4[] = { "eval", "-m", model, "--data", data, "-M", "bleu", "-n", "2", NULL };
  expect_error (e4, 1, "record 1");
  const char *e5[] = { "generate", "-m", model, "--temperature", "-1", "x", NULL };
  expect_error (e5, 1, "--temperature");
  const char *e6[] = { "generate", "-m", "/nonexistent/model", "x", NULL };
  expect_error (e6, 1, "/nonexistent/model");
  const char *e7[] = { "generate", "-m", model, NULL };
  expect_error (e7, 2, "PROMPT");
}

static const CriaTestCase cases[] = {
  { "generate: seeds, --json, --ids", test_generate },
  { "logits: the file written", test_logits },
  { "chat: turns from stdin", test_chat },
  { "eval: predictions, summary, perplexity", test_eval },
  { "model init", test_model_init },
  { "errors", test_errors },
  { NULL, NULL },
};

static void
add_suites (void)
{
  CU_pSuite suite = CU_add_suite ("model verbs", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (add_suites)
