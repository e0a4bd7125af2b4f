/* cria-plugin-scanner: opens one plugin file on behalf of the registry, in a
 * process of its own, so that a plugin that crashes or aborts while it loads
 * takes only this process down (see cria_registry_scan). Not for users. */
#include "config.h"

#include <stdio.h>

#include "cria-registry-private.h"

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s PLUGIN-FILE... (run by libcria, not by hand)\n", argv[0]);
    return 2;
  }
  return cria_registry_scanner_main (argc - 1, argv + 1);
}
