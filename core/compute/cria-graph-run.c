/* cria-graph-run.c: the backward pass, the activation memory plan, and running.
 *
 * Steps are numbered: forward node i runs at step i (its id), the backward of
 * the k-th node of backward_order at step n_nodes + k. A buffer lives from the
 * step that first writes it to the last step that reads it; buffers whose
 * lifetimes do not overlap share memory in one arena (first fit by offset).
 * A value read by a backward kernel therefore lives until that kernel ran, and
 * a gradient from its first writer to its own node's backward. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include "cria-graph-private.h"

#define ALIGN 64
#define FOREVER G_MAXINT

static gboolean
is_leaf (const CriaNode *n)
{
  return n->op == CRIA_OP_INPUT || n->op == CRIA_OP_PARAM;
}

gboolean
cria_graph_backward (CriaGraph *g, CriaNode *loss, GError **error)
{
  if (!cria_graph_check (g, error))
    return FALSE;
  if (g->arena) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "derive the backward pass before planning");
    return FALSE;
  }
  gboolean ce = loss->op == CRIA_OP_LM_HEAD_CE;
  if (!ce && cria_shape_numel (loss->n_dims, loss->shape) != 1) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "the loss must be a scalar or the output of lm_head_ce");
    return FALSE;
  }
  guint n = g->nodes->len;
  for (guint i = 0; i < n; i++) {
    CriaNode *node = g_ptr_array_index (g->nodes, i);
    node->requires_grad = node->op == CRIA_OP_PARAM ? node->trainable : FALSE;
    for (int s = 0; s < node->n_src && !is_leaf (node); s++)
      node->requires_grad |= node->src[s] && node->src[s]->requires_grad;
  }
  if (!loss->requires_grad) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "the loss does not depend on any trainable param");
    return FALSE;
  }
  /* Only ancestors of the loss get a gradient. */
  g_autofree gboolean *needed = g_new0 (gboolean, n);
  needed[loss->id] = TRUE;
  g_free (g->backward_order);
  g->backward_order = g_new0 (CriaNode *, n);
  g->n_backward = 0;
  for (guint i = n; i-- > 0;) {
    CriaNode *node = g_ptr_array_index (g->nodes, i);
    if (!needed[i] || !node->requires_grad) {
      node->requires_grad = FALSE;
      continue;
    }
    for (int s = 0; s < node->n_src; s++)
      if (node->src[s] && node->src[s]->requires_grad)
        needed[node->src[s]->id] = TRUE;
    if (!is_leaf (node))
      g->backward_order[g->n_backward++] = node;
  }
  g->loss = loss;
  loss->keep = TRUE;
  return TRUE;
}

typedef struct {
  CriaNode *node;
  gboolean grad;
  int start, end;
  gsize bytes, offset;
} Buffer;

static int
buffer_cmp (gconstpointer pa, gconstpointer pb)
{
  const Buffer *a = pa, *b = pb;
  return a->start != b->start ? (a->start < b->start ? -1 : 1) : (a->node->id - b->node->id);
}

/* Offsets in the arena, first fit among the buffers still alive. Returns the arena size. */
static gsize
assign_offsets (GArray *bufs)
{
  g_array_sort (bufs, buffer_cmp);
  g_autoptr (GPtrArray) live = g_ptr_array_new ();
  gsize top = 0;
  for (guint i = 0; i < bufs->len; i++) {
    Buffer *b = &g_array_index (bufs, Buffer, i);
    for (guint j = live->len; j-- > 0;)
      if (((Buffer *) g_ptr_array_index (live, j))->end < b->start)
        g_ptr_array_remove_index (live, j);
    /* live is kept sorted by offset; take the first gap that fits */
    gsize at = 0;
    guint pos = 0;
    for (; pos < live->len; pos++) {
      Buffer *l = g_ptr_array_index (live, pos);
      if (l->offset >= at + b->bytes)
        break;
      at = MAX (at, l->offset + l->bytes);
    }
    b->offset = at;
    g_ptr_array_insert (live, (gint) pos, b);
    top = MAX (top, at + b->bytes);
  }
  return top;
}

void
cria_graph_release_plan (CriaGraph *g)
{
  if (g->grad_zero)
    g_ptr_array_unref (g->grad_zero);
  g->grad_zero = NULL;
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (!is_leaf (n))
      g_clear_pointer (&n->value, cria_tensor_unref);
    g_clear_pointer (&n->grad, cria_tensor_unref);
  }
  if (g->backend)
    cria_backend_free_internal (g->backend, g->arena);
  g->arena = NULL;
  g->backend = NULL;
}

/* The step at which each node's backward runs; -1 for none. */
static int *
backward_steps (CriaGraph *g)
{
  int *step = g_new (int, g->nodes->len);
  for (guint i = 0; i < g->nodes->len; i++)
    step[i] = -1;
  for (guint k = 0; k < g->n_backward; k++)
    step[g->backward_order[k]->id] = (int) (g->nodes->len + k);
  return step;
}

static GArray *
collect_buffers (CriaGraph *g, const int *bstep)
{
  guint n = g->nodes->len;
  GArray *bufs = g_array_new (FALSE, TRUE, sizeof (Buffer));
  for (guint i = 0; i < n; i++) {
    CriaNode *node = g_ptr_array_index (g->nodes, i);
    if (is_leaf (node))
      continue;
    Buffer v = { node, FALSE, (int) i, (int) i, 0, 0 };
    v.bytes = cria_dtype_bytes (node->dtype, (gsize) cria_shape_numel (node->n_dims, node->shape));
    if (node->keep || i == n - 1)
      v.end = FOREVER;
    v.end = MAX (v.end, bstep[i]);
    g_array_append_val (bufs, v);
  }
  /* Readers of each value: the forward of its consumers and their backward. */
  for (guint i = 0; i < n; i++) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    for (int s = 0; s < c->n_src; s++) {
      CriaNode *src = c->src[s];
      if (!src || is_leaf (src))
        continue;
      for (guint b = 0; b < bufs->len; b++) {
        Buffer *v = &g_array_index (bufs, Buffer, b);
        if (v->node == src && !v->grad)
          v->end = MAX (v->end, MAX ((int) i, bstep[i]));
      }
    }
  }
  /* Gradients of activations: from the first backward writing one (the loss's
   * is seeded just before the first step) to the node's own backward. */
  for (guint k = 0; k < g->n_backward; k++) {
    CriaNode *node = g->backward_order[k];
    Buffer gb = { node, TRUE, bstep[node->id], bstep[node->id], 0, 0 };
    gb.bytes = (gsize) cria_shape_numel (node->n_dims, node->shape) * sizeof (float);
    if (node == g->loss)
      gb.start = (int) n;
    for (guint i = node->id + 1; i < n; i++) {
      CriaNode *c = g_ptr_array_index (g->nodes, i);
      for (int s = 0; s < c->n_src; s++)
        if (c->src[s] == node && bstep[i] >= 0)
          gb.start = MIN (gb.start, bstep[i]);
    }
    g_array_append_val (bufs, gb);
  }
  for (guint b = 0; b < bufs->len; b++) {
    Buffer *v = &g_array_index (bufs, Buffer, b);
    v->bytes = (v->bytes + ALIGN - 1) / ALIGN * ALIGN;
  }
  return bufs;
}

gboolean
cria_graph_plan (CriaGraph *g, CriaBackend *backend, CriaPlanStats *stats, GError **error)
{
  if (!cria_graph_check (g, error))
    return FALSE;
  if (g->nodes->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "the graph is empty");
    return FALSE;
  }
  cria_graph_release_plan (g);
  g_autofree int *bstep = backward_steps (g);
  g_autoptr (GArray) bufs = collect_buffers (g, bstep);
  gsize naive = 0;
  for (guint b = 0; b < bufs->len; b++)
    naive += g_array_index (bufs, Buffer, b).bytes;
  gsize arena_bytes = assign_offsets (bufs);
  g->arena = cria_backend_alloc_internal (backend, MAX (arena_bytes, ALIGN), error);
  if (!g->arena)
    return FALSE;
  g->backend = backend;
  g->grad_zero = g_ptr_array_new_with_free_func (g_free);
  for (guint b = 0; b < bufs->len; b++) {
    Buffer *v = &g_array_index (bufs, Buffer, b);
    CriaNode *node = v->node;
    CriaTensor *t = cria_tensor_new_borrowed (v->grad ? CRIA_DTYPE_F32 : node->dtype, node->n_dims, node->shape,
                                              (char *) g->arena + v->offset, NULL, NULL);
    if (v->grad) {
      node->grad = t;
      /* (step, node) pairs: zero this gradient just before that step */
      int *z = g_new (int, 2);
      z[0] = v->start;
      z[1] = node->id;
      g_ptr_array_add (g->grad_zero, z);
    } else {
      node->value = t;
    }
  }
  gsize param_bytes = 0;
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (n->op == CRIA_OP_PARAM && n->requires_grad) {
      n->grad = cria_tensor_new (CRIA_DTYPE_F32, n->n_dims, n->shape);
      param_bytes += cria_tensor_nbytes (n->grad);
    }
  }
  if (stats) {
    stats->arena_bytes = arena_bytes;
    stats->naive_bytes = naive;
    stats->param_grad_bytes = param_bytes;
    stats->n_buffers = bufs->len;
  }
  return TRUE;
}

static gboolean
check_planned (CriaGraph *g, GError **error)
{
  if (!cria_graph_check (g, error))
    return FALSE;
  if (!g->arena) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "the graph has not been planned");
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_graph_forward (CriaGraph *g, GError **error)
{
  if (!check_planned (g, error))
    return FALSE;
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (is_leaf (n)) {
      if (!n->value) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "input %s has no value",
                     n->name ? n->name : "(unnamed)");
        return FALSE;
      }
      continue;
    }
    if (!cria_backend_forward (g->backend, n, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
cria_graph_run_backward (CriaGraph *g, GError **error)
{
  if (!check_planned (g, error))
    return FALSE;
  if (!g->loss) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "no backward pass was derived");
    return FALSE;
  }
  guint n = g->nodes->len;
  guint z = 0;
  for (guint k = 0; k < g->n_backward; k++) {
    int step = (int) (n + k);
    for (; z < g->grad_zero->len; z++) {
      int *pair = g_ptr_array_index (g->grad_zero, z);
      if (pair[0] > step)
        break;
      CriaNode *node = g_ptr_array_index (g->nodes, pair[1]);
      cria_backend_zero_internal (g->backend, node->grad->data, cria_tensor_nbytes (node->grad));
      if (node == g->loss)
        ((float *) node->grad->data)[0] = 1.0f; /* d loss / d loss; a CE count gets none */
    }
    if (!cria_backend_backward (g->backend, g->backward_order[k], error))
      return FALSE;
  }
  return TRUE;
}

void
cria_graph_zero_grad (CriaGraph *g)
{
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (n->op == CRIA_OP_PARAM && n->grad)
      memset (n->grad->data, 0, cria_tensor_nbytes (n->grad));
  }
}
