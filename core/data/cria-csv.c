/* cria-csv.c: an RFC 4180 reader over CriaInput's lines, and field quoting. */
#include "config.h"

#include <string.h>

#include <cria/cria-csv.h>
#include <cria/cria-error.h>

struct _CriaCsv {
  CriaInput *input;
  guint64 row_line;
  char **header; /* borrowed, to name fields in errors; may be NULL */
};

CriaCsv *
cria_csv_new (CriaInput *input)
{
  g_return_val_if_fail (input != NULL, NULL);
  CriaCsv *csv = g_new0 (CriaCsv, 1);
  csv->input = input;
  return csv;
}

void
cria_csv_free (CriaCsv *csv)
{
  if (!csv)
    return;
  cria_input_free (csv->input);
  g_free (csv);
}

guint64
cria_csv_get_line (CriaCsv *csv)
{
  g_return_val_if_fail (csv != NULL, 0);
  return csv->row_line;
}

const char *
cria_csv_get_path (CriaCsv *csv)
{
  g_return_val_if_fail (csv != NULL, NULL);
  return cria_input_get_path (csv->input);
}

void
cria_csv_set_header (CriaCsv *csv, char **header)
{
  csv->header = header;
}

/* "field 'output'" when the header names it, else "field 3". */
static char *
field_name (CriaCsv *csv, guint index)
{
  for (guint i = 0; csv->header && csv->header[i]; i++)
    if (i == index) {
      /* A quoted header name may hold a line break; errors are one line. */
      g_autofree char *shown = cria_error_quote (csv->header[i], -1, 60);
      return g_strdup_printf ("field '%s'", shown);
    }
  return g_strdup_printf ("field %u", index + 1);
}

/* A byte that cannot stand where it is: remembered, and reported once the
 * whole row is read, so that a skipped row leaves the reader at the next one. */
static void
defer_error (CriaCsv *csv, GError **deferred, int code, guint index, gsize column, const char *what)
{
  if (*deferred)
    return;
  g_autofree char *field = field_name (csv, index);
  g_set_error (deferred, CRIA_RECORD_ERROR, code, "%s:%" G_GUINT64_FORMAT ":%" G_GSIZE_FORMAT ": %s: %s",
               cria_csv_get_path (csv), cria_input_get_line_number (csv->input), column, field, what);
}

char **
cria_csv_read_row (CriaCsv *csv, GError **error)
{
  g_return_val_if_fail (csv != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const char *line;
  gsize len;
  GError *rerr = NULL;
  /* Blank lines between rows carry no record. */
  do {
    if (!cria_input_read_line (csv->input, &line, &len, &rerr)) {
      if (rerr)
        g_propagate_error (error, rerr);
      return NULL;
    }
  } while (len == 0);
  csv->row_line = cria_input_get_line_number (csv->input);

  g_autoptr (GPtrArray) fields = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) field = g_string_new (NULL);
  g_autoptr (GError) deferred = NULL;
  gboolean quoted = FALSE, was_quoted = FALSE;
  guint64 quote_line = 0;
  for (;;) {
    for (gsize i = 0; i <= len; i++) {
      char c = i < len ? line[i] : '\0';
      /* A field is a C string: a NUL would silently cut it short. */
      if (c == '\0' && i < len)
        defer_error (csv, &deferred, CRIA_RECORD_ERROR_ENCODING, fields->len, i + 1,
                     "a NUL byte, which a text field cannot hold");
      if (quoted) {
        if (i == len)
          break;
        if (c == '"') {
          if (i + 1 < len && line[i + 1] == '"') {
            g_string_append_c (field, '"');
            i++;
          } else {
            quoted = FALSE;
          }
        } else {
          g_string_append_c (field, c);
        }
        continue;
      }
      if (i == len || c == ',') {
        g_ptr_array_add (fields, g_strndup (field->str, field->len));
        g_string_truncate (field, 0);
        was_quoted = FALSE;
        if (i == len) {
          if (deferred) {
            g_propagate_error (error, g_steal_pointer (&deferred));
            return NULL;
          }
          g_ptr_array_add (fields, NULL);
          return (char **) g_ptr_array_free (g_steal_pointer (&fields), FALSE);
        }
      } else if (c == '"' && field->len == 0 && !was_quoted) {
        quoted = was_quoted = TRUE;
        quote_line = cria_input_get_line_number (csv->input);
      } else if (was_quoted) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX,
                     "%s:%" G_GUINT64_FORMAT ":%" G_GSIZE_FORMAT ": unexpected character after a closing quote",
                     cria_csv_get_path (csv), cria_input_get_line_number (csv->input), i + 1);
        return NULL;
      } else {
        /* Lines end in LF or CRLF; a CR alone inside a line means the file
         * ends its lines the old Mac way and would read as one long row. */
        if (c == '\r')
          defer_error (csv, &deferred, CRIA_RECORD_ERROR_SYNTAX, fields->len, i + 1,
                       "a carriage return (CR) outside quotes: lines must end in LF or CRLF (a file with CR-only line "
                       "ends can be converted with tr '\\r' '\\n')");
        g_string_append_c (field, c);
      }
    }
    /* A quoted field goes on past the line break. */
    if (!cria_input_read_line (csv->input, &line, &len, &rerr)) {
      if (rerr)
        g_propagate_error (error, rerr);
      else
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX,
                     "%s:%" G_GUINT64_FORMAT ": unbalanced quote: the quoted field opened here never closes",
                     cria_csv_get_path (csv), quote_line);
      return NULL;
    }
    g_string_append_c (field, '\n');
  }
}

void
cria_csv_append_field (GString *out, const char *field)
{
  g_return_if_fail (out != NULL);
  if (!field)
    return;
  if (!strpbrk (field, ",\"\r\n")) {
    g_string_append (out, field);
    return;
  }
  g_string_append_c (out, '"');
  for (const char *p = field; *p; p++) {
    if (*p == '"')
      g_string_append_c (out, '"');
    g_string_append_c (out, *p);
  }
  g_string_append_c (out, '"');
}
