/* cria-input.c: line reading and JSON parsing with positions for error messages. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>

struct _CriaInput {
  char *path;
  FILE *stream;
  char *buf;
  size_t cap;
  guint64 line;
};

CriaInput *
cria_input_open (const char *path, GError **error)
{
  FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "rb");
  if (!f) {
    int e = errno;
    g_set_error (error, CRIA_ERROR, e == ENOENT ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO, "%s: %s", path, g_strerror (e));
    return NULL;
  }
  CriaInput *in = g_new0 (CriaInput, 1);
  in->path = g_strdup (path);
  in->stream = f;
  return in;
}

void
cria_input_free (CriaInput *in)
{
  if (!in)
    return;
  if (in->stream && in->stream != stdin)
    fclose (in->stream);
  free (in->buf);
  g_free (in->path);
  g_free (in);
}

const char *
cria_input_get_path (CriaInput *in)
{
  return in->path;
}

gboolean
cria_input_read_line (CriaInput *in, const char **line, gsize *len, GError **error)
{
  ssize_t n = getline (&in->buf, &in->cap, in->stream);
  if (n < 0) {
    if (ferror (in->stream)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s:%" G_GUINT64_FORMAT ": read failed: %s", in->path,
                   in->line + 1, g_strerror (errno));
    }
    return FALSE;
  }
  in->line++;
  char *p = in->buf;
  if (in->line == 1 && n >= 3 && (guchar) p[0] == 0xEF && (guchar) p[1] == 0xBB && (guchar) p[2] == 0xBF) {
    p += 3;
    n -= 3;
  }
  if (n > 0 && p[n - 1] == '\n')
    n--;
  if (n > 0 && p[n - 1] == '\r')
    n--;
  p[n] = '\0';
  *line = p;
  *len = (gsize) n;
  return TRUE;
}

guint64
cria_input_get_line_number (CriaInput *in)
{
  return in->line;
}

/* json-glib turns a lone surrogate escape (\ud800) into bytes that are not
 * UTF-8; such text cannot be written back as JSON, so it is refused here. */
static gboolean
strings_valid (JsonNode *node)
{
  if (JSON_NODE_HOLDS_OBJECT (node)) {
    JsonObjectIter it;
    const char *name;
    JsonNode *member;
    json_object_iter_init (&it, json_node_get_object (node));
    while (json_object_iter_next (&it, &name, &member))
      if (!g_utf8_validate (name, -1, NULL) || !strings_valid (member))
        return FALSE;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    for (guint i = 0; i < json_array_get_length (a); i++)
      if (!strings_valid (json_array_get_element (a, i)))
        return FALSE;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return g_utf8_validate (json_node_get_string (node), -1, NULL);
  return TRUE;
}

JsonNode *
cria_json_parse (const char *text, gssize len, const char *file, guint64 line, GError **error)
{
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  const char *bad = NULL;
  if (!g_utf8_validate_len (text, n, &bad)) {
    /* Columns count bytes from 1, as compilers do. */
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "%s:%" G_GUINT64_FORMAT ":%ld: invalid UTF-8",
                 file, line, (long) (bad - text) + 1);
    return NULL;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) jerr = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) n, &jerr)) {
    /* json-glib says "<data>:L:C: Parse error: ..."; re-anchor it on the file. */
    const char *msg = jerr->message;
    guint64 l = 1, c = 1;
    if (g_str_has_prefix (msg, "<data>:")) {
      char *end = NULL;
      l = g_ascii_strtoull (msg + 7, &end, 10);
      if (end && *end == ':')
        c = g_ascii_strtoull (end + 1, &end, 10);
      const char *rest = end ? strchr (end, ' ') : NULL;
      msg = rest ? rest + 1 : msg;
    }
    g_autofree char *shown = cria_error_quote (msg, -1, 200);
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX,
                 "%s:%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT ": %s", file, line + l - 1, c, shown);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX, "%s:%" G_GUINT64_FORMAT ":1: empty JSON text",
                 file, line);
    return NULL;
  }
  if (!strings_valid (root)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING,
                 "%s:%" G_GUINT64_FORMAT ": a \\u escape is a lone surrogate, which is not a character", file, line);
    return NULL;
  }
  return json_node_copy (root);
}
