/* cria-log.h: how libcria and plugins report to the user.
 *
 * The library never prints. What a person should see (a run's notes, a
 * status line, the result of a command) goes through GLib's structured
 * logging in the "cria" domain at G_LOG_LEVEL_MESSAGE, and the program
 * decides where it goes: the cria command prints messages as plain lines
 * on stderr, status lines as one line rewritten in place on a terminal, and
 * results on stdout. Another program embedding libcria gets GLib's default
 * writer, or installs its own with g_log_set_writer_func(). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CRIA_LOG_DOMAIN "cria"

/* Structured-log fields cria's messages may carry beside MESSAGE. */
#define CRIA_LOG_FIELD_KIND "CRIA_KIND" /* "status" or "result"; absent for a note */

/* A status line (a progress bar): each replaces the previous one. `last`
 * ends the line. */
void cria_log_status (gboolean last, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* The result of a command, the line a script reads (stdout for cria). */
void cria_log_result (const char *format, ...) G_GNUC_PRINTF (1, 2);

G_END_DECLS
