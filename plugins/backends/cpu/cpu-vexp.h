/* cpu-vexp.h: exp on vectors, the body of one instruction set (SFX, V, VI
 * and W defined and the target set, as cpu-each-isa.h does), included by
 * cpu-vmath.h and by the attention kernels: one exp for every kernel.
 *
 * Cephes' expf polynomial on x - n ln 2, scaled by 2^n in two halves so that
 * results near the overflow and underflow ends (n = 128 or -149) need no
 * special case: within 2 ulp of libm's expf for normal results (test-vmath
 * measures it), +inf above ln(FLT_MAX), 0 below -104 and for -inf, NaN
 * kept. */

#ifndef VM
#define VM_CAT2(a, b) a##_##b
#define VM_CAT(a, b) VM_CAT2 (a, b)
#define VM(name) VM_CAT (name, SFX)
#endif

static inline V
VM (splat) (float x)
{
  V v = { 0 };
  return v + x;
}

static inline V
VM (select) (VI mask, V a, V b)
{
  return (V) (((VI) a & mask) | ((VI) b & ~mask));
}

static inline V
VM (exp) (V x)
{
  VI nan = x != x, over = x > VM (splat) (88.72283935546875f), under = x < VM (splat) (-104.0f);
  V xc = VM (select) (over | under | nan, VM (splat) (0.0f), x);
  V magic = VM (splat) (12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
  V n = (xc * 1.44269504088896341f + magic) - magic;
  V r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = VM (splat) (1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  /* 2^n as 2^(n/2) 2^(n - n/2): each half is a normal float for n in [-150, 128] */
  VI ni = __builtin_convertvector(n, VI), n1 = ni >> 1, n2 = ni - n1;
  V s1 = (V) ((n1 + 127) << 23), s2 = (V) ((n2 + 127) << 23);
  V y = p * s1 * s2;
  y = VM (select) (over, VM (splat) (INFINITY), y);
  y = VM (select) (under, VM (splat) (0.0f), y);
  return VM (select) (nan, x, y);
}
