/* parity-ops.c: test-cuda-parity's ops group: every op with a kernel,
 * forward and backward, on odd sizes that divide no tile. */
#include "parity-test.h"

/* ---- ops -------------------------------------------------------------------------- */

static void
check_ops (const OpCase *cases)
{
  check_cases (G_OPS, cpu, dev, "", cases);
}

/* variant: bit 0 trans_a, bit 1 trans_b, bit 2 a batched b */
CriaNode *
build_matmul (Op *o, int v)
{
  gboolean ta = v & 1, tb = v & 2, batched = v & 4;
  gint64 B = 3, M = 37, N = 29, K = 45;
  CriaNode *a = ta ? param (o, B, K, M, 0) : param (o, B, M, K, 0);
  CriaNode *b = batched ? (tb ? param (o, B, N, K, 0) : param (o, B, K, N, 0))
                        : (tb ? param (o, N, K, 0, 0) : param (o, K, N, 0, 0));
  return cria_matmul (o->g, a, b, ta, tb);
}

static CriaNode *
build_embedding (Op *o, int v)
{
  gint32 ids[2 * 19];
  for (int i = 0; i < 38; i++)
    ids[i] = (i * 7 + 3) % 53; /* repeats: the gradient rows add up */
  CriaNode *id = ints (o, 2, (gint64[]){ 2, 19 }, ids);
  return cria_embedding (o->g, id, param (o, 53, 33, 0, 0));
}

static CriaNode *
build_norm (Op *o, int layer)
{
  CriaNode *x = param (o, 3, 7, 67, 0), *w = param (o, 67, 0, 0, 0);
  return layer ? cria_layernorm (o->g, x, w, param (o, 67, 0, 0, 0), 1e-5f) : cria_rmsnorm (o->g, x, w, 1e-6f);
}

/* positions of a packed batch and of a long context (large angles) */
static CriaNode *
build_rope (Op *o, int v)
{
  gint64 B = 2, T = 11, H = 3, D = 18;
  gint32 pos[2 * 11];
  for (int t = 0; t < T; t++) {
    pos[t] = t < 6 ? t : t - 6;
    pos[T + t] = 4093 + t;
  }
  CriaTensor *f = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ D / 2 });
  for (int i = 0; i < D / 2; i++)
    ((float *) f->data)[i] = powf (v ? 500000.0f : 10000.0f, -2.0f * i / D) * (v ? 0.25f : 1.0f);
  g_ptr_array_add (o->owned, f);
  CriaNode *x = param (o, B, T, H, D);
  return cria_rope (o->g, x, ints (o, 2, (gint64[]){ B, T }, pos), cria_graph_param (o->g, "inv_freq", f, FALSE));
}

typedef struct {
  gint64 B, Tq, Tk, Hq, Hkv, D, window;
  gboolean segments;
} AttnCase;

static const AttnCase attn_cases[] = {
  { 2, 13, 13, 3, 3, 20, 0, FALSE }, /* causal */
  { 2, 13, 13, 6, 2, 20, 0, TRUE },  /* GQA, packed segments */
  { 2, 17, 17, 4, 2, 33, 5, TRUE },  /* sliding window, D past one warp */
  { 2, 3, 17, 4, 2, 20, 0, TRUE },   /* a KV cache: 3 new queries */
  { 1, 4, 19, 2, 1, 72, 6, FALSE },  /* a cache with a window, one KV head */
};

static CriaNode *
build_attention (Op *o, int v)
{
  const AttnCase *c = &attn_cases[v];
  CriaNode *q = param (o, c->B, c->Tq, c->Hq, c->D), *k = param (o, c->B, c->Tk, c->Hkv, c->D),
           *val = param (o, c->B, c->Tk, c->Hkv, c->D), *seg = NULL;
  if (c->segments) {
    g_autofree gint32 *s = g_new (gint32, c->B * c->Tk);
    for (gint64 i = 0; i < c->B * c->Tk; i++)
      s[i] = (gint32) ((i % c->Tk) / (3 + i / c->Tk)); /* segments of 3 and 4 keys */
    seg = ints (o, 2, (gint64[]){ c->B, c->Tk }, s);
  }
  return cria_attention_window (o->g, q, k, val, seg, 1.0f / sqrtf ((float) c->D), c->window);
}

static CriaNode *
build_unary (Op *o, int op)
{
  CriaNode *x = param (o, 5, 77, 0, 0);
  switch (op) {
    case CRIA_OP_GELU:
      return cria_gelu (o->g, x);
    case CRIA_OP_SILU:
      return cria_silu (o->g, x);
    case CRIA_OP_SOFTMAX:
      return cria_softmax (o->g, cria_scale (o->g, x, 3.0f));
    case CRIA_OP_SCALE:
      return cria_scale (o->g, x, 0.37f);
    case CRIA_OP_DROPOUT:
      return cria_dropout (o->g, x, 0.3f, 12345);
    default:
      return cria_swiglu (o->g, x, param (o, 5, 77, 0, 0));
  }
}

/* variant: bit 0 mul, bit 1 b of a's whole shape (else a bias row) */
static CriaNode *
build_binary (Op *o, int v)
{
  CriaNode *a = param (o, 3, 5, 33, 0), *b = v & 2 ? param (o, 3, 5, 33, 0) : param (o, 33, 0, 0, 0);
  return v & 1 ? cria_mul (o->g, a, b) : cria_add (o->g, a, b);
}

static CriaNode *
build_reshape (Op *o, int v)
{
  return cria_reshape (o->g, param (o, 3, 5, 33, 0), 2, (gint64[]){ 15, 33 });
}

static CriaNode *
build_permute (Op *o, int v)
{
  static const int perms[][4] = { { 0, 2, 1, 3 }, { 3, 1, 0, 2 }, { 2, 0, 1, -1 } };
  CriaNode *x = v < 2 ? param (o, 2, 3, 5, 7) : param (o, 4, 5, 6, 0);
  return cria_permute (o->g, x, perms[v]);
}

static CriaNode *
build_concat (Op *o, int dim)
{
  gint64 sa[] = { 2, 3, 5 }, sb[] = { 2, 3, 5 };
  sb[dim] = 4 + dim;
  CriaNode *a = param (o, sa[0], sa[1], sa[2], 0), *b = param (o, sb[0], sb[1], sb[2], 0);
  return cria_concat (o->g, a, b, dim);
}

static CriaNode *
build_slice (Op *o, int dim)
{
  return cria_slice (o->g, param (o, 3, 5, 7, 0), dim, 1, dim + 1);
}

/* variant: bit 0 the per-row variant (seeded backward), bit 1 one chunk */
CriaNode *
build_lm_head_ce (Op *o, int v)
{
  gint64 N = 21, D = 35, V = 103;
  gint32 labels[21];
  for (int i = 0; i < N; i++)
    labels[i] = i % 5 == 2 ? CRIA_IGNORE_INDEX : (i * 37 + 11) % V;
  CriaNode *h = param (o, N, D, 0, 0), *w = param (o, V, D, 0, 0);
  CriaNode *l = ints (o, 1, (gint64[]){ N }, labels);
  gint64 chunk = v & 2 ? 1000 : 16;
  if (!(v & 1))
    return cria_lm_head_ce (o->g, h, w, l, chunk);
  o->seed = g_new0 (float, 2 + 2 * N);
  o->seed[0] = 0.5f;
  for (int i = 0; i < N; i++)
    o->seed[2 + N + i] = (float) g_rand_double_range (o->rand, -1.0, 1.0);
  return cria_lm_head_ce_rows (o->g, h, w, l, chunk);
}

const OpCase linear_cases[] = {
  { "matmul", build_matmul, 0 },
  { "matmul trans_a", build_matmul, 1 },
  { "matmul trans_b", build_matmul, 2 },
  { "matmul trans_a trans_b", build_matmul, 3 },
  { "matmul batched b", build_matmul, 4 },
  { "matmul batched b trans_a", build_matmul, 5 },
  { "matmul batched b trans_b", build_matmul, 6 },
  { "matmul batched b trans_a trans_b", build_matmul, 7 },
  { "embedding", build_embedding, 0 },
  { "lm_head_ce chunked", build_lm_head_ce, 0 },
  { "lm_head_ce one chunk", build_lm_head_ce, 2 },
  { "lm_head_ce_rows seeded", build_lm_head_ce, 1 },
  { NULL },
};

void
test_ops_linear (void)
{
  check_ops (linear_cases);
}

const OpCase row_cases[] = {
  { "rmsnorm", build_norm, 0 },
  { "layernorm", build_norm, 1 },
  { "rope", build_rope, 0 },
  { "rope scaled inv_freq", build_rope, 1 },
  { "softmax", build_unary, CRIA_OP_SOFTMAX },
  { "gelu", build_unary, CRIA_OP_GELU },
  { "silu", build_unary, CRIA_OP_SILU },
  { "swiglu", build_unary, CRIA_OP_SWIGLU },
  { "scale", build_unary, CRIA_OP_SCALE },
  { "dropout", build_unary, CRIA_OP_DROPOUT },
  { "add bias", build_binary, 0 },
  { "mul bias", build_binary, 1 },
  { "add", build_binary, 2 },
  { "mul", build_binary, 3 },
  { NULL },
};

void
test_ops_rows (void)
{
  check_ops (row_cases);
}

const OpCase attention_cases[] = {
  { "attention causal", build_attention, 0 },          { "attention gqa segments", build_attention, 1 },
  { "attention window", build_attention, 2 },          { "attention kv cache", build_attention, 3 },
  { "attention kv cache window", build_attention, 4 }, { NULL },
};

void
test_ops_attention (void)
{
  check_ops (attention_cases);
}

const OpCase move_cases[] = {
  { "reshape", build_reshape, 0 },
  { "permute 0213", build_permute, 0 },
  { "permute 3102", build_permute, 1 },
  { "permute 3-d", build_permute, 2 },
  { "concat dim 0", build_concat, 0 },
  { "concat dim 1", build_concat, 1 },
  { "concat dim 2", build_concat, 2 },
  { "slice dim 0", build_slice, 0 },
  { "slice dim 1", build_slice, 1 },
  { "slice dim 2", build_slice, 2 },
  { NULL },
};

void
test_ops_moves (void)
{
  check_ops (move_cases);
}
