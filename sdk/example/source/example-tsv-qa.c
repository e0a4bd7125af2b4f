/* example-tsv-qa: a converter (a source) built out of tree against the
 * installed SDK. It reads question/answer pairs from a tab-separated file
 * with a header row, as FAQ exports and many QA datasets ship them:
 *
 *   cria data 'example-tsv-qa location=faq.tsv ! head n=3 ! jsonl location=out.jsonl'
 *
 *   id<TAB>question<TAB>answer<TAB>context
 *   q1<TAB>What is the capital of France?<TAB>Paris.<TAB>
 *
 * The question becomes the instruction, the answer the output, the context
 * column (when the file has one and the row fills it) the input, and every
 * other column a metadata string. Fields cannot hold tabs or newlines, so
 * they are escaped as \t, \n, \r and \\ (the "linear TSV" convention);
 * escapes=false keeps backslashes as they are.
 *
 * A row that is wrong fails alone, with the file, the line and the column
 * named (so --on-error=skip can go on with the next row); a header without
 * the question or answer column stops the run before any record. */
#include <string.h>

#include <cria/cria.h>

/* The source of truth for `cria inspect`, the pipeline parser and the README. */
static const CriaPropSpec tsv_props[] = {
  { .name = "location",
    .type = CRIA_PROP_STRING,
    .blurb = "the file to read; - reads stdin",
    .flags = CRIA_PROP_FLAG_REQUIRED },
  { .name = "question",
    .type = CRIA_PROP_STRING,
    .default_value = "question",
    .blurb = "header of the column that becomes the instruction" },
  { .name = "answer",
    .type = CRIA_PROP_STRING,
    .default_value = "answer",
    .blurb = "header of the column that becomes the output" },
  { .name = "context",
    .type = CRIA_PROP_STRING,
    .default_value = "context",
    .blurb = "header of the column that becomes the input, when the file has it" },
  { .name = "escapes",
    .type = CRIA_PROP_BOOL,
    .default_value = "true",
    .blurb = "decode \\t, \\n, \\r and \\\\ in fields" },
  CRIA_PROP_END
};

typedef struct {
  CriaInput *input;
  gboolean escapes;
  char **header; /* column names */
  guint n_columns;
  int question, answer, context; /* column indices; context -1 when absent */
} TsvQa;

static void
tsv_destroy (gpointer data)
{
  TsvQa *self = data;
  if (!self)
    return;
  g_clear_pointer (&self->input, cria_input_free);
  g_strfreev (self->header);
  g_free (self);
}

static int
column_of (TsvQa *self, const char *name)
{
  for (guint i = 0; i < self->n_columns; i++)
    if (strcmp (self->header[i], name) == 0)
      return (int) i;
  return -1;
}

/* Linear TSV's escapes; FALSE on a backslash before anything else. */
static gboolean
unescape (char *text, char *bad)
{
  char *w = text;
  for (const char *r = text; *r; r++) {
    if (*r != '\\') {
      *w++ = *r;
      continue;
    }
    switch (*++r) {
      case 't':
        *w++ = '\t';
        break;
      case 'n':
        *w++ = '\n';
        break;
      case 'r':
        *w++ = '\r';
        break;
      case '\\':
        *w++ = '\\';
        break;
      default:
        *bad = *r;
        return FALSE;
    }
  }
  *w = '\0';
  return TRUE;
}

static gpointer
tsv_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  g_autoptr (CriaInput) input = cria_input_open (cria_props_get_string (props, "location"), error);
  if (!input)
    return NULL;
  const char *line;
  gsize len;
  g_autoptr (GError) read_error = NULL;
  if (!cria_input_read_line (input, &line, &len, &read_error)) {
    if (read_error)
      g_propagate_error (error, g_steal_pointer (&read_error));
    else
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:1: the file is empty: expected a header row",
                   cria_input_get_path (input));
    return NULL;
  }
  TsvQa *self = g_new0 (TsvQa, 1);
  self->escapes = cria_props_get_bool (props, "escapes");
  self->header = g_strsplit (line, "\t", -1);
  self->n_columns = g_strv_length (self->header);
  self->input = g_steal_pointer (&input);
  self->question = column_of (self, cria_props_get_string (props, "question"));
  self->answer = column_of (self, cria_props_get_string (props, "answer"));
  self->context = column_of (self, cria_props_get_string (props, "context"));
  const char *missing = self->question < 0 ? "question" : self->answer < 0 ? "answer" : NULL;
  if (missing) {
    g_autofree char *have = g_strjoinv (", ", self->header);
    g_autofree char *q = cria_error_quote (have, -1, 80);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:1: field '%s': the header has no column \"%s\" (it has: %s)",
                 cria_input_get_path (self->input), missing, cria_props_get_string (props, missing), q);
    tsv_destroy (self);
    return NULL;
  }
  return self;
}

static CriaFlow
tsv_next (gpointer data, CriaRecord **record, GError **error)
{
  TsvQa *self = data;
  const char *line;
  gsize len;
  do {
    if (!cria_input_read_line (self->input, &line, &len, error))
      return error && *error ? CRIA_FLOW_ERROR : CRIA_FLOW_EOS;
  } while (len == 0); /* blank lines, a trailing one above all */
  const char *path = cria_input_get_path (self->input);
  guint64 lineno = cria_input_get_line_number (self->input);
  if (!g_utf8_validate (line, (gssize) len, NULL)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "%s:%" G_GUINT64_FORMAT ": not valid UTF-8",
                 path, lineno);
    return CRIA_FLOW_ERROR;
  }
  g_auto (GStrv) cells = g_strsplit (line, "\t", -1);
  guint n = g_strv_length (cells);
  if (n != self->n_columns) {
    /* Name the first column the row lacks, or the first one too many. */
    const char *field = n < self->n_columns ? self->header[n] : "(extra)";
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX,
                 "%s:%" G_GUINT64_FORMAT ": field '%s': the row has %u columns, the header %u", path, lineno, field, n,
                 self->n_columns);
    return CRIA_FLOW_ERROR;
  }
  for (guint i = 0; i < n && self->escapes; i++) {
    char bad = 0;
    if (!unescape (cells[i], &bad)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s:%" G_GUINT64_FORMAT ": field '%s': unknown escape \\%c (use \\t, \\n, \\r or \\\\)", path,
                   lineno, self->header[i], bad ? bad : ' ');
      return CRIA_FLOW_ERROR;
    }
  }
  for (const int *c = (const int[]){ self->question, self->answer, -1 }; *c >= 0; c++)
    if (cells[*c][0] == '\0') {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                   "%s:%" G_GUINT64_FORMAT ": field '%s': empty", path, lineno, self->header[*c]);
      return CRIA_FLOW_ERROR;
    }
  CriaRecord *r = cria_record_new ();
  cria_record_set_field (r, "instruction", cells[self->question]);
  cria_record_set_field (r, "output", cells[self->answer]);
  if (self->context >= 0 && cells[self->context][0])
    cria_record_set_field (r, "input", cells[self->context]);
  for (guint i = 0; i < n; i++)
    if ((int) i != self->question && (int) i != self->answer && (int) i != self->context)
      json_object_set_string_member (r->meta, self->header[i], cells[i]);
  if (!json_object_has_member (r->meta, "source"))
    json_object_set_string_member (r->meta, "source", "example-tsv-qa");
  *record = r;
  return CRIA_FLOW_OK;
}

static const CriaStageVTable tsv_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = tsv_create,
  .destroy = tsv_destroy,
  .next = tsv_next,
};

static const CriaProviderInfo tsv_info = {
  .name = "example-tsv-qa",
  .description = "Reads question/answer pairs from a tab-separated file with a header row (an SDK example)",
  .example = "example-tsv-qa location=faq.tsv ! head n=3 ! jsonl location=out.jsonl",
  .props = tsv_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_source (plugin, &tsv_info, &tsv_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (example_tsv, "An example converter built out of tree", plugin_init, "1.0", "MIT",
                    "cria SDK example");
