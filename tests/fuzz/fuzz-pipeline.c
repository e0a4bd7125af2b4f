/* fuzz-pipeline: the pipeline parsers, both forms, on arbitrary bytes.
 * The first byte picks the form; parsing must fail cleanly or give a pipeline
 * whose canonical string parses again to the same canonical string. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static CriaRegistry *
registry (void)
{
  static CriaRegistry *reg;
  if (!reg) {
    reg = cria_registry_new ();
    const char *dir = g_getenv ("CRIA_TEST_PLUGINS");
    cria_registry_add_path (reg, dir ? dir : "plugins/.libs");
    cria_registry_scan (reg);
  }
  return reg;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  g_autofree char *text = g_strndup ((const char *) data + 1, size - 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaPipeline) p = NULL;
  if (data[0] & 1)
    p = cria_pipeline_parse_json (registry (), text, -1, "fuzz.json", &error);
  else
    p = cria_pipeline_parse (registry (), text, &error);
  if (!p) {
    /* Every failure explains itself on one line. */
    if (!error || !error->message[0] || strchr (error->message, '\n'))
      abort ();
    return 0;
  }
  g_autofree char *canon = cria_pipeline_to_string (p);
  g_autoptr (CriaPipeline) again = cria_pipeline_parse (registry (), canon, NULL);
  if (!again)
    abort ();
  g_autofree char *canon2 = cria_pipeline_to_string (again);
  if (strcmp (canon, canon2) != 0)
    abort ();
  return 0;
}
