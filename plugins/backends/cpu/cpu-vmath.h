/* cpu-vmath.h: the activations built on cpu-vexp.h's exp and the row
 * reductions of softmax, the body of one instruction set (cpu-vmath.c
 * compiles it through cpu-each-isa.h). They are written with exp(-2u) and
 * exp(-x) only: tanh-GELU is x / (1 + e^(-2u)), which is 0.5 x (1 + tanh u)
 * without the cancellation of 1 + tanh u for negative u, and SiLU is
 * x / (1 + e^(-x)). Row ends shorter than a vector go through a padded copy, so every element
 * gets the same polynomial; sums run per lane, then across the lanes, then
 * the tail, in a fixed order (bitwise reproducible). */

#include "cpu-vexp.h"

/* 1 - s for s = 1 / (1 + e): e s where s is near 1 (e <= 1), which keeps
 * the digits that 1 - s cancels; 1 - s elsewhere (e may be infinite). */
static inline V
VM (one_minus) (V s, V e)
{
  return VM (select) (e <= VM (splat) (1.0f), e * s, 1.0f - s);
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* e^(-2u), u = c (x + a x^3): 1 / (1 + that) is (1 + tanh u) / 2 */
static inline V
VM (gelu_e) (V x)
{
  return VM (exp) (x * (-2.0f * GELU_C) * (1.0f + GELU_A * x * x));
}

/* A function of the row's elements, W at a time, the tail through a padded
 * copy (padding zeros: exp(0) and the activations of 0 are finite). */
#define VM_EACH(n, ...)                                                                                                \
  do {                                                                                                                 \
    gint64 i_ = 0;                                                                                                     \
    for (; i_ + W <= (n); i_ += W) {                                                                                   \
      gint64 off = i_;                                                                                                 \
      int len = W;                                                                                                     \
      __VA_ARGS__                                                                                                      \
    }                                                                                                                  \
    if (i_ < (n)) {                                                                                                    \
      gint64 off = i_;                                                                                                 \
      int len = (int) ((n) -i_);                                                                                       \
      __VA_ARGS__                                                                                                      \
    }                                                                                                                  \
  } while (0)

static inline V
VM (load) (const float *p, int len)
{
  if (len == W)
    return *(const V *) p;
  V v = { 0 };
  memcpy (&v, p, (gsize) len * sizeof (float));
  return v;
}

static inline void
VM (store) (float *p, V v, int len)
{
  if (len == W)
    *(V *) p = v;
  else
    memcpy (p, &v, (gsize) len * sizeof (float));
}

static void
VM (exp_array) (const float *x, float *y, gint64 n)
{
  VM_EACH (n, VM (store) (y + off, VM (exp) (VM (load) (x + off, len)), len););
}

static void
VM (gelu) (const float *x, float *y, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (x + off, len);
    VM (store) (y + off, v / (1.0f + VM (gelu_e) (v)), len);
  });
}

/* dx += dy gelu'(x); with s = 1 / (1 + e^(-2u)):
 * gelu' = s + 2 x s (1 - s) c (1 + 3 a x^2) */
static void
VM (gelu_grad) (const float *x, const float *dy, float *dx, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (x + off, len), e = VM (gelu_e) (v);
    V s = 1.0f / (1.0f + e);
    V d = s + 2.0f * v * s * VM (one_minus) (s, e) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
    VM (store) (dx + off, VM (load) (dx + off, len) + VM (load) (dy + off, len) * d, len);
  });
}

static void
VM (silu) (const float *x, float *y, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (x + off, len);
    VM (store) (y + off, v / (1.0f + VM (exp) (-v)), len);
  });
}

/* dx += dy s (1 + x (1 - s)), s = sigmoid(x) */
static void
VM (silu_grad) (const float *x, const float *dy, float *dx, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (x + off, len), e = VM (exp) (-v);
    V s = 1.0f / (1.0f + e);
    VM (store)
    (dx + off, VM (load) (dx + off, len) + VM (load) (dy + off, len) * s * (1.0f + v * VM (one_minus) (s, e)), len);
  });
}

/* y = silu(g) u */
static void
VM (swiglu) (const float *g, const float *u, float *y, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (g + off, len);
    VM (store) (y + off, v / (1.0f + VM (exp) (-v)) * VM (load) (u + off, len), len);
  });
}

/* dg += dy u silu'(g) and du += dy silu(g), either NULL */
static void
VM (swiglu_grad) (const float *g, const float *u, const float *dy, float *dg, float *du, gint64 n)
{
  VM_EACH (n, {
    V v = VM (load) (g + off, len), d = VM (load) (dy + off, len), e = VM (exp) (-v);
    V s = 1.0f / (1.0f + e);
    if (dg) {
      V dsilu = s * (1.0f + v * VM (one_minus) (s, e));
      VM (store) (dg + off, VM (load) (dg + off, len) + d * VM (load) (u + off, len) * dsilu, len);
    }
    if (du)
      VM (store) (du + off, VM (load) (du + off, len) + d * (v * s), len);
  });
}

static float
VM (hsum) (V v)
{
  float s = 0;
  for (int j = 0; j < W; j++)
    s += v[j];
  return s;
}

/* max of x[0..n), -inf when n is 0 */
static float
VM (max) (const float *x, gint64 n)
{
  V m = VM (splat) (-INFINITY);
  gint64 i = 0;
  for (; i + W <= n; i += W) {
    V v = *(const V *) (x + i);
    m = VM (select) (v > m, v, m);
  }
  float r = -INFINITY;
  for (int j = 0; j < W; j++)
    r = MAX (r, m[j]);
  for (; i < n; i++)
    r = MAX (r, x[i]);
  return r;
}

/* y = exp(x - m) (y may be NULL), returns the sum of those */
static float
VM (exp_sum) (const float *x, float m, float *y, gint64 n)
{
  V acc = { 0 };
  float tail = 0;
  VM_EACH (n, {
    V e = VM (exp) (VM (load) (x + off, len) - m);
    if (y)
      VM (store) (y + off, e, len);
    if (len == W) {
      acc += e;
    } else {
      for (int j = 0; j < len; j++)
        tail += e[j];
    }
  });
  return VM (hsum) (acc) + tail;
}

/* x = g exp(x - m) */
static void
VM (exp_scale) (float *x, float m, float g, gint64 n)
{
  VM_EACH (n, VM (store) (x + off, g * VM (exp) (VM (load) (x + off, len) - m), len););
}
