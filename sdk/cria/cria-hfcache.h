/* cria-hfcache.h: the Hugging Face hub cache, as huggingface_hub lays it out.
 *
 * `cria pull` downloads into it and every verb's --model ORG/NAME reads from
 * it, so that cria, transformers and huggingface-cli share one copy:
 *
 *   $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub)
 *     models--ORG--NAME/
 *       blobs/SHA256 or GIT-SHA1      the files, named by their hash
 *       refs/REVISION                 the commit a branch or tag was at
 *       snapshots/COMMIT/PATH         relative symlinks to ../../blobs/HASH */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The hub cache directory (transfer full). */
char *cria_hf_cache_dir (void);
/* Whether `repo_id` is a hub model id ("ORG/NAME" or "NAME"), as the hub
 * accepts them: letters, digits, '-', '_', '.', at most 96 per part, no
 * "--" or "..", not starting or ending with '-' or '.'. */
gboolean cria_hf_repo_id_is_valid (const char *repo_id);
/* CACHE/models--ORG--NAME (transfer full). */
char *cria_hf_cache_repo_dir (const char *cache, const char *repo_id);
/* Whether `path` is a relative path inside a repository that is safe to
 * create under a directory: no empty, "." or ".." component, not absolute,
 * no backslash or control character. */
gboolean cria_hf_repo_path_is_safe (const char *path);
/* The snapshot directory of `repo_id` at `revision` (NULL: "main"; a
 * branch or tag through refs/, or a commit id) in `cache` (NULL: the
 * default), or NULL with an error saying what is missing. */
char *cria_hf_cache_snapshot (const char *cache, const char *repo_id, const char *revision, GError **error);
/* What --model accepts: an existing path (a directory) as it is, else a hub id
 * ("ORG/NAME" or "ORG/NAME@REVISION") found in the cache; otherwise a
 * one-line error that suggests `cria pull`. Transfer full. */
char *cria_hf_resolve_model (const char *dir_or_repo, GError **error);

G_END_DECLS
