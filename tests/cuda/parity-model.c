/* parity-model.c: test-cuda-parity's model group (the logits of every tiny
 * checkpoint, greedy decoding with KV caches) and train group (one LoRA
 * step). */
#include "parity-test.h"

/* ---- model ------------------------------------------------------------------------ */

static CriaModel *
open_model_as (const char *name, CriaModelDType dtype)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (GError) error = NULL;
  CriaModel *m = cria_model_open (registry, dir, dtype, &error);
  if (!m)
    printf ("\n%s: %s\n", name, error->message);
  return m;
}

static CriaModel *
open_model (const char *name)
{
  return open_model_as (name, CRIA_MODEL_DTYPE_F32);
}

CriaTensor *
model_logits_as (const char *name, CriaModelDType dtype, CriaBackend *be)
{
  g_autoptr (CriaModel) model = open_model_as (name, dtype);
  if (!model)
    return NULL;
  static const gint32 ids[] = { 1, 17, 200, 3, 5, 42, 7, 99, 11 };
  gint64 V = cria_model_get_config (model)->vocab_size;
  g_autofree gint32 *in = g_new (gint32, G_N_ELEMENTS (ids));
  for (gsize i = 0; i < G_N_ELEMENTS (ids); i++)
    in[i] = (gint32) (ids[i] % V);
  CriaLm *lm = cria_lm_new (model, be);
  g_autoptr (GError) error = NULL;
  CriaTensor *t = cria_lm_logits (lm, in, G_N_ELEMENTS (ids), &error);
  if (!t)
    printf ("\n%s on %s: %s\n", name, cria_backend_get_name (be), error->message);
  cria_lm_free (lm);
  return t;
}

static CriaTensor *
model_logits (const char *name, CriaBackend *be)
{
  return model_logits_as (name, CRIA_MODEL_DTYPE_F32, be);
}

/* The logits of every tiny checkpoint (in f32) on `be` against the cpu's,
 * within `tol`. */
void
check_every_model (int group, CriaBackend *be, double tol)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (d);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (const char *n; (n = g_dir_read_name (d));)
    if (g_str_has_prefix (n, "tiny-"))
      g_ptr_array_add (names, g_strdup (n));
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
  CU_ASSERT_TRUE (names->len >= 8);
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index (names, i);
    g_autoptr (CriaTensor) a = model_logits (name, cpu);
    g_autoptr (CriaTensor) b = model_logits (name, be);
    g_autofree char *what = g_strdup_printf ("%s logits", name);
    record_tol (group, what, rel_diff (b, a), tol);
  }
}

void
test_model_logits (void)
{
  check_every_model (G_MODEL, dev, MODEL_TOL);
}

/* Greedy decoding of two prompts through KV caches (test-devmem's), one at a
 * time and as a batch; the ids and every step's logits. */
static gboolean
decode (const char *name, CriaBackend *backend, GArray *ids, GArray *logits)
{
  g_autoptr (CriaModel) model = open_model (name);
  if (!model)
    return FALSE;
  gint64 V = cria_model_get_config (model)->vocab_size;
  CriaLm *lm = cria_lm_new (model, backend);
  g_autoptr (GError) error = NULL;
  const gint32 p0[] = { 1, 17, 200 % V, 5, 9, 4 }, p1[] = { 3, 9 };
  g_autofree float *row = g_new (float, 2 * V);
  CriaLmCache *c[2] = { cria_lm_cache_new (lm), cria_lm_cache_new (lm) };
  gboolean ok = cria_lm_feed (lm, c[0], p0, G_N_ELEMENTS (p0), row, &error);
  gint32 next[2] = { ok ? cria_test_argmax (row, V) : 0, 0 };
  ok = ok && cria_lm_feed (lm, c[1], p1, G_N_ELEMENTS (p1), row + V, &error);
  next[1] = ok ? cria_test_argmax (row + V, V) : 0;
  for (int step = 0; ok && step < 6; step++) {
    g_array_append_vals (ids, next, 2);
    ok = step % 2
             ? cria_lm_feed_batch (lm, c, next, 2, row, &error)
             : cria_lm_feed (lm, c[0], next, 1, row, &error) && cria_lm_feed (lm, c[1], next + 1, 1, row + V, &error);
    if (ok) {
      next[0] = cria_test_argmax (row, V);
      next[1] = cria_test_argmax (row + V, V);
      g_array_append_vals (logits, row, (guint) (2 * V));
    }
  }
  if (!ok)
    printf ("\n%s on %s: %s\n", name, cria_backend_get_name (backend), error->message);
  cria_lm_cache_free (c[0]);
  cria_lm_cache_free (c[1]);
  cria_lm_free (lm);
  return ok;
}

static void
check_decode (const char *name)
{
  g_autoptr (GArray) ia = g_array_new (FALSE, FALSE, sizeof (gint32)), ib = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GArray) la = g_array_new (FALSE, FALSE, sizeof (float)), lb = g_array_new (FALSE, FALSE, sizeof (float));
  g_autofree char *what_ids = g_strdup_printf ("%s greedy ids", name);
  g_autofree char *what_logits = g_strdup_printf ("%s cached logits", name);
  if (!decode (name, cpu, ia, la) || !decode (name, dev, ib, lb) || la->len != lb->len) {
    record (G_MODEL, what_logits, INFINITY);
    return;
  }
  CU_ASSERT_EQUAL (ia->len, 12);
  record (G_MODEL, what_ids,
          ia->len == ib->len && memcmp (ia->data, ib->data, ia->len * sizeof (gint32)) == 0 ? 0 : INFINITY);
  record (G_MODEL, what_logits, cria_test_rel_diff ((float *) lb->data, (float *) la->data, la->len));
}

void
test_model_decode (void)
{
  check_decode ("tiny-qwen2");
  check_decode ("tiny-mistral");
}

/* ---- train ------------------------------------------------------------------------ */

/* test-devmem's training step (cria_test_lora_step) on one backend. */
static gboolean
lora_step (const char *name, const char *spec_tail, CriaBackend *backend, float ce[2], GPtrArray *grads)
{
  g_autoptr (GError) error = NULL;
  if (!cria_test_lora_step (registry, name, spec_tail, backend, ce, grads, &error)) {
    printf ("\n%s on %s: %s\n", name, cria_backend_get_name (backend), error->message);
    return FALSE;
  }
  return TRUE;
}

static void
check_lora_step (const char *name, const char *spec_tail)
{
  float ca[2], cb[2];
  g_autoptr (GPtrArray) ga = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  g_autoptr (GPtrArray) gb = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  g_autofree char *what = g_strdup_printf ("%s %s", name, spec_tail);
  if (!lora_step (name, spec_tail, cpu, ca, ga) || !lora_step (name, spec_tail, dev, cb, gb) || ga->len != gb->len ||
      ga->len == 0) {
    record (G_TRAIN, what, INFINITY);
    return;
  }
  g_autofree char *what_loss = g_strdup_printf ("%s: loss", what);
  g_autofree char *what_count = g_strdup_printf ("%s: label count", what);
  record (G_TRAIN, what_loss, fabs ((double) cb[0] - ca[0]) / MAX (fabs ((double) ca[0]), 1e-30));
  record (G_TRAIN, what_count, ca[1] == cb[1] && ca[1] > 0 ? 0 : INFINITY);
  double worst = 0;
  for (guint i = 0; i < ga->len; i++)
    worst = MAX (worst, rel_diff (g_ptr_array_index (gb, i), g_ptr_array_index (ga, i)));
  g_autofree char *what_grads = g_strdup_printf ("%s: adapter gradients", what);
  record (G_TRAIN, what_grads, worst);
}

void
test_train_lora (void)
{
  check_lora_step ("tiny-gpt2", "target-modules=attn.c_attn,c_proj");
  check_lora_step ("tiny-llama", "target-modules=q_proj,v_proj,down_proj");
  check_lora_step ("tiny-qwen2", "target-modules=q_proj,v_proj,down_proj");
  check_lora_step ("tiny-qwen3", "target-modules=q_proj,v_proj,down_proj");
  /* the adapter's dropout: the same seeded masks on both backends */
  check_lora_step ("tiny-llama", "target-modules=q_proj,v_proj,down_proj dropout=0.1");
}
