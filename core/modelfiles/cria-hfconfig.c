/* cria-hfconfig.c: config.json of the causal LM families cria runs, typed and
 * validated, and the tensor names and shapes each architecture implies. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-input.h>
#include <cria/cria-json.h>

#include "cria-modelfiles-private.h"

static const char *const arch_names[] = { "GPT2LMHeadModel", "LlamaForCausalLM", "Qwen2ForCausalLM",
                                          "MistralForCausalLM" };

const char *
cria_hf_arch_name (CriaHfArch arch)
{
  return (guint) arch < G_N_ELEMENTS (arch_names) ? arch_names[arch] : "unknown";
}

void
cria_hf_config_free (CriaHfConfig *c)
{
  if (!c)
    return;
  g_free (c->hidden_act);
  if (c->eos_token_ids)
    g_array_unref (c->eos_token_ids);
  if (c->json)
    json_object_unref (c->json);
  g_free (c);
}

typedef struct {
  const char *file;
  JsonObject *o;
  GError **error;
  const char *prefix; /* "rope_scaling." for fields of that object */
} Ctx;

static gboolean
bad (Ctx *cx, const char *field, const char *why)
{
  g_set_error (cx->error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s%s: %s", cx->file, cx->prefix ? cx->prefix : "", field,
               why);
  return FALSE;
}

static JsonNode *
member (Ctx *cx, const char *name)
{
  JsonNode *n = json_object_get_member (cx->o, name);
  return n && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

/* An integer field; `dflt` < 0 makes it required. Must be >= min. */
static gboolean
get_int (Ctx *cx, const char *name, gint64 dflt, gint64 min, gint64 *out)
{
  JsonNode *n = member (cx, name);
  if (!n) {
    if (dflt < 0)
      return bad (cx, name, "missing");
    *out = dflt;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return bad (cx, name, "not an integer");
  *out = json_node_get_int (n);
  if (*out < min) {
    g_autofree char *why = g_strdup_printf ("%" G_GINT64_FORMAT " is below %" G_GINT64_FORMAT, *out, min);
    return bad (cx, name, why);
  }
  return TRUE;
}

static gboolean
get_num (JsonNode *n, double *out)
{
  if (!n || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return FALSE;
  *out = json_node_get_double (n);
  return isfinite (*out);
}

/* A positive number field with a default. */
static gboolean
get_pos (Ctx *cx, const char *name, double dflt, double *out)
{
  JsonNode *n = member (cx, name);
  if (!n) {
    *out = dflt;
    return TRUE;
  }
  if (!get_num (n, out) || *out <= 0)
    return bad (cx, name, "not a positive number");
  return TRUE;
}

static gboolean
get_bool (Ctx *cx, const char *name, gboolean dflt, gboolean *out)
{
  JsonNode *n = member (cx, name);
  if (!n) {
    *out = dflt;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return bad (cx, name, "not true or false");
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
parse_rope_scaling (Ctx *cx, CriaRopeScaling *rs)
{
  memset (rs, 0, sizeof *rs);
  rs->factor = 1;
  JsonNode *n = member (cx, "rope_scaling");
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (cx, "rope_scaling", "not an object");
  Ctx sub = { cx->file, json_node_get_object (n), cx->error, "rope_scaling." };
  /* Newer configs say rope_type, older ones type. */
  JsonNode *t = member (&sub, "rope_type");
  if (!t)
    t = member (&sub, "type");
  if (!t || !JSON_NODE_HOLDS_VALUE (t) || json_node_get_value_type (t) != G_TYPE_STRING)
    return bad (cx, "rope_scaling.rope_type", "missing or not a string");
  const char *type = json_node_get_string (t);
  static const char *const types[] = { "default", "linear", "dynamic", "llama3", "yarn" };
  guint i;
  for (i = 0; i < G_N_ELEMENTS (types); i++)
    if (strcmp (type, types[i]) == 0)
      break;
  if (i == G_N_ELEMENTS (types)) {
    g_set_error (cx->error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: rope_scaling.rope_type: '%s' is not supported (linear, dynamic, llama3, yarn)", cx->file, type);
    return FALSE;
  }
  rs->type = (CriaRopeScalingType) i;
  if (rs->type == CRIA_ROPE_SCALING_NONE)
    return TRUE;
  if (!get_pos (&sub, "factor", -1, &rs->factor))
    return FALSE; /* get_pos said why */
  if (rs->factor < 0)
    return bad (cx, "rope_scaling.factor", "missing");
  if (!get_int (&sub, "original_max_position_embeddings", rs->type == CRIA_ROPE_SCALING_LLAMA3 ? -1 : 0, 1,
                &rs->original_max_position_embeddings))
    return FALSE;
  if (rs->type == CRIA_ROPE_SCALING_LLAMA3) {
    if (!get_pos (&sub, "low_freq_factor", -1, &rs->low_freq_factor))
      return FALSE; /* get_pos said why */
    if (rs->low_freq_factor < 0)
      return bad (cx, "rope_scaling.low_freq_factor", "missing");
    if (!get_pos (&sub, "high_freq_factor", -1, &rs->high_freq_factor))
      return FALSE; /* get_pos said why */
    if (rs->high_freq_factor < 0)
      return bad (cx, "rope_scaling.high_freq_factor", "missing");
    if (rs->high_freq_factor <= rs->low_freq_factor)
      return bad (cx, "rope_scaling.high_freq_factor", "must be above low_freq_factor");
  }
  if (rs->type == CRIA_ROPE_SCALING_YARN) {
    if (!get_pos (&sub, "beta_fast", 32, &rs->beta_fast) || !get_pos (&sub, "beta_slow", 1, &rs->beta_slow) ||
        !get_pos (&sub, "attention_factor", 0, &rs->attention_factor) || rs->attention_factor < 0)
      return FALSE;
  }
  return TRUE;
}

static gboolean
parse_token_ids (Ctx *cx, CriaHfConfig *c)
{
  c->bos_token_id = c->pad_token_id = -1;
  if (member (cx, "bos_token_id") && !get_int (cx, "bos_token_id", 0, 0, &c->bos_token_id))
    return FALSE;
  if (member (cx, "pad_token_id") && !get_int (cx, "pad_token_id", 0, 0, &c->pad_token_id))
    return FALSE;
  c->eos_token_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  JsonNode *n = member (cx, "eos_token_id");
  if (!n)
    return TRUE;
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64 || json_node_get_int (e) < 0)
        return bad (cx, "eos_token_id", "not a list of token ids");
      gint64 id = json_node_get_int (e);
      g_array_append_val (c->eos_token_ids, id);
    }
    return TRUE;
  }
  gint64 id;
  if (!get_int (cx, "eos_token_id", 0, 0, &id))
    return FALSE;
  g_array_append_val (c->eos_token_ids, id);
  return TRUE;
}

static gboolean
parse_dtype (Ctx *cx, CriaHfConfig *c)
{
  c->torch_dtype = CRIA_DTYPE_F32;
  JsonNode *n = member (cx, "torch_dtype");
  if (!n)
    return TRUE;
  const char *s = JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ? json_node_get_string (n)
                                                                                             : "";
  if (strcmp (s, "float32") == 0)
    c->torch_dtype = CRIA_DTYPE_F32;
  else if (strcmp (s, "bfloat16") == 0)
    c->torch_dtype = CRIA_DTYPE_BF16;
  else if (strcmp (s, "float16") == 0)
    c->torch_dtype = CRIA_DTYPE_F16;
  else
    return bad (cx, "torch_dtype", "not float32, bfloat16 or float16");
  return TRUE;
}

static gboolean
parse_gpt2 (Ctx *cx, CriaHfConfig *c)
{
  gint64 inner;
  if (!get_int (cx, "n_embd", -1, 1, &c->hidden_size) || !get_int (cx, "n_layer", -1, 1, &c->n_layers) ||
      !get_int (cx, "n_head", -1, 1, &c->n_heads) || !get_int (cx, "vocab_size", -1, 1, &c->vocab_size) ||
      !get_int (cx, "n_positions", -1, 1, &c->max_positions) || !get_int (cx, "n_inner", 0, 1, &inner) ||
      !get_pos (cx, "layer_norm_epsilon", 1e-5, &c->norm_eps) ||
      !get_bool (cx, "tie_word_embeddings", TRUE, &c->tie_word_embeddings))
    return FALSE;
  c->intermediate_size = inner ? inner : 4 * c->hidden_size;
  c->n_kv_heads = c->n_heads;
  if (c->hidden_size % c->n_heads)
    return bad (cx, "n_head", "does not divide n_embd");
  c->head_dim = c->hidden_size / c->n_heads;
  c->attention_bias = c->mlp_bias = TRUE;
  JsonNode *act = member (cx, "activation_function");
  c->hidden_act = g_strdup (act && JSON_NODE_HOLDS_VALUE (act) && json_node_get_value_type (act) == G_TYPE_STRING
                                ? json_node_get_string (act)
                                : "gelu_new");
  return TRUE;
}

static gboolean
parse_llama (Ctx *cx, CriaHfConfig *c)
{
  if (!get_int (cx, "hidden_size", -1, 1, &c->hidden_size) || !get_int (cx, "num_hidden_layers", -1, 1, &c->n_layers) ||
      !get_int (cx, "num_attention_heads", -1, 1, &c->n_heads) ||
      !get_int (cx, "num_key_value_heads", c->n_heads, 1, &c->n_kv_heads) ||
      !get_int (cx, "intermediate_size", -1, 1, &c->intermediate_size) ||
      !get_int (cx, "vocab_size", -1, 1, &c->vocab_size) ||
      !get_int (cx, "max_position_embeddings", 2048, 1, &c->max_positions) ||
      !get_pos (cx, "rms_norm_eps", 1e-6, &c->norm_eps) || !get_pos (cx, "rope_theta", 10000, &c->rope_theta) ||
      !get_bool (cx, "tie_word_embeddings", FALSE, &c->tie_word_embeddings) ||
      !get_bool (cx, "attention_bias", c->arch == CRIA_HF_ARCH_QWEN2, &c->attention_bias) ||
      !get_bool (cx, "mlp_bias", FALSE, &c->mlp_bias) || !parse_rope_scaling (cx, &c->rope_scaling))
    return FALSE;
  if (c->hidden_size % c->n_heads && !member (cx, "head_dim"))
    return bad (cx, "num_attention_heads", "does not divide hidden_size and no head_dim is given");
  if (!get_int (cx, "head_dim", c->hidden_size / c->n_heads, 1, &c->head_dim))
    return FALSE;
  if (c->n_heads % c->n_kv_heads)
    return bad (cx, "num_key_value_heads", "does not divide num_attention_heads");
  if (c->arch == CRIA_HF_ARCH_QWEN2)
    c->attention_bias = TRUE; /* Qwen2 always has q/k/v biases, and no o_proj bias */
  gboolean sliding = c->arch == CRIA_HF_ARCH_MISTRAL;
  if (c->arch == CRIA_HF_ARCH_QWEN2 && !get_bool (cx, "use_sliding_window", FALSE, &sliding))
    return FALSE;
  if (sliding && !get_int (cx, "sliding_window", 0, 0, &c->sliding_window))
    return FALSE;
  JsonNode *act = member (cx, "hidden_act");
  c->hidden_act = g_strdup (act && JSON_NODE_HOLDS_VALUE (act) && json_node_get_value_type (act) == G_TYPE_STRING
                                ? json_node_get_string (act)
                                : "silu");
  return TRUE;
}

/* The shared sizes within CRIA_HF_MAX_*, whatever the architecture calls them. */
static gboolean
check_limits (Ctx *cx, const CriaHfConfig *c)
{
  gboolean g = c->arch == CRIA_HF_ARCH_GPT2; /* GPT-2 spells the shared fields its own way */
  const struct {
    const char *field;
    gint64 value, limit;
  } sizes[] = {
    { g ? "n_layer" : "num_hidden_layers", c->n_layers, CRIA_HF_MAX_LAYERS },
    { g ? "n_embd" : "hidden_size", c->hidden_size, CRIA_HF_MAX_WIDTH },
    { g ? "n_inner" : "intermediate_size", c->intermediate_size, CRIA_HF_MAX_WIDTH },
    { g ? "n_head" : "num_attention_heads", c->n_heads, CRIA_HF_MAX_WIDTH },
    { "head_dim", c->head_dim, CRIA_HF_MAX_WIDTH },
    { g ? "n_head" : "num_attention_heads x head_dim",
      c->n_heads <= CRIA_HF_MAX_WIDTH && c->head_dim <= CRIA_HF_MAX_WIDTH ? c->n_heads * c->head_dim : G_MAXINT64,
      CRIA_HF_MAX_WIDTH },
    { "vocab_size", c->vocab_size, CRIA_HF_MAX_VOCAB },
    { g ? "n_positions" : "max_position_embeddings", c->max_positions, CRIA_HF_MAX_POSITIONS },
  };
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    if (sizes[i].value > sizes[i].limit) {
      g_set_error (cx->error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: %s: %" G_GINT64_FORMAT " is over cria's limit of %" G_GINT64_FORMAT, cx->file, sizes[i].field,
                   sizes[i].value, sizes[i].limit);
      return FALSE;
    }
  return TRUE;
}

static CriaHfConfig *config_parse (const char *text, gssize len, const char *file, GError **error);

CriaHfConfig *
cria_hf_config_parse (const char *text, gssize len, const char *file, GError **error)
{
  CriaHfConfig *c = config_parse (text, len, file, error);
  mf_one_line (error);
  return c;
}

static CriaHfConfig *
config_parse (const char *text, gssize len, const char *file, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_parse (text, len, file, 1, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a JSON object", file);
    return NULL;
  }
  g_autoptr (CriaHfConfig) c = g_new0 (CriaHfConfig, 1);
  c->json = json_object_ref (json_node_get_object (root));
  GError *local = NULL;
  Ctx cx = { file, c->json, &local };
  JsonNode *archs = member (&cx, "architectures");
  const char *arch = NULL;
  if (archs && JSON_NODE_HOLDS_ARRAY (archs) && json_array_get_length (json_node_get_array (archs)) == 1) {
    JsonNode *a = json_array_get_element (json_node_get_array (archs), 0);
    if (JSON_NODE_HOLDS_VALUE (a) && json_node_get_value_type (a) == G_TYPE_STRING)
      arch = json_node_get_string (a);
  }
  if (!arch) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: architectures: missing or not a list of one class name",
                 file);
    return NULL;
  }
  guint i;
  for (i = 0; i < G_N_ELEMENTS (arch_names); i++)
    if (strcmp (arch, arch_names[i]) == 0)
      break;
  if (i == G_N_ELEMENTS (arch_names)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: architectures: '%s' is not supported (GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM, "
                 "MistralForCausalLM)",
                 file, arch);
    return NULL;
  }
  c->arch = (CriaHfArch) i;
  gboolean ok = c->arch == CRIA_HF_ARCH_GPT2 ? parse_gpt2 (&cx, c) : parse_llama (&cx, c);
  ok = ok && check_limits (&cx, c) && parse_dtype (&cx, c) && parse_token_ids (&cx, c);
  if (ok && (c->bos_token_id >= c->vocab_size || c->pad_token_id >= c->vocab_size))
    ok = bad (&cx, c->bos_token_id >= c->vocab_size ? "bos_token_id" : "pad_token_id", "not below vocab_size");
  for (guint e = 0; ok && e < c->eos_token_ids->len; e++)
    if (g_array_index (c->eos_token_ids, gint64, e) >= c->vocab_size)
      ok = bad (&cx, "eos_token_id", "not below vocab_size");
  if (!ok) {
    g_propagate_error (error, local);
    return NULL;
  }
  return g_steal_pointer (&c);
}

CriaHfConfig *
cria_hf_config_load (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;
  if (!cria_file_get_contents (path, CRIA_JSON_MAX_FILE_BYTES, &text, &len, error))
    return NULL;
  return cria_hf_config_parse (text, (gssize) len, path, error);
}

static void spec (GArray *out, gboolean optional, guint n_dims, gint64 d0, gint64 d1, const char *format, ...)
    G_GNUC_PRINTF (6, 7);

static void
spec (GArray *out, gboolean optional, guint n_dims, gint64 d0, gint64 d1, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  CriaHfTensorSpec s = { g_strdup_vprintf (format, ap), n_dims, { d0, d1 }, optional };
  va_end (ap);
  g_array_append_val (out, s);
}

static void
clear_spec (gpointer p)
{
  g_free (((CriaHfTensorSpec *) p)->name);
}

static void
gpt2_tensors (const CriaHfConfig *c, GArray *o)
{
  gint64 d = c->hidden_size, in = c->intermediate_size;
  spec (o, FALSE, 2, c->vocab_size, d, "transformer.wte.weight");
  spec (o, FALSE, 2, c->max_positions, d, "transformer.wpe.weight");
  for (gint64 l = 0; l < c->n_layers; l++) {
    const char *p = "transformer.h";
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".ln_1.weight", p, l);
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".ln_1.bias", p, l);
    /* Conv1D stores weights as [in, out], the transpose of nn.Linear. */
    spec (o, FALSE, 2, d, 3 * d, "%s.%" G_GINT64_FORMAT ".attn.c_attn.weight", p, l);
    spec (o, FALSE, 1, 3 * d, 0, "%s.%" G_GINT64_FORMAT ".attn.c_attn.bias", p, l);
    spec (o, FALSE, 2, d, d, "%s.%" G_GINT64_FORMAT ".attn.c_proj.weight", p, l);
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".attn.c_proj.bias", p, l);
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".ln_2.weight", p, l);
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".ln_2.bias", p, l);
    spec (o, FALSE, 2, d, in, "%s.%" G_GINT64_FORMAT ".mlp.c_fc.weight", p, l);
    spec (o, FALSE, 1, in, 0, "%s.%" G_GINT64_FORMAT ".mlp.c_fc.bias", p, l);
    spec (o, FALSE, 2, in, d, "%s.%" G_GINT64_FORMAT ".mlp.c_proj.weight", p, l);
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".mlp.c_proj.bias", p, l);
  }
  spec (o, FALSE, 1, d, 0, "transformer.ln_f.weight");
  spec (o, FALSE, 1, d, 0, "transformer.ln_f.bias");
  spec (o, c->tie_word_embeddings, 2, c->vocab_size, d, "lm_head.weight");
}

static void
llama_tensors (const CriaHfConfig *c, GArray *o)
{
  gint64 d = c->hidden_size, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
  gint64 in = c->intermediate_size;
  spec (o, FALSE, 2, c->vocab_size, d, "model.embed_tokens.weight");
  for (gint64 l = 0; l < c->n_layers; l++) {
    const char *p = "model.layers";
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".input_layernorm.weight", p, l);
    spec (o, FALSE, 2, q, d, "%s.%" G_GINT64_FORMAT ".self_attn.q_proj.weight", p, l);
    spec (o, FALSE, 2, kv, d, "%s.%" G_GINT64_FORMAT ".self_attn.k_proj.weight", p, l);
    spec (o, FALSE, 2, kv, d, "%s.%" G_GINT64_FORMAT ".self_attn.v_proj.weight", p, l);
    spec (o, FALSE, 2, d, q, "%s.%" G_GINT64_FORMAT ".self_attn.o_proj.weight", p, l);
    if (c->attention_bias) {
      spec (o, FALSE, 1, q, 0, "%s.%" G_GINT64_FORMAT ".self_attn.q_proj.bias", p, l);
      spec (o, FALSE, 1, kv, 0, "%s.%" G_GINT64_FORMAT ".self_attn.k_proj.bias", p, l);
      spec (o, FALSE, 1, kv, 0, "%s.%" G_GINT64_FORMAT ".self_attn.v_proj.bias", p, l);
      if (c->arch != CRIA_HF_ARCH_QWEN2)
        spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".self_attn.o_proj.bias", p, l);
    }
    spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".post_attention_layernorm.weight", p, l);
    spec (o, FALSE, 2, in, d, "%s.%" G_GINT64_FORMAT ".mlp.gate_proj.weight", p, l);
    spec (o, FALSE, 2, in, d, "%s.%" G_GINT64_FORMAT ".mlp.up_proj.weight", p, l);
    spec (o, FALSE, 2, d, in, "%s.%" G_GINT64_FORMAT ".mlp.down_proj.weight", p, l);
    if (c->mlp_bias) {
      spec (o, FALSE, 1, in, 0, "%s.%" G_GINT64_FORMAT ".mlp.gate_proj.bias", p, l);
      spec (o, FALSE, 1, in, 0, "%s.%" G_GINT64_FORMAT ".mlp.up_proj.bias", p, l);
      spec (o, FALSE, 1, d, 0, "%s.%" G_GINT64_FORMAT ".mlp.down_proj.bias", p, l);
    }
  }
  spec (o, FALSE, 1, d, 0, "model.norm.weight");
  spec (o, c->tie_word_embeddings, 2, c->vocab_size, d, "lm_head.weight");
}

GArray *
cria_hf_config_expected_tensors (const CriaHfConfig *c)
{
  GArray *o = g_array_new (FALSE, TRUE, sizeof (CriaHfTensorSpec));
  g_array_set_clear_func (o, clear_spec);
  if (c->arch == CRIA_HF_ARCH_GPT2)
    gpt2_tensors (c, o);
  else
    llama_tensors (c, o);
  return o;
}
