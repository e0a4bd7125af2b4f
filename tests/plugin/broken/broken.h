/* broken.h: a minimal valid provider the broken test plugins share, so that
 * each of them is wrong in exactly one way. */
#pragma once

#include "config.h"
#include <cria/cria.h>

static gpointer
broken_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return g_new0 (int, 1);
}

static gboolean
broken_push (gpointer self, CriaRecord *record, CriaEmitter *out, GError **error)
{
  return cria_emit (out, record, error);
}

static const CriaStageVTable broken_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = broken_create,
  .destroy = g_free,
  .push = broken_push,
};
