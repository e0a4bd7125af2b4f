/* fake-openai.c: a scripted OpenAI-compatible server for tests. */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "fake-openai.h"

typedef struct {
  CriaFakeOpenAIHandler handler;
  gpointer data;
  GMutex lock;
  GCond ready;
  char *base;
} Server;

void
cria_fake_openai_respond (SoupServerMessage *msg, guint status, const char *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
}

static JsonNode *
request_json (SoupServerMessage *msg)
{
  SoupMessageBody *req = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (req);
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!data || !json_parser_load_from_data (parser, data, (gssize) len, NULL))
    return NULL;
  return json_node_copy (json_parser_get_root (parser));
}

char *
cria_fake_openai_said (SoupServerMessage *msg, gboolean chat)
{
  g_autoptr (JsonNode) root = request_json (msg);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (!o)
    return g_strdup ("");
  if (!chat)
    return g_strdup (json_object_get_string_member_with_default (o, "prompt", ""));
  JsonArray *m = json_object_get_array_member (o, "messages");
  guint n = m ? json_array_get_length (m) : 0;
  return g_strdup (n ? json_object_get_string_member (json_array_get_object_element (m, n - 1), "content") : "");
}

gint64
cria_fake_openai_seed (SoupServerMessage *msg)
{
  g_autoptr (JsonNode) root = request_json (msg);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  return o ? json_object_get_int_member_with_default (o, "seed", -1) : -1;
}

void
cria_fake_openai_answer (SoupServerMessage *msg, gboolean chat, const char *text, const char *finish_reason)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "choices");
  json_builder_begin_array (b);
  json_builder_begin_object (b);
  if (chat) {
    json_builder_set_member_name (b, "message");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "role");
    json_builder_add_string_value (b, "assistant");
    json_builder_set_member_name (b, "content");
    json_builder_add_string_value (b, text);
    json_builder_end_object (b);
  } else {
    json_builder_set_member_name (b, "text");
    json_builder_add_string_value (b, text);
  }
  json_builder_set_member_name (b, "finish_reason");
  json_builder_add_string_value (b, finish_reason ? finish_reason : "stop");
  json_builder_end_object (b);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "usage");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "prompt_tokens");
  json_builder_add_int_value (b, 5);
  json_builder_set_member_name (b, "completion_tokens");
  json_builder_add_int_value (b, 7);
  json_builder_end_object (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) out = json_builder_get_root (b);
  g_autofree char *body = json_to_string (out, FALSE);
  cria_fake_openai_respond (msg, 200, body);
}

static void
handle (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  Server *s = data;
  s->handler (msg, path, s->data);
}

static gpointer
serve (gpointer data)
{
  Server *s = data;
  GMainContext *ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  SoupServer *server = soup_server_new (NULL, NULL);
  soup_server_add_handler (server, NULL, handle, s, NULL);
  g_autoptr (GError) error = NULL;
  soup_server_listen_local (server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);
  GSList *uris = soup_server_get_uris (server);
  g_mutex_lock (&s->lock);
  s->base = g_strdup_printf ("http://127.0.0.1:%d", g_uri_get_port (uris->data));
  g_cond_signal (&s->ready);
  g_mutex_unlock (&s->lock);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  GMainLoop *loop = g_main_loop_new (ctx, FALSE);
  g_main_loop_run (loop); /* until the process ends */
  return NULL;
}

char *
cria_fake_openai_start (CriaFakeOpenAIHandler handler, gpointer data)
{
  /* Lives as long as the process, as its thread does. */
  Server *s = g_new0 (Server, 1);
  s->handler = handler;
  s->data = data;
  g_mutex_init (&s->lock);
  g_cond_init (&s->ready);
  g_mutex_lock (&s->lock);
  g_thread_unref (g_thread_new ("fake-openai", serve, s));
  while (!s->base)
    g_cond_wait (&s->ready, &s->lock);
  g_mutex_unlock (&s->lock);
  return g_strdup (s->base);
}
