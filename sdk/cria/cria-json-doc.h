/* cria-json-doc.h: a JSON document read once into one compact, read-only block.
 *
 * For corpora shipped as one large document (SQuAD): a json-glib tree of
 * such a file costs a hash table and a list per object and several
 * allocations per value, which were most of a conversion's run; here every
 * value is 16 bytes in one array, every string sits in one buffer and the
 * whole document is freed at once. Values stay valid until the document is
 * freed. The reader is cria_json_parse()'s (cria-json.h): the same rules and
 * the same error messages. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CriaJsonDoc CriaJsonDoc;
typedef struct _CriaJsonValue CriaJsonValue;

typedef enum {
  CRIA_JSON_NULL,
  CRIA_JSON_BOOLEAN,
  CRIA_JSON_INT, /* an integer that fits 64 bits */
  CRIA_JSON_DOUBLE,
  CRIA_JSON_STRING,
  CRIA_JSON_ARRAY,
  CRIA_JSON_OBJECT,
} CriaJsonType;

/* The one value of `text`; errors are "FILE:LINE:COLUMN: reason" with lines
 * counted from `line`, as cria_json_parse() gives them. */
CriaJsonDoc *cria_json_doc_parse (const char *text, gssize len, const char *file, guint64 line, GError **error);
/* A whole file, with cria_json_load_file()'s errors (cria-rows.h). */
CriaJsonDoc *cria_json_doc_load_file (const char *path, GError **error);
void cria_json_doc_free (CriaJsonDoc *doc);
const CriaJsonValue *cria_json_doc_get_root (const CriaJsonDoc *doc);

/* Every accessor takes NULL and answers as for a value of another type. */
CriaJsonType cria_json_value_type (const CriaJsonValue *value);
/* An object's member, NULL when absent or when `value` is no object; of a
 * repeated name the last value counts, as in a json-glib object. */
const CriaJsonValue *cria_json_value_member (const CriaJsonValue *value, const char *name);
/* An array's elements or an object's members (repeated names counted each
 * time); 0 for any other value. */
guint cria_json_value_length (const CriaJsonValue *value);
/* An array's element or the value of an object's member, in the order of
 * the text; NULL past the end or for any other value. */
const CriaJsonValue *cria_json_value_element (const CriaJsonValue *value, guint index);
/* The name of an object's member `index`; NULL for any other value. */
const char *cria_json_value_name (const CriaJsonValue *value, guint index);
/* A string's text, NULL for any other value. */
const char *cria_json_value_string (const CriaJsonValue *value);
/* An integer's value; 0 for any other value. */
gint64 cria_json_value_int (const CriaJsonValue *value);
/* A number's value (an integer converted); 0 for any other value. */
double cria_json_value_double (const CriaJsonValue *value);
/* A member's text, NULL when it is absent or not a string. */
const char *cria_json_value_string_member (const CriaJsonValue *value, const char *name);
/* True for true and non-zero numbers, false for false, other numbers and
 * strings; `fallback` for null, absent values and containers (as json-glib's
 * json_object_get_boolean_member_with_default reads a member). */
gboolean cria_json_value_truth (const CriaJsonValue *value, gboolean fallback);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaJsonDoc, cria_json_doc_free)

G_END_DECLS
