/* cuda-kernels.cu: the kernel table of the cuda backend, f32 (and bf16
 * values with activations=bf16: see below; weights of other dtypes:
 * cuda-weights.cu), its kernels in cuda-elementwise.cu, cuda-rows.cu,
 * cuda-moves.cu, cuda-linear.cu and cuda-attention.cu. What they share,
 * and how a kernel runs: cuda-kernels.h. */
#include "config.h"

#include "cuda-kernels.h"

/* ---- activations=bf16: values stored in bf16 (cuda_value_dtype). Matmul
 * (cuBLASLt reads and writes bf16), dequantize, the element-wise ops,
 * norms, rope and softmax (through Val: loads widen, stores round) and the
 * moves (reshape, permute, slice, concat: bf16 values moved as they are,
 * never rounded) take them as stored. Embedding, attention and lm_head_ce
 * read and write f32: stage () widens the
 * bf16 values it reads into f32 scratch and puts them in place of the
 * stored ones for the call; a forward's output goes to f32 scratch too and
 * is rounded into the node's bf16 value after. So each such kernel gives
 * its f32 result rounded to bf16, and the graph keeps bf16 (half the
 * memory) between kernels; the scratch holds one kernel's operands at a
 * time. lm_head_ce's output (the loss sums, each row's logsumexp) is no
 * activation: it stays f32. ------------------------------------------------ */

/* the kernels as written, which the table's entries call or stage */
static CriaKernel plain[CRIA_N_OPS];

/* Whether the node's kernel reads and writes its values as stored. */
static gboolean
takes_stored (const CriaNode *n, gboolean backward)
{
  switch (n->op) {
    case CRIA_OP_MATMUL:
    case CRIA_OP_DEQUANTIZE:
    case CRIA_OP_GELU:
    case CRIA_OP_SILU:
    case CRIA_OP_SWIGLU:
    case CRIA_OP_ADD:
    case CRIA_OP_MUL:
    case CRIA_OP_SCALE:
    case CRIA_OP_LAYERNORM:
    case CRIA_OP_RMSNORM:
    case CRIA_OP_ROPE:
    case CRIA_OP_SOFTMAX:
    case CRIA_OP_DROPOUT:
      return TRUE;
    case CRIA_OP_RESHAPE:
    case CRIA_OP_PERMUTE:
    case CRIA_OP_SLICE:
    case CRIA_OP_CONCAT: /* a move of values of one dtype (an f32 input rounds) */
      if (backward)
        return TRUE; /* moves gradients only */
      for (int i = 0; i < n->n_src; i++)
        if (n->src[i]->value->dtype != n->value->dtype)
          return FALSE;
      return TRUE;
    default:
      return FALSE;
  }
}

typedef struct {
  CriaNode *node;
  CriaTensor *stored;
  CriaTensor staged; /* an f32 tensor over scratch */
  size_t offset;     /* of its data in the scratch */
} Staged;

static gboolean
stage (gpointer self, CriaNode *n, gboolean backward, GError **error)
{
  CudaBackend *be = be_of (self);
  Staged st[CRIA_MAX_SRC + 1];
  int k = 0;
  size_t bytes = 0;
  /* the bf16 activations the kernel reads (each once), and the node's own;
   * a bf16 param is a weight, which the kernels read as it is */
  for (int i = 0; i <= n->n_src; i++) {
    CriaNode *m = i < n->n_src ? n->src[i] : n;
    gboolean seen = FALSE;
    for (int j = 0; j < k; j++)
      seen |= st[j].node == m;
    if (!m || seen || m->op == CRIA_OP_PARAM || m->op == CRIA_OP_INPUT || !is_bf16 (m->value))
      continue;
    st[k].node = m;
    st[k].stored = m->value;
    st[k].staged = *m->value;
    st[k].staged.dtype = CRIA_DTYPE_F32;
    st[k].offset = bytes;
    bytes += ((size_t) cria_tensor_numel (m->value) * sizeof (float) + 255) / 256 * 256;
    k++;
  }
  char *mem = (char *) cuda_stage_scratch (be, MAX (bytes, 1), error);
  if (!mem)
    return FALSE;
  for (int j = 0; j < k; j++) {
    st[j].staged.data = mem + st[j].offset;
    /* a forward writes its own value: nothing to widen */
    if ((backward || st[j].node != n) && !cuda_from_bf16 (be, (const guint16 *) st[j].stored->data,
                                                          cria_tensor_numel (st[j].stored), f32 (&st[j].staged), error))
      return FALSE;
  }
  for (int j = 0; j < k; j++)
    st[j].node->value = &st[j].staged;
  gboolean ok = backward ? plain[n->op].backward (self, n, error) : plain[n->op].forward (self, n, error);
  for (int j = 0; j < k; j++)
    st[j].node->value = st[j].stored;
  for (int j = 0; ok && !backward && j < k; j++)
    if (st[j].node == n)
      ok = cuda_to_bf16 (be, f32 (&st[j].staged), numel (n), (guint16 *) n->value->data, error);
  return ok;
}

static gboolean
forward_stored (gpointer self, CriaNode *n, GError **error)
{
  if (!be_of (self)->bf16_act || takes_stored (n, FALSE))
    return plain[n->op].forward (self, n, error);
  return stage (self, n, FALSE, error);
}

static gboolean
backward_stored (gpointer self, CriaNode *n, GError **error)
{
  if (!be_of (self)->bf16_act || takes_stored (n, TRUE))
    return plain[n->op].backward (self, n, error);
  return stage (self, n, TRUE, error);
}

/* ---- the table ------------------------------------------------------------- */

static CriaKernel
k (gboolean (*fwd) (gpointer, CriaNode *, GError **), gboolean (*bwd) (gpointer, CriaNode *, GError **))
{
  CriaKernel kernel = { fwd, bwd };
  return kernel;
}

extern "C" {

CriaKernel cuda_kernels[CRIA_N_OPS];

void
cuda_kernels_init (void)
{
  cuda_kernels[CRIA_OP_MATMUL] = k (matmul_forward, matmul_backward);
  cuda_kernels[CRIA_OP_EMBEDDING] = k (embedding_forward, embedding_backward);
  cuda_kernels[CRIA_OP_GELU] = k (unary_forward, unary_backward);
  cuda_kernels[CRIA_OP_SILU] = k (unary_forward, unary_backward);
  cuda_kernels[CRIA_OP_SWIGLU] = k (swiglu_forward, swiglu_backward);
  cuda_kernels[CRIA_OP_ADD] = k (binary_forward, binary_backward);
  cuda_kernels[CRIA_OP_MUL] = k (binary_forward, binary_backward);
  cuda_kernels[CRIA_OP_SCALE] = k (scale_forward, scale_backward);
  cuda_kernels[CRIA_OP_RESHAPE] = k (reshape_forward, reshape_backward);
  cuda_kernels[CRIA_OP_LAYERNORM] = k (norm_forward, norm_backward);
  cuda_kernels[CRIA_OP_RMSNORM] = k (norm_forward, norm_backward);
  cuda_kernels[CRIA_OP_ROPE] = k (rope_forward, rope_backward);
  cuda_kernels[CRIA_OP_ATTENTION] = k (attention_forward, attention_backward);
  cuda_kernels[CRIA_OP_SOFTMAX] = k (softmax_forward, softmax_backward);
  cuda_kernels[CRIA_OP_PERMUTE] = k (permute_forward, permute_backward);
  cuda_kernels[CRIA_OP_CONCAT] = k (concat_forward, concat_backward);
  cuda_kernels[CRIA_OP_SLICE] = k (slice_forward, slice_backward);
  cuda_kernels[CRIA_OP_DROPOUT] = k (dropout_forward, dropout_backward);
  cuda_kernels[CRIA_OP_LM_HEAD_CE] = k (lm_head_ce_forward, lm_head_ce_backward);
  /* weights that are not f32, and dequantize */
  cuda_weights_init ();
  for (int op = 0; op < CRIA_N_OPS; op++)
    if (cuda_kernels[op].forward) {
      plain[op] = cuda_kernels[op];
      cuda_kernels[op].forward = forward_stored;
      if (cuda_kernels[op].backward)
        cuda_kernels[op].backward = backward_stored;
    }
}
}
