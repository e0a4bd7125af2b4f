/* jsonl: writes records, one JSON object per line, in cria's interchange form.
 *
 *   cria data 'file location=in.jsonl ! jsonl location=out.jsonl'
 *
 * The file is written under a temporary name and renamed when the pipeline
 * completes; a failed or interrupted run leaves the old file (or none). */
#include "config.h"

#include <cria/cria.h>

static const CriaPropSpec jsonl_props[] = { { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL,
                                              "the file to write; - writes stdout", CRIA_PROP_FLAG_REQUIRED },
                                            CRIA_PROP_END };

typedef struct {
  CriaOutput *output; /* NULL once committed or aborted */
  GString *line;      /* lines not yet written; one allocation for the whole run */
} JsonlSink;

static gpointer
jsonl_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  CriaOutput *output = cria_output_open (cria_props_get_string (props, "location"), error);
  if (!output)
    return NULL;
  JsonlSink *self = g_new0 (JsonlSink, 1);
  self->output = output;
  self->line = g_string_sized_new (4096);
  return self;
}

static void
jsonl_destroy (gpointer data)
{
  JsonlSink *self = data;
  cria_output_abort (self->output);
  g_string_free (self->line, TRUE);
  g_free (self);
}

/* Lines go out in batches of this many bytes, so stdio's locking and
 * copying are paid per batch rather than per record. */
#define JSONL_BATCH (1 << 16)

static gboolean
flush (JsonlSink *self, GError **error)
{
  gboolean ok = cria_output_write (self->output, self->line->str, self->line->len, error);
  g_string_truncate (self->line, 0);
  return ok;
}

static gboolean
jsonl_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  JsonlSink *self = data;
  cria_record_append_json_line (self->line, record);
  g_string_append_c (self->line, '\n');
  cria_record_free (record);
  return self->line->len < JSONL_BATCH || flush (self, error);
}

static gboolean
jsonl_finish (gpointer data, CriaEmitter *out, GError **error)
{
  JsonlSink *self = data;
  if (!flush (self, error))
    return FALSE;
  return cria_output_commit (g_steal_pointer (&self->output), error);
}

static void
jsonl_abort (gpointer data)
{
  JsonlSink *self = data;
  cria_output_abort (g_steal_pointer (&self->output));
}

static const CriaStageVTable jsonl_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = jsonl_create,
  .destroy = jsonl_destroy,
  .push = jsonl_push,
  .finish = jsonl_finish,
  .abort = jsonl_abort,
};

static const CriaProviderInfo jsonl_info = {
  .name = "jsonl",
  .description = "Writes records as JSON lines in cria's interchange form",
  .example = "file location=in.jsonl ! jsonl location=out.jsonl",
  .props = jsonl_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_sink (plugin, &jsonl_info, &jsonl_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (jsonl, "JSON-lines record output", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
