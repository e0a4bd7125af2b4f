/* cria-lm.h: running a causal language model — logits, a KV cache per
 * sequence, sampling and generation.
 *
 * A CriaLm pairs a model with a backend (and the adapter hook, if any, that
 * every graph it builds gets). Each call builds the graph of one forward
 * pass, plans it and runs it; decoding feeds one token at a time against the
 * keys and values cached from the earlier positions. */
#pragma once

#include <gio/gio.h>
#include <cria/cria-backend.h>
#include <cria/cria-model.h>
#include <cria/cria-text.h>
#include <cria/cria-tokenizer.h>

G_BEGIN_DECLS

typedef struct _CriaLm CriaLm;

/* Borrows `model` and `backend`, which must outlive the CriaLm. */
CriaLm *cria_lm_new (CriaModel *model, CriaBackend *backend);
void cria_lm_free (CriaLm *lm);
CriaModel *cria_lm_get_model (CriaLm *lm);
/* Installed on every graph the CriaLm builds (an adapter's LoRA branches). */
void cria_lm_set_linear_hook (CriaLm *lm, CriaLinearHook hook, gpointer user_data);

/* f32 [n, vocab]: the logits of every position of one sequence. */
CriaTensor *cria_lm_logits (CriaLm *lm, const gint32 *ids, gsize n, GError **error);

/* The summed negative log-likelihood (nats) of `labels` (gint32 per
 * position: the token expected after it, or CRIA_IGNORE_INDEX) and how many
 * labels counted; the logits are never held whole (cria_lm_head_ce). */
gboolean cria_lm_nll (CriaLm *lm, const gint32 *ids, const gint32 *labels, gsize n, double *nll_sum, guint64 *n_tokens,
                      GError **error);

/* The keys and values of one sequence so far. */
typedef struct _CriaLmCache CriaLmCache;

CriaLmCache *cria_lm_cache_new (CriaLm *lm);
void cria_lm_cache_free (CriaLmCache *cache);
gint64 cria_lm_cache_length (const CriaLmCache *cache);
/* Forgets everything from position `length` on (a shared prefix is kept). */
void cria_lm_cache_truncate (CriaLmCache *cache, gint64 length);

/* Runs `n` more tokens through the model, appending their keys and values
 * to the cache; `logits` (vocab floats, may be NULL) receives the logits of
 * the last one. */
gboolean cria_lm_feed (CriaLm *lm, CriaLmCache *cache, const gint32 *ids, gsize n, float *logits, GError **error);

/* One decoding step of `n` sequences at once: ids[i] follows the tokens of
 * caches[i] (distinct caches of any lengths), whose keys and values grow by
 * one; `logits` (n x vocab floats, may be NULL) receives the next-token
 * logits of each. The weights are read once for all of them, and each
 * sequence gets the logits cria_lm_feed gives it alone (the same floats on
 * the cpu backend, up to 32 sequences). */
gboolean cria_lm_feed_batch (CriaLm *lm, CriaLmCache *const *caches, const gint32 *ids, gsize n, float *logits,
                             GError **error);

/* Called before each draw with the logits of the next token as the model
 * gave them (vocab floats), the tokens generated so far and how many more
 * may come (this one included). It may change the logits (a grammar's mask
 * sets -INFINITY); at least one token must stay drawable. Returning FALSE
 * ends the generation there (finish "stop"). */
typedef gboolean (*CriaLogitsFunc) (float *logits, gint64 vocab, const gint32 *generated, gsize n_generated,
                                    gint64 remaining, gpointer user_data);
/* Called with each token drawn that is not a stop token, before its text. */
typedef void (*CriaTokenFunc) (gint32 id, gpointer user_data);

/* Decoding settings, with the defaults of cria_sampling_init. */
typedef struct {
  gint64 max_new_tokens;     /* 256 */
  double temperature;        /* 0: greedy (argmax); else logits / temperature */
  gint64 top_k;              /* 0: off */
  double top_p;              /* 1: off (nucleus sampling otherwise) */
  double repetition_penalty; /* 1: off; > 1 discourages tokens already present (CTRL's rule) */
  guint64 seed;              /* the same seed and settings give the same text */
  GPtrArray *stop;           /* char*: generation ends before the first of these strings */
  GArray *stop_ids;          /* gint32: tokens that end generation (eos); not part of the text */
  /* OpenAI's penalties (0: off): each logit loses frequency_penalty times
   * the number of times its token was generated so far, and
   * presence_penalty once if it was (the prompt does not count). */
  double presence_penalty, frequency_penalty;
  CriaLogitsFunc on_logits; /* NULL: none; see above */
  CriaTokenFunc on_token;   /* NULL: none */
  gpointer hook_data;       /* the user_data of both */
} CriaSampling;

void cria_sampling_init (CriaSampling *s);
void cria_sampling_clear (CriaSampling *s);
/* "temperature=0.7 top-p=0.9 ..." style options are parsed by the verbs;
 * this adds the eos ids of the model's config and generation_config.json. */
void cria_sampling_add_model_stops (CriaSampling *s, CriaModel *model);

/* Picks the next token. `logits` (vocab floats) is modified in place;
 * `history` is the prompt and what was generated so far (for the
 * repetition penalty). Processing order follows Hugging Face's: repetition
 * penalty, temperature, top-k, top-p, then a draw. */
gint32 cria_sample (const CriaSampling *s, float *logits, gint64 vocab, const gint32 *history, gsize n_history,
                    CriaRng *rng);

/* Called with each piece of text as soon as it is final (never a part of a
 * stop string, never half a UTF-8 character); return FALSE to stop. */
typedef gboolean (*CriaTextFunc) (const char *piece, gpointer user_data);

typedef enum {
  CRIA_FINISH_LENGTH, /* max_new_tokens reached */
  CRIA_FINISH_STOP,   /* a stop string or token */
  CRIA_FINISH_CALLER, /* the callback asked to stop */
} CriaFinish;

typedef struct {
  GArray *ids; /* gint32: the generated tokens, stop token excluded */
  char *text;  /* their text, cut before a stop string */
  CriaFinish finish;
  gint64 prompt_tokens;
  double prefill_seconds, decode_seconds;
} CriaGeneration;

void cria_generation_clear (CriaGeneration *gen);

/* Generates from `prompt` (token ids). `tok` decodes the text; without one
 * (NULL) there is no text, no stop string and no callback, only ids. */
gboolean cria_lm_generate (CriaLm *lm, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt, const CriaSampling *s,
                           CriaTextFunc on_text, gpointer user_data, CriaGeneration *out, GError **error);

/* Several generations decoded together (continuous batching): each step
 * runs one forward pass for every running sequence (cria_lm_feed_batch), a
 * sequence submitted meanwhile joins at the next step once its prompt is
 * fed, and one that finishes or is cancelled leaves. Each keeps its own
 * settings, seed, stop strings and hooks, and gets the text it would get
 * alone. The batcher has no thread: callers block in
 * cria_lm_batcher_generate and one of them at a time runs the steps for
 * all, so callbacks may run on another caller's thread (one at a time). */
typedef struct _CriaLmBatcher CriaLmBatcher;

/* Borrows `lm`; at most `max_batch` sequences run at once, the others wait. */
CriaLmBatcher *cria_lm_batcher_new (CriaLm *lm, guint max_batch);
void cria_lm_batcher_free (CriaLmBatcher *batcher);
guint cria_lm_batcher_get_max_batch (CriaLmBatcher *batcher);
/* cria_lm_generate through the batcher; may be called from several threads
 * at once. A cancelled generation fails with G_IO_ERROR_CANCELLED (finish
 * CRIA_FINISH_CALLER) and leaves the others running. */
gboolean cria_lm_batcher_generate (CriaLmBatcher *batcher, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt,
                                   const CriaSampling *s, CriaTextFunc on_text, gpointer user_data,
                                   GCancellable *cancellable, CriaGeneration *out, GError **error);
/* `n` generations from this thread, `max_batch` at a time; outs[i] is set
 * for each (cria_generation_clear them all). Fails with the first error. */
gboolean cria_lm_generate_batch (CriaLm *lm, CriaTokenizer *tok, guint max_batch, gsize n, const gint32 *const *prompts,
                                 const gsize *n_prompts, const CriaSampling *const *s, CriaGeneration *outs,
                                 GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaLm, cria_lm_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaLmBatcher, cria_lm_batcher_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaLmCache, cria_lm_cache_free)

G_END_DECLS
