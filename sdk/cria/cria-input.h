/* cria-input.h: reading user files line by line, with line numbers for errors. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _CriaInput CriaInput;

/* "-" reads stdin. */
CriaInput *cria_input_open (const char *path, GError **error);
void cria_input_free (CriaInput *input);
const char *cria_input_get_path (CriaInput *input);

/* The next line without its line ending (\n or \r\n), valid until the next
 * call; FALSE at the end or on error (then *error is set). A UTF-8 byte-order
 * mark at the start of the file is dropped. */
gboolean cria_input_read_line (CriaInput *input, const char **line, gsize *len, GError **error);
/* 1-based number of the line last returned. */
guint64 cria_input_get_line_number (CriaInput *input);

/* Parses one JSON value. Failures are CRIA_RECORD_ERROR_SYNTAX (or _ENCODING)
 * with "FILE:LINE:COLUMN: reason"; `line` is the line the text starts on. */
JsonNode *cria_json_parse (const char *text, gssize len, const char *file, guint64 line, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaInput, cria_input_free)

G_END_DECLS
