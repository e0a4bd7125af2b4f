/* cria-hfconfig.c: config.json, typed and validated as far as every
 * architecture shares it; the field readers model providers fill their sizes
 * with, and the tensor lists they describe checkpoints by. No architecture
 * is known here by name: cria_model_open_files asks the provider that claims
 * the class. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-input.h>
#include <cria/cria-json.h>

#include "cria-modelfiles-private.h"

void
cria_hf_config_free (CriaHfConfig *c)
{
  if (!c)
    return;
  g_free (c->hidden_act);
  g_free (c->architecture);
  g_free (c->file);
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

static CriaHfConfig *config_parse (const char *text, gssize len, const char *file, GError **error);

CriaHfConfig *
cria_hf_config_parse (const char *text, gssize len, const char *file, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
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
  c->architecture = g_strdup (arch);
  c->file = g_strdup (file);
  gboolean ok = parse_dtype (&cx, c) && parse_token_ids (&cx, c);
  if (!ok) {
    g_propagate_error (error, local);
    return NULL;
  }
  return g_steal_pointer (&c);
}

CriaHfConfig *
cria_hf_config_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *text = NULL;
  gsize len;
  if (!cria_file_get_contents (path, CRIA_JSON_MAX_FILE_BYTES, &text, &len, error))
    return NULL;
  return cria_hf_config_parse (text, (gssize) len, path, error);
}

/* A context over config->json for the field readers. */
static Ctx
ctx_of (const CriaHfConfig *c, GError **error)
{
  Ctx cx = { c->file ? c->file : "config.json", c->json, error };
  return cx;
}

gboolean
cria_hf_config_has (const CriaHfConfig *c, const char *name)
{
  g_return_val_if_fail (c && name, FALSE);
  Ctx cx = ctx_of (c, NULL);
  return member (&cx, name) != NULL;
}

gboolean
cria_hf_config_get_int (const CriaHfConfig *c, const char *name, gint64 dflt, gint64 min, gint64 *out, GError **error)
{
  g_return_val_if_fail (c && name && out, FALSE);
  Ctx cx = ctx_of (c, error);
  return get_int (&cx, name, dflt, min, out);
}

gboolean
cria_hf_config_get_number (const CriaHfConfig *c, const char *name, double dflt, double *out, GError **error)
{
  g_return_val_if_fail (c && name && out, FALSE);
  Ctx cx = ctx_of (c, error);
  return get_pos (&cx, name, dflt, out);
}

gboolean
cria_hf_config_get_bool (const CriaHfConfig *c, const char *name, gboolean dflt, gboolean *out, GError **error)
{
  g_return_val_if_fail (c && name && out, FALSE);
  Ctx cx = ctx_of (c, error);
  return get_bool (&cx, name, dflt, out);
}

gboolean
cria_hf_config_get_string (const CriaHfConfig *c, const char *name, const char *dflt, char **out, GError **error)
{
  g_return_val_if_fail (c && name && out, FALSE);
  Ctx cx = ctx_of (c, error);
  JsonNode *n = member (&cx, name);
  if (!n) {
    *out = g_strdup (dflt);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return bad (&cx, name, "not a string");
  *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

gboolean
cria_hf_config_get_rope (CriaHfConfig *c, double theta, GError **error)
{
  g_return_val_if_fail (c, FALSE);
  Ctx cx = ctx_of (c, error);
  return get_pos (&cx, "rope_theta", theta, &c->rope_theta) && parse_rope_scaling (&cx, &c->rope_scaling);
}

/* Computed in double and rounded once, as the published recipes do. */
void
cria_hf_config_rope_inv_freq (const CriaHfConfig *c, gint64 dim, gint64 seq, float *out, double *attn)
{
  g_return_if_fail (c && dim >= 2 && out && attn);
  const CriaRopeScaling *rs = &c->rope_scaling;
  gint64 half = dim / 2;
  double theta = c->rope_theta;
  *attn = 1.0;
  if (rs->type == CRIA_ROPE_SCALING_DYNAMIC) {
    gint64 maxp = rs->original_max_position_embeddings ? rs->original_max_position_embeddings : c->max_positions;
    if (seq > maxp)
      theta *= pow (rs->factor * (double) seq / (double) maxp - (rs->factor - 1), (double) dim / (double) (dim - 2));
  }
  double low = 0, high = 1;
  if (rs->type == CRIA_ROPE_SCALING_YARN) {
    gint64 maxp = rs->original_max_position_embeddings ? rs->original_max_position_embeddings : c->max_positions;
    double f = rs->factor;
    *attn = rs->attention_factor > 0 ? rs->attention_factor : (f > 1 ? 0.1 * log (f) + 1.0 : 1.0);
#define CORR(rot) ((double) dim * log ((double) maxp / ((rot) *2 * G_PI)) / (2 * log (theta)))
    low = MAX (floor (CORR (rs->beta_fast)), 0);
    high = MIN (ceil (CORR (rs->beta_slow)), (double) dim - 1);
#undef CORR
    if (low == high)
      high += 0.001;
  }
  for (gint64 i = 0; i < half; i++) {
    double inv = 1.0 / pow (theta, (double) (2 * i) / (double) dim);
    switch (rs->type) {
      case CRIA_ROPE_SCALING_LINEAR:
        inv /= rs->factor;
        break;
      case CRIA_ROPE_SCALING_LLAMA3: {
        double old = (double) rs->original_max_position_embeddings, wavelen = 2 * G_PI / inv;
        double smooth = (old / wavelen - rs->low_freq_factor) / (rs->high_freq_factor - rs->low_freq_factor);
        if (wavelen > old / rs->low_freq_factor)
          inv /= rs->factor;
        else if (wavelen >= old / rs->high_freq_factor)
          inv = (1 - smooth) * inv / rs->factor + smooth * inv;
        break;
      }
      case CRIA_ROPE_SCALING_YARN: {
        double ramp = CLAMP (((double) i - low) / (high - low), 0.0, 1.0), extra = 1 - ramp;
        inv = (inv / rs->factor) * (1 - extra) + inv * extra;
        break;
      }
      default:
        break;
    }
    out[i] = (float) inv;
  }
}

gboolean
cria_hf_config_check (const CriaHfConfig *c, GError **error)
{
  g_return_val_if_fail (c, FALSE);
  Ctx cx = ctx_of (c, error);
  const struct {
    const char *what;
    gint64 v;
  } sizes[] = { { "hidden size", c->hidden_size }, { "layer count", c->n_layers },
                { "attention heads", c->n_heads }, { "key/value heads", c->n_kv_heads },
                { "head size", c->head_dim },      { "intermediate size", c->intermediate_size },
                { "vocab_size", c->vocab_size },   { "positions", c->max_positions } };
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    if (sizes[i].v < 1)
      return bad (&cx, sizes[i].what, "missing or not positive");
  /* Caps before anything is sized by them (a tensor list, an allocation):
   * a config.json of a billion layers is refused, not grown into. */
  const struct {
    const char *what;
    gint64 v, limit;
  } caps[] = {
    { "layer count", c->n_layers, CRIA_HF_MAX_LAYERS },
    { "hidden size", c->hidden_size, CRIA_HF_MAX_WIDTH },
    { "intermediate size", c->intermediate_size, CRIA_HF_MAX_WIDTH },
    { "attention heads", c->n_heads, CRIA_HF_MAX_WIDTH },
    { "head size", c->head_dim, CRIA_HF_MAX_WIDTH },
    { "attention heads x head size",
      c->n_heads <= CRIA_HF_MAX_WIDTH && c->head_dim <= CRIA_HF_MAX_WIDTH ? c->n_heads * c->head_dim : G_MAXINT64,
      CRIA_HF_MAX_WIDTH },
    { "vocab_size", c->vocab_size, CRIA_HF_MAX_VOCAB },
    { "positions", c->max_positions, CRIA_HF_MAX_POSITIONS },
  };
  for (guint i = 0; i < G_N_ELEMENTS (caps); i++)
    if (caps[i].v > caps[i].limit) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: %s: %" G_GINT64_FORMAT " is over cria's limit of %" G_GINT64_FORMAT, cx.file, caps[i].what,
                   caps[i].v, caps[i].limit);
      return FALSE;
    }
  if (c->n_heads % c->n_kv_heads)
    return bad (&cx, "key/value heads", "do not divide the attention heads");
  if (c->bos_token_id >= c->vocab_size || c->pad_token_id >= c->vocab_size)
    return bad (&cx, c->bos_token_id >= c->vocab_size ? "bos_token_id" : "pad_token_id", "not below vocab_size");
  for (guint e = 0; e < c->eos_token_ids->len; e++)
    if (g_array_index (c->eos_token_ids, gint64, e) >= c->vocab_size)
      return bad (&cx, "eos_token_id", "not below vocab_size");
  return TRUE;
}

static void
clear_spec (gpointer p)
{
  g_free (((CriaHfTensorSpec *) p)->name);
}

GArray *
cria_hf_tensors_new (void)
{
  GArray *o = g_array_new (FALSE, TRUE, sizeof (CriaHfTensorSpec));
  g_array_set_clear_func (o, clear_spec);
  return o;
}

CriaHfTensorSpec *
cria_hf_tensors_add (GArray *list, CriaHfTensorRole role, guint n_dims, gint64 d0, gint64 d1, const char *format, ...)
{
  g_return_val_if_fail (list && format && (n_dims == 1 || n_dims == 2), NULL);
  va_list ap;
  va_start (ap, format);
  CriaHfTensorSpec s = { g_strdup_vprintf (format, ap), n_dims, { d0, n_dims == 2 ? d1 : 0 }, FALSE, role, 1.0 };
  va_end (ap);
  g_array_append_val (list, s);
  return &g_array_index (list, CriaHfTensorSpec, list->len - 1);
}
