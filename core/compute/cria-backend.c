/* cria-backend.c: creating backends from their providers, and moving data
 * in and out of a device backend's memory. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-nf4.h>
#include "cria-graph-private.h"

struct _CriaBackend {
  const CriaBackendVTable *vt;
  gpointer self;
  char *name;
  gboolean device; /* memory the host cannot address (contract 1.1) */
  /* Device memory: host tensor -> its resident copy (both referenced). */
  GHashTable *resident;
};

/* Whether a vtable is long enough to hold `member` (a non-pointer member,
 * which CRIA_VTABLE_HAS cannot test). */
#define VTABLE_HOLDS(vt_, member_)                                                                                     \
  ((vt_)->size >= G_STRUCT_OFFSET (CriaBackendVTable, member_) + sizeof ((vt_)->member_))

CriaBackend *
cria_backend_new (const CriaProvider *provider, const CriaProps *props, GError **error)
{
  g_return_val_if_fail (provider != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (cria_provider_get_kind (provider) == CRIA_KIND_BACKEND, NULL);
  const CriaBackendVTable *vt = cria_provider_get_vtable (provider);
  gboolean device = VTABLE_HOLDS (vt, device_memory) && vt->device_memory;
  if (device && !(CRIA_VTABLE_HAS (vt, upload) && CRIA_VTABLE_HAS (vt, download) && CRIA_VTABLE_HAS (vt, copy))) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "backend '%s' has device memory but no upload, download or copy entry",
                 cria_provider_get_name (provider));
    return NULL;
  }
  gpointer self = vt->create (props, error);
  if (!self)
    return NULL;
  CriaBackend *b = g_new0 (CriaBackend, 1);
  b->vt = vt;
  b->self = self;
  b->name = g_strdup (cria_provider_get_name (provider));
  b->device = device;
  if (device)
    b->resident = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) cria_tensor_unref,
                                         (GDestroyNotify) cria_tensor_unref);
  return b;
}

CriaBackend *
cria_backend_open (CriaRegistry *registry, const char *name, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProvider *p = cria_registry_require (registry, CRIA_KIND_BACKEND, name, error);
  if (!p)
    return NULL;
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  return cria_backend_new (p, props, error);
}

void
cria_backend_free (CriaBackend *b)
{
  if (!b)
    return;
  /* the resident copies are the backend's memory: freed while it lives */
  g_clear_pointer (&b->resident, g_hash_table_unref);
  b->vt->destroy (b->self);
  g_free (b->name);
  g_free (b);
}

char *
cria_backend_describe (CriaBackend *b)
{
  g_return_val_if_fail (b != NULL, NULL);
  return b->vt->describe ? b->vt->describe (b->self) : g_strdup (b->name);
}

const char *
cria_backend_get_name (CriaBackend *b)
{
  g_return_val_if_fail (b != NULL, NULL);
  return b->name;
}

gboolean
cria_backend_supports (CriaBackend *b, const CriaNode *node, GError **error)
{
  g_return_val_if_fail (b != NULL && node != NULL, FALSE);
  if ((guint) node->op >= b->vt->n_kernels || !b->vt->kernels[node->op].forward) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "backend '%s' does not implement op '%s'", b->name,
                 cria_op_name (node->op));
    return FALSE;
  }
  if (CRIA_VTABLE_HAS (b->vt, supports_op) && !b->vt->supports_op (b->self, node)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "backend '%s' does not support op '%s' on %s", b->name,
                 cria_op_name (node->op), cria_dtype_name (node->dtype));
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_backend_fuses (CriaBackend *b, const CriaNode *matmul, const CriaNode *next)
{
  g_return_val_if_fail (b != NULL && matmul != NULL && next != NULL, FALSE);
  return CRIA_VTABLE_HAS (b->vt, fuses) && b->vt->fuses (b->self, matmul, next);
}

static gboolean
run_kernel (CriaBackend *b, CriaNode *node, gboolean backward, GError **error)
{
  /* Planning checked the op; a kernel table shorter than the op set is never
   * read past all the same. */
  if ((guint) node->op >= b->vt->n_kernels)
    return cria_backend_supports (b, node, error);
  const CriaKernel *k = &b->vt->kernels[node->op];
  gboolean (*fn) (gpointer, CriaNode *, GError **) = backward ? k->backward : k->forward;
  if (!fn) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "backend %s has no %s kernel for %s", b->name,
                 backward ? "backward" : "forward", cria_op_name (node->op));
    return FALSE;
  }
  return fn (b->self, node, error);
}

gboolean
cria_backend_forward (CriaBackend *b, CriaNode *node, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (node != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return run_kernel (b, node, FALSE, error);
}

gboolean
cria_backend_backward (CriaBackend *b, CriaNode *node, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (node != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return run_kernel (b, node, TRUE, error);
}

gpointer
cria_backend_alloc_internal (CriaBackend *b, gsize bytes, GError **error)
{
  return b->vt->alloc (b->self, bytes, error);
}

void
cria_backend_free_internal (CriaBackend *b, gpointer mem)
{
  if (mem)
    b->vt->free (b->self, mem);
}

void
cria_backend_zero_internal (CriaBackend *b, gpointer mem, gsize bytes)
{
  b->vt->zero (b->self, mem, bytes);
}

/* ---- device memory ----------------------------------------------------------- */

gboolean
cria_backend_is_host (CriaBackend *b)
{
  g_return_val_if_fail (b != NULL, TRUE);
  return !b->device;
}

gboolean
cria_backend_synchronize (CriaBackend *b, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!CRIA_VTABLE_HAS (b->vt, synchronize))
    return TRUE;
  return b->vt->synchronize (b->self, error);
}

gboolean
cria_backend_upload_internal (CriaBackend *b, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  if (!b->device) {
    memcpy (dst, src, bytes);
    return TRUE;
  }
  if (!b->vt->upload (b->self, dst, src, bytes, error)) {
    g_prefix_error (error, "backend '%s': upload of %" G_GSIZE_FORMAT " bytes: ", b->name, bytes);
    return FALSE;
  }
  return TRUE;
}

static gboolean
download (CriaBackend *b, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  if (!b->vt->download (b->self, dst, src, bytes, error)) {
    g_prefix_error (error, "backend '%s': download of %" G_GSIZE_FORMAT " bytes: ", b->name, bytes);
    return FALSE;
  }
  return TRUE;
}

typedef struct {
  CriaBackend *backend;
  gpointer mem;
} DeviceMem;

static void
device_mem_free (gpointer data)
{
  DeviceMem *d = data;
  cria_backend_free_internal (d->backend, d->mem);
  g_free (d);
}

/* A zero-filled tensor over `bytes` of device memory. */
static CriaTensor *
device_tensor_new (CriaBackend *b, CriaDType dtype, int n_dims, const gint64 *shape, gsize bytes, GError **error)
{
  gpointer mem = cria_backend_alloc_internal (b, bytes, error);
  if (!mem)
    return NULL;
  cria_backend_zero_internal (b, mem, bytes);
  DeviceMem *d = g_new (DeviceMem, 1);
  d->backend = b;
  d->mem = mem;
  CriaTensor *t = cria_tensor_new_borrowed (dtype, n_dims, shape, mem, device_mem_free, d);
  t->device = b;
  return t;
}

CriaTensor *
cria_backend_tensor_new (CriaBackend *b, CriaDType dtype, int n_dims, const gint64 *shape, GError **error)
{
  g_return_val_if_fail (b != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!b->device)
    return cria_tensor_new (dtype, n_dims, shape);
  gsize bytes = MAX (cria_dtype_bytes (dtype, (gsize) cria_shape_numel (n_dims, shape)), 64);
  return device_tensor_new (b, dtype, n_dims, shape, bytes, error);
}

/* The pieces of an NF4 tensor in device memory (cria_nf4_device_layout):
 * where each is in the host tensor, and at which offset of the device one. */
typedef struct {
  gpointer host;
  gsize offset, bytes;
} Nf4Part;

static guint
nf4_parts (CriaTensor *host, Nf4Part parts[5])
{
  CriaNf4Layout l;
  cria_nf4_device_layout (host, &l);
  CriaNf4State *s = host->nf4;
  guint n = 0;
  parts[n++] = (Nf4Part){ host->data, 0, cria_tensor_nbytes (host) };
  if (s->n_nested) {
    parts[n++] = (Nf4Part){ s->absmax, l.absmax, (gsize) s->n_blocks };
    parts[n++] = (Nf4Part){ s->nested_absmax, l.nested_absmax, (gsize) s->n_nested * sizeof (float) };
  } else {
    parts[n++] = (Nf4Part){ s->absmax_f32, l.absmax, (gsize) s->n_blocks * sizeof (float) };
  }
  parts[n++] = (Nf4Part){ s->quant_map, l.quant_map, sizeof s->quant_map };
  parts[n++] = (Nf4Part){ s->nested_quant_map, l.nested_quant_map, sizeof s->nested_quant_map };
  return n;
}

/* What the device copy `t` of a host tensor holds: its data, or all of an
 * NF4 tensor. */
static gboolean
upload_tensor (CriaBackend *b, CriaTensor *t, CriaTensor *host, GError **error)
{
  if (host->dtype != CRIA_DTYPE_NF4)
    return cria_backend_upload_internal (b, t->data, host->data, cria_tensor_nbytes (host), error);
  Nf4Part parts[5];
  guint n = nf4_parts (host, parts);
  for (guint i = 0; i < n; i++)
    if (!cria_backend_upload_internal (b, (char *) t->data + parts[i].offset, parts[i].host, parts[i].bytes, error))
      return FALSE;
  return TRUE;
}

/* The resident copy of an NF4 tensor: one allocation of the device layout;
 * its state's scalars and maps stay on the host too, its arrays do not. */
static CriaTensor *
nf4_resident_new (CriaBackend *b, CriaTensor *host, GError **error)
{
  /* only a backend with a dequantize kernel knows the device layout */
  if ((guint) CRIA_OP_DEQUANTIZE >= b->vt->n_kernels || !b->vt->kernels[CRIA_OP_DEQUANTIZE].forward) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "backend '%s' has no dequantize kernel: NF4 weights cannot go to its memory", b->name);
    return NULL;
  }
  CriaNf4Layout l;
  cria_nf4_device_layout (host, &l);
  CriaTensor *t = device_tensor_new (b, CRIA_DTYPE_NF4, host->n_dims, host->shape, l.bytes, error);
  if (!t)
    return NULL;
  t->nf4 = g_memdup2 (host->nf4, sizeof *host->nf4);
  t->nf4->absmax = NULL;
  t->nf4->nested_absmax = NULL;
  t->nf4->absmax_f32 = NULL;
  return t;
}

/* Drops the resident copies of host tensors nobody else holds any more (a
 * graph's own small params, such as rotary frequencies). */
static void
prune_resident (CriaBackend *b)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, b->resident);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (g_atomic_int_get (&((CriaTensor *) key)->ref_count) == 1)
      g_hash_table_iter_remove (&it);
}

CriaTensor *
cria_backend_get_resident (CriaBackend *b, CriaTensor *host, GError **error)
{
  g_return_val_if_fail (b != NULL, NULL);
  g_return_val_if_fail (host != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!b->device || host->device)
    return cria_tensor_ref (host);
  CriaTensor *t = g_hash_table_lookup (b->resident, host);
  if (t)
    return cria_tensor_ref (t);
  prune_resident (b);
  t = host->dtype == CRIA_DTYPE_NF4 ? nf4_resident_new (b, host, error)
                                    : cria_backend_tensor_new (b, host->dtype, host->n_dims, host->shape, error);
  if (!t || !upload_tensor (b, t, host, error)) {
    g_clear_pointer (&t, cria_tensor_unref);
    return NULL;
  }
  g_hash_table_insert (b->resident, cria_tensor_ref (host), cria_tensor_ref (t));
  return t;
}

gboolean
cria_backend_update_tensor (CriaBackend *b, CriaTensor *host, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (host != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  CriaTensor *t = b->device ? g_hash_table_lookup (b->resident, host) : NULL;
  return !t || upload_tensor (b, t, host, error);
}

gboolean
cria_tensor_is_device (const CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, FALSE);
  return tensor->device != NULL;
}

gboolean
cria_tensor_read (const CriaTensor *tensor, gsize offset, gpointer dst, gsize bytes, GError **error)
{
  g_return_val_if_fail (tensor != NULL, FALSE);
  g_return_val_if_fail (dst != NULL || bytes == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (offset <= cria_tensor_nbytes (tensor) && bytes <= cria_tensor_nbytes (tensor) - offset, FALSE);
  if (!tensor->device) {
    memcpy (dst, (const char *) tensor->data + offset, bytes);
    return TRUE;
  }
  return download (tensor->device, dst, (const char *) tensor->data + offset, bytes, error);
}

gboolean
cria_tensor_read_f32 (const CriaTensor *tensor, gsize first, float *dst, gsize n, GError **error)
{
  g_return_val_if_fail (tensor != NULL, FALSE);
  g_return_val_if_fail (
      tensor->dtype == CRIA_DTYPE_F32 || tensor->dtype == CRIA_DTYPE_BF16 || tensor->dtype == CRIA_DTYPE_F16, FALSE);
  if (tensor->dtype == CRIA_DTYPE_F32)
    return cria_tensor_read (tensor, first * sizeof (float), dst, n * sizeof (float), error);
  /* two bytes an element cross (half of f32's); widened here */
  g_autofree guint16 *half = g_new (guint16, MAX (n, 1));
  if (!cria_tensor_read (tensor, first * sizeof (guint16), half, n * sizeof (guint16), error))
    return FALSE;
  cria_convert_to_f32 (tensor->dtype, half, dst, n);
  return TRUE;
}

/* The dtype a backend stores a node's value in (contract 1.3): node->dtype,
 * or bf16 for an f32 node where the backend asks for it. */
CriaDType
cria_backend_value_dtype (CriaBackend *b, const CriaNode *node)
{
  if (node->dtype != CRIA_DTYPE_F32 || !CRIA_VTABLE_HAS (b->vt, value_dtype))
    return node->dtype;
  return b->vt->value_dtype (b->self, node) == CRIA_DTYPE_BF16 ? CRIA_DTYPE_BF16 : node->dtype;
}

gboolean
cria_tensor_write (CriaTensor *tensor, gsize offset, gconstpointer src, gsize bytes, GError **error)
{
  g_return_val_if_fail (tensor != NULL, FALSE);
  g_return_val_if_fail (src != NULL || bytes == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (offset <= cria_tensor_nbytes (tensor) && bytes <= cria_tensor_nbytes (tensor) - offset, FALSE);
  if (!tensor->device) {
    memcpy ((char *) tensor->data + offset, src, bytes);
    return TRUE;
  }
  return cria_backend_upload_internal (tensor->device, (char *) tensor->data + offset, src, bytes, error);
}

void
cria_tensor_zero (CriaTensor *tensor)
{
  g_return_if_fail (tensor != NULL);
  if (!tensor->device)
    memset (tensor->data, 0, cria_tensor_nbytes (tensor));
  else
    cria_backend_zero_internal (tensor->device, tensor->data, cria_tensor_nbytes (tensor));
}

CriaTensor *
cria_tensor_to_host (CriaTensor *tensor, GError **error)
{
  g_return_val_if_fail (tensor != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!tensor->device)
    return cria_tensor_ref (tensor);
  g_autoptr (CriaTensor) t = cria_tensor_new (tensor->dtype, tensor->n_dims, tensor->shape);
  if (tensor->dtype != CRIA_DTYPE_NF4)
    return download (tensor->device, t->data, tensor->data, cria_tensor_nbytes (tensor), error) ? g_steal_pointer (&t)
                                                                                                : NULL;
  /* an NF4 tensor: every part of its device layout, into a state of its own */
  CriaNf4State *s = t->nf4 = g_memdup2 (tensor->nf4, sizeof *tensor->nf4);
  if (s->n_nested) {
    s->absmax = g_new (guint8, s->n_blocks);
    s->nested_absmax = g_new (float, s->n_nested);
  } else {
    s->absmax_f32 = g_new (float, s->n_blocks);
  }
  Nf4Part parts[5];
  guint n = nf4_parts (t, parts);
  for (guint i = 0; i < n; i++)
    if (!download (tensor->device, parts[i].host, (const char *) tensor->data + parts[i].offset, parts[i].bytes, error))
      return NULL;
  return g_steal_pointer (&t);
}

/* ---- the optimizer step (contract 1.2) ------------------------------------------ */

gboolean
cria_backend_has_optimizer (CriaBackend *b)
{
  g_return_val_if_fail (b != NULL, FALSE);
  return b->device && CRIA_VTABLE_HAS (b->vt, accumulate) && CRIA_VTABLE_HAS (b->vt, grad_sumsq) &&
         CRIA_VTABLE_HAS (b->vt, adamw_step);
}

static gboolean
optimizer_failed (CriaBackend *b, const char *what, GError **error)
{
  g_prefix_error (error, "backend '%s': %s: ", b->name, what);
  return FALSE;
}

gboolean
cria_backend_accumulate (CriaBackend *b, float *dst, const float *src, gsize n, GError **error)
{
  g_return_val_if_fail (b != NULL && cria_backend_has_optimizer (b), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return b->vt->accumulate (b->self, dst, src, n, error) || optimizer_failed (b, "accumulate", error);
}

gboolean
cria_backend_grad_sumsq (CriaBackend *b, const CriaOptimSpan *spans, guint n_spans, float pre, double *sumsq,
                         GError **error)
{
  g_return_val_if_fail (b != NULL && cria_backend_has_optimizer (b), FALSE);
  g_return_val_if_fail (spans != NULL || n_spans == 0, FALSE);
  g_return_val_if_fail (sumsq != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return b->vt->grad_sumsq (b->self, spans, n_spans, pre, sumsq, error) || optimizer_failed (b, "gradient norm", error);
}

gboolean
cria_backend_adamw_step (CriaBackend *b, const CriaOptimSpan *spans, guint n_spans, const CriaAdamwScalars *s,
                         GError **error)
{
  g_return_val_if_fail (b != NULL && cria_backend_has_optimizer (b), FALSE);
  g_return_val_if_fail (spans != NULL || n_spans == 0, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return b->vt->adamw_step (b->self, spans, n_spans, s, error) || optimizer_failed (b, "AdamW step", error);
}

gboolean
cria_backend_copy (CriaBackend *b, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  g_return_val_if_fail (b != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!b->device) {
    memmove (dst, src, bytes);
    return TRUE;
  }
  if (!b->vt->copy (b->self, dst, src, bytes, error)) {
    g_prefix_error (error, "backend '%s': copy of %" G_GSIZE_FORMAT " bytes: ", b->name, bytes);
    return FALSE;
  }
  return TRUE;
}
