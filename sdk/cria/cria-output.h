/* cria-output.h: files written atomically.
 *
 * Everything cria writes for a user goes through this: the data lands in a
 * temporary file beside the target and is renamed over it only when complete,
 * so an error or an interruption never leaves a half-written file behind. */
#pragma once

#include <stdio.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct _CriaOutput CriaOutput;

/* Opens a temporary file in the target's directory. "-" writes to stdout. */
CriaOutput *cria_output_open (const char *path, GError **error);
FILE *cria_output_get_stream (CriaOutput *output);
const char *cria_output_get_path (CriaOutput *output);
gboolean cria_output_write (CriaOutput *output, const void *data, gsize len, GError **error);
gboolean cria_output_printf (CriaOutput *output, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);
/* Flushes, syncs and renames onto the target; frees the output either way. */
gboolean cria_output_commit (CriaOutput *output, GError **error);
/* Removes the temporary file and frees the output; NULL is allowed. */
void cria_output_abort (CriaOutput *output);

/* Removes every temporary file still open (called on SIGINT/SIGTERM). */
void cria_output_abort_all (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaOutput, cria_output_abort)

G_END_DECLS
