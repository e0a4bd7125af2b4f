/* test-models: the gpt2 and llama model plugins and the runtime (KV cache,
 * sampling, generation) against the PyTorch reference of
 * tests/reference/hf_models.py (goldens in tests/golden, made by
 * make_test_models.py), llama2.c's own greedy output of stories260K and an
 * independent implementation's greedy ids of tiny-random-llama (../shared). */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;

static const char *const tiny[] = { "tiny-llama",        "tiny-gpt2",          "tiny-qwen2",      "tiny-mistral",
                                    "tiny-llama-linear", "tiny-llama-dynamic", "tiny-llama-yarn", "tiny-qwen2-bf16",
                                    "tiny-qwen3",        "tiny-qwen3-tied" };

static char *
src_path (const char *dir, const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", dir, name, NULL);
}

static CriaModel *
open_model (const char *dir, CriaModelDType dtype)
{
  g_autoptr (GError) e = NULL;
  CriaModel *m = cria_model_open (registry, dir, dtype, &e);
  if (!m)
    printf ("\n  %s: %s\n", dir, e->message);
  return m;
}

typedef struct {
  CriaSafetensors *st;
  const CriaWeight *ids, *logits, *greedy;
} Golden;

static gboolean
golden_open (const char *name, Golden *g)
{
  g_autofree char *file = g_strconcat (name, ".safetensors", NULL);
  g_autofree char *path = src_path ("golden", file);
  g->st = cria_safetensors_open (path, NULL);
  if (!g->st)
    return FALSE;
  g->ids = cria_safetensors_lookup (g->st, "input_ids");
  g->logits = cria_safetensors_lookup (g->st, "logits");
  g->greedy = cria_safetensors_lookup (g->st, "greedy_ids");
  return g->ids && g->logits && g->greedy;
}

static GArray *
golden_ids (const CriaWeight *w)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (gint64 i = 0; i < w->n_elements; i++) {
    gint32 v = (gint32) ((const gint64 *) w->data)[i];
    g_array_append_val (a, v);
  }
  return a;
}

static void
test_logits_parity (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (tiny); i++) {
    Golden g;
    CU_ASSERT_TRUE_FATAL (golden_open (tiny[i], &g));
    g_autofree char *dir = src_path ("models", tiny[i]);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    g_autoptr (GArray) ids = golden_ids (g.ids);
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaTensor) logits = cria_lm_logits (lm, (const gint32 *) ids->data, ids->len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL (logits);
    CU_ASSERT_EQUAL (cria_tensor_numel (logits), g.logits->n_elements);
    double d = cria_test_rel_diff (logits->data, g.logits->data, g.logits->n_elements);
    if (d > 1e-4)
      printf ("\n  %s: logits differ by %.3g of the largest\n", tiny[i], d);
    CU_ASSERT_TRUE (d <= 1e-4);
    cria_safetensors_free (g.st);
  }
}

/* The loss of response positions equals -log softmax of the reference's logits. */
static void
test_nll_parity (void)
{
  const char *names[] = { "tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-qwen3" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    Golden g;
    CU_ASSERT_TRUE_FATAL (golden_open (names[i], &g));
    g_autofree char *dir = src_path ("models", names[i]);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    g_autoptr (GArray) ids = golden_ids (g.ids);
    gint64 n = ids->len, vocab = g.logits->shape[1];
    g_autofree gint32 *labels = g_new (gint32, n);
    double want = 0;
    guint64 count = 0;
    for (gint64 t = 0; t < n; t++) {
      labels[t] = t >= 4 && t + 1 < n ? g_array_index (ids, gint32, t + 1) : CRIA_IGNORE_INDEX;
      if (labels[t] == CRIA_IGNORE_INDEX)
        continue;
      const float *row = (const float *) g.logits->data + t * vocab;
      double max = row[0], sum = 0;
      for (gint64 v = 1; v < vocab; v++)
        max = MAX (max, row[v]);
      for (gint64 v = 0; v < vocab; v++)
        sum += exp (row[v] - max);
      want += max + log (sum) - row[labels[t]];
      count++;
    }
    double nll;
    guint64 got;
    CU_ASSERT_TRUE_FATAL (cria_lm_nll (lm, (const gint32 *) ids->data, labels, n, &nll, &got, NULL));
    CU_ASSERT_EQUAL (got, count);
    CU_ASSERT_DOUBLE_EQUAL (nll, want, 1e-4 * want);
    cria_safetensors_free (g.st);
  }
}

/* Greedy decoding through the KV cache gives the reference's tokens. */
static void
test_greedy_parity (void)
{
  CriaSampling s;
  cria_sampling_init (&s);
  s.max_new_tokens = 8;
  for (guint i = 0; i < G_N_ELEMENTS (tiny); i++) {
    Golden g;
    CU_ASSERT_TRUE_FATAL (golden_open (tiny[i], &g));
    g_autofree char *dir = src_path ("models", tiny[i]);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    g_autoptr (GArray) ids = golden_ids (g.ids), want = golden_ids (g.greedy);
    CriaGeneration gen;
    g_autoptr (GError) e = NULL;
    CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, NULL, (const gint32 *) ids->data, ids->len, &s, NULL, NULL, &gen, &e));
    CU_ASSERT_EQUAL (gen.ids->len, want->len);
    CU_ASSERT_EQUAL (gen.finish, CRIA_FINISH_LENGTH);
    CU_ASSERT_TRUE (gen.ids->len == want->len && memcmp (gen.ids->data, want->data, want->len * sizeof (gint32)) == 0);
    cria_generation_clear (&gen);
    cria_safetensors_free (g.st);
  }
  cria_sampling_clear (&s);
}

/* Feeding a prompt in pieces through the cache gives the logits of one pass. */
static void
test_kv_cache_chunks (void)
{
  static const gint32 ids[] = { 1, 17, 200, 5, 42, 99, 3, 250, 7, 64, 128, 9 };
  for (guint i = 0; i < G_N_ELEMENTS (tiny); i++) {
    /* Dynamic NTK scaling rotates by the length seen so far, so cached keys
     * legitimately differ from one pass over everything (as in transformers). */
    if (strcmp (tiny[i], "tiny-llama-dynamic") == 0)
      continue;
    g_autofree char *dir = src_path ("models", tiny[i]);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    gint64 vocab = cria_model_get_config (m)->vocab_size;
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    g_autoptr (CriaTensor) full = cria_lm_logits (lm, ids, G_N_ELEMENTS (ids), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (full);
    g_autoptr (CriaLmCache) cache = cria_lm_cache_new (lm);
    g_autofree float *last = g_new (float, vocab);
    CU_ASSERT_TRUE (cria_lm_feed (lm, cache, ids, 3, last, NULL));
    CU_ASSERT_TRUE (cria_lm_feed (lm, cache, ids + 3, 1, last, NULL));
    CU_ASSERT_TRUE (cria_lm_feed (lm, cache, ids + 4, 8, last, NULL));
    CU_ASSERT_EQUAL (cria_lm_cache_length (cache), 12);
    const float *want = (const float *) full->data + 11 * vocab;
    if (cria_test_rel_diff (last, want, vocab) > 1e-5)
      printf ("\n  %s: %g\n", tiny[i], cria_test_rel_diff (last, want, vocab));
    CU_ASSERT_TRUE (cria_test_rel_diff (last, want, vocab) <= 1e-5);
    /* Rewinding and feeding other tokens forgets the old ones. */
    cria_lm_cache_truncate (cache, 4);
    CU_ASSERT_TRUE (cria_lm_feed (lm, cache, ids + 4, 8, last, NULL));
    CU_ASSERT_TRUE (cria_test_rel_diff (last, want, vocab) <= 1e-5);
  }
}

/* bf16 weights converted on load: within a percent of the largest logit
 * (bf16 keeps 8 significant bits), the same argmax at every position. */
static void
test_bf16_conversion (void)
{
  const char *names[] = { "tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-qwen3" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    Golden g;
    CU_ASSERT_TRUE_FATAL (golden_open (names[i], &g));
    g_autofree char *dir = src_path ("models", names[i]);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_BF16);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    CU_ASSERT_EQUAL (cria_model_get_param (m, cria_model_get_param_name (m, 0))->dtype, CRIA_DTYPE_BF16);
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    g_autoptr (GArray) ids = golden_ids (g.ids);
    g_autoptr (CriaTensor) logits = cria_lm_logits (lm, (const gint32 *) ids->data, ids->len, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (logits);
    CU_ASSERT_TRUE (cria_test_rel_diff (logits->data, g.logits->data, g.logits->n_elements) <= 1e-2);
    gint64 vocab = logits->shape[1];
    for (gint64 t = 0; t < logits->shape[0]; t++) {
      const float *a = (const float *) logits->data + t * vocab, *b = (const float *) g.logits->data + t * vocab;
      gint64 ia = 0, ib = 0;
      for (gint64 v = 1; v < vocab; v++) {
        ia = a[v] > a[ia] ? v : ia;
        ib = b[v] > b[ib] ? v : ib;
      }
      CU_ASSERT_EQUAL (ia, ib);
    }
    cria_safetensors_free (g.st);
  }
}

/* Saving writes the file layout back (GPT-2's Conv1D transposed again): the
 * saved checkpoint has the original's names and shapes and the same logits. */
static void
test_save_round_trip (void)
{
  const char *names[] = { "tiny-gpt2", "tiny-qwen2" };
  static const gint32 ids[] = { 1, 17, 200, 5 };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *dir = src_path ("models", names[i]);
    g_autofree char *tmp = cria_test_tmpdir ();
    g_autofree char *out = g_build_filename (tmp, names[i], NULL);
    g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    g_autoptr (GError) e = NULL;
    CU_ASSERT_TRUE_FATAL (cria_model_save (m, out, CRIA_DTYPE_F32, 0, &e));
    g_autoptr (CriaModel) back = open_model (out, CRIA_MODEL_DTYPE_AUTO);
    CU_ASSERT_PTR_NOT_NULL_FATAL (back);
    CriaHfModel *fa = cria_model_get_files (m), *fb = cria_model_get_files (back);
    CU_ASSERT_EQUAL (cria_hf_model_get_n_weights (fa), cria_hf_model_get_n_weights (fb));
    for (guint w = 0; w < cria_hf_model_get_n_weights (fa); w++) {
      const CriaWeight *a = cria_hf_model_get_weight (fa, w);
      const CriaWeight *b = cria_hf_model_lookup (fb, a->name);
      CU_ASSERT_PTR_NOT_NULL_FATAL (b);
      CU_ASSERT_TRUE (a->n_dims == b->n_dims && memcmp (a->shape, b->shape, a->n_dims * sizeof (gint64)) == 0);
      CU_ASSERT_TRUE (a->n_bytes == b->n_bytes && memcmp (a->data, b->data, a->n_bytes) == 0);
    }
    g_autoptr (CriaLm) la = cria_lm_new (m, backend), lb = cria_lm_new (back, backend);
    g_autoptr (CriaTensor) xa = cria_lm_logits (la, ids, 4, NULL), xb = cria_lm_logits (lb, ids, 4, NULL);
    CU_ASSERT_TRUE (memcmp (xa->data, xb->data, cria_tensor_nbytes (xa)) == 0);
    cria_test_rmtree (tmp);
  }
}

static void
test_sampling_rules (void)
{
  CriaSampling s;
  cria_sampling_init (&s);
  CriaRng rng;
  cria_rng_init (&rng, 1);
  /* Greedy is the first maximum. */
  float l0[] = { 1, 3, 3, -2 };
  CU_ASSERT_EQUAL (cria_sample (&s, l0, 4, NULL, 0, &rng), 1);
  /* Repetition penalty: positive logits divided, negative multiplied. */
  s.repetition_penalty = 2;
  float l1[] = { 4, 3, -1, 0 };
  gint32 hist[] = { 0, 2, 0 };
  CU_ASSERT_EQUAL (cria_sample (&s, l1, 4, hist, 3, &rng), 1);
  CU_ASSERT_DOUBLE_EQUAL (l1[0], 2.0, 1e-7);
  CU_ASSERT_DOUBLE_EQUAL (l1[2], -2.0, 1e-7);
  s.repetition_penalty = 1;
  /* Sampled frequencies follow softmax(logits / T). */
  s.temperature = 0.5;
  int counts[3] = { 0 };
  const int n = 40000;
  for (int i = 0; i < n; i++) {
    float l[] = { logf (0.5f) / 2, logf (0.3f) / 2, logf (0.2f) / 2 }; /* T = 0.5 undoes the halving */
    counts[cria_sample (&s, l, 3, NULL, 0, &rng)]++;
  }
  CU_ASSERT_DOUBLE_EQUAL (counts[0] / (double) n, 0.5, 0.015);
  CU_ASSERT_DOUBLE_EQUAL (counts[1] / (double) n, 0.3, 0.015);
  CU_ASSERT_DOUBLE_EQUAL (counts[2] / (double) n, 0.2, 0.015);
  /* top-k 2 never draws the third; top-p 0.6 keeps {0.5, 0.3}; top-p 0.4 keeps the first only. */
  s.temperature = 1;
  gboolean third = FALSE, second = FALSE;
  for (int i = 0; i < 2000; i++) {
    float a[] = { logf (0.5f), logf (0.3f), logf (0.2f) }, b[3], c[3];
    memcpy (b, a, sizeof a);
    memcpy (c, a, sizeof a);
    s.top_k = 2;
    s.top_p = 1;
    third |= cria_sample (&s, a, 3, NULL, 0, &rng) == 2;
    s.top_k = 0;
    s.top_p = 0.6;
    third |= cria_sample (&s, b, 3, NULL, 0, &rng) == 2;
    s.top_p = 0.4;
    second |= cria_sample (&s, c, 3, NULL, 0, &rng) != 0;
  }
  CU_ASSERT_FALSE (third);
  CU_ASSERT_FALSE (second);
  cria_sampling_clear (&s);
}

static gboolean
collect (const char *piece, gpointer user_data)
{
  g_string_append (user_data, piece);
  return TRUE;
}

/* stories260K (a real pretrained model): greedy from BOS is llama2.c's
 * text; a stop string cuts the text before it and the streamed pieces add
 * up to the final text; a seed fixes a sampled text. */
static void
test_stories260k (void)
{
  g_autofree char *dir = cria_test_shared_optional ("models/stories260K");
  if (!dir)
    return;
  g_autofree char *golden_path = g_build_filename (dir, "golden_greedy_from_bos_60.ids", NULL);
  g_autofree char *golden = cria_test_read_file (golden_path);
  g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, dir, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
  CriaSampling s;
  cria_sampling_init (&s);
  cria_sampling_add_model_stops (&s, m);
  s.max_new_tokens = 60;
  gint32 bos = 1;
  CriaGeneration gen;
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, &bos, 1, &s, NULL, NULL, &gen, NULL));
  g_auto (GStrv) want = g_strsplit_set (g_strstrip (golden), " \n", -1);
  CU_ASSERT_EQUAL_FATAL (gen.ids->len, g_strv_length (want));
  for (guint i = 0; i < gen.ids->len; i++)
    CU_ASSERT_EQUAL (g_array_index (gen.ids, gint32, i), atoi (want[i]));
  cria_generation_clear (&gen);

  g_ptr_array_add (s.stop, g_strdup (" park"));
  g_autoptr (GString) streamed = g_string_new ("");
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, &bos, 1, &s, collect, streamed, &gen, NULL));
  CU_ASSERT_EQUAL (gen.finish, CRIA_FINISH_STOP);
  CU_ASSERT_STRING_EQUAL (gen.text,
                          "Once upon a time, there was a little girl named Lily. She loved to play outside in the");
  CU_ASSERT_STRING_EQUAL (streamed->str, gen.text);
  cria_generation_clear (&gen);

  s.temperature = 0.9;
  s.top_p = 0.9;
  s.seed = 42;
  g_ptr_array_set_size (s.stop, 0);
  CriaGeneration a, b;
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, &bos, 1, &s, NULL, NULL, &a, NULL));
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, &bos, 1, &s, NULL, NULL, &b, NULL));
  CU_ASSERT_STRING_EQUAL (a.text, b.text);
  s.seed = 43;
  cria_generation_clear (&b);
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, &bos, 1, &s, NULL, NULL, &b, NULL));
  CU_ASSERT_STRING_NOT_EQUAL (a.text, b.text);
  cria_generation_clear (&a);
  cria_generation_clear (&b);
  cria_sampling_clear (&s);
}

/* Another implementation's greedy ids for tiny-random-llama's prompt [1 2 3]. */
static void
test_tiny_random_llama (void)
{
  g_autofree char *dir = cria_test_shared_optional ("models/tiny-random-llama");
  if (!dir)
    return;
  g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
  CriaSampling s;
  cria_sampling_init (&s);
  s.max_new_tokens = 8;
  static const gint32 prompt[] = { 1, 2, 3 }, want[] = { 18568, 1727, 8705, 3598, 27426, 4496, 998, 16911 };
  CriaGeneration gen;
  CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, NULL, prompt, 3, &s, NULL, NULL, &gen, NULL));
  CU_ASSERT_TRUE (gen.ids->len == 8 && memcmp (gen.ids->data, want, sizeof want) == 0);
  cria_generation_clear (&gen);
  cria_sampling_clear (&s);
}

static void
test_bad_input (void)
{
  g_autofree char *dir = src_path ("models", "tiny-llama");
  g_autoptr (CriaModel) m = open_model (dir, CRIA_MODEL_DTYPE_AUTO);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
  g_autoptr (GError) e = NULL;
  gint32 bad[] = { 1, 256 };
  CU_ASSERT_PTR_NULL (cria_lm_logits (lm, bad, 2, &e));
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  CU_ASSERT_PTR_NOT_NULL (strstr (e->message, "token id 256 at position 1"));
  g_clear_error (&e);
  CU_ASSERT_PTR_NULL (cria_lm_logits (lm, bad, 0, &e));
  g_clear_error (&e);
  CU_ASSERT_FALSE (
      cria_model_set_param (m, "model.norm.weight", cria_model_get_param (m, "lm_head.weight"), FALSE, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "model.norm.weight"));
}

static const CriaTestCase cases[] = {
  { "logits equal the PyTorch reference (8 checkpoints)", test_logits_parity },
  { "greedy decoding through the KV cache", test_greedy_parity },
  { "response loss equals the reference's log-softmax", test_nll_parity },
  { "a prompt fed in pieces", test_kv_cache_chunks },
  { "bf16 weights converted on load", test_bf16_conversion },
  { "save writes the file layout back", test_save_round_trip },
  { "sampling rules", test_sampling_rules },
  { "stories260K: llama2.c's greedy text, stop strings, seeds", test_stories260k },
  { "tiny-random-llama: greedy ids", test_tiny_random_llama },
  { "bad input", test_bad_input },
  { NULL, NULL },
};

static int
setup (void)
{
  registry = cria_test_registry ();
  backend = cria_backend_open (registry, "cpu", NULL);
  return backend ? 0 : 1;
}

static int
teardown (void)
{
  cria_backend_free (backend);
  cria_registry_free (registry);
  return 0;
}

static void
add_suites (void)
{
  CU_pSuite suite = CU_add_suite ("models", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (add_suites)
