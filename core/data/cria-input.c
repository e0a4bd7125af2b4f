/* cria-input.c: line reading and JSON parsing with positions for error messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>

#include "../plugin/cria-module-private.h"
#include "cria-archive-module.h"

#define READ_CHUNK (1 << 20)

struct _CriaInput {
  char *path;
  int fd;
  gboolean own_fd, eof;
  /* Bytes read and not yet given: lines are handed out of this buffer, so a
   * line is never longer than the buffer may grow (CRIA_INPUT_MAX_LINE_BYTES). */
  char *data;
  gsize cap, start, scan, end; /* data holds cap + 1 bytes; scan: no '\n' in [start, scan) */
  guint64 line;
};

static const char *
file_kind (mode_t mode)
{
  return S_ISDIR (mode)    ? "a directory"
         : S_ISCHR (mode)  ? "a character device"
         : S_ISBLK (mode)  ? "a block device"
         : S_ISSOCK (mode) ? "a socket"
                           : "not a regular file";
}

/* A regular file or a pipe; a device (/dev/zero never ends), a directory or
 * a socket is refused before it is opened. */
static gboolean
check_kind (const char *path, const GStatBuf *st, GError **error)
{
  if (S_ISREG (st->st_mode) || S_ISFIFO (st->st_mode))
    return TRUE;
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: is %s, not a file cria can read", path, file_kind (st->st_mode));
  return FALSE;
}

static int
open_checked (const char *path, GStatBuf *st, GError **error)
{
  if (g_stat (path, st) != 0 || !check_kind (path, st, error)) {
    if (error && *error)
      return -1;
    int e = errno;
    g_set_error (error, CRIA_ERROR, e == ENOENT ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO, "%s: %s", path, g_strerror (e));
    return -1;
  }
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, CRIA_ERROR, e == ENOENT ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO, "%s: %s", path, g_strerror (e));
    return -1;
  }
  /* What was opened may not be what was looked at. */
  if (fstat (fd, st) != 0 || !check_kind (path, st, error)) {
    if (!error || !*error)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", path, g_strerror (errno));
    close (fd);
    return -1;
  }
  return fd;
}

gboolean
cria_file_check_readable (const char *path, GError **error)
{
  GStatBuf st;
  if (strcmp (path, "-") == 0)
    return TRUE;
  if (g_stat (path, &st) != 0) {
    int e = errno;
    g_set_error (error, CRIA_ERROR, e == ENOENT ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO, "%s: %s", path, g_strerror (e));
    return FALSE;
  }
  return check_kind (path, &st, error);
}

static char *
format_size (gsize bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static gboolean
over_limit (const char *path, gsize max_bytes, GError **error)
{
  g_autofree char *limit = format_size (max_bytes);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: larger than %s, the limit of a file read whole", path, limit);
  return FALSE;
}

gboolean
cria_file_get_contents (const char *path, gsize max_bytes, char **text, gsize *len, GError **error)
{
  GStatBuf st;
  int fd = open_checked (path, &st, error);
  if (fd < 0)
    return FALSE;
  if (S_ISREG (st.st_mode) && (guint64) st.st_size > max_bytes) {
    close (fd);
    return over_limit (path, max_bytes, error);
  }
  gsize cap = S_ISREG (st.st_mode) ? (gsize) st.st_size + 1 : 65536, n = 0;
  char *buf = g_malloc (cap + 1);
  for (;;) {
    if (n == cap) {
      if (cap > max_bytes) {
        g_free (buf);
        close (fd);
        return over_limit (path, max_bytes, error);
      }
      cap = MIN (cap * 2, max_bytes + 1);
      buf = g_realloc (buf, cap + 1);
    }
    ssize_t got = read (fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int e = errno;
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: read failed: %s", path, g_strerror (e));
      g_free (buf);
      close (fd);
      return FALSE;
    }
    if (got == 0)
      break;
    n += (gsize) got;
  }
  close (fd);
  if (n > max_bytes) {
    g_free (buf);
    return over_limit (path, max_bytes, error);
  }
  buf[n] = '\0';
  *text = buf;
  if (len)
    *len = n;
  return TRUE;
}

CriaInput *
cria_input_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  int fd = 0;
  if (strcmp (path, "-") != 0) {
    GStatBuf st;
    if ((fd = open_checked (path, &st, error)) < 0)
      return NULL;
  }
  CriaInput *in = g_new0 (CriaInput, 1);
  in->path = g_strdup (path);
  in->fd = fd;
  in->own_fd = fd != 0;
  in->cap = READ_CHUNK;
  in->data = g_malloc (in->cap + 1);
  return in;
}

void
cria_input_free (CriaInput *in)
{
  if (!in)
    return;
  if (in->own_fd)
    close (in->fd);
  g_free (in->data);
  g_free (in->path);
  g_free (in);
}

const char *
cria_input_get_path (CriaInput *in)
{
  g_return_val_if_fail (in != NULL, NULL);
  return in->path;
}

/* Reads more after what is buffered, first moving the unread part to the
 * front and growing the buffer when the line fills it. */
static gboolean
fill (CriaInput *in, GError **error)
{
  if (in->start > 0) {
    memmove (in->data, in->data + in->start, in->end - in->start);
    in->end -= in->start;
    in->scan -= in->start;
    in->start = 0;
  }
  if (in->end == in->cap) {
    in->cap *= 2;
    in->data = g_realloc (in->data, in->cap + 1);
  }
  for (;;) {
    ssize_t got = read (in->fd, in->data + in->end, in->cap - in->end);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int e = errno;
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s:%" G_GUINT64_FORMAT ": read failed: %s", in->path,
                   in->line + 1, g_strerror (e));
      return FALSE;
    }
    in->eof = got == 0;
    in->end += (gsize) got;
    return TRUE;
  }
}

gboolean
cria_input_read_line (CriaInput *in, const char **line, gsize *len, GError **error)
{
  g_return_val_if_fail (in != NULL, FALSE);
  g_return_val_if_fail (line != NULL, FALSE);
  g_return_val_if_fail (len != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  char *p, *nl;
  for (;;) {
    nl = memchr (in->data + in->scan, '\n', in->end - in->scan);
    if (nl) {
      p = in->data + in->start;
      in->start = in->scan = (gsize) (nl + 1 - in->data);
      break;
    }
    in->scan = in->end;
    if (in->end - in->start >= CRIA_INPUT_MAX_LINE_BYTES) {
      g_autofree char *limit = format_size (CRIA_INPUT_MAX_LINE_BYTES);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO,
                   "%s:%" G_GUINT64_FORMAT ": a line longer than %s, the limit of a line", in->path, in->line + 1,
                   limit);
      return FALSE;
    }
    if (in->eof) {
      if (in->start == in->end)
        return FALSE;
      p = in->data + in->start;
      nl = in->data + in->end; /* the last line has no '\n'; data has room for the NUL */
      in->start = in->scan = in->end;
      break;
    }
    if (!fill (in, error))
      return FALSE;
  }
  in->line++;
  gsize n = (gsize) (nl - p);
  if (in->line == 1 && n >= 3 && (guchar) p[0] == 0xEF && (guchar) p[1] == 0xBB && (guchar) p[2] == 0xBF) {
    p += 3;
    n -= 3;
  }
  if (n > 0 && p[n - 1] == '\r')
    n--;
  p[n] = '\0';
  *line = p;
  *len = n;
  return TRUE;
}

guint64
cria_input_get_line_number (CriaInput *in)
{
  g_return_val_if_fail (in != NULL, 0);
  return in->line;
}

guint64
cria_archive_budget (const char *path)
{
  g_return_val_if_fail (path != NULL, 0);
  GStatBuf st;
  guint64 size = g_stat (path, &st) == 0 ? (guint64) st.st_size : 0;
  return size * CRIA_ARCHIVE_EXPANSION + CRIA_ARCHIVE_SLACK_BYTES;
}

GBytes *
cria_archive_read_member (gpointer archive, const char *where, guint64 max_bytes, guint64 *budget, GError **error)
{
  g_return_val_if_fail (archive != NULL, NULL);
  g_return_val_if_fail (where != NULL, NULL);
  g_return_val_if_fail (budget != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaArchiveModule *ar = cria_archive_module ("reading archives", error);
  if (!ar)
    return NULL;
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  guint8 chunk[1 << 16];
  la_ssize_t n;
  while ((n = ar->read_data (archive, chunk, sizeof chunk)) > 0) {
    if ((guint64) buf->len + (guint64) n > max_bytes) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: the member expands past cria's limit of %" G_GUINT64_FORMAT " bytes", where, max_bytes);
      return NULL;
    }
    if ((guint64) n > *budget) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: the archive expands past %d times its size (plus %" G_GUINT64_FORMAT
                   " MiB): refused as a decompression bomb",
                   where, CRIA_ARCHIVE_EXPANSION, CRIA_ARCHIVE_SLACK_BYTES >> 20);
      return NULL;
    }
    *budget -= (guint64) n;
    g_byte_array_append (buf, chunk, (guint) n);
  }
  if (n < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s", where, ar->error_string (archive));
    return NULL;
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

const CriaArchiveModule *
cria_archive_module (const char *purpose, GError **error)
{
  return cria_module_load ("archive", sizeof (CriaArchiveModule), purpose, error);
}
