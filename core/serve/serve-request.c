/* serve-request.c: OpenAI request parsing and response bodies for `cria serve`.
 *
 *   curl -d '{"messages": [{"role": "user", "content": "Hi"}]}' http://127.0.0.1:8080/v1/chat/completions
 *
 * Fields follow OpenAI's API reference. What cria cannot honour is refused
 * with a 400 naming the field rather than silently ignored: tools and
 * functions, logit_bias, echo, suffix, best_of, token-id prompts, a JSON
 * schema beyond the subset constrained decoding enforces. */
#include "config.h"

#include <string.h>

#include <cria/cria-input.h>
#include <cria/cria-json.h>

#include "serve-request.h"

void
serve_request_clear (ServeRequest *r)
{
  g_clear_pointer (&r->model, g_free);
  g_clear_pointer (&r->messages, g_ptr_array_unref);
  g_clear_pointer (&r->prompts, g_ptr_array_unref);
  g_clear_pointer (&r->stop, g_strfreev);
  g_clear_pointer (&r->schema, serve_schema_free);
}

static gboolean bad (char **param, const char *field, GError **error, const char *format, ...) G_GNUC_PRINTF (4, 5);

static gboolean
bad (char **param, const char *field, GError **error, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *text = g_strdup_vprintf (format, args);
  va_end (args);
  *param = g_strdup (field);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s", text);
  return FALSE;
}

static gboolean
is_number (JsonNode *n)
{
  GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

static gboolean
is_type (JsonNode *n, GType type)
{
  return JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == type;
}

/* A number member within [lo, hi]; absent or null leaves *out. */
static gboolean
get_number (JsonObject *o, const char *name, double lo, double hi, double *out, char **param, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!is_number (n) || json_node_get_double (n) < lo || json_node_get_double (n) > hi)
    return bad (param, name, error, "%s must be a number from %g to %g", name, lo, hi);
  *out = json_node_get_double (n);
  return TRUE;
}

static gboolean
get_int (JsonObject *o, const char *name, gint64 lo, gint64 hi, gint64 *out, char **param, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!is_type (n, G_TYPE_INT64) || json_node_get_int (n) < lo || json_node_get_int (n) > hi)
    return bad (param, name, error, "%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, name, lo,
                hi);
  *out = json_node_get_int (n);
  return TRUE;
}

static gboolean
get_bool (JsonObject *o, const char *name, gboolean *out, char **param, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!is_type (n, G_TYPE_BOOLEAN))
    return bad (param, name, error, "%s must be true or false", name);
  *out = json_node_get_boolean (n);
  return TRUE;
}

/* A string, or a list of strings (at most `most`, at least one). */
static GPtrArray *
get_strings (JsonNode *n, const char *name, guint most, char **param, GError **error)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  if (is_type (n, G_TYPE_STRING)) {
    g_ptr_array_add (out, g_strdup (json_node_get_string (n)));
    return g_steal_pointer (&out);
  }
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  guint len = a ? json_array_get_length (a) : 0;
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!is_type (e, G_TYPE_STRING)) {
      bad (param, name, error, "%s[%u] is not a string%s", name, i,
           is_type (e, G_TYPE_INT64) ? " (token-id prompts are not supported)" : "");
      return NULL;
    }
    g_ptr_array_add (out, g_strdup (json_node_get_string (e)));
  }
  if (!a || len == 0 || len > most) {
    bad (param, name, error, "%s must be a string or a list of 1 to %u strings", name, most);
    return NULL;
  }
  return g_steal_pointer (&out);
}

/* "content" as a string, or as a list of {"type": "text", "text": ...} parts. */
static char *
message_content (JsonNode *n, guint i, char **param, GError **error)
{
  g_autofree char *field = g_strdup_printf ("messages[%u].content", i);
  if (n && is_type (n, G_TYPE_STRING))
    return g_strdup (json_node_get_string (n));
  JsonArray *a = n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  if (!a) {
    bad (param, field, error, "%s must be a string or a list of text parts", field);
    return NULL;
  }
  g_autoptr (GString) text = g_string_new (NULL);
  for (guint k = 0; k < json_array_get_length (a); k++) {
    JsonNode *part = json_array_get_element (a, k);
    JsonObject *p = JSON_NODE_HOLDS_OBJECT (part) ? json_node_get_object (part) : NULL;
    const char *type = p ? cria_json_get_string (p, "type", NULL) : NULL;
    JsonNode *t = p ? json_object_get_member (p, "text") : NULL;
    if (g_strcmp0 (type, "text") || !t || !is_type (t, G_TYPE_STRING)) {
      bad (param, field, error, "%s[%u]: only {\"type\": \"text\", \"text\": ...} parts are supported", field, k);
      return NULL;
    }
    g_string_append (text, json_node_get_string (t));
  }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static gboolean
parse_messages (ServeRequest *r, JsonObject *o, char **param, GError **error)
{
  JsonNode *n = json_object_get_member (o, "messages");
  if (!n)
    return bad (param, "messages", error, "messages is required");
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  if (!a || json_array_get_length (a) == 0)
    return bad (param, "messages", error, "messages must be a non-empty list");
  r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    JsonObject *m = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
    JsonNode *rn = m ? json_object_get_member (m, "role") : NULL;
    const char *role = rn && is_type (rn, G_TYPE_STRING) ? json_node_get_string (rn) : NULL;
    g_autofree char *field = g_strdup_printf ("messages[%u].role", i);
    if (!role)
      return bad (param, field, error, rn ? "%s must be a string, not %s" : "%s is required%s", field,
                  rn ? cria_json_node_kind (rn) : "");
    /* OpenAI's newer name for the system message. */
    if (!strcmp (role, "developer"))
      role = "system";
    if (strcmp (role, "system") && strcmp (role, "user") && strcmp (role, "assistant"))
      return bad (param, field, error, "%s '%s' is not supported (system, developer, user or assistant)", field, role);
    char *content = message_content (json_object_get_member (m, "content"), i, param, error);
    if (!content)
      return FALSE;
    CriaMessage *msg = g_new0 (CriaMessage, 1);
    msg->role = g_strdup (role);
    msg->content = content;
    g_ptr_array_add (r->messages, msg);
  }
  return TRUE;
}

/* Fields cria cannot honour: accepted only at the value that changes
 * nothing (absent, null, false, an empty list). */
static gboolean
refuse_unsupported (JsonObject *o, char **param, GError **error)
{
  static const char *const absent[] = { "tools",  "functions", "function_call", "logit_bias", "echo",
                                        "suffix", "best_of",   "audio",         "prediction", "modalities" };
  for (guint i = 0; i < G_N_ELEMENTS (absent); i++) {
    JsonNode *v = json_object_get_member (o, absent[i]);
    if (!v || JSON_NODE_HOLDS_NULL (v) || (is_type (v, G_TYPE_BOOLEAN) && !json_node_get_boolean (v)) ||
        (JSON_NODE_HOLDS_ARRAY (v) && json_array_get_length (json_node_get_array (v)) == 0) ||
        (JSON_NODE_HOLDS_OBJECT (v) && json_object_get_size (json_node_get_object (v)) == 0))
      continue;
    if (!strcmp (absent[i], "tools") || !strcmp (absent[i], "functions") || !strcmp (absent[i], "function_call"))
      return bad (param, absent[i], error, "%s is not supported: cria serve does not call tools", absent[i]);
    return bad (param, absent[i], error, "%s is not supported", absent[i]);
  }
  JsonNode *choice = json_object_get_member (o, "tool_choice");
  if (choice && !JSON_NODE_HOLDS_NULL (choice) &&
      !(is_type (choice, G_TYPE_STRING) && !strcmp (json_node_get_string (choice), "none")))
    return bad (param, "tool_choice", error, "tool_choice is not supported: cria serve does not call tools");
  return TRUE;
}

/* n, logprobs, penalties and response_format. */
static gboolean
parse_decoding (ServeRequest *r, JsonObject *o, char **param, GError **error)
{
  gint64 n = 1;
  if (!get_int (o, "n", 1, 16, &n, param, error))
    return FALSE;
  r->n = (guint) n;
  if (!get_number (o, "presence_penalty", -2, 2, &r->presence_penalty, param, error) ||
      !get_number (o, "frequency_penalty", -2, 2, &r->frequency_penalty, param, error))
    return FALSE;
  gint64 top = 0;
  if (r->chat) {
    if (!get_bool (o, "logprobs", &r->logprobs, param, error) ||
        !get_int (o, "top_logprobs", 0, SERVE_MAX_TOP, &top, param, error))
      return FALSE;
    JsonNode *t = json_object_get_member (o, "top_logprobs");
    if (t && !JSON_NODE_HOLDS_NULL (t) && !r->logprobs)
      return bad (param, "top_logprobs", error, "top_logprobs needs logprobs: true");
  } else {
    JsonNode *lp = json_object_get_member (o, "logprobs");
    if (!get_int (o, "logprobs", 0, 5, &top, param, error))
      return FALSE;
    r->logprobs = lp && !JSON_NODE_HOLDS_NULL (lp);
  }
  r->top_logprobs = (guint) top;
  JsonNode *rf = json_object_get_member (o, "response_format");
  if (!rf || JSON_NODE_HOLDS_NULL (rf))
    return TRUE;
  JsonObject *f = JSON_NODE_HOLDS_OBJECT (rf) ? json_node_get_object (rf) : NULL;
  const char *type = f ? cria_json_get_string (f, "type", NULL) : NULL;
  if (!type)
    return bad (param, "response_format", error,
                "response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                "{\"type\": \"json_schema\", \"json_schema\": {...}}");
  if (!strcmp (type, "text"))
    return TRUE;
  if (!strcmp (type, "json_object")) {
    r->json = TRUE;
    return TRUE;
  }
  if (strcmp (type, "json_schema") != 0)
    return bad (param, "response_format.type", error,
                "response_format.type '%s' is not text, json_object or json_schema", type);
  JsonNode *js = json_object_get_member (f, "json_schema");
  JsonObject *jo = js && JSON_NODE_HOLDS_OBJECT (js) ? json_node_get_object (js) : NULL;
  JsonNode *schema = jo ? json_object_get_member (jo, "schema") : NULL;
  if (!schema)
    return bad (param, "response_format.json_schema.schema", error,
                "response_format.json_schema.schema is required (a JSON Schema)");
  g_autoptr (GError) why = NULL;
  r->json = TRUE;
  if (!(r->schema = serve_schema_compile (schema, &why)))
    return bad (param, "response_format.json_schema.schema", error, "response_format.json_schema.%s", why->message);
  return TRUE;
}

gboolean
serve_request_parse (ServeRequest *r, gboolean chat, const char *body, gsize len, char **param, GError **error)
{
  memset (r, 0, sizeof *r);
  r->chat = chat;
  r->temperature = r->top_p = -1;
  r->seed = -1;
  *param = NULL;
  g_autoptr (GError) jerr = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (body, (gssize) len, "body", 1, &jerr);
  if (!root) {
    g_autofree char *why = cria_error_quote (jerr->message, -1, 160);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "the body is not valid JSON: %s", why);
    return FALSE;
  }
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "the body must be a JSON object");
    return FALSE;
  }
  JsonObject *o = json_node_get_object (root);
  JsonNode *model = json_object_get_member (o, "model");
  if (model && !JSON_NODE_HOLDS_NULL (model) && !is_type (model, G_TYPE_STRING))
    return bad (param, "model", error, "model must be a string");
  r->model = model && is_type (model, G_TYPE_STRING) ? g_strdup (json_node_get_string (model)) : NULL;
  if (chat && !parse_messages (r, o, param, error))
    return FALSE;
  if (!chat) {
    JsonNode *p = json_object_get_member (o, "prompt");
    if (!p)
      return bad (param, "prompt", error, "prompt is required");
    if (!(r->prompts = get_strings (p, "prompt", 64, param, error)))
      return FALSE;
  }
  gint64 max = 0;
  /* max_completion_tokens is the newer name; it wins when both are given. */
  if (!get_int (o, "max_tokens", 1, G_MAXINT, &max, param, error) ||
      !get_int (o, "max_completion_tokens", 1, G_MAXINT, &max, param, error))
    return FALSE;
  r->max_tokens = (int) max;
  if (!get_number (o, "temperature", 0, 2, &r->temperature, param, error) ||
      !get_number (o, "top_p", 0, 1, &r->top_p, param, error) ||
      !get_int (o, "seed", 0, G_MAXINT64, &r->seed, param, error) ||
      !get_bool (o, "stream", &r->stream, param, error) || !refuse_unsupported (o, param, error) ||
      !parse_decoding (r, o, param, error))
    return FALSE;
  if (r->top_p == 0)
    return bad (param, "top_p", error, "top_p must be above 0");
  JsonNode *stop = json_object_get_member (o, "stop");
  if (stop && !JSON_NODE_HOLDS_NULL (stop)) {
    g_autoptr (GPtrArray) list = get_strings (stop, "stop", 4, param, error);
    if (!list)
      return FALSE;
    g_ptr_array_add (list, NULL);
    r->stop = (char **) g_ptr_array_steal (list, NULL);
  }
  JsonNode *so = json_object_get_member (o, "stream_options");
  if (so && JSON_NODE_HOLDS_OBJECT (so) &&
      !get_bool (json_node_get_object (so), "include_usage", &r->include_usage, param, error))
    return FALSE;
  return TRUE;
}

guint
serve_request_n_choices (const ServeRequest *r)
{
  return (r->chat ? 1 : r->prompts->len) * MAX (r->n, 1);
}

CriaGenRequest
serve_request_gen (const ServeRequest *r, guint index)
{
  guint n = MAX (r->n, 1), k = index % n;
  /* Choices of one prompt must differ when they sample: seeds one apart
   * (from the server's default seed, 0, when the request has none). */
  gint64 seed = k == 0 ? r->seed : MAX (r->seed, 0) + k;
  return (CriaGenRequest){
    .messages = r->chat ? r->messages : NULL,
    .prompt = r->chat ? NULL : g_ptr_array_index (r->prompts, index / n),
    .max_tokens = r->max_tokens,
    .temperature = r->temperature,
    .top_p = r->top_p,
    .seed = seed,
    .stop = (const char *const *) r->stop,
  };
}

void
serve_token_logprob_clear (gpointer p)
{
  ServeTokenLogprob *t = p;
  g_free (t->token);
  for (guint i = 0; i < t->n_top; i++)
    g_free (t->top_token[i]);
}

static void
member_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
member_int (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static char *
finish (JsonBuilder *b)
{
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

char *
serve_error_body (const char *message, const char *type, const char *param, const char *code)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_begin_object (b);
  member_string (b, "message", message);
  member_string (b, "type", type);
  member_string (b, "param", param);
  member_string (b, "code", code);
  json_builder_end_object (b);
  return finish (b);
}

static void
begin_answer (JsonBuilder *b, const ServeAnswer *a, const char *object)
{
  json_builder_begin_object (b);
  member_string (b, "id", a->id);
  member_string (b, "object", object);
  member_int (b, "created", a->created);
  member_string (b, "model", a->model);
}

static void
add_usage (JsonBuilder *b, const ServeAnswer *a, const CriaGenResult *results, guint n)
{
  gint64 prompt = 0, completion = 0;
  for (guint i = 0; i < n; i++) {
    if (i % MAX (a->n, 1) == 0)
      prompt += MAX (results[i].prompt_tokens, 0);
    completion += MAX (results[i].completion_tokens, 0);
  }
  json_builder_set_member_name (b, "usage");
  json_builder_begin_object (b);
  member_int (b, "prompt_tokens", prompt);
  member_int (b, "completion_tokens", completion);
  member_int (b, "total_tokens", prompt + completion);
  json_builder_end_object (b);
}

static void
add_bytes (JsonBuilder *b, const char *text)
{
  json_builder_set_member_name (b, "bytes");
  json_builder_begin_array (b);
  for (const char *p = text; *p; p++)
    json_builder_add_int_value (b, (guchar) *p);
  json_builder_end_array (b);
}

static void
member_double (JsonBuilder *b, const char *name, double value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_double_value (b, value);
}

/* Characters of a token's text; bytes where it is not whole UTF-8 (a
 * byte-fallback piece of a character). */
static gint64
text_length (const char *text)
{
  return g_utf8_validate (text, -1, NULL) ? (gint64) g_utf8_strlen (text, -1) : (gint64) strlen (text);
}

/* The "logprobs" of a choice for tokens [from, to) of `lp` (NULL: null). */
static void
add_logprobs (JsonBuilder *b, const ServeAnswer *a, GArray *lp, guint from, guint to)
{
  json_builder_set_member_name (b, "logprobs");
  if (!lp || !a->logprobs) {
    json_builder_add_null_value (b);
    return;
  }
  json_builder_begin_object (b);
  if (a->chat) {
    json_builder_set_member_name (b, "content");
    json_builder_begin_array (b);
    for (guint i = from; i < to; i++) {
      ServeTokenLogprob *t = &g_array_index (lp, ServeTokenLogprob, i);
      json_builder_begin_object (b);
      member_string (b, "token", t->token);
      member_double (b, "logprob", t->logprob);
      add_bytes (b, t->token);
      json_builder_set_member_name (b, "top_logprobs");
      json_builder_begin_array (b);
      for (guint k = 0; k < t->n_top; k++) {
        json_builder_begin_object (b);
        member_string (b, "token", t->top_token[k]);
        member_double (b, "logprob", t->top_logprob[k]);
        add_bytes (b, t->top_token[k]);
        json_builder_end_object (b);
      }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    member_string (b, "refusal", NULL);
  } else {
    static const char *const lists[] = { "tokens", "token_logprobs", "top_logprobs", "text_offset" };
    /* Offsets into the choice's whole text (a streamed chunk's tokens
     * follow those sent before), in characters as OpenAI counts them. */
    gint64 offset = 0;
    for (guint i = 0; i < from; i++)
      offset += text_length (g_array_index (lp, ServeTokenLogprob, i).token);
    for (guint l = 0; l < G_N_ELEMENTS (lists); l++) {
      json_builder_set_member_name (b, lists[l]);
      json_builder_begin_array (b);
      for (guint i = from; i < to; i++) {
        ServeTokenLogprob *t = &g_array_index (lp, ServeTokenLogprob, i);
        if (l == 0) {
          json_builder_add_string_value (b, t->token);
        } else if (l == 1) {
          json_builder_add_double_value (b, t->logprob);
        } else if (l == 2) {
          json_builder_begin_object (b);
          for (guint k = 0; k < t->n_top; k++)
            member_double (b, t->top_token[k], t->top_logprob[k]);
          json_builder_end_object (b);
        } else {
          json_builder_add_int_value (b, offset);
          offset += text_length (t->token);
        }
      }
      json_builder_end_array (b);
    }
  }
  json_builder_end_object (b);
}

/* Opens choice `index`: its index, and the text as the API in use carries it. */
static void
begin_choice (JsonBuilder *b, const ServeAnswer *a, guint index, const char *key, gboolean role, const char *text,
              GArray *lp, guint from)
{
  json_builder_begin_object (b);
  member_int (b, "index", index);
  if (a->chat) {
    json_builder_set_member_name (b, key);
    json_builder_begin_object (b);
    if (role)
      member_string (b, "role", "assistant");
    if (text)
      member_string (b, "content", text);
    if (role && !strcmp (key, "message"))
      member_string (b, "refusal", NULL);
    json_builder_end_object (b);
  } else {
    member_string (b, "text", text ? text : "");
  }
  add_logprobs (b, a, lp, from, lp ? lp->len : 0);
}

char *
serve_answer_body (const ServeAnswer *a, const CriaGenResult *results, GArray *const *logprobs, guint n)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  begin_answer (b, a, a->chat ? "chat.completion" : "text_completion");
  json_builder_set_member_name (b, "choices");
  json_builder_begin_array (b);
  for (guint i = 0; i < n; i++) {
    begin_choice (b, a, i, "message", TRUE, results[i].text, logprobs ? logprobs[i] : NULL, 0);
    member_string (b, "finish_reason", results[i].finish_reason);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  add_usage (b, a, results, n);
  return finish (b);
}

static char *
event (char *json)
{
  char *text = g_strconcat ("data: ", json, "\n\n", NULL);
  g_free (json);
  return text;
}

/* A chunk up to the opening of its choices. */
static JsonBuilder *
begin_chunk (const ServeAnswer *a)
{
  JsonBuilder *b = json_builder_new ();
  begin_answer (b, a, a->chat ? "chat.completion.chunk" : "text_completion");
  json_builder_set_member_name (b, "choices");
  json_builder_begin_array (b);
  return b;
}

char *
serve_chunk_event (const ServeAnswer *a, guint index, gboolean role, const char *text, const char *finish_reason,
                   GArray *logprobs, guint from)
{
  g_autoptr (JsonBuilder) b = begin_chunk (a);
  begin_choice (b, a, index, "delta", role, text, logprobs, from);
  member_string (b, "finish_reason", finish_reason);
  json_builder_end_object (b);
  json_builder_end_array (b);
  return event (finish (b));
}

char *
serve_usage_event (const ServeAnswer *a, const CriaGenResult *results, guint n)
{
  g_autoptr (JsonBuilder) b = begin_chunk (a);
  json_builder_end_array (b);
  add_usage (b, a, results, n);
  return event (finish (b));
}

char *
serve_models_body (const char *model, gint64 created, gboolean one)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  if (!one) {
    json_builder_begin_object (b);
    member_string (b, "object", "list");
    json_builder_set_member_name (b, "data");
    json_builder_begin_array (b);
  }
  json_builder_begin_object (b);
  member_string (b, "id", model);
  member_string (b, "object", "model");
  member_int (b, "created", created);
  member_string (b, "owned_by", "cria");
  if (one)
    return finish (b);
  json_builder_end_object (b);
  json_builder_end_array (b);
  return finish (b);
}
