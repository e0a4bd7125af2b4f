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
  char *stream_buf; /* glibc ignores a size given to setvbuf without a buffer */
  char *buf;
  size_t cap;
  guint64 line;
};

CriaInput *
cria_input_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "rb");
  if (!f) {
    int e = errno;
    g_set_error (error, CRIA_ERROR, e == ENOENT ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO, "%s: %s", path, g_strerror (e));
    return NULL;
  }
  CriaInput *in = g_new0 (CriaInput, 1);
  in->path = g_strdup (path);
  in->stream = f;
  if (f != stdin) {
    in->stream_buf = g_malloc (1 << 20);
    setvbuf (f, in->stream_buf, _IOFBF, 1 << 20);
  }
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
  g_free (in->stream_buf);
  g_free (in->path);
  g_free (in);
}

const char *
cria_input_get_path (CriaInput *in)
{
  g_return_val_if_fail (in != NULL, NULL);
  return in->path;
}

gboolean
cria_input_read_line (CriaInput *in, const char **line, gsize *len, GError **error)
{
  g_return_val_if_fail (in != NULL, FALSE);
  g_return_val_if_fail (line != NULL, FALSE);
  g_return_val_if_fail (len != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
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
  g_return_val_if_fail (in != NULL, 0);
  return in->line;
}
