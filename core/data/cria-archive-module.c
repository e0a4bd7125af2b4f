/* cria-archive-module.c: cria's archive module (cria-archive.so), the one
 * part of cria that links libarchive for libcria (cria-archive-module.h).
 * Plugins that read archives themselves link libarchive directly. */
#include "config.h"

#include <gmodule.h>

#include "cria-archive-module.h"

G_MODULE_EXPORT const CriaArchiveModule cria_module_archive = {
  .size = sizeof (CriaArchiveModule),
  .read_new = archive_read_new,
  .read_support_format_zip = archive_read_support_format_zip,
  .read_support_filter_none = archive_read_support_filter_none,
  .read_open_filename = archive_read_open_filename,
  .read_next_header = archive_read_next_header,
  .read_data = archive_read_data,
  .error_string = archive_error_string,
  .read_free = archive_read_free,
  .entry_pathname = archive_entry_pathname,
  .entry_filetype = archive_entry_filetype,
};
