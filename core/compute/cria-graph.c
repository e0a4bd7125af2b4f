/* cria-graph.c: building graphs of core ops, with the shape rule of each op.
 *
 * Shape errors are programming errors of a model or a checkpoint that
 * disagrees with its config; the first one is kept in the graph and every
 * later builder returns NULL, so a model checks once after building. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include "cria-graph-private.h"

static const char *const op_names[] = {
  "input",   "param",  "matmul", "embedding", "layernorm",  "rmsnorm",    "rope",  "attention",
  "gelu",    "silu",   "swiglu", "softmax",   "add",        "mul",        "scale", "reshape",
  "permute", "concat", "slice",  "dropout",   "lm_head_ce", "dequantize",
};
/* A new op needs its name here (and a kernel in each backend's table). */
G_STATIC_ASSERT (G_N_ELEMENTS (op_names) == CRIA_N_OPS);

const char *
cria_op_name (CriaOp op)
{
  return (guint) op < CRIA_N_OPS ? op_names[op] : "unknown";
}

CriaGraph *
cria_graph_new (void)
{
  CriaGraph *g = g_new0 (CriaGraph, 1);
  g->nodes = g_ptr_array_new ();
  g->blocks = g_array_new (FALSE, FALSE, 2 * sizeof (int));
  g->open_block = -1;
  return g;
}

static void
node_free (CriaNode *n)
{
  g_free (n->name);
  cria_tensor_unref (n->value);
  cria_tensor_unref (n->grad);
  g_free (n);
}

void
cria_graph_free (CriaGraph *g)
{
  if (!g)
    return;
  /* the plan's buffers are views held by the nodes: release them first */
  cria_graph_release_plan (g);
  for (guint i = 0; i < g->nodes->len; i++)
    node_free (g_ptr_array_index (g->nodes, i));
  g_ptr_array_unref (g->nodes);
  g_array_unref (g->blocks);
  g_clear_error (&g->error);
  g_free (g->backward_order);
  g_free (g);
}

const GError *
cria_graph_get_error (const CriaGraph *g)
{
  g_return_val_if_fail (g != NULL, NULL);
  return g->error;
}

gboolean
cria_graph_check (const CriaGraph *g, GError **error)
{
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!g->error)
    return TRUE;
  g_propagate_error (error, g_error_copy (g->error));
  return FALSE;
}

guint
cria_graph_n_nodes (const CriaGraph *g)
{
  g_return_val_if_fail (g != NULL, 0);
  return g->nodes->len;
}

CriaNode *
cria_graph_node (const CriaGraph *g, guint i)
{
  g_return_val_if_fail (g != NULL, NULL);
  return i < g->nodes->len ? g_ptr_array_index (g->nodes, i) : NULL;
}

CriaNode *
cria_graph_find (const CriaGraph *g, const char *name)
{
  g_return_val_if_fail (g != NULL, NULL);
  for (guint i = 0; i < g->nodes->len; i++) {
    CriaNode *n = g_ptr_array_index (g->nodes, i);
    if (n->name && strcmp (n->name, name) == 0)
      return n;
  }
  return NULL;
}

CriaNode *
cria_node_set_name (CriaNode *node, const char *name)
{
  if (node) {
    g_free (node->name);
    node->name = g_strdup (name);
  }
  return node;
}

void
cria_graph_end_block (CriaGraph *g)
{
  g_return_if_fail (g != NULL);
  int range[2] = { g->open_block, (int) g->nodes->len };
  if (g->open_block >= 0 && range[1] > range[0])
    g_array_append_val (g->blocks, range);
  g->open_block = -1;
}

void
cria_graph_begin_block (CriaGraph *g)
{
  g_return_if_fail (g != NULL);
  cria_graph_end_block (g);
  g->open_block = (int) g->nodes->len;
}

guint
cria_graph_n_blocks (const CriaGraph *g)
{
  g_return_val_if_fail (g != NULL, 0);
  return g->blocks->len + (g->open_block >= 0 && (int) g->nodes->len > g->open_block);
}

void
cria_graph_set_recompute (CriaGraph *g, gboolean recompute)
{
  g_return_if_fail (g != NULL);
  g->recompute = recompute;
}

void
cria_graph_mark_output (CriaGraph *g, CriaNode *node)
{
  if (node)
    node->keep = TRUE;
}

G_GNUC_PRINTF (3, 4) static CriaNode *fail (CriaGraph *g, CriaOp op, const char *format, ...)
{
  if (!g->error) {
    va_list args;
    va_start (args, format);
    g_autofree char *msg = g_strdup_vprintf (format, args);
    va_end (args);
    g->error = g_error_new (CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: %s", cria_op_name (op), msg);
  }
  return NULL;
}

CriaNode *
cria_graph_fail (CriaGraph *g, const char *format, ...)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (format != NULL, NULL);
  if (!g->error) {
    va_list args;
    va_start (args, format);
    g->error = g_error_new_valist (CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, format, args);
    va_end (args);
  }
  return NULL;
}

static char *
shape_str (const CriaNode *n)
{
  return cria_shape_to_string (n->n_dims, n->shape);
}

static CriaNode *
add_node (CriaGraph *g, CriaOp op, CriaDType dtype, int n_dims, const gint64 *shape, CriaNode **src, int n_src)
{
  if (cria_shape_numel (n_dims, shape) == 0) {
    g_autofree char *s = cria_shape_to_string (n_dims, shape);
    return fail (g, op, "invalid shape %s", s);
  }
  CriaNode *n = g_new0 (CriaNode, 1);
  n->op = op;
  n->dtype = dtype;
  n->n_dims = n_dims;
  for (int i = 0; i < CRIA_MAX_DIMS; i++)
    n->shape[i] = i < n_dims ? shape[i] : 1;
  for (int i = 0; i < n_src; i++) {
    n->src[i] = src[i];
    if (src[i])
      src[i]->consumers++;
  }
  n->n_src = n_src;
  n->id = (int) g->nodes->len;
  g_ptr_array_add (g->nodes, n);
  return n;
}

/* Checks the sources of a builder: none NULL, float or integer as needed. */
static gboolean
check_src (CriaGraph *g, CriaOp op, CriaNode **src, int n, guint32 int_mask)
{
  if (g->error)
    return FALSE;
  for (int i = 0; i < n; i++) {
    if (!src[i]) {
      fail (g, op, "input %d is missing", i);
      return FALSE;
    }
    gboolean want_int = (int_mask >> i) & 1u;
    gboolean is_int = src[i]->dtype == CRIA_DTYPE_I32;
    gboolean is_float = src[i]->dtype == CRIA_DTYPE_F32 || src[i]->dtype == CRIA_DTYPE_BF16 ||
                        src[i]->dtype == CRIA_DTYPE_F16;
    if (want_int ? !is_int : !is_float) {
      fail (g, op, "input %d is %s, expected %s", i, cria_dtype_name (src[i]->dtype),
            want_int ? "i32" : "a float type");
      return FALSE;
    }
  }
  return TRUE;
}

/* Activations are computed in f32; only params may be stored narrower. */
static gboolean
check_f32 (CriaGraph *g, CriaOp op, CriaNode *n, const char *what)
{
  if (n->dtype == CRIA_DTYPE_F32)
    return TRUE;
  fail (g, op, "%s is %s; only weights may be bf16 or f16", what, cria_dtype_name (n->dtype));
  return FALSE;
}

CriaNode *
cria_graph_input (CriaGraph *g, const char *name, CriaDType dtype, int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (shape != NULL, NULL);
  if (g->error)
    return NULL;
  if (n_dims < 1 || n_dims > CRIA_MAX_DIMS)
    return fail (g, CRIA_OP_INPUT, "%s: %d dimensions (1 to %d)", name, n_dims, CRIA_MAX_DIMS);
  if (dtype != CRIA_DTYPE_F32 && dtype != CRIA_DTYPE_I32)
    return fail (g, CRIA_OP_INPUT, "%s: inputs are f32 or i32, not %s", name, cria_dtype_name (dtype));
  return cria_node_set_name (add_node (g, CRIA_OP_INPUT, dtype, n_dims, shape, NULL, 0), name);
}

CriaNode *
cria_graph_param (CriaGraph *g, const char *name, CriaTensor *tensor, gboolean trainable)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (tensor != NULL, NULL);
  if (g->error)
    return NULL;
  if (tensor->dtype == CRIA_DTYPE_NF4 && !tensor->nf4)
    return fail (g, CRIA_OP_PARAM, "%s: an nf4 weight without its quantization state", name);
  if (tensor->dtype != CRIA_DTYPE_F32 && tensor->dtype != CRIA_DTYPE_BF16 && tensor->dtype != CRIA_DTYPE_F16 &&
      tensor->dtype != CRIA_DTYPE_NF4)
    return fail (g, CRIA_OP_PARAM, "%s: weights are f32, bf16, f16 or nf4, not %s", name,
                 cria_dtype_name (tensor->dtype));
  if (trainable && tensor->dtype != CRIA_DTYPE_F32)
    return fail (g, CRIA_OP_PARAM, "%s: a trainable weight must be f32", name);
  CriaNode *n = add_node (g, CRIA_OP_PARAM, tensor->dtype, tensor->n_dims, tensor->shape, NULL, 0);
  if (!n)
    return NULL;
  n->value = cria_tensor_ref (tensor);
  n->trainable = trainable;
  return cria_node_set_name (n, name);
}

gboolean
cria_node_set_value (CriaNode *node, CriaTensor *tensor, GError **error)
{
  g_return_val_if_fail (node != NULL, FALSE);
  g_return_val_if_fail (tensor != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  gboolean same = tensor->dtype == node->dtype && tensor->n_dims == node->n_dims;
  for (int i = 0; same && i < node->n_dims; i++)
    same = tensor->shape[i] == node->shape[i];
  if (!same) {
    g_autofree char *want = shape_str (node);
    g_autofree char *got = cria_shape_to_string (tensor->n_dims, tensor->shape);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: expected %s %s, got %s %s",
                 node->name ? node->name : cria_op_name (node->op), cria_dtype_name (node->dtype), want,
                 cria_dtype_name (tensor->dtype), got);
    return FALSE;
  }
  if (node->device && !tensor->device) {
    /* a graph planned on a device backend: the data goes up now */
    if (node->op == CRIA_OP_PARAM) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: a param of a planned graph is not rebound",
                   node->name ? node->name : cria_op_name (node->op));
      return FALSE;
    }
    if (!node->value || !node->value->device) {
      CriaTensor *t = cria_backend_tensor_new (node->device, node->dtype, node->n_dims, node->shape, error);
      if (!t)
        return FALSE;
      cria_tensor_unref (node->value);
      node->value = t;
    }
    return cria_backend_upload_internal (node->device, node->value->data, tensor->data, cria_tensor_nbytes (tensor),
                                         error);
  }
  cria_tensor_ref (tensor);
  cria_tensor_unref (node->value);
  node->value = tensor;
  return TRUE;
}

CriaTensor *
cria_node_get_param_tensor (const CriaNode *node)
{
  g_return_val_if_fail (node != NULL, NULL);
  g_return_val_if_fail (node->op == CRIA_OP_PARAM, NULL);
  return node->param ? node->param : node->value;
}

CriaNode *
cria_matmul (CriaGraph *g, CriaNode *a, CriaNode *b, gboolean trans_a, gboolean trans_b)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { a, b };
  /* an nf4 b (a frozen base weight) is checked here, the rest as usual */
  gboolean b_nf4 = b && b->dtype == CRIA_DTYPE_NF4;
  if (!check_src (g, CRIA_OP_MATMUL, src, b_nf4 ? 1 : 2, 0) || !check_f32 (g, CRIA_OP_MATMUL, a, "a"))
    return NULL;
  if (b_nf4 && (b->op != CRIA_OP_PARAM || b->n_dims != 2))
    return fail (g, CRIA_OP_MATMUL, "an nf4 b must be a 2-D param");
  g_autofree char *sa = shape_str (a), *sb = shape_str (b);
  if (a->n_dims < 2 || b->n_dims < 2 || (b->n_dims != 2 && b->n_dims != a->n_dims))
    return fail (g, CRIA_OP_MATMUL, "cannot multiply %s by %s", sa, sb);
  int ra = a->n_dims, rb = b->n_dims;
  for (int i = 0; rb > 2 && i < ra - 2; i++)
    if (a->shape[i] != b->shape[i])
      return fail (g, CRIA_OP_MATMUL, "batch dims differ: %s and %s", sa, sb);
  gint64 m = trans_a ? a->shape[ra - 1] : a->shape[ra - 2];
  gint64 ka = trans_a ? a->shape[ra - 2] : a->shape[ra - 1];
  gint64 kb = trans_b ? b->shape[rb - 1] : b->shape[rb - 2];
  gint64 n = trans_b ? b->shape[rb - 2] : b->shape[rb - 1];
  if (ka != kb)
    return fail (g, CRIA_OP_MATMUL, "inner dims differ: %s%s by %s%s", sa, trans_a ? "^T" : "", sb,
                 trans_b ? "^T" : "");
  gint64 shape[CRIA_MAX_DIMS];
  memcpy (shape, a->shape, sizeof shape);
  shape[ra - 2] = m;
  shape[ra - 1] = n;
  CriaNode *out = add_node (g, CRIA_OP_MATMUL, CRIA_DTYPE_F32, ra, shape, src, 2);
  if (out) {
    out->iparam[0] = trans_a;
    out->iparam[1] = trans_b;
  }
  return out;
}

CriaNode *
cria_dequantize (CriaGraph *g, CriaNode *w)
{
  g_return_val_if_fail (g != NULL, NULL);
  if (g->error)
    return NULL;
  if (!w)
    return fail (g, CRIA_OP_DEQUANTIZE, "input 0 is missing");
  if (w->dtype != CRIA_DTYPE_NF4 || w->op != CRIA_OP_PARAM)
    return fail (g, CRIA_OP_DEQUANTIZE, "input 0 is %s %s, expected an nf4 param", cria_dtype_name (w->dtype),
                 cria_op_name (w->op));
  CriaNode *src[] = { w };
  return add_node (g, CRIA_OP_DEQUANTIZE, CRIA_DTYPE_F32, w->n_dims, w->shape, src, 1);
}

CriaNode *
cria_embedding (CriaGraph *g, CriaNode *ids, CriaNode *table)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { ids, table };
  if (!check_src (g, CRIA_OP_EMBEDDING, src, 2, 1u))
    return NULL;
  if (table->n_dims != 2 || ids->n_dims > 3)
    return fail (g, CRIA_OP_EMBEDDING, "ids of %d dims and a table of %d dims (want <= 3 and 2)", ids->n_dims,
                 table->n_dims);
  gint64 shape[CRIA_MAX_DIMS];
  memcpy (shape, ids->shape, sizeof shape);
  shape[ids->n_dims] = table->shape[1];
  return add_node (g, CRIA_OP_EMBEDDING, CRIA_DTYPE_F32, ids->n_dims + 1, shape, src, 2);
}

/* Checks that w (and b) are vectors over the last dim of x. */
static CriaNode *
norm_node (CriaGraph *g, CriaOp op, CriaNode **src, int n_src, float eps)
{
  if (!check_src (g, op, src, n_src, 0) || !check_f32 (g, op, src[0], "x"))
    return NULL;
  gint64 d = src[0]->shape[src[0]->n_dims - 1];
  for (int i = 1; i < n_src; i++)
    if (src[i]->n_dims != 1 || src[i]->shape[0] != d) {
      g_autofree char *sx = shape_str (src[0]), *sw = shape_str (src[i]);
      return fail (g, op, "weight %s does not match the last dim of %s", sw, sx);
    }
  CriaNode *out = add_node (g, op, CRIA_DTYPE_F32, src[0]->n_dims, src[0]->shape, src, n_src);
  if (out)
    out->fparam[0] = eps;
  return out;
}

CriaNode *
cria_layernorm (CriaGraph *g, CriaNode *x, CriaNode *w, CriaNode *b, float eps)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { x, w, b };
  return norm_node (g, CRIA_OP_LAYERNORM, src, 3, eps);
}

CriaNode *
cria_rmsnorm (CriaGraph *g, CriaNode *x, CriaNode *w, float eps)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { x, w };
  return norm_node (g, CRIA_OP_RMSNORM, src, 2, eps);
}

CriaNode *
cria_rope (CriaGraph *g, CriaNode *x, CriaNode *positions, CriaNode *inv_freq)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { x, positions, inv_freq };
  if (!check_src (g, CRIA_OP_ROPE, src, 3, 2u) || !check_f32 (g, CRIA_OP_ROPE, x, "x") ||
      !check_f32 (g, CRIA_OP_ROPE, inv_freq, "inv_freq"))
    return NULL;
  g_autofree char *sx = shape_str (x), *sp = shape_str (positions), *sf = shape_str (inv_freq);
  if (x->n_dims != 4 || x->shape[3] % 2 || positions->n_dims != 2 || positions->shape[0] != x->shape[0] ||
      positions->shape[1] != x->shape[1] || inv_freq->n_dims != 1 || inv_freq->shape[0] * 2 != x->shape[3])
    return fail (g, CRIA_OP_ROPE, "x %s, positions %s and inv_freq %s do not fit [B,T,H,D], [B,T], [D/2]", sx, sp, sf);
  return add_node (g, CRIA_OP_ROPE, CRIA_DTYPE_F32, 4, x->shape, src, 3);
}

CriaNode *
cria_attention (CriaGraph *g, CriaNode *q, CriaNode *k, CriaNode *v, CriaNode *segments, float scale)
{
  g_return_val_if_fail (g != NULL, NULL);
  return cria_attention_window (g, q, k, v, segments, scale, 0);
}

CriaNode *
cria_attention_window (CriaGraph *g, CriaNode *q, CriaNode *k, CriaNode *v, CriaNode *segments, float scale,
                       gint64 window)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { q, k, v, segments };
  int n_src = segments ? 4 : 3;
  if (!check_src (g, CRIA_OP_ATTENTION, src, n_src, 8u) || !check_f32 (g, CRIA_OP_ATTENTION, q, "q") ||
      !check_f32 (g, CRIA_OP_ATTENTION, k, "k") || !check_f32 (g, CRIA_OP_ATTENTION, v, "v"))
    return NULL;
  g_autofree char *sq = shape_str (q), *sk = shape_str (k), *sv = shape_str (v);
  gboolean ok = q->n_dims == 4 && k->n_dims == 4 && v->n_dims == 4;
  for (int i = 0; ok && i < 4; i++)
    ok = k->shape[i] == v->shape[i];
  ok = ok && q->shape[0] == k->shape[0] && q->shape[3] == k->shape[3] && k->shape[1] >= q->shape[1] &&
       q->shape[2] % k->shape[2] == 0;
  if (!ok)
    return fail (g, CRIA_OP_ATTENTION, "q %s, k %s, v %s do not fit [B,Tq,Hq,D], [B,Tk,Hkv,D]", sq, sk, sv);
  if (segments && (segments->n_dims != 2 || segments->shape[0] != k->shape[0] || segments->shape[1] != k->shape[1])) {
    g_autofree char *ss = shape_str (segments);
    return fail (g, CRIA_OP_ATTENTION, "segments %s, expected [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", ss,
                 k->shape[0], k->shape[1]);
  }
  CriaNode *out = add_node (g, CRIA_OP_ATTENTION, CRIA_DTYPE_F32, 4, q->shape, src, n_src);
  if (window < 0)
    return fail (g, CRIA_OP_ATTENTION, "a sliding window of %" G_GINT64_FORMAT " keys", window);
  if (out) {
    out->fparam[0] = scale;
    out->iparam[0] = window;
  }
  return out;
}

static CriaNode *
unary (CriaGraph *g, CriaOp op, CriaNode *x)
{
  CriaNode *src[] = { x };
  if (!check_src (g, op, src, 1, 0) || !check_f32 (g, op, x, "x"))
    return NULL;
  return add_node (g, op, CRIA_DTYPE_F32, x->n_dims, x->shape, src, 1);
}

CriaNode *
cria_gelu (CriaGraph *g, CriaNode *x)
{
  g_return_val_if_fail (g != NULL, NULL);
  return unary (g, CRIA_OP_GELU, x);
}

CriaNode *
cria_silu (CriaGraph *g, CriaNode *x)
{
  g_return_val_if_fail (g != NULL, NULL);
  return unary (g, CRIA_OP_SILU, x);
}

CriaNode *
cria_softmax (CriaGraph *g, CriaNode *x)
{
  g_return_val_if_fail (g != NULL, NULL);
  return unary (g, CRIA_OP_SOFTMAX, x);
}

CriaNode *
cria_scale (CriaGraph *g, CriaNode *a, float s)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *out = unary (g, CRIA_OP_SCALE, a);
  if (out)
    out->fparam[0] = s;
  return out;
}

CriaNode *
cria_dropout (CriaGraph *g, CriaNode *a, float p, guint64 seed)
{
  g_return_val_if_fail (g != NULL, NULL);
  if (!(p >= 0.0f && p < 1.0f))
    return fail (g, CRIA_OP_DROPOUT, "probability %g is not in [0, 1)", (double) p);
  CriaNode *out = unary (g, CRIA_OP_DROPOUT, a);
  if (out) {
    out->fparam[0] = p;
    out->iparam[0] = (gint64) seed;
  }
  return out;
}

/* b's shape must be a suffix of a's: a bias over the last dim, or equal shapes. */
static CriaNode *
broadcast_binary (CriaGraph *g, CriaOp op, CriaNode *a, CriaNode *b)
{
  CriaNode *src[] = { a, b };
  if (!check_src (g, op, src, 2, 0) || !check_f32 (g, op, a, "a"))
    return NULL;
  gboolean ok = b->n_dims <= a->n_dims;
  for (int i = 0; ok && i < b->n_dims; i++)
    ok = b->shape[b->n_dims - 1 - i] == a->shape[a->n_dims - 1 - i];
  if (!ok) {
    g_autofree char *sa = shape_str (a), *sb = shape_str (b);
    return fail (g, op, "%s does not broadcast to %s", sb, sa);
  }
  return add_node (g, op, CRIA_DTYPE_F32, a->n_dims, a->shape, src, 2);
}

CriaNode *
cria_add (CriaGraph *g, CriaNode *a, CriaNode *b)
{
  g_return_val_if_fail (g != NULL, NULL);
  return broadcast_binary (g, CRIA_OP_ADD, a, b);
}

CriaNode *
cria_mul (CriaGraph *g, CriaNode *a, CriaNode *b)
{
  g_return_val_if_fail (g != NULL, NULL);
  return broadcast_binary (g, CRIA_OP_MUL, a, b);
}

CriaNode *
cria_swiglu (CriaGraph *g, CriaNode *gate, CriaNode *up)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { gate, up };
  if (!check_src (g, CRIA_OP_SWIGLU, src, 2, 0) || !check_f32 (g, CRIA_OP_SWIGLU, gate, "gate") ||
      !check_f32 (g, CRIA_OP_SWIGLU, up, "up"))
    return NULL;
  if (cria_shape_numel (gate->n_dims, gate->shape) != cria_shape_numel (up->n_dims, up->shape) ||
      gate->n_dims != up->n_dims) {
    g_autofree char *sa = shape_str (gate), *sb = shape_str (up);
    return fail (g, CRIA_OP_SWIGLU, "gate %s and up %s differ", sa, sb);
  }
  return add_node (g, CRIA_OP_SWIGLU, CRIA_DTYPE_F32, gate->n_dims, gate->shape, src, 2);
}

CriaNode *
cria_reshape (CriaGraph *g, CriaNode *a, int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (shape != NULL, NULL);
  CriaNode *src[] = { a };
  if (!check_src (g, CRIA_OP_RESHAPE, src, 1, 0) || !check_f32 (g, CRIA_OP_RESHAPE, a, "a"))
    return NULL;
  if (n_dims < 1 || n_dims > CRIA_MAX_DIMS ||
      cria_shape_numel (n_dims, shape) != cria_shape_numel (a->n_dims, a->shape)) {
    g_autofree char *sa = shape_str (a);
    g_autofree char *sb = n_dims >= 1 && n_dims <= CRIA_MAX_DIMS ? cria_shape_to_string (n_dims, shape)
                                                                 : g_strdup ("?");
    return fail (g, CRIA_OP_RESHAPE, "cannot view %s as %s", sa, sb);
  }
  return add_node (g, CRIA_OP_RESHAPE, CRIA_DTYPE_F32, n_dims, shape, src, 1);
}

CriaNode *
cria_permute (CriaGraph *g, CriaNode *a, const int *perm)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (perm != NULL, NULL);
  CriaNode *src[] = { a };
  if (!check_src (g, CRIA_OP_PERMUTE, src, 1, 0) || !check_f32 (g, CRIA_OP_PERMUTE, a, "a"))
    return NULL;
  gint64 shape[CRIA_MAX_DIMS];
  guint seen = 0;
  for (int i = 0; i < a->n_dims; i++) {
    if (perm[i] < 0 || perm[i] >= a->n_dims || (seen & (1u << perm[i])))
      return fail (g, CRIA_OP_PERMUTE, "not a permutation of %d dims", a->n_dims);
    seen |= 1u << perm[i];
    shape[i] = a->shape[perm[i]];
  }
  CriaNode *out = add_node (g, CRIA_OP_PERMUTE, CRIA_DTYPE_F32, a->n_dims, shape, src, 1);
  for (int i = 0; out && i < a->n_dims; i++)
    out->iparam[i] = perm[i];
  return out;
}

CriaNode *
cria_concat (CriaGraph *g, CriaNode *a, CriaNode *b, int dim)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { a, b };
  if (!check_src (g, CRIA_OP_CONCAT, src, 2, 0) || !check_f32 (g, CRIA_OP_CONCAT, a, "a") ||
      !check_f32 (g, CRIA_OP_CONCAT, b, "b"))
    return NULL;
  gboolean ok = a->n_dims == b->n_dims && dim >= 0 && dim < a->n_dims;
  for (int i = 0; ok && i < a->n_dims; i++)
    ok = i == dim || a->shape[i] == b->shape[i];
  if (!ok) {
    g_autofree char *sa = shape_str (a), *sb = shape_str (b);
    return fail (g, CRIA_OP_CONCAT, "cannot join %s and %s along dim %d", sa, sb, dim);
  }
  gint64 shape[CRIA_MAX_DIMS];
  memcpy (shape, a->shape, sizeof shape);
  shape[dim] += b->shape[dim];
  CriaNode *out = add_node (g, CRIA_OP_CONCAT, CRIA_DTYPE_F32, a->n_dims, shape, src, 2);
  if (out)
    out->iparam[0] = dim;
  return out;
}

CriaNode *
cria_slice (CriaGraph *g, CriaNode *a, int dim, gint64 start, gint64 length)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *src[] = { a };
  if (!check_src (g, CRIA_OP_SLICE, src, 1, 0) || !check_f32 (g, CRIA_OP_SLICE, a, "a"))
    return NULL;
  if (dim < 0 || dim >= a->n_dims || start < 0 || length < 1 || start > a->shape[dim] - length) {
    g_autofree char *sa = shape_str (a);
    return fail (g, CRIA_OP_SLICE, "[%" G_GINT64_FORMAT ", +%" G_GINT64_FORMAT ") of dim %d is outside %s", start,
                 length, dim, sa);
  }
  gint64 shape[CRIA_MAX_DIMS];
  memcpy (shape, a->shape, sizeof shape);
  shape[dim] = length;
  CriaNode *out = add_node (g, CRIA_OP_SLICE, CRIA_DTYPE_F32, a->n_dims, shape, src, 1);
  if (out) {
    out->iparam[0] = dim;
    out->iparam[1] = start;
  }
  return out;
}

static CriaNode *
lm_head_ce (CriaGraph *g, CriaNode *h, CriaNode *w, CriaNode *labels, gint64 chunk, gboolean rows)
{
  CriaNode *src[] = { h, w, labels };
  if (!check_src (g, CRIA_OP_LM_HEAD_CE, src, 3, 4u) || !check_f32 (g, CRIA_OP_LM_HEAD_CE, h, "h"))
    return NULL;
  g_autofree char *sh = shape_str (h), *sw = shape_str (w), *sl = shape_str (labels);
  if (h->n_dims != 2 || w->n_dims != 2 || labels->n_dims != 1 || w->shape[1] != h->shape[1] ||
      labels->shape[0] != h->shape[0])
    return fail (g, CRIA_OP_LM_HEAD_CE, "h %s, w %s, labels %s do not fit [N,D], [V,D], [N]", sh, sw, sl);
  if (chunk < 1)
    return fail (g, CRIA_OP_LM_HEAD_CE, "chunk %" G_GINT64_FORMAT " < 1", chunk);
  gint64 shape[] = { 2 + (rows ? 2 : 1) * h->shape[0] };
  CriaNode *out = add_node (g, CRIA_OP_LM_HEAD_CE, CRIA_DTYPE_F32, 1, shape, src, 3);
  if (out) {
    out->iparam[0] = chunk;
    out->iparam[1] = rows;
  }
  return out;
}

CriaNode *
cria_lm_head_ce (CriaGraph *g, CriaNode *h, CriaNode *w, CriaNode *labels, gint64 chunk)
{
  g_return_val_if_fail (g != NULL, NULL);
  return lm_head_ce (g, h, w, labels, chunk, FALSE);
}

CriaNode *
cria_lm_head_ce_rows (CriaGraph *g, CriaNode *h, CriaNode *w, CriaNode *labels, gint64 chunk)
{
  g_return_val_if_fail (g != NULL, NULL);
  return lm_head_ce (g, h, w, labels, chunk, TRUE);
}

void
cria_graph_set_linear_hook (CriaGraph *g, CriaLinearHook hook, gpointer user_data)
{
  g_return_if_fail (g != NULL);
  g->linear_hook = hook;
  g->linear_hook_data = user_data;
}

CriaNode *
cria_linear (CriaGraph *g, const char *name, CriaNode *x, CriaNode *w, CriaNode *b)
{
  g_return_val_if_fail (g != NULL, NULL);
  CriaNode *out = cria_node_set_name (cria_matmul (g, x, w, FALSE, TRUE), name);
  if (b)
    out = cria_add (g, out, b);
  if (!out || !g->linear_hook)
    return out;
  return g->linear_hook (g, name, x, out, g->linear_hook_data);
}

gboolean
cria_linear_get_params (CriaNode *out, CriaNode **w, CriaNode **b)
{
  g_return_val_if_fail (out != NULL && w != NULL && b != NULL, FALSE);
  /* cria_linear built matmul(x, w^T), then add(that, b) when there is a bias. */
  CriaNode *mm = out->op == CRIA_OP_ADD ? out->src[0] : out;
  if (!mm || mm->op != CRIA_OP_MATMUL || mm->n_src != 2 || mm->iparam[0] || !mm->iparam[1] || !mm->name)
    return FALSE;
  *w = mm->src[1];
  *b = out != mm ? out->src[1] : NULL;
  return TRUE;
}
