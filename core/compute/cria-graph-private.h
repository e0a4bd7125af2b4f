/* cria-graph-private.h: what the graph builder and the runner share. */
#pragma once

#include <cria/cria-backend.h>

struct _CriaGraph {
  GPtrArray *nodes; /* CriaNode*, in the order built: a topological order */
  GError *error;    /* the first building error */
  CriaLinearHook linear_hook;
  gpointer linear_hook_data;
  CriaNode *loss;            /* set by cria_graph_backward */
  CriaNode **backward_order; /* nodes whose backward runs, in the order it runs */
  guint n_backward;
  GArray *blocks; /* int pairs: first node id, end id (exclusive) */
  int open_block; /* first id of the block being built, or -1 */
  gboolean recompute;
  /* the plan */
  CriaBackend *backend;
  gpointer arena;
  GPtrArray *grad_zero; /* (step, node id) pairs: gradients zeroed just before that step */
  /* The backward pass as run: node ids, each -(id + 1) when it is a
   * recomputation of that node's forward rather than its backward. */
  int *schedule;
  guint n_schedule;
  /* Per node id, for recomputed nodes: the value of the forward pass and that
   * of the recomputation (two buffers with their own lifetimes); NULL else. */
  CriaTensor **fwd_values, **re_values;
};

void cria_graph_release_plan (CriaGraph *g);

gpointer cria_backend_alloc_internal (CriaBackend *b, gsize bytes, GError **error);
void cria_backend_free_internal (CriaBackend *b, gpointer mem);
void cria_backend_zero_internal (CriaBackend *b, gpointer mem, gsize bytes);
/* The dtype the backend stores a node's value in (value_dtype, contract 1.3). */
CriaDType cria_backend_value_dtype (CriaBackend *b, const CriaNode *node);
/* A memcpy on a host backend. */
gboolean cria_backend_upload_internal (CriaBackend *b, gpointer dst, gconstpointer src, gsize bytes, GError **error);
