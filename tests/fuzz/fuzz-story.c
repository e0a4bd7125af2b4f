/* fuzz-story: an archive of CNN/DailyMail .story files (tar, tgz, zip, ...)
 * through the cnndm source, libarchive included. It ends with a one-line
 * error or gives records that each hold an article and a summary. */
#define _GNU_SOURCE
#define FUZZ_WANT_FILE
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static CriaRegistry *reg;
static int fd = -1;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!reg) {
    reg = cria_registry_new ();
    const char *plugins = g_getenv ("CRIA_TEST_PLUGINS");
    cria_registry_add_path (reg, plugins ? plugins : "plugins/.libs");
    cria_registry_scan (reg);
  }
  char path[64];
  fuzz_file (&fd, path, sizeof path, data, size);
  g_autofree char *source = g_strdup_printf ("cnndm location=%s format=archive ! head n=1000000", path);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) records = cria_pipeline_collect (reg, source, &error);
  if (!records) {
    if (!error || !error->message[0] || strchr (error->message, '\n'))
      abort ();
    return 0;
  }
  for (guint i = 0; i < records->len; i++) {
    const CriaRecord *r = g_ptr_array_index (records, i);
    if (!r->output || !g_utf8_validate (r->output, -1, NULL))
      abort ();
  }
  return 0;
}
