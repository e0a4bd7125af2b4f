/* fuzz-json: any bytes through cria's JSON reader (cria-json.h). It must
 * refuse with a one-line positioned error, or read what json-glib reads and
 * write text that reads back to the same value, and cut the same value out
 * of a stream. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static char *
generated (JsonNode *n)
{
  return json_to_string (n, FALSE);
}

/* json-glib wraps integers past 64 bits around; cria reads them as doubles. */
static gboolean
has_long_number (const char *text, size_t size)
{
  size_t run = 0;
  for (size_t i = 0; i < size; i++)
    if ((run = g_ascii_isdigit (text[i]) ? run + 1 : 0) >= 19)
      return TRUE;
  return FALSE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *text = (const char *) data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = cria_json_parse (text, (gssize) size, "fuzz.json", 1, &error);
  JsonNode *cut = NULL;
  gsize used = 0;
  g_autoptr (GError) cut_error = NULL;
  CriaJsonStatus status = cria_json_parse_prefix (text, text, size, TRUE, "fuzz.json", 1, &cut, &used, &cut_error);
  if (status == CRIA_JSON_INCOMPLETE || (status == CRIA_JSON_OK) != (cut != NULL))
    abort ();
  if (!node) {
    if (!error || error->domain != CRIA_RECORD_ERROR || strchr (error->message, '\n') ||
        !g_str_has_prefix (error->message, "fuzz.json:"))
      abort ();
    if (cut)
      json_node_unref (cut);
    return 0;
  }
  /* A whole text is one value: the stream reader cuts out the same one. */
  if (!cut)
    abort ();
  g_autofree char *a = generated (node), *b = generated (cut);
  json_node_unref (cut);
  if (strcmp (a, b))
    abort ();
  /* json-glib reads everything cria reads, to the same values. */
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, text, (gssize) size, NULL) || !json_parser_get_root (parser))
    abort ();
  g_autofree char *c = generated (json_parser_get_root (parser));
  if (strcmp (a, c) && !has_long_number (text, size))
    abort ();
  /* Written and read again: the same value, and the same text when written again. */
  g_autoptr (GString) out = g_string_new (NULL);
  cria_json_append_node (out, node);
  g_autoptr (JsonNode) back = cria_json_parse (out->str, (gssize) out->len, "written", 1, NULL);
  if (!back)
    abort ();
  g_autofree char *d = generated (back);
  g_autoptr (GString) again = g_string_new (NULL);
  cria_json_append_node (again, back);
  if (strcmp (a, d) || strcmp (out->str, again->str))
    abort ();
  return 0;
}
