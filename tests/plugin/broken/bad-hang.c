/* bad-hang: its init never returns. */
#include <unistd.h>

#include "broken.h"

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  for (;;)
    pause ();
  return TRUE;
}

CRIA_PLUGIN_DEFINE (bad_hang, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
