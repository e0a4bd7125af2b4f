/* cria-nf4.c: NF4 quantization with double-quantized block scales, in the
 * layout and arithmetic of bitsandbytes (see cria-nf4.h for the exact rules).
 *
 *   a QLoRA base weight:  CriaTensor *w4 = cria_nf4_quantize (w, "q_proj.weight", &error);
 *                         cria_linear (g, "q_proj", x, cria_graph_param (g, "q_proj.weight", w4, FALSE), NULL);
 *
 * Every step is single f32 operations in a fixed order, so the result is
 * bit-reproducible and tests/compute/nf4_reference.py reproduces it bit for bit. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-nf4.h>

/* The NormalFloat4 values of the QLoRA paper as bitsandbytes stores them. */
static const float nf4_values[16] = {
  -1.0f,
  -0.6961928009986877f,
  -0.5250730514526367f,
  -0.39491748809814453f,
  -0.28444138169288635f,
  -0.18477343022823334f,
  -0.09105003625154495f,
  0.0f,
  0.07958029955625534f,
  0.16093020141124725f,
  0.24611230194568634f,
  0.33791524171829224f,
  0.44070982933044434f,
  0.5626170039176941f,
  0.7229568362236023f,
  1.0f,
};

const float *
cria_nf4_quant_map (void)
{
  return nf4_values;
}

static int
float_cmp (const void *pa, const void *pb)
{
  float a = *(const float *) pa, b = *(const float *) pb;
  return (a > b) - (a < b);
}

/* Exponents 10^-6 .. 10^0, each with 2^i fraction values: the means of
 * consecutive points of linspace(0.1, 1, 2^i + 1) in f32, scaled, both signs;
 * then 0 and 1. 127 + 127 + 2 = 256 values, sorted. */
void
cria_nf4_dynamic_map (float map[256])
{
  g_return_if_fail (map != NULL);
  static const double scales[7] = { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0 };
  int n = 0;
  for (int i = 0; i < 7; i++) {
    int steps = (1 << i) + 1;
    float start = 0.1f, end = 1.0f;
    float step = (end - start) / (float) (steps - 1);
    float b[65];
    for (int j = 0; j < steps; j++)
      b[j] = j < steps / 2 ? start + step * (float) j : end - step * (float) (steps - j - 1);
    float scale = (float) scales[i];
    for (int j = 0; j + 1 < steps; j++) {
      float mean = (b[j] + b[j + 1]) / 2.0f;
      map[n++] = scale * mean;
      map[n++] = -scale * mean;
    }
  }
  map[n++] = 0.0f;
  map[n++] = 1.0f;
  g_assert (n == 256);
  qsort (map, 256, sizeof (float), float_cmp);
}

/* bitsandbytes' dQuantize: a binary search over the sorted map, then the
 * nearer of the two neighbours by comparing with their midpoint. */
static guint8
dynamic_code (const float *map, float x)
{
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = map[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (upper_pivot == 255)
    upper = map[upper_pivot];
  if (lower_pivot == 0)
    lower = map[lower_pivot];
  if (x > val)
    return (guint8) (x > (upper + val) * 0.5f ? upper_pivot : pivot);
  return (guint8) (x < (lower + val) * 0.5f ? lower_pivot : pivot);
}

/* Midpoints of consecutive NF4 values, as bitsandbytes' decision tree has
 * them (its constants are these midpoints, computed in double). */
static const float *
nf4_thresholds (void)
{
  static float t[15];
  static gsize done = 0;
  if (g_once_init_enter (&done)) {
    for (int i = 0; i < 15; i++)
      t[i] = (float) (((double) nf4_values[i] + (double) nf4_values[i + 1]) / 2.0);
    g_once_init_leave (&done, 1);
  }
  return t;
}

/* The tree's leaf: the number of thresholds below x, found in four
 * comparisons (NaN is below none, so it gets 0, as in the tree). */
static guint8
nf4_code (const float *t, float x)
{
  int c = x > t[7] ? 8 : 0;
  c += x > t[c + 3] ? 4 : 0;
  c += x > t[c + 1] ? 2 : 0;
  c += x > t[c] ? 1 : 0;
  return (guint8) c;
}

void
cria_nf4_state_free (CriaNf4State *state)
{
  if (!state)
    return;
  g_free (state->absmax);
  g_free (state->nested_absmax);
  g_free (state->absmax_f32);
  g_free (state);
}

static CriaNf4State *
state_new (gint64 n, CriaDType source_dtype)
{
  CriaNf4State *s = g_new0 (CriaNf4State, 1);
  s->n_blocks = (n + CRIA_NF4_BLOCK - 1) / CRIA_NF4_BLOCK;
  s->n_nested = (s->n_blocks + CRIA_NF4_NESTED_BLOCK - 1) / CRIA_NF4_NESTED_BLOCK;
  s->absmax = g_new0 (guint8, s->n_blocks);
  s->nested_absmax = g_new0 (float, s->n_nested);
  s->source_dtype = source_dtype;
  memcpy (s->quant_map, nf4_values, sizeof s->quant_map);
  cria_nf4_dynamic_map (s->nested_quant_map);
  return s;
}

/* Quantizes the block absmax values with the dynamic map (double quantization). */
static void
quantize_absmax (CriaNf4State *s, const float *absmax)
{
  double sum = 0;
  for (gint64 b = 0; b < s->n_blocks; b++)
    sum += absmax[b];
  s->offset = (float) (sum / (double) s->n_blocks);
  for (gint64 nb = 0; nb < s->n_nested; nb++) {
    gint64 b0 = nb * CRIA_NF4_NESTED_BLOCK, b1 = MIN (s->n_blocks, b0 + CRIA_NF4_NESTED_BLOCK);
    float amax = 0.0f;
    for (gint64 b = b0; b < b1; b++)
      amax = fmaxf (amax, fabsf (absmax[b] - s->offset));
    s->nested_absmax[nb] = amax;
    float inv = 1.0f / amax;
    for (gint64 b = b0; b < b1; b++)
      s->absmax[b] = dynamic_code (s->nested_quant_map, (absmax[b] - s->offset) * inv);
  }
}

/* Blocks [b0, b1) of a weight, quantized by one thread. */
typedef struct {
  const CriaTensor *src;
  guint8 *out;
  float *absmax;
  gint64 n, b0, b1;
  gint64 bad; /* the first non-finite element, or -1 */
  float bad_value;
} Job;

static gpointer
quantize_blocks (gpointer data)
{
  Job *j = data;
  const float *thr = nf4_thresholds ();
  float x[CRIA_NF4_BLOCK + 1];
  for (gint64 b = j->b0; b < j->b1; b++) {
    gint64 e0 = b * CRIA_NF4_BLOCK, len = MIN (CRIA_NF4_BLOCK, j->n - e0);
    cria_convert_to_f32 (j->src->dtype, (const char *) j->src->data + cria_dtype_bytes (j->src->dtype, (gsize) e0), x,
                         (gsize) len);
    float amax = 0.0f;
    for (gint64 i = 0; i < len; i++) {
      if (!isfinite (x[i])) {
        j->bad = e0 + i;
        j->bad_value = x[i];
        return NULL;
      }
      amax = fmaxf (amax, fabsf (x[i]));
    }
    j->absmax[b] = amax;
    x[len] = 0.0f; /* the padding nibble of an odd last element */
    float inv = 1.0f / amax;
    for (gint64 i = 0; i < len; i += 2)
      j->out[(e0 + i) / 2] = (guint8) (nf4_code (thr, x[i] * inv) << 4 | nf4_code (thr, x[i + 1] * inv));
  }
  return NULL;
}

/* Blocks are independent, so a large weight is cut between threads (the
 * result does not depend on how); the double quantization follows. */
CriaTensor *
cria_nf4_quantize (const CriaTensor *src, const char *name, GError **error)
{
  g_return_val_if_fail (src != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (src->dtype != CRIA_DTYPE_F32 && src->dtype != CRIA_DTYPE_BF16 && src->dtype != CRIA_DTYPE_F16) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: only f32, bf16 and f16 weights quantize to nf4, not %s", name, cria_dtype_name (src->dtype));
    return NULL;
  }
  gint64 n = cria_tensor_numel (src);
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_NF4, src->n_dims, src->shape);
  t->nf4 = state_new (n, src->dtype);
  gint64 n_blocks = t->nf4->n_blocks;
  g_autofree float *absmax = g_new (float, n_blocks);
  int n_jobs = (int) MIN ((gint64) g_get_num_processors (), n_blocks / 4096 + 1);
  g_autofree Job *jobs = g_new0 (Job, n_jobs);
  g_autofree GThread **threads = g_new0 (GThread *, n_jobs);
  for (int i = 0; i < n_jobs; i++) {
    jobs[i] = (Job){ src, t->data, absmax, n, n_blocks * i / n_jobs, n_blocks * (i + 1) / n_jobs, -1, 0 };
    if (i > 0)
      threads[i] = g_thread_new ("nf4-quantize", quantize_blocks, &jobs[i]);
  }
  quantize_blocks (&jobs[0]);
  for (int i = 1; i < n_jobs; i++)
    g_thread_join (threads[i]);
  for (int i = 0; i < n_jobs; i++)
    if (jobs[i].bad >= 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: element %" G_GINT64_FORMAT " is %g", name,
                   jobs[i].bad, (double) jobs[i].bad_value);
      return NULL;
    }
  quantize_absmax (t->nf4, absmax);
  return g_steal_pointer (&t);
}

CriaTensor *
cria_nf4_tensor_new (int n_dims, const gint64 *shape, CriaDType source_dtype, const guint8 *packed, gsize packed_bytes,
                     const guint8 *absmax, gint64 n_blocks, const float *nested_absmax, gint64 n_nested, float offset,
                     const float *quant_map, const float *nested_quant_map, const char *name, GError **error)
{
  g_return_val_if_fail (packed != NULL, NULL);
  g_return_val_if_fail (absmax != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gint64 n = n_dims >= 1 && n_dims <= CRIA_MAX_DIMS ? cria_shape_numel (n_dims, shape) : 0;
  if (n == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: invalid shape for an nf4 weight", name);
    return NULL;
  }
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_NF4, n_dims, shape);
  t->nf4 = state_new (n, source_dtype);
  CriaNf4State *s = t->nf4;
  g_autofree char *shape_str = cria_shape_to_string (n_dims, shape);
  const char *what = NULL;
  gint64 got = 0, want = 0;
  if (packed_bytes != cria_tensor_nbytes (t))
    what = "packed data (bytes)", got = (gint64) packed_bytes, want = (gint64) cria_tensor_nbytes (t);
  else if (n_blocks != s->n_blocks)
    what = "absmax", got = n_blocks, want = s->n_blocks;
  else if (n_nested != s->n_nested)
    what = "nested_absmax", got = n_nested, want = s->n_nested;
  if (what) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: %s has %" G_GINT64_FORMAT " entries, expected %" G_GINT64_FORMAT " for shape %s", name, what, got,
                 want, shape_str);
    return NULL;
  }
  for (gint64 i = 0; i < n_nested; i++)
    if (!isfinite (nested_absmax[i])) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: nested_absmax[%" G_GINT64_FORMAT "] is %g",
                   name, i, (double) nested_absmax[i]);
      return NULL;
    }
  if (!isfinite (offset)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: nested_offset is %g", name, (double) offset);
    return NULL;
  }
  memcpy (t->data, packed, packed_bytes);
  memcpy (s->absmax, absmax, (gsize) n_blocks);
  memcpy (s->nested_absmax, nested_absmax, (gsize) n_nested * sizeof (float));
  s->offset = offset;
  if (quant_map)
    memcpy (s->quant_map, quant_map, sizeof s->quant_map);
  if (nested_quant_map)
    memcpy (s->nested_quant_map, nested_quant_map, sizeof s->nested_quant_map);
  return g_steal_pointer (&t);
}

void
cria_nf4_device_layout (const CriaTensor *tensor, CriaNf4Layout *layout)
{
  g_return_if_fail (tensor != NULL && tensor->nf4 != NULL);
  g_return_if_fail (layout != NULL);
  const CriaNf4State *s = tensor->nf4;
#define NEXT(o_) (((o_) + 15) / 16 * 16)
  layout->absmax = NEXT (cria_tensor_nbytes (tensor));
  layout->nested_absmax = NEXT (layout->absmax + (gsize) s->n_blocks * (s->n_nested ? 1 : sizeof (float)));
  layout->quant_map = NEXT (layout->nested_absmax + (gsize) s->n_nested * sizeof (float));
  layout->nested_quant_map = layout->quant_map + sizeof s->quant_map;
  layout->bytes = layout->nested_quant_map + sizeof s->nested_quant_map;
#undef NEXT
}

float
cria_nf4_block_absmax (const CriaNf4State *s, gint64 block)
{
  g_return_val_if_fail (s != NULL, 0.0f);
  g_return_val_if_fail (block >= 0 && block < s->n_blocks, 0.0f);
  if (s->absmax_f32)
    return s->absmax_f32[block];
  return s->nested_quant_map[s->absmax[block]] * s->nested_absmax[block / CRIA_NF4_NESTED_BLOCK] + s->offset;
}

void
cria_nf4_dequantize_range (const CriaTensor *tensor, gint64 start, gint64 count, float *out)
{
  g_return_if_fail (tensor != NULL);
  g_return_if_fail (out != NULL);
  const CriaNf4State *s = tensor->nf4;
  const guint8 *d = tensor->data;
  gint64 e = start, end = start + count;
  while (e < end) {
    gint64 b = e / CRIA_NF4_BLOCK, block_end = MIN (end, (b + 1) * CRIA_NF4_BLOCK);
    /* q * absmax for the 16 codes: the one product bitsandbytes computes per element */
    float scale = cria_nf4_block_absmax (s, b), lut[16];
    for (int k = 0; k < 16; k++)
      lut[k] = s->quant_map[k] * scale;
    if (e & 1)
      *out++ = lut[d[e++ >> 1] & 15];
    for (; e + 1 < block_end; e += 2) {
      guint8 byte = d[e >> 1];
      *out++ = lut[byte >> 4];
      *out++ = lut[byte & 15];
    }
    if (e < block_end)
      *out++ = lut[d[e++ >> 1] >> 4];
  }
}

CriaTensor *
cria_nf4_dequantize (const CriaTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, NULL);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, tensor->n_dims, tensor->shape);
  cria_nf4_dequantize_range (tensor, 0, cria_tensor_numel (tensor), t->data);
  return t;
}

/* Loading a bitsandbytes checkpoint: every name, dtype and size is checked
 * against the quant_state before anything is copied. */

typedef struct {
  CriaSafetensors *st;
  const char *name;
  GError **error;
} Loader;

G_GNUC_PRINTF (3, 4) static gboolean load_fail (Loader *l, const char *suffix, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (l->error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s%s: %s", cria_safetensors_get_path (l->st), l->name,
               suffix, msg);
  return FALSE;
}

/* name + suffix, of that dtype and (n >= 0) that many values. */
static const CriaWeight *
load_part (Loader *l, const char *suffix, CriaDType dtype, gint64 n)
{
  g_autofree char *full = g_strconcat (l->name, suffix, NULL);
  const CriaWeight *w = cria_safetensors_lookup (l->st, full);
  if (!w)
    load_fail (l, suffix, "is missing");
  else if (w->dtype != dtype)
    load_fail (l, suffix, "is %s, expected %s", cria_dtype_name (w->dtype), cria_dtype_name (dtype));
  else if (n >= 0 && w->n_elements != n)
    load_fail (l, suffix, "has %" G_GINT64_FORMAT " values, expected %" G_GINT64_FORMAT, w->n_elements, n);
  else
    return w;
  return NULL;
}

typedef struct {
  CriaDType dtype;
  int n_dims;
  gint64 shape[CRIA_MAX_DIMS];
  gboolean nested;
  float offset;
} QuantState;

#define STATE_KEY ".quant_state.bitsandbytes__nf4"

static gboolean
json_int (JsonObject *o, const char *member, gint64 *value)
{
  JsonNode *n = json_object_get_member (o, member);
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (n);
  return TRUE;
}

static gboolean
parse_quant_state (Loader *l, const CriaWeight *w, QuantState *qs)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (w->data, (gssize) w->n_bytes, STATE_KEY, 1, &err);
  if (!root)
    return load_fail (l, STATE_KEY, "not JSON: %s", err->message);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return load_fail (l, STATE_KEY, "not a JSON object");
  JsonObject *o = json_node_get_object (root);
  const char *type = json_object_get_string_member_with_default (o, "quant_type", "");
  const char *dtype = json_object_get_string_member_with_default (o, "dtype", "");
  gint64 blocksize = 0, nested_blocksize = 0;
  if (g_strcmp0 (type, "nf4") != 0)
    return load_fail (l, STATE_KEY, "quant_type is \"%s\"; cria reads nf4", type);
  if (!json_int (o, "blocksize", &blocksize) || blocksize != CRIA_NF4_BLOCK)
    return load_fail (l, STATE_KEY, "blocksize is not %d", CRIA_NF4_BLOCK);
  if (!cria_dtype_from_name (g_str_equal (dtype, "bfloat16")  ? "bf16"
                             : g_str_equal (dtype, "float16") ? "f16"
                             : g_str_equal (dtype, "float32") ? "f32"
                                                              : "?",
                             &qs->dtype))
    return load_fail (l, STATE_KEY, "dtype \"%s\" is not bfloat16, float16 or float32", dtype);
  JsonNode *shape = json_object_get_member (o, "shape");
  JsonArray *dims = shape && JSON_NODE_HOLDS_ARRAY (shape) ? json_node_get_array (shape) : NULL;
  qs->n_dims = dims ? (int) json_array_get_length (dims) : 0;
  if (qs->n_dims < 1 || qs->n_dims > CRIA_MAX_DIMS)
    return load_fail (l, STATE_KEY, "shape is not a list of 1 to %d sizes", CRIA_MAX_DIMS);
  for (int i = 0; i < qs->n_dims; i++) {
    JsonNode *d = json_array_get_element (dims, (guint) i);
    qs->shape[i] = JSON_NODE_HOLDS_VALUE (d) && json_node_get_value_type (d) == G_TYPE_INT64 ? json_node_get_int (d)
                                                                                             : 0;
  }
  if (cria_shape_numel (qs->n_dims, qs->shape) == 0)
    return load_fail (l, STATE_KEY, "shape holds a size that is not a positive integer");
  qs->nested = json_object_has_member (o, "nested_offset");
  if (!qs->nested)
    return TRUE;
  JsonNode *off = json_object_get_member (o, "nested_offset");
  if (!json_int (o, "nested_blocksize", &nested_blocksize) || nested_blocksize != CRIA_NF4_NESTED_BLOCK)
    return load_fail (l, STATE_KEY, "nested_blocksize is not %d", CRIA_NF4_NESTED_BLOCK);
  if (g_strcmp0 (json_object_get_string_member_with_default (o, "nested_dtype", ""), "float32") != 0)
    return load_fail (l, STATE_KEY, "nested_dtype is not float32");
  if (!JSON_NODE_HOLDS_VALUE (off) ||
      (json_node_get_value_type (off) != G_TYPE_DOUBLE && json_node_get_value_type (off) != G_TYPE_INT64))
    return load_fail (l, STATE_KEY, "nested_offset is not a number");
  qs->offset = (float) json_node_get_double (off);
  return TRUE;
}

/* A float array of a file, copied: the mapping guarantees no alignment. */
static float *
floats_of (const CriaWeight *w)
{
  return g_memdup2 (w->data, w->n_bytes);
}

CriaTensor *
cria_nf4_load (CriaSafetensors *st, const char *name, GError **error)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  Loader l = { st, name, error };
  QuantState qs = { 0 };
  const CriaWeight *state = load_part (&l, STATE_KEY, CRIA_DTYPE_U8, -1);
  if (!state || !parse_quant_state (&l, state, &qs))
    return NULL;
  gint64 n = cria_shape_numel (qs.n_dims, qs.shape);
  gint64 n_blocks = (n + CRIA_NF4_BLOCK - 1) / CRIA_NF4_BLOCK;
  gint64 n_nested = (n_blocks + CRIA_NF4_NESTED_BLOCK - 1) / CRIA_NF4_NESTED_BLOCK;
  const CriaWeight *packed = load_part (&l, "", CRIA_DTYPE_U8, (n + 1) / 2);
  const CriaWeight *qmap = packed ? load_part (&l, ".quant_map", CRIA_DTYPE_F32, 16) : NULL;
  const CriaWeight *absmax = qmap ? load_part (&l, ".absmax", qs.nested ? CRIA_DTYPE_U8 : CRIA_DTYPE_F32, n_blocks)
                                  : NULL;
  if (!absmax)
    return NULL;
  g_autofree float *quant_map = floats_of (qmap);
  if (qs.nested) {
    const CriaWeight *nested = load_part (&l, ".nested_absmax", CRIA_DTYPE_F32, n_nested);
    const CriaWeight *nmap = nested ? load_part (&l, ".nested_quant_map", CRIA_DTYPE_F32, 256) : NULL;
    if (!nmap)
      return NULL;
    g_autofree float *nested_absmax = floats_of (nested), *nested_map = floats_of (nmap);
    g_autofree char *what = g_strdup_printf ("%s: %s", cria_safetensors_get_path (st), name);
    return cria_nf4_tensor_new (qs.n_dims, qs.shape, qs.dtype, packed->data, packed->n_bytes, absmax->data, n_blocks,
                                nested_absmax, n_nested, qs.offset, quant_map, nested_map, what, error);
  }
  g_autoptr (CriaTensor) t = cria_tensor_new (CRIA_DTYPE_NF4, qs.n_dims, qs.shape);
  t->nf4 = state_new (n, qs.dtype);
  g_clear_pointer (&t->nf4->absmax, g_free);
  g_clear_pointer (&t->nf4->nested_absmax, g_free);
  t->nf4->n_nested = 0;
  t->nf4->absmax_f32 = floats_of (absmax);
  for (gint64 b = 0; b < n_blocks; b++)
    if (!isfinite (t->nf4->absmax_f32[b])) {
      load_fail (&l, ".absmax", "block %" G_GINT64_FORMAT " is %g", b, (double) t->nf4->absmax_f32[b]);
      return NULL;
    }
  memcpy (t->nf4->quant_map, quant_map, sizeof t->nf4->quant_map);
  memcpy (t->data, packed->data, packed->n_bytes);
  return g_steal_pointer (&t);
}
