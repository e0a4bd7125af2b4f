/* cria-error.h: the error domains every fallible cria function reports in. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CRIA_ERROR (cria_error_quark ())
#define CRIA_RECORD_ERROR (cria_record_error_quark ())

typedef enum {
  CRIA_ERROR_FAILED,
  CRIA_ERROR_IO,               /* a file could not be read or written */
  CRIA_ERROR_PARSE,            /* a file is malformed as a whole */
  CRIA_ERROR_INVALID_ARGUMENT, /* an option, property or pipeline is wrong */
  CRIA_ERROR_NOT_FOUND,        /* no such provider, file or field */
  CRIA_ERROR_UNSUPPORTED,      /* valid input that cria does not implement */
  CRIA_ERROR_PLUGIN,           /* a plugin could not be loaded */
  CRIA_ERROR_CANCELLED,        /* interrupted by the user */
} CriaError;

/* Errors in CRIA_RECORD_ERROR concern one record: the stage that raised it can
 * go on with the next one, so the pipeline skips and counts it when the user
 * asked for --on-error=skip. The code is the reason the summary counts. */
typedef enum {
  CRIA_RECORD_ERROR_SYNTAX,        /* the record is not valid JSON/CSV */
  CRIA_RECORD_ERROR_MISSING_FIELD, /* a required field is absent or empty */
  CRIA_RECORD_ERROR_INVALID_FIELD, /* a field has the wrong type or value */
  CRIA_RECORD_ERROR_ENCODING,      /* the text is not valid UTF-8 */
} CriaRecordError;

GQuark cria_error_quark (void);
GQuark cria_record_error_quark (void);

/* A short, stable name of a record error code ("missing-field"), for summaries. */
const char *cria_record_error_reason (int code);

/* User text made fit for a one-line error message: invalid UTF-8 becomes
 * U+FFFD, control characters are escaped (\n, \t, \x01), and text past
 * `max_chars` characters is cut with an ellipsis (-1: no limit). */
char *cria_error_quote (const char *text, gssize len, int max_chars);

G_END_DECLS
