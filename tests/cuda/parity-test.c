/* parity-test.c: what the groups of test-cuda-parity share: the summary
 * lines, and an op's case built, run forward and backward and compared on
 * two backends. */
#include "parity-test.h"

/* ---- the summary lines ---------------------------------------------------------- */

Group groups[N_GROUPS] = {
  { "ops", OP_TOL },      { "model", MODEL_TOL },   { "train", MODEL_TOL },
  { "weights", OP_TOL },  { "bf16-dot", BF16_TOL }, { "weights-model", MODEL_TOL },
  { "optim", OPTIM_TOL }, { "tf32", TF32_TOL },     { "bf16-act", BF16_TOL },
};

void
record (int group, const char *what, double rel)
{
  record_tol (group, what, rel, groups[group].tol);
}

/* The same with a tolerance of its own. */
void
record_tol (int group, const char *what, double rel, double tol)
{
  Group *g = &groups[group];
  gboolean ok = rel <= tol;
  g->run++;
  g->widest = MAX (g->widest, tol);
  if (isfinite (rel))
    g->worst = MAX (g->worst, rel);
  if (!ok) {
    g->failed++;
    if (!g->bad)
      g->bad = g_string_new (NULL);
    g_string_append_printf (g->bad, "%s%s (%g)", g->bad->len ? ", " : "", what, rel);
    printf ("\n%s: %s: %g > %g\n", g->name, what, rel, tol);
  }
  CU_ASSERT_TRUE (ok);
}

void
print_summary (void)
{
  for (int i = 0; i < N_GROUPS; i++) {
    Group *g = &groups[i];
    if (!g->run)
      continue;
    /* a group whose checks had tolerances of their own says the widest */
    g_autofree char *tol = g->widest > g->tol ? g_strdup_printf ("%g (some %g)", g->tol, g->widest)
                                              : g_strdup_printf ("%g", g->tol);
    if (g->failed)
      printf ("parity %s: FAILED, %u of %u checks over %s: %s\n", g->name, g->failed, g->run, tol, g->bad->str);
    else
      printf ("parity %s: ok, %u checks within %s (worst %.3g), %s = cpu\n", g->name, g->run, tol, g->worst,
              cria_backend_get_name (dev));
  }
}

/* The relative difference of two host tensors of the same shape. */
double
rel_diff (CriaTensor *a, CriaTensor *b)
{
  if (!a || !b || cria_tensor_numel (a) != cria_tensor_numel (b))
    return INFINITY;
  return cria_test_rel_diff (a->data, b->data, cria_tensor_numel (a));
}

/* ---- an op's case on two backends ------------------------------------------------- */

CriaTensor *
random_tensor (Op *o, int n_dims, const gint64 *shape)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = (float) g_rand_double_range (o->rand, -1.0, 1.0);
  g_ptr_array_add (o->owned, t);
  return t;
}

/* A trainable param of random values (shape given by its dims, 0 ending it). */
CriaNode *
param (Op *o, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  gint64 shape[] = { d0, d1, d2, d3 };
  int n_dims = !d1 ? 1 : !d2 ? 2 : !d3 ? 3 : 4;
  CriaNode *n = cria_graph_param (o->g, "p", random_tensor (o, n_dims, shape), TRUE);
  g_ptr_array_add (o->params, n);
  return n;
}

CriaNode *
ints (Op *o, int n_dims, const gint64 *shape, const gint32 *values)
{
  CriaNode *n = cria_graph_input (o->g, "ids", CRIA_DTYPE_I32, n_dims, shape);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, n_dims, shape);
  memcpy (t->data, values, cria_tensor_nbytes (t));
  g_ptr_array_add (o->owned, t);
  g_assert (cria_node_set_value (n, t, NULL));
  return n;
}

/* A host copy of a value or gradient that outlives its graph (on a host
 * backend, cria_tensor_to_host gives the graph's own memory), in f32: a
 * value the backend stores in bf16 (activations=bf16) widened. */
static CriaTensor *
host_copy (CriaTensor *t, GError **error)
{
  g_autoptr (CriaTensor) h = cria_tensor_to_host (t, error);
  if (!h)
    return NULL;
  if (h->dtype != CRIA_DTYPE_F32)
    return cria_tensor_to_f32 (h);
  CriaTensor *c = cria_tensor_new (h->dtype, h->n_dims, h->shape);
  memcpy (c->data, h->data, cria_tensor_nbytes (h));
  return c;
}

/* The dtype run_op's last value was stored in on its backend. */
static CriaDType last_stored;

/* Builds the case on a backend, runs forward and backward, and appends the
 * op's value and each param's gradient, in host memory, to `out`. */
gboolean
run_op (CriaBackend *be, const OpCase *c, GPtrArray *out)
{
  g_autoptr (GError) error = NULL;
  Op o = { cria_graph_new (), g_rand_new_with_seed (17), g_ptr_array_new (),
           g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref), NULL };
  CriaNode *y = c->build (&o, c->variant), *loss = y;
  if (y && y->op != CRIA_OP_LM_HEAD_CE) {
    gint64 n = cria_shape_numel (y->n_dims, y->shape), flat[] = { 1, n }, rshape[] = { n, 1 };
    CriaNode *r = cria_graph_param (o.g, "R", random_tensor (&o, 2, rshape), FALSE);
    loss = cria_matmul (o.g, cria_reshape (o.g, y, 2, flat), r, FALSE, FALSE);
  }
  if (y)
    cria_graph_mark_output (o.g, y);
  gboolean ok = cria_graph_check (o.g, &error) && cria_graph_backward (o.g, loss, &error) &&
                cria_graph_plan (o.g, be, NULL, &error) && cria_graph_forward (o.g, &error) &&
                (o.seed ? cria_graph_run_backward_seeded (o.g, o.seed, cria_shape_numel (y->n_dims, y->shape), &error)
                        : cria_graph_run_backward (o.g, &error)) &&
                cria_backend_synchronize (be, &error);
  CriaTensor *value = ok ? host_copy (y->value, &error) : NULL;
  ok = value != NULL;
  if (ok)
    last_stored = y->value->dtype;
  if (value)
    g_ptr_array_add (out, value);
  for (guint i = 0; ok && i < o.params->len; i++) {
    CriaNode *p = g_ptr_array_index (o.params, i);
    CriaTensor *t = p->grad ? host_copy (p->grad, &error) : NULL;
    ok = t != NULL;
    if (t)
      g_ptr_array_add (out, t);
  }
  if (!ok)
    printf ("\n%s on %s: %s\n", c->name, cria_backend_get_name (be), error ? error->message : "no gradient");
  cria_graph_free (o.g);
  g_rand_free (o.rand);
  g_ptr_array_unref (o.params);
  g_ptr_array_unref (o.owned);
  g_free (o.seed);
  return ok;
}

/* Whether every element of a host f32 tensor is a bf16 value. */
static gboolean
bf16_valued (const CriaTensor *t)
{
  const guint32 *u = (const guint32 *) t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    if (u[i] & 0xffffu)
      return FALSE;
  return TRUE;
}

/* The cases on the cpu backend `ref` and the one compared with it. */
void
check_cases (int group, CriaBackend *ref, CriaBackend *be, const char *tag, const OpCase *cases)
{
  for (const OpCase *c = cases; c->name; c++) {
    g_autoptr (GPtrArray) a = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
    g_autoptr (GPtrArray) b = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
    g_autofree char *name = g_strdup_printf ("%s%s", c->name, tag);
    if (!run_op (ref, c, a) || !run_op (be, c, b) || a->len != b->len) {
      record (group, name, INFINITY);
      continue;
    }
    CriaDType stored = last_stored;
    for (guint i = 0; i < a->len; i++) {
      g_autofree char *what = i == 0 ? g_strdup_printf ("%s forward", name)
                                     : g_strdup_printf ("%s backward (param %u)", name, i - 1);
      record (group, what, rel_diff (g_ptr_array_index (b, i), g_ptr_array_index (a, i)));
    }
    /* with activations=bf16 the value is stored in bf16 (half the memory)
     * and made of bf16 values; the other groups keep f32 */
    if (group == G_BF16_ACT && c->build != build_lm_head_ce) {
      g_autofree char *what = g_strdup_printf ("%s forward stored in bf16", name);
      record_tol (group, what, stored == CRIA_DTYPE_BF16 && bf16_valued (g_ptr_array_index (b, 0)) ? 0 : INFINITY, 0);
    } else if (group == G_OPS) {
      g_autofree char *what = g_strdup_printf ("%s forward stored in f32", name);
      record_tol (group, what, stored == CRIA_DTYPE_F32 ? 0 : INFINITY, 0);
    }
  }
}
