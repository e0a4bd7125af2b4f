/* fuzz-csv: a CSV file through the rows reader, as the file source reads it.
 * Every row ends in a one-line error or gives a row whose fields, written
 * back with cria_csv_append_field and read again, come back unchanged. */
#define _GNU_SOURCE
#define FUZZ_WANT_FILE
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static int in_fd = -1, back_fd = -1;

static void
check_error (const GError *error)
{
  if (!error || !error->message[0] || strchr (error->message, '\n'))
    abort ();
}

/* Writes the rows read as CSV and reads them again: the same fields come back. */
static void
round_trip (GPtrArray *rows)
{
  g_autoptr (GString) text = g_string_new (NULL);
  for (guint i = 0; i < rows->len; i++) {
    char **fields = g_ptr_array_index (rows, i);
    for (guint f = 0; fields[f]; f++) {
      if (f)
        g_string_append_c (text, ',');
      cria_csv_append_field (text, fields[f]);
    }
    /* As the csv sink writes it: an empty line would be no row. */
    if (fields[0] && !fields[0][0] && !fields[1])
      g_string_append (text, "\"\"");
    g_string_append (text, "\r\n");
  }
  char path[64];
  fuzz_file (&back_fd, path, sizeof path, (const uint8_t *) text->str, text->len);
  g_autoptr (CriaCsv) csv = cria_csv_new (cria_input_open (path, NULL));
  g_autoptr (GError) error = NULL;
  for (guint i = 0; i < rows->len; i++) {
    g_auto (GStrv) again = cria_csv_read_row (csv, &error);
    char **fields = g_ptr_array_index (rows, i);
    if (!again || !g_strv_equal ((const char *const *) again, (const char *const *) fields))
      abort ();
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char path[64];
  fuzz_file (&in_fd, path, sizeof path, data, size);

  /* The rows reader: header checks, field counts, UTF-8. */
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRows) rows = cria_rows_open (path, "csv", &error);
  if (!rows) {
    check_error (error);
    g_clear_error (&error);
  } else {
    JsonObject *row = NULL;
    CriaFlow flow;
    while ((flow = cria_rows_next (rows, &row, &error)) == CRIA_FLOW_OK) {
      json_object_unref (row);
      row = NULL;
    }
    if (flow == CRIA_FLOW_ERROR) {
      check_error (error);
      g_clear_error (&error);
    }
  }

  /* The bare reader, whose rows must survive being written back. */
  g_autoptr (CriaCsv) csv = cria_csv_new (cria_input_open (path, NULL));
  g_autoptr (GPtrArray) read = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  char **fields;
  while ((fields = cria_csv_read_row (csv, &error)))
    g_ptr_array_add (read, fields);
  if (error)
    check_error (error);
  else
    round_trip (read);
  return 0;
}
