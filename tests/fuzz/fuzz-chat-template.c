/* fuzz-chat-template: libFuzzer target of chat template compiling and
 * rendering. The input is a template; after a line "#messages" it may carry
 * the conversation as JSON (else a fixed one with a system prompt, turns, a
 * tool call and a tool answer is used).
 *   ./configure --enable-fuzzing CC=clang && make fuzz-chat-template */
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static const char default_messages[] =
    "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi <tool_response>\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nr\\n</think>\\n\\nok\",\"tool_calls\":[{\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,null,true]}}}]},{\"role\":\"tool\",\"content\":\"42\"},"
    "{\"role\":\"user\",\"content\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"}]";

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  char *split = strstr (text, "\n#messages\n");
  const char *messages_json = default_messages;
  if (split) {
    *split = 0;
    messages_json = split + strlen ("\n#messages\n");
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, messages_json, -1, NULL))
    return 0;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_ARRAY (root))
    return 0;
  GError *error = NULL;
  CriaChatTemplate *t = cria_chat_template_new_from_string (text, "fuzz.jinja", &error);
  if (!t) {
    g_assert (error && strstr (error->message, "fuzz.jinja"));
    g_error_free (error);
    return 0;
  }
  JsonObject *extra = json_object_new ();
  json_object_set_string_member (extra, "bos_token", "<s>");
  for (int gen = 0; gen < 2; gen++) {
    char *out = cria_chat_template_render (t, json_node_get_array (root), gen, extra, &error);
    g_assert (out || error);
    if (out)
      g_assert (g_utf8_validate (out, -1, NULL));
    g_free (out);
    g_clear_error (&error);
  }
  json_object_unref (extra);
  cria_chat_template_free (t);
  return 0;
}
