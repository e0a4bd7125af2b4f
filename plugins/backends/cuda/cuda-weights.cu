/* cuda-weights.cu: weights that are not f32 on the cuda backend. bf16 and
 * f16 weights sit in device memory as stored, two bytes an element; NF4
 * weights in the device layout of cria_nf4_device_layout (cria-nf4.h):
 * the packed codes, then their block scales and maps, as the host holds
 * them. So the device holds a model in the bytes the host does.
 *
 *   cria logits --backend cuda -m qwen --dtype bf16 'Hello'
 *   cria train --backend 'cuda bf16-dot=true' --adapter qlora ...
 *
 * NEVER RUN ON A GPU: compiled by nvcc, run on the CPU by
 * tests/cuda/sim/run.sh; tests/cuda/test-cuda-parity's weights groups
 * compare it with the cpu backend.
 *
 * A product with such a weight (b of matmul, w of lm_head_ce) widens the
 * weight to f32 into device scratch and runs cuBLASLt's f32 product: the
 * values of the cpu backend's default path (cpu-gemm.c widens its panels
 * the same way; NF4 values are quant_map[code] * scale, the scale decoded
 * in the order of cria_nf4_block_absmax, each operation rounded alone), so
 * the same products summed in another order. The weight is widened in
 * slices of whole rows, at most `widen-kib` of f32 each, one product per
 * slice: by default a linear layer of an 8B model fits one slice (14336 x
 * 4096 in f32 is 224 MiB), so it is one cuBLASLt call as for an f32 weight,
 * while an lm-head-sized matrix (128256 x 4096: 2 GiB in f32) goes through
 * in slices rather than taking scratch the size of a second copy of it.
 * Widening reads 2 (0.5 for NF4) and writes 4 bytes an element: one pass
 * of memory, small beside a product over a batch of tokens.
 *
 * With bf16-dot (the cpu backend's property of that name, cpu-gemm.c), a
 * product with a bf16 or NF4 weight rounds the activations (A) to bf16 for
 * that product only and multiplies bf16 by bf16 with f32 accumulation and
 * output (CUBLAS_COMPUTE_32F; tensor cores): bf16 weights are read in place,
 * NF4 weights dequantized and rounded to bf16 slice by slice. f16 weights
 * are widened either way, as on the cpu. The one product where the weight
 * is the first operand (matmul's dA with trans_a) widens it whole to f32,
 * as the cpu backend does, with no rounding. activations=bf16 (cuda.c)
 * takes the bf16-dot path for bf16 and NF4 weights, and cuda_gemm rounds
 * f16 weights widened to f32 as it rounds every f32 operand. */
#include "config.h"

#include <string.h>

#include <cria/cria-nf4.h>

#include "cuda.h"

#define THREADS 256
#define MAX_BLOCKS ((gint64) 65535 * 32)
#define GRID_LOOP(i_, n_) for (gint64 i_ = blockIdx.x * (gint64) blockDim.x + threadIdx.x; i_ < (n_); i_ += (gint64) gridDim.x * blockDim.x)

static unsigned
blocks_for (gint64 n)
{
  gint64 b = (n + THREADS - 1) / THREADS;
  return (unsigned) MAX (1, MIN (b, MAX_BLOCKS));
}

static float *
f32 (const CriaTensor *t)
{
  return (float *) t->data;
}

static gboolean
launched (const char *what, GError **error)
{
  return cuda_check (cudaGetLastError (), what, error);
}

/* ---- one element of a weight, in f32 ------------------------------------------- */

/* What a kernel needs of a weight: its dtype and, for NF4, where each part
 * of the device layout is. */
typedef struct {
  CriaDType dtype;
  const void *data;
  const guint8 *absmax;     /* NF4, double quantization: codes of the block scales */
  const float *absmax_f32;  /* NF4 without it: the block scales */
  const float *nested;      /* the scales of absmax's codes */
  const float *quant_map;   /* [16] */
  const float *nested_map;  /* [256] */
  float offset;
} WeightRef;

static WeightRef
weight_ref (const CriaTensor *t)
{
  WeightRef w;
  memset (&w, 0, sizeof w);
  w.dtype = t->dtype;
  w.data = t->data;
  if (t->dtype == CRIA_DTYPE_NF4) {
    CriaNf4Layout l;
    cria_nf4_device_layout (t, &l);
    const char *base = (const char *) t->data;
    if (t->nf4->n_nested) {
      w.absmax = (const guint8 *) (base + l.absmax);
      w.nested = (const float *) (base + l.nested_absmax);
    } else {
      w.absmax_f32 = (const float *) (base + l.absmax);
    }
    w.quant_map = (const float *) (base + l.quant_map);
    w.nested_map = (const float *) (base + l.nested_quant_map);
    w.offset = t->nf4->offset;
  }
  return w;
}

__device__ static float
from_bits (guint32 u)
{
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

/* cria_f16_to_f32: exact */
__device__ static float
f16_value (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {
    float f = (float) man * 5.9604644775390625e-08f; /* man * 2^-24, exact */
    return sign ? -f : f;
  }
  return from_bits (exp == 31 ? sign | 0x7f800000u | (man << 13) : sign | ((exp + 112) << 23) | (man << 13));
}

/* Element e (of the flattened weight) in f32. NF4: the block's scale as
 * cria_nf4_block_absmax decodes it, times the code's value, each operation
 * rounded on its own (no fused multiply-add), so the cpu's floats. */
__device__ static float
weight_at (const WeightRef &w, gint64 e)
{
  switch (w.dtype) {
    case CRIA_DTYPE_BF16:
      return cuda_bf16_value (((const guint16 *) w.data)[e]);
    case CRIA_DTYPE_F16:
      return f16_value (((const guint16 *) w.data)[e]);
    case CRIA_DTYPE_NF4: {
      gint64 b = e / CRIA_NF4_BLOCK;
      float scale = w.absmax_f32 ? w.absmax_f32[b]
                                 : __fadd_rn (__fmul_rn (w.nested_map[w.absmax[b]], w.nested[b / CRIA_NF4_NESTED_BLOCK]),
                                              w.offset);
      guint8 byte = ((const guint8 *) w.data)[e >> 1];
      return __fmul_rn (w.quant_map[e & 1 ? byte & 15 : byte >> 4], scale);
    }
    default:
      return ((const float *) w.data)[e];
  }
}

/* Elements [e0, e0 + n) of a weight into f32 (out32) or rounded to bf16
 * (out16, the other NULL). */
__global__ static void
widen_k (WeightRef w, gint64 e0, gint64 n, float *out32, guint16 *out16)
{
  GRID_LOOP (i, n)
  {
    float x = weight_at (w, e0 + i);
    if (out32)
      out32[i] = x;
    else
      out16[i] = cuda_bf16_round (x);
  }
}

/* x rounded to bf16: the activations of a bf16-dot product */
__global__ static void
round_k (const float *x, gint64 n, guint16 *y)
{
  GRID_LOOP (i, n) y[i] = cuda_bf16_round (x[i]);
}

/* bf16 values widened: what a kernel reading f32 gets of a bf16 value */
__global__ static void
widen_bf16_k (const guint16 *x, gint64 n, float *y)
{
  GRID_LOOP (i, n) y[i] = cuda_bf16_value (x[i]);
}

extern "C" gboolean
cuda_to_bf16 (CudaBackend *be, const float *x, gint64 n, guint16 *y, GError **error)
{
  round_k<<<blocks_for (n), THREADS, 0, be->stream>>> (x, n, y);
  return launched ("rounding to bf16", error);
}

extern "C" gboolean
cuda_from_bf16 (CudaBackend *be, const guint16 *x, gint64 n, float *y, GError **error)
{
  widen_bf16_k<<<blocks_for (n), THREADS, 0, be->stream>>> (x, n, y);
  return launched ("widening bf16 values", error);
}

static gboolean
widen (CudaBackend *be, const CriaTensor *t, gint64 e0, gint64 n, float *out32, guint16 *out16, GError **error)
{
  widen_k<<<blocks_for (n), THREADS, 0, be->stream>>> (weight_ref (t), e0, n, out32, out16);
  return launched ("widening a weight", error);
}

/* ---- products with a weight ------------------------------------------------------ */

static size_t
align_up (size_t n)
{
  return (n + 255) / 256 * 256;
}

/* The product of cuda_gemm_weight into f32 scratch, rounded into the bf16
 * C after: a weight sliced by rows of K adds the slices' products in C,
 * which bf16 would round at each slice. */
static gboolean
gemm_weight_rounded (CudaBackend *be, gint64 M, gint64 N, gint64 K, const void *A, gboolean a_bf16, gboolean ta,
                     const CriaTensor *w, gint64 w0, gboolean tb, void *C, GError **error)
{
  float *c32 = (float *) cuda_stage_scratch (be, (size_t) (M * N) * sizeof (float), error);
  return c32 && cuda_gemm_weight (be, M, N, K, A, a_bf16, ta, w, w0, tb, c32, FALSE, 0.0f, error) &&
         cuda_to_bf16 (be, c32, M * N, (guint16 *) C, error);
}

extern "C" gboolean
cuda_gemm_weight (CudaBackend *be, gint64 M, gint64 N, gint64 K, const void *A, gboolean a_bf16, gboolean ta,
                  const CriaTensor *w, gint64 w0, gboolean tb, void *C, gboolean c_bf16, float beta, GError **error)
{
  CudaGemm g = { M, N, K, A, ta, ta ? M : K, NULL, tb, tb ? K : N, C, N, beta, FALSE, 1, 0, 0, 0 };
  g.a_bf16 = a_bf16;
  g.c_bf16 = c_bf16;
  if (w->dtype == CRIA_DTYPE_F32) {
    g.B = f32 (w) + w0;
    return cuda_gemm (be, &g, error);
  }
  /* activations=bf16 rounds A anyway: the bf16-dot path serves it */
  g.bf16 = (be->bf16_dot || be->bf16_act) && (w->dtype == CRIA_DTYPE_BF16 || w->dtype == CRIA_DTYPE_NF4);
  size_t esize = g.bf16 ? sizeof (guint16) : sizeof (float);
  /* rows of W as stored, each `row` elements: slices of whole rows */
  gint64 rows = tb ? N : K, row = tb ? K : N;
  gboolean in_place = g.bf16 && w->dtype == CRIA_DTYPE_BF16;
  gint64 slice = in_place ? rows : MAX (1, MIN (rows, (gint64) (be->widen_bytes / ((size_t) row * esize))));
  if (c_bf16 && !tb && slice < rows)
    return gemm_weight_rounded (be, M, N, K, A, a_bf16, ta, w, w0, tb, C, error);
  /* A rounded to bf16 for a bf16 product, unless it is a bf16 value already */
  gboolean round_a = g.bf16 && !a_bf16;
  size_t a_bytes = round_a ? align_up ((size_t) (M * K) * sizeof (guint16)) : 0;
  size_t w_bytes = in_place ? 0 : (size_t) (slice * row) * esize;
  char *scratch = (char *) cuda_weight_scratch (be, MAX (a_bytes + w_bytes, 1), error);
  if (!scratch)
    return FALSE;
  if (round_a) { /* whole, for every slice */
    if (!cuda_to_bf16 (be, (const float *) A, M * K, (guint16 *) scratch, error))
      return FALSE;
    g.A = scratch;
  }
  if (g.bf16)
    g.a_bf16 = FALSE; /* both operands bf16 now */
  size_t a_esize = g.bf16 || a_bf16 ? sizeof (guint16) : sizeof (float);
  size_t c_esize = c_bf16 ? sizeof (guint16) : sizeof (float);
  const char *A0 = (const char *) g.A;
  void *slice_mem = scratch + a_bytes;
  for (gint64 r0 = 0; r0 < rows; r0 += slice) {
    gint64 rc = MIN (slice, rows - r0);
    if (in_place) {
      g.B = (const guint16 *) w->data + w0;
    } else {
      if (!widen (be, w, w0 + r0 * row, rc * row, g.bf16 ? NULL : (float *) slice_mem,
                  g.bf16 ? (guint16 *) slice_mem : NULL, error))
        return FALSE;
      g.B = slice_mem;
    }
    if (tb) { /* columns r0.. of C: op(A) W[r0 : r0 + rc]^T */
      g.N = rc;
      g.C = (char *) C + (size_t) r0 * c_esize;
    } else { /* C += op(A)[:, r0 : r0 + rc] W[r0 : r0 + rc]; op(A)'s columns are A's rows when ta */
      g.K = rc;
      g.A = A0 + (size_t) (ta ? r0 * M : r0) * a_esize;
      g.beta = r0 == 0 ? beta : 1.0f;
    }
    if (!cuda_gemm (be, &g, error))
      return FALSE;
  }
  return TRUE;
}

/* ---- matmul with a weight b that is not f32 (a 2-D NF4 one, or bf16/f16 of
 * any rank); f32 goes to cuda-linear.cu's. b is frozen: no dB. ------------- */

static CriaKernel f32_matmul, f32_embedding;

/* C = op(A) op(B): all rows of x times one weight in one product (the
 * weight widened once for the batch), else batch by batch. */
static gboolean
weight_matmul_forward (gpointer self, CriaNode *n, GError **error)
{
  if (n->src[1]->dtype == CRIA_DTYPE_F32)
    return f32_matmul.forward (self, n, error);
  CudaBackend *be = (CudaBackend *) self;
  MatmulShape d = cuda_matmul_shape (n);
  /* activations=bf16: x and y are bf16 values, read and written as such */
  const CriaTensor *x = n->src[0]->value, *w = n->src[1]->value;
  gboolean a16 = x->dtype == CRIA_DTYPE_BF16, c16 = n->value->dtype == CRIA_DTYPE_BF16;
  const char *A = (const char *) x->data;
  char *C = (char *) n->value->data;
  if (d.b_shared && !d.ta)
    return cuda_gemm_weight (be, d.batch * d.M, d.N, d.K, A, a16, FALSE, w, 0, d.tb, C, c16, 0.0f, error);
  size_t ae = a16 ? sizeof (guint16) : sizeof (float), ce = c16 ? sizeof (guint16) : sizeof (float);
  for (gint64 t = 0; t < d.batch; t++)
    if (!cuda_gemm_weight (be, d.M, d.N, d.K, A + (size_t) (t * d.M * d.K) * ae, a16, d.ta, w,
                           d.b_shared ? 0 : t * d.K * d.N, d.tb, C + (size_t) (t * d.M * d.N) * ce, c16, 0.0f, error))
      return FALSE;
  return TRUE;
}

/* dA (!ta) [M,K] += dC op(B)^T: B is the second operand, as in forward;
 * (ta) dA [K,M] += op(B) dC^T: B is the first operand, widened whole to f32
 * (cpu-linear.c does the same in this rare layout, without rounding). */
static gboolean
weight_matmul_backward (gpointer self, CriaNode *n, GError **error)
{
  if (n->src[1]->dtype == CRIA_DTYPE_F32)
    return f32_matmul.backward (self, n, error);
  CriaNode *a = n->src[0];
  if (!a->grad)
    return TRUE;
  CudaBackend *be = (CudaBackend *) self;
  MatmulShape d = cuda_matmul_shape (n);
  const CriaTensor *w = n->src[1]->value;
  const float *dC = f32 (n->grad);
  float *dA = f32 (a->grad);
  gint64 sa = d.M * d.K, sc = d.M * d.N, sb = d.b_shared ? 0 : d.K * d.N;
  if (!d.ta) {
    if (d.b_shared) /* the rows of every batch are rows of one [batch*M, N] dC */
      return cuda_gemm_weight (be, d.batch * d.M, d.K, d.N, dC, FALSE, FALSE, w, 0, !d.tb, dA, FALSE, 1.0f, error);
    for (gint64 t = 0; t < d.batch; t++)
      if (!cuda_gemm_weight (be, d.M, d.K, d.N, dC + t * sc, FALSE, FALSE, w, t * sb, !d.tb, dA + t * sa, FALSE, 1.0f,
                             error))
        return FALSE;
    return TRUE;
  }
  gint64 nw = d.b_shared ? d.K * d.N : d.batch * sb;
  float *Bf = (float *) cuda_weight_scratch (be, (size_t) nw * sizeof (float), error);
  if (!Bf || !widen (be, w, 0, nw, Bf, NULL, error))
    return FALSE;
  CudaGemm g = { d.K, d.M, d.N, Bf, d.tb, d.tb ? d.K : d.N, dC, TRUE, d.N, dA, d.M, 1.0f, FALSE, d.batch, sb, sc, sa };
  return cuda_gemm (be, &g, error);
}

/* ---- dequantize: y = the NF4 weight in f32 (no gradient flows into it) --- */

static gboolean
dequantize_forward (gpointer self, CriaNode *n, GError **error)
{
  const CriaTensor *w = n->src[0]->value;
  gboolean half = n->value->dtype == CRIA_DTYPE_BF16; /* activations=bf16: rounded as it is stored */
  return widen ((CudaBackend *) self, w, 0, cria_tensor_numel (w), half ? NULL : f32 (n->value),
                half ? (guint16 *) n->value->data : NULL, error);
}

/* ---- embedding of a bf16/f16 table: y[t] = table[ids[t]] in f32 --------- */

__global__ static void
embedding_weight_k (const gint32 *ids, WeightRef table, float *y, gint64 T, gint64 D, gint64 V, int *bad)
{
  GRID_LOOP (i, T * D)
  {
    gint32 id = ids[i / D];
    if (id < 0 || id >= V) {
      atomicCAS (bad, CUDA_BAD_NONE, CUDA_BAD_EMBEDDING_ID); /* synchronize reports it */
      y[i] = 0;
    } else {
      y[i] = weight_at (table, id * D + i % D);
    }
  }
}

static gboolean
weight_embedding_forward (gpointer self, CriaNode *n, GError **error)
{
  if (n->src[1]->dtype == CRIA_DTYPE_F32)
    return f32_embedding.forward (self, n, error);
  CudaBackend *be = (CudaBackend *) self;
  gint64 T = cria_shape_numel (n->src[0]->n_dims, n->src[0]->shape), V = n->src[1]->shape[0];
  gint64 D = n->shape[n->n_dims - 1];
  embedding_weight_k<<<blocks_for (T * D), THREADS, 0, be->stream>>> ((const gint32 *) n->src[0]->value->data,
                                                                        weight_ref (n->src[1]->value), f32 (n->value),
                                                                        T, D, V, be->bad_id);
  return launched (cria_op_name (n->op), error);
}

extern "C" void
cuda_weights_init (void)
{
  f32_matmul = cuda_kernels[CRIA_OP_MATMUL];
  f32_embedding = cuda_kernels[CRIA_OP_EMBEDDING];
  cuda_kernels[CRIA_OP_MATMUL].forward = weight_matmul_forward;
  cuda_kernels[CRIA_OP_MATMUL].backward = weight_matmul_backward;
  cuda_kernels[CRIA_OP_EMBEDDING].forward = weight_embedding_forward;
  cuda_kernels[CRIA_OP_DEQUANTIZE].forward = dequantize_forward;
}
