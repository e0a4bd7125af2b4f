/* test-tokenizer.c: tokenizer ids against the Hugging Face references.
 *
 * The conformance vectors in ../shared (47 hard strings per family with the
 * ids Hugging Face produces) and the tests/text golden files (a corpus of our own,
 * ids from @huggingface/tokenizers by gen-golden.mjs) must match exactly. */
#include "config.h"

#include <string.h>

#include "tok-test.h"

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

/* @huggingface/tokenizers (JavaScript) tests BERT's CJK ranges on UTF-16 code
 * units, so it never isolates CJK characters beyond U+FFFF as the Rust
 * tokenizers (and transformers) do. cria follows Rust; such texts are left
 * out of the BERT comparison. */
static gboolean
reference_diverges (const char *family, const char *text)
{
  if (!g_str_has_prefix (family, "bert"))
    return FALSE;
  for (const char *p = text; *p; p = g_utf8_next_char (p))
    if (g_utf8_get_char (p) >= 0x20000 && g_utf8_get_char (p) <= 0x2FA1F)
      return TRUE;
  return FALSE;
}

/* What decode(encode(x)) must give: nothing, x, or x in NFC (Qwen normalizes). */
enum { ROUND_NONE, ROUND_EXACT, ROUND_NFC };

/* Encodes each text, compares with the expected ids, and checks that decoding
 * gives the text back as `round` says. Returns the number of mismatches. */
static guint
check_texts (CriaTokenizer *tok, const char *family, char **texts, char **expected, guint n, int round,
             CriaEncodeFlags flags)
{
  guint bad = 0;
  for (guint i = 0; i < n; i++) {
    if (reference_diverges (family, texts[i]))
      continue;
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, texts[i], -1, flags, &error);
    CU_ASSERT_PTR_NOT_NULL_FATAL (enc);
    g_autoptr (GArray) want = parse_ids (expected[i]);
    /* memcmp with a NULL pointer is undefined even for 0 bytes (empty texts have no ids). */
    gboolean same = want->len == enc->ids->len &&
                    (want->len == 0 || memcmp (want->data, enc->ids->data, want->len * sizeof (gint32)) == 0);
    if (!same) {
      GString *got = g_string_new (NULL);
      for (guint k = 0; k < enc->ids->len; k++)
        g_string_append_printf (got, " %d", g_array_index (enc->ids, gint32, k));
      fprintf (stderr, "%s #%u %s\n  want %s\n  got  %s\n", family, i, texts[i], expected[i], got->str);
      g_string_free (got, TRUE);
      bad++;
      continue;
    }
    /* Text around special tokens is normalized piece by piece (LLaMA-2 gives
     * each piece its own leading space), so only plain text round-trips. */
    gboolean has_special = FALSE;
    for (guint k = 0; k < enc->ids->len; k++)
      has_special |= cria_tokenizer_is_special (tok, g_array_index (enc->ids, gint32, k));
    if (round != ROUND_NONE && !has_special) {
      g_autofree char *back = cria_tokenizer_decode (tok, (gint32 *) enc->ids->data, enc->ids->len, FALSE, &error);
      CU_ASSERT_PTR_NOT_NULL_FATAL (back);
      g_autofree char *nfc = g_utf8_normalize (texts[i], -1, G_NORMALIZE_NFC);
      if (strcmp (back, round == ROUND_NFC ? nfc : texts[i]) != 0) {
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
conformance (const char *family, const char *tokenizer, int round)
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
  CU_ASSERT_EQUAL (check_texts (tok, family, texts, ids, n, round, CRIA_ENCODE_DEFAULT), 0);
}

static void
test_conf_gpt2 (void)
{
  conformance ("gpt-2", "tokenizers/gpt2-hf", ROUND_EXACT);
}
static void
test_conf_gpt2_orig (void)
{
  conformance ("gpt-2", "tokenizers/gpt2", ROUND_EXACT);
}
static void
test_conf_qwen2 (void)
{
  conformance ("qwen2", "tokenizers/qwen2.5", ROUND_NFC);
}
static void
test_conf_llama3 (void)
{
  conformance ("llama-bpe", "tokenizers/llama3", ROUND_EXACT);
}
static void
test_conf_llama2 (void)
{
  conformance ("llama-spm", "tokenizers/llama2", ROUND_NONE);
}
static void
test_conf_bert (void)
{
  conformance ("bert-bge", "tokenizers/bert-base-uncased", ROUND_NONE);
}
static void
test_conf_bert_vocab (void)
{
  conformance ("bert-bge", "tokenizers/bert-base-uncased/vocab.txt", ROUND_NONE);
}

static JsonNode *
read_json (const char *name)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "text", name, NULL);
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  g_autoptr (GError) error = NULL;
  JsonNode *node = cria_json_parse (text, -1, path, 1, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (node);
  return node;
}

/* Our own hard corpus against golden.json from gen-golden.mjs, with and
 * without the post-processor's special tokens. */
static void
golden (const char *family, int round)
{
  g_autofree char *rel = g_strdup_printf ("tokenizers/%s", family);
  g_autoptr (CriaTokenizer) tok = load (rel);
  g_autoptr (JsonNode) corpus = read_json ("corpus.json");
  g_autoptr (JsonNode) gold = read_json ("golden.json");
  JsonArray *texts = json_node_get_array (corpus);
  JsonObject *fam = json_object_get_object_member (json_node_get_object (gold), family);
  CU_ASSERT_PTR_NOT_NULL_FATAL (fam);
  guint n = json_array_get_length (texts);
  g_autoptr (GPtrArray) t = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (t, (char *) json_array_get_string_element (texts, i));
  for (int special = 0; special < 2; special++) {
    JsonArray *want = json_object_get_array_member (fam, special ? "special" : "plain");
    CU_ASSERT_EQUAL_FATAL (json_array_get_length (want), n);
    g_autoptr (GPtrArray) exp = g_ptr_array_new_with_free_func (g_free);
    for (guint i = 0; i < n; i++)
      g_ptr_array_add (exp, json_to_string (json_array_get_element (want, i), FALSE));
    g_autofree char *label = g_strdup_printf ("%s%s", family, special ? " +special" : "");
    CU_ASSERT_EQUAL (check_texts (tok, label, (char **) t->pdata, (char **) exp->pdata, n, special ? ROUND_NONE : round,
                                  special ? CRIA_ENCODE_ADD_SPECIAL : CRIA_ENCODE_DEFAULT),
                     0);
  }
}

static void
test_gold_gpt2 (void)
{
  golden ("gpt2-hf", ROUND_EXACT);
}
static void
test_gold_qwen (void)
{
  golden ("qwen2.5", ROUND_NFC);
}
static void
test_gold_llama3 (void)
{
  golden ("llama3", ROUND_EXACT);
}
static void
test_gold_llama2 (void)
{
  golden ("llama2", ROUND_EXACT);
}
static void
test_gold_bert (void)
{
  golden ("bert-base-uncased", ROUND_NONE);
}

static void
register_suites (void)
{
  registry = cria_test_registry ();
  static const CriaTestCase conf[] = { { "gpt2 tokenizer.json", test_conf_gpt2 },
                                       { "gpt2 encoder.json + vocab.bpe", test_conf_gpt2_orig },
                                       { "qwen2.5", test_conf_qwen2 },
                                       { "llama3", test_conf_llama3 },
                                       { "llama2 (spm)", test_conf_llama2 },
                                       { "bert tokenizer.json", test_conf_bert },
                                       { "bert vocab.txt", test_conf_bert_vocab },
                                       { NULL } };
  cria_test_add_suite ("conformance", conf);
  static const CriaTestCase gold[] = { { "gpt2", test_gold_gpt2 },     { "qwen2.5", test_gold_qwen },
                                       { "llama3", test_gold_llama3 }, { "llama2", test_gold_llama2 },
                                       { "bert", test_gold_bert },     { NULL } };
  cria_test_add_suite ("golden corpus", gold);
}

CRIA_TEST_MAIN (register_suites)
