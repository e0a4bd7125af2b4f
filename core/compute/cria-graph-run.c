/* cria-graph-run.c: the backward pass, the activation memory plan, and running.
 *
 * Steps are numbered: forward node i runs at step i (its id), the k-th action
 * of the backward schedule at step n_nodes + k: the backward of a node, or
 * with recomputation the forward of a node of a block run again just before
 * that block's backward, into a buffer of its own. A buffer lives from the
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
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
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

typedef enum { BUF_VALUE, BUF_GRAD, BUF_REDO } BufKind;

typedef struct {
  CriaNode *node;
  BufKind kind;
  int start, end;
  gsize bytes, offset;
} Buffer;

static int
buffer_cmp (gconstpointer pa, gconstpointer pb)
{
  const Buffer *a = pa, *b = pb;
  if (a->start != b->start)
    return a->start < b->start ? -1 : 1;
  return a->node->id != b->node->id ? a->node->id - b->node->id : (int) a->kind - (int) b->kind;
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

static void
clear_values (CriaTensor ***values, guint n)
{
  for (guint i = 0; *values && i < n; i++)
    cria_tensor_unref ((*values)[i]);
  g_clear_pointer (values, g_free);
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
    if (n->device && n->op == CRIA_OP_PARAM) {
      /* back to the tensor it was made with */
      cria_tensor_unref (n->value);
      n->value = g_steal_pointer (&n->param);
    } else if (n->device) {
      g_clear_pointer (&n->value, cria_tensor_unref); /* the device buffer of an input */
    }
    n->device = NULL;
  }
  clear_values (&g->fwd_values, g->nodes->len);
  clear_values (&g->re_values, g->nodes->len);
  g_clear_pointer (&g->schedule, g_free);
  g->n_schedule = 0;
  if (g->backend)
    cria_backend_free_internal (g->backend, g->arena);
  g->arena = NULL;
  g->backend = NULL;
}

/* A device backend: params are bound to their resident copies, inputs bound
 * already are uploaded, and cria_node_set_value uploads the later ones. */
static gboolean
bind_leaves (CriaGraph *g, CriaBackend *backend, GError **error)
{
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (!is_leaf (n))
      continue;
    n->device = backend;
    if (n->op == CRIA_OP_PARAM) {
      CriaTensor *t = cria_backend_get_resident (backend, n->value, error);
      if (!t) {
        g_prefix_error (error, "%s: ", n->name ? n->name : "param");
        return FALSE;
      }
      n->param = n->value;
      n->value = t;
    } else if (n->value && !n->value->device) {
      g_autoptr (CriaTensor) host = g_steal_pointer (&n->value);
      if (!cria_node_set_value (n, host, error))
        return FALSE;
    }
  }
  return TRUE;
}

/* When each node runs, per node id (-1: never): its backward, and its
 * recomputation. */
typedef struct {
  int *bstep, *rstep;
  gboolean *inner; /* a value only its own block reads: dropped after the forward */
} Steps;

static void
steps_clear (Steps *st)
{
  g_free (st->bstep);
  g_free (st->rstep);
  g_free (st->inner);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Steps, steps_clear)

/* The block of each node id, -1 outside any. */
static int *
block_of_nodes (CriaGraph *g)
{
  int *block = g_new (int, g->nodes->len);
  for (guint i = 0; i < g->nodes->len; i++)
    block[i] = -1;
  for (guint b = 0; b < g->blocks->len; b++) {
    const int *r = (const int *) (void *) g->blocks->data + 2 * b;
    for (int i = r[0]; i < r[1]; i++)
      block[i] = (int) b;
  }
  return block;
}

/* Orders the backward pass and, with recomputation, the recomputed values:
 * those of a block that its backward kernels read, directly or through other
 * recomputed values, run again just before the first backward of the block
 * (backward_order descends by id, so a block's backward steps are contiguous). */
static void
make_schedule (CriaGraph *g, Steps *st)
{
  guint n = g->nodes->len;
  st->bstep = g_new (int, n);
  st->rstep = g_new (int, n);
  st->inner = g_new0 (gboolean, n);
  for (guint i = 0; i < n; i++)
    st->bstep[i] = st->rstep[i] = -1;
  g_autofree gboolean *has_bwd = g_new0 (gboolean, n), *redo = g_new0 (gboolean, n);
  for (guint k = 0; k < g->n_backward; k++)
    has_bwd[g->backward_order[k]->id] = TRUE;
  cria_graph_end_block (g);
  g_autofree int *block = block_of_nodes (g);
  gboolean on = g->recompute && g->loss && g->blocks->len > 0;
  guint n_redo = 0;
  for (guint i = 0; on && i < n; i++) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    st->inner[i] = block[i] >= 0 && !is_leaf (c) && !c->keep && i != n - 1;
  }
  for (guint i = 0; on && i < n; i++) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    for (int s = 0; s < c->n_src; s++)
      if (c->src[s] && block[c->src[s]->id] != block[i])
        st->inner[c->src[s]->id] = FALSE;
  }
  for (guint i = n; on && i-- > 0;) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    redo[i] |= st->inner[i] && has_bwd[i];
    if (!redo[i] && !has_bwd[i])
      continue;
    for (int s = 0; s < c->n_src; s++)
      if (c->src[s] && st->inner[c->src[s]->id])
        redo[c->src[s]->id] = TRUE;
  }
  for (guint i = 0; i < n; i++)
    n_redo += redo[i];
  g->schedule = g_new (int, g->n_backward + n_redo + 1);
  g->n_schedule = 0;
  g_autofree gboolean *done = g_new0 (gboolean, g->blocks->len + 1);
  for (guint k = 0; k < g->n_backward; k++) {
    int id = g->backward_order[k]->id, b = block[id];
    if (on && b >= 0 && !done[b]) {
      done[b] = TRUE;
      const int *r = (const int *) (void *) g->blocks->data + 2 * b;
      for (int j = r[0]; j < r[1]; j++)
        if (redo[j]) {
          st->rstep[j] = (int) (n + g->n_schedule);
          g->schedule[g->n_schedule++] = -(j + 1);
        }
    }
    st->bstep[id] = (int) (n + g->n_schedule);
    g->schedule[g->n_schedule++] = id;
  }
}

/* Matmul epilogues: the chain of nodes after a matmul, each the only reader
 * of the one before (not an output), whose other operands exist before the
 * matmul runs, as far as the backend fuses them. With recomputation, a chain
 * stops where a node is recomputed and the matmul is not, or the reverse,
 * since the whole chain runs again together. */
static void
plan_epilogues (CriaGraph *g, CriaBackend *backend, const Steps *st)
{
  guint n = g->nodes->len;
  g_autofree CriaNode **reader = g_new0 (CriaNode *, n);
  for (guint i = 0; i < n; i++) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    c->n_epilogue = 0;
    c->fused_into = NULL;
    for (int s = 0; s < c->n_src; s++)
      if (c->src[s])
        reader[c->src[s]->id] = c;
  }
  for (guint i = 0; i < n; i++) {
    CriaNode *m = g_ptr_array_index (g->nodes, i), *last = m;
    while (m->op == CRIA_OP_MATMUL && m->n_epilogue < CRIA_MAX_EPILOGUE) {
      CriaNode *next = reader[last->id];
      if (last->consumers != 1 || last->keep || last->id == (int) n - 1 || !next ||
          (st->rstep[next->id] >= 0) != (st->rstep[m->id] >= 0))
        break;
      gboolean ready = TRUE;
      for (int s = 0; s < next->n_src; s++)
        ready &= !next->src[s] || next->src[s] == last || is_leaf (next->src[s]) || next->src[s]->id < m->id;
      if (!ready || !cria_backend_fuses (backend, m, next))
        break;
      m->epilogue[m->n_epilogue++] = next;
      next->fused_into = m;
      last = next;
    }
  }
}

/* A matmul with an epilogue never stores its product (CriaNode.epilogue):
 * its value is a view of the first epilogue node's (as large or larger, the
 * one reader of the product), and takes no memory of its own. */
static gboolean
product_unstored (CriaBackend *backend, const CriaNode *m)
{
  if (m->n_epilogue == 0)
    return FALSE;
  const CriaNode *e = m->epilogue[0];
  return cria_dtype_bytes (cria_backend_value_dtype (backend, m), (gsize) cria_shape_numel (m->n_dims, m->shape)) <=
         cria_dtype_bytes (cria_backend_value_dtype (backend, e), (gsize) cria_shape_numel (e->n_dims, e->shape));
}

static CriaTensor *
view_of (CriaBackend *backend, const CriaNode *m, const CriaTensor *t)
{
  CriaTensor *v = cria_tensor_new_borrowed (cria_backend_value_dtype (backend, m), m->n_dims, m->shape, t->data, NULL,
                                            NULL);
  v->device = t->device;
  return v;
}

static void
extend (GArray *bufs, int index, int step)
{
  Buffer *v = &g_array_index (bufs, Buffer, index);
  v->end = MAX (v->end, step);
}

static GArray *
collect_buffers (CriaGraph *g, CriaBackend *backend, const Steps *st)
{
  guint n = g->nodes->len;
  const int *bstep = st->bstep, *rstep = st->rstep;
  GArray *bufs = g_array_new (FALSE, TRUE, sizeof (Buffer));
  g_autofree int *vbuf = g_new (int, n), *rbuf = g_new (int, n);
  for (guint i = 0; i < n; i++) {
    CriaNode *node = g_ptr_array_index (g->nodes, i);
    vbuf[i] = rbuf[i] = -1;
    if (is_leaf (node) || product_unstored (backend, node))
      continue;
    /* an epilogue's value is written when its matmul runs */
    int first = node->fused_into ? node->fused_into->id : (int) i;
    Buffer v = { node, BUF_VALUE, first, (int) i, 0, 0 };
    /* the backend may store an f32 value in bf16 (value_dtype) */
    v.bytes = cria_dtype_bytes (cria_backend_value_dtype (backend, node),
                                (gsize) cria_shape_numel (node->n_dims, node->shape));
    if (node->keep || i == n - 1)
      v.end = FOREVER;
    if (!st->inner[i])
      v.end = MAX (v.end, bstep[i]);
    vbuf[i] = (int) bufs->len;
    g_array_append_val (bufs, v);
    if (rstep[i] >= 0) {
      int redo = node->fused_into ? rstep[node->fused_into->id] : rstep[i];
      Buffer r = { node, BUF_REDO, redo, MAX (rstep[i], bstep[i]), v.bytes, 0 };
      rbuf[i] = (int) bufs->len;
      g_array_append_val (bufs, r);
    }
  }
  /* Readers of each value: the forward of its consumers, their recomputation
   * and their backward (the last two read the recomputed copy, if any). */
  for (guint i = 0; i < n; i++) {
    CriaNode *c = g_ptr_array_index (g->nodes, i);
    for (int s = 0; s < c->n_src; s++) {
      CriaNode *src = c->src[s];
      if (!src || vbuf[src->id] < 0)
        continue;
      extend (bufs, vbuf[src->id], (int) i);
      int later = rbuf[src->id] >= 0 ? rbuf[src->id] : vbuf[src->id];
      if (rstep[i] >= 0)
        extend (bufs, later, rstep[i]);
      if (bstep[i] >= 0)
        extend (bufs, later, bstep[i]);
    }
  }
  /* Gradients of activations: from the first backward writing one (the loss's
   * is seeded just before the first step) to the node's own backward. */
  for (guint k = 0; k < g->n_backward; k++) {
    CriaNode *node = g->backward_order[k];
    Buffer gb = { node, BUF_GRAD, bstep[node->id], bstep[node->id], 0, 0 };
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
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (backend != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!cria_graph_check (g, error))
    return FALSE;
  if (g->nodes->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "the graph is empty");
    return FALSE;
  }
  /* Before any memory or compute: an op the backend lacks is one error. */
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *node = g_ptr_array_index (g->nodes, i);
    if (node->op != CRIA_OP_INPUT && node->op != CRIA_OP_PARAM && !cria_backend_supports (backend, node, error))
      return FALSE;
  }
  cria_graph_release_plan (g);
  if (!cria_backend_is_host (backend) && !bind_leaves (g, backend, error)) {
    cria_graph_release_plan (g);
    return FALSE;
  }
  g_auto (Steps) st = { 0 };
  make_schedule (g, &st);
  plan_epilogues (g, backend, &st);
  g_autoptr (GArray) bufs = collect_buffers (g, backend, &st);
  gsize naive = 0;
  for (guint b = 0; b < bufs->len; b++)
    naive += g_array_index (bufs, Buffer, b).bytes;
  gsize arena_bytes = assign_offsets (bufs);
  g->arena = cria_backend_alloc_internal (backend, MAX (arena_bytes, ALIGN), error);
  if (!g->arena) {
    cria_graph_release_plan (g);
    return FALSE;
  }
  g->backend = backend;
  gpointer device = cria_backend_is_host (backend) ? NULL : backend;
  g->grad_zero = g_ptr_array_new_with_free_func (g_free);
  for (guint b = 0; b < bufs->len; b++) {
    Buffer *v = &g_array_index (bufs, Buffer, b);
    CriaNode *node = v->node;
    CriaDType dtype = v->kind == BUF_GRAD ? CRIA_DTYPE_F32 : cria_backend_value_dtype (backend, node);
    CriaTensor *t = cria_tensor_new_borrowed (dtype, node->n_dims, node->shape, (char *) g->arena + v->offset, NULL,
                                              NULL);
    t->device = device;
    if (v->kind == BUF_GRAD) {
      node->grad = t;
      /* (step, node) pairs: zero this gradient just before that step */
      int *z = g_new (int, 2);
      z[0] = v->start;
      z[1] = node->id;
      g_ptr_array_add (g->grad_zero, z);
      continue;
    }
    if (st.rstep[node->id] >= 0 && !g->fwd_values) {
      g->fwd_values = g_new0 (CriaTensor *, g->nodes->len);
      g->re_values = g_new0 (CriaTensor *, g->nodes->len);
    }
    if (v->kind == BUF_REDO) {
      g->re_values[node->id] = t;
    } else {
      node->value = t;
      if (st.rstep[node->id] >= 0)
        g->fwd_values[node->id] = cria_tensor_ref (t);
    }
  }
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *m = g_ptr_array_index (g->nodes, i);
    if (is_leaf (m) || !product_unstored (backend, m))
      continue;
    const CriaNode *e = m->epilogue[0];
    m->value = view_of (backend, m, e->value);
    if (g->fwd_values && g->fwd_values[e->id])
      g->fwd_values[m->id] = cria_tensor_ref (m->value);
    if (g->re_values && g->re_values[e->id])
      g->re_values[m->id] = view_of (backend, m, g->re_values[e->id]);
  }
  gsize param_bytes = 0;
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (n->op == CRIA_OP_PARAM && n->requires_grad) {
      n->grad = cria_backend_tensor_new (backend, CRIA_DTYPE_F32, n->n_dims, n->shape, error);
      if (!n->grad) {
        cria_graph_release_plan (g);
        return FALSE;
      }
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

/* A recomputed node's kernels read and write whichever of its two buffers
 * is current: the forward pass's, or the recomputation's. */
static void
use_value (CriaNode *n, CriaTensor *t)
{
  if (n->value != t) {
    cria_tensor_unref (n->value);
    n->value = cria_tensor_ref (t);
  }
}

gboolean
cria_graph_forward (CriaGraph *g, GError **error)
{
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
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
    if (n->fused_into) /* computed with its matmul */
      continue;
    for (int e = -1; g->fwd_values && e < n->n_epilogue; e++) {
      CriaNode *v = e < 0 ? n : n->epilogue[e];
      if (g->fwd_values[v->id])
        use_value (v, g->fwd_values[v->id]);
    }
    if (!cria_backend_forward (g->backend, n, error))
      return FALSE;
  }
  /* kernels may be queued: their errors surface here, once per pass */
  return cria_backend_synchronize (g->backend, error);
}

static gboolean
run_backward (CriaGraph *g, const float *seed, gsize n_seed, GError **error)
{
  if (!check_planned (g, error))
    return FALSE;
  if (!g->loss) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "no backward pass was derived");
    return FALSE;
  }
  if (seed && n_seed != (gsize) cria_shape_numel (g->loss->n_dims, g->loss->shape)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "a seed of %" G_GSIZE_FORMAT " values for a loss of %" G_GINT64_FORMAT, n_seed,
                 cria_shape_numel (g->loss->n_dims, g->loss->shape));
    return FALSE;
  }
  guint n = g->nodes->len;
  guint z = 0;
  for (guint k = 0; k < g->n_schedule; k++) {
    int step = (int) (n + k);
    for (; z < g->grad_zero->len; z++) {
      int *pair = g_ptr_array_index (g->grad_zero, z);
      if (pair[0] > step)
        break;
      CriaNode *node = g_ptr_array_index (g->nodes, pair[1]);
      cria_backend_zero_internal (g->backend, node->grad->data, cria_tensor_nbytes (node->grad));
      static const float one = 1.0f; /* d loss / d loss; a CE count gets none */
      if (node == g->loss && !cria_backend_upload_internal (g->backend, node->grad->data, seed ? seed : &one,
                                                            (seed ? n_seed : 1) * sizeof (float), error))
        return FALSE;
    }
    int id = g->schedule[k];
    if (id < 0) {
      CriaNode *node = g_ptr_array_index (g->nodes, -id - 1);
      if (node->fused_into) /* recomputed with its matmul, which switched its buffer */
        continue;
      use_value (node, g->re_values[-id - 1]);
      for (int e = 0; e < node->n_epilogue; e++)
        use_value (node->epilogue[e], g->re_values[node->epilogue[e]->id]);
      if (!cria_backend_forward (g->backend, node, error))
        return FALSE;
    } else if (!cria_backend_backward (g->backend, g_ptr_array_index (g->nodes, id), error)) {
      return FALSE;
    }
  }
  return cria_backend_synchronize (g->backend, error);
}

gboolean
cria_graph_run_backward (CriaGraph *g, GError **error)
{
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return run_backward (g, NULL, 0, error);
}

gboolean
cria_graph_run_backward_seeded (CriaGraph *g, const float *seed, gsize n, GError **error)
{
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (seed != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return run_backward (g, seed, n, error);
}

void
cria_graph_zero_grad (CriaGraph *g)
{
  g_return_if_fail (g != NULL);
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (n->op == CRIA_OP_PARAM && n->grad)
      cria_backend_zero_internal (g->backend, n->grad->data, cria_tensor_nbytes (n->grad));
  }
}
