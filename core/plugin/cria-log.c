/* cria-log.c: status and result lines as structured log messages (cria-log.h). */
#include "config.h"

#include <cria/cria-log.h>

static void
log_kind (const char *kind, gboolean last, const char *format, va_list ap)
{
  g_autofree char *text = g_strdup_vprintf (format, ap);
  const GLogField fields[] = {
    { "GLIB_DOMAIN", CRIA_LOG_DOMAIN, -1 },
    { "PRIORITY", "5", -1 }, /* notice, as g_message */
    { "MESSAGE", text, -1 },
    { CRIA_LOG_FIELD_KIND, kind, -1 },
    { "CRIA_LAST", last ? "1" : "0", -1 },
  };
  g_log_structured_array (G_LOG_LEVEL_MESSAGE, fields, G_N_ELEMENTS (fields));
}

void
cria_log_status (gboolean last, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  log_kind ("status", last, format, ap);
  va_end (ap);
}

void
cria_log_result (const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  log_kind ("result", TRUE, format, ap);
  va_end (ap);
}
