/* bad-no-descriptor: a shared library that is not a cria plugin. */
#include <gmodule.h>

G_MODULE_EXPORT int not_a_plugin (void);

G_MODULE_EXPORT int
not_a_plugin (void)
{
  return 42;
}
