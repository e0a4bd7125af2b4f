/* cria-lm.c: forward passes of a model for inference, the KV cache, and
 * generation.
 *
 * The cache of a layer is one buffer [1, capacity, Hkv, Dh]: positions are
 * the slowest-varying dimension after the batch, so the first P of them are
 * a contiguous prefix that the next graph borrows as its past keys. On a
 * host backend the cache itself is the storage of what attention reads
 * (CriaModelGraph.cached_k): a pass appends its new positions in place, and
 * the cache is never copied. Elsewhere (and for the first positions, which
 * have no past to join) the new positions are copied back after the pass. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-lm.h>

struct _CriaLm {
  CriaModel *model;
  CriaBackend *backend;
  CriaLinearHook hook;
  gpointer hook_data;
};

typedef struct {
  float *k, *v;
} LayerCache;

struct _CriaLmCache {
  CriaLm *lm;
  gint64 length, capacity, row; /* row: floats per position (Hkv * Dh) */
  LayerCache *layers;
};

CriaLm *
cria_lm_new (CriaModel *model, CriaBackend *backend)
{
  g_return_val_if_fail (model != NULL, NULL);
  CriaLm *lm = g_new0 (CriaLm, 1);
  lm->model = model;
  lm->backend = backend;
  return lm;
}

void
cria_lm_free (CriaLm *lm)
{
  g_free (lm);
}

CriaModel *
cria_lm_get_model (CriaLm *lm)
{
  g_return_val_if_fail (lm != NULL, NULL);
  return lm->model;
}

void
cria_lm_set_linear_hook (CriaLm *lm, CriaLinearHook hook, gpointer user_data)
{
  g_return_if_fail (lm != NULL);
  lm->hook = hook;
  lm->hook_data = user_data;
}

CriaLmCache *
cria_lm_cache_new (CriaLm *lm)
{
  g_return_val_if_fail (lm != NULL, NULL);
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  CriaLmCache *cache = g_new0 (CriaLmCache, 1);
  cache->lm = lm;
  cache->row = c->n_kv_heads * c->head_dim;
  cache->layers = g_new0 (LayerCache, c->n_layers);
  return cache;
}

void
cria_lm_cache_free (CriaLmCache *cache)
{
  if (!cache)
    return;
  const CriaHfConfig *c = cria_model_get_config (cache->lm->model);
  for (gint64 l = 0; l < c->n_layers; l++) {
    g_free (cache->layers[l].k);
    g_free (cache->layers[l].v);
  }
  g_free (cache->layers);
  g_free (cache);
}

gint64
cria_lm_cache_length (const CriaLmCache *cache)
{
  g_return_val_if_fail (cache != NULL, 0);
  return cache->length;
}

void
cria_lm_cache_truncate (CriaLmCache *cache, gint64 length)
{
  g_return_if_fail (cache != NULL);
  cache->length = CLAMP (length, 0, cache->length);
}

static void
cache_reserve (CriaLmCache *cache, gint64 length)
{
  if (length <= cache->capacity)
    return;
  gint64 cap = MAX (length, MAX (64, 2 * cache->capacity));
  const CriaHfConfig *c = cria_model_get_config (cache->lm->model);
  for (gint64 l = 0; l < c->n_layers; l++) {
    cache->layers[l].k = g_renew (float, cache->layers[l].k, cap * cache->row);
    cache->layers[l].v = g_renew (float, cache->layers[l].v, cap * cache->row);
  }
  cache->capacity = cap;
}

static CriaTensor *
int_tensor (gint64 n, const gint32 *values, gint64 base)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ 1, n });
  gint32 *d = t->data;
  for (gint64 i = 0; i < n; i++)
    d[i] = values ? values[i] : (gint32) (base + i);
  return t;
}

/* A view of rows [0, n) of one layer's keys or values. */
static CriaTensor *
cache_view (const CriaHfConfig *c, float *data, gint64 n)
{
  gint64 shp[4] = { 1, n, c->n_kv_heads, c->head_dim };
  return cria_tensor_new_borrowed (CRIA_DTYPE_F32, 4, shp, data, NULL, NULL);
}

/* Binds the past of layer l's keys and values (input nodes pk, pv) to the
 * cache, and when the model gives the nodes attention reads (ck, cv) and the
 * backend is the host, those too, `n` positions more: the pass then appends
 * them in place. TRUE in *in_place when it does. */
static gboolean
bind_past (CriaLm *lm, CriaLmCache *cache, gint64 l, gint64 past, gint64 n, CriaNode *pk, CriaNode *pv, CriaNode *ck,
           CriaNode *cv, gboolean *in_place, GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  float *k = cache->layers[l].k, *v = cache->layers[l].v;
  g_autoptr (CriaTensor) tk = cache_view (c, k, past), tv = cache_view (c, v, past);
  if (!cria_node_set_value (pk, tk, error) || !cria_node_set_value (pv, tv, error))
    return FALSE;
  *in_place = ck && cv && cria_backend_is_host (lm->backend);
  if (!*in_place)
    return TRUE;
  g_autoptr (CriaTensor) wk = cache_view (c, k, past + n), wv = cache_view (c, v, past + n);
  return cria_node_set_value (ck, wk, error) && cria_node_set_value (cv, wv, error);
}

static gboolean
check_ids (CriaLm *lm, const gint32 *ids, gint64 n, gint64 past, GError **error)
{
  gint64 vocab = cria_model_get_config (lm->model)->vocab_size;
  for (gint64 i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= vocab) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "token id %d at position %" G_GINT64_FORMAT " is outside the vocabulary [0, %" G_GINT64_FORMAT ")",
                   ids[i], past + i, vocab);
      return FALSE;
    }
  return TRUE;
}

/* One forward pass of `n` tokens after the cached ones. The logits of every
 * position (all) or of the last go to a new tensor (*tensor when not NULL),
 * else to dest (when not NULL). */
static gboolean
forward (CriaLm *lm, CriaLmCache *cache, const gint32 *ids, gint64 n, gboolean all, float *dest, CriaTensor **tensor,
         GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  gint64 past = cache ? cache->length : 0;
  if (!check_ids (lm, ids, n, past, error))
    return FALSE;
  CriaModelShape shape = { .batch = 1, .seq = n, .past = past, .kv_output = cache != NULL };
  g_autoptr (CriaGraph) g = cria_graph_new ();
  if (lm->hook)
    cria_graph_set_linear_hook (g, lm->hook, lm->hook_data);
  CriaModelGraph mg;
  if (!cria_model_build (lm->model, g, &shape, &mg, error))
    return FALSE;
  CriaNode *h = all ? mg.hidden : cria_slice (g, mg.hidden, 1, n - 1, 1);
  CriaNode *logits = cria_matmul (g, h, mg.head, FALSE, TRUE);
  cria_graph_mark_output (g, logits);
  gboolean ok = cria_graph_check (g, error) && cria_graph_plan (g, lm->backend, NULL, error);
  g_autoptr (CriaTensor) tid = int_tensor (n, ids, 0);
  g_autoptr (CriaTensor) tpos = int_tensor (n, NULL, past);
  ok = ok && cria_node_set_value (mg.ids, tid, error) && cria_node_set_value (mg.positions, tpos, error);
  if (ok && cache)
    cache_reserve (cache, past + n); /* before any view of it */
  g_autofree gboolean *in_place = g_new0 (gboolean, c->n_layers);
  for (gint64 l = 0; ok && past > 0 && l < c->n_layers; l++)
    ok = bind_past (lm, cache, l, past, n, mg.past_k[l], mg.past_v[l], mg.cached_k ? mg.cached_k[l] : NULL,
                    mg.cached_v ? mg.cached_v[l] : NULL, &in_place[l], error);
  ok = ok && cria_graph_forward (g, error);
  g_autoptr (CriaTensor) out = NULL;
  if (ok) {
    gint64 rows = all ? n : 1;
    if (tensor)
      dest = (out = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ rows, c->vocab_size }))->data;
    /* a backend may store values in bf16: widened on the way out */
    if (dest)
      ok = cria_tensor_read_f32 (logits->value, 0, dest, (gsize) (rows * c->vocab_size), error);
    if (ok && cache) {
      gsize count = (gsize) (n * cache->row), at = (gsize) (past * cache->row);
      for (gint64 l = 0; ok && l < c->n_layers; l++)
        ok = in_place[l] ||
             (cria_tensor_read_f32 (mg.present_k[l]->value, at, cache->layers[l].k + past * cache->row, count, error) &&
              cria_tensor_read_f32 (mg.present_v[l]->value, at, cache->layers[l].v + past * cache->row, count, error));
      if (ok)
        cache->length = past + n;
    }
  }
  cria_model_graph_clear (&mg);
  if (ok && tensor)
    *tensor = g_steal_pointer (&out);
  return ok;
}

/* One decoding step of sequences that the same graph can run: the token
 * ids[i] after the cached ones of caches[i], its logits to row at[i] of
 * `logits`. */
static gboolean
forward_ragged (CriaLm *lm, CriaLmCache *const *caches, const gint32 *ids, gint64 n, float *logits, const gsize *at,
                GError **error)
{
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  g_autofree gint64 *pasts = g_new (gint64, n);
  gint64 longest = 0;
  for (gint64 b = 0; b < n; b++) {
    pasts[b] = caches[b]->length;
    longest = MAX (longest, pasts[b]);
    if (!check_ids (lm, ids + b, 1, pasts[b], error))
      return FALSE;
  }
  CriaModelShape shape = { .batch = n, .seq = 1, .past = longest, .kv_output = TRUE, .pasts = pasts };
  g_autoptr (CriaGraph) g = cria_graph_new ();
  if (lm->hook)
    cria_graph_set_linear_hook (g, lm->hook, lm->hook_data);
  CriaModelGraph mg;
  if (!cria_model_build (lm->model, g, &shape, &mg, error))
    return FALSE;
  CriaNode *h = cria_reshape (g, mg.hidden, 2, (gint64[]){ n, c->hidden_size });
  CriaNode *out = cria_matmul (g, h, mg.head, FALSE, TRUE);
  cria_graph_mark_output (g, out);
  gboolean ok = cria_graph_check (g, error) && cria_graph_plan (g, lm->backend, NULL, error);
  g_autoptr (CriaTensor) tid = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ n, 1 });
  g_autoptr (CriaTensor) tpos = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ n, 1 });
  for (gint64 b = 0; b < n; b++) {
    ((gint32 *) tid->data)[b] = ids[b];
    ((gint32 *) tpos->data)[b] = (gint32) pasts[b];
  }
  ok = ok && cria_node_set_value (mg.ids, tid, error) && cria_node_set_value (mg.positions, tpos, error);
  for (gint64 b = 0; ok && b < n; b++)
    cache_reserve (caches[b], pasts[b] + 1); /* before any view of it */
  g_autofree gboolean *in_place = g_new0 (gboolean, c->n_layers * n);
  for (gint64 l = 0; ok && l < c->n_layers; l++)
    for (gint64 b = 0; ok && b < n; b++) {
      gint64 i = l * n + b;
      if (pasts[b] > 0)
        ok = bind_past (lm, caches[b], l, pasts[b], 1, mg.past_k[i], mg.past_v[i], mg.cached_k ? mg.cached_k[i] : NULL,
                        mg.cached_v ? mg.cached_v[i] : NULL, &in_place[i], error);
    }
  ok = ok && cria_graph_forward (g, error);
  gsize vocab = (gsize) c->vocab_size;
  for (gint64 b = 0; ok && logits && b < n; b++)
    ok = cria_tensor_read_f32 (out->value, b * vocab, logits + at[b] * c->vocab_size, vocab, error);
  for (gint64 b = 0; ok && b < n; b++) {
    CriaLmCache *cache = caches[b];
    gsize count = (gsize) cache->row, from = (gsize) (b * cache->row);
    for (gint64 l = 0; ok && l < c->n_layers; l++)
      ok = in_place[l * n + b] || (cria_tensor_read_f32 (mg.present_k[l]->value, from,
                                                         cache->layers[l].k + pasts[b] * cache->row, count, error) &&
                                   cria_tensor_read_f32 (mg.present_v[l]->value, from,
                                                         cache->layers[l].v + pasts[b] * cache->row, count, error));
    if (ok)
      cache->length = pasts[b] + 1;
  }
  cria_model_graph_clear (&mg);
  return ok;
}

/* Whether sequences of lengths a and b run in one graph: a dynamic rotary
 * scaling builds its frequencies from the length, one set per graph. */
static gboolean
same_graph (const CriaHfConfig *c, gint64 a, gint64 b)
{
  if (a == b || c->rope_theta <= 0 || c->rope_scaling.type != CRIA_ROPE_SCALING_DYNAMIC)
    return TRUE;
  gint64 half = c->head_dim / 2;
  g_autofree float *fa = g_new (float, half), *fb = g_new (float, half);
  double factor;
  cria_hf_config_rope_inv_freq (c, c->head_dim, a, fa, &factor);
  cria_hf_config_rope_inv_freq (c, c->head_dim, b, fb, &factor);
  return memcmp (fa, fb, (gsize) half * sizeof (float)) == 0;
}

gboolean
cria_lm_feed_batch (CriaLm *lm, CriaLmCache *const *caches, const gint32 *ids, gsize n, float *logits, GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (caches != NULL || n == 0, FALSE);
  g_return_val_if_fail (ids != NULL || n == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  for (gsize i = 0; i < n; i++)
    for (gsize j = 0; j < i; j++)
      if (caches[i] == caches[j]) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "sequences %" G_GSIZE_FORMAT " and %" G_GSIZE_FORMAT " of the batch share one cache", j, i);
        return FALSE;
      }
  if (n == 1)
    return cria_lm_feed (lm, caches[0], ids, 1, logits, error);
  /* Sequences in groups that one graph runs (all of them, but for a
   * dynamic rotary scaling past its original length). */
  g_autofree gboolean *done = g_new0 (gboolean, n);
  g_autofree CriaLmCache **gc = g_new (CriaLmCache *, n);
  g_autofree gint32 *gid = g_new (gint32, n);
  g_autofree gsize *at = g_new (gsize, n);
  for (gsize first = 0; first < n; first++) {
    if (done[first])
      continue;
    gsize m = 0;
    for (gsize i = first; i < n; i++)
      if (!done[i] && same_graph (c, caches[first]->length + 1, caches[i]->length + 1)) {
        done[i] = TRUE;
        gc[m] = caches[i];
        gid[m] = ids[i];
        at[m++] = i;
      }
    if (m == 1 ? !cria_lm_feed (lm, gc[0], gid, 1, logits ? logits + at[0] * c->vocab_size : NULL, error)
               : !forward_ragged (lm, gc, gid, (gint64) m, logits, at, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
cria_lm_nll (CriaLm *lm, const gint32 *ids, const gint32 *labels, gsize n, double *nll_sum, guint64 *n_tokens,
             GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (nll_sum != NULL, FALSE);
  g_return_val_if_fail (n_tokens != NULL, FALSE);
  g_return_val_if_fail (ids != NULL || n == 0, FALSE);
  g_return_val_if_fail (labels != NULL || n == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const CriaHfConfig *c = cria_model_get_config (lm->model);
  *nll_sum = 0;
  *n_tokens = 0;
  if (n == 0)
    return TRUE;
  if (!check_ids (lm, ids, (gint64) n, 0, error))
    return FALSE;
  CriaModelShape shape = { .batch = 1, .seq = (gint64) n };
  g_autoptr (CriaGraph) g = cria_graph_new ();
  if (lm->hook)
    cria_graph_set_linear_hook (g, lm->hook, lm->hook_data);
  CriaModelGraph mg;
  if (!cria_model_build (lm->model, g, &shape, &mg, error))
    return FALSE;
  gint64 nn = (gint64) n;
  CriaNode *lab = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, &nn);
  CriaNode *h = cria_reshape (g, mg.hidden, 2, (gint64[]){ nn, c->hidden_size });
  CriaNode *ce = cria_lm_head_ce (g, h, mg.head, lab, 4096);
  cria_graph_mark_output (g, ce);
  g_autoptr (CriaTensor) tid = int_tensor (nn, ids, 0);
  g_autoptr (CriaTensor) tpos = int_tensor (nn, NULL, 0);
  g_autoptr (CriaTensor) tlab = cria_tensor_new (CRIA_DTYPE_I32, 1, &nn);
  memcpy (tlab->data, labels, n * sizeof (gint32));
  gboolean ok = cria_graph_check (g, error) && cria_graph_plan (g, lm->backend, NULL, error) &&
                cria_node_set_value (mg.ids, tid, error) && cria_node_set_value (mg.positions, tpos, error) &&
                cria_node_set_value (lab, tlab, error) && cria_graph_forward (g, error);
  float v[2];
  ok = ok && cria_tensor_read (ce->value, 0, v, sizeof v, error);
  if (ok) {
    *nll_sum = v[0];
    *n_tokens = (guint64) v[1];
  }
  cria_model_graph_clear (&mg);
  return ok;
}

CriaTensor *
cria_lm_logits (CriaLm *lm, const gint32 *ids, gsize n, GError **error)
{
  g_return_val_if_fail (lm != NULL, NULL);
  g_return_val_if_fail (ids != NULL || n == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (n == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "no tokens to run");
    return NULL;
  }
  CriaTensor *out = NULL;
  return forward (lm, NULL, ids, (gint64) n, TRUE, NULL, &out, error) ? out : NULL;
}

gboolean
cria_lm_feed (CriaLm *lm, CriaLmCache *cache, const gint32 *ids, gsize n, float *logits, GError **error)
{
  g_return_val_if_fail (lm != NULL, FALSE);
  g_return_val_if_fail (ids != NULL || n == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (n == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "no tokens to run");
    return FALSE;
  }
  return forward (lm, cache, ids, (gint64) n, FALSE, logits, NULL, error);
}
