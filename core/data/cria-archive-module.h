/* cria-archive-module.h: the libarchive functions libcria calls, reached
 * through cria's archive module (cria-module-private.h) so that libcria
 * itself does not link libarchive: only runs that open an archive
 * (pytorch_model.bin, a .tgz of stories) load it. */
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  gsize size; /* sizeof (CriaArchiveModule) of the module's build */
  struct archive *(*read_new) (void);
  int (*read_support_format_zip) (struct archive *a);
  int (*read_support_filter_none) (struct archive *a);
  int (*read_open_filename) (struct archive *a, const char *path, size_t block_size);
  int (*read_next_header) (struct archive *a, struct archive_entry **entry);
  la_ssize_t (*read_data) (struct archive *a, void *buf, size_t len);
  const char *(*error_string) (struct archive *a);
  int (*read_free) (struct archive *a);
  const char *(*entry_pathname) (struct archive_entry *entry);
  __LA_MODE_T (*entry_filetype) (struct archive_entry *entry);
} CriaArchiveModule;

/* The module's table, loaded on first use; NULL with CRIA_ERROR_PLUGIN set
 * when the module is missing. `purpose` ends up in that error. */
const CriaArchiveModule *cria_archive_module (const char *purpose, GError **error);

G_END_DECLS
