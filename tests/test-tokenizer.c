/* test-tokenizer.c: tokenizer ids against the Hugging Face references.
 *
 * The conformance vectors in ../shared (47 hard strings per family with the
 * ids Hugging Face produces) and the tests/tokenizers golden files (a corpus of our own,
 * ids from @huggingface/tokenizers by gen-golden.mjs) must match exactly. */
#include "config.h"

#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;

static CriaTokenizer *
load (const char *rel)
{
  g_autofree char *path = cria_test_shared (rel);
  g_autoptr (GError) error = NULL;
  CriaTokenizer *tok = cria_tokenizer_load (registry, path, &error);
  if (!tok)
    fprintf (stderr, "%s: %s\n", path, error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  return tok;
}

static GArray *
parse_ids (const char *line)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_auto (GStrv) words = g_strsplit_set (line, " ,[]", -1);
  for (guint i = 0; words[i]; i++)
    if (*words[i]) {
      gint32 id = (gint32) g_ascii_strtoll (words[i], NULL, 10);
      g_array_append_val (ids, id);
    }
  return ids;
}

/* Encodes each text, compares with the expected ids, and checks that decoding
 * gives the text back when `lossless`. Returns the number of mismatches. */
static guint
check_texts (CriaTokenizer *tok, const char *family, char **texts, char **expected, guint n, gboolean lossless)
{
  guint bad = 0;
  for (guint i = 0; i < n; i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, texts[i], -1, CRIA_ENCODE_DEFAULT, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (enc);
    g_autoptr (GArray) want = parse_ids (expected[i]);
    gboolean same = want->len == enc->ids->len &&
                    memcmp (want->data, enc->ids->data, want->len * sizeof (gint32)) == 0;
    if (!same) {
      GString *got = g_string_new (NULL);
      for (guint k = 0; k < enc->ids->len; k++)
        g_string_append_printf (got, " %d", g_array_index (enc->ids, gint32, k));
      fprintf (stderr, "%s #%u %s\n  want %s\n  got  %s\n", family, i, texts[i], expected[i], got->str);
      g_string_free (got, TRUE);
      bad++;
      continue;
    }
    if (lossless) {
      g_autofree char *back = cria_tokenizer_decode (tok, (gint32 *) enc->ids->data, enc->ids->len, FALSE, &error);
      CU_ASSERT_PTR_NOT_NULL_FATAL (back);
      if (strcmp (back, texts[i]) != 0) {
        fprintf (stderr, "%s #%u: decode gave \"%s\" for \"%s\"\n", family, i, back, texts[i]);
        bad++;
      }
    }
  }
  return bad;
}

/* ggml-vocab-*.gguf.inp holds strings separated by "\n__ggml_vocab_test__\n";
 * .out one line of ids per string. */
static void
conformance (const char *family, const char *tokenizer, gboolean lossless)
{
  g_autoptr (CriaTokenizer) tok = load (tokenizer);
  g_autofree char *rel_in = g_strdup_printf ("tokenizers/conformance/ggml-vocab-%s.gguf.inp", family);
  g_autofree char *rel_out = g_strdup_printf ("tokenizers/conformance/ggml-vocab-%s.gguf.out", family);
  g_autofree char *in_path = cria_test_shared (rel_in);
  g_autofree char *out_path = cria_test_shared (rel_out);
  g_autofree char *in = cria_test_read_file (in_path);
  g_autofree char *out = cria_test_read_file (out_path);
  g_auto (GStrv) texts = g_strsplit (in, "\n__ggml_vocab_test__\n", -1);
  g_auto (GStrv) ids = g_strsplit (out, "\n", -1);
  guint n = g_strv_length (texts);
  if (n > 0 && !*texts[n - 1])
    n--;
  CU_ASSERT_FATAL (g_strv_length (ids) >= n);
  CU_ASSERT_EQUAL (check_texts (tok, family, texts, ids, n, lossless), 0);
}

static void test_conf_gpt2 (void) { conformance ("gpt-2", "tokenizers/gpt2-hf", TRUE); }
static void test_conf_gpt2_orig (void) { conformance ("gpt-2", "tokenizers/gpt2", TRUE); }
static void test_conf_qwen2 (void) { conformance ("qwen2", "tokenizers/qwen2.5", TRUE); }
static void test_conf_llama3 (void) { conformance ("llama-bpe", "tokenizers/llama3", TRUE); }
static void test_conf_llama2 (void) { conformance ("llama-spm", "tokenizers/llama2", FALSE); }
static void test_conf_bert (void) { conformance ("bert-bge", "tokenizers/bert-base-uncased", FALSE); }
static void test_conf_bert_vocab (void) { conformance ("bert-bge", "tokenizers/bert-base-uncased/vocab.txt", FALSE); }

static void
register_suites (void)
{
  registry = cria_test_registry ();
  static const CriaTestCase conf[] = {
    { "gpt2 tokenizer.json", test_conf_gpt2 },
    { "gpt2 encoder.json + vocab.bpe", test_conf_gpt2_orig },
    { "qwen2.5", test_conf_qwen2 },
    { "llama3", test_conf_llama3 },
    { "llama2 (spm)", test_conf_llama2 },
    { "bert tokenizer.json", test_conf_bert },
    { "bert vocab.txt", test_conf_bert_vocab },
    { NULL }
  };
  cria_test_add_suite ("conformance", conf);
}

CRIA_TEST_MAIN (register_suites)
