/* summaries.c: summarization corpora: DialogSum, XSum, CNN/DailyMail.
 *
 *   cria data 'dialogsum location=dialogsum.dev.jsonl ! alpaca location=dialogsum.json'
 *   cria data 'xsum location=xsum.jsonl ! jsonl location=xsum-records.jsonl'
 *   cria data 'cnndm location=cnn_stories.tgz ! jsonl location=cnn.jsonl'
 *
 * The document is the input, the reference summary the output; corpora with
 * several references (DialogSum's test layout) keep them all in `references`.
 * cnndm reads rows (id, article, highlights) or the raw `*.story` files inside
 * a tar/tgz/zip archive, read in place with libarchive: the article is the
 * paragraphs before the first `@highlight`, the summary the highlight
 * paragraphs joined by newlines. */
#include "config.h"

#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "corpora.h"

#define INSTRUCTION_PROP(default_)                                                                                     \
  {                                                                                                                    \
    "instruction", CRIA_PROP_STRING, default_, 0, 0, NULL,                                                             \
        "the instruction of every record (a template over the row's members)"                                          \
  }

static const CriaPropSpec dialogsum_props[] = {
  CONV_LOCATION_PROP ("DialogSum rows ({fname, dialogue, summary, topic}; the test layout has summary1..summary3)"),
  CONV_FORMAT_PROP, INSTRUCTION_PROP ("Summarize the following dialogue."), CRIA_PROP_END
};

static const CriaPropSpec xsum_props[] = { CONV_LOCATION_PROP ("XSum rows ({document, summary, id})"), CONV_FORMAT_PROP,
                                           INSTRUCTION_PROP ("Summarize the following document in one sentence."),
                                           CRIA_PROP_END };

static const CriaPropSpec cnndm_props[] = {
  CONV_LOCATION_PROP ("CNN/DailyMail rows ({id, article, highlights}) or a tar, tgz or zip archive of *.story files"),
  { "format", CRIA_PROP_ENUM, "auto", 0, 0, "auto|jsonl|json|csv|archive",
    "rows (JSON lines, JSON array, CSV), an archive of .story files, or auto-detected from the name" },
  INSTRUCTION_PROP ("Summarize the following news article in a few bullet points."),
  CRIA_PROP_END
};

static CriaRecord *
summary_record (Conv *self, JsonObject *row, const char *where, const char *source, const char *doc_field,
                const char *id_field, GPtrArray *refs, GError **error)
{
  g_autofree char *doc = cria_rows_require_text (row, doc_field, where, error);
  if (!doc)
    return NULL;
  g_autofree char *id = NULL;
  if (!cria_rows_get_text (row, id_field, where, &id, error))
    return NULL;
  g_autoptr (CriaRecord) r = cria_record_new ();
  r->instruction = conv_render_row (cria_props_get_string (self->props, "instruction"), row, where, error);
  if (!r->instruction)
    return NULL;
  r->input = g_steal_pointer (&doc);
  r->output = g_strdup (g_ptr_array_index (refs, 0));
  json_object_set_string_member (r->meta, "source", source);
  if (id)
    json_object_set_string_member (r->meta, "id", id);
  if (refs->len > 1)
    conv_set_strings (r, "references", refs);
  return g_steal_pointer (&r);
}

static CriaRecord *
dialogsum_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
  char *one = NULL;
  if (!cria_rows_get_text (row, "summary", where, &one, error))
    return NULL;
  if (one)
    g_ptr_array_add (refs, one);
  for (guint i = 1; !one && i <= 3; i++) {
    g_autofree char *name = g_strdup_printf ("summary%u", i);
    char *v = NULL;
    if (!cria_rows_get_text (row, name, where, &v, error))
      return NULL;
    if (v)
      g_ptr_array_add (refs, v);
  }
  if (!refs->len) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field 'summary'", where);
    return NULL;
  }
  CriaRecord *r = summary_record (self, row, where, "dialogsum", "dialogue", "fname", refs, error);
  g_autofree char *topic = NULL;
  if (r && cria_rows_get_text (row, "topic", where, &topic, NULL) && topic)
    json_object_set_string_member (r->meta, "topic", topic);
  return r;
}

static CriaRecord *
one_summary_row (Conv *self, JsonObject *row, const char *where, const char *source, const char *doc_field,
                 const char *summary_field, GError **error)
{
  g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
  char *summary = cria_rows_require_text (row, summary_field, where, error);
  if (!summary)
    return NULL;
  g_ptr_array_add (refs, summary);
  return summary_record (self, row, where, source, doc_field, "id", refs, error);
}

static CriaRecord *
xsum_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  return one_summary_row (self, row, where, "xsum", "document", "summary", error);
}

static CriaRecord *
cnndm_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  return one_summary_row (self, row, where, "cnndm", "article", "highlights", error);
}

/* ---- .story files in an archive ------------------------------------------------ */

/* Splits a story into its article and its highlights (a row of the CSV layout). */
static JsonObject *
parse_story (const char *text, const char *id)
{
  g_autoptr (GString) article = g_string_new (NULL), highlights = g_string_new (NULL);
  g_auto (GStrv) paras = g_regex_split_simple ("\\n\\s*\\n", text, 0, 0);
  gboolean next_is_highlight = FALSE;
  for (guint i = 0; paras[i]; i++) {
    char *p = g_strstrip (paras[i]);
    if (!*p)
      continue;
    if (g_str_has_prefix (p, "@highlight")) {
      next_is_highlight = TRUE;
      /* Some stories put the highlight on the same paragraph as the marker. */
      p = g_strstrip (p + strlen ("@highlight"));
      if (!*p)
        continue;
    }
    GString *to = next_is_highlight ? highlights : article;
    if (to->len)
      g_string_append (to, next_is_highlight ? "\n" : "\n\n");
    g_string_append (to, p);
  }
  JsonObject *row = json_object_new ();
  json_object_set_string_member (row, "id", id);
  json_object_set_string_member (row, "article", article->str);
  json_object_set_string_member (row, "highlights", highlights->str);
  return row;
}

/* One .story a member; a story is a news article, so a member past this is
 * not one (and no archive may expand past its budget, cria-input.h). */
#define STORY_MAX_BYTES ((guint64) 64 << 20)

typedef struct {
  struct archive *a;
  guint64 budget;
} Stories;

static void
close_archive (gpointer data)
{
  Stories *st = data;
  archive_read_free (st->a);
  g_free (st);
}

static CriaFlow
cnndm_archive_fill (Conv *self, GError **error)
{
  Stories *st = self->data;
  struct archive *a = st->a;
  const char *path = cria_props_get_string (self->props, "location");
  struct archive_entry *entry;
  for (;;) {
    int rc = archive_read_next_header (a, &entry);
    if (rc == ARCHIVE_EOF)
      return CRIA_FLOW_EOS;
    if (rc < ARCHIVE_WARN) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s", path, archive_error_string (a));
      return CRIA_FLOW_ERROR;
    }
    const char *name = archive_entry_pathname (entry);
    if (archive_entry_filetype (entry) == AE_IFREG && name && g_str_has_suffix (name, ".story"))
      break;
  }
  const char *name = archive_entry_pathname (entry);
  g_autofree char *where = g_strdup_printf ("%s: %s", path, name);
  g_autoptr (GBytes) bytes = cria_archive_read_member (a, where, STORY_MAX_BYTES, &st->budget, error);
  if (!bytes)
    return CRIA_FLOW_ERROR;
  gsize size;
  const char *data = g_bytes_get_data (bytes, &size);
  g_autoptr (GString) text = g_string_new_len (data, (gssize) size);
  if (!g_utf8_validate (text->str, (gssize) text->len, NULL)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "%s: invalid UTF-8", where);
    return CRIA_FLOW_ERROR;
  }
  g_autofree char *base = g_path_get_basename (name);
  base[strlen (base) - strlen (".story")] = '\0';
  g_autoptr (JsonObject) row = parse_story (text->str, base);
  CriaRecord *r = cnndm_row (self, row, where, error);
  if (!r)
    return CRIA_FLOW_ERROR;
  g_queue_push_tail (&self->pending, r);
  return CRIA_FLOW_OK;
}

static gboolean
is_archive_name (const char *path)
{
  static const char *const ext[] = { ".tgz", ".tar.gz", ".tar", ".zip", ".tar.bz2", ".tar.xz" };
  for (guint i = 0; i < G_N_ELEMENTS (ext); i++)
    if (g_str_has_suffix (path, ext[i]))
      return TRUE;
  return FALSE;
}

static gpointer
cnndm_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  const char *path = cria_props_get_string (props, "location");
  const char *format = cria_props_get_string (props, "format");
  if (strcmp (format, "archive") && (strcmp (format, "auto") || !is_archive_name (path)))
    return conv_new_rows (props, ctx, cnndm_row, error);
  struct archive *a = archive_read_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_all (a);
  if (archive_read_open_filename (a, path, 65536) != ARCHIVE_OK) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", path, archive_error_string (a));
    archive_read_free (a);
    return NULL;
  }
  Conv *self = g_new0 (Conv, 1);
  self->props = props;
  self->ctx = ctx;
  g_queue_init (&self->pending);
  self->fill = cnndm_archive_fill;
  Stories *st = g_new0 (Stories, 1);
  st->a = a;
  st->budget = cria_archive_budget (path);
  self->data = st;
  self->data_free = close_archive;
  return self;
}

static gpointer
dialogsum_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_rows (props, ctx, dialogsum_row, error);
}

static gpointer
xsum_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_rows (props, ctx, xsum_row, error);
}

static SOURCE_VTABLE (dialogsum);
static SOURCE_VTABLE (xsum);
static SOURCE_VTABLE (cnndm);

static const CriaProviderInfo dialogsum_info = {
  .name = "dialogsum",
  .description = "Converts DialogSum dialogues and their reference summaries into records",
  .example = "dialogsum location=dialogsum.dev.jsonl ! alpaca location=dialogsum.json",
  .props = dialogsum_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo xsum_info = {
  .name = "xsum",
  .description = "Converts XSum documents and one-sentence summaries into records",
  .example = "xsum location=xsum.jsonl ! jsonl location=xsum-records.jsonl",
  .props = xsum_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo cnndm_info = {
  .name = "cnndm",
  .description = "Converts CNN/DailyMail articles (rows, or .story files in an archive) into records",
  .example = "cnndm location=cnn_stories.tgz ! jsonl location=cnn.jsonl",
  .props = cnndm_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_summary_register (CriaPlugin *plugin);

void
cria_summary_register (CriaPlugin *plugin)
{
  cria_plugin_add_source (plugin, &dialogsum_info, &dialogsum_vtable);
  cria_plugin_add_source (plugin, &xsum_info, &xsum_vtable);
  cria_plugin_add_source (plugin, &cnndm_info, &cnndm_vtable);
}
