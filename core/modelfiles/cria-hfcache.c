/* cria-hfcache.c: the Hugging Face hub cache (cria-hfcache.h).
 *
 * The layout and the environment variables are huggingface_hub's, so that a
 * model pulled by cria is found by transformers and the other way round. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-hfcache.h>

static char *
env_path (const char *name)
{
  const char *v = g_getenv (name);
  return v && *v ? g_strdup (v) : NULL;
}

char *
cria_hf_cache_dir (void)
{
  char *dir = env_path ("HF_HUB_CACHE");
  if (!dir)
    dir = env_path ("HUGGINGFACE_HUB_CACHE"); /* the older name */
  if (dir)
    return dir;
  g_autofree char *home = env_path ("HF_HOME");
  if (!home)
    home = g_build_filename (g_get_user_cache_dir (), "huggingface", NULL);
  return g_build_filename (home, "hub", NULL);
}

static gboolean
part_is_valid (const char *s, gsize len)
{
  if (len == 0 || len > 96 || strchr ("-.", s[0]) || strchr ("-.", s[len - 1]))
    return FALSE;
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isalnum (s[i]) && !strchr ("-_.", s[i]))
      return FALSE;
    if (i > 0 && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i])
      return FALSE; /* "--" separates parts in the cache's names; ".." climbs */
  }
  return TRUE;
}

gboolean
cria_hf_repo_id_is_valid (const char *repo_id)
{
  if (!repo_id)
    return FALSE;
  const char *slash = strchr (repo_id, '/');
  if (!slash)
    return part_is_valid (repo_id, strlen (repo_id));
  return part_is_valid (repo_id, (gsize) (slash - repo_id)) && part_is_valid (slash + 1, strlen (slash + 1));
}

char *
cria_hf_cache_repo_dir (const char *cache, const char *repo_id)
{
  g_auto (GStrv) parts = g_strsplit (repo_id, "/", -1);
  g_autofree char *joined = g_strjoinv ("--", parts);
  g_autofree char *name = g_strconcat ("models--", joined, NULL);
  return g_build_filename (cache, name, NULL);
}

gboolean
cria_hf_repo_path_is_safe (const char *path)
{
  if (!path || !*path || path[0] == '/')
    return FALSE;
  for (const char *p = path; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f || *p == '\\')
      return FALSE;
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);
  for (guint i = 0; parts[i]; i++)
    if (!*parts[i] || strcmp (parts[i], ".") == 0 || strcmp (parts[i], "..") == 0)
      return FALSE;
  return TRUE;
}

static gboolean
is_commit (const char *s)
{
  if (strlen (s) != 40)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isxdigit (*p))
      return FALSE;
  return TRUE;
}

char *
cria_hf_cache_snapshot (const char *cache, const char *repo_id, const char *revision, GError **error)
{
  g_return_val_if_fail (repo_id != NULL, NULL);
  if (!revision)
    revision = "main";
  g_autofree char *own_cache = cache ? NULL : cria_hf_cache_dir ();
  g_autofree char *repo = cria_hf_cache_repo_dir (cache ? cache : own_cache, repo_id);
  g_autofree char *commit = NULL;
  if (is_commit (revision)) {
    commit = g_strdup (revision);
  } else {
    if (!cria_hf_repo_path_is_safe (revision)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: revision \"%s\" is not a branch, tag or commit",
                   repo_id, revision);
      return NULL;
    }
    g_autofree char *ref = g_build_filename (repo, "refs", revision, NULL);
    gsize len = 0;
    if (!g_file_get_contents (ref, &commit, &len, NULL)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no such file", ref);
      return NULL;
    }
    g_strstrip (commit);
    if (!is_commit (commit)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a 40-digit commit id", ref);
      return NULL;
    }
  }
  char *snapshot = g_build_filename (repo, "snapshots", commit, NULL);
  if (!g_file_test (snapshot, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no such directory", snapshot);
    g_free (snapshot);
    return NULL;
  }
  return snapshot;
}

char *
cria_hf_resolve_model (const char *dir_or_repo, GError **error)
{
  g_return_val_if_fail (dir_or_repo != NULL, NULL);
  if (g_file_test (dir_or_repo, G_FILE_TEST_EXISTS))
    return g_strdup (dir_or_repo);
  g_autofree char *repo_id = g_strdup (dir_or_repo);
  char *at = strchr (repo_id, '@');
  const char *revision = NULL;
  if (at) {
    *at = '\0';
    revision = at + 1;
  }
  if (!cria_hf_repo_id_is_valid (repo_id)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no such directory", dir_or_repo);
    return NULL;
  }
  g_autoptr (GError) missing = NULL;
  char *snapshot = cria_hf_cache_snapshot (NULL, repo_id, revision, &missing);
  if (!snapshot)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND,
                 "%s: no such directory, nor in the Hugging Face cache (%s); run `cria pull %s%s%s` first", dir_or_repo,
                 missing->message, repo_id, revision ? " --revision " : "", revision ? revision : "");
  return snapshot;
}
