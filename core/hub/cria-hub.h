/* cria-hub.h: downloading a model repository from the Hugging Face hub.
 *
 * As huggingface_hub's snapshot_download (huggingface-cli download) does:
 * the file list from {endpoint}/api/models/REPO/revision/REV?blobs=true,
 * each file from {endpoint}/REPO/resolve/COMMIT/PATH (following redirects
 * to a CDN, sending the token only to the endpoint's own host), resumed
 * with HTTP ranges from blobs/HASH.incomplete, checked against the hub's
 * sha256 (LFS files) or git blob id before it is renamed into place, and
 * laid out in the hub cache (cria-hfcache.h). */
#pragma once

#include <cria/cria.h>

G_BEGIN_DECLS

typedef struct {
  const char *endpoint;       /* NULL: $HF_ENDPOINT, else https://huggingface.co */
  const char *revision;       /* NULL: "main" */
  const char *const *include; /* glob patterns (a trailing '/' means the folder); NULL: every file */
  const char *cache;          /* NULL: cria_hf_cache_dir () */
  const char *token;          /* NULL: cria_hub_find_token () */
  const char *out;            /* also link (or copy) the files into this plain folder */
  guint timeout;              /* seconds a connection may stall; 0: $HF_HUB_DOWNLOAD_TIMEOUT, else 10 */
  gboolean progress;          /* a status line per file (cria_log_status) */
} CriaHubOptions;

/* Downloads what is not in the cache yet; returns the snapshot directory
 * (transfer full). */
char *cria_hub_pull (const char *repo_id, const CriaHubOptions *options, GError **error);
/* The token huggingface_hub would send: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN,
 * else the file $HF_TOKEN_PATH or $HF_HOME/token (`huggingface-cli login`);
 * NULL when there is none. */
char *cria_hub_find_token (void);

/* What cria's hub module (cria-hub.so) exports as cria_module_hub: the cria
 * program reaches the hub client only through it, so that no other verb
 * loads libsoup (cria-module-private.h). */
typedef struct {
  gsize size; /* sizeof (CriaHubModule) of the module's build */
  char *(*pull) (const char *repo_id, const CriaHubOptions *options, GError **error);
} CriaHubModule;

G_END_DECLS
