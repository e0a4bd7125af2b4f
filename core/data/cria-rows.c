/* cria-rows.c: JSON lines, JSON arrays and CSV read as rows of JSON objects. */
#include "config.h"

#include <string.h>

#include <cria/cria-csv.h>
#include <cria/cria-error.h>
#include <cria/cria-json.h>
#include <cria/cria-rows.h>

#include "../json/cria-json-private.h"

typedef enum { ROWS_JSONL, ROWS_JSON, ROWS_CSV } RowsFormat;

struct _CriaRows {
  RowsFormat format;
  char *path;
  CriaInput *input; /* JSON lines */
  CriaCsv *csv;
  char **header;
  /* JSON arrays: a window of the file's text, parsed element by element.
   * It starts at the beginning of a line; text before `pos` is done. */
  GString *text;
  gsize pos, bol; /* next byte; start of its line */
  guint64 line;   /* the line number of `pos` */
  gboolean eof, started, finished, need_comma;
  char *where;        /* "FILE:LINE" of where_line, made when asked for */
  guint64 where_line; /* 0: none yet */
  gboolean where_stale;
  GString *scratch; /* the text of strings being read into records */
};

void
cria_rows_free (CriaRows *rows)
{
  if (!rows)
    return;
  cria_input_free (rows->input);
  cria_csv_free (rows->csv);
  g_strfreev (rows->header);
  if (rows->text)
    g_string_free (rows->text, TRUE);
  g_free (rows->path);
  g_free (rows->where);
  if (rows->scratch)
    g_string_free (rows->scratch, TRUE);
  g_free (rows);
}

static gpointer
parse_node (const char *text, gssize len, const char *file, guint64 line, GError **error)
{
  return cria_json_parse (text, len, file, line, error);
}

JsonNode *
cria_json_load_file (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return cj_load_file (path, CRIA_JSON_MAX_FILE_BYTES, parse_node, error);
}

/* The first non-blank byte of the file, or 0. */
static char
sniff (const char *path, GError **error)
{
  g_autoptr (CriaInput) in = cria_input_open (path, error);
  if (!in)
    return 0;
  const char *line;
  gsize len;
  while (cria_input_read_line (in, &line, &len, error))
    for (const char *p = line; *p; p++)
      if (!g_ascii_isspace (*p))
        return *p;
  return 0;
}

CriaRows *
cria_rows_open (const char *path, const char *format, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (format != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  RowsFormat f;
  if (!strcmp (format, "jsonl"))
    f = ROWS_JSONL;
  else if (!strcmp (format, "json"))
    f = ROWS_JSON;
  else if (!strcmp (format, "csv"))
    f = ROWS_CSV;
  else if (g_str_has_suffix (path, ".csv") || g_str_has_suffix (path, ".CSV"))
    f = ROWS_CSV;
  else if (!strcmp (path, "-"))
    f = ROWS_JSONL; /* stdin cannot be read twice */
  else {
    GError *serr = NULL;
    char c = sniff (path, &serr);
    if (serr) {
      g_propagate_error (error, serr);
      return NULL;
    }
    f = c == '[' ? ROWS_JSON : c == '{' || c == 0 ? ROWS_JSONL : ROWS_CSV;
  }

  g_autoptr (CriaRows) rows = g_new0 (CriaRows, 1);
  rows->format = f;
  rows->path = g_strdup (path);
  CriaInput *in = cria_input_open (path, error);
  if (!in)
    return NULL;
  if (f != ROWS_CSV) {
    rows->input = in;
    return g_steal_pointer (&rows);
  }
  rows->csv = cria_csv_new (in);
  GError *cerr = NULL;
  rows->header = cria_csv_read_row (rows->csv, &cerr);
  if (!rows->header) {
    if (cerr) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", cerr->message);
      g_error_free (cerr);
    } else {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: empty CSV file: expected a header row", path);
    }
    return NULL;
  }
  /* A row becomes an object by these names: a repeated one would keep only
   * its last column. */
  guint64 header_line = cria_csv_get_line (rows->csv);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; rows->header[i]; i++) {
    gpointer first;
    if (g_hash_table_lookup_extended (seen, rows->header[i], NULL, &first)) {
      g_autofree char *name = cria_error_quote (rows->header[i], -1, 60);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s:%" G_GUINT64_FORMAT ": the header names column '%s' twice (columns %u and %u)", path,
                   header_line, name, GPOINTER_TO_UINT (first) + 1, i + 1);
      return NULL;
    }
    g_hash_table_insert (seen, rows->header[i], GUINT_TO_POINTER (i));
  }
  cria_csv_set_header (rows->csv, rows->header);
  return g_steal_pointer (&rows);
}

const char *
cria_rows_where (CriaRows *rows)
{
  g_return_val_if_fail (rows != NULL, NULL);
  if (rows->where_stale) {
    g_free (rows->where);
    rows->where = g_strdup_printf ("%s:%" G_GUINT64_FORMAT, rows->path, rows->where_line);
    rows->where_stale = FALSE;
  }
  return rows->where ? rows->where : rows->path;
}

const char *
cria_rows_get_format (CriaRows *rows)
{
  g_return_val_if_fail (rows != NULL, NULL);
  return rows->format == ROWS_JSON ? "json" : rows->format == ROWS_CSV ? "csv" : "jsonl";
}

static void
set_where_line (CriaRows *rows, guint64 line)
{
  /* Formatted only when asked for: most rows never are. */
  rows->where_line = line;
  rows->where_stale = TRUE;
}

static CriaFlow
next_csv (CriaRows *rows, JsonObject **row, GError **error)
{
  GError *cerr = NULL;
  g_auto (GStrv) fields = cria_csv_read_row (rows->csv, &cerr);
  if (!fields) {
    if (!cerr)
      return CRIA_FLOW_EOS;
    g_propagate_error (error, cerr);
    return CRIA_FLOW_ERROR;
  }
  set_where_line (rows, cria_csv_get_line (rows->csv));
  guint nh = g_strv_length (rows->header), nf = g_strv_length (fields);
  if (nf != nh) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX, "%s: %u fields where the header has %u",
                 cria_rows_where (rows), nf, nh);
    return CRIA_FLOW_ERROR;
  }
  JsonObject *o = json_object_new ();
  for (guint i = 0; i < nh; i++) {
    if (!g_utf8_validate (fields[i], -1, NULL)) {
      json_object_unref (o);
      g_autofree char *name = cria_error_quote (rows->header[i], -1, 60);
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "%s: field '%s': invalid UTF-8",
                   cria_rows_where (rows), name);
      return CRIA_FLOW_ERROR;
    }
    json_object_set_string_member (o, rows->header[i], fields[i]);
  }
  *row = o;
  return CRIA_FLOW_OK;
}

static CriaFlow
take_object (CriaRows *rows, JsonNode *node, JsonObject **row, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX, "%s: expected a JSON object",
                 cria_rows_where (rows));
    return CRIA_FLOW_ERROR;
  }
  *row = json_object_ref (json_node_get_object (node));
  return CRIA_FLOW_OK;
}

/* Reads lines until `want` bytes lie unread past pos, or the file ends. */
static gboolean
fill (CriaRows *rows, gsize want, GError **error)
{
  if (rows->pos > (1 << 20)) {
    /* Drop whole lines already read, so memory holds about one record. */
    g_string_erase (rows->text, 0, (gssize) rows->bol);
    rows->pos -= rows->bol;
    rows->bol = 0;
  }
  while (!rows->eof && rows->text->len - rows->pos < want) {
    const char *l;
    gsize len;
    if (!cria_input_read_line (rows->input, &l, &len, error)) {
      rows->eof = TRUE;
      return !(error && *error);
    }
    /* The line break goes before a line, so a last line without one ends the text. */
    if (cria_input_get_line_number (rows->input) > 1)
      g_string_append_c (rows->text, '\n');
    g_string_append_len (rows->text, l, (gssize) len);
  }
  return TRUE;
}

static void
advance (CriaRows *rows, gsize n)
{
  const char *t = rows->text->str;
  for (gsize i = rows->pos; i < rows->pos + n; i++)
    if (t[i] == '\n') {
      rows->line++;
      rows->bol = i + 1;
    }
  rows->pos += n;
}

/* The next byte that is not a blank, without taking it; -1 at the end. */
static int
peek (CriaRows *rows, GError **error)
{
  for (;;) {
    const char *t = rows->text->str;
    gsize i = rows->pos;
    while (i < rows->text->len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
      i++;
    advance (rows, i - rows->pos);
    if (rows->pos < rows->text->len)
      return (guchar) rows->text->str[rows->pos];
    if (rows->eof || !fill (rows, 1 << 16, error) || rows->pos >= rows->text->len)
      return -1;
  }
}

static CriaFlow
array_broken (CriaRows *rows, const char *what, GError **error)
{
  if (!(error && *error))
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%" G_GUINT64_FORMAT ": %s", rows->path, rows->line, what);
  rows->finished = TRUE;
  return CRIA_FLOW_ERROR;
}

/* Steps over a record that did not parse, by its brackets and strings, so
 * the next call goes on with the one after it. */
static void
skip_element (CriaRows *rows)
{
  guint depth = 0;
  gboolean in_string = FALSE, escaped = FALSE;
  for (;;) {
    if (rows->pos >= rows->text->len && (rows->eof || !fill (rows, 1 << 16, NULL) || rows->pos >= rows->text->len)) {
      rows->finished = TRUE;
      return;
    }
    char c = rows->text->str[rows->pos];
    if (!in_string && depth == 0 && (c == ',' || c == ']'))
      return;
    advance (rows, 1);
    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if ((c == '}' || c == ']') && depth && --depth == 0) {
      return;
    }
  }
}

/* Streams a JSON array: each element is parsed straight from a window of
 * the file, so memory holds about one record at a time. */
static CriaFlow
next_array_element (CriaRows *rows, JsonObject **row, GError **error)
{
  if (rows->finished)
    return CRIA_FLOW_EOS;
  if (!rows->text) {
    rows->text = g_string_sized_new (1 << 17);
    rows->line = 1;
  }
  int c = peek (rows, error);
  if (!rows->started) {
    if (c != '[')
      return array_broken (rows, "expected a JSON array of records", error);
    rows->started = TRUE;
    advance (rows, 1);
    c = peek (rows, error);
  } else if (rows->need_comma && c == ',') {
    advance (rows, 1);
    c = peek (rows, error);
    if (c == ']')
      return array_broken (rows, "a ',' before the array's ']' leaves a record out", error);
  } else if (rows->need_comma && c >= 0 && c != ']') {
    return array_broken (rows, "expected ',' or ']' after a record", error);
  }
  if (c < 0)
    return array_broken (rows, "the JSON array never closes", error);
  if (c == ']') {
    advance (rows, 1);
    rows->finished = TRUE;
    if (peek (rows, error) >= 0)
      return array_broken (rows, "text after the end of the JSON array", error);
    return CRIA_FLOW_EOS;
  }
  set_where_line (rows, rows->line);
  rows->need_comma = TRUE;
  gsize want = 1 << 16;
  for (;;) {
    JsonNode *node = NULL;
    gsize used = 0;
    const char *t = rows->text->str;
    CriaJsonStatus st = cria_json_parse_prefix (t + rows->bol, t + rows->pos, rows->text->len - rows->pos, rows->eof,
                                                rows->path, rows->line, &node, &used, error);
    if (st == CRIA_JSON_OK) {
      advance (rows, used);
      g_autoptr (JsonNode) owned = node;
      return take_object (rows, node, row, error);
    }
    if (st == CRIA_JSON_ERROR) {
      skip_element (rows);
      return CRIA_FLOW_ERROR;
    }
    /* Ask for twice as much each time, so a long record is parsed a few times at most. */
    want = MAX (want, rows->text->len - rows->pos) * 2;
    if (!fill (rows, want, error))
      return array_broken (rows, "read failed", error);
  }
}

/* The next line of JSON lines that is not blank. */
static CriaFlow
next_line (CriaRows *rows, const char **line, gsize *len, GError **error)
{
  for (;;) {
    GError *rerr = NULL;
    if (!cria_input_read_line (rows->input, line, len, &rerr)) {
      if (!rerr)
        return CRIA_FLOW_EOS;
      g_propagate_error (error, rerr);
      return CRIA_FLOW_ERROR;
    }
    const char *p = *line;
    while (g_ascii_isspace (*p))
      p++;
    if (!*p)
      continue;
    set_where_line (rows, cria_input_get_line_number (rows->input));
    return CRIA_FLOW_OK;
  }
}

static CriaFlow
parse_line (CriaRows *rows, const char *line, gsize len, JsonObject **row, GError **error)
{
  g_autoptr (JsonNode) node = cria_json_parse (line, (gssize) len, rows->path, rows->where_line, error);
  if (!node)
    return CRIA_FLOW_ERROR;
  return take_object (rows, node, row, error);
}

CriaFlow
cria_rows_next (CriaRows *rows, JsonObject **row, GError **error)
{
  g_return_val_if_fail (rows != NULL, CRIA_FLOW_ERROR);
  g_return_val_if_fail (row != NULL, CRIA_FLOW_ERROR);
  g_return_val_if_fail (error == NULL || *error == NULL, CRIA_FLOW_ERROR);
  *row = NULL;
  if (rows->format == ROWS_CSV)
    return next_csv (rows, row, error);
  if (rows->format == ROWS_JSON)
    return next_array_element (rows, row, error);
  const char *line;
  gsize len;
  CriaFlow flow = next_line (rows, &line, &len, error);
  return flow == CRIA_FLOW_OK ? parse_line (rows, line, len, row, error) : flow;
}

CriaFlow
cria_rows_next_record (CriaRows *rows, const char *const *divert, CriaRecord **record, JsonObject **row, GError **error)
{
  g_return_val_if_fail (rows != NULL, CRIA_FLOW_ERROR);
  g_return_val_if_fail (record != NULL, CRIA_FLOW_ERROR);
  g_return_val_if_fail (row != NULL, CRIA_FLOW_ERROR);
  g_return_val_if_fail (error == NULL || *error == NULL, CRIA_FLOW_ERROR);
  *record = NULL;
  if (rows->format != ROWS_JSONL)
    return cria_rows_next (rows, row, error);
  *row = NULL;
  const char *line;
  gsize len;
  CriaFlow flow = next_line (rows, &line, &len, error);
  if (flow != CRIA_FLOW_OK)
    return flow;
  if (!rows->scratch)
    rows->scratch = g_string_sized_new (256);
  if (cria_json_parse_record (line, len, divert, rows->scratch, record))
    return CRIA_FLOW_OK;
  return parse_line (rows, line, len, row, error);
}

gboolean
cria_rows_get_text (JsonObject *row, const char *member, const char *where, char **value, GError **error)
{
  g_return_val_if_fail (row != NULL, FALSE);
  g_return_val_if_fail (member != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  *value = NULL;
  JsonNode *n = json_object_get_member (row, member);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (n)) {
    GType t = json_node_get_value_type (n);
    if (t == G_TYPE_STRING)
      *value = g_strdup (json_node_get_string (n));
    else if (t == G_TYPE_INT64)
      *value = g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (n));
    else if (t == G_TYPE_DOUBLE) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      *value = g_strdup (g_ascii_dtostr (buf, sizeof buf, json_node_get_double (n)));
    } else if (t == G_TYPE_BOOLEAN)
      *value = g_strdup (json_node_get_boolean (n) ? "true" : "false");
    if (*value)
      return TRUE;
  }
  g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD, "%s: field '%s': expected a string", where,
               member);
  return FALSE;
}

char *
cria_rows_require_text (JsonObject *row, const char *member, const char *where, GError **error)
{
  g_return_val_if_fail (row != NULL, NULL);
  g_return_val_if_fail (member != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  char *v = NULL;
  if (!cria_rows_get_text (row, member, where, &v, error))
    return NULL;
  if (!v || !*v) {
    g_free (v);
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field '%s'", where, member);
    return NULL;
  }
  return v;
}
