/* cria-backend.h: backends (providers of kind CRIA_KIND_BACKEND) and running
 * a graph on one.
 *
 * A backend only allocates memory and implements kernels: one forward and one
 * backward entry per op. The core owns the graph, the order of execution and
 * the memory plan, so nothing in the core is specific to a device. Memory a
 * backend returns must be addressable by the host for now (the CPU backend);
 * a device backend will add copy entries at the end of this vtable. A
 * backend runs one kernel at a time: graphs sharing a backend must not run
 * concurrently (kernels use the backend's threads and scratch memory). */
#pragma once

#include <cria/cria-graph.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

typedef struct {
  /* Computes node->value from the values of node->src. */
  gboolean (*forward) (gpointer backend, CriaNode *node, GError **error);
  /* Adds the gradient of node->grad to src[i]->grad for each src whose grad
   * is not NULL. May read the values of the sources and of the node. */
  gboolean (*backward) (gpointer backend, CriaNode *node, GError **error);
} CriaKernel;

struct _CriaBackendVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaBackendVTable) */
  gpointer (*create) (const CriaProps *props, GError **error);
  void (*destroy) (gpointer backend);
  /* 64-byte aligned memory; NULL with an error when out of memory. */
  gpointer (*alloc) (gpointer backend, gsize bytes, GError **error);
  void (*free) (gpointer backend, gpointer mem);
  void (*zero) (gpointer backend, gpointer mem, gsize bytes);
  /* One line: "cpu: 16 threads, avx512f". */
  char *(*describe) (gpointer backend);
  /* Indexed by CriaOp, n_kernels entries: ops from n_kernels on (added to
   * the op set after the backend was built) are not implemented, nor is an
   * op whose forward is NULL. */
  const CriaKernel *kernels;
  guint n_kernels;
  /* May be NULL. Asked when a graph is planned for each op its kernel table
   * covers: FALSE declines one node (a dtype or shape it cannot run), so
   * that the run fails before any compute with the op and backend named. */
  gboolean (*supports_op) (gpointer backend, const CriaNode *node);
  /* May be NULL (no fusion). Asked at plan time for a matmul and the one
   * node that alone reads its product, or the last node fused so far, with
   * its other operands computed before the matmul: TRUE when the matmul's
   * forward kernel computes that node's value too (CriaNode.epilogue), with
   * the same bits as the node's own kernel. */
  gboolean (*fuses) (gpointer backend, const CriaNode *matmul, const CriaNode *next);
};

typedef struct _CriaBackend CriaBackend;

CriaBackend *cria_backend_new (const CriaProvider *provider, const CriaProps *props, GError **error);
/* Looks the backend up by name and creates it with its default properties. */
CriaBackend *cria_backend_open (CriaRegistry *registry, const char *name, GError **error);
void cria_backend_free (CriaBackend *backend);
char *cria_backend_describe (CriaBackend *backend);
/* The provider's name ("cpu"). */
const char *cria_backend_get_name (CriaBackend *backend);
/* TRUE when the backend has a kernel for the node's op and accepts the node
 * (supports_op); otherwise FALSE with "backend 'cpu' does not implement op
 * 'rope'" (and the reason it declines, when it does). */
gboolean cria_backend_supports (CriaBackend *backend, const CriaNode *node, GError **error);
/* Whether the backend's matmul kernel computes `next` in its epilogue (the
 * vtable's fuses). */
gboolean cria_backend_fuses (CriaBackend *backend, const CriaNode *matmul, const CriaNode *next);
/* Runs one op's forward or backward kernel (what the graph runner does). */
gboolean cria_backend_forward (CriaBackend *backend, CriaNode *node, GError **error);
gboolean cria_backend_backward (CriaBackend *backend, CriaNode *node, GError **error);

typedef struct {
  gsize arena_bytes; /* activations and their gradients, buffers reused by liveness */
  gsize naive_bytes; /* the same without reuse */
  gsize param_grad_bytes;
  guint n_buffers;
} CriaPlanStats;

/* Allocates the values of every op node and the gradients, sharing memory
 * between buffers whose lifetimes do not overlap. Leaves must have values
 * (cria_node_set_value) before running, not before planning. */
gboolean cria_graph_plan (CriaGraph *g, CriaBackend *backend, CriaPlanStats *stats, GError **error);
gboolean cria_graph_forward (CriaGraph *g, GError **error);
/* Runs the backward pass derived by cria_graph_backward, after forward.
 * Param gradients accumulate across calls until cria_graph_zero_grad. */
gboolean cria_graph_run_backward (CriaGraph *g, GError **error);
/* The same with the gradient of the objective with respect to the loss
 * node's value given (`n` floats, the loss's element count) instead of 1 for
 * the loss: what a caller needs who combines the per-row outputs of
 * cria_lm_head_ce_rows into its own objective. */
gboolean cria_graph_run_backward_seeded (CriaGraph *g, const float *seed, gsize n, GError **error);
void cria_graph_zero_grad (CriaGraph *g);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaBackend, cria_backend_free)

G_END_DECLS
