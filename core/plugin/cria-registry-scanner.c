/* cria-registry-scanner.c: the plugin scanner, both ends of it.
 *
 * A file is first opened in a child process (cria-plugin-scanner), which
 * runs its constructors, checks its descriptor and runs its init; only a file
 * the child survived and accepted is opened here. Verdicts are kept per file
 * (and in the lazy index), so a file is scanned once while it is unchanged. */
#define _GNU_SOURCE /* dladdr */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <cria/cria-registry.h>
#include "cria-registry-private.h"

#define SCAN_TAG "cria-plugin-scanner: "

static GMutex scanned_lock;
static GHashTable *scanned; /* "path size mtime inode" -> verdict */

static char *
file_key (const char *canonical)
{
  GStatBuf st;
  if (g_stat (canonical, &st) != 0)
    return NULL;
  return g_strdup_printf ("%s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT ".%09ld %" G_GUINT64_FORMAT, canonical,
                          (gint64) st.st_size, (gint64) st.st_mtim.tv_sec, (long) st.st_mtim.tv_nsec,
                          (guint64) st.st_ino);
}

static const char *
scanner_path (void)
{
  const char *env = g_getenv ("CRIA_PLUGIN_SCANNER");
  return env ? env : CRIA_PLUGIN_SCANNER_PATH;
}

/* Seconds the scanner may go without reporting progress before the file it
 * is on counts as hung; CRIA_PLUGIN_SCAN_TIMEOUT overrides (cria-plugins(7)). */
static guint
scan_timeout (void)
{
  const char *v = g_getenv ("CRIA_PLUGIN_SCAN_TIMEOUT");
  guint64 n = v && *v ? g_ascii_strtoull (v, NULL, 10) : 0;
  return n > 0 && n < 3600 ? (guint) n : 15;
}

/* Runs the scanner, collecting its stdout. A plugin that never returns from
 * a constructor or its init would hang every command: a child that says
 * nothing new for scan_timeout() seconds is killed and *hung set. */
static gboolean
run_scanner (char **argv, char **env, char **text, int *status, gboolean *hung)
{
  GPid pid;
  int out_fd = -1;
  if (!g_spawn_async_with_pipes (NULL, argv, env, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                                 &pid, NULL, &out_fd, NULL, NULL))
    return FALSE;
  g_autoptr (GString) got = g_string_new (NULL);
  const gint64 quiet_us = (gint64) scan_timeout () * G_USEC_PER_SEC;
  gint64 deadline = g_get_monotonic_time () + quiet_us;
  for (;;) {
    gint64 left = deadline - g_get_monotonic_time ();
    if (left <= 0) {
      *hung = TRUE;
      kill (pid, SIGKILL);
      break;
    }
    GPollFD pfd = { out_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, 0 };
    int r = g_poll (&pfd, 1, (int) MIN (left / 1000 + 1, G_MAXINT));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    char buf[4096];
    ssize_t n = read (out_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    g_string_append_len (got, buf, n);
    deadline = g_get_monotonic_time () + quiet_us;
  }
  close (out_fd);
  while (waitpid (pid, status, 0) < 0 && errno == EINTR)
    ;
  g_spawn_close_pid (pid);
  *text = g_string_free (g_steal_pointer (&got), FALSE);
  return TRUE;
}

/* Runs the scanner on files[from..] in one child: fills out[] (a verdict per
 * file, "" when it may be loaded here) as far as the child got, and returns
 * the index of the first file it did not finish, or -1 when it could not
 * be run at all. A file the child died on gets the crash as its verdict. */
static int
scan_batch (GPtrArray *files, guint from, char **out)
{
  const char *scanner = scanner_path ();
  if (!*scanner || !g_file_test (scanner, G_FILE_TEST_IS_EXECUTABLE))
    return -1;
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) scanner);
  for (guint i = from; i < files->len; i++)
    g_ptr_array_add (argv, files->pdata[i]);
  g_ptr_array_add (argv, NULL);
  /* The scanner uses the libcria this process runs (a build tree's, say),
   * so it is run directly, not through a libtool wrapper script. */
  g_auto (GStrv) env = g_get_environ ();
  Dl_info self;
  if (dladdr ((gpointer) cria_registry_new, &self) && self.dli_fname) {
    g_autofree char *dir = g_path_get_dirname (self.dli_fname);
    const char *old = g_environ_getenv (env, "LD_LIBRARY_PATH");
    g_autofree char *path = old && *old ? g_strconcat (dir, ":", old, NULL) : g_strdup (dir);
    env = g_environ_setenv (env, "LD_LIBRARY_PATH", path, TRUE);
  }
  /* A sanitizer build's scanner would turn a plugin's crash into an exit
   * status of its own: the signal is what names the crash. */
  const char *asan = g_environ_getenv (env, "ASAN_OPTIONS");
  g_autofree char *asan_signals = g_strconcat (asan && *asan ? asan : "", asan && *asan ? ":" : "",
                                               "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0", NULL);
  env = g_environ_setenv (env, "ASAN_OPTIONS", asan_signals, TRUE);
  g_autofree char *text = NULL;
  int status = 0;
  gboolean hung = FALSE;
  if (!run_scanner ((char **) argv->pdata, env, &text, &status, &hung))
    return -1;
  /* Lines "TAG N STATE": how far it got with the Nth file it was given. */
  guint at = from;
  const char *state = NULL;
  for (const char *p = text; p && (p = strstr (p, SCAN_TAG)); p += strlen (SCAN_TAG)) {
    char *end = NULL;
    guint64 n = g_ascii_strtoull (p + strlen (SCAN_TAG), &end, 10);
    if (end == p + strlen (SCAN_TAG) || *end != ' ' || from + n >= files->len)
      continue;
    at = from + (guint) n;
    state = end + 1;
    g_autofree char *said = g_strndup (state, strcspn (state, "\n"));
    if (strcmp (said, "ok") == 0)
      out[at] = g_strdup ("");
    else if (g_str_has_prefix (said, "reject "))
      out[at] = g_strdup (said + strlen ("reject "));
  }
  if (at < files->len && !out[at]) {
    /* It died on this one (or never started it: blamed all the same). */
    const char *stage = state && g_str_has_prefix (state, "init") ? "in its init"
                                                                  : "while it was opened (in a constructor)";
    if (hung)
      out[at] = g_strdup_printf ("hung %s in the plugin scanner: no progress for %u s, stopped", stage,
                                 scan_timeout ());
    else if (WIFSIGNALED (status))
      out[at] = g_strdup_printf ("crashed %s in the plugin scanner: signal %d (%s)", stage, WTERMSIG (status),
                                 g_strsignal (WTERMSIG (status)));
    else
      out[at] = g_strdup_printf ("exited %s in the plugin scanner, status %d", stage,
                                 WIFEXITED (status) ? WEXITSTATUS (status) : -1);
  }
  return (int) at + 1;
}

/* Gives every file of `paths` (char*) a verdict, scanning those that have
 * none in as few children as possible: after a crash, a new child goes on
 * after the file it died on. Without a scanner, files are opened here. */
void
reg_prescan (CriaRegistry *reg, GPtrArray *paths)
{
  g_autoptr (GPtrArray) todo = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < paths->len; i++) {
    char *canonical = g_canonicalize_filename (paths->pdata[i], NULL);
    if (g_hash_table_contains (reg->verdicts, canonical)) {
      g_free (canonical);
      continue;
    }
    char *key = file_key (canonical);
    g_mutex_lock (&scanned_lock);
    const char *v = key && scanned ? g_hash_table_lookup (scanned, key) : NULL;
    if (v)
      g_hash_table_replace (reg->verdicts, g_strdup (canonical), g_strdup (v));
    g_mutex_unlock (&scanned_lock);
    if (v) {
      g_free (canonical);
      g_free (key);
      continue;
    }
    g_ptr_array_add (todo, canonical);
    g_ptr_array_add (keys, key);
  }
  if (todo->len == 0)
    return;
  g_autofree char **out = g_new0 (char *, todo->len);
  for (int from = 0; from >= 0 && (guint) from < todo->len;)
    from = scan_batch (todo, (guint) from, out);
  g_mutex_lock (&scanned_lock);
  if (!scanned)
    scanned = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < todo->len; i++) {
    /* No verdict: no scanner to run, so the file is opened here. */
    char *v = out[i] ? out[i] : g_strdup ("");
    if (out[i] && keys->pdata[i])
      g_hash_table_replace (scanned, g_strdup (keys->pdata[i]), g_strdup (v));
    g_hash_table_replace (reg->verdicts, g_strdup (todo->pdata[i]), v);
  }
  g_mutex_unlock (&scanned_lock);
}

/* "" when the file may be opened in this process, else the reason. */
char *
reg_verdict (CriaRegistry *reg, const char *canonical)
{
  if (!g_hash_table_contains (reg->verdicts, canonical)) {
    g_autoptr (GPtrArray) one = g_ptr_array_new ();
    g_ptr_array_add (one, (gpointer) canonical);
    reg_prescan (reg, one);
  }
  return g_strdup (g_hash_table_lookup (reg->verdicts, canonical));
}

static void
say (guint n, const char *what)
{
  g_autofree char *line = g_strdup_printf ("\n" SCAN_TAG "%u %s\n", n, what);
  /* Unbuffered: a crash right after must not lose it. */
  if (write (STDOUT_FILENO, line, strlen (line)) < 0)
    return;
}

static void
scan_one (guint n, const char *path)
{
  g_autofree char *canonical = g_canonicalize_filename (path, NULL);
  g_autofree char *reason = NULL;
  const CriaPluginDescriptor *d = NULL;
  say (n, "open");
  GModule *module = reg_open_plugin (canonical, &d, &reason);
  if (!module || (reason = reg_descriptor_problem (d))) {
    g_strdelimit (reason, "\r\n", ' ');
    g_autofree char *line = g_strconcat ("reject ", reason, NULL);
    say (n, line);
    return;
  }
  /* Whether init succeeds is for the loading process to find out (it may
   * depend on its environment); here it only must not crash. */
  say (n, "init");
  CriaPlugin *plugin = reg_plugin_new (d, canonical, module);
  g_autoptr (GError) ignored = NULL;
  d->init (plugin, &ignored);
  reg_plugin_free (plugin);
  say (n, "ok");
}

int
cria_registry_scanner_main (int n_paths, char **paths)
{
  for (int i = 0; i < n_paths; i++)
    scan_one ((guint) i, paths[i]);
  return 0;
}
