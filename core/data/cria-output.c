/* cria-output.c: atomic output files (temporary name, rename when complete). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <cria/cria-error.h>
#include <cria/cria-output.h>

struct _CriaOutput {
  char *path;     /* the target */
  char *tmp_path; /* NULL for stdout */
  FILE *stream;
  char *buffer; /* the stream's: glibc ignores a size given without one */
};

/* Temporary files still open, for cria_output_abort_all() from a signal. */
G_LOCK_DEFINE_STATIC (open_lock);
static GPtrArray *open_outputs;

static void
track (CriaOutput *out, gboolean add)
{
  G_LOCK (open_lock);
  if (!open_outputs)
    open_outputs = g_ptr_array_new ();
  if (add)
    g_ptr_array_add (open_outputs, out);
  else
    g_ptr_array_remove_fast (open_outputs, out);
  G_UNLOCK (open_lock);
}

/* Temporaries of `base` left by runs that died (kill -9, a crash, a power
 * cut) are removed by the next run writing the same output. A writer holds
 * flock() on its temporary while it lives and names it with its pid; one is
 * stale when its lock can be taken and its pid is not alive, so neither a
 * live writer nor one between mkstemp and flock loses its file. */
static void
remove_stale (const char *dir, const char *base)
{
  g_autofree char *prefix = g_strdup_printf (".%s.tmp-", base);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    if (!g_str_has_prefix (name, prefix))
      continue;
    char *end;
    long pid = strtol (name + strlen (prefix), &end, 10);
    if (end != name + strlen (prefix) && *end == '-' && pid > 0 && (kill ((pid_t) pid, 0) == 0 || errno != ESRCH))
      continue;
    g_autofree char *path = g_build_filename (dir, name, NULL);
    int fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      continue;
    if (flock (fd, LOCK_EX | LOCK_NB) == 0)
      g_unlink (path);
    close (fd);
  }
}

CriaOutput *
cria_output_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  CriaOutput *out = g_new0 (CriaOutput, 1);
  out->path = g_strdup (path);
  if (strcmp (path, "-") == 0) {
    out->stream = stdout;
    return out;
  }
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  remove_stale (dir, base);
  out->tmp_path = g_strdup_printf ("%s/.%s.tmp-%ld-XXXXXX", dir, base, (long) getpid ());
  int fd = g_mkstemp (out->tmp_path);
  if (fd >= 0)
    flock (fd, LOCK_EX | LOCK_NB);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create a file in %s: %s", path, dir, g_strerror (e));
    g_free (out->tmp_path);
    g_free (out->path);
    g_free (out);
    return NULL;
  }
  out->stream = fdopen (fd, "wb");
  out->buffer = g_malloc (1 << 20);
  setvbuf (out->stream, out->buffer, _IOFBF, 1 << 20);
  track (out, TRUE);
  return out;
}

FILE *
cria_output_get_stream (CriaOutput *out)
{
  g_return_val_if_fail (out != NULL, NULL);
  return out->stream;
}

const char *
cria_output_get_path (CriaOutput *out)
{
  g_return_val_if_fail (out != NULL, NULL);
  return out->path;
}

static gboolean
check_stream (CriaOutput *out, GError **error)
{
  if (ferror (out->stream)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: write failed: %s", out->path, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_output_write (CriaOutput *out, const void *data, gsize len, GError **error)
{
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (len && fwrite (data, 1, len, out->stream) != len)
    return check_stream (out, error) && FALSE;
  return TRUE;
}

gboolean
cria_output_printf (CriaOutput *out, GError **error, const char *format, ...)
{
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (format != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  va_list ap;
  va_start (ap, format);
  int n = vfprintf (out->stream, format, ap);
  va_end (ap);
  if (n < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: write failed: %s", out->path, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

static void
output_free (CriaOutput *out)
{
  g_free (out->path);
  g_free (out->tmp_path);
  g_free (out->buffer);
  g_free (out);
}

gboolean
cria_output_commit (CriaOutput *out, GError **error)
{
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (!out->tmp_path) {
    gboolean ok = fflush (out->stream) == 0 && check_stream (out, error);
    output_free (out);
    return ok;
  }
  track (out, FALSE);
  int e = 0;
  if (fflush (out->stream) != 0 || ferror (out->stream))
    e = errno ? errno : EIO;
  else if (fsync (fileno (out->stream)) != 0 && errno != EINVAL)
    e = errno;
  if (fclose (out->stream) != 0 && !e)
    e = errno;
  /* mkstemp makes the file 0600; outputs get the usual umask-derived mode. */
  if (!e) {
    mode_t mask = umask (0);
    umask (mask);
    g_chmod (out->tmp_path, 0666 & ~mask);
  }
  if (!e && g_rename (out->tmp_path, out->path) != 0)
    e = errno;
  if (e) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot write: %s", out->path, g_strerror (e));
    g_unlink (out->tmp_path);
  }
  output_free (out);
  return e == 0;
}

void
cria_output_abort (CriaOutput *out)
{
  if (!out)
    return;
  if (out->tmp_path) {
    track (out, FALSE);
    fclose (out->stream);
    g_unlink (out->tmp_path);
  }
  output_free (out);
}

void
cria_output_abort_all (void)
{
  /* Called from a signal handler that then exits: only unlink(), no locking. */
  if (!open_outputs)
    return;
  for (guint i = 0; i < open_outputs->len; i++) {
    CriaOutput *out = g_ptr_array_index (open_outputs, i);
    if (out->tmp_path)
      unlink (out->tmp_path);
  }
}
