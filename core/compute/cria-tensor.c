/* cria-tensor.c: tensor lifetime and element type conversions. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-nf4.h>

gint64
cria_shape_numel (int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (shape != NULL || n_dims <= 0, 0);
  if (n_dims < 0 || n_dims > CRIA_MAX_DIMS)
    return 0;
  gint64 n = 1;
  for (int i = 0; i < n_dims; i++) {
    if (shape[i] < 1 || n > G_MAXINT64 / 8 / shape[i])
      return 0;
    n *= shape[i];
  }
  return n;
}

char *
cria_shape_to_string (int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (shape != NULL || n_dims <= 0, NULL);
  GString *s = g_string_new ("[");
  for (int i = 0; i < n_dims; i++)
    g_string_append_printf (s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static CriaTensor *
tensor_alloc (CriaDType dtype, int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (n_dims >= 0 && n_dims <= CRIA_MAX_DIMS, NULL);
  CriaTensor *t = g_new0 (CriaTensor, 1);
  t->dtype = dtype;
  t->n_dims = n_dims;
  for (int i = 0; i < CRIA_MAX_DIMS; i++)
    t->shape[i] = i < n_dims ? shape[i] : 1;
  t->ref_count = 1;
  return t;
}

CriaTensor *
cria_tensor_new (CriaDType dtype, int n_dims, const gint64 *shape)
{
  g_return_val_if_fail (shape != NULL || n_dims == 0, NULL);
  CriaTensor *t = tensor_alloc (dtype, n_dims, shape);
  gsize bytes = cria_tensor_nbytes (t);
  /* Aligned for the widest vector loads of any backend kernel. */
  t->data = g_aligned_alloc0 (1, MAX (bytes, 64), 64);
  t->release = g_aligned_free;
  t->release_data = t->data;
  return t;
}

CriaTensor *
cria_tensor_new_borrowed (CriaDType dtype, int n_dims, const gint64 *shape, void *data, GDestroyNotify release,
                          gpointer release_data)
{
  g_return_val_if_fail (shape != NULL || n_dims == 0, NULL);
  CriaTensor *t = tensor_alloc (dtype, n_dims, shape);
  t->data = data;
  t->release = release;
  t->release_data = release_data;
  return t;
}

CriaTensor *
cria_tensor_ref (CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, NULL);
  g_atomic_int_inc (&tensor->ref_count);
  return tensor;
}

void
cria_tensor_unref (CriaTensor *tensor)
{
  if (!tensor || !g_atomic_int_dec_and_test (&tensor->ref_count))
    return;
  if (tensor->release)
    tensor->release (tensor->release_data);
  cria_nf4_state_free (tensor->nf4);
  g_free (tensor);
}

gint64
cria_tensor_numel (const CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, 0);
  return cria_shape_numel (tensor->n_dims, tensor->shape);
}

gsize
cria_tensor_nbytes (const CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, 0);
  return cria_dtype_bytes (tensor->dtype, (gsize) cria_tensor_numel (tensor));
}

CriaTensor *
cria_tensor_to_f32 (const CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, NULL);
  if (tensor->dtype == CRIA_DTYPE_NF4)
    return cria_nf4_dequantize (tensor);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, tensor->n_dims, tensor->shape);
  cria_convert_to_f32 (tensor->dtype, tensor->data, t->data, (gsize) cria_tensor_numel (tensor));
  return t;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float
cria_f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000u) << 16;
  guint32 exp = (h >> 10) & 0x1fu;
  guint32 man = h & 0x3ffu;
  union {
    guint32 u;
    float f;
  } v;
  if (exp == 0) {
    /* zero or subnormal: man * 2^-24, exact in f32 */
    float f = ldexpf ((float) man, -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    v.u = sign | 0x7f800000u | (man << 13);
  else
    v.u = sign | ((exp + 112) << 23) | (man << 13);
  return v.f;
}

guint16
cria_f32_to_f16 (float f)
{
  union {
    float f;
    guint32 u;
  } v = { .f = f };
  guint16 sign = (guint16) ((v.u >> 16) & 0x8000u);
  guint32 a = v.u & 0x7fffffffu;
  if (a > 0x7f800000u)
    return sign | 0x7e00u;
  if (a >= 0x477ff000u) /* rounds to beyond 65504: infinity */
    return sign | 0x7c00u;
  if (a < 0x38800000u) {
    /* subnormal half: the value in units of 2^-24, rounded to nearest even */
    float x = fabsf (f) * 16777216.0f;
    return sign | (guint16) nearbyintf (x);
  }
  guint32 mant = a & 0x7fffffu;
  guint32 exp = (a >> 23) - 112;
  guint32 h = (exp << 10) | (mant >> 13);
  guint32 rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    h++; /* a carry into the exponent is the right result */
  return sign | (guint16) h;
}

/* Both directions in one place, so the two stay each other's inverse. */
static void
convert (CriaDType dtype, const void *src, void *dst, gsize n, gboolean to_f32)
{
  const float *fs = src;
  float *fd = dst;
  const guint16 *hs = src;
  guint16 *hd = dst;
  switch (dtype) {
    case CRIA_DTYPE_F32:
      memmove (dst, src, n * sizeof (float));
      break;
    case CRIA_DTYPE_BF16:
      for (gsize i = 0; i < n; i++) {
        if (to_f32)
          fd[i] = cria_bf16_to_f32 (hs[i]);
        else
          hd[i] = cria_f32_to_bf16 (fs[i]);
      }
      break;
    case CRIA_DTYPE_F16:
      for (gsize i = 0; i < n; i++) {
        if (to_f32)
          fd[i] = cria_f16_to_f32 (hs[i]);
        else
          hd[i] = cria_f32_to_f16 (fs[i]);
      }
      break;
    default:
      g_return_if_reached ();
  }
}

void
cria_convert_to_f32 (CriaDType dtype, const void *src, float *dst, gsize n)
{
  g_return_if_fail (src != NULL || n == 0);
  g_return_if_fail (dst != NULL || n == 0);
  convert (dtype, src, dst, n, TRUE);
}

void
cria_convert_from_f32 (CriaDType dtype, const float *src, void *dst, gsize n)
{
  g_return_if_fail (src != NULL || n == 0);
  g_return_if_fail (dst != NULL || n == 0);
  convert (dtype, src, dst, n, FALSE);
}
