/* cria-sample.c: choosing the next token and the generation loop.
 *
 * The logits processors follow the order and rules Hugging Face's generate()
 * applies, so that settings carried over from a Python workflow mean the
 * same thing here: repetition penalty (divide positive logits, multiply
 * negative ones), temperature, top-k (ties with the k-th value kept), top-p
 * (the smallest set of most likely tokens whose probability reaches p). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-lm.h>

void
cria_sampling_init (CriaSampling *s)
{
  g_return_if_fail (s != NULL);
  memset (s, 0, sizeof *s);
  s->max_new_tokens = 256;
  s->top_p = 1.0;
  s->repetition_penalty = 1.0;
  s->stop = g_ptr_array_new_with_free_func (g_free);
  s->stop_ids = g_array_new (FALSE, FALSE, sizeof (gint32));
}

void
cria_sampling_clear (CriaSampling *s)
{
  g_clear_pointer (&s->stop, g_ptr_array_unref);
  g_clear_pointer (&s->stop_ids, g_array_unref);
}

static void
add_stop_id (CriaSampling *s, gint64 id)
{
  for (guint i = 0; i < s->stop_ids->len; i++)
    if (g_array_index (s->stop_ids, gint32, i) == id)
      return;
  gint32 v = (gint32) id;
  g_array_append_val (s->stop_ids, v);
}

void
cria_sampling_add_model_stops (CriaSampling *s, CriaModel *model)
{
  g_return_if_fail (s != NULL);
  g_return_if_fail (model != NULL);
  const CriaHfConfig *c = cria_model_get_config (model);
  for (guint i = 0; c->eos_token_ids && i < c->eos_token_ids->len; i++)
    add_stop_id (s, g_array_index (c->eos_token_ids, gint64, i));
  JsonObject *gen = cria_hf_model_get_generation_config (cria_model_get_files (model));
  JsonNode *eos = gen ? json_object_get_member (gen, "eos_token_id") : NULL;
  if (eos && JSON_NODE_HOLDS_VALUE (eos) && json_node_get_value_type (eos) == G_TYPE_INT64)
    add_stop_id (s, json_node_get_int (eos));
  else if (eos && JSON_NODE_HOLDS_ARRAY (eos)) {
    JsonArray *a = json_node_get_array (eos);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_INT64)
        add_stop_id (s, json_node_get_int (e));
    }
  }
}

typedef struct {
  float logit;
  gint32 id;
} Cand;

static int
cand_desc (const void *a, const void *b)
{
  const Cand *x = a, *y = b;
  if (x->logit != y->logit)
    return x->logit > y->logit ? -1 : 1;
  return x->id - y->id;
}

gint32
cria_sample (const CriaSampling *s, float *logits, gint64 vocab, const gint32 *history, gsize n_history, CriaRng *rng)
{
  g_return_val_if_fail (s != NULL, -1);
  g_return_val_if_fail (logits != NULL, -1);
  g_return_val_if_fail (rng != NULL, -1);
  g_return_val_if_fail (history != NULL || n_history == 0, -1);
  if (s->repetition_penalty != 1.0) {
    g_autofree guint8 *seen = g_new0 (guint8, vocab);
    float p = (float) s->repetition_penalty;
    for (gsize i = 0; i < n_history; i++) {
      gint32 id = history[i];
      if (id < 0 || id >= vocab || seen[id])
        continue;
      seen[id] = 1;
      logits[id] = logits[id] < 0 ? logits[id] * p : logits[id] / p;
    }
  }
  if (s->temperature <= 0) {
    gint32 best = 0;
    for (gint64 i = 1; i < vocab; i++)
      if (logits[i] > logits[best])
        best = (gint32) i;
    return best;
  }
  float t = (float) s->temperature;
  g_autofree Cand *c = g_new (Cand, vocab);
  for (gint64 i = 0; i < vocab; i++)
    c[i] = (Cand){ logits[i] / t, (gint32) i };
  qsort (c, (size_t) vocab, sizeof *c, cand_desc);
  gint64 keep = vocab;
  if (s->top_k > 0 && s->top_k < vocab) {
    keep = s->top_k;
    while (keep < vocab && c[keep].logit == c[s->top_k - 1].logit)
      keep++;
  }
  /* Softmax over what is kept, then nucleus. */
  double max = c[0].logit, sum = 0;
  g_autofree double *prob = g_new (double, keep);
  for (gint64 i = 0; i < keep; i++)
    sum += prob[i] = exp ((double) c[i].logit - max);
  for (gint64 i = 0; i < keep; i++)
    prob[i] /= sum;
  if (s->top_p < 1.0) {
    double cum = 0;
    gint64 i = 0;
    while (i < keep) {
      cum += prob[i++];
      if (cum >= s->top_p)
        break;
    }
    keep = MAX (i, 1);
    sum = 0;
    for (i = 0; i < keep; i++)
      sum += prob[i];
    for (i = 0; i < keep; i++)
      prob[i] /= sum;
  }
  double r = cria_rng_double (rng), cum = 0;
  for (gint64 i = 0; i < keep; i++) {
    cum += prob[i];
    if (r < cum)
      return c[i].id;
  }
  return c[keep - 1].id;
}

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

gboolean
cria_lm_generate (CriaLm *lm, CriaTokenizer *tok, const gint32 *prompt, gsize n_prompt, const CriaSampling *s,
                  CriaTextFunc on_text, gpointer user_data, CriaGeneration *out, GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (prompt != NULL || n_prompt == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (out, 0, sizeof *out);
  out->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  out->text = g_strdup ("");
  out->prompt_tokens = (gint64) n_prompt;
  out->finish = CRIA_FINISH_LENGTH;
  gint64 vocab = cria_model_get_config (cria_lm_get_model (lm))->vocab_size;
  g_autofree float *logits = g_new (float, vocab);
  g_autoptr (GArray) history = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_array_append_vals (history, prompt, (guint) n_prompt);
  g_autoptr (CriaLmCache) cache = cria_lm_cache_new (lm);
  CriaRng rng;
  cria_rng_init (&rng, s->seed);
  gsize emitted = 0;
  g_autoptr (GTimer) timer = g_timer_new ();
  if (!cria_lm_feed (lm, cache, prompt, n_prompt, logits, error))
    return FALSE;
  out->prefill_seconds = g_timer_elapsed (timer, NULL);
  g_timer_start (timer);
  g_autoptr (GHashTable) counts = s->presence_penalty != 0 || s->frequency_penalty != 0 ? g_hash_table_new (NULL, NULL)
                                                                                        : NULL;
  for (gint64 step = 0; step < s->max_new_tokens; step++) {
    if (s->on_logits && !s->on_logits (logits, vocab, (const gint32 *) out->ids->data, out->ids->len,
                                       s->max_new_tokens - step, s->hook_data)) {
      out->finish = CRIA_FINISH_STOP;
      break;
    }
    if (counts)
      apply_penalties (s, counts, logits, vocab);
    gint32 id = cria_sample (s, logits, vocab, (const gint32 *) history->data, history->len, &rng);
    if (is_stop_id (s, id)) {
      out->finish = CRIA_FINISH_STOP;
      break;
    }
    g_array_append_val (out->ids, id);
    g_array_append_val (history, id);
    if (counts) {
      gpointer key = GINT_TO_POINTER (id);
      g_hash_table_insert (counts, key, GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (counts, key)) + 1));
    }
    if (s->on_token)
      s->on_token (id, s->hook_data);
    if (tok) {
      g_free (out->text);
      out->text = cria_tokenizer_decode (tok, (const gint32 *) out->ids->data, out->ids->len, TRUE, error);
      if (!out->text)
        return FALSE;
    }
    gsize len = strlen (out->text);
    gssize stop = find_stop (out->text, s);
    if (stop >= 0) {
      out->text[stop] = '\0';
      out->finish = CRIA_FINISH_STOP;
      break;
    }
    gsize ready = len - held_back (out->text, len, s);
    if (ready > emitted && on_text) {
      g_autofree char *piece = g_strndup (out->text + emitted, ready - emitted);
      emitted = ready;
      if (!on_text (piece, user_data)) {
        out->finish = CRIA_FINISH_CALLER;
        break;
      }
    }
    if (step + 1 < s->max_new_tokens && !cria_lm_feed (lm, cache, &id, 1, logits, error))
      return FALSE;
  }
  out->decode_seconds = g_timer_elapsed (timer, NULL);
  gsize len = strlen (out->text);
  if (on_text && out->finish != CRIA_FINISH_CALLER && len > emitted)
    on_text (out->text + emitted, user_data);
  return TRUE;
}
