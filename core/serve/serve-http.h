/* serve-http.h: the checks `cria serve` makes on a request before libsoup
 * reads its body or cria parses it (no sockets here, so that they can be
 * tested and fuzzed on their own). */
#pragma once

#include <glib.h>
#include <libsoup/soup.h>

/* The framing of a request (RFC 9112 §6): a Content-Length that is not a
 * number, two that disagree, or one beside a Transfer-Encoding is 400; a
 * declared length over `max_body` is 413. Returns 0 when the headers may be
 * read on, else the status, with *why (a sentence) and *code (OpenAI's
 * error code) set. */
guint serve_http_check_headers (SoupMessageHeaders *headers, gsize max_body, char **why, const char **code);

/* The path of the first string of a JSON text that holds a \u0000 escape,
 * as OpenAI names fields ("messages[0].content", "prompt[1]"), or NULL when
 * none does. A C string ends at the NUL, so such a prompt would be cut
 * short without a word. The scan is lexical: it does not check that the
 * text is JSON (the parser does that). */
char *serve_json_find_nul (const char *text, gsize len);
