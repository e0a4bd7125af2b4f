/* serve-http.c: request checks of `cria serve` that come before its JSON.
 *
 *   printf 'POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n' | nc 127.0.0.1 8080
 *
 * answers 400 instead of waiting for a body whose length is unknown. */
#include "config.h"

#include <string.h>

#include "serve-http.h"

/* One element of a Content-Length list: digits only, at most 18 of them
 * (so the value fits a gint64 with room to spare). */
static gboolean
parse_length (const char *s, gsize n, guint64 *out)
{
  while (n && (*s == ' ' || *s == '\t'))
    s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  if (n == 0 || n > 18)
    return FALSE;
  guint64 v = 0;
  for (gsize i = 0; i < n; i++) {
    if (!g_ascii_isdigit (s[i]))
      return FALSE;
    v = v * 10 + (guint64) (s[i] - '0');
  }
  *out = v;
  return TRUE;
}

guint
serve_http_check_headers (SoupMessageHeaders *headers, gsize max_body, char **why, const char **code)
{
  SoupMessageHeadersIter it;
  const char *name, *value;
  gboolean have_length = FALSE, have_te = FALSE;
  guint64 length = 0;
  soup_message_headers_iter_init (&it, headers);
  while (soup_message_headers_iter_next (&it, &name, &value)) {
    if (!g_ascii_strcasecmp (name, "Transfer-Encoding"))
      have_te = TRUE;
    if (g_ascii_strcasecmp (name, "Content-Length") != 0)
      continue;
    /* A repeated header and a comma list are the same thing (RFC 9110
     * §5.3); equal values may be taken as one (§8.6). */
    for (const char *p = value;;) {
      const char *comma = strchr (p, ',');
      gsize n = comma ? (gsize) (comma - p) : strlen (p);
      guint64 v;
      if (!parse_length (p, n, &v)) {
        *why = g_strdup ("Content-Length is not a number of bytes");
        *code = "invalid_content_length";
        return SOUP_STATUS_BAD_REQUEST;
      }
      if (have_length && v != length) {
        *why = g_strdup ("two Content-Length values that differ: the body's length is unknown (RFC 9112 §6.3)");
        *code = "invalid_content_length";
        return SOUP_STATUS_BAD_REQUEST;
      }
      have_length = TRUE;
      length = v;
      if (!comma)
        break;
      p = comma + 1;
    }
  }
  if (have_length && have_te) {
    /* Which one frames the body is what request smuggling plays on. */
    *why = g_strdup ("both Content-Length and Transfer-Encoding: the body's length is ambiguous (RFC 9112 §6.1)");
    *code = "invalid_content_length";
    return SOUP_STATUS_BAD_REQUEST;
  }
  if (have_length && length > max_body) {
    *why = g_strdup_printf ("the body is larger than %" G_GSIZE_FORMAT " bytes", max_body);
    *code = "body_too_large";
    return SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE;
  }
  return 0;
}

/* Where the scan is: one level per open object or array. */
typedef struct {
  gboolean object;
  gboolean want_key; /* object: the next string is a member's name */
  guint index;       /* array: the element being read */
  const char *key;   /* object: the member being read, as written */
  gsize key_len;
} Level;

#define PATH_DEPTH 64 /* deeper levels are named "..." */
#define KEY_SHOWN 64

static char *
path_of (const Level *levels, guint depth)
{
  GString *path = g_string_new (NULL);
  for (guint i = 0; i < depth; i++) {
    if (i >= PATH_DEPTH) {
      g_string_append (path, "...");
      break;
    }
    const Level *l = &levels[i];
    if (!l->object) {
      g_string_append_printf (path, "[%u]", l->index);
    } else if (l->key) {
      if (path->len)
        g_string_append_c (path, '.');
      g_string_append_len (path, l->key, (gssize) MIN (l->key_len, KEY_SHOWN));
    }
  }
  /* A string that is the whole text: not a request, which the parser says. */
  if (!path->len) {
    g_string_free (path, TRUE);
    return NULL;
  }
  return g_string_free (path, FALSE);
}

char *
serve_json_find_nul (const char *text, gsize len)
{
  gboolean any = FALSE;
  for (const char *p = text; !any && (p = memchr (p, '\\', len - (gsize) (p - text))); p++)
    any = (gsize) (text + len - p) >= 6 && !memcmp (p, "\\u0000", 6);
  if (!any)
    return NULL;
  g_autoptr (GArray) levels = g_array_new (FALSE, TRUE, sizeof (Level));
  for (gsize i = 0; i < len; i++) {
    char c = text[i];
    Level *top = levels->len ? &g_array_index (levels, Level, levels->len - 1) : NULL;
    if (c == '{' || c == '[') {
      Level l = { .object = c == '{', .want_key = c == '{' };
      g_array_append_val (levels, l);
    } else if (c == '}' || c == ']') {
      if (levels->len)
        g_array_set_size (levels, levels->len - 1);
    } else if (c == ',' && top) {
      if (top->object)
        top->want_key = TRUE, top->key = NULL;
      else
        top->index++;
    } else if (c == '"') {
      gsize start = ++i;
      gboolean nul = FALSE;
      for (; i < len && text[i] != '"'; i++) {
        if (text[i] == '\\' && i + 1 < len) {
          if (i + 5 < len && !memcmp (text + i + 1, "u0000", 5))
            nul = TRUE;
          i++;
        }
      }
      gboolean key = top && top->object && top->want_key;
      if (key) {
        top->key = text + start;
        top->key_len = i - start;
        top->want_key = FALSE;
      }
      if (nul)
        return path_of ((Level *) levels->data, levels->len);
    }
  }
  return NULL;
}
