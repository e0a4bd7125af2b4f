/* Adapters with a resized vocabulary, as LLaMA-Factory writes them when it
 * adds tokens: the resized embed_tokens and lm_head under modules_to_save,
 * the tokenizer with the added tokens beside them. Loaded with
 * --adapter and merged, they give the logits of plain PyTorch
 * (resized_vocab_reference.py, which wrote the adapters and
 * resized-vocab/golden.safetensors); what cannot be right is refused. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include <cria/cria-adapter.h>
#include <cria/cria-gguf.h>
#include <cria/cria-model.h>
#include <cria/cria-safetensors.h>

#include "cria-test.h"

static char *tmp, *fixtures, *llama, *qwen3;
static CriaSafetensors *golden;

static void
setup (void)
{
  tmp = cria_test_tmpdir ();
  fixtures = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", "resized-vocab", NULL);
  /* bases with a byte tokenizer of their own, which the adapters' replaces */
  llama = cria_test_tiny_model (tmp, "tiny-llama");
  g_autofree char *qwen3_tmp = g_build_filename (tmp, "qwen3", NULL);
  g_mkdir (qwen3_tmp, 0755);
  qwen3 = cria_test_tiny_model (qwen3_tmp, "tiny-qwen3-tied");
  g_autofree char *path = g_build_filename (fixtures, "golden.safetensors", NULL);
  golden = cria_safetensors_open (path, NULL);
  g_assert (golden);
}

static void
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (fixtures);
  g_free (llama);
  g_free (qwen3);
  cria_safetensors_free (golden);
}

static const char *const PROMPT = "hi <|tool|> 42<obs>!";

/* cria logits of PROMPT against the golden ids and logits of `name`. */
static void
check_logits (const char *model, const char *adapter, const char *name)
{
  g_autofree char *out = g_build_filename (tmp, "logits.safetensors", NULL);
  const char *args[] = { "logits", "--model", model, "--text", PROMPT, "--out", out, "--adapter", adapter, NULL };
  if (!adapter)
    args[7] = NULL;
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  if (status != 0)
    printf ("\n%s: %s\n", name, err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (out, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  g_autofree char *ids_key = g_strconcat (name, ".input_ids", NULL);
  g_autofree char *logits_key = g_strconcat (name, ".logits", NULL);
  const CriaWeight *want_ids = cria_safetensors_lookup (golden, ids_key);
  const CriaWeight *want = cria_safetensors_lookup (golden, logits_key);
  const CriaWeight *ids = cria_safetensors_lookup (st, "input_ids");
  const CriaWeight *logits = cria_safetensors_lookup (st, "logits");
  CU_ASSERT_PTR_NOT_NULL_FATAL (want && want_ids && ids && logits);
  /* the added tokens encode to their new ids (the adapter's tokenizer) */
  CU_ASSERT_EQUAL_FATAL (ids->n_bytes, want_ids->n_bytes);
  CU_ASSERT_EQUAL (memcmp (ids->data, want_ids->data, ids->n_bytes), 0);
  CU_ASSERT_EQUAL_FATAL (logits->shape[0], want->shape[0]);
  CU_ASSERT_EQUAL_FATAL (logits->shape[1], want->shape[1]);
  double diff = cria_test_rel_diff (logits->data, want->data, want->n_elements);
  if (diff > 1e-5)
    printf ("\n%s: logits differ from PyTorch's by %g (relative)\n", name, diff);
  CU_ASSERT_TRUE (diff <= 1e-5);
}

static const struct {
  const char *name;
  gboolean qwen3;
  gboolean tied_after; /* the merged model ties its head to its embeddings */
} cases[] = {
  { "llama", FALSE, FALSE },       /* untied: embed_tokens and lm_head resized */
  { "qwen3-tied", TRUE, TRUE },    /* tied: one resized tensor serves both */
  { "qwen3-untied", TRUE, FALSE }, /* tied base, a head of its own saved (bf16): untied */
};

static void
test_logits (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *adapter = g_build_filename (fixtures, cases[i].name, NULL);
    check_logits (cases[i].qwen3 ? qwen3 : llama, adapter, cases[i].name);
  }
}

/* cria merge writes the new vocab_size and the adapter's tokenizer; the
 * merged model alone gives the same logits. */
static void
test_merge (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *adapter = g_build_filename (fixtures, cases[i].name, NULL);
    g_autofree char *out = g_build_filename (tmp, "merged", cases[i].name, NULL);
    const char *model = cases[i].qwen3 ? qwen3 : llama;
    if (i == 0) {
      const char *args[] = { "merge", "--model", model, "--adapter", adapter, "--out", out, NULL };
      g_autofree char *err = NULL;
      int status = cria_test_run_cria (args, NULL, NULL, &err);
      if (status != 0)
        printf ("\n%s: %s\n", cases[i].name, err);
      CU_ASSERT_EQUAL_FATAL (status, 0);
    } else {
      /* what cria merge does, without a process each */
      g_autoptr (CriaRegistry) reg = cria_test_registry ();
      g_autoptr (GError) error = NULL;
      g_autoptr (CriaModel) m = cria_model_open (reg, model, CRIA_MODEL_DTYPE_F32, &error);
      g_autoptr (CriaAdapter) a = m ? cria_adapter_load (reg, m, adapter, &error) : NULL;
      gboolean ok = a && cria_adapter_merge (a, m, &error) && cria_model_save (m, out, CRIA_DTYPE_F32, 0, &error);
      if (!ok)
        printf ("\n%s: %s\n", cases[i].name, error->message);
      CU_ASSERT_TRUE_FATAL (ok);
    }
    g_autofree char *config_path = g_build_filename (out, "config.json", NULL);
    g_autoptr (CriaHfConfig) config = cria_hf_config_load (config_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (config);
    CU_ASSERT_EQUAL (json_object_get_int_member (config->json, "vocab_size"), 264);
    CU_ASSERT_EQUAL (json_object_get_boolean_member_with_default (config->json, "tie_word_embeddings", FALSE),
                     cases[i].tied_after);
    g_autofree char *have_path = g_build_filename (out, "tokenizer.json", NULL);
    g_autofree char *want_path = g_build_filename (adapter, "tokenizer.json", NULL);
    g_autofree char *have = cria_test_read_file (have_path), *want = cria_test_read_file (want_path);
    CU_ASSERT_PTR_NOT_NULL_FATAL (have && want);
    CU_ASSERT_STRING_EQUAL (have, want);
    check_logits (out, NULL, cases[i].name);
  }
}

/* A copy of fixture `name` in which the tensors named in `drop` are left
 * out and `add` (if any) is added. */
static char *
variant (const char *name, const char *const *drop, const CriaWeight *add)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *from = g_build_filename (fixtures, name, NULL);
  char *dir = g_build_filename (tmp, "variant", NULL);
  cria_test_rmtree (dir);
  g_mkdir (dir, 0755);
  const char *files[] = { "adapter_config.json", "tokenizer.json", "tokenizer_config.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *src = g_build_filename (from, files[i], NULL), *dst = g_build_filename (dir, files[i], NULL);
    g_autofree char *text = cria_test_read_file (src);
    cria_test_write_file (dst, text);
  }
  g_autofree char *src = g_build_filename (from, "adapter_model.safetensors", NULL);
  g_autofree char *dst = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (src, &error);
  g_assert (st);
  g_autoptr (CriaSafetensorsWriter) w = cria_safetensors_writer_new ();
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const CriaWeight *t = cria_safetensors_get_weight (st, i);
    if (!drop || !g_strv_contains (drop, t->name))
      g_assert (cria_safetensors_writer_add (w, t, &error));
  }
  if (add)
    g_assert (cria_safetensors_writer_add (w, add, &error));
  g_assert (cria_safetensors_writer_write (w, dst, &error));
  return dir;
}

/* The error of loading `adapter` on `model`, NULL when it loads. */
static char *
load_error (const char *model, const char *adapter)
{
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) m = cria_model_open (reg, model, CRIA_MODEL_DTYPE_AUTO, &error);
  g_assert (m);
  g_autoptr (CriaAdapter) a = cria_adapter_load (reg, m, adapter, &error);
  return a ? NULL : g_strdup (error->message);
}

static void
expect_error (const char *err, const char *want)
{
  if (!err || !strstr (err, want))
    printf ("\nexpected an error with \"%s\", got: %s\n", want, err ? err : "none");
  CU_ASSERT_TRUE (err && strstr (err, want) && !strchr (err, '\n'));
}

static void
test_refused (void)
{
  /* a resized vocabulary without the tokenizer of its added tokens */
  g_autofree char *no_tok = variant ("llama", NULL, NULL);
  g_autofree char *tok_path = g_build_filename (no_tok, "tokenizer.json", NULL);
  g_unlink (tok_path);
  g_autofree char *e1 = load_error (llama, no_tok);
  expect_error (e1, "resizes the vocabulary from 256 to 264 tokens, but");
  expect_error (e1, "holds no tokenizer");

  /* an untied model whose head was not resized with its embeddings */
  const char *head[] = { "base_model.model.lm_head.weight", NULL };
  g_autofree char *no_head = variant ("llama", head, NULL);
  g_autofree char *e2 = load_error (llama, no_head);
  expect_error (e2, "lm_head.weight is [256, 32] in the model and not given, the changed model needs [264, 32]");

  /* the embeddings and the head resized to different sizes */
  g_autofree float *rows = g_new0 (float, 260 * 32);
  CriaWeight short_head = { .name = (char *) head[0],
                            .dtype = CRIA_DTYPE_F32,
                            .n_dims = 2,
                            .shape = { 260, 32 },
                            .n_elements = 260 * 32,
                            .data = rows,
                            .n_bytes = 260 * 32 * sizeof (float) };
  g_autofree char *odd = variant ("llama", head, &short_head);
  g_autofree char *e3 = load_error (llama, odd);
  expect_error (e3, "the saved modules disagree on the vocabulary size");

  /* a tied model's head resized without the embeddings */
  const char *embed[] = { "base_model.model.model.embed_tokens.weight", NULL };
  g_autofree char *no_embed = variant ("qwen3-untied", embed, NULL);
  g_autofree char *e4 = load_error (qwen3, no_embed);
  expect_error (e4, "model.embed_tokens.weight is [256, 32] in the model and not given");

  /* a LoRA GGUF cannot carry the resized vocabulary */
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) m = cria_model_open (reg, llama, CRIA_MODEL_DTYPE_AUTO, &error);
  g_autofree char *adapter = g_build_filename (fixtures, "llama", NULL);
  g_autofree char *gguf = g_build_filename (tmp, "lora.gguf", NULL);
  CU_ASSERT_FALSE (cria_model_export_gguf_lora (reg, m, adapter, gguf, &error));
  expect_error (error ? error->message : NULL, "a GGUF LoRA cannot carry");
  g_clear_error (&error);

  /* cria train does not continue a saved adapter (its saved modules would be dropped) */
  g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (reg, adapter, &error);
  CU_ASSERT_PTR_NULL (a);
  expect_error (error ? error->message : NULL, "is a saved adapter");
}

/* A head of the vocabulary's size saved for a tied model unties it (PEFT
 * runs the saved copy as the head, the base's embeddings as they were). */
static void
test_untie (void)
{
  const char *both[] = { "base_model.model.model.embed_tokens.weight", "base_model.model.lm_head.weight", NULL };
  g_autofree float *rows = g_new (float, 256 * 32);
  for (int i = 0; i < 256 * 32; i++)
    rows[i] = (float) (i % 13) / 13.0f;
  CriaWeight head = { .name = (char *) both[1],
                      .dtype = CRIA_DTYPE_F32,
                      .n_dims = 2,
                      .shape = { 256, 32 },
                      .n_elements = 256 * 32,
                      .data = rows,
                      .n_bytes = 256 * 32 * sizeof (float) };
  g_autofree char *dir = variant ("qwen3-untied", both, &head);
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) m = cria_model_open (reg, qwen3, CRIA_MODEL_DTYPE_AUTO, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  CU_ASSERT_PTR_NULL (cria_model_get_param (m, "lm_head.weight"));
  CriaTensor *embed = cria_model_get_param (m, "model.embed_tokens.weight");
  g_autoptr (CriaTensor) embed_before = cria_tensor_to_f32 (embed);
  g_autoptr (CriaAdapter) a = cria_adapter_load (reg, m, dir, &error);
  if (!a)
    printf ("\n%s\n", error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  const CriaHfConfig *c = cria_model_get_config (m);
  CU_ASSERT_FALSE (c->tie_word_embeddings);
  CU_ASSERT_EQUAL (c->vocab_size, 256);
  CriaTensor *h = cria_model_get_param (m, "lm_head.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL (h);
  CU_ASSERT_EQUAL (memcmp (h->data, rows, sizeof (float) * 256 * 32), 0);
  g_autoptr (CriaTensor) embed_after = cria_tensor_to_f32 (cria_model_get_param (m, "model.embed_tokens.weight"));
  CU_ASSERT_EQUAL (memcmp (embed_after->data, embed_before->data, sizeof (float) * 256 * 32), 0);

  /* Its tokenizer (ids up to 257) does not fit that vocabulary: refused
   * where the tokenizer is taken up. */
  g_autofree char *out = g_build_filename (tmp, "unused.safetensors", NULL);
  const char *args[] = { "logits", "--model", qwen3, "--adapter", dir, "--text", "a", "--out", out, NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, NULL, &err), 1);
  g_autofree char *last = g_strdup (err ? g_strstrip (err) : "");
  expect_error (strrchr (last, '\n') ? strrchr (last, '\n') + 1 : last,
                "its tokenizer has ids up to 257, beyond the model's vocabulary of 256 tokens");

  /* A same-size saved head does not fit a GGUF LoRA either: refused, not dropped */
  g_autoptr (CriaModel) fresh = cria_model_open (reg, qwen3, CRIA_MODEL_DTYPE_AUTO, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (fresh);
  g_autofree char *gguf = g_build_filename (tmp, "head.gguf", NULL);
  CU_ASSERT_FALSE (cria_model_export_gguf_lora (reg, fresh, dir, gguf, &error));
  expect_error (error ? error->message : NULL,
                "tensor base_model.model.lm_head.weight: modules_to_save replaces the base's lm_head.weight whole");
  CU_ASSERT_FALSE (g_file_test (gguf, G_FILE_TEST_EXISTS));
}

/* The greedy ids and prompt length cria generate --json prints. */
static char *
generate_json (const char *const *args)
{
  g_autofree char *out = NULL, *err = NULL;
  int status = cria_test_run_cria (args, NULL, &out, &err);
  if (status != 0)
    printf ("\n%s\n", err ? err : "");
  CU_ASSERT_EQUAL (status, 0);
  g_autoptr (JsonParser) p = json_parser_new ();
  if (!out || !json_parser_load_from_data (p, out, -1, NULL))
    return g_strdup ("(no output)");
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  JsonArray *ids = json_object_get_array_member (o, "ids");
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "%" G_GINT64_FORMAT ":", json_object_get_int_member (o, "prompt_tokens"));
  for (guint i = 0; i < json_array_get_length (ids); i++)
    g_string_append_printf (s, " %" G_GINT64_FORMAT, json_array_get_int_element (ids, i));
  return g_string_free (s, FALSE);
}

/* The chat template an adapter ships (LLaMA-Factory saves the tokenizer and
 * its template beside the adapter) is the one generate uses: the same ids as
 * the text it renders given as it is. */
static void
test_adapter_template (void)
{
  g_autofree char *dir = variant ("llama", NULL, NULL);
  g_autofree char *jinja = g_build_filename (dir, "chat_template.jinja", NULL);
  cria_test_write_file (jinja, "<|tool|>{{ messages[0]['content'] }}<obs>");
  const char *chat[] = {
    "generate", "--model", llama, "--adapter", dir, "-p", "auto", "--json", "-n", "4", "hi", NULL
  };
  const char *plain[] = { "generate",         "--model", llama, "--adapter",       dir, "--json",
                          "--no-add-special", "-n",      "4",   "<|tool|>hi<obs>", NULL };
  g_autofree char *have = generate_json (chat), *want = generate_json (plain);
  CU_ASSERT_STRING_EQUAL (have, want);
  /* Without it the base has none: the message is given as it is. */
  g_unlink (jinja);
  const char *bare[] = { "generate",         "--model", llama, "--adapter", dir, "--json",
                         "--no-add-special", "-n",      "4",   "hi",        NULL };
  g_autofree char *untemplated = generate_json (chat), *as_is = generate_json (bare);
  CU_ASSERT_STRING_EQUAL (untemplated, as_is);
  CU_ASSERT_STRING_NOT_EQUAL (untemplated, have);
}

/* The summary of cria eval --json over `data`, "" on failure. */
static char *
eval_json (const char *model, const char *adapter, gboolean compare, const char *data)
{
  const char *args[] = { "eval",
                         "--model",
                         model,
                         "--data",
                         data,
                         "--metrics",
                         "perplexity",
                         "--json",
                         "--adapter",
                         adapter,
                         compare ? "--compare" : NULL,
                         NULL };
  if (!adapter)
    args[8] = NULL;
  g_autofree char *out = NULL, *err = NULL;
  int status = cria_test_run_cria (args, NULL, &out, &err);
  if (status != 0)
    printf ("\n%s\n", err ? err : "");
  CU_ASSERT_EQUAL (status, 0);
  return g_strdup (out ? out : "");
}

/* One member of a JSON object text, as text. */
static char *
member (const char *json, const char *name)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  if (!json_parser_load_from_data (p, json, -1, NULL) || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)))
    return g_strdup ("(not JSON)");
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  JsonNode *n = json_object_get_member (o, name);
  return n ? json_to_string (n, FALSE) : g_strdup ("(absent)");
}

/* cria eval --compare's base column is the base model's own: loading the
 * adapter replaced its embeddings, head and tokenizer, so the base is
 * opened a second time. Each column equals a run of that model alone, for
 * text records and for preference pairs. */
static void
test_eval_compare (void)
{
  g_autofree char *adapter = g_build_filename (fixtures, "llama", NULL);
  g_autofree char *text = g_build_filename (tmp, "eval.jsonl", NULL);
  g_autofree char *pairs = g_build_filename (tmp, "pairs.jsonl", NULL);
  cria_test_write_file (text, "{\"instruction\": \"hi <|tool|>\", \"output\": \"42<obs>!\"}\n"
                              "{\"instruction\": \"say\", \"output\": \"ok ok\"}\n");
  cria_test_write_file (pairs, "{\"prompt\": \"hi <|tool|>\", \"chosen\": \"42<obs>\", \"rejected\": \"no\"}\n");
  const char *files[] = { text, pairs };
  for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
    g_autofree char *both = eval_json (llama, adapter, TRUE, files[f]);
    g_autofree char *alone = eval_json (llama, NULL, FALSE, files[f]);
    g_autofree char *adapted = eval_json (llama, adapter, FALSE, files[f]);
    g_autofree char *base_have = member (both, "base"), *base_want = member (alone, "model");
    g_autofree char *adapted_have = member (both, "adapted"), *adapted_want = member (adapted, "adapted");
    CU_ASSERT_STRING_EQUAL (base_have, base_want);
    CU_ASSERT_STRING_EQUAL (adapted_have, adapted_want);
    CU_ASSERT_STRING_NOT_EQUAL (base_have, adapted_have);
  }
}

static void
register_suites (void)
{
  setup ();
  atexit (teardown);
  static const CriaTestCase tests[] = {
    { "--adapter with a resized vocabulary = PyTorch's logits", test_logits },
    { "merged: new vocab_size, the adapter's tokenizer, the same logits", test_merge },
    { "inconsistent or incomplete resized adapters are refused", test_refused },
    { "a head saved for a tied model unties it", test_untie },
    { "the chat template an adapter ships is used", test_adapter_template },
    { "eval --compare's base column is the base model's", test_eval_compare },
    { NULL },
  };
  cria_test_add_suite ("resized vocabulary", tests);
}

CRIA_TEST_MAIN (register_suites)
