/* head: passes on the first n records and drops the rest.
 *
 *   cria data 'file location=all.jsonl ! head n=100 ! jsonl location=first.jsonl'
 *
 * Streams; once n records have passed, the rest are counted as skipped. */
#include "config.h"

#include <cria/cria.h>

static const CriaPropSpec head_props[] = {
  { "n", CRIA_PROP_INT, "10", 0, (double) G_MAXINT64, NULL, "how many records to keep" }, CRIA_PROP_END
};

typedef struct {
  gint64 n, seen;
} Head;

static gpointer
head_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Head *self = g_new0 (Head, 1);
  self->n = cria_props_get_int (props, "n");
  return self;
}

static gboolean
head_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Head *self = data;
  if (self->seen++ >= self->n) {
    cria_record_free (record);
    cria_emit_skip (out, "after-n");
    return TRUE;
  }
  return cria_emit (out, record, error);
}

static const CriaStageVTable head_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = head_create,
  .destroy = g_free,
  .push = head_push,
};

static const CriaProviderInfo cria_head_info = {
  .name = "head",
  .description = "Keeps the first n records",
  .example = "file location=all.jsonl ! head n=100 ! jsonl location=first.jsonl",
  .props = head_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_head_register (CriaPlugin *plugin);

void
cria_head_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_head_info, &head_vtable);
}
