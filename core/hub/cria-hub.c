/* cria-hub.c: `cria pull`'s client of the Hugging Face hub (cria-hub.h).
 *
 *   cria pull Qwen/Qwen2.5-0.5B-Instruct --include '*.json' --include '*.safetensors'
 *
 * Everything the hub sends is outside input: the listing is read by cria's
 * bounded JSON reader, every file name is checked before it becomes a path,
 * the commit id before it becomes a directory, and a file lands under its
 * final name only once its hash is the one the listing promised. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "cria-hub.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_MAX_LISTING ((gsize) 64 << 20) /* bytes of the API's answer */
#define HUB_MAX_REDIRECTS 10
#define HUB_MAX_RESUMES 10 /* tries per file, each must have made progress */

typedef struct {
  char *path;    /* in the repository, checked by cria_hf_repo_path_is_safe */
  char *sha256;  /* LFS files: the hub's sha256 of the content */
  char *blob_id; /* other files: the git blob id (sha1 of "blob LEN\0" + content) */
  gint64 size;   /* -1 when unknown */
  char *blob;    /* the name it has under blobs/ once present */
} HubFile;

static void
hub_file_free (gpointer p)
{
  HubFile *f = p;
  g_free (f->path);
  g_free (f->sha256);
  g_free (f->blob_id);
  g_free (f->blob);
  g_free (f);
}

typedef struct {
  SoupSession *session;
  GUri *endpoint;
  char *endpoint_text;
  char *auth; /* "Bearer TOKEN" or NULL */
  const char *repo_id;
  gboolean has_token;
  /* the status line */
  gboolean progress;
  guint index, count;
  const char *name;
  gint64 done, total, started_us, shown_us;
  int shown_width; /* characters of the longest status line of this file */
} Hub;

static void
hub_clear (Hub *h)
{
  g_clear_object (&h->session);
  g_clear_pointer (&h->endpoint, g_uri_unref);
  g_clear_pointer (&h->endpoint_text, g_free);
  g_clear_pointer (&h->auth, g_free);
}

/* A token that cannot go into a header line is no token. */
static char *
usable_token (char *token)
{
  g_strstrip (token);
  for (const char *p = token; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *token = '\0';
  if (!*token) {
    g_free (token);
    return NULL;
  }
  return token;
}

char *
cria_hub_find_token (void)
{
  const char *names[] = { "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    const char *v = g_getenv (names[i]);
    if (v && *v)
      return usable_token (g_strdup (v));
  }
  g_autofree char *path = g_strdup (g_getenv ("HF_TOKEN_PATH"));
  if (!path || !*path) {
    g_free (path);
    const char *home = g_getenv ("HF_HOME");
    path = home && *home ? g_build_filename (home, "token", NULL)
                         : g_build_filename (g_get_user_cache_dir (), "huggingface", "token", NULL);
  }
  char *token = NULL;
  return g_file_get_contents (path, &token, NULL, NULL) ? usable_token (token) : NULL;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static gboolean
same_origin (GUri *a, GUri *b)
{
  return g_ascii_strcasecmp (g_uri_get_scheme (a), g_uri_get_scheme (b)) == 0 &&
         g_ascii_strcasecmp (g_uri_get_host (a) ? g_uri_get_host (a) : "",
                             g_uri_get_host (b) ? g_uri_get_host (b) : "") == 0 &&
         g_uri_get_port (a) == g_uri_get_port (b);
}

static GUri *
parse_http_uri (const char *text, const char *what, GError **error)
{
  g_autoptr (GError) bad = NULL;
  g_autoptr (GUri) uri = g_uri_parse (text, SOUP_HTTP_URI_FLAGS, &bad);
  if (!uri || !g_uri_get_host (uri) ||
      (g_ascii_strcasecmp (g_uri_get_scheme (uri), "http") != 0 &&
       g_ascii_strcasecmp (g_uri_get_scheme (uri), "https") != 0)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s \"%s\" is not an http(s) URL", what, text);
    return NULL;
  }
  return g_steal_pointer (&uri);
}

/* GET `url` from byte `from` on, following redirects by hand so that the
 * token goes to the endpoint's host only (a CDN's URL is signed). The
 * answer's status is the caller's to check. `linked_etag` (may be NULL)
 * gets the hub's X-Linked-Etag, which comes with the redirect. */
static GInputStream *
hub_open (Hub *h, const char *url, gint64 from, SoupMessage **msg_out, char **linked_etag, GError **error)
{
  g_autofree char *current = g_strdup (url);
  for (int hop = 0; hop <= HUB_MAX_REDIRECTS; hop++) {
    g_autoptr (GUri) uri = parse_http_uri (current, "the hub's redirect", error);
    if (!uri) {
      g_prefix_error (error, "%s: ", url);
      return NULL;
    }
    g_autoptr (SoupMessage) msg = soup_message_new_from_uri ("GET", uri);
    soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
    SoupMessageHeaders *req = soup_message_get_request_headers (msg);
    /* The size the hub states is that of the bytes as stored. */
    soup_message_headers_replace (req, "Accept-Encoding", "identity");
    if (from > 0)
      soup_message_headers_set_range (req, from, -1);
    if (h->auth && same_origin (uri, h->endpoint))
      soup_message_headers_replace (req, "Authorization", h->auth);
    g_autoptr (GError) net = NULL;
    g_autoptr (GInputStream) in = soup_session_send (h->session, msg, NULL, &net);
    if (!in) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", current, net->message);
      return NULL;
    }
    guint status = soup_message_get_status (msg);
    SoupMessageHeaders *hdrs = soup_message_get_response_headers (msg);
    const char *location = soup_message_headers_get_one (hdrs, "Location");
    const char *etag = soup_message_headers_get_one (hdrs, "X-Linked-Etag");
    if (linked_etag && etag && !*linked_etag)
      *linked_etag = g_strdup (etag);
    if (!SOUP_STATUS_IS_REDIRECTION (status) || status == 304 || !location) {
      *msg_out = g_steal_pointer (&msg);
      return g_steal_pointer (&in);
    }
    g_autoptr (GError) bad = NULL;
    char *next = g_uri_resolve_relative (current, location, SOUP_HTTP_URI_FLAGS, &bad);
    if (!next) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: Location \"%s\" is not a URL", current, location);
      return NULL;
    }
    g_input_stream_close (in, NULL, NULL);
    g_free (current);
    current = next;
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: more than %d redirects", url, HUB_MAX_REDIRECTS);
  return NULL;
}

/* A one-line reason for an answer that is not a success. */
static gboolean
hub_check_status (Hub *h, SoupMessage *msg, const char *url, GError **error)
{
  guint status = soup_message_get_status (msg);
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    return TRUE;
  const char *reason = soup_message_get_reason_phrase (msg);
  reason = reason && *reason ? reason : soup_status_get_phrase (status);
  if (status == SOUP_STATUS_UNAUTHORIZED)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %u %s: %s is gated or private; %s", url, status, reason,
                 h->repo_id,
                 h->has_token ? "the token was refused (HF_TOKEN or `huggingface-cli login`)"
                              : "set HF_TOKEN to a token that may read it (or log in with `huggingface-cli login`)");
  else if (status == SOUP_STATUS_FORBIDDEN)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %u %s: ask for access to %s on its page of the hub", url,
                 status, reason, h->repo_id);
  else if (status == SOUP_STATUS_NOT_FOUND)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: %u %s: no such repository, revision or file", url,
                 status, reason);
  else
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: HTTP %u %s", url, status, reason);
  return FALSE;
}

static GBytes *
read_all (GInputStream *in, gsize max, const char *url, GError **error)
{
  g_autoptr (GByteArray) data = g_byte_array_new ();
  guint8 buf[65536];
  for (;;) {
    g_autoptr (GError) io = NULL;
    gssize n = g_input_stream_read (in, buf, sizeof buf, NULL, &io);
    if (n < 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", url, io->message);
      return NULL;
    }
    if (n == 0)
      break;
    if (data->len + (gsize) n > max) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: answer larger than %" G_GSIZE_FORMAT " bytes", url, max);
      return NULL;
    }
    g_byte_array_append (data, buf, (guint) n);
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&data));
}

/* ---- the listing ----------------------------------------------------------------------- */

static gboolean
is_hex (const char *s, gsize len)
{
  if (!s || strlen (s) != len)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean
matches (const char *path, const char *const *include)
{
  if (!include || !include[0])
    return TRUE;
  for (guint i = 0; include[i]; i++) {
    /* As huggingface_hub's filter: "dir/" means everything under it. */
    g_autofree char *pattern = g_str_has_suffix (include[i], "/") ? g_strconcat (include[i], "*", NULL)
                                                                  : g_strdup (include[i]);
    if (g_pattern_match_simple (pattern, path))
      return TRUE;
  }
  return FALSE;
}

/* The commit and the files of the listing. */
static gboolean
parse_listing (GBytes *body, const char *url, const char *const *include, char **commit, GPtrArray *files,
               GError **error)
{
  gsize len = 0;
  const char *text = g_bytes_get_data (body, &len);
  g_autoptr (JsonNode) root = cria_json_parse (text ? text : "", (gssize) len, url, 1, error);
  if (!root)
    return FALSE;
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (!o) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON object", url);
    return FALSE;
  }
  const char *sha = cria_json_get_string (o, "sha", NULL);
  if (!is_hex (sha, 40)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: sha: expected a 40-digit commit id", url);
    return FALSE;
  }
  JsonArray *siblings = cria_json_get_array (o, "siblings");
  if (!siblings) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: siblings: expected a list of files", url);
    return FALSE;
  }
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < json_array_get_length (siblings); i++) {
    JsonNode *n = json_array_get_element (siblings, i);
    JsonObject *s = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
    const char *name = s ? cria_json_get_string (s, "rfilename", NULL) : NULL;
    if (!name) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: siblings[%u].rfilename: expected a file name", url, i);
      return FALSE;
    }
    if (!cria_hf_repo_path_is_safe (name)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: siblings[%u].rfilename \"%s\": refused (not a plain relative path)", url, i, name);
      return FALSE;
    }
    if (g_hash_table_contains (seen, name)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: siblings[%u].rfilename \"%s\": listed twice", url, i,
                   name);
      return FALSE;
    }
    if (!matches (name, include))
      continue;
    HubFile *f = g_new0 (HubFile, 1);
    f->path = g_strdup (name);
    f->size = -1;
    g_ptr_array_add (files, f);
    g_hash_table_add (seen, f->path);
    if (json_object_has_member (s, "size")) {
      f->size = cria_json_get_int (s, "size", -1);
      if (f->size < 0) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: siblings[%u].size: expected a byte count", url, i);
        return FALSE;
      }
    }
    const char *blob_id = cria_json_get_string (s, "blobId", NULL);
    if (blob_id) {
      if (!is_hex (blob_id, 40)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: siblings[%u].blobId: expected 40 hex digits", url, i);
        return FALSE;
      }
      f->blob_id = g_ascii_strdown (blob_id, -1);
    }
    JsonObject *lfs = cria_json_get_object (s, "lfs");
    if (lfs) {
      const char *sha256 = cria_json_get_string (lfs, "sha256", NULL);
      gint64 size = cria_json_get_int (lfs, "size", -1);
      if (!is_hex (sha256, 64) || size < 0) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                     "%s: siblings[%u].lfs: expected sha256 (64 hex digits) and size", url, i);
        return FALSE;
      }
      f->sha256 = g_ascii_strdown (sha256, -1);
      f->size = size;
    }
  }
  *commit = g_ascii_strdown (sha, -1);
  return TRUE;
}

/* ---- one file ---------------------------------------------------------------------------- */

static void
show_progress (Hub *h, gboolean last)
{
  if (!h->progress)
    return;
  gint64 now = g_get_monotonic_time ();
  if (!last && now - h->shown_us < 100000)
    return;
  h->shown_us = now;
  double secs = (double) (now - h->started_us) / 1e6;
  int width = 20, filled = h->total > 0 ? (int) (width * MIN (h->done, h->total) / h->total) : (last ? width : 0);
  char bar[32];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = 0;
  g_autofree char *done = g_format_size ((guint64) h->done);
  g_autofree char *total = h->total >= 0 ? g_format_size ((guint64) h->total) : g_strdup ("?");
  g_autofree char *rate = g_format_size (secs > 0 ? (guint64) ((double) h->done / secs) : 0);
  g_autofree char *line = g_strdup_printf ("[%s] %u/%u %s  %s / %s  %s/s", bar, h->index, h->count, h->name, done,
                                           total, rate);
  /* Blanks over what a longer line before it left on the terminal. */
  int len = (int) g_utf8_strlen (line, -1);
  cria_log_status (last, "%s%*s", line, MAX (h->shown_width - len, 0) + 1, "");
  h->shown_width = last ? 0 : MAX (h->shown_width, len);
}

/* The sha256 and the git blob id of a file, in one read. */
static gboolean
hash_file (const char *path, char **sha256, char **git_sha1, GError **error)
{
  g_autoptr (GError) io = NULL;
  g_autoptr (GMappedFile) map = g_mapped_file_new (path, FALSE, &io);
  if (!map) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s", io->message);
    return FALSE;
  }
  g_autoptr (GChecksum) s256 = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr (GChecksum) s1 = g_checksum_new (G_CHECKSUM_SHA1);
  gsize len = g_mapped_file_get_length (map);
  g_autofree char *head = g_strdup_printf ("blob %" G_GSIZE_FORMAT, len);
  g_checksum_update (s1, (const guchar *) head, (gssize) strlen (head) + 1); /* with its NUL */
  const guchar *data = (const guchar *) g_mapped_file_get_contents (map);
  for (gsize off = 0; off < len; off += 1 << 24) {
    gssize n = (gssize) MIN (len - off, (gsize) 1 << 24);
    g_checksum_update (s256, data + off, n);
    g_checksum_update (s1, data + off, n);
  }
  *sha256 = g_strdup (g_checksum_get_string (s256));
  *git_sha1 = g_strdup (g_checksum_get_string (s1));
  return TRUE;
}

static gint64
file_size (const char *path)
{
  GStatBuf st;
  return g_stat (path, &st) == 0 ? (gint64) st.st_size : -1;
}

/* Appends to `part` what the server has past its end, until the file is
 * whole; a transfer that breaks off is taken up again with a range. */
static gboolean
download (Hub *h, const char *url, const char *part, HubFile *f, GError **error)
{
  for (int attempt = 0;; attempt++) {
    gint64 have = MAX (file_size (part), 0);
    if (f->size >= 0 && have > f->size)
      have = 0; /* not a prefix of this file: start over */
    if (f->size >= 0 && have == f->size && (have > 0 || attempt > 0))
      return TRUE;
    SoupMessage *raw = NULL;
    g_autofree char *etag = NULL;
    g_autoptr (GInputStream) in = hub_open (h, url, have, &raw, &etag, error);
    g_autoptr (SoupMessage) msg = raw;
    if (!in)
      return FALSE;
    guint status = soup_message_get_status (msg);
    SoupMessageHeaders *hdrs = soup_message_get_response_headers (msg);
    if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE && have > 0 && attempt == 0) {
      g_unlink (part); /* what we had is not a prefix of this file */
      continue;
    }
    if (!hub_check_status (h, msg, url, error))
      return FALSE;
    goffset start = 0, end = 0, total = -1;
    if (status == SOUP_STATUS_PARTIAL_CONTENT) {
      if (!soup_message_headers_get_content_range (hdrs, &start, &end, &total) || start != have) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO,
                     "%s: Content-Range does not start at byte %" G_GINT64_FORMAT " as asked", url, have);
        return FALSE;
      }
    } else {
      have = 0; /* the server sent the whole file */
      goffset length = soup_message_headers_get_content_length (hdrs);
      total = soup_message_headers_get_encoding (hdrs) == SOUP_ENCODING_CONTENT_LENGTH ? length : -1;
    }
    /* A mirror that lists no LFS data still names the content by its
     * sha256 in X-Linked-Etag, as the hub does. */
    if (!f->sha256 && etag) {
      g_autofree char *bare = g_strdup (g_str_has_prefix (etag, "W/") ? etag + 2 : etag);
      g_strdelimit (bare, "\"", ' ');
      g_strstrip (bare);
      if (is_hex (bare, 64))
        f->sha256 = g_ascii_strdown (bare, -1);
    }
    if (f->size < 0 && total >= 0)
      f->size = total;
    FILE *out = g_fopen (part, have > 0 ? "ab" : "wb");
    if (!out) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", part, g_strerror (errno));
      return FALSE;
    }
    h->done = have;
    h->total = f->size;
    gint64 got = 0;
    g_autoptr (GError) broke = NULL;
    g_autofree guint8 *buf = g_malloc (1 << 18);
    for (;;) {
      gssize n = g_input_stream_read (in, buf, 1 << 18, NULL, &broke);
      if (n <= 0)
        break;
      if (fwrite (buf, 1, (size_t) n, out) != (size_t) n) {
        fclose (out);
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", part, g_strerror (errno));
        return FALSE;
      }
      got += n;
      h->done += n;
      if (f->size >= 0 && h->done > f->size)
        break; /* longer than listed: the hash check says so */
      show_progress (h, FALSE);
    }
    if (fclose (out) != 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", part, g_strerror (errno));
      return FALSE;
    }
    gboolean whole = !broke && (f->size < 0 || h->done >= f->size);
    if (whole)
      return TRUE;
    if (got == 0 || attempt + 1 >= HUB_MAX_RESUMES) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO,
                   "%s: the transfer broke off at byte %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                   "%s%s; run again to resume",
                   url, h->done, f->size, broke ? ": " : "", broke ? broke->message : "");
      return FALSE;
    }
    g_message ("%s: the transfer broke off at byte %" G_GINT64_FORMAT "; resuming", f->path, h->done);
  }
}

/* snapshots/COMMIT/PATH -> ../../blobs/BLOB (one more ../ per folder of
 * PATH), replaced in one rename. */
static gboolean
link_snapshot (const char *repo_dir, const char *commit, const HubFile *f, GError **error)
{
  g_autofree char *link = g_build_filename (repo_dir, "snapshots", commit, f->path, NULL);
  g_autofree char *parent = g_path_get_dirname (link);
  if (g_mkdir_with_parents (parent, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", parent, g_strerror (errno));
    return FALSE;
  }
  g_autoptr (GString) target = g_string_new ("../../");
  for (const char *p = f->path; *p; p++)
    if (*p == '/')
      g_string_append (target, "../");
  g_string_append_printf (target, "blobs/%s", f->blob);
  g_autofree char *tmp = g_strconcat (link, ".cria-link", NULL);
  g_unlink (tmp);
  if (symlink (target->str, tmp) != 0 || g_rename (tmp, link) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", link, g_strerror (errno));
    g_unlink (tmp);
    return FALSE;
  }
  return TRUE;
}

static gboolean
pull_file (Hub *h, const char *repo_dir, const char *commit, HubFile *f, GError **error)
{
  g_autofree char *escaped = g_uri_escape_string (f->path, "/", FALSE);
  g_autofree char *url = g_strdup_printf ("%s/%s/resolve/%s/%s", h->endpoint_text, h->repo_id, commit, escaped);
  g_autofree char *blobs = g_build_filename (repo_dir, "blobs", NULL);
  h->name = f->path;
  const char *known = f->sha256 ? f->sha256 : f->blob_id;
  if (known) {
    g_autofree char *blob = g_build_filename (blobs, known, NULL);
    gint64 size = file_size (blob);
    if (size >= 0 && (f->size < 0 || size == f->size)) {
      f->blob = g_strdup (known);
      return link_snapshot (repo_dir, commit, f, error);
    }
  }
  /* A file the listing gives no hash for is named by its path until its
   * content names it. */
  g_autofree char *path_hash = known ? NULL : g_compute_checksum_for_string (G_CHECKSUM_SHA1, url, -1);
  g_autofree char *part_name = g_strconcat (known ? known : path_hash, ".incomplete", NULL);
  g_autofree char *part = g_build_filename (blobs, part_name, NULL);
  h->started_us = g_get_monotonic_time ();
  h->shown_us = 0;
  if (!download (h, url, part, f, error))
    return FALSE;
  show_progress (h, TRUE);
  g_autofree char *sha256 = NULL, *git_sha1 = NULL;
  if (!hash_file (part, &sha256, &git_sha1, error))
    return FALSE;
  gint64 size = file_size (part);
  const char *want = f->sha256 ? f->sha256 : f->blob_id;
  const char *got = f->sha256 ? sha256 : git_sha1;
  if ((want && strcmp (want, got) != 0) || (f->size >= 0 && size != f->size)) {
    g_unlink (part); /* a resumed download must not build on these bytes */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "%s: %s %s (%" G_GINT64_FORMAT " bytes) is not the %s (%" G_GINT64_FORMAT " bytes) the hub lists; "
                 "refused and removed",
                 url, f->sha256 ? "sha256" : "git blob id", got, size, want ? want : "size", f->size);
    return FALSE;
  }
  f->blob = g_strdup (want ? want : git_sha1);
  g_autofree char *blob = g_build_filename (blobs, f->blob, NULL);
  if (g_rename (part, blob) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", blob, g_strerror (errno));
    return FALSE;
  }
  return link_snapshot (repo_dir, commit, f, error);
}

/* ---- refs and --out --------------------------------------------------------------------- */

static gboolean
write_atomically (const char *path, const char *contents, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (path);
  g_autoptr (GError) io = NULL;
  if (g_mkdir_with_parents (parent, 0755) != 0 || !g_file_set_contents (path, contents, -1, &io)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", path, io ? io->message : g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* A hard link to the blob where the file system allows one, else a copy;
 * under a temporary name until it is complete. */
static gboolean
place_file (const char *blob, const char *dest, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (dest);
  g_autofree char *tmp = g_strconcat (dest, ".cria-tmp", NULL);
  g_unlink (tmp);
  if (g_mkdir_with_parents (parent, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", parent, g_strerror (errno));
    return FALSE;
  }
  if (link (blob, tmp) != 0) {
    g_autoptr (GFile) from = g_file_new_for_path (blob);
    g_autoptr (GFile) to = g_file_new_for_path (tmp);
    g_autoptr (GError) io = NULL;
    if (!g_file_copy (from, to, G_FILE_COPY_OVERWRITE, NULL, NULL, NULL, &io)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", dest, io->message);
      g_unlink (tmp);
      return FALSE;
    }
  }
  if (g_rename (tmp, dest) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", dest, g_strerror (errno));
    g_unlink (tmp);
    return FALSE;
  }
  return TRUE;
}

/* ---- the whole pull ---------------------------------------------------------------------- */

static guint
env_uint (const char *name, guint fallback)
{
  const char *v = g_getenv (name);
  guint64 n;
  return v && g_ascii_string_to_unsigned (v, 10, 1, 3600, &n, NULL) ? (guint) n : fallback;
}

char *
cria_hub_pull (const char *repo_id, const CriaHubOptions *o, GError **error)
{
  g_return_val_if_fail (repo_id != NULL && o != NULL, NULL);
  if (!cria_hf_repo_id_is_valid (repo_id)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "\"%s\" is not a hub model id (ORG/NAME: letters, digits, '-', '_', '.')", repo_id);
    return NULL;
  }
  const char *revision = o->revision ? o->revision : "main";
  if (!cria_hf_repo_path_is_safe (revision)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "--revision \"%s\" is not a branch, tag or commit",
                 revision);
    return NULL;
  }
  const char *endpoint = o->endpoint ? o->endpoint : g_getenv ("HF_ENDPOINT");
  if (!endpoint || !*endpoint)
    endpoint = HUB_DEFAULT_ENDPOINT;
  Hub h = { .repo_id = repo_id, .progress = o->progress };
  h.endpoint_text = g_strdup (endpoint);
  while (g_str_has_suffix (h.endpoint_text, "/"))
    h.endpoint_text[strlen (h.endpoint_text) - 1] = '\0';
  h.endpoint = parse_http_uri (h.endpoint_text, "HF_ENDPOINT", error);
  if (!h.endpoint) {
    hub_clear (&h);
    return NULL;
  }
  g_autofree char *token = o->token ? g_strdup (o->token) : cria_hub_find_token ();
  if (token && *token) {
    h.auth = g_strconcat ("Bearer ", token, NULL);
    h.has_token = TRUE;
  }
  guint timeout = o->timeout ? o->timeout : env_uint ("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  h.session = soup_session_new_with_options ("timeout", timeout, "user-agent", "cria/" PACKAGE_VERSION, NULL);
  /* Bytes as stored: their hash and their size are what the hub lists. */
  soup_session_remove_feature_by_type (h.session, SOUP_TYPE_CONTENT_DECODER);

  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (hub_file_free);
  g_autofree char *commit = NULL;
  g_autofree char *rev_escaped = g_uri_escape_string (revision, NULL, FALSE);
  g_autofree char *api = g_strdup_printf ("%s/api/models/%s/revision/%s?blobs=true", h.endpoint_text, repo_id,
                                          rev_escaped);
  SoupMessage *raw = NULL;
  g_autoptr (GInputStream) in = hub_open (&h, api, 0, &raw, NULL, error);
  g_autoptr (SoupMessage) msg = raw;
  g_autoptr (GBytes) body = NULL;
  gboolean ok = in && hub_check_status (&h, msg, api, error) && (body = read_all (in, HUB_MAX_LISTING, api, error)) &&
                parse_listing (body, api, o->include, &commit, files, error);
  if (ok && files->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no file of %s matches --include", api, repo_id);
    ok = FALSE;
  }
  g_autofree char *own_cache = o->cache ? NULL : cria_hf_cache_dir ();
  g_autofree char *repo_dir = cria_hf_cache_repo_dir (o->cache ? o->cache : own_cache, repo_id);
  g_autofree char *blobs = g_build_filename (repo_dir, "blobs", NULL);
  if (ok && g_mkdir_with_parents (blobs, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", blobs, g_strerror (errno));
    ok = FALSE;
  }
  h.count = files->len;
  for (guint i = 0; ok && i < files->len; i++) {
    h.index = i + 1;
    ok = pull_file (&h, repo_dir, commit, g_ptr_array_index (files, i), error);
  }
  if (ok && strcmp (revision, commit) != 0) {
    g_autofree char *ref = g_build_filename (repo_dir, "refs", revision, NULL);
    ok = write_atomically (ref, commit, error);
  }
  for (guint i = 0; ok && o->out && i < files->len; i++) {
    HubFile *f = g_ptr_array_index (files, i);
    g_autofree char *blob = g_build_filename (blobs, f->blob, NULL);
    g_autofree char *dest = g_build_filename (o->out, f->path, NULL);
    ok = place_file (blob, dest, error);
  }
  hub_clear (&h);
  return ok ? g_build_filename (repo_dir, "snapshots", commit, NULL) : NULL;
}
