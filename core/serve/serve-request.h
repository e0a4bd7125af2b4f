/* serve-request.h: the OpenAI request and response bodies of `cria serve`
 * (no HTTP here: the parsing and the JSON, testable on their own). */
#pragma once

#include <cria/cria.h>

#include "serve-grammar.h"

typedef struct {
  gboolean chat;
  gboolean stream, include_usage;
  char *model;         /* NULL when the request names none */
  GPtrArray *messages; /* chat: CriaMessage* */
  GPtrArray *prompts;  /* completions: char*, one choice each */
  int max_tokens;      /* 0: the server's default */
  double temperature;  /* < 0: the server's default */
  double top_p;        /* < 0: the server's default */
  gint64 seed;         /* < 0: none */
  char **stop;         /* NULL-terminated, or NULL */
  guint n;             /* choices per prompt */
  gboolean logprobs;   /* per-token log-probabilities in the answer */
  guint top_logprobs;  /* alternatives per token (chat: top_logprobs; completions: logprobs) */
  double presence_penalty, frequency_penalty;
  gboolean json;       /* response_format json_object or json_schema */
  ServeSchema *schema; /* json_schema's; NULL: any object */
} ServeRequest;

void serve_request_clear (ServeRequest *r);

/* Reads a /v1/chat/completions (chat) or /v1/completions body. On a bad
 * request returns FALSE with *param set to the offending field (or NULL). */
gboolean serve_request_parse (ServeRequest *r, gboolean chat, const char *body, gsize len, char **param,
                              GError **error);

/* The CriaGenRequest of choice `index` (prompt index / n); borrows from
 * `r`. Choices of one prompt draw with seeds one apart. */
CriaGenRequest serve_request_gen (const ServeRequest *r, guint index);
guint serve_request_n_choices (const ServeRequest *r);

/* {"error": {"message", "type", "param", "code"}} */
char *serve_error_body (const char *message, const char *type, const char *param, const char *code);

/* What every answer of one request carries. */
typedef struct {
  const char *id, *model;
  gint64 created;
  gboolean chat;
  gboolean logprobs; /* the request asked for them */
  guint n;           /* choices per prompt: the prompt counts once in the usage */
} ServeAnswer;

/* The log-probabilities of one generated token. */
#define SERVE_MAX_TOP 20
typedef struct {
  char *token;
  float logprob;
  guint n_top;
  char *top_token[SERVE_MAX_TOP];
  float top_logprob[SERVE_MAX_TOP];
} ServeTokenLogprob;
void serve_token_logprob_clear (gpointer p);

/* A whole answer: `results` holds one result per choice, `logprobs`
 * (NULL, or one GArray of ServeTokenLogprob per choice) their tokens'. */
char *serve_answer_body (const ServeAnswer *a, const CriaGenResult *results, GArray *const *logprobs, guint n);
/* One server-sent event: "data: {chunk}\n\n". With `role`, the chat chunk
 * that opens a choice; `finish` ends it (text NULL); `usage` (results of all
 * choices) the usage chunk of stream_options.include_usage. */
char *serve_chunk_event (const ServeAnswer *a, guint index, gboolean role, const char *text, const char *finish,
                         GArray *logprobs, guint from);
char *serve_usage_event (const ServeAnswer *a, const CriaGenResult *results, guint n);

/* GET /v1/models, and with `one` GET /v1/models/{id} */
char *serve_models_body (const char *model, gint64 created, gboolean one);
