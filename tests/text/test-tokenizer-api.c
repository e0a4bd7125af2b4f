/* test-tokenizer-api.c: the CriaTokenizer API (offsets, special ids, batches,
 * decode, lookups), bad tokenizer files, and the cria tokenize verb.
 *
 * Bad files are written by the tests: each must fail with one line naming the
 * file and the JSON path, line or field, never crash. */
#include "config.h"

#include <string.h>

#include "tok-test.h"

static void
assert_spans (CriaEncoding *enc, const guint32 *want, guint n)
{
  CU_ASSERT_PTR_NOT_NULL_FATAL (enc->offsets);
  CU_ASSERT_EQUAL_FATAL (enc->offsets->len, n);
  for (guint i = 0; i < n; i++) {
    CriaTokenSpan s = g_array_index (enc->offsets, CriaTokenSpan, i);
    CU_ASSERT_EQUAL (s.start, want[2 * i]);
    CU_ASSERT_EQUAL (s.end, want[2 * i + 1]);
  }
}

static void
test_offsets (void)
{
  g_autoptr (CriaTokenizer) gpt2 = load ("tokenizers/gpt2-hf");
  g_autoptr (CriaEncoding) e1 = cria_tokenizer_encode (gpt2, "Hello world<|endoftext|>", -1, CRIA_ENCODE_OFFSETS, NULL);
  static const guint32 w1[] = { 0, 5, 5, 11, 11, 24 };
  assert_spans (e1, w1, 3);
  /* LLaMA-2: the prepended "▁" belongs to the first word; BOS is empty. */
  g_autoptr (CriaTokenizer) llama2 = load ("tokenizers/llama2");
  g_autoptr (CriaEncoding)
      e2 = cria_tokenizer_encode (llama2, "Hi you", -1, CRIA_ENCODE_OFFSETS | CRIA_ENCODE_ADD_SPECIAL, NULL);
  CU_ASSERT_EQUAL (g_array_index (e2->ids, gint32, 0), 1);
  CriaTokenSpan last = g_array_index (e2->offsets, CriaTokenSpan, e2->offsets->len - 1);
  CU_ASSERT_EQUAL (last.end, 6);
  CU_ASSERT_EQUAL (g_array_index (e2->offsets, CriaTokenSpan, 0).end, 0);
  /* BERT lowercases and strips accents: offsets still point at the original. */
  g_autoptr (CriaTokenizer) bert = load ("tokenizers/bert-base-uncased");
  g_autoptr (CriaEncoding) e3 = cria_tokenizer_encode (bert, "Caf\xC3\xA9 OK", -1, CRIA_ENCODE_OFFSETS, NULL);
  static const guint32 w3[] = { 0, 5, 6, 8 };
  assert_spans (e3, w3, 2);
  /* A word WordPiece cannot cover is one [UNK] spanning it. */
  g_autoptr (CriaEncoding)
      e4 = cria_tokenizer_encode (bert, "ok \xF0\x9F\xA6\x80\xF0\x9F\xA6\x80 ok", -1, CRIA_ENCODE_OFFSETS, NULL);
  static const guint32 w4[] = { 0, 2, 3, 11, 12, 14 };
  assert_spans (e4, w4, 3);
}

static void
test_special_ids (void)
{
  g_autoptr (CriaTokenizer) llama2 = load ("tokenizers/llama2");
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (llama2, CRIA_SPECIAL_BOS), 1);
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (llama2, CRIA_SPECIAL_EOS), 2);
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (llama2, CRIA_SPECIAL_UNK), 0);
  CU_ASSERT_EQUAL (cria_tokenizer_vocab_size (llama2), 32000);
  CU_ASSERT_STRING_EQUAL (cria_tokenizer_get_provider_name (llama2), "spm");
  g_autoptr (CriaTokenizer) qwen = load ("tokenizers/qwen2.5");
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (qwen, CRIA_SPECIAL_BOS), -1); /* null in tokenizer_config.json */
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (qwen, CRIA_SPECIAL_EOS), 151645);
  CU_ASSERT_EQUAL (cria_tokenizer_special_id (qwen, CRIA_SPECIAL_PAD), 151643);
  CU_ASSERT_EQUAL (cria_tokenizer_vocab_size (qwen), 151665);
  CU_ASSERT_STRING_EQUAL (cria_tokenizer_get_provider_name (qwen), "bpe");
  CU_ASSERT_STRING_EQUAL (cria_tokenizer_id_to_token (qwen, 151644), "<|im_start|>");
  CU_ASSERT_EQUAL (cria_tokenizer_token_to_id (qwen, "<|im_start|>"), 151644);
  CU_ASSERT_EQUAL (cria_tokenizer_token_to_id (qwen, "no such token"), -1);
  CU_ASSERT_PTR_NULL (cria_tokenizer_id_to_token (qwen, 999999));
  CU_ASSERT_TRUE (cria_tokenizer_is_special (qwen, 151644));
  CU_ASSERT_FALSE (cria_tokenizer_is_special (qwen, 9707));
  g_autoptr (CriaTokenizer) bert = load ("tokenizers/bert-base-chinese");
  CU_ASSERT_STRING_EQUAL (cria_tokenizer_get_provider_name (bert), "wordpiece");
  CU_ASSERT_EQUAL (cria_tokenizer_vocab_size (bert), 21128);
  g_autoptr (CriaEncoding)
      e = cria_tokenizer_encode (bert, "\xE4\xBD\xA0\xE5\xA5\xBD", -1, CRIA_ENCODE_ADD_SPECIAL, NULL);
  CU_ASSERT_EQUAL (e->ids->len, 4); /* [CLS] 你 好 [SEP] */
  CU_ASSERT_EQUAL (g_array_index (e->ids, gint32, 0), cria_tokenizer_special_id (bert, CRIA_SPECIAL_BOS));
}

static void
test_decode (void)
{
  g_autoptr (CriaTokenizer) qwen = load ("tokenizers/qwen2.5");
  static const gint32 ids[] = { 151644, 872, 198, 9707, 151645 };
  g_autofree char *all = cria_tokenizer_decode (qwen, ids, G_N_ELEMENTS (ids), FALSE, NULL);
  CU_ASSERT_STRING_EQUAL (all, "<|im_start|>user\nHello<|im_end|>");
  g_autofree char *plain = cria_tokenizer_decode (qwen, ids, G_N_ELEMENTS (ids), TRUE, NULL);
  CU_ASSERT_STRING_EQUAL (plain, "user\nHello");
  /* Half of a character decodes to U+FFFD, never to invalid UTF-8. */
  g_autoptr (CriaEncoding) e = cria_tokenizer_encode (qwen, "\xF0\x9F\xA6\x80", -1, CRIA_ENCODE_DEFAULT, NULL);
  g_autofree char *half = cria_tokenizer_decode (qwen, (gint32 *) e->ids->data, 1, FALSE, NULL);
  CU_ASSERT_TRUE (g_utf8_validate (half, -1, NULL));
  /* Ids past the vocabulary decode to nothing: "Hello world", as
   * @huggingface/tokenizers' Tokenizer.decode gives for these. */
  static const gint32 past[] = { 9707, 151900, 1879, 999999 };
  g_autofree char *skipped = cria_tokenizer_decode (qwen, past, G_N_ELEMENTS (past), FALSE, NULL);
  CU_ASSERT_STRING_EQUAL (skipped, "Hello world");
  g_autoptr (GError) error = NULL;
  static const gint32 bad[] = { 1, -5 };
  CU_ASSERT_PTR_NULL (cria_tokenizer_decode (qwen, bad, 2, FALSE, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "-5"));
}

static void
test_invalid_utf8 (void)
{
  /* As node decodes these bytes: each maximal ill-formed part is one U+FFFD. */
  g_autoptr (CriaTokenizer) qwen = load ("tokenizers/qwen2.5");
  g_autoptr (CriaEncoding) a = cria_tokenizer_encode (qwen, "bad \xFF\xFE byte \xE4\xB8 end", -1, 0, NULL);
  static const gint32 want[] = { 13855, 220, 9973, 4922, 29333, 835 };
  CU_ASSERT_EQUAL_FATAL (a->ids->len, G_N_ELEMENTS (want));
  CU_ASSERT_EQUAL (memcmp (a->ids->data, want, sizeof want), 0);
  gsize n;
  g_autofree char *v = cria_utf8_make_valid ("a\xED\xA0\x80z\xF4\x90", -1, &n);
  CU_ASSERT_STRING_EQUAL (v, "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void
test_batch (void)
{
  g_autoptr (CriaTokenizer) llama3 = load ("tokenizers/llama3");
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 200; i++)
    g_ptr_array_add (texts, g_strdup_printf ("line %u: \xE4\xBD\xA0\xE5\xA5\xBD  world %u\n", i, i * 7919));
  g_autoptr (GPtrArray) encs = cria_tokenizer_encode_batch (llama3, (const char *const *) texts->pdata, texts->len,
                                                            CRIA_ENCODE_OFFSETS, 4, NULL);
  CU_ASSERT_EQUAL_FATAL (encs->len, texts->len);
  for (guint i = 0; i < texts->len; i++) {
    g_autoptr (CriaEncoding) one = cria_tokenizer_encode (llama3, texts->pdata[i], -1, CRIA_ENCODE_OFFSETS, NULL);
    CriaEncoding *b = encs->pdata[i];
    CU_ASSERT_EQUAL_FATAL (one->ids->len, b->ids->len);
    CU_ASSERT_EQUAL (memcmp (one->ids->data, b->ids->data, one->ids->len * sizeof (gint32)), 0);
    CU_ASSERT_EQUAL (memcmp (one->offsets->data, b->offsets->data, one->ids->len * sizeof (CriaTokenSpan)), 0);
  }
}

/* A tiny valid tokenizer.json, with a spot to break. */
static const char
    *tiny = "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, "
            "\"ab\": 3, \"\\u2581\": 4},"
            " \"merges\": [\"a b\"]},"
            " \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}],"
            " \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"},"
            " \"decoder\": {\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"}}";

/* Writes `text` as tokenizer.json (or `name`) in a fresh directory, loads it
 * and expects a failure whose message holds each of the `needles`. */
static void
expect_failure (const char *name, const char *text, const char *const *needles)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, name, NULL);
  cria_test_write_file (path, text);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, dir, &error);
  CU_ASSERT_PTR_NULL (tok);
  CU_ASSERT_PTR_NOT_NULL_FATAL (error);
  CU_ASSERT_PTR_NULL (strchr (error->message, '\n'));
  for (guint i = 0; needles[i]; i++)
    if (!strstr (error->message, needles[i])) {
      fprintf (stderr, "\"%s\" lacks \"%s\"\n", error->message, needles[i]);
      CU_FAIL ("message lacks a needle");
    }
  cria_test_rmtree (dir);
}

static char *
tiny_with (const char *from, const char *to)
{
  g_auto (GStrv) parts = g_strsplit (tiny, from, 2);
  g_assert (parts[1]);
  return g_strjoin (to, parts[0], parts[1], NULL);
}

static void
test_tiny (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "tokenizer.json", NULL);
  cria_test_write_file (path, tiny);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, path, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  g_autoptr (CriaEncoding) e = cria_tokenizer_encode (tok, "ab a<unk>c", -1, 0, NULL);
  static const gint32 want[] = { 3, 4, 1, 0, 0 }; /* ab ▁ a <unk> c->unk */
  CU_ASSERT_EQUAL_FATAL (e->ids->len, G_N_ELEMENTS (want));
  CU_ASSERT_EQUAL (memcmp (e->ids->data, want, sizeof want), 0);
  g_autofree char *back = cria_tokenizer_decode (tok, want, 3, FALSE, NULL);
  CU_ASSERT_STRING_EQUAL (back, "ab a");
  cria_test_rmtree (dir);
}

/* A WordPiece vocabulary given as a JSON list gives vocab.txt's ids. */
static void
test_vocab_list (void)
{
  g_autofree char *txt = cria_test_shared ("tokenizers/bert-base-uncased/vocab.txt");
  g_autofree char *text = cria_test_read_file (txt);
  g_auto (GStrv) lines = cria_test_lines (text);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_array (b);
  for (char **l = lines; *l && **l; l++)
    json_builder_add_string_value (b, *l);
  json_builder_end_array (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *json = json_to_string (root, FALSE);
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *list = g_build_filename (dir, "bert-vocab.json", NULL);
  cria_test_write_file (list, json);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTokenizer) a = cria_tokenizer_load (registry, txt, &error);
  g_autoptr (CriaTokenizer) l = cria_tokenizer_load (registry, list, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_PTR_NOT_NULL_FATAL (l);
  const char *probe = "Hello, World! unaffable naïve CAFÉ 12,345";
  g_autoptr (CriaEncoding) ea = cria_tokenizer_encode (a, probe, -1, 0, NULL);
  g_autoptr (CriaEncoding) el = cria_tokenizer_encode (l, probe, -1, 0, NULL);
  CU_ASSERT_EQUAL_FATAL (ea->ids->len, el->ids->len);
  CU_ASSERT_EQUAL (memcmp (ea->ids->data, el->ids->data, ea->ids->len * sizeof (gint32)), 0);
  cria_test_write_file (list, "[\"[UNK]\", \"a\", 3]");
  g_autoptr (CriaTokenizer) bad = cria_tokenizer_load (registry, list, &error);
  CU_ASSERT_PTR_NULL (bad);
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "bert-vocab.json: [2]: expected a token string"));
  cria_test_rmtree (dir);
}

static void
test_bad_files (void)
{
  const char *const n1[] = { "tokenizer.json", "1:", NULL };
  expect_failure ("tokenizer.json", "{\"model\": {", n1);
  const char *const n2[] = { "tokenizer.json", "$.model", "missing", NULL };
  expect_failure ("tokenizer.json", "{}", n2);
  g_autofree char *t3 = tiny_with ("\"b\": 2", "\"b\": \"two\"");
  const char *const n3[] = { "$.model.vocab[\"b\"]", NULL };
  expect_failure ("tokenizer.json", t3, n3);
  g_autofree char *t4 = tiny_with ("\"a b\"", "\"a c\"");
  const char *const n4[] = { "$.model.merges[0]", "not in the vocabulary", NULL };
  expect_failure ("tokenizer.json", t4, n4);
  g_autofree char *t5 = tiny_with ("\"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"",
                                   "\"Precompiled\", \"precompiled_charsmap\": \"\"");
  const char *const n5[] = { "$.normalizer", "Precompiled", "not supported", NULL };
  expect_failure ("tokenizer.json", t5, n5);
  g_autofree char *t6 = tiny_with ("{\"String\": \" \"}", "{\"Regex\": \"(unclosed\"}");
  const char *const n6[] = { "$.normalizer.pattern", "regular expression", NULL };
  expect_failure ("tokenizer.json", t6, n6);
  g_autofree char *t7 = tiny_with ("\"content\": \"<unk>\"", "\"contents\": \"<unk>\"");
  const char *const n7[] = { "$.added_tokens[0]", "content", NULL };
  expect_failure ("tokenizer.json", t7, n7);
  g_autofree char *t8 = tiny_with ("\"decoder\": {\"type\": \"Replace\"", "\"decoder\": {\"type\": \"CTC\"");
  const char *const n8[] = { "$.decoder", "CTC", NULL };
  expect_failure ("tokenizer.json", t8, n8);
  g_autofree char *t9 = tiny_with (
      "\"normalizer\"", "\"post_processor\": {\"type\": \"TemplateProcessing\", "
                        "\"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}, \"normalizer\"");
  const char *const n9[] = { "$.post_processor.single[0]", "<s>", NULL };
  expect_failure ("tokenizer.json", t9, n9);
  g_autofree char *t10 = tiny_with ("\"type\": \"BPE\"", "\"type\": \"Unigram\"");
  const char *const n10[] = { "$.model.type", "Unigram", NULL };
  expect_failure ("tokenizer.json", t10, n10);
  g_autofree char *t15 = tiny_with ("\"unk_token\": \"<unk>\"", "\"unk_token\": 7");
  const char *const n15[] = { "$.model", "\"unk_token\" must be a string", NULL };
  expect_failure ("tokenizer.json", t15, n15);
  /* Two tokens under one id, and a negative word length, used to load. */
  g_autofree char *t16 = tiny_with ("\"ab\": 3", "\"ab\": 2");
  const char *const n16[] = { "$.model.vocab[", "id 2 is also the id of", NULL };
  expect_failure ("tokenizer.json", t16, n16);
  const char *const n17[] = { "$.model.max_input_chars_per_word", "not -1", NULL };
  expect_failure ("tokenizer.json",
                  "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0},"
                  " \"max_input_chars_per_word\": -1}}",
                  n17);
  const char *const n11[] = { "vocab.txt", "[UNK]", NULL };
  expect_failure ("vocab.txt", "[PAD]\nhello\n", n11);
  const char *const n12[] = { "tokenizer.model", "not supported", NULL };
  expect_failure ("tokenizer.model", "\x0a\x05", n12);
  const char *const n13[] = { "no tokenizer files", NULL };
  expect_failure ("README", "nothing here", n13);
  const char *const n14[] = { "vocab.txt:2", "UTF-8", NULL };
  expect_failure ("vocab.txt", "[UNK]\nbad \xC3(\n", n14);
}

static void
test_bad_gpt2_files (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *enc = g_build_filename (dir, "encoder.json", NULL);
  g_autofree char *bpe = g_build_filename (dir, "vocab.bpe", NULL);
  cria_test_write_file (enc, "{\"a\": 0, \"b\": 1}");
  cria_test_write_file (bpe, "#version: 0.2\na b\n");
  g_autoptr (GError) error = NULL;
  CU_ASSERT_PTR_NULL (cria_tokenizer_load (registry, dir, &error));
  CU_ASSERT_PTR_NOT_NULL_FATAL (error && strstr (error->message, "vocab.bpe:2"));
  g_clear_error (&error);
  cria_test_write_file (enc, "[1, 2]");
  CU_ASSERT_PTR_NULL (cria_tokenizer_load (registry, dir, &error));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "encoder.json"));
  cria_test_rmtree (dir);
}

/* A tokenizer.json cut anywhere is an error, never a crash. */
static void
test_truncated (void)
{
  g_autofree char *src = cria_test_shared ("tokenizers/bert-base-uncased/tokenizer.json");
  g_autofree char *text = cria_test_read_file (src);
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "tokenizer.json", NULL);
  gsize len = strlen (text);
  for (guint k = 1; k < 8; k++) {
    g_autofree char *cut = g_strndup (text, len * k / 8);
    cria_test_write_file (path, cut);
    g_autoptr (GError) error = NULL;
    CU_ASSERT_PTR_NULL (cria_tokenizer_load (registry, path, &error));
    CU_ASSERT_PTR_NOT_NULL (error);
  }
  cria_test_rmtree (dir);
}

static void
test_cli (void)
{
  g_autofree char *qwen = cria_test_shared ("tokenizers/qwen2.5");
  g_autofree char *out = NULL, *err = NULL;
  const char *const a1[] = { "tokenize", "--tokenizer", qwen, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a1, "Hello world\n\n<|im_start|>\n", &out, &err), 0);
  CU_ASSERT_STRING_EQUAL (out, "[9707,1879]\n[]\n[151644]\n");
  g_clear_pointer (&out, g_free);
  const char *const a2[] = { "tokenize", "--tokenizer", qwen, "--tokens", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a2, "Hello world\n", &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL (out, "[\"Hello\",\"\xC4\xA0world\"]\n");
  g_clear_pointer (&out, g_free);
  const char *const a3[] = { "tokenize", "--tokenizer", qwen, "--decode", "--skip-special", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a3, "[151644,9707,1879]\n", &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL (out, "\"Hello world\"\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  CU_ASSERT_EQUAL (cria_test_run_cria (a3, "[1,2]\n{\"x\": 1}\n", &out, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "-:2"));
  g_clear_pointer (&err, g_free);
  const char *const a4[] = { "tokenize", "--tokenizer", "/nonexistent/tok", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a4, "", NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "/nonexistent/tok"));
  /* A cased vocabulary read with lowercase=false keeps "Hello" whole. */
  g_autofree char *zh = cria_test_shared ("tokenizers/bert-base-chinese/vocab.txt");
  g_clear_pointer (&out, g_free);
  const char *const a6[] = { "tokenize", "--tokenizer",     zh,         "--provider", "wordpiece",
                             "--set",    "lowercase=false", "--tokens", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a6, "\xC3\x89t\xC3\xA9\n", &out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (out && strstr (out, "\"[UNK]\""));
  g_clear_pointer (&out, g_free);
  const char *const a7[] = { "tokenize", "--tokenizer", zh, "--provider", "wordpiece", "--tokens", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a7, "\xC3\x89t\xC3\xA9\n", &out, NULL), 0);
  CU_ASSERT_PTR_NULL (out && strstr (out, "\"[UNK]\""));
  const char *const a8[] = { "tokenize", "--tokenizer", zh, "--set", "lowercase=no", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a8, "", NULL, NULL), 2);
  const char *const a5[] = { "tokenize", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a5, "", NULL, NULL), 2);
}

/* Training: a valid tokenizer.json that round-trips, the same file twice,
 * and a vocabulary no larger than asked (this text runs out of pairs seen
 * twice before 300). Its ids were compared once with
 * @huggingface/tokenizers reading the same file (see the bench notes). */
static void
test_train (void)
{
  g_autoptr (CriaBpeTrainer) t = cria_bpe_trainer_new ();
  GString *text = g_string_new (NULL);
  for (guint i = 0; i < 300; i++)
    g_string_append_printf (text, "the cat %u sat on the mat; \xE7\x8C\xAB\xE5\x9C\xA8 the hat\n", i % 17);
  cria_bpe_trainer_feed (t, text->str, (gssize) text->len);
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *p1 = g_build_filename (dir, "a.json", NULL);
  g_autofree char *p2 = g_build_filename (dir, "tokenizer.json", NULL);
  const char *const specials[] = { "<|endoftext|>", "<pad>", NULL };
  g_autoptr (GError) error = NULL;
  CU_ASSERT_TRUE_FATAL (cria_bpe_trainer_write (t, 300, 2, specials, p1, &error));
  CU_ASSERT_TRUE_FATAL (cria_bpe_trainer_write (t, 300, 2, specials, p2, &error));
  guint merges = cria_bpe_trainer_get_n_merges (t);
  CU_ASSERT (merges >= 20 && merges <= 300 - 258);
  g_autofree char *a = cria_test_read_file (p1);
  g_autofree char *b = cria_test_read_file (p2);
  CU_ASSERT_STRING_EQUAL (a, b);
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, dir, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  CU_ASSERT (cria_tokenizer_vocab_size (tok) > 258 && cria_tokenizer_vocab_size (tok) <= 258 + merges);
  CU_ASSERT_EQUAL (cria_tokenizer_token_to_id (tok, "<pad>"), 1);
  const char *sample = "the cat sat<|endoftext|> on \xE7\x8C\xAB 42 \xF0\x9F\xA6\x80!";
  g_autoptr (CriaEncoding) e = cria_tokenizer_encode (tok, sample, -1, 0, NULL);
  CU_ASSERT_EQUAL (g_array_index (e->ids, gint32, 2), cria_tokenizer_token_to_id (tok, "\xC4\xA0sat"));
  g_autofree char *back = cria_tokenizer_decode (tok, (gint32 *) e->ids->data, e->ids->len, FALSE, NULL);
  CU_ASSERT_STRING_EQUAL (back, sample);
  /* Too small for the bytes: refused, and nothing is written. */
  g_autofree char *p3 = g_build_filename (dir, "small.json", NULL);
  CU_ASSERT_FALSE (cria_bpe_trainer_write (t, 100, 2, specials, p3, &error));
  CU_ASSERT_FALSE (g_file_test (p3, G_FILE_TEST_EXISTS));
  g_string_free (text, TRUE);
  cria_test_rmtree (dir);
}

static void
test_train_cli (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *err = NULL;
  const char *const a1[] = { "tokenizer", "train", "--vocab-size", "280", "--records", "--output", dir, NULL };
  const char *records = "{\"instruction\": \"Say hello\", \"output\": \"hello hello hello\"}\n"
                        "{\"instruction\": \"Say hello twice\", \"input\": \"\", \"output\": \"hello hello\"}\n";
  CU_ASSERT_EQUAL (cria_test_run_cria (a1, records, NULL, &err), 0);
  g_autofree char *path = g_build_filename (dir, "tokenizer.json", NULL);
  CU_ASSERT_TRUE (g_file_test (path, G_FILE_TEST_EXISTS));
  g_autofree char *out = NULL;
  const char *const a2[] = { "tokenize", "--tokenizer", dir, "--tokens", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a2, "hello hello\n", &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL (out, "[\"hello\",\"\xC4\xA0hello\"]\n");
  g_clear_pointer (&err, g_free);
  CU_ASSERT_EQUAL (cria_test_run_cria (a1, "{\"output\": \"x\"}\n[1]\n", NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "-:2"));
  const char *const a3[] = { "tokenizer", "train", "--output", dir, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a3, "", NULL, NULL), 2);
  const char *const a4[] = { "tokenizer", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (a4, "", NULL, NULL), 2);
  cria_test_rmtree (dir);
}

static void
register_suites (void)
{
  registry = cria_test_registry ();
  static const CriaTestCase api[] = { { "offsets", test_offsets },
                                      { "special ids and lookups", test_special_ids },
                                      { "decode", test_decode },
                                      { "invalid UTF-8", test_invalid_utf8 },
                                      { "batch on threads", test_batch },
                                      { "tiny tokenizer.json", test_tiny },
                                      { "a WordPiece vocabulary as a JSON list", test_vocab_list },
                                      { NULL } };
  cria_test_add_suite ("api", api);
  static const CriaTestCase bad[] = { { "malformed tokenizer files", test_bad_files },
                                      { "malformed encoder.json + vocab.bpe", test_bad_gpt2_files },
                                      { "truncated tokenizer.json", test_truncated },
                                      { NULL } };
  cria_test_add_suite ("bad files", bad);
  static const CriaTestCase cli[] = {
    { "cria tokenize", test_cli }, { "training", test_train }, { "cria tokenizer train", test_train_cli }, { NULL }
  };
  cria_test_add_suite ("cli", cli);
}

CRIA_TEST_MAIN (register_suites)
