/* serve-test.h: what the parts of test-serve share: the servers it runs
 * (`cria serve` as child processes), requests to them, the reference text
 * of `cria generate`, and the cases each part adds. */
#pragma once

#include <string.h>
#include <sys/resource.h>

#include <libsoup/soup.h>

#include <cria/cria-generator.h>

#include "cria-test.h"

extern char *model_dir;
extern CriaRegistry *reg;

typedef struct {
  GSubprocess *proc;
  char *url; /* http://127.0.0.1:PORT/v1 */
} Server;

/* Started before the cases run, stopped by the last one (test_stop_servers). */
extern Server main_server, busy_server, guard_server;

/* The child's descriptor limit, for the EMFILE case (0: unchanged). */
extern rlim_t child_nofile;

void server_start (Server *s, const char *const *extra);
/* SIGTERM stops it cleanly: exit status 0. */
int server_stop (Server *s);

typedef struct {
  guint status;
  char *body;
  char *retry_after;
  JsonNode *json; /* the body parsed, when it is JSON */
} Reply;

static inline void
reply_clear (Reply *r)
{
  g_free (r->body);
  g_free (r->retry_after);
  if (r->json)
    json_node_unref (r->json);
  memset (r, 0, sizeof *r);
}

/* One request on its own session, with headers given as name, value, ...,
 * NULL; the answer's headers come back in *got. */
guint request_with (const Server *s, const char *method, const char *path, const char *body, const char *const *headers,
                    SoupMessageHeaders **got, char **answer_body);
/* request_with, the answer in `r`. `body` NULL: GET. */
void request (const Server *s, const char *method, const char *path, const char *body, Reply *r);
JsonObject *obj (const Reply *r);
JsonObject *choice (const Reply *r, guint i);
const char *or_null (JsonObject *o, const char *name);
/* An OpenAI error answer with this status, param and code. */
void assert_error (const Server *s, const char *method, const char *path, const char *body, guint status,
                   const char *param, const char *code);
/* What `cria generate --json` writes for the prompt (`stop` may also be "-p"
 * with a format). */
JsonObject *generate (const char *prompt, const char *max, const char *stop);
/* The events of a text/event-stream body, each "data: ..." payload. */
GPtrArray *events (const char *body);
CriaGenRequest gen_request (const char *prompt, GPtrArray *messages, int max);
char *run_generator (const char *spec, const CriaGenRequest *req, const char *cache);

/* serve-test-errors.c: refusals, and the options that guard the server */
void test_errors (void);
void test_body_too_large (void);
void test_key_cors_schema (void);
void test_bad_start (void);
/* serve-test-load.c: clients at once, batching, a full queue, hang-ups, stop */
void test_concurrent (void);
void test_batch_join_and_hang_up (void);
void test_queue_full (void);
void test_hang_up (void);
void test_stop_servers (void);
/* serve-test-hostile.c: hostile clients */
void test_dropped_connections (void);
void test_accept_after_emfile (void);
void test_timeouts (void);
void test_body_over_limit (void);
void test_bad_framing (void);
void test_nul_in_content (void);
