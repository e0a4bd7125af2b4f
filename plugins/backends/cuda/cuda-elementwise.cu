/* cuda-elementwise.cu: the element-wise kernels of the cuda backend: GELU,
 * SiLU, SwiGLU, add and mul (b broadcast over a's leading dims), scale,
 * reshape and dropout. How a kernel runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- element-wise ---------------------------------------------------------- */

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

__device__ static float
gelu_f (float x)
{
  return 0.5f * x * (1.0f + tanhf (GELU_C * (x + 0.044715f * x * x * x)));
}

__device__ static float
gelu_d (float x)
{
  float t = tanhf (GELU_C * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
}

__device__ static float
silu_f (float x)
{
  return x / (1.0f + expf (-x));
}

__device__ static float
silu_d (float x)
{
  float s = 1.0f / (1.0f + expf (-x));
  return s * (1.0f + x * (1.0f - s));
}

enum { UN_GELU, UN_SILU };

__global__ static void
unary_fwd (int which, Val x, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float v = ld (x, i);
    st (y, i, which == UN_GELU ? gelu_f (v) : silu_f (v));
  }
}

__global__ static void
unary_bwd (int which, Val x, const float *dy, float *dx, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float v = ld (x, i);
    dx[i] += dy[i] * (which == UN_GELU ? gelu_d (v) : silu_d (v));
  }
}

gboolean
unary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  unary_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU,
                                                                         val (n->src[0]->value), val (n->value), count);
  return launched (n, error);
}

gboolean
unary_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  unary_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      n->op == CRIA_OP_GELU ? UN_GELU : UN_SILU, val (n->src[0]->value), f32 (n->grad), f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* swiglu: y = silu(g) u;  dg += dy u silu'(g);  du += dy silu(g) */
__global__ static void
swiglu_fwd (Val g, Val u, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  st (y, i, silu_f (ld (g, i)) * ld (u, i));
}

__global__ static void
swiglu_bwd (Val g, Val u, const float *dy, float *dg, float *du, gint64 n)
{
  GRID_LOOP (i, n)
  {
    float gi = ld (g, i);
    if (dg)
      dg[i] += dy[i] * ld (u, i) * silu_d (gi);
    if (du)
      du[i] += dy[i] * silu_f (gi);
  }
}

gboolean
swiglu_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  swiglu_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      val (n->src[0]->value), val (n->src[1]->value), val (n->value), count);
  return launched (n, error);
}

gboolean
swiglu_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  float *dg = n->src[0]->grad ? f32 (n->src[0]->grad) : NULL, *du = n->src[1]->grad ? f32 (n->src[1]->grad) : NULL;
  swiglu_bwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (
      val (n->src[0]->value), val (n->src[1]->value), f32 (n->grad), dg, du, count);
  return launched (n, error);
}

/* add: y = a + b;  da += dy;  db += sum dy.   mul: y = a b;  da += dy b;  db += sum dy a
 * (b broadcast over a's leading dims: b[i % nb]) */
__global__ static void
binary_fwd (int add, Val a, Val b, Val y, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  {
    float x = ld (a, i), z = ld (b, i % nb);
    st (y, i, add ? x + z : x * z);
  }
}

__global__ static void
binary_bwd_a (int add, Val b, const float *dy, float *da, gint64 na, gint64 nb)
{
  GRID_LOOP (i, na)
  da[i] += add ? dy[i] : dy[i] * ld (b, i % nb);
}

/* one thread per element of b, summing its rows in order (as the cpu does) */
__global__ static void
binary_bwd_b (int add, Val a, const float *dy, float *db, gint64 na, gint64 nb)
{
  GRID_LOOP (j, nb)
  {
    float s = db[j];
    for (gint64 i = j; i < na; i += nb)
      s += add ? dy[i] : dy[i] * ld (a, i);
    db[j] = s;
  }
}

gboolean
binary_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  binary_fwd<<<blocks_for (na), THREADS, 0, be_of (self)->stream>>> (n->op == CRIA_OP_ADD, val (n->src[0]->value),
                                                                       val (n->src[1]->value), val (n->value), na, nb);
  return launched (n, error);
}

gboolean
binary_backward (gpointer self, CriaNode *n, GError **error)
{
  gint64 na = numel (n), nb = numel (n->src[1]);
  cudaStream_t s = be_of (self)->stream;
  int add = n->op == CRIA_OP_ADD;
  if (n->src[0]->grad)
    binary_bwd_a<<<blocks_for (na), THREADS, 0, s>>> (add, val (n->src[1]->value), f32 (n->grad),
                                                        f32 (n->src[0]->grad), na, nb);
  if (n->src[1]->grad)
    binary_bwd_b<<<blocks_for (nb), THREADS, 0, s>>> (add, val (n->src[0]->value), f32 (n->grad),
                                                        f32 (n->src[1]->grad), na, nb);
  return launched (n, error);
}

/* y = s a;  da += s dy */
__global__ static void
scale_fwd (float k, Val a, Val y, gint64 n)
{
  GRID_LOOP (i, n)
  st (y, i, k * ld (a, i));
}

__global__ static void
axpy (float k, const float *x, float *y, gint64 n)
{
  GRID_LOOP (i, n)
  y[i] += k * x[i];
}

gboolean
scale_forward (gpointer self, CriaNode *n, GError **error)
{
  gint64 count = numel (n);
  scale_fwd<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], val (n->src[0]->value),
                                                                         val (n->value), count);
  return launched (n, error);
}

gboolean
scale_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  axpy<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (n->fparam[0], f32 (n->grad),
                                                                    f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* reshape: the same elements; its backward adds them back */
gboolean
reshape_forward (gpointer self, CriaNode *n, GError **error)
{
  /* bf16 values with activations=bf16 (cuda-kernels.cu's forward_stored), moved as they are */
  size_t esize = is_bf16 (n->value) ? sizeof (guint16) : sizeof (float);
  return cuda_check (cudaMemcpyAsync (n->value->data, n->src[0]->value->data, (size_t) numel (n) * esize,
                                      cudaMemcpyDeviceToDevice, be_of (self)->stream),
                     "reshape", error);
}

gboolean
reshape_backward (gpointer self, CriaNode *n, GError **error)
{
  if (!n->src[0]->grad)
    return TRUE;
  gint64 count = numel (n);
  axpy<<<blocks_for (count), THREADS, 0, be_of (self)->stream>>> (1.0f, f32 (n->grad), f32 (n->src[0]->grad), count);
  return launched (n, error);
}

/* ---- dropout: the cpu backend's mask, a splitmix64 hash of (seed, index),
 * recomputed in backward; kept elements scaled by 1/(1-p). -------------------- */

__device__ static bool
dropout_keep (guint64 seed, gint64 i, float p)
{
  guint64 z = seed + 0x9e3779b97f4a7c15ull * (guint64) (i + 1); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float) (z >> 40) * (1.0f / 16777216.0f) >= p;
}

__global__ static void
dropout_k (Val x, Val y, gint64 n, guint64 seed, float p, float k, int add)
{
  GRID_LOOP (i, n)
  {
    float v = dropout_keep (seed, i, p) ? ld (x, i) * k : 0.0f;
    st (y, i, add ? ld (y, i) + v : v);
  }
}

static gboolean
dropout_run (CudaBackend *be, CriaNode *n, gboolean backward, GError **error)
{
  float p = n->fparam[0], k = 1.0f / (1.0f - p);
  gint64 count = numel (n);
  dropout_k<<<blocks_for (count), THREADS, 0, be->stream>>> (val (backward ? n->grad : n->src[0]->value),
                                                               val (backward ? n->src[0]->grad : n->value), count,
                                                               (guint64) n->iparam[0], p, k, backward);
  return launched (n, error);
}

gboolean
dropout_forward (gpointer self, CriaNode *n, GError **error)
{
  return dropout_run (be_of (self), n, FALSE, error);
}

gboolean
dropout_backward (gpointer self, CriaNode *n, GError **error)
{
  return n->src[0]->grad ? dropout_run (be_of (self), n, TRUE, error) : TRUE;
}
