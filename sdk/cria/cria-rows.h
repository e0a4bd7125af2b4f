/* cria-rows.h: the rows of a data file, as JSON objects.
 *
 * Converters read their inputs through this: JSON lines, a JSON array of
 * objects (cut into elements as it is read), or CSV with a header row naming the fields
 * (every value a string). All three stream: one row in memory at a time. Each row knows where it came from, so an
 * error can name the file and the line or the record. */
#pragma once

#include <cria/cria-stage.h>

G_BEGIN_DECLS

typedef struct _CriaRows CriaRows;

/* `format` is "auto", "jsonl", "json" or "csv". Auto reads a .csv/.tsv name
 * as CSV, then looks at the first non-blank character: '[' is a JSON array,
 * '{' JSON lines, anything else CSV. */
CriaRows *cria_rows_open (const char *path, const char *format, GError **error);
void cria_rows_free (CriaRows *rows);

/* The next row (transfer full). A bad row is a CRIA_RECORD_ERROR: the caller
 * may call again to go on with the next one. */
CriaFlow cria_rows_next (CriaRows *rows, JsonObject **row, GError **error);
/* Like cria_rows_next, but a JSON line in cria's record form comes as
 * *record, read without building its JsonObject (which is most of the cost
 * of copying a dataset). A row of another container, one that is not such a
 * record (an error included) or one with a member named in the
 * NULL-terminated `divert` comes as *row, as cria_rows_next gives it. */
CriaFlow cria_rows_next_record (CriaRows *rows, const char *const *divert, CriaRecord **record, JsonObject **row,
                                GError **error);
/* "FILE:LINE" of the last row (where it starts), for error messages. */
const char *cria_rows_where (CriaRows *rows);
/* "jsonl", "json" or "csv": what the file was read as. */
const char *cria_rows_get_format (CriaRows *rows);

/* A string member, or NULL when absent or null. Numbers and booleans are
 * given as text; other kinds fail with CRIA_RECORD_ERROR_INVALID_FIELD
 * naming `where` and the member. */
gboolean cria_rows_get_text (JsonObject *row, const char *member, const char *where, char **value, GError **error);
/* Like cria_rows_get_text, but an absent or empty member fails with
 * CRIA_RECORD_ERROR_MISSING_FIELD naming it. */
char *cria_rows_require_text (JsonObject *row, const char *member, const char *where, GError **error);

/* Reads a whole JSON document (a corpus shipped as one object, a settings
 * file) of at most CRIA_JSON_MAX_FILE_BYTES with cria_json_parse(); a
 * device (/dev/zero) or a directory is refused (cria_file_get_contents). */
JsonNode *cria_json_load_file (const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaRows, cria_rows_free)

G_END_DECLS
