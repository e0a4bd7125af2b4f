/* cria-graph.h: computation graphs of core ops, their automatic backward pass,
 * activation memory planning, and running them on a backend.
 *
 * A model builds its forward pass from the builders below; each checks shapes
 * and returns a node. A builder given a NULL input returns NULL, and the first
 * shape error is kept in the graph (cria_graph_get_error), so a model can
 * build a whole layer and check once. The op set is closed: every op has a
 * shape rule here and a forward and a backward kernel in every backend. The
 * core derives the backward pass from those per-op rules, so a new
 * architecture writes neither backward code nor kernels.
 *
 * Layout conventions (row-major, last index fastest): activations are
 * [batch, seq, features]; attention heads are [batch, seq, heads, head_dim];
 * linear weights are [out, in] as in Hugging Face checkpoints, so a linear
 * layer is cria_matmul (g, x, w, FALSE, TRUE). */
#pragma once

#include <cria/cria-tensor.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_OP_INPUT,      /* data given by the caller; no gradient */
  CRIA_OP_PARAM,      /* a weight; gradient when trainable */
  CRIA_OP_MATMUL,     /* C = op(A) op(B), batched over leading dims of A; B 2-D or as batched as A */
  CRIA_OP_EMBEDDING,  /* y[t] = table[ids[t]] */
  CRIA_OP_LAYERNORM,  /* y = (x - mean) / sqrt(var + eps) * w + b, over the last dim */
  CRIA_OP_RMSNORM,    /* y = x / sqrt(mean(x^2) + eps) * w */
  CRIA_OP_ROPE,       /* rotate_half rotary embedding of [B,T,H,D] at positions [B,T] */
  CRIA_OP_ATTENTION,  /* causal softmax(q k^T * scale) v, GQA, segment ids */
  CRIA_OP_GELU,       /* tanh approximation, as GPT-2 */
  CRIA_OP_SILU,       /* x * sigmoid(x) */
  CRIA_OP_SWIGLU,     /* silu(gate) * up */
  CRIA_OP_SOFTMAX,    /* over the last dim */
  CRIA_OP_ADD,        /* a + b, b broadcast over the leading dims of a */
  CRIA_OP_MUL,        /* a * b, the same broadcast */
  CRIA_OP_SCALE,      /* a * s */
  CRIA_OP_RESHAPE,    /* the same elements under another shape (view) */
  CRIA_OP_PERMUTE,    /* dims reordered */
  CRIA_OP_CONCAT,     /* a and b joined along one dim */
  CRIA_OP_SLICE,      /* a range of one dim (split = several slices) */
  CRIA_OP_DROPOUT,    /* seeded; the mask is recomputed in backward, never stored */
  CRIA_OP_LM_HEAD_CE, /* fused h W^T + cross-entropy: [loss sum, count, lse...] */
  CRIA_OP_DEQUANTIZE, /* an NF4 weight as f32 (cria-nf4.h); no gradient flows into it */
  CRIA_N_OPS
} CriaOp;

#define CRIA_MAX_SRC 4
#define CRIA_MAX_EPILOGUE 3
#define CRIA_IGNORE_INDEX (-100)

typedef struct _CriaNode CriaNode;
typedef struct _CriaGraph CriaGraph;

/* Nodes are owned by their graph. Backends read everything here; the fields
 * marked private belong to the core. */
struct _CriaNode {
  CriaOp op;
  char *name;      /* optional; adapters find linear layers by it */
  CriaDType dtype; /* of the value */
  int n_dims;
  gint64 shape[CRIA_MAX_DIMS];
  CriaNode *src[CRIA_MAX_SRC];
  int n_src;
  gint64 iparam[8];  /* per-op integer parameters (see the builders) */
  float fparam[4];   /* per-op float parameters */
  CriaTensor *value; /* valid after cria_graph_plan */
  CriaTensor *grad;  /* f32, same shape; NULL when no gradient flows here */
  gboolean requires_grad;
  gboolean trainable; /* PARAM only */
  /* private */
  int id;
  gboolean keep; /* an output: its value lives until the end */
  int consumers;
  /* A leaf of a graph planned on a device backend: that backend, and for a
   * param the tensor it was made with (value is then its resident copy). */
  gpointer device;
  CriaTensor *param;
  /* Read by backends; set by cria_graph_plan where the backend fuses
   * (CriaBackendVTable.fuses). On a matmul: the nodes whose forward its
   * kernel computes as it stores each tile of the product, in order, each
   * reading the one before (the first reads the product, which is then never
   * stored in the matmul's own value). On each of those: the matmul, and
   * their forward kernels are not called. Backward kernels run as before. */
  CriaNode *epilogue[CRIA_MAX_EPILOGUE];
  int n_epilogue;
  CriaNode *fused_into;
};

CriaGraph *cria_graph_new (void);
void cria_graph_free (CriaGraph *graph);
/* The first error met while building, or NULL. */
const GError *cria_graph_get_error (const CriaGraph *graph);
/* Copies the building error into `error`; FALSE when there was one. */
gboolean cria_graph_check (const CriaGraph *graph, GError **error);
guint cria_graph_n_nodes (const CriaGraph *graph);
CriaNode *cria_graph_node (const CriaGraph *graph, guint i);
/* The first node with that name, or NULL. */
CriaNode *cria_graph_find (const CriaGraph *graph, const char *name);
const char *cria_op_name (CriaOp op);

/* Records an error (the first one is kept) for code building on the graph,
 * such as a model asking for a weight it lacks; returns NULL. */
G_GNUC_PRINTF (2, 3) CriaNode *cria_graph_fail (CriaGraph *g, const char *format, ...);

/* Leaves. An input's data is set before running (cria_node_set_value). A
 * param takes a reference on its tensor, which may be f32, bf16 or f16, or
 * NF4 (with its state) when it is not trainable. */
CriaNode *cria_graph_input (CriaGraph *g, const char *name, CriaDType dtype, int n_dims, const gint64 *shape);
CriaNode *cria_graph_param (CriaGraph *g, const char *name, CriaTensor *tensor, gboolean trainable);
/* Binds data to a leaf; the shape and dtype must match. Takes a reference. */
gboolean cria_node_set_value (CriaNode *node, CriaTensor *tensor, GError **error);
/* Keeps a node's value after running (logits, the loss); the last node added
 * when running is always kept. */
void cria_graph_mark_output (CriaGraph *g, CriaNode *node);
/* Gives the most recent node a name ("layers.0.self_attn.q_proj"). */
CriaNode *cria_node_set_name (CriaNode *node, const char *name);

/* Ops. Float inputs are f32 unless said otherwise; weights (b of matmul,
 * the embedding table, w of lm_head_ce) may be bf16 or f16 params. b of
 * matmul may also be a 2-D NF4 param, which kernels dequantize block by block
 * as they go (a QLoRA base weight). */
CriaNode *cria_matmul (CriaGraph *g, CriaNode *a, CriaNode *b, gboolean trans_a, gboolean trans_b);
/* An NF4 param as an f32 value of the same shape (to merge an adapter into
 * it, or for ops that take no NF4 operand). */
CriaNode *cria_dequantize (CriaGraph *g, CriaNode *w);
CriaNode *cria_embedding (CriaGraph *g, CriaNode *ids, CriaNode *table);
CriaNode *cria_layernorm (CriaGraph *g, CriaNode *x, CriaNode *w, CriaNode *b, float eps);
CriaNode *cria_rmsnorm (CriaGraph *g, CriaNode *x, CriaNode *w, float eps);
/* x [B,T,H,D], positions i32 [B,T], inv_freq f32 [D/2] (the model computes
 * it from rope_theta and rope_scaling). */
CriaNode *cria_rope (CriaGraph *g, CriaNode *x, CriaNode *positions, CriaNode *inv_freq);
/* q [B,Tq,Hq,D], k and v [B,Tk,Hkv,D] with Hq a multiple of Hkv and Tk >= Tq
 * (the queries are the last Tq positions: a KV cache). segments i32 [B,Tk] or
 * NULL: a query attends only to keys of its own segment. */
CriaNode *cria_attention (CriaGraph *g, CriaNode *q, CriaNode *k, CriaNode *v, CriaNode *segments, float scale);
/* The same where a query sees only the `window` most recent keys, itself
 * included (Mistral's sliding window); 0 means no limit. */
CriaNode *cria_attention_window (CriaGraph *g, CriaNode *q, CriaNode *k, CriaNode *v, CriaNode *segments, float scale,
                                 gint64 window);
CriaNode *cria_gelu (CriaGraph *g, CriaNode *x);
CriaNode *cria_silu (CriaGraph *g, CriaNode *x);
CriaNode *cria_swiglu (CriaGraph *g, CriaNode *gate, CriaNode *up);
CriaNode *cria_softmax (CriaGraph *g, CriaNode *x);
CriaNode *cria_add (CriaGraph *g, CriaNode *a, CriaNode *b);
CriaNode *cria_mul (CriaGraph *g, CriaNode *a, CriaNode *b);
CriaNode *cria_scale (CriaGraph *g, CriaNode *a, float s);
CriaNode *cria_reshape (CriaGraph *g, CriaNode *a, int n_dims, const gint64 *shape);
/* perm[i] is the input dim that becomes output dim i. */
CriaNode *cria_permute (CriaGraph *g, CriaNode *a, const int *perm);
CriaNode *cria_concat (CriaGraph *g, CriaNode *a, CriaNode *b, int dim);
CriaNode *cria_slice (CriaGraph *g, CriaNode *a, int dim, gint64 start, gint64 length);
/* Zeroes each element with probability p and scales the rest by 1/(1-p); the
 * mask is a pure function of (seed, element index). */
CriaNode *cria_dropout (CriaGraph *g, CriaNode *a, float p, guint64 seed);
/* h [N,D], w [V,D], labels i32 [N]: f32 [2 + N] holding the summed
 * cross-entropy of the rows whose label is not CRIA_IGNORE_INDEX, their count,
 * then each row's log-sum-exp of logits (0 for ignored rows; the backward
 * pass reads them). Only the loss sum is differentiated. The logits are
 * computed `chunk` vocabulary entries at a time and never stored whole. */
CriaNode *cria_lm_head_ce (CriaGraph *g, CriaNode *h, CriaNode *w, CriaNode *labels, gint64 chunk);
/* The same with each row's cross-entropy too: f32 [2 + 2N], the layout
 * above followed by N per-row losses (0 for ignored rows), which are
 * differentiated as well: row r's logits get (d/d sum + d/d ce_r) times the
 * gradient of its cross-entropy. Preference objectives (DPO) need each
 * sequence's log-probability and weight each sequence's gradient by its own
 * factor (cria_graph_run_backward_seeded). */
CriaNode *cria_lm_head_ce_rows (CriaGraph *g, CriaNode *h, CriaNode *w, CriaNode *labels, gint64 chunk);

/* A linear layer as Hugging Face stores it: y = x w^T (+ b) with w [out, in].
 * The matmul is named `name` ("model.layers.0.self_attn.q_proj"), and the
 * result passes through the graph's linear hook, if any. b may be NULL. */
CriaNode *cria_linear (CriaGraph *g, const char *name, CriaNode *x, CriaNode *w, CriaNode *b);

/* How adapters attach without the model knowing: called for every
 * cria_linear as it is built, with the layer's input and output; returns the
 * node the model goes on with (out itself, or out plus a LoRA branch of x).
 * Nodes the hook adds come after x and out, so the graph stays in order. */
typedef CriaNode *(*CriaLinearHook) (CriaGraph *g, const char *name, CriaNode *x, CriaNode *out, gpointer user_data);
void cria_graph_set_linear_hook (CriaGraph *g, CriaLinearHook hook, gpointer user_data);
/* For a linear hook: the weight (w [out, in] as cria_linear got it: f32,
 * bf16, f16 or NF4) and bias (NULL when none) of the layer whose output is
 * `out`, so that an adapter can compute the layer again on another input
 * (IA3 scales the input of feed-forward layers). FALSE when `out` is not
 * what cria_linear built. */
gboolean cria_linear_get_params (CriaNode *out, CriaNode **w, CriaNode **b);

/* Activation recomputation (gradient checkpointing). A model brackets each
 * transformer block: the nodes built between cria_graph_begin_block and
 * cria_graph_end_block form one block (beginning a block ends the open one).
 * With recomputation on, a block's values that nothing outside it reads are
 * dropped once the forward pass is past them and computed again, by the same
 * kernels on the same inputs, just before the block's backward pass: only
 * each block's input (and what crosses blocks) is held between the passes,
 * and the gradients are the same bits. Without it, blocks change nothing.
 * Set before cria_graph_plan. */
void cria_graph_begin_block (CriaGraph *g);
void cria_graph_end_block (CriaGraph *g);
guint cria_graph_n_blocks (const CriaGraph *g);
void cria_graph_set_recompute (CriaGraph *g, gboolean recompute);

/* Derives the backward pass of `loss` (a scalar, or the output of
 * cria_lm_head_ce, whose loss sum is differentiated): every node that depends
 * on a trainable param gets a gradient. Call before cria_graph_plan. */
gboolean cria_graph_backward (CriaGraph *g, CriaNode *loss, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaGraph, cria_graph_free)

G_END_DECLS
