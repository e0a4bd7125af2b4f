/* cuda-moves.cu: the kernels of the cuda backend that move values:
 * embedding (a gather of rows), permute, concat and slice. How a kernel
 * runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- embedding: y[t] = table[ids[t]];  dtable[ids[t]] += dy[t] ------------- */

__global__ static void
embedding_fwd (const gint32 *ids, const float *table, float *y, gint64 T, gint64 D, gint64 V, int *bad)
{
  GRID_LOOP (i, T * D)
  {
    gint64 t = i / D, d = i % D;
    gint32 id = ids[t];
    if (id < 0 || id >= V) {
      atomicCAS (bad, CUDA_BAD_NONE, CUDA_BAD_EMBEDDING_ID); /* synchronize reports it */
      y[i] = 0;
    } else {
      y[i] = table[id * D + d];
    }
  }
}

/* atomics: ids may repeat, so the order of the sums is not the cpu's */
__global__ static void
embedding_bwd (const gint32 *ids, const float *dy, float *dt, gint64 T, gint64 D, gint64 V)
{
  GRID_LOOP (i, T * D)
  {
    gint32 id = ids[i / D];
    if (id >= 0 && id < V)
      atomicAdd (&dt[id * D + i % D], dy[i]);
  }
}

gboolean
embedding_forward (gpointer self, CriaNode *n, GError **error)
{
  CudaBackend *be = be_of (self);
  gint64 T = numel (n->src[0]), V = n->src[1]->shape[0], D = n->shape[n->n_dims - 1];
  embedding_fwd<<<blocks_for (T * D), THREADS, 0, be->stream>>> ((const gint32 *) n->src[0]->value->data,
                                                                   f32 (n->src[1]->value), f32 (n->value), T, D, V,
                                                                   be->bad_id);
  return launched (n, error);
}

gboolean
embedding_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[1]->grad)
    return TRUE;
  gint64 T = numel (n->src[0]), V = n->src[1]->shape[0], D = n->shape[n->n_dims - 1];
  embedding_bwd<<<blocks_for (T * D), THREADS, 0, be_of (self)->stream>>> (
      (const gint32 *) n->src[0]->value->data, f32 (n->grad), f32 (n->src[1]->grad), T, D, V);
  return launched (n, error);
}

/* ---- permute, concat, slice: moves, whose backward moves (adds) back ------ */

typedef struct {
  gint64 shape[CRIA_MAX_DIMS]; /* of the output, 1 past its dims */
  gint64 st[CRIA_MAX_DIMS];    /* the input's stride of each output dim */
} Perm;

/* y[o0,o1,o2,o3] = x[sum o_i st_i]: a bijection, so backward has no races.
 * half: a forward of bf16 values (activations=bf16), moved as they are. */
__global__ static void
permute_k (Perm pm, const void *src, void *dst, gint64 n, int backward, int half)
{
  GRID_LOOP (o, n)
  {
    gint64 rest = o, in = 0;
    for (int d = CRIA_MAX_DIMS - 1; d >= 0; d--) {
      in += rest % pm.shape[d] * pm.st[d];
      rest /= pm.shape[d];
    }
    if (backward)
      ((float *) dst)[in] += ((const float *) src)[o];
    else if (half)
      ((guint16 *) dst)[o] = ((const guint16 *) src)[in];
    else
      ((float *) dst)[o] = ((const float *) src)[in];
  }
}

static gboolean
permute_run (CudaBackend *be, CriaNode *n, const void *src, void *dst, gboolean backward, GError **error)
{
  const CriaNode *a = n->src[0];
  gint64 in_stride[CRIA_MAX_DIMS] = { 0 }, s = 1;
  for (int d = a->n_dims - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= a->shape[d];
  }
  Perm pm;
  for (int i = 0; i < CRIA_MAX_DIMS; i++) {
    pm.shape[i] = n->shape[i];
    pm.st[i] = i < a->n_dims ? in_stride[n->iparam[i]] : 0;
  }
  gint64 count = numel (n);
  permute_k<<<blocks_for (count), THREADS, 0, be->stream>>> (pm, src, dst, count, backward,
                                                               !backward && is_bf16 (n->value));
  return launched (n, error);
}

gboolean
permute_forward (gpointer self, CriaNode *n, GError **error)
{
  return permute_run (be_of (self), n, n->src[0]->value->data, n->value->data, FALSE, error);
}

gboolean
permute_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  return permute_run (be_of (self), n, f32 (n->grad), f32 (n->src[0]->grad), TRUE, error);
}

/* Elements after dim `dim` (exclusive) and rows before it. */
static void
split_dims (const CriaNode *n, int dim, gint64 *outer, gint64 *inner)
{
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < dim; d++)
    *outer *= n->shape[d];
  for (int d = dim + 1; d < n->n_dims; d++)
    *inner *= n->shape[d];
}

/* cpu-ops.c's window_move, one thread per element of the part; half: bf16
 * values (a forward with activations=bf16), moved as they are */
__global__ static void
window_k (gint64 outer, gint64 part_row, gint64 whole_row, gint64 offset, void *part, void *whole, int to_whole,
          int add, int half)
{
  GRID_LOOP (e, outer * part_row)
  {
    gint64 r = e / part_row, i = e % part_row, at = r * whole_row + offset + i;
    if (half) {
      guint16 *p = (guint16 *) part + e, *w = (guint16 *) whole + at;
      if (to_whole)
        *w = *p;
      else
        *p = *w;
      continue;
    }
    float *p = (float *) part + e, *w = (float *) whole + at;
    if (to_whole)
      *w = add ? *w + *p : *p;
    else
      *p = add ? *p + *w : *w;
  }
}

static gboolean
window_move (CudaBackend *be, const CriaNode *n, gint64 outer, gint64 part_row, gint64 whole_row, gint64 offset,
             void *part, void *whole, gboolean to_whole, gboolean add, GError **error)
{
  /* only a forward moves values; gradients are f32 */
  int half = !add && is_bf16 (n->value);
  window_k<<<blocks_for (outer * part_row), THREADS, 0, be->stream>>> (outer, part_row, whole_row, offset, part,
                                                                         whole, to_whole, add, half);
  return launched (n, error);
}

static gboolean
concat_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 whole_row = n->shape[dim] * inner, offset = 0;
  for (int s = 0; s < 2; s++) {
    CriaNode *part = n->src[s];
    gint64 part_row = part->shape[dim] * inner;
    gboolean ok = TRUE;
    if (!backward)
      ok = window_move (be, n, outer, part_row, whole_row, offset, part->value->data, n->value->data, TRUE, FALSE,
                        error);
    else if (part->grad)
      ok = window_move (be, n, outer, part_row, whole_row, offset, f32 (part->grad), f32 (n->grad), FALSE, TRUE,
                        error);
    if (!ok)
      return FALSE;
    offset += part_row;
  }
  return TRUE;
}

gboolean
concat_forward (gpointer self, CriaNode *n, GError **error)
{
  return concat_run (be_of (self), n, FALSE, error);
}

gboolean
concat_backward (gpointer self, CriaNode *n, GError **error)
{
  return concat_run (be_of (self), n, TRUE, error);
}

static gboolean
slice_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  CriaNode *a = n->src[0];
  int dim = (int) n->iparam[0];
  gint64 outer, inner;
  split_dims (n, dim, &outer, &inner);
  gint64 part_row = n->shape[dim] * inner, whole_row = a->shape[dim] * inner, offset = n->iparam[1] * inner;
  if (!backward)
    return window_move (be, n, outer, part_row, whole_row, offset, n->value->data, a->value->data, FALSE, FALSE, error);
  if (!a->grad)
    return TRUE;
  return window_move (be, n, outer, part_row, whole_row, offset, f32 (n->grad), f32 (a->grad), TRUE, TRUE, error);
}

gboolean
slice_forward (gpointer self, CriaNode *n, GError **error)
{
  return slice_run (be_of (self), n, FALSE, error);
}

gboolean
slice_backward (gpointer self, CriaNode *n, GError **error)
{
  return slice_run (be_of (self), n, TRUE, error);
}
