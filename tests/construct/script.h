/* script.h: what the construct tests share: a scripted OpenAI-compatible
 * server (fake-openai.h) whose answers depend on what cria's prompt files
 * ask (continue a list, classify, write an instance, evolve, fill a slot,
 * answer), and helpers that run pipelines and read their summaries. */
#pragma once

#include "cria-test.h"
#include "fake-openai.h"

extern CriaRegistry *reg;
extern char *base;      /* the server, http://127.0.0.1:PORT */
extern char *tmp;       /* this run's temporary directory */
extern GMutex lock;     /* guards the script against the server's thread */
extern GPtrArray *seen; /* every request's text, in order */
extern int down_after;  /* answer this many requests, then 503 (-1: never) */

/* One suite whose setup starts the server and makes the registry and tmp. */
void script_add_suite (const char *name, const CriaTestCase *cases);

/* Forgets every answer, request and count. */
void script_reset (void);
/* The next answer to a "continue the list" request, with its finish reason (NULL: stop). */
void script_list (const char *text, const char *finish);
/* The answer when a request of `kind` (classify, instance, evolve, slot, answer) is about `key`. */
void script_answer (const char *kind, const char *key, const char *text);
/* Requests answered since the last reset. */
int requests (void);

/* generator="openai base-url=... concurrency=1 retries=0 backoff=0": one request at a time, in order. */
char *gen_spec (void);
char *fixture (const char *name);
char *in_tmp (const char *name);
/* Runs a pipeline (on-error=skip, seed 1); returns its summary or NULL with *error. */
JsonNode *run (const char *description, GError **error);
/* The same, failing the test (fatally) when the run fails. */
JsonNode *run_ok (const char *description);
gint64 reason (JsonNode *summary, guint stage, const char *name);
gint64 stage_count (JsonNode *summary, guint stage, const char *what);
GPtrArray *read_records (const char *path);
/* Pairs of reason and count as text, ending with NULL. */
void expect_reasons (JsonNode *summary, guint stage, const char *const *pairs);
void expect_same_rerun (const char *desc, const char *out);
/* The pipeline fails with one line holding `fragment`. */
void expect_error (const char *desc, const char *fragment);
