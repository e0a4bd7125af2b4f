/* cria-json.h: cria's own JSON reader and writer (RFC 8259).
 *
 * json-glib's parser builds its tree through GScanner and signals, and its
 * generator through a second tree; on datasets of millions of records that is
 * most of the run. These read straight into JsonNode trees and write records
 * and nodes straight to text, so the rest of cria keeps using json-glib's
 * types.
 *
 * The reader is strict where json-glib is lax: no leading zeros, single
 * quotes, comments, raw control characters in strings, unknown escapes, hex
 * numbers or trailing text. Strings must be UTF-8; a \u escape of a lone
 * surrogate or of U+0000 (which a C string cannot hold) is refused. Nesting
 * deeper than CRIA_JSON_MAX_DEPTH is refused instead of exhausting the stack.
 * An integer that fits 64 bits is an int node, any other number a double;
 * a number outside the range of a double is refused. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Limits on JSON that cria did not write itself: nesting (the reader
 * recurses, and so do json-glib's functions on the tree it builds), and the
 * size of a file read into a tree (cria_json_load_file; a tree takes several
 * times its text). */
#define CRIA_JSON_MAX_DEPTH 512
#define CRIA_JSON_MAX_FILE_BYTES ((gsize) 1 << 30)

/* The outcome of cria_json_parse_prefix. */
typedef enum {
  CRIA_JSON_OK,
  CRIA_JSON_ERROR,     /* the text is not JSON; *error says where and why */
  CRIA_JSON_INCOMPLETE /* the text ends inside the value: give more of it */
} CriaJsonStatus;

/* Parses the one value that starts at `text` (after blanks) and sets
 * *consumed to the bytes it spans, blanks before it included. Unless `final`
 * (no text follows `len`), a value that may go on past `len` is
 * CRIA_JSON_INCOMPLETE, as is an error that more text could mend.
 * `origin` is the start of line `line` of `file`, at or before `text`;
 * errors are "FILE:LINE:COLUMN: reason" counted from there (columns in bytes
 * from 1). On CRIA_JSON_INCOMPLETE *error is left unset. */
CriaJsonStatus cria_json_parse_prefix (const char *origin, const char *text, gsize len, gboolean final,
                                       const char *file, guint64 line, JsonNode **node, gsize *consumed,
                                       GError **error);

/* cria_json_parse() (cria-input.h) parses a whole text with this reader, and
 * cria_json_load_file() (cria-rows.h) a whole file: every JSON text from
 * outside (files, request bodies, headers, answers of a server) is read by
 * one of the two. */

/* Appends `s` as a JSON string: quotes, and escapes for '"', '\\', control
 * characters and DEL (\b \f \n \r \t, else \u00xx); other characters are
 * written as they are (UTF-8), as json-glib and Python's
 * json.dumps(ensure_ascii=False) do. */
void cria_json_append_string (GString *out, const char *s);
/* A double as the shortest text that reads back as the same double, in the
 * form of Python's repr (1.0, 0.1, 1e-05, 1e+16); NaN and infinities,
 * which JSON cannot hold, as null. */
void cria_json_append_double (GString *out, double d);
/* A node in compact form: no blanks, members in their order. */
void cria_json_append_node (GString *out, JsonNode *node);
/* `"name":value` of an object being written, after a ',' unless *first
 * (which it then clears). */
void cria_json_append_member (GString *out, gboolean *first, const char *name, JsonNode *value);

/* Members of an object read from outside, without the CRITICAL that
 * json-glib's getters raise on a member of another kind (a list where a
 * string was expected): a scalar converts as json-glib converts it (a
 * number is no string: NULL), and an absent, null, array or object member
 * gives `fallback`. Callers that must refuse a wrong kind check
 * cria_json_member_is() first. */
const char *cria_json_get_string (JsonObject *object, const char *name, const char *fallback);
gint64 cria_json_get_int (JsonObject *object, const char *name, gint64 fallback);
double cria_json_get_double (JsonObject *object, const char *name, double fallback);
gboolean cria_json_get_boolean (JsonObject *object, const char *name, gboolean fallback);
/* The member when it is an object (an array), else NULL. */
JsonObject *cria_json_get_object (JsonObject *object, const char *name);
JsonArray *cria_json_get_array (JsonObject *object, const char *name);
/* Whether the member is absent or null, or holds a value of `type`
 * (G_TYPE_STRING, G_TYPE_INT64, G_TYPE_DOUBLE: an integer too,
 * G_TYPE_BOOLEAN, JSON_TYPE_OBJECT, JSON_TYPE_ARRAY). */
gboolean cria_json_member_is (JsonObject *object, const char *name, GType type);
/* "a string", "a number", "an object" ...: what a node is, for messages. */
const char *cria_json_node_kind (JsonNode *node);

G_END_DECLS
