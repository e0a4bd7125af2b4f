/* cria-backend.c: creating backends from their providers. */
#include "config.h"

#include <cria/cria-error.h>
#include "cria-graph-private.h"

struct _CriaBackend {
  const CriaBackendVTable *vt;
  gpointer self;
  char *name;
};

CriaBackend *
cria_backend_new (const CriaProvider *provider, const CriaProps *props, GError **error)
{
  g_return_val_if_fail (provider != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_return_val_if_fail (cria_provider_get_kind (provider) == CRIA_KIND_BACKEND, NULL);
  const CriaBackendVTable *vt = cria_provider_get_vtable (provider);
  gpointer self = vt->create (props, error);
  if (!self)
    return NULL;
  CriaBackend *b = g_new0 (CriaBackend, 1);
  b->vt = vt;
  b->self = self;
  b->name = g_strdup (cria_provider_get_name (provider));
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
