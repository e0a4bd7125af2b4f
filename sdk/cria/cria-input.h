/* cria-input.h: reading user files line by line, with line numbers for errors. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _CriaInput CriaInput;

/* The longest line cria_input_read_line gives: a longer one (a file with no
 * line breaks, /dev/zero behind a pipe) is an error instead of a buffer that
 * grows without end. */
#define CRIA_INPUT_MAX_LINE_BYTES ((gsize) 64 << 20)
/* The largest file read whole (JSON documents, vocabularies, templates);
 * JSON files read into trees have their own, smaller limit (cria-json.h). */
#define CRIA_INPUT_MAX_FILE_BYTES ((gsize) 4 << 30)

/* Reads a whole file of at most `max_bytes` (then NUL-terminated). A regular
 * file's size is checked before anything is read; a pipe is read until it
 * passes the limit; anything else (a device such as /dev/zero, a directory, a
 * socket) is refused. Errors are CRIA_ERROR_NOT_FOUND or CRIA_ERROR_IO and
 * begin with the path. */
gboolean cria_file_get_contents (const char *path, gsize max_bytes, char **text, gsize *len, GError **error);
/* Whether `path` may be read as a stream of lines: a regular file, a pipe
 * or "-"; not a device or a directory. */
gboolean cria_file_check_readable (const char *path, GError **error);

/* "-" reads stdin; devices and directories are refused. */
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
