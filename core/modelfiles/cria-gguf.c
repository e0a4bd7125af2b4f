/* cria-gguf.c: the GGUF writer and ggml's reference quantizers (q8_0, q4_0).
 *
 * Layout (GGUF v3, little-endian): "GGUF", version, tensor count, metadata
 * count; each metadata entry as key string, value type, value; each tensor
 * as name, dims, ne[], ggml type, offset into the data section; padding to
 * the alignment; then every tensor's bytes, each padded to the alignment.
 * Strings are a u64 length and the bytes, without NUL. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-gguf.h>
#include <cria/cria-output.h>

#define GGUF_ALIGN 32
#define QK 32 /* values per q8_0 and q4_0 block */

enum {
  GGUF_UINT32 = 4,
  GGUF_INT32 = 5,
  GGUF_FLOAT32 = 6,
  GGUF_BOOL = 7,
  GGUF_STRING = 8,
  GGUF_ARRAY = 9,
};

static const struct {
  const char *name;
  CriaGgufType type;
} type_names[] = {
  { "f32", CRIA_GGUF_F32 },   { "f16", CRIA_GGUF_F16 },   { "bf16", CRIA_GGUF_BF16 },
  { "q8_0", CRIA_GGUF_Q8_0 }, { "q4_0", CRIA_GGUF_Q4_0 },
};

gboolean
cria_gguf_type_from_name (const char *name, CriaGgufType *type)
{
  for (guint i = 0; i < G_N_ELEMENTS (type_names); i++)
    if (g_ascii_strcasecmp (name, type_names[i].name) == 0) {
      *type = type_names[i].type;
      return TRUE;
    }
  return FALSE;
}

const char *
cria_gguf_type_name (CriaGgufType type)
{
  for (guint i = 0; i < G_N_ELEMENTS (type_names); i++)
    if (type_names[i].type == type)
      return type_names[i].name;
  return "?";
}

gsize
cria_gguf_row_size (CriaGgufType type, gint64 n)
{
  switch (type) {
    case CRIA_GGUF_F32:
      return (gsize) n * 4;
    case CRIA_GGUF_F16:
    case CRIA_GGUF_BF16:
      return (gsize) n * 2;
    case CRIA_GGUF_Q8_0: /* f16 scale + 32 int8 */
      return n % QK ? 0 : (gsize) (n / QK) * (2 + QK);
    case CRIA_GGUF_Q4_0: /* f16 scale + 32 nibbles */
      return n % QK ? 0 : (gsize) (n / QK) * (2 + QK / 2);
  }
  return 0;
}

static void
put16 (guint8 *p, guint16 v)
{
  p[0] = (guint8) v;
  p[1] = (guint8) (v >> 8);
}

/* ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d) (half
 * away from zero, roundf), d stored as f16. */
static void
quantize_q8_0 (const float *x, gint64 n, guint8 *out)
{
  for (gint64 b = 0; b < n / QK; b++, x += QK, out += 2 + QK) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
      amax = MAX (amax, fabsf (x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16 (out, cria_f32_to_f16 (d));
    for (int j = 0; j < QK; j++)
      out[2 + j] = (guint8) (gint8) roundf (x[j] * id);
  }
}

/* ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8,
 * q = min(15, trunc(x / d + 8.5)); value j in the low nibble of byte j,
 * value j + 16 in its high nibble. */
static void
quantize_q4_0 (const float *x, gint64 n, guint8 *out)
{
  for (gint64 b = 0; b < n / QK; b++, x += QK, out += 2 + QK / 2) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++)
      if (amax < fabsf (x[j])) {
        amax = fabsf (x[j]);
        max = x[j];
      }
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16 (out, cria_f32_to_f16 (d));
    for (int j = 0; j < QK / 2; j++) {
      guint8 lo = (guint8) MIN (15, (gint8) (x[j] * id + 8.5f));
      guint8 hi = (guint8) MIN (15, (gint8) (x[QK / 2 + j] * id + 8.5f));
      out[2 + j] = (guint8) (lo | hi << 4);
    }
  }
}

void
cria_gguf_quantize_row (CriaGgufType type, const float *x, gint64 n, guint8 *out)
{
  switch (type) {
    case CRIA_GGUF_F32:
      memcpy (out, x, (gsize) n * 4);
      break;
    case CRIA_GGUF_F16:
      for (gint64 i = 0; i < n; i++)
        put16 (out + 2 * i, cria_f32_to_f16 (x[i]));
      break;
    case CRIA_GGUF_BF16:
      for (gint64 i = 0; i < n; i++)
        put16 (out + 2 * i, cria_f32_to_bf16 (x[i]));
      break;
    case CRIA_GGUF_Q8_0:
      quantize_q8_0 (x, n, out);
      break;
    case CRIA_GGUF_Q4_0:
      quantize_q4_0 (x, n, out);
      break;
  }
}

typedef struct {
  char *name;
  CriaGgufType type;
  CriaTensor *tensor;
  gint64 rows, cols; /* cols = ne[0] */
  guint64 offset;
} GgufTensor;

typedef struct {
  GByteArray *bytes; /* the value type and the value, serialized */
  char *string;      /* a string value, for cria_gguf_get_string */
} GgufValue;

struct _CriaGgufWriter {
  GPtrArray *keys;     /* char*, in order */
  GHashTable *values;  /* key -> GgufValue* */
  GPtrArray *tensors;  /* GgufTensor* */
  GHashTable *by_name; /* tensor names */
};

static void
value_free (GgufValue *v)
{
  g_byte_array_unref (v->bytes);
  g_free (v->string);
  g_free (v);
}

static void
tensor_free (GgufTensor *t)
{
  g_free (t->name);
  cria_tensor_unref (t->tensor);
  g_free (t);
}

CriaGgufWriter *
cria_gguf_writer_new (void)
{
  CriaGgufWriter *w = g_new0 (CriaGgufWriter, 1);
  w->keys = g_ptr_array_new_with_free_func (g_free);
  w->values = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) value_free);
  w->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) tensor_free);
  w->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  return w;
}

void
cria_gguf_writer_free (CriaGgufWriter *w)
{
  if (!w)
    return;
  g_hash_table_destroy (w->values);
  g_ptr_array_unref (w->keys);
  g_hash_table_destroy (w->by_name);
  g_ptr_array_unref (w->tensors);
  g_free (w);
}

static void
put_u32 (GByteArray *b, guint32 v)
{
  v = GUINT32_TO_LE (v);
  g_byte_array_append (b, (const guint8 *) &v, 4);
}

static void
put_u64 (GByteArray *b, guint64 v)
{
  v = GUINT64_TO_LE (v);
  g_byte_array_append (b, (const guint8 *) &v, 8);
}

static void
put_string (GByteArray *b, const char *s)
{
  gsize len = strlen (s);
  put_u64 (b, len);
  g_byte_array_append (b, (const guint8 *) s, (guint) len);
}

/* A fresh value for `key` with its type written. */
static GgufValue *
new_value (CriaGgufWriter *w, const char *key, guint32 type)
{
  GgufValue *v = g_new0 (GgufValue, 1);
  v->bytes = g_byte_array_new ();
  put_u32 (v->bytes, type);
  gpointer stored;
  if (!g_hash_table_lookup_extended (w->values, key, &stored, NULL)) {
    stored = g_strdup (key); /* owned by w->keys, which keeps the order */
    g_ptr_array_add (w->keys, stored);
  }
  g_hash_table_insert (w->values, stored, v);
  return v;
}

void
cria_gguf_set_u32 (CriaGgufWriter *w, const char *key, guint32 value)
{
  put_u32 (new_value (w, key, GGUF_UINT32)->bytes, value);
}

void
cria_gguf_set_i32 (CriaGgufWriter *w, const char *key, gint32 value)
{
  put_u32 (new_value (w, key, GGUF_INT32)->bytes, (guint32) value);
}

void
cria_gguf_set_f32 (CriaGgufWriter *w, const char *key, float value)
{
  guint32 u;
  memcpy (&u, &value, 4);
  put_u32 (new_value (w, key, GGUF_FLOAT32)->bytes, u);
}

void
cria_gguf_set_bool (CriaGgufWriter *w, const char *key, gboolean value)
{
  guint8 b = value ? 1 : 0;
  g_byte_array_append (new_value (w, key, GGUF_BOOL)->bytes, &b, 1);
}

void
cria_gguf_set_string (CriaGgufWriter *w, const char *key, const char *value)
{
  GgufValue *v = new_value (w, key, GGUF_STRING);
  put_string (v->bytes, value);
  v->string = g_strdup (value);
}

void
cria_gguf_set_string_array (CriaGgufWriter *w, const char *key, const char *const *values, gsize n)
{
  GByteArray *b = new_value (w, key, GGUF_ARRAY)->bytes;
  put_u32 (b, GGUF_STRING);
  put_u64 (b, n);
  for (gsize i = 0; i < n; i++)
    put_string (b, values[i]);
}

void
cria_gguf_set_f32_array (CriaGgufWriter *w, const char *key, const float *values, gsize n)
{
  GByteArray *b = new_value (w, key, GGUF_ARRAY)->bytes;
  put_u32 (b, GGUF_FLOAT32);
  put_u64 (b, n);
  for (gsize i = 0; i < n; i++) {
    guint32 u;
    memcpy (&u, &values[i], 4);
    put_u32 (b, u);
  }
}

void
cria_gguf_set_i32_array (CriaGgufWriter *w, const char *key, const gint32 *values, gsize n)
{
  GByteArray *b = new_value (w, key, GGUF_ARRAY)->bytes;
  put_u32 (b, GGUF_INT32);
  put_u64 (b, n);
  for (gsize i = 0; i < n; i++)
    put_u32 (b, (guint32) values[i]);
}

const char *
cria_gguf_get_string (CriaGgufWriter *w, const char *key)
{
  GgufValue *v = g_hash_table_lookup (w->values, key);
  return v ? v->string : NULL;
}

gboolean
cria_gguf_add_tensor (CriaGgufWriter *w, const char *name, CriaGgufType type, CriaTensor *tensor, GError **error)
{
  if (tensor->n_dims < 1 || tensor->n_dims > 2) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: %d dimensions (GGUF export writes 1 or 2)", name,
                 tensor->n_dims);
    return FALSE;
  }
  gint64 cols = tensor->shape[tensor->n_dims - 1];
  if (!cria_gguf_row_size (type, cols)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: rows of %" G_GINT64_FORMAT " values are not whole %s blocks", name, cols,
                 cria_gguf_type_name (type));
    return FALSE;
  }
  if (g_hash_table_contains (w->by_name, name)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: two tensors of that name", name);
    return FALSE;
  }
  GgufTensor *t = g_new0 (GgufTensor, 1);
  t->name = g_strdup (name);
  t->type = type;
  t->tensor = cria_tensor_ref (tensor);
  t->cols = cols;
  t->rows = tensor->n_dims == 2 ? tensor->shape[0] : 1;
  g_ptr_array_add (w->tensors, t);
  g_hash_table_add (w->by_name, t->name);
  return TRUE;
}

guint
cria_gguf_get_n_tensors (CriaGgufWriter *w)
{
  return w->tensors->len;
}

static gboolean
write_padding (CriaOutput *out, guint64 *pos, GError **error)
{
  static const guint8 zeros[GGUF_ALIGN];
  gsize pad = (gsize) ((GGUF_ALIGN - *pos % GGUF_ALIGN) % GGUF_ALIGN);
  *pos += pad;
  return pad == 0 || cria_output_write (out, zeros, pad, error);
}

static gboolean
write_tensor (CriaOutput *out, GgufTensor *t, guint64 *pos, GError **error)
{
  g_autoptr (CriaTensor) f32 = t->tensor->dtype == CRIA_DTYPE_F32 ? cria_tensor_ref (t->tensor)
                                                                  : cria_tensor_to_f32 (t->tensor);
  if (!f32) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: not a float tensor", t->name);
    return FALSE;
  }
  gsize row = cria_gguf_row_size (t->type, t->cols);
  /* a few rows at a time keeps the buffer small for any model */
  gint64 chunk = MAX (1, (gint64) ((1 << 20) / row));
  g_autofree guint8 *buf = g_malloc (row * (gsize) MIN (chunk, t->rows));
  const float *x = f32->data;
  for (gint64 r = 0; r < t->rows; r += chunk) {
    gint64 n = MIN (chunk, t->rows - r);
    for (gint64 i = 0; i < n; i++)
      cria_gguf_quantize_row (t->type, x + (r + i) * t->cols, t->cols, buf + (gsize) i * row);
    if (!cria_output_write (out, buf, row * (gsize) n, error))
      return FALSE;
  }
  *pos += row * (guint64) t->rows;
  return write_padding (out, pos, error);
}

gboolean
cria_gguf_write (CriaGgufWriter *w, const char *path, GError **error)
{
  g_autoptr (GByteArray) head = g_byte_array_new ();
  g_byte_array_append (head, (const guint8 *) "GGUF", 4);
  put_u32 (head, 3);
  put_u64 (head, w->tensors->len);
  put_u64 (head, w->keys->len);
  for (guint i = 0; i < w->keys->len; i++) {
    const char *key = g_ptr_array_index (w->keys, i);
    GgufValue *v = g_hash_table_lookup (w->values, key);
    put_string (head, key);
    g_byte_array_append (head, v->bytes->data, v->bytes->len);
  }
  guint64 offset = 0;
  for (guint i = 0; i < w->tensors->len; i++) {
    GgufTensor *t = g_ptr_array_index (w->tensors, i);
    put_string (head, t->name);
    put_u32 (head, t->tensor->n_dims);
    put_u64 (head, (guint64) t->cols);
    if (t->tensor->n_dims == 2)
      put_u64 (head, (guint64) t->rows);
    put_u32 (head, t->type);
    put_u64 (head, offset);
    t->offset = offset;
    offset += cria_gguf_row_size (t->type, t->cols) * (guint64) t->rows;
    offset += (GGUF_ALIGN - offset % GGUF_ALIGN) % GGUF_ALIGN;
  }
  g_autoptr (CriaOutput) out = cria_output_open (path, error);
  if (!out)
    return FALSE;
  guint64 pos = head->len;
  if (!cria_output_write (out, head->data, head->len, error) || !write_padding (out, &pos, error))
    return FALSE;
  for (guint i = 0; i < w->tensors->len; i++)
    if (!write_tensor (out, g_ptr_array_index (w->tensors, i), &pos, error))
      return FALSE;
  return cria_output_commit (g_steal_pointer (&out), error);
}
