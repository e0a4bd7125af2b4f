/* cria-csv.h: reading and writing CSV as RFC 4180 describes it.
 *
 * Fields are separated by commas; a field in double quotes may hold commas,
 * line breaks and doubled quotes (""). A UTF-8 byte-order mark is dropped. */
#pragma once

#include <glib.h>
#include <cria/cria-input.h>

G_BEGIN_DECLS

typedef struct _CriaCsv CriaCsv;

/* Reads rows from `input`, which the reader takes over. */
CriaCsv *cria_csv_new (CriaInput *input);
void cria_csv_free (CriaCsv *csv);

/* The next row as a NULL-terminated array of fields (transfer full); NULL at
 * the end, or on error with *error set: a quote left open names the line it
 * was opened on, a stray character after a closing quote its line and column.
 * A NUL byte (CRIA_RECORD_ERROR_ENCODING) or a CR outside quotes in the middle
 * of a line (CR-only line ends; CRIA_RECORD_ERROR_SYNTAX) is an error naming
 * its line, column and field, given after the whole row was read, so the next
 * call reads the next row. */
char **cria_csv_read_row (CriaCsv *csv, GError **error);
/* The 1-based line the last row returned started on. */
guint64 cria_csv_get_line (CriaCsv *csv);
const char *cria_csv_get_path (CriaCsv *csv);
/* Names fields by `header` (borrowed; it must outlive the reader) in errors. */
void cria_csv_set_header (CriaCsv *csv, char **header);

/* Appends one field to `out`, quoted only when it must be. */
void cria_csv_append_field (GString *out, const char *field);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaCsv, cria_csv_free)

G_END_DECLS
