/* bad-crash-ctor: a constructor that crashes when the file is opened; the
 * plugin scanner must take the crash, not the program. */
#include <signal.h>

#include "broken.h"

static const CriaProviderInfo info = {
  .name = "never-seen",
  .description = "test",
};

__attribute__ ((constructor)) static void
crash_on_open (void)
{
  raise (SIGSEGV);
}

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &info, &broken_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (bad_crash_ctor, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
