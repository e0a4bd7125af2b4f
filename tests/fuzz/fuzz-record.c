/* fuzz-record: a JSON line through the record reader, as the file source reads
 * it. It must fail with a one-line error or give a record that survives
 * write -> read unchanged. The direct reader (cria_json_parse_record), where it
 * takes a line, must give the same record as json-glib's object would. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "../../core/json/cria-json-private.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) scratch = g_string_new (NULL);
  g_autoptr (CriaRecord) direct = NULL;
  cria_json_parse_record ((const char *) data, size, NULL, scratch, &direct);
  JsonNode *node = cria_json_parse ((const char *) data, (gssize) size, "fuzz.jsonl", 1, &error);
  if (!node) {
    if (!error || strchr (error->message, '\n') || direct)
      abort ();
    return 0;
  }
  if (JSON_NODE_HOLDS_OBJECT (node)) {
    g_autoptr (CriaRecord) r = cria_record_from_json (json_node_get_object (node), &error);
    if (direct && (!r || !cria_record_equal (r, direct)))
      abort ();
    if (r) {
      g_autofree char *line = cria_record_to_json_line (r);
      JsonNode *back = cria_json_parse (line, -1, "rewritten", 1, NULL);
      if (!back || !JSON_NODE_HOLDS_OBJECT (back))
        abort ();
      g_autoptr (CriaRecord) r2 = cria_record_from_json (json_node_get_object (back), NULL);
      if (!r2 || !cria_record_equal (r, r2))
        abort ();
      g_autoptr (CriaRecord) copy = cria_record_copy (r2);
      if (!cria_record_equal (copy, r))
        abort ();
      json_node_unref (back);
    } else if (!error || error->domain != CRIA_RECORD_ERROR) {
      abort ();
    }
  } else if (direct) {
    abort ();
  }
  json_node_unref (node);
  return 0;
}
