/* cuda-optim.cu: the optimizer entries of contract 1.2 (cria-backend.h):
 * the window's gradients added up, their squared norm, and AdamW, on the
 * device where the params are.
 *
 * NEVER RUN ON A GPU: compiled by nvcc, run on the CPU by tests/cuda/sim.
 * A step is the cpu's bit for bit given the same gradients: every product
 * and sum is an explicit round-to-nearest intrinsic (nvcc fuses a * b + c
 * into an FMA unless told not to), fmaf only where cria-optim-kernels.c
 * writes it, IEEE division and square root; the norm follows the order of
 * cria_adamw_grad_norm (CRIA_OPTIM_NORM_CHUNK pieces, CRIA_OPTIM_NORM_LANES
 * lanes, then every lane in order by one thread), so it is deterministic
 * and equals the cpu's.
 *
 * The params of a call are described by a table uploaded each call (a few
 * dozen bytes per param): one launch covers them all, a block finding its
 * param by binary search over the first unit of each. */
#include "config.h"

#include <math.h>

#include "cuda.h"

#define OPT_THREADS 256
#define OPT_MAX_BLOCKS ((gint64) 65535 * 32)

typedef struct {
  float *param, *m, *v;
  const float *grad;
  gint64 n;
  gint64 first; /* the span's first unit: norm lane (sumsq) or block of OPT_THREADS elements (adamw) */
  int decay;
} Span;

static unsigned
grid_for (gint64 units)
{
  return (unsigned) MAX (1, MIN (units, OPT_MAX_BLOCKS));
}

/* The last span whose first unit is at most `unit` (empty spans own none). */
__device__ static const Span *
span_of (const Span *spans, int n_spans, gint64 unit)
{
  int lo = 0, hi = n_spans - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (spans[mid].first <= unit)
      lo = mid;
    else
      hi = mid - 1;
  }
  return &spans[lo];
}

/* dst += src */
__global__ static void
accumulate_kernel (float *dst, const float *src, gint64 n)
{
  for (gint64 i = blockIdx.x * (gint64) blockDim.x + threadIdx.x; i < n; i += (gint64) gridDim.x * blockDim.x)
    dst[i] = __fadd_rn (dst[i], src[i]);
}

/* One thread per lane of a piece: (double) (g * pre)^2 of elements lane,
 * lane + LANES, ... of the piece, added in order. */
__global__ static void
sumsq_lanes (const Span *spans, int n_spans, gint64 n_lanes, float pre, double *lanes)
{
  for (gint64 u = blockIdx.x * (gint64) blockDim.x + threadIdx.x; u < n_lanes; u += (gint64) gridDim.x * blockDim.x) {
    const Span *s = span_of (spans, n_spans, u);
    gint64 piece = (u - s->first) / CRIA_OPTIM_NORM_LANES, lane = (u - s->first) % CRIA_OPTIM_NORM_LANES;
    gint64 start = piece * (gint64) CRIA_OPTIM_NORM_CHUNK, end = MIN (start + (gint64) CRIA_OPTIM_NORM_CHUNK, s->n);
    double a = 0.0;
    for (gint64 i = start + lane; i < end; i += CRIA_OPTIM_NORM_LANES) {
      double x = (double) __fmul_rn (s->grad[i], pre);
      a = __dadd_rn (a, __dmul_rn (x, x));
    }
    lanes[u] = a;
  }
}

/* The lanes added in cria_adamw_grad_norm's order: one thread (of a warp). */
__global__ static void
sumsq_total (const double *lanes, gint64 n, double *out)
{
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  double sum = 0.0;
  for (gint64 i = 0; i < n; i++)
    sum = __dadd_rn (sum, lanes[i]);
  *out = sum;
}

/* optim_kernel_adamw, element for element (cria-optim.h has the math). */
__global__ static void
adamw_kernel (const Span *spans, int n_spans, gint64 n_units, CriaAdamwScalars s)
{
  for (gint64 b = blockIdx.x; b < n_units; b += gridDim.x) {
    const Span *sp = span_of (spans, n_spans, b);
    gint64 i = (b - sp->first) * OPT_THREADS + threadIdx.x;
    if (i >= sp->n)
      continue;
    float gi = __fmul_rn (__fmul_rn (sp->grad[i], s.pre), s.post);
    float x = __fmul_rn (sp->param[i], sp->decay ? s.shrink : 1.0f);
    float mi = fmaf (s.one_b1, gi, __fmul_rn (sp->m[i], s.b1));
    float vi = fmaf (__fmul_rn (s.one_b2, gi), gi, __fmul_rn (sp->v[i], s.b2));
    sp->m[i] = mi;
    sp->v[i] = vi;
    float denom = __fadd_rn (__fmul_rn (__fsqrt_rn (vi), s.inv_bias2_sqrt), s.eps);
    sp->param[i] = fmaf (-s.step_size, __fdiv_rn (mi, denom), x);
  }
}

gboolean
cuda_accumulate (gpointer self, float *dst, const float *src, gsize n, GError **error)
{
  CudaBackend *be = (CudaBackend *) self;
  gint64 count = (gint64) n;
  accumulate_kernel<<<grid_for ((count + OPT_THREADS - 1) / OPT_THREADS), OPT_THREADS, 0, be->stream>>> (dst, src, count);
  return cuda_check (cudaGetLastError (), "accumulate", error);
}

/* The table of spans in device scratch, followed by `extra` bytes (8-byte
 * aligned); `unit` elements per unit of a span, `per_unit` units for each.
 * Returns the scratch, the total of units in *n_units. */
static void *
upload_spans (CudaBackend *be, const CriaOptimSpan *spans, guint n_spans, gint64 unit, gint64 per_unit,
              size_t extra_per_unit, gint64 *n_units, size_t *table_bytes, GError **error)
{
  g_autofree Span *t = g_new0 (Span, MAX (n_spans, 1));
  gint64 units = 0;
  for (guint k = 0; k < n_spans; k++) {
    t[k] = (Span){ spans[k].param, spans[k].m, spans[k].v, spans[k].grad, (gint64) spans[k].n, units,
                   spans[k].decay != 0 };
    units += ((gint64) spans[k].n + unit - 1) / unit * per_unit;
  }
  *table_bytes = (sizeof (Span) * MAX (n_spans, 1) + 255) / 256 * 256;
  *n_units = units;
  void *mem = cuda_scratch (be, *table_bytes + extra_per_unit * (size_t) MAX (units, 1) + 64, error);
  /* from pageable memory: t may be freed when the call returns */
  if (!mem || !cuda_check (cudaMemcpyAsync (mem, t, sizeof (Span) * n_spans, cudaMemcpyHostToDevice, be->stream),
                           "upload of the optimizer's table", error))
    return NULL;
  return mem;
}

gboolean
cuda_grad_sumsq (gpointer self, const CriaOptimSpan *spans, guint n_spans, float pre, double *sumsq, GError **error)
{
  CudaBackend *be = (CudaBackend *) self;
  gint64 n_lanes;
  size_t table;
  char *mem = (char *) upload_spans (be, spans, n_spans, (gint64) CRIA_OPTIM_NORM_CHUNK, CRIA_OPTIM_NORM_LANES,
                                     sizeof (double), &n_lanes, &table, error);
  if (!mem)
    return FALSE;
  double *lanes = (double *) (mem + table), *total = lanes + n_lanes;
  *sumsq = 0.0;
  if (n_lanes == 0)
    return TRUE;
  sumsq_lanes<<<grid_for ((n_lanes + OPT_THREADS - 1) / OPT_THREADS), OPT_THREADS, 0, be->stream>>> (
      (const Span *) mem, (int) n_spans, n_lanes, pre, lanes);
  sumsq_total<<<1, 32, 0, be->stream>>> (lanes, n_lanes, total);
  return cuda_check (cudaGetLastError (), "gradient norm", error) &&
         cuda_check (cudaMemcpyAsync (sumsq, total, sizeof (double), cudaMemcpyDeviceToHost, be->stream),
                     "download of the gradient norm", error) &&
         cuda_check (cudaStreamSynchronize (be->stream), "gradient norm", error);
}

gboolean
cuda_adamw_step (gpointer self, const CriaOptimSpan *spans, guint n_spans, const CriaAdamwScalars *s, GError **error)
{
  CudaBackend *be = (CudaBackend *) self;
  gint64 n_units;
  size_t table;
  void *mem = upload_spans (be, spans, n_spans, OPT_THREADS, 1, 0, &n_units, &table, error);
  if (!mem)
    return FALSE;
  if (n_units == 0)
    return TRUE;
  adamw_kernel<<<grid_for (n_units), OPT_THREADS, 0, be->stream>>> ((const Span *) mem, (int) n_spans, n_units, *s);
  return cuda_check (cudaGetLastError (), "AdamW step", error);
}
