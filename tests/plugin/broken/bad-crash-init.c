/* bad-crash-init: its init crashes. */
#include <signal.h>

#include "broken.h"

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  raise (SIGSEGV);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (bad_crash_init, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
