/* serve-test.c: the servers test-serve runs and the requests it sends them
 * (serve-test.h). */
#include <string.h>

#include "serve-test.h"

char *model_dir;
CriaRegistry *reg;

Server main_server, busy_server, guard_server;

rlim_t child_nofile;

static void
child_setup (gpointer data)
{
  cria_test_die_with_parent (NULL);
  if (child_nofile) {
    struct rlimit r = { child_nofile, child_nofile };
    setrlimit (RLIMIT_NOFILE, &r);
  }
}

void
server_start (Server *s, const char *const *extra)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *const base[] = { cria_test_env ("CRIA_BIN"), "serve", "--model", model_dir, "--port", "0", NULL };
  for (guint i = 0; base[i]; i++)
    g_ptr_array_add (argv, (gpointer) base[i]);
  for (guint i = 0; extra && extra[i]; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  s->url = cria_test_start_listener (launcher, (const char *const *) argv->pdata, &s->proc);
}

/* SIGTERM stops it cleanly: exit status 0. */
int
server_stop (Server *s)
{
  int status = cria_test_stop_listener (s->proc);
  g_clear_object (&s->proc);
  g_clear_pointer (&s->url, g_free);
  return status;
}

/* One request on its own session (sessions are per thread), with headers
 * given as name, value, ..., NULL; the answer's headers come back in *got.
 * The timeout only guards against a hang: queued requests of the busy server
 * wait for each other, which under the sanitizers on a loaded machine took
 * longer than a minute. */
guint
request_with (const Server *s, const char *method, const char *path, const char *body, const char *const *headers,
              SoupMessageHeaders **got, char **answer_body)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 600, NULL);
  g_autofree char *url = g_strconcat (s->url, path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  for (guint i = 0; headers && headers[i]; i += 2)
    soup_message_headers_replace (soup_message_get_request_headers (msg), headers[i], headers[i + 1]);
  if (body) {
    g_autoptr (GBytes) payload = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", payload);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  if (got)
    *got = g_boxed_copy (SOUP_TYPE_MESSAGE_HEADERS, soup_message_get_response_headers (msg));
  if (answer_body)
    *answer_body = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  return soup_message_get_status (msg);
}

/* request_with, the answer in `r`. `body` NULL: GET. */
void
request (const Server *s, const char *method, const char *path, const char *body, Reply *r)
{
  memset (r, 0, sizeof *r);
  g_autoptr (SoupMessageHeaders) got = NULL;
  r->status = request_with (s, method, path, body, NULL, &got, &r->body);
  r->retry_after = g_strdup (soup_message_headers_get_one (got, "Retry-After"));
  r->json = json_from_string (r->body, NULL);
}

JsonObject *
obj (const Reply *r)
{
  CU_ASSERT_FATAL (r->json && JSON_NODE_HOLDS_OBJECT (r->json));
  return json_node_get_object (r->json);
}

JsonObject *
choice (const Reply *r, guint i)
{
  JsonArray *choices = json_object_get_array_member (obj (r), "choices");
  CU_ASSERT_FATAL (choices && json_array_get_length (choices) > i);
  return json_array_get_object_element (choices, i);
}

const char *
or_null (JsonObject *o, const char *name)
{
  const char *v = json_object_get_null_member (o, name) ? NULL : json_object_get_string_member (o, name);
  return v ? v : "(null)";
}

/* An OpenAI error answer with this status, param and code. */
void
assert_error (const Server *s, const char *method, const char *path, const char *body, guint status, const char *param,
              const char *code)
{
  Reply r;
  request (s, method, path, body, &r);
  CU_ASSERT_EQUAL (r.status, status);
  JsonObject *e = json_object_get_object_member (obj (&r), "error");
  CU_ASSERT_FATAL (e != NULL);
  CU_ASSERT (strlen (json_object_get_string_member (e, "message")) > 0);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (e, "type"),
                          status >= 500 ? "server_error" : "invalid_request_error");
  CU_ASSERT_STRING_EQUAL (or_null (e, "param"), param ? param : "(null)");
  CU_ASSERT_STRING_EQUAL (or_null (e, "code"), code ? code : "(null)");
  if (r.status != status || g_strcmp0 (or_null (e, "code"), code ? code : "(null)"))
    printf ("\n%s %s: %u %s\n", method, path, r.status, r.body);
  reply_clear (&r);
}

/* What `cria generate --json` writes for the prompt: the reference text
 * (BOS added, as by default; `stop` may also be "-p" with a format). */
JsonObject *
generate (const char *prompt, const char *max, const char *stop)
{
  gboolean format = stop && !strcmp (stop, "-p");
  const char *args[] = { "generate",
                         "--model",
                         model_dir,
                         "--json",
                         "-n",
                         max,
                         prompt,
                         stop ? (format ? "-p" : "--stop") : NULL,
                         format ? "llama2" : stop,
                         NULL };
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &out, NULL), 0);
  JsonNode *node = json_from_string (out, NULL);
  CU_ASSERT_FATAL (node && JSON_NODE_HOLDS_OBJECT (node));
  JsonObject *o = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return o;
}

/* The events of a text/event-stream body, each "data: ..." payload. */
GPtrArray *
events (const char *body)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) parts = g_strsplit (body, "\n\n", -1);
  for (guint i = 0; parts[i]; i++) {
    if (!*parts[i])
      continue;
    CU_ASSERT (g_str_has_prefix (parts[i], "data: "));
    g_ptr_array_add (out, g_strdup (parts[i] + 6));
  }
  return out;
}

CriaGenRequest
gen_request (const char *prompt, GPtrArray *messages, int max)
{
  return (CriaGenRequest){
    .prompt = prompt, .messages = messages, .max_tokens = max, .temperature = -1, .top_p = -1, .seed = -1
  };
}

char *
run_generator (const char *spec, const CriaGenRequest *req, const char *cache)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaGenerator) g = cria_generator_new (reg, spec, &error);
  g_assert_no_error (error);
  if (cache)
    cria_generator_set_cache_dir (g, cache);
  CriaGenResult res;
  gboolean ok = cria_generator_generate (g, req, &res, NULL, &error);
  g_assert_no_error (error);
  CU_ASSERT_FATAL (ok);
  char *text = g_steal_pointer (&res.text);
  cria_gen_result_clear (&res);
  return text;
}
