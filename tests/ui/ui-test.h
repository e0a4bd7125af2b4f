/* ui-test.h: what the tests of `cria ui` share: a working directory with a
 * tiny model and records, the server as a child process, HTTP requests. */
#pragma once

#include <libsoup/soup.h>

#include "cria-test.h"

typedef struct {
  char *dir;   /* the working directory (temporary) */
  char *model; /* dir/model: tiny-gpt2 with a byte tokenizer */
  GSubprocess *proc;
  char *url; /* http://127.0.0.1:PORT/ */
  const char *key;
} UiTest;

/* Makes the working directory: model/, train.jsonl (24 records). */
void ui_test_setup (UiTest *t);
/* Starts `cria ui --port 0 [--api-key KEY] DIR`. */
void ui_test_start (UiTest *t, const char *key);
/* SIGTERM; returns the exit status. */
int ui_test_stop (UiTest *t);
void ui_test_teardown (UiTest *t);

typedef struct {
  guint status;
  char *body;
  JsonNode *json;
} UiReply;
void ui_reply_clear (UiReply *r);
/* `body` NULL: GET; `key` NULL: none sent. */
void ui_request (UiTest *t, const char *method, const char *path, const char *body, const char *key, UiReply *r);
JsonObject *ui_reply_object (const UiReply *r);

/* Runs `cria eval --compare` of the adapter `run` on three records into DIR/eval. */
void ui_test_eval (UiTest *t, const char *run);
/* Reads the server-sent events of GET path until `until` returns TRUE for
 * the text so far, or `seconds` pass; returns the text. */
char *ui_read_events (UiTest *t, const char *path, gboolean (*until) (const char *text), double seconds);
