/* cria-sample.c: choosing the next token (the generation loop is in
 * cria-lm-generate.c).
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
