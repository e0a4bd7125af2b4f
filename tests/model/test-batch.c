/* test-batch: batched decoding (cria_lm_feed_batch, CriaLmBatcher) gives
 * every sequence what it gets alone: the logits of one step bitwise equal
 * to the single-sequence ones (the cpu backend), and the same greedy (and
 * seeded) tokens, on the tiny checkpoints of tests/models and on
 * stories260K from ../shared; a
 * sequence that joins a running batch or is cancelled leaves the others
 * untouched. */
#include <math.h>
#include <string.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *backend;

static const char *const tiny[] = { "tiny-llama",        "tiny-gpt2",          "tiny-qwen2",      "tiny-mistral",
                                    "tiny-llama-linear", "tiny-llama-dynamic", "tiny-llama-yarn", "tiny-qwen2-bf16",
                                    "tiny-qwen3",        "tiny-qwen3-tied" };

static CriaModel *
open_tiny (const char *name)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (GError) e = NULL;
  CriaModel *m = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_AUTO, &e);
  if (!m)
    printf ("\n  %s: %s\n", dir, e->message);
  return m;
}

/* Prompts of different lengths: the batch is ragged. */
#define N_SEQ 5
static const gint32 prompt_ids[N_SEQ][9] = {
  { 1, 17, 200, 5 }, { 3, 250, 7, 64, 128, 9, 11, 40, 2 }, { 42 }, { 99, 3, 250, 7, 64, 5 }, { 8, 8, 8, 1, 2, 3, 4 },
};
static const gsize prompt_len[N_SEQ] = { 4, 9, 1, 6, 7 };

/* Two decoding steps of five sequences in one batch against each alone. */
static void
test_feed_batch_logits (void)
{
  for (guint t = 0; t < G_N_ELEMENTS (tiny); t++) {
    g_autoptr (CriaModel) m = open_tiny (tiny[t]);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    gint64 vocab = cria_model_get_config (m)->vocab_size;
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    CriaLmCache *batched[N_SEQ], *alone[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) {
      batched[i] = cria_lm_cache_new (lm);
      alone[i] = cria_lm_cache_new (lm);
      CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, batched[i], prompt_ids[i], prompt_len[i], NULL, NULL));
      CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, alone[i], prompt_ids[i], prompt_len[i], NULL, NULL));
    }
    g_autofree float *lb = g_new (float, N_SEQ *vocab), *la = g_new (float, vocab);
    double worst = 0;
    guint exact = 0;
    for (int step = 0; step < 2; step++) {
      gint32 ids[N_SEQ];
      for (int i = 0; i < N_SEQ; i++)
        ids[i] = (gint32) ((31 * i + 7 * step + 5) % vocab);
      g_autoptr (GError) e = NULL;
      CU_ASSERT_TRUE_FATAL (cria_lm_feed_batch (lm, batched, ids, N_SEQ, lb, &e));
      for (int i = 0; i < N_SEQ; i++) {
        CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, alone[i], &ids[i], 1, la, NULL));
        CU_ASSERT_EQUAL (cria_lm_cache_length (batched[i]), (gint64) prompt_len[i] + step + 1);
        worst = MAX (worst, cria_test_rel_diff (lb + i * vocab, la, vocab));
        exact += memcmp (lb + i * vocab, la, (gsize) vocab * sizeof (float)) == 0;
      }
    }
    if (worst > 1e-5)
      printf ("\n  %s: batched logits differ by %.3g of the largest\n", tiny[t], worst);
    CU_ASSERT_TRUE (worst <= 1e-5);
    if (exact != 2 * N_SEQ)
      printf ("\n  %s: %u of %d rows bitwise equal\n", tiny[t], exact, 2 * N_SEQ);
    CU_ASSERT_EQUAL (exact, 2 * N_SEQ); /* cria_lm_feed_batch promises the same floats on the cpu backend */
    /* One cache twice in a batch is refused. */
    CriaLmCache *twice[2] = { batched[0], batched[0] };
    gint32 two[2] = { 1, 2 };
    g_autoptr (GError) e = NULL;
    CU_ASSERT_FALSE (cria_lm_feed_batch (lm, twice, two, 2, NULL, &e));
    CU_ASSERT_PTR_NOT_NULL (e);
    for (int i = 0; i < N_SEQ; i++) {
      cria_lm_cache_free (batched[i]);
      cria_lm_cache_free (alone[i]);
    }
  }
}

/* Decoding grows each cache past its capacity (64 positions, then twice
 * that) while the steps append to it in place: batched and alone still
 * agree bitwise, and the last logits are those of one pass over everything
 * (so what the cache kept across each move is right). */
static void
test_cache_growth (void)
{
  static const char *const names[] = { "tiny-qwen2", "tiny-qwen3", "tiny-mistral" };
  enum { LONG = 60, SHORT = 3, END = 132 };
  for (guint t = 0; t < G_N_ELEMENTS (names); t++) {
    g_autoptr (CriaModel) m = open_tiny (names[t]);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    gint64 vocab = cria_model_get_config (m)->vocab_size;
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    gint32 seq[2][END];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < END; j++)
        seq[i][j] = (gint32) ((37 * j + 11 * i + 5) % vocab);
    const gsize start[2] = { LONG, SHORT };
    CriaLmCache *batched[2], *alone[2];
    for (int i = 0; i < 2; i++) {
      batched[i] = cria_lm_cache_new (lm);
      alone[i] = cria_lm_cache_new (lm);
      CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, batched[i], seq[i], start[i], NULL, NULL));
      CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, alone[i], seq[i], start[i], NULL, NULL));
    }
    g_autofree float *lb = g_new (float, 2 * vocab), *la = g_new (float, vocab);
    guint exact = 0, steps = END - LONG;
    for (guint s = 0; s < steps; s++) {
      gint32 ids[2] = { seq[0][LONG + s], seq[1][SHORT + s] };
      g_autoptr (GError) e = NULL;
      CU_ASSERT_TRUE_FATAL (cria_lm_feed_batch (lm, batched, ids, 2, lb, &e));
      for (int i = 0; i < 2; i++) {
        CU_ASSERT_TRUE_FATAL (cria_lm_feed (lm, alone[i], &ids[i], 1, la, NULL));
        exact += memcmp (lb + i * vocab, la, (gsize) vocab * sizeof (float)) == 0;
      }
    }
    if (exact != 2 * steps)
      printf ("\n  %s: %u of %u rows bitwise equal\n", names[t], exact, 2 * steps);
    CU_ASSERT_EQUAL (exact, 2 * steps);
    CU_ASSERT_EQUAL (cria_lm_cache_length (batched[0]), END);
    g_autoptr (CriaTensor) full = cria_lm_logits (lm, seq[0], END, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (full);
    double diff = cria_test_rel_diff (lb, (const float *) full->data + (END - 1) * vocab, vocab);
    if (diff > 1e-5)
      printf ("\n  %s: the cached pass differs from one pass by %.3g\n", names[t], diff);
    CU_ASSERT_TRUE (diff <= 1e-5);
    for (int i = 0; i < 2; i++) {
      cria_lm_cache_free (batched[i]);
      cria_lm_cache_free (alone[i]);
    }
  }
}

static void
sampling_of (CriaSampling *s, int i)
{
  cria_sampling_init (s);
  s->max_new_tokens = 4 + 2 * i;
  /* every other sequence samples, with its own seed */
  if (i % 2) {
    s->temperature = 0.8;
    s->top_k = 40;
    s->seed = 100 + (guint64) i;
  }
}

/* Five generations, three at a time (two join as others finish), equal
 * the same run alone: greedy ones token for token, seeded ones too. */
static void
test_generate_batch (void)
{
  for (guint t = 0; t < G_N_ELEMENTS (tiny); t++) {
    g_autoptr (CriaModel) m = open_tiny (tiny[t]);
    CU_ASSERT_PTR_NOT_NULL_FATAL (m);
    g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
    CriaSampling s[N_SEQ];
    const CriaSampling *sp[N_SEQ];
    const gint32 *prompts[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) {
      sampling_of (&s[i], i);
      sp[i] = &s[i];
      prompts[i] = prompt_ids[i];
    }
    CriaGeneration batched[N_SEQ];
    g_autoptr (GError) e = NULL;
    CU_ASSERT_TRUE_FATAL (cria_lm_generate_batch (lm, NULL, 3, N_SEQ, prompts, prompt_len, sp, batched, &e));
    for (int i = 0; i < N_SEQ; i++) {
      CriaGeneration alone;
      CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, NULL, prompt_ids[i], prompt_len[i], &s[i], NULL, NULL, &alone, NULL));
      gboolean same = alone.ids->len == batched[i].ids->len &&
                      memcmp (alone.ids->data, batched[i].ids->data, alone.ids->len * sizeof (gint32)) == 0;
      if (!same)
        printf ("\n  %s: sequence %d differs from its run alone\n", tiny[t], i);
      CU_ASSERT_TRUE (same);
      CU_ASSERT_EQUAL (batched[i].ids->len, (guint) s[i].max_new_tokens);
      CU_ASSERT_EQUAL (alone.finish, batched[i].finish);
      cria_generation_clear (&alone);
      cria_generation_clear (&batched[i]);
      cria_sampling_clear (&s[i]);
    }
  }
}

typedef struct {
  CriaLmBatcher *batcher;
  CriaTokenizer *tok;
  const gint32 *prompt;
  gsize n_prompt;
  CriaSampling s;
  GCancellable *cancel; /* cancelled after `cancel_after` pieces of text */
  int pieces, cancel_after;
  GString *streamed;
  CriaGeneration gen;
  gboolean ok;
  GError *error;
} Client;

static gboolean
client_piece (const char *piece, gpointer data)
{
  Client *c = data;
  g_string_append (c->streamed, piece);
  if (c->cancel && ++c->pieces == c->cancel_after)
    g_cancellable_cancel (c->cancel); /* as a client that hangs up */
  return TRUE;
}

static gpointer
client_run (gpointer data)
{
  Client *c = data;
  c->ok = cria_lm_batcher_generate (c->batcher, c->tok, c->prompt, c->n_prompt, &c->s, client_piece, c, c->cancel,
                                    &c->gen, &c->error);
  return NULL;
}

/* stories260K (real weights, a tokenizer, stop strings): clients on their
 * own threads share a batcher of 3; one is cancelled midway. Every other
 * text equals its text alone, and what was streamed adds up to it. */
static void
test_stories260k_threads (void)
{
  g_autofree char *dir = cria_test_shared_optional ("models/stories260K");
  if (!dir)
    return;
  g_autoptr (CriaModel) m = cria_model_open (registry, dir, CRIA_MODEL_DTYPE_AUTO, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, dir, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  g_autoptr (CriaLm) lm = cria_lm_new (m, backend);
  g_autoptr (CriaLmBatcher) b = cria_lm_batcher_new (lm, 3);
  static const char *const texts[] = { "Once upon a time", "The cat", "Lily and Ben went to the park", "One day",
                                       "Tom had a big red ball" };
  enum { N = G_N_ELEMENTS (texts), CANCELLED = 2 };
  Client c[N];
  GArray *enc[N];
  GThread *th[N];
  for (int i = 0; i < N; i++) {
    g_autoptr (CriaEncoding) x = cria_tokenizer_encode (tok, texts[i], -1, CRIA_ENCODE_ADD_SPECIAL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL (x);
    enc[i] = g_array_ref (x->ids);
    memset (&c[i], 0, sizeof c[i]);
    c[i].batcher = b;
    c[i].tok = tok;
    c[i].prompt = (const gint32 *) enc[i]->data;
    c[i].n_prompt = enc[i]->len;
    cria_sampling_init (&c[i].s);
    cria_sampling_add_model_stops (&c[i].s, m);
    c[i].s.max_new_tokens = 24 + 8 * i;
    if (i == 1)
      g_ptr_array_add (c[i].s.stop, g_strdup (" the"));
    if (i == 3) {
      c[i].s.temperature = 0.9;
      c[i].s.top_p = 0.9;
      c[i].s.seed = 7;
    }
    if (i == CANCELLED) {
      c[i].cancel = g_cancellable_new ();
      c[i].cancel_after = 3;
    }
    c[i].streamed = g_string_new ("");
    th[i] = g_thread_new ("client", client_run, &c[i]);
  }
  for (int i = 0; i < N; i++)
    g_thread_join (th[i]);
  for (int i = 0; i < N; i++) {
    if (i == CANCELLED) {
      CU_ASSERT_FALSE (c[i].ok);
      CU_ASSERT_TRUE (g_error_matches (c[i].error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
    } else {
      CU_ASSERT_TRUE_FATAL (c[i].ok);
      CriaGeneration alone;
      CU_ASSERT_TRUE_FATAL (cria_lm_generate (lm, tok, c[i].prompt, c[i].n_prompt, &c[i].s, NULL, NULL, &alone, NULL));
      CU_ASSERT_STRING_EQUAL (c[i].gen.text, alone.text);
      CU_ASSERT_STRING_EQUAL (c[i].streamed->str, alone.text);
      CU_ASSERT_EQUAL (c[i].gen.finish, alone.finish);
      cria_generation_clear (&alone);
    }
    if (i == 1)
      CU_ASSERT_EQUAL (c[i].gen.finish, CRIA_FINISH_STOP);
    cria_generation_clear (&c[i].gen);
    g_clear_error (&c[i].error);
    g_clear_object (&c[i].cancel);
    g_string_free (c[i].streamed, TRUE);
    cria_sampling_clear (&c[i].s);
    g_array_unref (enc[i]);
  }
}

static const CriaTestCase cases[] = {
  { "a batched step's logits equal each sequence's alone", test_feed_batch_logits },
  { "a cache growing past its capacity, appended in place", test_cache_growth },
  { "batched generation equals each prompt alone", test_generate_batch },
  { "stories260K: threads share a batcher, one cancelled", test_stories260k_threads },
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
  CU_pSuite suite = CU_add_suite ("batch", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (add_suites)
