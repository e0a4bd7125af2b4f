/* fake-openai.h: a scripted OpenAI-compatible HTTP server on loopback, for
 * tests of generators and of the stages that use them.
 *
 * The server runs in its own thread and hands every request to the test's
 * handler, which answers with cria_fake_openai_answer() (the text in OpenAI's
 * shape) or cria_fake_openai_respond() (any status and body). It lives until
 * the test program ends. */
#pragma once

#include <libsoup/soup.h>

typedef void (*CriaFakeOpenAIHandler) (SoupServerMessage *msg, const char *path, gpointer data);

/* Starts the server; returns its base URL, "http://127.0.0.1:PORT" (transfer full). */
char *cria_fake_openai_start (CriaFakeOpenAIHandler handler, gpointer data);

/* What the request said: the last message's content (chat) or the prompt
 * (completions); transfer full. */
char *cria_fake_openai_said (SoupServerMessage *msg, gboolean chat);
/* Its "seed" member, or -1. */
gint64 cria_fake_openai_seed (SoupServerMessage *msg);

/* Answers 200 with `text` as the first choice, a finish reason ("stop" when
 * NULL) and a usage of 5 prompt and 7 completion tokens. */
void cria_fake_openai_answer (SoupServerMessage *msg, gboolean chat, const char *text, const char *finish_reason);
void cria_fake_openai_respond (SoupServerMessage *msg, guint status, const char *body);
