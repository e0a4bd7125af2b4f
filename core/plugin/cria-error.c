/* cria-error.c: error domains. */
#include "config.h"

#include <cria/cria-error.h>

G_DEFINE_QUARK (cria - error - quark, cria_error)
G_DEFINE_QUARK (cria - record - error - quark, cria_record_error)

const char *
cria_record_error_reason (int code)
{
  switch (code) {
    case CRIA_RECORD_ERROR_SYNTAX:
      return "syntax";
    case CRIA_RECORD_ERROR_MISSING_FIELD:
      return "missing-field";
    case CRIA_RECORD_ERROR_INVALID_FIELD:
      return "invalid-field";
    case CRIA_RECORD_ERROR_ENCODING:
      return "encoding";
    default:
      return "error";
  }
}

char *
cria_error_quote (const char *text, gssize len, int max_chars)
{
  if (!text)
    return g_strdup ("(null)");
  g_autofree char *valid = g_utf8_make_valid (text, len);
  GString *out = g_string_new (NULL);
  int n = 0;
  for (const char *p = valid; *p; p = g_utf8_next_char (p)) {
    if (max_chars >= 0 && n++ >= max_chars) {
      g_string_append (out, "\u2026");
      break;
    }
    gunichar c = g_utf8_get_char (p);
    if (c == '\n')
      g_string_append (out, "\\n");
    else if (c == '\r')
      g_string_append (out, "\\r");
    else if (c == '\t')
      g_string_append (out, "\\t");
    else if (c < 0x20 || c == 0x7f || c == 0x2028 || c == 0x2029 || c == 0x85)
      g_string_append_printf (out, "\\x%02x", c);
    else
      g_string_append_unichar (out, c);
  }
  return g_string_free (out, FALSE);
}
