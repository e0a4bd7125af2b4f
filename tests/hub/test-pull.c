/* test-pull: `cria pull` against a loopback hub this test starts.
 *
 * The server is written on plain sockets so that it can misbehave as the
 * real hub and its CDN sometimes do: it answers the hub's API and resolve
 * URLs, redirects LFS files to a "CDN" path on another host name
 * (localhost instead of 127.0.0.1, so the token must not follow), serves
 * ranges, breaks the first transfer of a file off halfway, stalls, refuses
 * a gated repository without the token, and lists a wrong hash, a file
 * named "../x" and a listing that is not JSON. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cria-test.h"
#include "../../core/hub/cria-hub.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"
#define TOKEN "hf_loopback_secret"

typedef struct {
  char *path; /* in the repository */
  GBytes *data;
  gboolean lfs; /* served through the CDN, listed with its sha256 */
} RepoFile;

static struct {
  int port;
  char *base, *cdn_base;
  GPtrArray *files; /* RepoFile*, the repository org/tiny (and the others' model) */
  GMutex lock;
  GPtrArray *log;    /* "GET PATH range=N auth=0|1", one per request */
  gboolean truncate; /* break the next CDN transfer off halfway */
} hub;

static char *
git_blob_id (GBytes *data)
{
  gsize len = 0;
  const guchar *p = g_bytes_get_data (data, &len);
  g_autoptr (GChecksum) c = g_checksum_new (G_CHECKSUM_SHA1);
  g_autofree char *head = g_strdup_printf ("blob %" G_GSIZE_FORMAT, len);
  g_checksum_update (c, (const guchar *) head, (gssize) strlen (head) + 1);
  g_checksum_update (c, p, (gssize) len);
  return g_strdup (g_checksum_get_string (c));
}

static char *
sha256_of (GBytes *data)
{
  return g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, data);
}

static RepoFile *
find_file (const char *path)
{
  for (guint i = 0; i < hub.files->len; i++) {
    RepoFile *f = g_ptr_array_index (hub.files, i);
    if (strcmp (f->path, path) == 0)
      return f;
  }
  return NULL;
}

static RepoFile *
find_lfs (const char *sha)
{
  for (guint i = 0; i < hub.files->len; i++) {
    RepoFile *f = g_ptr_array_index (hub.files, i);
    g_autofree char *s = sha256_of (f->data);
    if (f->lfs && strcmp (s, sha) == 0)
      return f;
  }
  return NULL;
}

/* The API's answer for each repository: the real hub's shape with
 * ?blobs=true, or (org/mirror) only the names, as some mirrors give it. */
static char *
listing (const char *repo)
{
  if (strcmp (repo, "org/badjson") == 0)
    return g_strdup ("{\"sha\": \"" COMMIT "\", \"siblings\": [");
  if (strcmp (repo, "org/evil") == 0)
    return g_strdup ("{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"../x\"}]}");
  if (strcmp (repo, "org/badsha") == 0)
    return g_strdup ("{\"sha\":\"../../etc\",\"siblings\":[]}");
  gboolean names_only = strcmp (repo, "org/mirror") == 0;
  g_autoptr (GString) s = g_string_new ("{\"_id\":\"x\",\"id\":\"");
  g_string_append_printf (s, "%s\",\"sha\":\"" COMMIT "\",\"siblings\":[", repo);
  for (guint i = 0; i < hub.files->len; i++) {
    RepoFile *f = g_ptr_array_index (hub.files, i);
    gsize len = g_bytes_get_size (f->data);
    g_string_append_printf (s, "%s{\"rfilename\":\"%s\"", i ? "," : "", f->path);
    if (!names_only) {
      g_autofree char *blob = git_blob_id (f->data);
      g_autofree char *sha = sha256_of (f->data);
      if (f->lfs && strcmp (repo, "org/badhash") == 0)
        sha[0] = sha[0] == '0' ? '1' : '0';
      g_string_append_printf (s, ",\"blobId\":\"%s\",\"size\":%" G_GSIZE_FORMAT, blob, len);
      if (f->lfs)
        g_string_append_printf (s, ",\"lfs\":{\"sha256\":\"%s\",\"size\":%" G_GSIZE_FORMAT ",\"pointerSize\":134}", sha,
                                len);
    }
    g_string_append (s, "}");
  }
  g_string_append (s, "]}");
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static void
send_all (int fd, const void *data, gsize len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    p += n;
    len -= (gsize) n;
  }
}

static void
respond (int fd, const char *status, const char *headers, const void *body, gsize len)
{
  g_autofree char *head = g_strdup_printf ("HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: %" G_GSIZE_FORMAT
                                           "\r\n%s\r\n",
                                           status, len, headers ? headers : "");
  send_all (fd, head, strlen (head));
  send_all (fd, body, len);
}

/* A file's bytes from `from` on, as the CDN (or the resolve URL) sends them. */
static void
serve_bytes (int fd, RepoFile *f, gint64 from, gboolean cut, const char *extra)
{
  gsize len = 0;
  const char *data = g_bytes_get_data (f->data, &len);
  if (from >= (gint64) len) {
    respond (fd, "416 Range Not Satisfiable", NULL, "", 0);
    return;
  }
  g_autofree char *headers = NULL;
  if (from > 0)
    headers = g_strdup_printf ("Content-Range: bytes %" G_GINT64_FORMAT "-%" G_GSIZE_FORMAT "/%" G_GSIZE_FORMAT
                               "\r\n%s",
                               from, len - 1, len, extra);
  g_autofree char *head = g_strdup_printf (
      "HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: %" G_GSIZE_FORMAT "\r\n%s\r\n",
      from > 0 ? "206 Partial Content" : "200 OK", len - (gsize) from, headers ? headers : extra);
  send_all (fd, head, strlen (head));
  /* Cut: half the promised bytes, then the connection closes. */
  send_all (fd, data + from, cut ? (len - (gsize) from) / 2 : len - (gsize) from);
}

static void
handle (int fd)
{
  char buf[16384];
  gsize got = 0;
  while (got < sizeof buf - 1 && !g_strstr_len (buf, (gssize) got, "\r\n\r\n")) {
    ssize_t n = recv (fd, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0)
      return;
    got += (gsize) n;
    buf[got] = '\0';
  }
  buf[got] = '\0';
  g_auto (GStrv) lines = g_strsplit (buf, "\r\n", -1);
  g_auto (GStrv) request = g_strsplit (lines[0], " ", 3);
  if (!request[0] || !request[1])
    return;
  g_autofree char *path = g_uri_unescape_string (request[1], NULL);
  gint64 from = 0;
  gboolean auth = FALSE;
  for (guint i = 1; lines[i] && *lines[i]; i++) {
    if (g_ascii_strncasecmp (lines[i], "Range: bytes=", 13) == 0)
      from = g_ascii_strtoll (lines[i] + 13, NULL, 10);
    if (g_ascii_strcasecmp (lines[i], "Authorization: Bearer " TOKEN) == 0)
      auth = TRUE;
  }
  g_mutex_lock (&hub.lock);
  g_ptr_array_add (hub.log, g_strdup_printf ("%s %s range=%" G_GINT64_FORMAT " auth=%d", request[0], path, from, auth));
  gboolean cut = FALSE;
  if (g_str_has_prefix (path, "/cdn/") && hub.truncate && from == 0) {
    cut = TRUE;
    hub.truncate = FALSE;
  }
  g_mutex_unlock (&hub.lock);

  /* /api/models/ORG/NAME/revision/REV?blobs=true, /ORG/NAME/resolve/REV/PATH */
  g_auto (GStrv) parts = g_strsplit (path, "/", 6);
  guint n = g_strv_length (parts);
  if (n >= 6 && strcmp (parts[1], "api") == 0) {
    g_autofree char *repo = g_strdup_printf ("%s/%s", parts[3], parts[4]);
    if (strcmp (repo, "org/stall") == 0) {
      g_usleep (3 * G_USEC_PER_SEC);
      return;
    }
    if (strcmp (repo, "org/gated") == 0 && !auth) {
      respond (fd, "401 Unauthorized", NULL, "{\"error\":\"Access restricted\"}", 29);
      return;
    }
    if (!g_str_has_prefix (repo, "org/")) {
      respond (fd, "404 Not Found", NULL, "{}", 2);
      return;
    }
    g_autofree char *body = listing (repo);
    respond (fd, "200 OK", "Content-Type: application/json\r\n", body, strlen (body));
    return;
  }
  if (g_str_has_prefix (path, "/cdn/")) {
    RepoFile *f = find_lfs (path + 5);
    if (f)
      serve_bytes (fd, f, from, cut, "");
    else
      respond (fd, "404 Not Found", NULL, "", 0);
    return;
  }
  g_auto (GStrv) rparts = g_strsplit (path, "/", 6);
  if (g_strv_length (rparts) == 6 && strcmp (rparts[3], "resolve") == 0 && strcmp (rparts[4], COMMIT) == 0) {
    RepoFile *f = find_file (rparts[5]);
    if (strcmp (rparts[2], "gated") == 0 && !auth) {
      respond (fd, "401 Unauthorized", NULL, "", 0);
      return;
    }
    if (!f) {
      respond (fd, "404 Not Found", NULL, "", 0);
      return;
    }
    g_autofree char *sha = sha256_of (f->data);
    if (f->lfs) {
      g_autofree char *where = g_strdup_printf ("Location: %s/cdn/%s\r\nX-Linked-Etag: \"%s\"\r\n"
                                                "X-Linked-Size: %" G_GSIZE_FORMAT "\r\nX-Repo-Commit: " COMMIT "\r\n",
                                                hub.cdn_base, sha, sha, g_bytes_get_size (f->data));
      respond (fd, "302 Found", where, "", 0);
      return;
    }
    g_autofree char *blob = git_blob_id (f->data);
    g_autofree char *etag = g_strdup_printf ("ETag: \"%s\"\r\nX-Repo-Commit: " COMMIT "\r\n", blob);
    serve_bytes (fd, f, from, FALSE, etag);
    return;
  }
  respond (fd, "404 Not Found", NULL, "", 0);
}

static gpointer
serve_one (gpointer data)
{
  int fd = GPOINTER_TO_INT (data);
  handle (fd);
  close (fd);
  return NULL;
}

static gpointer
serve (gpointer data)
{
  int listener = GPOINTER_TO_INT (data);
  for (;;) {
    int fd = accept (listener, NULL, NULL);
    if (fd >= 0)
      g_thread_unref (g_thread_new ("hub-conn", serve_one, GINT_TO_POINTER (fd)));
  }
  return NULL;
}

static void
add_file (const char *path, const char *src, gboolean lfs)
{
  RepoFile *f = g_new0 (RepoFile, 1);
  f->path = g_strdup (path);
  char *contents = NULL;
  gsize len = 0;
  g_assert (g_file_get_contents (src, &contents, &len, NULL));
  f->data = g_bytes_new_take (contents, len);
  f->lfs = lfs;
  g_ptr_array_add (hub.files, f);
}

static char *model_src; /* the tiny model the hub serves */
static char *model_tmp;

static void
remove_model (void)
{
  cria_test_rmtree (model_tmp);
}

static void
start_hub (void)
{
  int listener = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t alen = sizeof addr;
  g_assert (listener >= 0 && bind (listener, (struct sockaddr *) &addr, sizeof addr) == 0 &&
            listen (listener, 16) == 0);
  g_assert (getsockname (listener, (struct sockaddr *) &addr, &alen) == 0);
  hub.port = ntohs (addr.sin_port);
  hub.base = g_strdup_printf ("http://127.0.0.1:%d", hub.port);
  hub.cdn_base = g_strdup_printf ("http://localhost:%d", hub.port);
  hub.log = g_ptr_array_new_with_free_func (g_free);
  hub.files = g_ptr_array_new ();
  g_mutex_init (&hub.lock);
  const char *tmp = model_tmp = cria_test_tmpdir ();
  atexit (remove_model);
  model_src = cria_test_tiny_model (tmp, "tiny-gpt2");
  const char *names[] = { "config.json", "generation_config.json", "tokenizer.json" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *src = g_build_filename (model_src, names[i], NULL);
    add_file (names[i], src, FALSE);
  }
  g_autofree char *weights = g_build_filename (model_src, "model.safetensors", NULL);
  add_file ("model.safetensors", weights, TRUE);
  g_autofree char *readme = g_build_filename (tmp, "README.md", NULL);
  cria_test_write_file (readme, "# tiny\n");
  add_file ("README.md", readme, FALSE);
  add_file ("sub/notes.txt", readme, FALSE);
  g_thread_unref (g_thread_new ("hub", serve, GINT_TO_POINTER (listener)));
}

/* cria with the hub's environment: HF_HOME under `home`, the loopback
 * endpoint, HF_TOKEN when `token` is set. */
static int
pull (const char *home, const char *token, const char *const *args, char **out, char **err)
{
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_setenv (l, "HF_HOME", home, TRUE);
  g_subprocess_launcher_setenv (l, "HF_ENDPOINT", hub.base, TRUE);
  g_subprocess_launcher_setenv (l, "HF_HUB_DOWNLOAD_TIMEOUT", "60", TRUE);
  g_subprocess_launcher_unsetenv (l, "HF_HUB_CACHE");
  g_subprocess_launcher_unsetenv (l, "HUGGINGFACE_HUB_CACHE");
  g_subprocess_launcher_unsetenv (l, "HF_TOKEN_PATH");
  g_subprocess_launcher_unsetenv (l, "HUGGING_FACE_HUB_TOKEN");
  if (token)
    g_subprocess_launcher_setenv (l, "HF_TOKEN", token, TRUE);
  else
    g_subprocess_launcher_unsetenv (l, "HF_TOKEN");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) cria_test_env ("CRIA_BIN"));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, (gpointer) *a);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_launcher_spawnv (l, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  char *o = NULL, *e = NULL;
  g_subprocess_communicate_utf8 (p, NULL, NULL, &o, &e, &error);
  g_assert_no_error (error);
  int status = g_subprocess_get_if_exited (p) ? g_subprocess_get_exit_status (p) : 128;
  if (out)
    *out = o;
  else
    g_free (o);
  if (err)
    *err = e;
  else
    g_free (e);
  return status;
}

static guint
log_mark (void)
{
  g_mutex_lock (&hub.lock);
  guint n = hub.log->len;
  g_mutex_unlock (&hub.lock);
  return n;
}

/* Whether a request since `mark` starts with `prefix` (and holds `part`). */
static gboolean
logged (guint mark, const char *prefix, const char *part)
{
  gboolean found = FALSE;
  g_mutex_lock (&hub.lock);
  for (guint i = mark; i < hub.log->len && !found; i++) {
    const char *line = g_ptr_array_index (hub.log, i);
    found = g_str_has_prefix (line, prefix) && (!part || strstr (line, part));
  }
  g_mutex_unlock (&hub.lock);
  return found;
}

static gboolean
same_file (const char *a, const char *b)
{
  g_autofree char *x = NULL, *y = NULL;
  gsize lx = 0, ly = 0;
  return g_file_get_contents (a, &x, &lx, NULL) && g_file_get_contents (b, &y, &ly, NULL) && lx == ly &&
         memcmp (x, y, lx) == 0;
}

static gboolean
one_line (const char *text)
{
  const char *nl = strchr (text, '\n');
  return nl && nl[1] == '\0';
}

static char *
model_sha256 (void)
{
  return sha256_of (((RepoFile *) g_ptr_array_index (hub.files, 3))->data);
}

static void
test_pull_into_cache (void)
{
  g_autofree char *home = cria_test_tmpdir ();
  guint mark = log_mark ();
  hub.truncate = TRUE;
  g_autofree char *out = NULL, *err = NULL;
  const char *args[] = { "pull",          "org/tiny",  "--include", "*.json", "--include",
                         "*.safetensors", "--include", "sub/",      NULL };
  CU_ASSERT_EQUAL_FATAL (pull (home, NULL, args, &out, &err), 0);
  g_autofree char *repo = g_build_filename (home, "hub", "models--org--tiny", NULL);
  g_autofree char *snapshot = g_build_filename (repo, "snapshots", COMMIT, NULL);
  g_autofree char *expect_out = g_strconcat (snapshot, "\n", NULL);
  CU_ASSERT_STRING_EQUAL (out, expect_out);
  /* The first CDN transfer broke off halfway; the second asked for the rest. */
  g_autofree char *sha = model_sha256 ();
  g_autofree char *half = g_strdup_printf ("range=%d", 145448 / 2);
  g_autofree char *cdn = g_strdup_printf ("GET /cdn/%s", sha);
  CU_ASSERT_TRUE (logged (mark, cdn, "range=0 auth=0"));
  CU_ASSERT_TRUE (logged (mark, cdn, half));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "resuming"));
  /* huggingface_hub's layout: relative links to blobs named by hash. */
  g_autofree char *weights = g_build_filename (snapshot, "model.safetensors", NULL);
  g_autofree char *target = g_file_read_link (weights, NULL);
  g_autofree char *expect = g_strconcat ("../../blobs/", sha, NULL);
  CU_ASSERT_STRING_EQUAL (target, expect);
  g_autofree char *src = g_build_filename (model_src, "model.safetensors", NULL);
  CU_ASSERT_TRUE (same_file (weights, src));
  g_autofree char *config = g_build_filename (snapshot, "config.json", NULL);
  g_autofree char *config_target = g_file_read_link (config, NULL);
  g_autofree char *blob = git_blob_id (((RepoFile *) g_ptr_array_index (hub.files, 0))->data);
  g_autofree char *expect_config = g_strconcat ("../../blobs/", blob, NULL);
  CU_ASSERT_STRING_EQUAL (config_target, expect_config);
  g_autofree char *notes = g_build_filename (snapshot, "sub", "notes.txt", NULL);
  g_autofree char *notes_target = g_file_read_link (notes, NULL);
  CU_ASSERT_TRUE (notes_target && g_str_has_prefix (notes_target, "../../../blobs/"));
  CU_ASSERT_TRUE (g_file_test (notes, G_FILE_TEST_IS_REGULAR));
  g_autofree char *readme = g_build_filename (snapshot, "README.md", NULL);
  CU_ASSERT_FALSE (g_file_test (readme, G_FILE_TEST_EXISTS));
  g_autofree char *ref = g_build_filename (repo, "refs", "main", NULL);
  g_autofree char *ref_text = cria_test_read_file (ref);
  CU_ASSERT_STRING_EQUAL (ref_text, COMMIT);

  /* Again: only the listing is asked for. */
  guint again = log_mark ();
  CU_ASSERT_EQUAL (pull (home, NULL, args, NULL, NULL), 0);
  CU_ASSERT_TRUE (logged (again, "GET /api/models/org/tiny/revision/main?blobs=true", NULL));
  CU_ASSERT_FALSE (logged (again, "GET /cdn/", NULL));
  CU_ASSERT_FALSE (logged (again, "GET /org/tiny/resolve/", NULL));

  /* --model ORG/NAME finds it in the cache; a missing one says what to do. */
  g_autofree char *info = NULL, *missing = NULL;
  CU_ASSERT_EQUAL (pull (home, NULL, (const char *[]){ "model", "info", "--json", "org/tiny", NULL }, &info, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (info && strstr (info, "\"parameters\""));
  g_autofree char *ids = NULL;
  CU_ASSERT_EQUAL (pull (home, NULL, (const char *[]){ "tokenize", "--tokenizer", "org/tiny", NULL }, NULL, NULL), 0);
  CU_ASSERT_EQUAL (pull (home, NULL,
                         (const char *[]){ "logits", "--model", "org/none", "--ids", "1,2", "--out", "x.bin", NULL },
                         NULL, &missing),
                   1);
  CU_ASSERT_PTR_NOT_NULL (strstr (missing, "run `cria pull org/none` first"));
  CU_ASSERT_TRUE (one_line (missing));
  cria_test_rmtree (home);
}

static void
test_resume_and_out (void)
{
  /* A partial file left by an interrupted run is continued with a range. */
  g_autofree char *home = cria_test_tmpdir ();
  g_autofree char *sha = model_sha256 ();
  g_autofree char *blobs = g_build_filename (home, "hub", "models--org--tiny", "blobs", NULL);
  g_assert (g_mkdir_with_parents (blobs, 0755) == 0);
  g_autofree char *name = g_strconcat (sha, ".incomplete", NULL);
  g_autofree char *part = g_build_filename (blobs, name, NULL);
  RepoFile *weights = g_ptr_array_index (hub.files, 3);
  g_assert (g_file_set_contents (part, g_bytes_get_data (weights->data, NULL), 1000, NULL));
  g_autofree char *out_dir = g_build_filename (home, "plain", NULL);
  guint mark = log_mark ();
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (pull (home, NULL,
                               (const char *[]){ "pull", "org/tiny", "--include", "*.safetensors", "--include",
                                                 "config.json", "--out", out_dir, NULL },
                               &out, NULL),
                         0);
  g_autofree char *cdn = g_strdup_printf ("GET /cdn/%s range=1000", sha);
  CU_ASSERT_TRUE (logged (mark, cdn, NULL));
  CU_ASSERT_FALSE (g_file_test (part, G_FILE_TEST_EXISTS));
  /* --out: a plain folder of regular files. */
  g_autofree char *expect = g_strconcat (out_dir, "\n", NULL);
  CU_ASSERT_STRING_EQUAL (out, expect);
  g_autofree char *copy = g_build_filename (out_dir, "model.safetensors", NULL);
  g_autofree char *src = g_build_filename (model_src, "model.safetensors", NULL);
  CU_ASSERT_FALSE (g_file_test (copy, G_FILE_TEST_IS_SYMLINK));
  CU_ASSERT_TRUE (same_file (copy, src));
  g_autofree char *config = g_build_filename (out_dir, "config.json", NULL);
  CU_ASSERT_TRUE (g_file_test (config, G_FILE_TEST_IS_REGULAR));
  g_autofree char *tokenizer = g_build_filename (out_dir, "tokenizer.json", NULL);
  CU_ASSERT_FALSE (g_file_test (tokenizer, G_FILE_TEST_EXISTS));
  cria_test_rmtree (home);
}

/* The library's pull in this process (no program to start): the cache
 * under `home`, the loopback endpoint. */
static char *
lib_pull (const char *home, const char *token, const char *repo, const char *include, GError **error)
{
  g_autofree char *cache = g_build_filename (home, "hub", NULL);
  const char *patterns[] = { include, NULL };
  CriaHubOptions o = {
    .endpoint = hub.base, .cache = cache, .token = token, .include = include ? patterns : NULL, .timeout = 60
  };
  return cria_hub_pull (repo, &o, error);
}

static void
test_gated (void)
{
  g_autofree char *home = cria_test_tmpdir ();
  const char *args[] = { "pull", "org/gated", NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (pull (home, NULL, args, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "401"));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "HF_TOKEN"));
  CU_ASSERT_TRUE (one_line (err));
  g_autoptr (GError) error = NULL;
  g_autofree char *refused = lib_pull (home, "hf_wrong", "org/gated", NULL, &error);
  CU_ASSERT_PTR_NULL (refused);
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "the token was refused"));
  /* The token goes to the hub, never to the CDN's other host. */
  guint mark = log_mark ();
  g_autofree char *snapshot = lib_pull (home, TOKEN, "org/gated", NULL, NULL);
  CU_ASSERT_PTR_NOT_NULL (snapshot);
  CU_ASSERT_TRUE (logged (mark, "GET /org/gated/resolve/", "auth=1"));
  CU_ASSERT_TRUE (logged (mark, "GET /cdn/", "auth=0"));
  CU_ASSERT_FALSE (logged (mark, "GET /cdn/", "auth=1"));
  /* The token file `huggingface-cli login` writes, under HF_HOME. */
  g_autofree char *fresh = cria_test_tmpdir ();
  g_autofree char *token_file = g_build_filename (fresh, "token", NULL);
  cria_test_write_file (token_file, TOKEN "\n");
  g_setenv ("HF_HOME", fresh, TRUE);
  g_autofree char *found = cria_hub_find_token ();
  CU_ASSERT_STRING_EQUAL (found, TOKEN);
  g_setenv ("HF_TOKEN", "hf_from_env", TRUE); /* the environment comes first */
  g_autofree char *from_env = cria_hub_find_token ();
  CU_ASSERT_STRING_EQUAL (from_env, "hf_from_env");
  g_setenv ("HF_TOKEN", "hf_bad\r\nX-Injected: 1", TRUE);
  g_autofree char *bad = cria_hub_find_token ();
  CU_ASSERT_PTR_NULL (bad);
  g_unsetenv ("HF_TOKEN");
  g_autofree char *again = lib_pull (fresh, NULL, "org/gated", "config.json", NULL);
  CU_ASSERT_PTR_NOT_NULL (again);
  g_setenv ("HF_HOME", model_tmp, TRUE);
  cria_test_rmtree (fresh);
  cria_test_rmtree (home);
}

static void
test_bad_hash_refused (void)
{
  g_autofree char *home = cria_test_tmpdir ();
  g_autoptr (GError) error = NULL;
  g_autofree char *snapshot = lib_pull (home, NULL, "org/badhash", "*.safetensors", &error);
  CU_ASSERT_PTR_NULL (snapshot);
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "sha256"));
  CU_ASSERT_PTR_NOT_NULL (error && strstr (error->message, "refused"));
  /* Nothing under a final name, nor a partial file to build on. */
  g_autofree char *repo = g_build_filename (home, "hub", "models--org--badhash", NULL);
  g_autofree char *blobs = g_build_filename (repo, "blobs", NULL);
  g_autoptr (GDir) d = g_dir_open (blobs, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL (d);
  CU_ASSERT_PTR_NULL (d ? g_dir_read_name (d) : NULL);
  g_autofree char *link = g_build_filename (repo, "snapshots", COMMIT, "model.safetensors", NULL);
  CU_ASSERT_FALSE (g_file_test (link, G_FILE_TEST_EXISTS) || g_file_test (link, G_FILE_TEST_IS_SYMLINK));
  g_autofree char *ref = g_build_filename (repo, "refs", "main", NULL);
  CU_ASSERT_FALSE (g_file_test (ref, G_FILE_TEST_EXISTS));
  cria_test_rmtree (home);
}

static void
test_mirror_without_blob_data (void)
{
  /* Only names listed: the LFS hash comes from X-Linked-Etag, the other
   * files are named by their git blob id, as the hub's ETag names them. */
  g_autofree char *home = cria_test_tmpdir ();
  g_autofree char *snapshot = lib_pull (home, NULL, "org/mirror", "*.s*", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (snapshot);
  g_autofree char *sha = model_sha256 ();
  g_autofree char *blob = g_build_filename (home, "hub", "models--org--mirror", "blobs", sha, NULL);
  CU_ASSERT_TRUE (g_file_test (blob, G_FILE_TEST_IS_REGULAR));
  g_autofree char *config = lib_pull (home, NULL, "org/mirror", "config.json", NULL);
  g_autofree char *git = git_blob_id (((RepoFile *) g_ptr_array_index (hub.files, 0))->data);
  g_autofree char *config_blob = g_build_filename (home, "hub", "models--org--mirror", "blobs", git, NULL);
  CU_ASSERT_TRUE (g_file_test (config_blob, G_FILE_TEST_IS_REGULAR));
  cria_test_rmtree (home);
}

static void
test_bad_answers (void)
{
  g_autofree char *home = cria_test_tmpdir ();
  struct {
    const char *repo, *revision, *expect;
    int code;
  } cases[] = {
    { "org/evil", NULL, "siblings[0].rfilename \"../x\": refused", CRIA_ERROR_PARSE },
    { "org/badjson", NULL, "/api/models/org/badjson/revision/main?blobs=true:1:", -1 },
    { "org/badsha", NULL, "sha: expected a 40-digit commit id", CRIA_ERROR_PARSE },
    { "other/repo", NULL, "404", CRIA_ERROR_NOT_FOUND },
    { "org/stall", NULL, "/api/models/org/stall/", CRIA_ERROR_IO },
    { "../evil", NULL, "is not a hub model id", CRIA_ERROR_INVALID_ARGUMENT },
    { "org/tiny", "../../x", "is not a branch, tag or commit", CRIA_ERROR_INVALID_ARGUMENT },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *cache = g_build_filename (home, "hub", NULL);
    /* A short timeout for org/stall only: a slow (sanitized, loaded) run
     * must not time out elsewhere. */
    CriaHubOptions o = { .endpoint = hub.base,
                         .cache = cache,
                         .revision = cases[i].revision,
                         .timeout = strcmp (cases[i].repo, "org/stall") == 0 ? 1 : 60 };
    g_autofree char *snapshot = cria_hub_pull (cases[i].repo, &o, &error);
    CU_ASSERT_PTR_NULL (snapshot);
    CU_ASSERT_TRUE (error && strstr (error->message, cases[i].expect) && !strchr (error->message, '\n'));
    CU_ASSERT_TRUE (error && (cases[i].code < 0 || error->code == cases[i].code));
    if (error && (!strstr (error->message, cases[i].expect) || (cases[i].code >= 0 && error->code != cases[i].code)))
      printf ("\n%s: %s (%d)", cases[i].repo, error->message, error->code);
  }
  /* Nothing was written beside the cache. */
  g_autofree char *x = g_build_filename (home, "hub", "models--org--evil", "x", NULL);
  g_autofree char *x2 = g_build_filename (home, "hub", "x", NULL);
  CU_ASSERT_FALSE (g_file_test (x, G_FILE_TEST_EXISTS) || g_file_test (x2, G_FILE_TEST_EXISTS));
  cria_test_rmtree (home);
}

static void
test_names (void)
{
  CU_ASSERT_TRUE (cria_hf_repo_id_is_valid ("Qwen/Qwen2.5-0.5B-Instruct"));
  CU_ASSERT_TRUE (cria_hf_repo_id_is_valid ("gpt2"));
  const char *bad_ids[] = { "", "/x", "a/", "a/b/c", "a--b/c", "a/..", "a/b..c", ".a/b", "a b/c", "a/-b" };
  for (guint i = 0; i < G_N_ELEMENTS (bad_ids); i++)
    CU_ASSERT_FALSE (cria_hf_repo_id_is_valid (bad_ids[i]));
  CU_ASSERT_TRUE (cria_hf_repo_path_is_safe ("onnx/model.onnx"));
  CU_ASSERT_TRUE (cria_hf_repo_path_is_safe ("..hidden"));
  const char *bad_paths[] = { "", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\..\\b", "a\nb" };
  for (guint i = 0; i < G_N_ELEMENTS (bad_paths); i++)
    CU_ASSERT_FALSE (cria_hf_repo_path_is_safe (bad_paths[i]));
  g_autofree char *dir = cria_hf_cache_repo_dir ("/c", "org/name");
  CU_ASSERT_STRING_EQUAL (dir, "/c/models--org--name");
}

static void
register_suites (void)
{
  /* No token or cache of the machine's user leaks into the in-process pulls. */
  const char *unset[] = { "HF_TOKEN",     "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
                          "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",  "HF_ENDPOINT" };
  for (guint i = 0; i < G_N_ELEMENTS (unset); i++)
    g_unsetenv (unset[i]);
  start_hub ();
  g_setenv ("HF_HOME", model_tmp, TRUE);
  static const CriaTestCase cases[] = {
    { "names", test_names },
    { "pull into the cache", test_pull_into_cache },
    { "resume and --out", test_resume_and_out },
    { "gated", test_gated },
    { "bad hash refused", test_bad_hash_refused },
    { "mirror without blob data", test_mirror_without_blob_data },
    { "bad answers", test_bad_answers },
    { NULL },
  };
  cria_test_add_suite ("pull", cases);
}

CRIA_TEST_MAIN (register_suites)
