/* openai: a generator that asks any OpenAI-compatible HTTP endpoint.
 *
 *   cria data 'selfinstruct seeds=seed_tasks.jsonl generator="openai base-url=http://127.0.0.1:8080/v1 model=demo" ! jsonl location=out.jsonl'
 *
 * POSTs to BASE-URL/chat/completions (api=chat) or BASE-URL/completions
 * (api=completions) with libsoup 3, over HTTP or HTTPS. The API key comes from
 * the environment variable named by api-key-env, never from a file or the
 * command line. 429 and 5xx answers, timeouts and refused connections are
 * retried with exponential backoff (or the server's Retry-After); any other
 * error fails the request at once with the server's message. */
#include "config.h"

#include <string.h>

#include <libsoup/soup.h>

#include <cria/cria.h>
#include <cria/cria-generator.h>

static const CriaPropSpec openai_props[] = {
  { "base-url", CRIA_PROP_STRING, "http://127.0.0.1:8080/v1", 0, 0, NULL,
    "the endpoint up to and including /v1 (http:// or https://)" },
  { "model", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the model name the endpoint serves", CRIA_PROP_FLAG_REQUIRED },
  { "api", CRIA_PROP_ENUM, "chat", 0, 0, "chat|completions",
    "chat: /chat/completions with messages; completions: /completions with a prompt" },
  { "api-key-env", CRIA_PROP_STRING, "OPENAI_API_KEY", 0, 0, NULL,
    "the environment variable holding the API key (sent as a Bearer token when set)" },
  { "timeout", CRIA_PROP_DOUBLE, "120", 1, 3600, NULL,
    "seconds to wait for one whole answer (an answer over 16 MiB fails at once)" },
  { "retries", CRIA_PROP_INT, "4", 0, 20, NULL,
    "retries of a request after 429, 5xx, a timeout or a refused connection" },
  { "backoff", CRIA_PROP_DOUBLE, "1", 0, 60, NULL, "seconds before the first retry; doubled for each next one" },
  { "concurrency", CRIA_PROP_INT, "4", 1, 64, NULL, "requests in flight at once in a batch" },
  CRIA_PROP_END
};

typedef struct {
  SoupSession *session;
  char *url;
  char *base_url;
  char *model;
  gboolean chat;
  char *api_key;
  int retries;
  double backoff;
  double timeout;
  guint concurrency;
} OpenAI;

static void
openai_destroy (gpointer data)
{
  OpenAI *self = data;
  g_clear_object (&self->session);
  g_free (self->url);
  g_free (self->base_url);
  g_free (self->model);
  g_free (self->api_key);
  g_free (self);
}

static gpointer
openai_create (const CriaProps *props, CriaRegistry *registry, GError **error)
{
  const char *base = cria_props_get_string (props, "base-url");
  g_autoptr (GUri) uri = g_uri_parse (base, G_URI_FLAGS_NONE, NULL);
  const char *scheme = uri ? g_uri_get_scheme (uri) : NULL;
  if (!uri || !g_uri_get_host (uri) || (g_strcmp0 (scheme, "http") && g_strcmp0 (scheme, "https"))) {
    g_autofree char *shown = cria_error_quote (base, -1, 120);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "base-url: '%s' is not an http:// or https:// URL",
                 shown);
    return NULL;
  }
  OpenAI *self = g_new0 (OpenAI, 1);
  self->chat = strcmp (cria_props_get_string (props, "api"), "chat") == 0;
  self->base_url = g_strdup (base);
  const char *tail = self->chat ? "chat/completions" : "completions";
  self->url = g_strconcat (base, g_str_has_suffix (base, "/") ? "" : "/", tail, NULL);
  self->model = g_strdup (cria_props_get_string (props, "model"));
  const char *env = g_getenv (cria_props_get_string (props, "api-key-env"));
  self->api_key = env && *env ? g_strdup (env) : NULL;
  self->retries = (int) cria_props_get_int (props, "retries");
  self->backoff = cria_props_get_double (props, "backoff");
  self->timeout = cria_props_get_double (props, "timeout");
  self->concurrency = (guint) cria_props_get_int (props, "concurrency");
  self->session = soup_session_new_with_options ("timeout", (guint) cria_props_get_double (props, "timeout"),
                                                 "max-conns", self->concurrency, "max-conns-per-host",
                                                 self->concurrency, "user-agent", "cria/" PACKAGE_VERSION, NULL);
  return self;
}

static char *
openai_describe (gpointer data)
{
  OpenAI *self = data;
  return g_strdup_printf ("openai %s %s %s", self->base_url, self->chat ? "chat" : "completions", self->model);
}

static guint
openai_max_concurrency (gpointer data)
{
  return ((OpenAI *) data)->concurrency;
}

static char *
request_body (OpenAI *self, const CriaGenRequest *req)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, self->model);
  if (self->chat) {
    json_builder_set_member_name (b, "messages");
    json_builder_begin_array (b);
    if (req->system) {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "role");
      json_builder_add_string_value (b, "system");
      json_builder_set_member_name (b, "content");
      json_builder_add_string_value (b, req->system);
      json_builder_end_object (b);
    }
    if (req->messages) {
      for (guint i = 0; i < req->messages->len; i++) {
        const CriaMessage *m = g_ptr_array_index ((GPtrArray *) req->messages, i);
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "role");
        json_builder_add_string_value (b, m->role);
        json_builder_set_member_name (b, "content");
        json_builder_add_string_value (b, m->content);
        json_builder_end_object (b);
      }
    } else if (req->prompt) {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "role");
      json_builder_add_string_value (b, "user");
      json_builder_set_member_name (b, "content");
      json_builder_add_string_value (b, req->prompt);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
  } else {
    json_builder_set_member_name (b, "prompt");
    json_builder_add_string_value (b, req->prompt ? req->prompt : "");
  }
  if (req->max_tokens > 0) {
    json_builder_set_member_name (b, "max_tokens");
    json_builder_add_int_value (b, req->max_tokens);
  }
  if (req->temperature >= 0) {
    json_builder_set_member_name (b, "temperature");
    json_builder_add_double_value (b, req->temperature);
  }
  if (req->top_p >= 0) {
    json_builder_set_member_name (b, "top_p");
    json_builder_add_double_value (b, req->top_p);
  }
  if (req->seed >= 0) {
    json_builder_set_member_name (b, "seed");
    json_builder_add_int_value (b, req->seed);
  }
  if (req->stop && req->stop[0]) {
    json_builder_set_member_name (b, "stop");
    json_builder_begin_array (b);
    for (const char *const *s = req->stop; *s; s++)
      json_builder_add_string_value (b, *s);
    json_builder_end_array (b);
  }
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* The text of the first choice, per the API in use. */
static gboolean
parse_answer (OpenAI *self, const char *body, gsize len, CriaGenResult *res, GError **error)
{
  g_autoptr (GError) jerr = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (body, (gssize) len, "answer", 1, &jerr);
  if (!root) {
    g_autofree char *shown = cria_error_quote (jerr->message, -1, 120);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: the answer is not JSON: %s", self->url, shown);
    return FALSE;
  }
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *choices = o ? json_object_get_member (o, "choices") : NULL;
  JsonArray *a = choices && JSON_NODE_HOLDS_ARRAY (choices) ? json_node_get_array (choices) : NULL;
  JsonNode *first = a && json_array_get_length (a) ? json_array_get_element (a, 0) : NULL;
  JsonObject *c = first && JSON_NODE_HOLDS_OBJECT (first) ? json_node_get_object (first) : NULL;
  const char *text = NULL;
  if (c && self->chat) {
    JsonNode *m = json_object_get_member (c, "message");
    if (m && JSON_NODE_HOLDS_OBJECT (m))
      text = json_object_get_string_member_with_default (json_node_get_object (m), "content", NULL);
  } else if (c) {
    text = json_object_get_string_member_with_default (c, "text", NULL);
  }
  if (!text) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: the answer has no %s", self->url,
                 self->chat ? "choices[0].message.content" : "choices[0].text");
    return FALSE;
  }
  res->text = g_strdup (text);
  res->finish_reason = g_strdup (json_object_get_string_member_with_default (c, "finish_reason", NULL));
  JsonNode *usage = json_object_get_member (o, "usage");
  if (usage && JSON_NODE_HOLDS_OBJECT (usage)) {
    JsonObject *u = json_node_get_object (usage);
    res->prompt_tokens = (int) json_object_get_int_member_with_default (u, "prompt_tokens", -1);
    res->completion_tokens = (int) json_object_get_int_member_with_default (u, "completion_tokens", -1);
  }
  return TRUE;
}

/* The server's own words for a refusal, when it gave them in OpenAI's form. */
static char *
error_text (GBytes *body)
{
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;
  if (!data || !len)
    return g_strdup ("no message");
  g_autoptr (JsonNode) root = cria_json_parse (data, (gssize) len, "answer", 1, NULL);
  if (root) {
    JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
    JsonNode *e = o ? json_object_get_member (o, "error") : NULL;
    if (e && JSON_NODE_HOLDS_OBJECT (e)) {
      const char *msg = json_object_get_string_member_with_default (json_node_get_object (e), "message", NULL);
      if (msg)
        return cria_error_quote (msg, -1, 200);
    }
  }
  return cria_error_quote (data, (gssize) len, 200);
}

/* One answer is at most this long: far above any completion, and what a
 * broken or hostile endpoint can make cria hold. */
#define OPENAI_MAX_ANSWER (16 << 20)

/* The answer's body, read under OPENAI_MAX_ANSWER bytes and the timeout for
 * the whole answer (soup's own timeout bounds each read, so an endpoint
 * that trickles bytes would otherwise hold the request forever). Sets
 * `fatal` when asking again cannot help. */
static GBytes *
read_answer (OpenAI *self, SoupMessage *msg, GCancellable *cancellable, gboolean *fatal, GError **error)
{
  *fatal = FALSE;
  g_autoptr (GInputStream) in = soup_session_send (self->session, msg, cancellable, error);
  if (!in)
    return NULL;
  gint64 deadline = g_get_monotonic_time () + (gint64) (self->timeout * G_USEC_PER_SEC);
  goffset declared = soup_message_headers_get_content_length (soup_message_get_response_headers (msg));
  g_autoptr (GByteArray) body = g_byte_array_new ();
  guint8 chunk[64 * 1024];
  for (;;) {
    if (declared > OPENAI_MAX_ANSWER || body->len > OPENAI_MAX_ANSWER) {
      *fatal = TRUE;
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "the answer is larger than %d MiB", OPENAI_MAX_ANSWER >> 20);
      return NULL;
    }
    if (g_get_monotonic_time () > deadline) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the answer took longer than %g s", self->timeout);
      return NULL;
    }
    gssize n = g_input_stream_read (in, chunk, sizeof chunk, cancellable, error);
    if (n < 0)
      return NULL;
    if (n == 0)
      break;
    g_byte_array_append (body, chunk, (guint) n);
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&body));
}

static gboolean
openai_generate (gpointer data, const CriaGenRequest *req, CriaGenResult *res, GCancellable *cancellable,
                 GError **error)
{
  OpenAI *self = data;
  g_autofree char *body = request_body (self, req);
  double wait = self->backoff;
  g_autofree char *last = NULL;
  for (int attempt = 0; attempt <= self->retries; attempt++) {
    if (attempt > 0) {
      /* Sleep in small steps so that a cancellation is not held up by a long backoff. */
      for (double slept = 0; slept < wait && !g_cancellable_is_cancelled (cancellable); slept += 0.05)
        g_usleep (50000);
      wait *= 2;
    }
    if (g_cancellable_set_error_if_cancelled (cancellable, error))
      return FALSE;
    g_autoptr (SoupMessage) msg = soup_message_new ("POST", self->url);
    g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", payload);
    if (self->api_key) {
      g_autofree char *auth = g_strconcat ("Bearer ", self->api_key, NULL);
      soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
    }
    g_autoptr (GError) net = NULL;
    gboolean fatal;
    g_autoptr (GBytes) answer = read_answer (self, msg, cancellable, &fatal, &net);
    if (!answer && fatal) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s", self->url, net->message);
      return FALSE;
    }
    if (!answer) {
      if (g_error_matches (net, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        g_propagate_error (error, g_steal_pointer (&net));
        return FALSE;
      }
      g_free (last);
      last = g_strdup_printf ("cannot reach it: %s", net->message);
      continue;
    }
    guint status = soup_message_get_status (msg);
    if (status >= 200 && status < 300) {
      gsize len = 0;
      const char *text = g_bytes_get_data (answer, &len);
      return parse_answer (self, text ? text : "", len, res, error);
    }
    g_autofree char *why = error_text (answer);
    if (status == 429 || status >= 500) {
      g_free (last);
      last = g_strdup_printf ("HTTP %u: %s", status, why);
      const char *after = soup_message_headers_get_one (soup_message_get_response_headers (msg), "Retry-After");
      if (after && g_ascii_isdigit (after[0]))
        wait = MIN (g_ascii_strtod (after, NULL), 600.0);
      continue;
    }
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: HTTP %u: %s", self->url, status, why);
    return FALSE;
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: gave up after %d tries: %s", self->url, self->retries + 1,
               last ? last : "no answer");
  return FALSE;
}

static const CriaGeneratorVTable openai_vtable = {
  CRIA_VTABLE_INIT (CriaGeneratorVTable),
  .create = openai_create,
  .destroy = openai_destroy,
  .describe = openai_describe,
  .generate = openai_generate,
  .max_concurrency = openai_max_concurrency,
};

static const CriaProviderInfo openai_info = {
  .name = "openai",
  .description = "Generates with any OpenAI-compatible HTTP endpoint (chat or completions)",
  .example = "selfinstruct generator=\"openai base-url=http://127.0.0.1:8080/v1 model=demo\"",
  .props = openai_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_generator (plugin, &openai_info, &openai_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (openai, "OpenAI-compatible HTTP generator", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later",
                    "cria");
