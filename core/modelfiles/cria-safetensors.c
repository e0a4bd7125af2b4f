/* cria-safetensors.c: strict reader and atomic writer of .safetensors files.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section. Offsets are relative to
 * the data section; tensors must tile it exactly (as the reference Rust
 * implementation demands), so a file cria accepts is one every reader accepts. */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-output.h>
#include <cria/cria-safetensors.h>

#include "cria-modelfiles-private.h"

/* Headers beyond this are refused before any allocation (as safetensors does). */
#define MAX_HEADER_BYTES (100u << 20)

struct _CriaSafetensors {
  char *path;
  GMappedFile *mapped; /* NULL when parsed from borrowed memory */
  GArray *weights;     /* CriaWeight, sorted by offset; names owned below */
  GHashTable *by_name; /* name -> index + 1 */
  GHashTable *metadata;
};

static const struct {
  const char *name;
  CriaDType dtype;
} dtypes[] = {
  { "F32", CRIA_DTYPE_F32 }, { "BF16", CRIA_DTYPE_BF16 }, { "F16", CRIA_DTYPE_F16 },
  { "I32", CRIA_DTYPE_I32 }, { "I64", CRIA_DTYPE_I64 },   { "U8", CRIA_DTYPE_U8 },
};

void
mf_one_line (GError **error)
{
  if (!error || !*error)
    return;
  const char *m = (*error)->message;
  gboolean clean = TRUE;
  for (const char *p = m; *p && clean; p++)
    clean = (guchar) *p >= 0x20 && *p != 0x7f;
  if (clean)
    return;
  GString *s = g_string_new (NULL);
  for (const char *p = m; *p; p++) {
    if ((guchar) *p < 0x20 || *p == 0x7f)
      g_string_append_printf (s, "\\x%02x", (guchar) *p);
    else
      g_string_append_c (s, *p);
  }
  g_free ((*error)->message);
  (*error)->message = g_string_free (s, FALSE);
}

const char *
cria_safetensors_dtype_name (CriaDType dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (dtypes[i].dtype == dtype)
      return dtypes[i].name;
  return NULL;
}

char *
cria_weight_shape_string (const CriaWeight *w)
{
  g_return_val_if_fail (w != NULL, NULL);
  GString *s = g_string_new ("[");
  for (guint i = 0; i < w->n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", w->shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

void
cria_safetensors_free (CriaSafetensors *st)
{
  if (!st)
    return;
  for (guint i = 0; i < st->weights->len; i++)
    g_free ((char *) g_array_index (st->weights, CriaWeight, i).name);
  g_array_unref (st->weights);
  g_hash_table_unref (st->by_name);
  g_hash_table_unref (st->metadata);
  if (st->mapped)
    g_mapped_file_unref (st->mapped);
  g_free (st->path);
  g_free (st);
}

static gboolean fail (GError **error, const char *file, const char *tensor, const char *format, ...)
    G_GNUC_PRINTF (4, 5);

static gboolean
fail (GError **error, const char *file, const char *tensor, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (tensor)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tensor '%s': %s", file, tensor, msg);
  else
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s", file, msg);
  return FALSE;
}

/* A non-negative JSON integer, or FALSE. */
static gboolean
get_uint (JsonNode *node, gint64 *out)
{
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return *out >= 0;
}

typedef struct {
  gint64 begin, end;
} Span;

static gboolean
parse_entry (CriaSafetensors *st, const char *name, JsonNode *node, Span *span, CriaWeight *w, gint64 data_len,
             GError **error)
{
  const char *file = st->path;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, file, name, "entry is not an object");
  JsonObject *o = json_node_get_object (node);
  JsonNode *dn = json_object_get_member (o, "dtype");
  if (!dn || !JSON_NODE_HOLDS_VALUE (dn) || json_node_get_value_type (dn) != G_TYPE_STRING)
    return fail (error, file, name, "dtype: missing or not a string");
  const char *dname = json_node_get_string (dn);
  guint d;
  for (d = 0; d < G_N_ELEMENTS (dtypes); d++)
    if (strcmp (dtypes[d].name, dname) == 0)
      break;
  if (d == G_N_ELEMENTS (dtypes)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': dtype: '%s' is not supported (F32, BF16, F16, I32, I64, U8)", file, name, dname);
    return FALSE;
  }
  w->dtype = dtypes[d].dtype;

  JsonNode *sn = json_object_get_member (o, "shape");
  if (!sn || !JSON_NODE_HOLDS_ARRAY (sn))
    return fail (error, file, name, "shape: missing or not an array");
  JsonArray *shape = json_node_get_array (sn);
  guint rank = json_array_get_length (shape);
  if (rank > CRIA_WEIGHT_MAX_DIMS)
    return fail (error, file, name, "shape: %u dimensions (at most %d)", rank, CRIA_WEIGHT_MAX_DIMS);
  w->n_dims = rank;
  guint64 n = 1;
  for (guint i = 0; i < rank; i++) {
    gint64 dim;
    if (!get_uint (json_array_get_element (shape, i), &dim))
      return fail (error, file, name, "shape: dimension %u is not a non-negative integer", i);
    w->shape[i] = dim;
    /* Overflow: n * dim must stay below the data size, which fits in 63 bits. */
    if (dim && n > (guint64) G_MAXINT64 / (guint64) dim)
      return fail (error, file, name, "shape: element count overflows");
    n *= (guint64) dim;
  }
  w->n_elements = (gint64) n;

  JsonNode *on = json_object_get_member (o, "data_offsets");
  if (!on || !JSON_NODE_HOLDS_ARRAY (on) || json_array_get_length (json_node_get_array (on)) != 2)
    return fail (error, file, name, "data_offsets: missing or not [begin, end]");
  JsonArray *offs = json_node_get_array (on);
  if (!get_uint (json_array_get_element (offs, 0), &span->begin) ||
      !get_uint (json_array_get_element (offs, 1), &span->end))
    return fail (error, file, name, "data_offsets: not non-negative integers");
  if (span->end < span->begin)
    return fail (error, file, name, "data_offsets: end %" G_GINT64_FORMAT " is before begin %" G_GINT64_FORMAT,
                 span->end, span->begin);
  if (span->end > data_len)
    return fail (error, file, name,
                 "data_offsets: end %" G_GINT64_FORMAT " is past the data section (%" G_GINT64_FORMAT " bytes)",
                 span->end, data_len);
  /* n fits in 63 bits and elements are at most 8 bytes, but n * 8 may not. */
  gsize elem = cria_dtype_bytes (w->dtype, 1);
  if (n > (guint64) G_MAXINT64 / elem || (gint64) (n * elem) != span->end - span->begin) {
    g_autofree char *dims = cria_weight_shape_string (w);
    return fail (error, file, name,
                 "shape %s of %s disagrees with data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                 "] (%" G_GINT64_FORMAT " bytes)",
                 dims, dname, span->begin, span->end, span->end - span->begin);
  }
  w->n_bytes = (gsize) (span->end - span->begin);
  return TRUE;
}

static gboolean
parse_metadata (CriaSafetensors *st, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, st->path, NULL, "__metadata__ is not an object");
  JsonObjectIter it;
  const char *key;
  JsonNode *v;
  json_object_iter_init (&it, json_node_get_object (node));
  while (json_object_iter_next (&it, &key, &v)) {
    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING)
      return fail (error, st->path, NULL, "__metadata__: '%s' is not a string", key);
    g_hash_table_insert (st->metadata, g_strdup (key), g_strdup (json_node_get_string (v)));
  }
  return TRUE;
}

typedef struct {
  Span span;
  CriaWeight w;
} Entry;

static int
by_begin (gconstpointer a, gconstpointer b)
{
  const Entry *x = a, *y = b;
  if (x->span.begin != y->span.begin)
    return x->span.begin < y->span.begin ? -1 : 1;
  return x->span.end < y->span.end ? -1 : x->span.end > y->span.end;
}

static gboolean
parse_header (CriaSafetensors *st, const guint8 *bytes, gsize len, GError **error)
{
  const char *file = st->path;
  if (len < 8)
    return fail (error, file, NULL, "truncated: %" G_GSIZE_FORMAT " bytes, not even the 8-byte header length", len);
  guint64 n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | bytes[i];
  if (n > len - 8)
    return fail (error, file, NULL,
                 "header length %" G_GUINT64_FORMAT " is past the end of the file (%" G_GSIZE_FORMAT " bytes)", n, len);
  if (n > MAX_HEADER_BYTES)
    return fail (error, file, NULL, "header length %" G_GUINT64_FORMAT " is over the %u-byte limit", n,
                 MAX_HEADER_BYTES);
  if (n < 2 || bytes[8] != '{')
    return fail (error, file, NULL, "the header is not a JSON object");
  const char *text = (const char *) bytes + 8;
  const char *bad = NULL;
  if (!g_utf8_validate_len (text, n, &bad))
    return fail (error, file, NULL, "the header is not UTF-8 (byte %" G_GSIZE_FORMAT ")", (gsize) (bad - text) + 8);
  if (memchr (text, '\0', n))
    return fail (error, file, NULL, "the header holds a NUL byte");
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (text, (gssize) n, "header", 1, &e);
  if (!root)
    return fail (error, file, NULL, "the header is not valid JSON: %s", e->message);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return fail (error, file, NULL, "the header is not a JSON object");

  gint64 data_len = (gint64) (len - 8 - n);
  const guint8 *data = bytes + 8 + n;
  g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  JsonObjectIter it;
  const char *key;
  JsonNode *v;
  json_object_iter_init (&it, json_node_get_object (root));
  while (json_object_iter_next (&it, &key, &v)) {
    if (strcmp (key, "__metadata__") == 0) {
      if (!parse_metadata (st, v, error))
        return FALSE;
      continue;
    }
    Entry en = { 0 };
    if (!parse_entry (st, key, v, &en.span, &en.w, data_len, error))
      return FALSE;
    en.w.name = key; /* borrowed from the parser until copied below */
    g_array_append_val (entries, en);
  }
  g_array_sort (entries, by_begin);
  gint64 at = 0;
  for (guint i = 0; i < entries->len; i++) {
    Entry *en = &g_array_index (entries, Entry, i);
    if (en->span.begin < at)
      return fail (error, file, en->w.name, "data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] overlap '%s'",
                   en->span.begin, en->span.end, g_array_index (entries, Entry, i - 1).w.name);
    if (en->span.begin > at)
      return fail (error, file, en->w.name, "data_offsets: %" G_GINT64_FORMAT " bytes before it belong to no tensor",
                   en->span.begin - at);
    at = en->span.end;
  }
  if (at != data_len)
    return fail (error, file, NULL, "%" G_GINT64_FORMAT " bytes after the last tensor belong to no tensor",
                 data_len - at);
  for (guint i = 0; i < entries->len; i++) {
    Entry *en = &g_array_index (entries, Entry, i);
    en->w.name = g_strdup (en->w.name);
    en->w.data = data + en->span.begin;
    g_array_append_val (st->weights, en->w);
    g_hash_table_insert (st->by_name, (char *) en->w.name, GUINT_TO_POINTER (i + 1));
  }
  return TRUE;
}

static CriaSafetensors *
st_new (const char *file)
{
  CriaSafetensors *st = g_new0 (CriaSafetensors, 1);
  st->path = g_strdup (file);
  st->weights = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return st;
}

CriaSafetensors *
cria_safetensors_parse (const void *data, gsize len, const char *file, GError **error)
{
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (CriaSafetensors) st = st_new (file);
  if (!parse_header (st, data, len, error)) {
    mf_one_line (error);
    return NULL;
  }
  return g_steal_pointer (&st);
}

CriaSafetensors *
cria_safetensors_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (GError) e = NULL;
  GMappedFile *mapped = g_mapped_file_new (path, FALSE, &e);
  if (!mapped) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s", e->message);
    return NULL;
  }
  g_autoptr (CriaSafetensors) st = st_new (path);
  st->mapped = mapped;
  const guint8 *bytes = (const guint8 *) g_mapped_file_get_contents (mapped);
  gsize len = g_mapped_file_get_length (mapped);
  if (!parse_header (st, len ? bytes : (const guint8 *) "", len, error)) {
    mf_one_line (error);
    return NULL;
  }
  return g_steal_pointer (&st);
}

const char *
cria_safetensors_get_path (CriaSafetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->path;
}

guint
cria_safetensors_get_n_weights (CriaSafetensors *st)
{
  g_return_val_if_fail (st != NULL, 0);
  return st->weights->len;
}

const CriaWeight *
cria_safetensors_get_weight (CriaSafetensors *st, guint index)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (index < st->weights->len, NULL);
  return &g_array_index (st->weights, CriaWeight, index);
}

const CriaWeight *
cria_safetensors_lookup (CriaSafetensors *st, const char *name)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  guint i = GPOINTER_TO_UINT (g_hash_table_lookup (st->by_name, name));
  return i ? &g_array_index (st->weights, CriaWeight, i - 1) : NULL;
}

const char *
cria_safetensors_get_metadata (CriaSafetensors *st, const char *key)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);
  return g_hash_table_lookup (st->metadata, key);
}

/* ---- writing ------------------------------------------------------------- */

struct _CriaSafetensorsWriter {
  GArray *weights; /* CriaWeight with owned names */
  GHashTable *names;
  GHashTable *metadata;
};

CriaSafetensorsWriter *
cria_safetensors_writer_new (void)
{
  CriaSafetensorsWriter *w = g_new0 (CriaSafetensorsWriter, 1);
  w->weights = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  w->names = g_hash_table_new (g_str_hash, g_str_equal);
  w->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return w;
}

void
cria_safetensors_writer_free (CriaSafetensorsWriter *w)
{
  if (!w)
    return;
  for (guint i = 0; i < w->weights->len; i++)
    g_free ((char *) g_array_index (w->weights, CriaWeight, i).name);
  g_array_unref (w->weights);
  g_hash_table_unref (w->names);
  g_hash_table_unref (w->metadata);
  g_free (w);
}

void
cria_safetensors_writer_set_metadata (CriaSafetensorsWriter *w, const char *key, const char *value)
{
  g_return_if_fail (w != NULL);
  g_return_if_fail (key != NULL);
  g_hash_table_insert (w->metadata, g_strdup (key), g_strdup (value));
}

gboolean
cria_safetensors_writer_add (CriaSafetensorsWriter *w, const CriaWeight *weight, GError **error)
{
  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (weight != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!cria_safetensors_dtype_name (weight->dtype)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "tensor '%s': safetensors cannot hold %s", weight->name,
                 cria_dtype_name (weight->dtype));
    return FALSE;
  }
  if (g_hash_table_contains (w->names, weight->name) || strcmp (weight->name, "__metadata__") == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "tensor '%s': the name is taken", weight->name);
    return FALSE;
  }
  guint64 n = 1;
  for (guint i = 0; i < weight->n_dims && i < CRIA_WEIGHT_MAX_DIMS; i++)
    n *= (guint64) weight->shape[i];
  if (weight->n_dims > CRIA_WEIGHT_MAX_DIMS || cria_dtype_bytes (weight->dtype, n) != weight->n_bytes) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "tensor '%s': %" G_GSIZE_FORMAT " bytes do not match its shape", weight->name, weight->n_bytes);
    return FALSE;
  }
  CriaWeight copy = *weight;
  copy.name = g_strdup (weight->name);
  copy.n_elements = (gint64) n;
  g_array_append_val (w->weights, copy);
  g_hash_table_add (w->names, (char *) copy.name);
  return TRUE;
}

static int
wider_first (gconstpointer a, gconstpointer b)
{
  const CriaWeight *const *x = a, *const *y = b;
  gsize ex = cria_dtype_bytes ((*x)->dtype, 1), ey = cria_dtype_bytes ((*y)->dtype, 1);
  if (ex != ey)
    return ex > ey ? -1 : 1;
  return *x < *y ? -1 : *x > *y; /* array order: keeps the sort stable */
}

/* The weights in file order and the padded header. */
static GPtrArray *
plan (CriaSafetensorsWriter *w, GString **header_out)
{
  GPtrArray *order = g_ptr_array_new ();
  for (guint i = 0; i < w->weights->len; i++)
    g_ptr_array_add (order, &g_array_index (w->weights, CriaWeight, i));
  g_ptr_array_sort (order, wider_first);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  if (g_hash_table_size (w->metadata)) {
    json_builder_set_member_name (b, "__metadata__");
    json_builder_begin_object (b);
    g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (w->metadata), (GCompareFunc) strcmp);
    for (GList *k = keys; k; k = k->next) {
      json_builder_set_member_name (b, k->data);
      json_builder_add_string_value (b, g_hash_table_lookup (w->metadata, k->data));
    }
    json_builder_end_object (b);
  }
  guint64 at = 0;
  for (guint i = 0; i < order->len; i++) {
    const CriaWeight *t = order->pdata[i];
    json_builder_set_member_name (b, t->name);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, cria_safetensors_dtype_name (t->dtype));
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    for (guint d = 0; d < t->n_dims; d++)
      json_builder_add_int_value (b, t->shape[d]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, (gint64) at);
    json_builder_add_int_value (b, (gint64) (at + t->n_bytes));
    json_builder_end_array (b);
    json_builder_end_object (b);
    at += t->n_bytes;
  }
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  GString *header = g_string_new (text);
  while (header->len % 8)
    g_string_append_c (header, ' ');
  *header_out = header;
  return order;
}

guint64
cria_safetensors_writer_get_size (CriaSafetensorsWriter *w)
{
  g_return_val_if_fail (w != NULL, 0);
  GString *header;
  g_autoptr (GPtrArray) order = plan (w, &header);
  guint64 size = 8 + header->len;
  g_string_free (header, TRUE);
  for (guint i = 0; i < order->len; i++)
    size += ((const CriaWeight *) order->pdata[i])->n_bytes;
  return size;
}

gboolean
cria_safetensors_writer_write (CriaSafetensorsWriter *w, const char *path, GError **error)
{
  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  GString *header;
  g_autoptr (GPtrArray) order = plan (w, &header);
  guint8 len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (guint8) ((guint64) header->len >> (8 * i));
  g_autoptr (CriaOutput) out = cria_output_open (path, error);
  gboolean ok = out && cria_output_write (out, len, 8, error) &&
                cria_output_write (out, header->str, header->len, error);
  g_string_free (header, TRUE);
  for (guint i = 0; ok && i < order->len; i++) {
    const CriaWeight *t = order->pdata[i];
    ok = cria_output_write (out, t->data, t->n_bytes, error);
  }
  if (!ok)
    return FALSE;
  return cria_output_commit (g_steal_pointer (&out), error);
}
