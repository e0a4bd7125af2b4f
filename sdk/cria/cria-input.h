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

/* Archives (libarchive): how far members may expand. A member is read whole
 * only up to its reader's limit, and all members together only up to a
 * budget of CRIA_ARCHIVE_EXPANSION times the archive's size (plus
 * CRIA_ARCHIVE_SLACK_BYTES): a small .tgz of zeros is an error, not gigabytes. */
#define CRIA_ARCHIVE_EXPANSION 200
#define CRIA_ARCHIVE_SLACK_BYTES ((guint64) 256 << 20)

/* The expansion budget of the archive file at `path` (see above). */
guint64 cria_archive_budget (const char *path);
/* Reads the current member of `archive` (a struct archive * positioned by
 * archive_read_next_header) whole. A member over `max_bytes`, or one that
 * takes the archive past *budget (decremented by what was read), is an error
 * naming `where` and the limit, before more than the limit is held. */
GBytes *cria_archive_read_member (gpointer archive, const char *where, guint64 max_bytes, guint64 *budget,
                                  GError **error);

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
