/* replay.c: runs a fuzz target over every file of its corpus directory, so the
 * inputs fuzzing found (and the seeds) are checked by make check with any
 * compiler. The corpus is tests/fuzz/corpus/FUZZ_NAME under CRIA_SRCDIR. */
#include "config.h"

#include <stdio.h>

#include <glib.h>

#include "fuzz.h"

int
main (int argc, char **argv)
{
  const char *src = g_getenv ("CRIA_SRCDIR");
  if (!src) {
    fprintf (stderr, "CRIA_SRCDIR is not set: run with make check\n");
    return 99;
  }
  g_autofree char *dir_path = g_build_filename (src, "tests", "fuzz", "corpus", FUZZ_NAME, NULL);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  if (!dir) {
    fprintf (stderr, "%s: no corpus\n", dir_path);
    return 99;
  }
  guint n = 0;
  const char *name;
  while ((name = g_dir_read_name (dir))) {
    g_autofree char *path = g_build_filename (dir_path, name, NULL);
    g_autofree char *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents (path, &data, &len, NULL))
      continue;
    LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
    n++;
  }
  /* The plain closing line the CI reads. */
  printf ("%s: %u inputs replayed\n%u passed, 0 failed\n", FUZZ_NAME, n, n);
  return n ? 0 : 99;
}
