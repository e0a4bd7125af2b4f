/* cria-backend.h: backends (providers of kind CRIA_KIND_BACKEND) and running
 * a graph on one.
 *
 * A backend only allocates memory and implements kernels: one forward and one
 * backward entry per op. The core owns the graph, the order of execution and
 * the memory plan, so nothing in the core is specific to a device. A
 * backend runs one kernel at a time: graphs sharing a backend must not run
 * concurrently (kernels use the backend's threads and scratch memory).
 *
 * Device memory (contract 1.1). A backend whose memory the host cannot
 * address (a GPU's) sets `device_memory` and the copy entries; the core then
 * never dereferences that memory. It uploads a graph's params once per host
 * tensor (cria_backend_update_tensor uploads one again after the host changed
 * it), uploads an input as cria_node_set_value binds it, downloads what the
 * caller reads (cria_tensor_read, cria_tensor_to_host: logits, losses,
 * gradients, KV cache rows) and synchronizes once at the end of a forward or
 * backward pass, not after each kernel.
 *
 * The optimizer step (contract 1.2). A device backend that also sets
 * accumulate, grad_sumsq and adamw_step keeps training on the device: the
 * trainer adds each micro-batch's param gradients into its own buckets in
 * the backend's memory, measures their norm and steps AdamW there (moments
 * allocated through the backend), updating the params' resident copies in
 * place; only scalars cross (the loss, the squared norm). Without them (and
 * on every host backend) the trainer downloads the gradients and steps on
 * the host as before. */
#pragma once

#include <cria/cria-graph.h>
#include <cria/cria-optim.h>
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

  /* Added in contract 1.1 (the core checks the vtable's size; a backend
   * without them has host memory). TRUE when alloc returns memory the host
   * cannot address: then upload, download and copy are required and the
   * core moves every byte it reads or writes through them. */
  gboolean device_memory;
  /* Kernels may be queued (a stream) and return before they ran; these are
   * ordered after what was queued before them. upload returns when `src`
   * may be reused; download returns when `dst` holds the data. Offsets are
   * applied by the core to the pointers alloc returned (arena + offset). */
  gboolean (*upload) (gpointer backend, gpointer dst, gconstpointer src, gsize bytes, GError **error);
  gboolean (*download) (gpointer backend, gpointer dst, gconstpointer src, gsize bytes, GError **error);
  gboolean (*copy) (gpointer backend, gpointer dst, gconstpointer src, gsize bytes, GError **error);
  /* May be NULL (nothing is queued). Waits for every queued kernel and copy,
   * and reports the first error a queued kernel met. */
  gboolean (*synchronize) (gpointer backend, GError **error);
  /* May be NULL (no fusion). Asked at plan time for a matmul and the one
   * node that alone reads its product, or the last node fused so far, with
   * its other operands computed before the matmul: TRUE when the matmul's
   * forward kernel computes that node's value too (CriaNode.epilogue), with
   * the same bits as the node's own kernel. */
  gboolean (*fuses) (gpointer backend, const CriaNode *matmul, const CriaNode *next);

  /* Added in contract 1.2 (the core checks the vtable's size): the optimizer
   * step on a device backend. All three or none (NULL: the trainer steps on
   * the host); ignored on a host backend. Every pointer is the backend's
   * memory; the calls may be queued like kernels, but grad_sumsq returns
   * its result. accumulate: dst[i] += src[i] for n floats (a micro-batch's
   * gradient into the window's). grad_sumsq: the sum over the spans of
   * (double) (grad[i] * pre)^2, the float product first; CriaOptimSpan
   * gives the order of cria_adamw_grad_norm, which a backend follows to
   * give the cpu's bits (another fixed order is allowed: then the norm and
   * the clipping coefficient may differ in their last bits). adamw_step:
   * cria_adamw_step_scaled's update of every span with the scalars given,
   * rounded as cria-optim.c documents (fmaf where it says, IEEE division
   * and square root, nothing else fused): a step then equals the cpu's bit
   * for bit, given the same gradients. */
  gboolean (*accumulate) (gpointer backend, float *dst, const float *src, gsize n, GError **error);
  gboolean (*grad_sumsq) (gpointer backend, const CriaOptimSpan *spans, guint n_spans, float pre, double *sumsq,
                          GError **error);
  gboolean (*adamw_step) (gpointer backend, const CriaOptimSpan *spans, guint n_spans, const CriaAdamwScalars *s,
                          GError **error);

  /* Added in contract 1.3 (the core checks the vtable's size). May be NULL.
   * Asked at plan time for each op node: the dtype its value is stored in.
   * Only an f32 node may be stored otherwise, and only in bf16 (the cuda
   * backend's activations=bf16): the core then sizes its buffer and makes
   * its value tensor bf16 (half the memory), and the backend's kernels read
   * and write it so; any other answer keeps node->dtype. Gradients stay f32.
   * Host readers that want f32 go through cria_tensor_read_f32. */
  CriaDType (*value_dtype) (gpointer backend, const CriaNode *node);
};

typedef struct _CriaBackend CriaBackend;

CriaBackend *cria_backend_new (const CriaProvider *provider, const CriaProps *props, GError **error);
/* Looks the backend up by name and creates it with its default properties. */
CriaBackend *cria_backend_open (CriaRegistry *registry, const char *name, GError **error);
void cria_backend_free (CriaBackend *backend);
char *cria_backend_describe (CriaBackend *backend);
/* The provider's name ("cpu"). */
const char *cria_backend_get_name (CriaBackend *backend);
/* FALSE when the backend's memory is not host-addressable (device_memory). */
gboolean cria_backend_is_host (CriaBackend *backend);
/* Waits for the backend's queued work (nothing on a host backend). */
gboolean cria_backend_synchronize (CriaBackend *backend, GError **error);
/* A zero-filled tensor in the backend's memory (a host tensor on a host
 * backend). */
CriaTensor *cria_backend_tensor_new (CriaBackend *backend, CriaDType dtype, int n_dims, const gint64 *shape,
                                     GError **error);
/* The backend's copy of a host tensor, uploaded the first time it is asked
 * for and kept while someone else holds the host tensor (weights are uploaded
 * once, whatever number of graphs use them). On a host backend: the tensor
 * itself. An NF4 tensor goes to device memory in the layout of
 * cria_nf4_device_layout, only on a backend with a dequantize kernel (the
 * others refuse it here). Transfer full. */
CriaTensor *cria_backend_get_resident (CriaBackend *backend, CriaTensor *host, GError **error);
/* Uploads a host tensor again after the host changed it (the optimizer
 * step, a resumed checkpoint), when the backend holds a copy of it. */
gboolean cria_backend_update_tensor (CriaBackend *backend, CriaTensor *host, GError **error);
/* Whether a tensor's data is in a device backend's memory. */
gboolean cria_tensor_is_device (const CriaTensor *tensor);
/* Copies `bytes` from `offset` of a tensor's data to host memory, from
 * whichever memory the tensor is in. */
gboolean cria_tensor_read (const CriaTensor *tensor, gsize offset, gpointer dst, gsize bytes, GError **error);
/* Copies n elements from element `first` of a float tensor (f32, bf16 or
 * f16) to host memory as f32, from whichever memory the tensor is in: a
 * node's value that the backend stores in bf16 (value_dtype) is widened
 * on the host, so readers of logits or a KV cache get f32 either way. */
gboolean cria_tensor_read_f32 (const CriaTensor *tensor, gsize first, float *dst, gsize n, GError **error);
/* Copies `bytes` of host memory to `offset` of a tensor's data, into
 * whichever memory the tensor is in. */
gboolean cria_tensor_write (CriaTensor *tensor, gsize offset, gconstpointer src, gsize bytes, GError **error);
/* Zeroes a tensor's data, in whichever memory it is in (queued on a device). */
void cria_tensor_zero (CriaTensor *tensor);
/* The tensor in host memory: a new reference to it when it is there, a
 * downloaded copy otherwise. */
CriaTensor *cria_tensor_to_host (CriaTensor *tensor, GError **error);
/* The tensor a param node was made with (cria_graph_param): on a device
 * backend, a planned param's value is its resident copy instead. */
CriaTensor *cria_node_get_param_tensor (const CriaNode *node);

/* TRUE on a device backend with the optimizer entries of contract 1.2:
 * then the three calls below may be made. */
gboolean cria_backend_has_optimizer (CriaBackend *backend);
/* The optimizer entries, pointers in the backend's memory (see the vtable). */
gboolean cria_backend_accumulate (CriaBackend *backend, float *dst, const float *src, gsize n, GError **error);
gboolean cria_backend_grad_sumsq (CriaBackend *backend, const CriaOptimSpan *spans, guint n_spans, float pre,
                                  double *sumsq, GError **error);
gboolean cria_backend_adamw_step (CriaBackend *backend, const CriaOptimSpan *spans, guint n_spans,
                                  const CriaAdamwScalars *s, GError **error);
/* Device to device copy of `bytes` (the copy entry; memcpy on a host backend). */
gboolean cria_backend_copy (CriaBackend *backend, gpointer dst, gconstpointer src, gsize bytes, GError **error);

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
