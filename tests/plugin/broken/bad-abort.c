/* bad-abort: its init aborts, as a failed assertion in a plugin would. */
#include <stdlib.h>

#include "broken.h"

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  abort ();
}

CRIA_PLUGIN_DEFINE (bad_abort, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
