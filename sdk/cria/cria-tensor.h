/* cria-tensor.h: dense tensors and the conversions between their element types.
 *
 * A tensor is row-major and contiguous (the last dimension varies fastest).
 * Its data is either owned (freed with the tensor) or borrowed from memory that
 * someone else owns, such as a memory-mapped model file; the owner is kept
 * alive by a destroy notify. Tensors are reference counted so that a graph and
 * a model can share one weight. */
#pragma once

#include <cria/cria-dtype.h>

G_BEGIN_DECLS

#define CRIA_MAX_DIMS 4

/* The block scales of an NF4 tensor (cria-nf4.h). */
typedef struct _CriaNf4State CriaNf4State;

typedef struct {
  CriaDType dtype;
  int n_dims;
  gint64 shape[CRIA_MAX_DIMS]; /* entries past n_dims are 1 */
  void *data;
  CriaNf4State *nf4; /* NF4 only: the quantization state, owned by the tensor */
  /* private */
  gint ref_count;
  GDestroyNotify release;
  gpointer release_data;
  gpointer device; /* the CriaBackend whose device memory `data` is in; NULL: host memory */
} CriaTensor;

/* A zero-filled tensor owning 64-byte aligned memory. */
CriaTensor *cria_tensor_new (CriaDType dtype, int n_dims, const gint64 *shape);
/* A tensor over `data`, which stays valid until `release (release_data)` is
 * called when the last reference goes (release may be NULL). */
CriaTensor *cria_tensor_new_borrowed (CriaDType dtype, int n_dims, const gint64 *shape, void *data,
                                      GDestroyNotify release, gpointer release_data);
CriaTensor *cria_tensor_ref (CriaTensor *tensor);
void cria_tensor_unref (CriaTensor *tensor);

gint64 cria_tensor_numel (const CriaTensor *tensor);
gsize cria_tensor_nbytes (const CriaTensor *tensor);
/* Elements of a shape; 0 for an invalid one (a dimension < 1, or overflow). */
gint64 cria_shape_numel (int n_dims, const gint64 *shape);
/* "[2, 3, 4]": for error messages. Free with g_free. */
char *cria_shape_to_string (int n_dims, const gint64 *shape);
/* A new f32 tensor holding the values of any float tensor (f32/bf16/f16, or
 * NF4 with its state). */
CriaTensor *cria_tensor_to_f32 (const CriaTensor *tensor);

/* bf16 keeps the top 16 bits of an f32; f16 is IEEE binary16. Conversions
 * from f32 round to nearest, ties to even; NaN stays NaN. */
static inline float
cria_bf16_to_f32 (guint16 h)
{
  union {
    guint32 u;
    float f;
  } v = { .u = (guint32) h << 16 };
  return v.f;
}

static inline guint16
cria_f32_to_bf16 (float f)
{
  union {
    float f;
    guint32 u;
  } v = { .f = f };
  if ((v.u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((v.u >> 16) | 0x40); /* keep NaN a (quiet) NaN */
  v.u += 0x7fffu + ((v.u >> 16) & 1u);
  return (guint16) (v.u >> 16);
}

float cria_f16_to_f32 (guint16 h);
guint16 cria_f32_to_f16 (float f);

/* Converts n elements of a float type to f32 and back. */
void cria_convert_to_f32 (CriaDType dtype, const void *src, float *dst, gsize n);
void cria_convert_from_f32 (CriaDType dtype, const float *src, void *dst, gsize n);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaTensor, cria_tensor_unref)

G_END_DECLS
