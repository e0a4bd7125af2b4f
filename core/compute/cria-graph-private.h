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
  /* the plan */
  CriaBackend *backend;
  gpointer arena;
  GPtrArray *grad_zero; /* CriaTensor* of activation gradients, zeroed per backward */
};

void cria_graph_release_plan (CriaGraph *g);

gpointer cria_backend_alloc_internal (CriaBackend *b, gsize bytes, GError **error);
void cria_backend_free_internal (CriaBackend *b, gpointer mem);
void cria_backend_zero_internal (CriaBackend *b, gpointer mem, gsize bytes);
