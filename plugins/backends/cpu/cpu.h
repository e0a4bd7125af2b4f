/* cpu.h: what the files of the cpu backend share. */
#pragma once

#include <cria/cria.h>
#include <cria/cria-backend.h>

typedef struct _CpuPool CpuPool;

/* Runs fn over [0, n) in chunks of `grain` items on the pool's threads
 * (the caller is one of them); `thread` indexes per-thread scratch. */
typedef void (*CpuTaskFunc) (gpointer ctx, gint64 begin, gint64 end, int thread);

/* Workers spin up to spin_us microseconds for the next job before sleeping. */
CpuPool *cpu_pool_new (int n_threads, gint64 spin_us);
void cpu_pool_free (CpuPool *pool);
int cpu_pool_n_threads (CpuPool *pool);
void cpu_pool_run (CpuPool *pool, gint64 n, gint64 grain, CpuTaskFunc fn, gpointer ctx);

typedef enum { CPU_ISA_GENERIC, CPU_ISA_AVX2, CPU_ISA_AVX512, CPU_N_ISAS } CpuIsa;

typedef struct {
  CpuPool *pool;
  CpuIsa isa;
  gboolean has_bf16;       /* AVX-512-BF16 present */
  gboolean amx;            /* the packed bf16 products on AMX tiles (cpu-amx.c) */
  gboolean bf16_dot;       /* bf16 weights times activations rounded to bf16 (cpu-gemm.c) */
  gboolean attention_rows; /* the previous attention kernels (cpu-attention.c) */
  gboolean fuse;           /* matmul epilogues (cpu-linear.c) */
  float **scratch;         /* per thread */
  gsize *scratch_size;
  /* A packed for the f32 kernels, kept between products (cpu-gemm.c) */
  float *packed_a;
  gsize packed_a_size; /* floats */
  /* the logits of an lm_head_ce forward, kept for its backward (cpu-linear.c) */
  float *ce_keep;
  gsize ce_keep_size;           /* floats */
  const CriaNode *ce_keep_node; /* whose logits ce_keep holds, or NULL */
  /* the last big block freed, kept for the next alloc (cpu.c) */
  GMutex spare_lock;
  char *spare;
} CpuBackend;

/* Per-thread scratch of at least n floats, kept between calls. */
float *cpu_scratch (CpuBackend *be, int thread, gsize n);
const char *cpu_isa_name (CpuIsa isa);

/* C(i,n) (+)= sum_k A(i,k) B(k,n) for i < M, n < N, k < K, with
 * A(i,k) = A[i*rsa + k*csa] (f32), B(k,n) = B[k*rsb + n*csb] (f32, bf16 or
 * f16), C row-major with row stride ldc. Accumulates when `accumulate`.
 * For an nf4 btype, B is the CriaTensor itself (codes and block scales) and
 * the strides index its flattened elements; panels are dequantized as they
 * are packed, so the f32 weight never exists whole. */
void cpu_gemm (CpuBackend *be, gint64 M, gint64 N, gint64 K, const float *A, gint64 rsa, gint64 csa, const void *B,
               CriaDType btype, gint64 rsb, gint64 csb, float *C, gint64 ldc, gboolean accumulate);

/* AMX (cpu-amx.c). cpu_amx_init: whether the processor has AMX-BF16 and
 * the kernel lets this process use the tiles (asked once a process). A
 * thread brackets its kernel calls with cpu_amx_begin and cpu_amx_end (the
 * tile configuration is a thread's). cpu_amx_kernel_bf16: the bf16 packed
 * path's micro-kernel (cpu-gemm.c) on an mr x nr block of C, mr and nr up
 * to 32: K2 pair words of A (rows lda words apart, read for 16 or 32 rows
 * whatever mr is) times the panel Bp (32 words a pair, zero from K2 to the
 * next multiple of 16). cpu_amx_dot_bf16: the dot-product path's (decoding),
 * with the weight read in place (see cpu-amx.c). */
gboolean cpu_amx_init (void);
void cpu_amx_begin (void);
void cpu_amx_end (void);
void cpu_amx_kernel_bf16 (gint64 K2, const guint32 *A, gint64 lda, const guint32 *Bp, float *C, gint64 ldc, int mr,
                          int nr, gboolean accumulate);
void cpu_amx_dot_bf16 (const guint16 *W, gint64 ldw, int nn, gint64 K, const guint32 *bv, gint64 k2p, int blocks,
                       float (*out)[16][16]);

/* Vectorized exp and the activations on it (cpu-vmath.c), one table per
 * ISA. Element-wise over n floats; the _grad ones add into dx. */
typedef struct {
  void (*exp) (const float *x, float *y, gint64 n);
  void (*gelu) (const float *x, float *y, gint64 n); /* tanh approximation */
  void (*gelu_grad) (const float *x, const float *dy, float *dx, gint64 n);
  void (*silu) (const float *x, float *y, gint64 n);
  void (*silu_grad) (const float *x, const float *dy, float *dx, gint64 n);
  void (*swiglu) (const float *g, const float *u, float *y, gint64 n);
  /* dg += dy u silu'(g), du += dy silu(g); either may be NULL */
  void (*swiglu_grad) (const float *g, const float *u, const float *dy, float *dg, float *du, gint64 n);
  float (*max) (const float *x, gint64 n);
  /* y = exp(x - m) when y is not NULL; returns the sum of exp(x - m) */
  float (*exp_sum) (const float *x, float m, float *y, gint64 n);
  void (*exp_scale) (float *x, float m, float g, gint64 n); /* x = g exp(x - m) */
} CpuVmath;
extern const CpuVmath cpu_vmath[CPU_N_ISAS];

/* cpu_gemm into the value of the first node of matmul `node`'s epilogue
 * (C), running the epilogue on each block of C as the block is finished. */
void cpu_gemm_epilogue (CpuBackend *be, const CriaNode *node, gint64 M, gint64 N, gint64 K, const float *A, gint64 rsa,
                        gint64 csa, const void *B, CriaDType btype, gint64 rsb, gint64 csb, float *C, gint64 ldc);
/* The epilogue of matmul `node` (cpu-linear.c) on rows [i0, i1) and columns
 * [n0, n0 + nc) of its product, which is in the first epilogue node's value. */
void cpu_epilogue (CpuBackend *be, const CriaNode *node, gint64 i0, gint64 i1, gint64 n0, gint64 nc);
gboolean cpu_fuses (gpointer be, const CriaNode *matmul, const CriaNode *next);

/* For plain loops (element-wise, or summing each column in row order) that
 * GCC's -O2 left scalar: cloned for AVX-512 and AVX2 and vectorized. Vector
 * lanes are separate elements and fp-contract=off keeps every product
 * rounded as in the plain C, so the floats do not change. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CPU_VECTORIZED                                                                                                 \
  __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize ("O3", "fp-contract=off")))
#else
#define CPU_VECTORIZED
#endif

/* Kernels, by file. */
gboolean cpu_matmul_forward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_matmul_backward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_attention_forward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_attention_backward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_lm_head_ce_forward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_lm_head_ce_backward (gpointer be, CriaNode *node, GError **error);
gboolean cpu_dequantize_forward (gpointer be, CriaNode *node, GError **error);
extern const CriaKernel cpu_elementwise_kernels[]; /* CRIA_N_OPS entries */

static inline float *
cpu_f32 (CriaTensor *t)
{
  return (float *) t->data;
}

static inline gint64
cpu_numel (const CriaNode *n)
{
  return cria_shape_numel (n->n_dims, n->shape);
}

/* f32 row of a weight in any float type: returns src itself when f32, else
 * converts into buf. */
static inline const float *
cpu_row_f32 (const CriaTensor *t, gint64 offset, gint64 n, float *buf)
{
  if (t->dtype == CRIA_DTYPE_F32)
    return (const float *) t->data + offset;
  cria_convert_to_f32 (t->dtype, (const guint16 *) t->data + offset, buf, (gsize) n);
  return buf;
}
