/* chat-bench: renders every conversation of tests/chat-template/conversations.json
 * through a tokenizer's chat template, many times over, and prints
 * "cria RENDERS_PER_SECOND BYTES" (chat.sh compares it with the JavaScript
 * reference). The template is compiled once, as cria's verbs do.
 *   cria-chat-bench TOKENIZER_DIR CONVERSATIONS_JSON [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: %s TOKENIZER_DIR CONVERSATIONS_JSON [ROUNDS]\n", argv[0]);
    return 2;
  }
  int rounds = argc > 3 ? atoi (argv[3]) : 2000;
  g_autoptr (GError) error = NULL;
  g_autofree char *config = g_build_filename (argv[1], "tokenizer_config.json", NULL);
  g_autoptr (CriaChatTemplate) t = cria_chat_template_load (config, NULL, &error);
  g_autoptr (JsonNode) root = t ? cria_json_load_file (argv[2], &error) : NULL;
  if (!root) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  JsonArray *convs = json_node_get_array (root);
  guint64 bytes = 0, renders = 0;
  gint64 start = g_get_monotonic_time ();
  for (int r = 0; r < rounds; r++)
    for (guint c = 0; c < json_array_get_length (convs); c++) {
      JsonObject *conv = json_array_get_object_element (convs, c);
      g_autoptr (JsonObject) extra = json_object_new ();
      if (json_object_has_member (conv, "tools"))
        json_object_set_member (extra, "tools", json_object_dup_member (conv, "tools"));
      g_autofree char *out = cria_chat_template_render (t, json_object_get_array_member (conv, "messages"), TRUE, extra,
                                                        &error);
      if (!out) {
        fprintf (stderr, "%s\n", error->message);
        return 1;
      }
      bytes += strlen (out);
      renders++;
    }
  double s = (g_get_monotonic_time () - start) / 1e6;
  printf ("cria %.0f %" G_GUINT64_FORMAT "\n", renders / s, bytes);
  return 0;
}
