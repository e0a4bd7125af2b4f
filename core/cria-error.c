/* cria-error.c: error domains. */
#include "config.h"

#include <cria/cria-error.h>

G_DEFINE_QUARK (cria-error-quark, cria_error)
G_DEFINE_QUARK (cria-record-error-quark, cria_record_error)

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
