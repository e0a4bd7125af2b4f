/* cria-lm-generate.c: the generation loop, for one sequence or a batch.
 *
 * A generation is a small state machine (Seq): the prompt is fed, then each
 * step takes the logits of the next token, draws it, emits its text and
 * says whether the sequence goes on. cria_lm_generate runs one alone; a
 * CriaLmBatcher runs many (continuous batching): each step decodes every
 * running sequence in one forward pass (cria_lm_feed_batch, the weights
 * read once), a new sequence joins at the next step after its prompt is fed
 * on its own, and a finished or cancelled one leaves. Each sequence keeps
 * its own cache, sampling settings, random stream, stop strings and hooks,
 * and the batched logits are the ones it gets alone, so batching never
 * changes a text.
 *
 * A batcher has no thread of its own: callers block in
 * cria_lm_batcher_generate, and one of them at a time (the driver) runs the
 * steps for everyone until its own sequences are done, then hands over. */
#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include <cria/cria-error.h>
#include <cria/cria-lm.h>

void
cria_generation_clear (CriaGeneration *gen)
{
  g_clear_pointer (&gen->ids, g_array_unref);
  g_clear_pointer (&gen->text, g_free);
}

/* Bytes at the end of `text` that might still become a stop string or are
 * an unfinished character (the decoder shows those as U+FFFD). */
static gsize
held_back (const char *text, gsize len, const CriaSampling *s)
{
  gsize hold = 0;
  for (guint i = 0; s->stop && i < s->stop->len; i++) {
    const char *stop = g_ptr_array_index (s->stop, i);
    gsize sl = strlen (stop);
    for (gsize k = MIN (sl - 1, len); k > hold; k--)
      if (memcmp (text + len - k, stop, k) == 0) {
        hold = k;
        break;
      }
  }
  if (len >= 3 && memcmp (text + len - 3, "\xef\xbf\xbd", 3) == 0)
    hold = MAX (hold, 3);
  return hold;
}

static gboolean
is_stop_id (const CriaSampling *s, gint32 id)
{
  for (guint i = 0; s->stop_ids && i < s->stop_ids->len; i++)
    if (g_array_index (s->stop_ids, gint32, i) == id)
      return TRUE;
  return FALSE;
}

/* The earliest stop string in text, or -1. */
static gssize
find_stop (const char *text, const CriaSampling *s)
{
  gssize at = -1;
  for (guint i = 0; s->stop && i < s->stop->len; i++) {
    const char *stop = g_ptr_array_index (s->stop, i);
    const char *hit = *stop ? strstr (text, stop) : NULL;
    if (hit && (at < 0 || hit - text < at))
      at = hit - text;
  }
  return at;
}

/* OpenAI's presence and frequency penalties over the generated tokens. */
static void
apply_penalties (const CriaSampling *s, GHashTable *counts, float *logits, gint64 vocab)
{
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, counts);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    gint32 id = GPOINTER_TO_INT (key);
    if (id >= 0 && id < vocab)
      logits[id] -= (float) (s->frequency_penalty * GPOINTER_TO_UINT (value) + s->presence_penalty);
  }
}

/* One sequence being generated. */
typedef struct {
  /* the request (borrowed) */
  const gint32 *prompt;
  gsize n_prompt;
  const CriaSampling *s;
  CriaTokenizer *tok;
  CriaTextFunc on_text;
  gpointer user_data;
  GCancellable *cancellable;
  CriaGeneration *out;
  /* the state */
  gint64 vocab;
  CriaLmCache *cache;
  float *logits;      /* its own row */
  float *next_logits; /* of the next token: its own row, or the batcher's */
  GArray *history;
  GHashTable *counts; /* penalties: times each token was generated */
  CriaRng rng;
  gsize emitted;
  gint64 step;
  gint32 next; /* the token drawn, to feed */
  GTimer *timer;
  GError *error;
  gboolean finished; /* the driver's */
  gboolean done;     /* under the batcher's lock */
} Seq;

static void
seq_init (Seq *q, CriaLm *lm, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt, const CriaSampling *s,
          CriaTextFunc on_text, gpointer user_data, GCancellable *cancellable, CriaGeneration *out)
{
  memset (q, 0, sizeof *q);
  *q = (Seq){ .prompt = prompt,
              .n_prompt = n_prompt,
              .s = s,
              .tok = tok,
              .on_text = on_text,
              .user_data = user_data,
              .cancellable = cancellable,
              .out = out };
  memset (out, 0, sizeof *out);
  out->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  out->text = g_strdup ("");
  out->prompt_tokens = (gint64) n_prompt;
  out->finish = CRIA_FINISH_LENGTH;
  q->vocab = cria_model_get_config (cria_lm_get_model (lm))->vocab_size;
  q->logits = g_new (float, q->vocab);
  q->history = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_array_append_vals (q->history, prompt, (guint) n_prompt);
  q->cache = cria_lm_cache_new (lm);
  cria_rng_init (&q->rng, s->seed);
  q->counts = s->presence_penalty != 0 || s->frequency_penalty != 0 ? g_hash_table_new (NULL, NULL) : NULL;
  q->timer = g_timer_new ();
}

static void
seq_clear (Seq *q)
{
  g_free (q->logits);
  g_array_unref (q->history);
  g_clear_pointer (&q->counts, g_hash_table_unref);
  cria_lm_cache_free (q->cache);
  g_timer_destroy (q->timer);
  g_clear_error (&q->error);
}

/* The end: what is left of the text goes out (unless the caller stopped it). */
static void
seq_finish (Seq *q)
{
  CriaGeneration *out = q->out;
  q->finished = TRUE;
  if (q->error)
    return;
  out->decode_seconds = g_timer_elapsed (q->timer, NULL);
  gsize len = strlen (out->text);
  if (q->on_text && out->finish != CRIA_FINISH_CALLER && len > q->emitted)
    q->on_text (out->text + q->emitted, q->user_data);
}

static void
seq_fail (Seq *q, GError *error)
{
  q->error = error;
  seq_finish (q);
}

static gboolean
seq_prefill (Seq *q, CriaLm *lm)
{
  GError *error = NULL;
  g_timer_start (q->timer);
  q->next_logits = q->logits;
  if (!cria_lm_feed (lm, q->cache, q->prompt, q->n_prompt, q->logits, &error)) {
    seq_fail (q, error);
    return FALSE;
  }
  q->out->prefill_seconds = g_timer_elapsed (q->timer, NULL);
  g_timer_start (q->timer);
  return TRUE;
}

/* One step from the logits of the next token: draws it and emits its text.
 * TRUE when the sequence goes on with q->next to feed. */
static gboolean
seq_advance (Seq *q)
{
  const CriaSampling *s = q->s;
  CriaGeneration *out = q->out;
  float *logits = q->next_logits;
  if (q->step >= s->max_new_tokens) {
    seq_finish (q);
    return FALSE;
  }
  if (s->on_logits && !s->on_logits (logits, q->vocab, (const gint32 *) out->ids->data, out->ids->len,
                                     s->max_new_tokens - q->step, s->hook_data)) {
    out->finish = CRIA_FINISH_STOP;
    seq_finish (q);
    return FALSE;
  }
  if (q->counts)
    apply_penalties (s, q->counts, logits, q->vocab);
  gint32 id = cria_sample (s, logits, q->vocab, (const gint32 *) q->history->data, q->history->len, &q->rng);
  if (is_stop_id (s, id)) {
    out->finish = CRIA_FINISH_STOP;
    seq_finish (q);
    return FALSE;
  }
  g_array_append_val (out->ids, id);
  g_array_append_val (q->history, id);
  if (q->counts) {
    gpointer key = GINT_TO_POINTER (id);
    g_hash_table_insert (q->counts, key,
                         GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (q->counts, key)) + 1));
  }
  if (s->on_token)
    s->on_token (id, s->hook_data);
  if (q->tok) {
    GError *error = NULL;
    char *text = cria_tokenizer_decode (q->tok, (const gint32 *) out->ids->data, out->ids->len, TRUE, &error);
    if (!text) {
      seq_fail (q, error);
      return FALSE;
    }
    g_free (out->text);
    out->text = text;
  }
  gsize len = strlen (out->text);
  gssize stop = find_stop (out->text, s);
  if (stop >= 0) {
    out->text[stop] = '\0';
    out->finish = CRIA_FINISH_STOP;
    seq_finish (q);
    return FALSE;
  }
  gsize ready = len - held_back (out->text, len, s);
  if (ready > q->emitted && q->on_text) {
    g_autofree char *piece = g_strndup (out->text + q->emitted, ready - q->emitted);
    q->emitted = ready;
    if (!q->on_text (piece, q->user_data)) {
      out->finish = CRIA_FINISH_CALLER;
      seq_finish (q);
      return FALSE;
    }
  }
  if (++q->step >= s->max_new_tokens) {
    seq_finish (q);
    return FALSE;
  }
  q->next = id;
  return TRUE;
}

gboolean
cria_lm_generate (CriaLm *lm, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt, const CriaSampling *s,
                  CriaTextFunc on_text, gpointer user_data, CriaGeneration *out, GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (prompt != NULL || n_prompt == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  Seq q;
  seq_init (&q, lm, tok, prompt, n_prompt, s, on_text, user_data, NULL, out);
  if (seq_prefill (&q, lm))
    while (seq_advance (&q))
      if (!cria_lm_feed (lm, q.cache, &q.next, 1, q.logits, &q.error)) {
        seq_finish (&q);
        break;
      }
  gboolean ok = q.error == NULL;
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&q.error));
  seq_clear (&q);
  return ok;
}

struct _CriaLmBatcher {
  CriaLm *lm;
  guint max_batch;
  gint64 vocab;
  GMutex lock;
  GCond cond;
  GQueue waiting;   /* Seq*: submitted, not yet running */
  gboolean driving; /* a caller runs the steps */
  /* the driver's */
  GPtrArray *running; /* Seq* */
  float *logits;      /* max_batch x vocab */
  CriaLmCache **caches;
  gint32 *ids;
  Seq **fed;
};

CriaLmBatcher *
cria_lm_batcher_new (CriaLm *lm, guint max_batch)
{
  g_return_val_if_fail (lm != NULL, NULL);
  CriaLmBatcher *b = g_new0 (CriaLmBatcher, 1);
  b->lm = lm;
  b->max_batch = MAX (max_batch, 1);
  g_mutex_init (&b->lock);
  g_cond_init (&b->cond);
  g_queue_init (&b->waiting);
  b->running = g_ptr_array_new ();
  b->vocab = cria_model_get_config (cria_lm_get_model (lm))->vocab_size;
  b->logits = g_new (float, b->max_batch * b->vocab);
  b->caches = g_new (CriaLmCache *, b->max_batch);
  b->ids = g_new (gint32, b->max_batch);
  b->fed = g_new (Seq *, b->max_batch);
  return b;
}

void
cria_lm_batcher_free (CriaLmBatcher *b)
{
  if (!b)
    return;
  g_mutex_clear (&b->lock);
  g_cond_clear (&b->cond);
  g_ptr_array_unref (b->running);
  g_free (b->logits);
  g_free (b->caches);
  g_free (b->ids);
  g_free (b->fed);
  g_free (b);
}

guint
cria_lm_batcher_get_max_batch (CriaLmBatcher *b)
{
  g_return_val_if_fail (b != NULL, 1);
  return b->max_batch;
}

static gboolean
seq_cancelled (Seq *q)
{
  GError *error = NULL;
  if (!g_cancellable_set_error_if_cancelled (q->cancellable, &error))
    return FALSE;
  q->out->finish = CRIA_FINISH_CALLER;
  seq_fail (q, error);
  return TRUE;
}

/* The driver: one decoding step of everything running. */
static void
batcher_step (CriaLmBatcher *b)
{
  /* Newcomers join while there is room; one cancelled while it waited leaves. */
  g_autoptr (GPtrArray) fresh = g_ptr_array_new ();
  g_mutex_lock (&b->lock);
  for (GList *l = b->waiting.head; l;) {
    GList *next = l->next;
    Seq *q = l->data;
    if (g_cancellable_is_cancelled (q->cancellable) || b->running->len + fresh->len < b->max_batch) {
      g_queue_delete_link (&b->waiting, l);
      g_ptr_array_add (fresh, q);
    }
    l = next;
  }
  g_mutex_unlock (&b->lock);
  /* Prompts are fed one sequence at a time (their lengths differ). */
  for (guint i = 0; i < fresh->len; i++) {
    Seq *q = g_ptr_array_index (fresh, i);
    if (!seq_cancelled (q))
      seq_prefill (q, b->lm);
    g_ptr_array_add (b->running, q); /* a finished one leaves below */
  }
  gsize n = 0;
  for (guint i = 0; i < b->running->len; i++) {
    Seq *q = g_ptr_array_index (b->running, i);
    if (q->finished || seq_cancelled (q) || !seq_advance (q))
      continue;
    b->fed[n] = q;
    b->caches[n] = q->cache;
    b->ids[n++] = q->next;
  }
  gint64 vocab = b->vocab;
  GError *error = NULL;
  /* Each reads its row of the batch's logits in place, before the next step writes them. */
  if (n > 0 && cria_lm_feed_batch (b->lm, b->caches, b->ids, n, b->logits, &error)) {
    for (gsize i = 0; i < n; i++)
      b->fed[i]->next_logits = b->logits + i * vocab;
  } else if (n > 0) {
    /* Whatever failed fails that sequence alone. */
    g_clear_error (&error);
    for (gsize i = 0; i < n; i++) {
      b->fed[i]->next_logits = b->fed[i]->logits;
      if (!cria_lm_feed (b->lm, b->fed[i]->cache, &b->fed[i]->next, 1, b->fed[i]->logits, &error))
        seq_fail (b->fed[i], g_steal_pointer (&error));
    }
  }
  g_mutex_lock (&b->lock);
  for (guint i = b->running->len; i-- > 0;) {
    Seq *q = g_ptr_array_index (b->running, i);
    if (q->finished) {
      q->done = TRUE;
      g_ptr_array_remove_index (b->running, i);
    }
  }
  g_cond_broadcast (&b->cond);
  g_mutex_unlock (&b->lock);
}

static gboolean
all_done (Seq *const *seqs, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!seqs[i]->done)
      return FALSE;
  return TRUE;
}

/* Submits `seqs` and returns once they are all done, driving meanwhile
 * whenever nobody else does. */
static void
batcher_run (CriaLmBatcher *b, Seq *const *seqs, gsize n)
{
  g_mutex_lock (&b->lock);
  for (gsize i = 0; i < n; i++)
    g_queue_push_tail (&b->waiting, seqs[i]);
  while (!all_done (seqs, n)) {
    if (b->driving) {
      g_cond_wait (&b->cond, &b->lock);
      continue;
    }
    b->driving = TRUE;
    g_mutex_unlock (&b->lock);
    /* `done` is only written by the driver: read here without the lock. */
    while (!all_done (seqs, n))
      batcher_step (b);
    g_mutex_lock (&b->lock);
    b->driving = FALSE;
    g_cond_broadcast (&b->cond);
  }
  g_mutex_unlock (&b->lock);
}

gboolean
cria_lm_batcher_generate (CriaLmBatcher *b, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt,
                          const CriaSampling *s, CriaTextFunc on_text, gpointer user_data, GCancellable *cancellable,
                          CriaGeneration *out, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (prompt != NULL || n_prompt == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  Seq q, *qp = &q;
  seq_init (&q, b->lm, tok, prompt, n_prompt, s, on_text, user_data, cancellable, out);
  batcher_run (b, &qp, 1);
  gboolean ok = q.error == NULL;
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&q.error));
  seq_clear (&q);
  return ok;
}

gboolean
cria_lm_generate_batch (CriaLm *lm, CriaTokenizer *tok, guint max_batch, gsize n, const gint32 *const *prompts,
                        const gsize *n_prompts, const CriaSampling *const *s, CriaGeneration *outs, GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (n == 0 || (prompts && n_prompts && s && outs), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (CriaLmBatcher) b = cria_lm_batcher_new (lm, max_batch);
  g_autofree Seq *seqs = g_new0 (Seq, MAX (n, 1));
  g_autofree Seq **ptrs = g_new0 (Seq *, MAX (n, 1));
  for (gsize i = 0; i < n; i++) {
    seq_init (&seqs[i], lm, tok, prompts[i], n_prompts[i], s[i], NULL, NULL, NULL, &outs[i]);
    ptrs[i] = &seqs[i];
  }
  batcher_run (b, ptrs, n);
  gboolean ok = TRUE;
  for (gsize i = 0; i < n; i++) {
    if (seqs[i].error && ok) {
      g_propagate_prefixed_error (error, g_steal_pointer (&seqs[i].error), "sequence %" G_GSIZE_FORMAT ": ", i);
      ok = FALSE;
    }
    seq_clear (&seqs[i]);
  }
  return ok;
}
