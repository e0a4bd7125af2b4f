/* cria-dtype.c: element type names and sizes. */
#include "config.h"

#include <string.h>

#include <cria/cria-dtype.h>

static const char *const names[CRIA_N_DTYPES] = { "f32", "bf16", "f16", "i32", "i64", "u8", "nf4" };

const char *
cria_dtype_name (CriaDType dtype)
{
  return (guint) dtype < CRIA_N_DTYPES ? names[dtype] : "unknown";
}

gboolean
cria_dtype_from_name (const char *name, CriaDType *dtype)
{
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (dtype != NULL, FALSE);
  for (guint i = 0; i < CRIA_N_DTYPES; i++) {
    if (strcmp (names[i], name) == 0) {
      *dtype = (CriaDType) i;
      return TRUE;
    }
  }
  return FALSE;
}

gsize
cria_dtype_bytes (CriaDType dtype, gsize n)
{
  switch (dtype) {
    case CRIA_DTYPE_F32:
    case CRIA_DTYPE_I32:
      return n * 4;
    case CRIA_DTYPE_BF16:
    case CRIA_DTYPE_F16:
      return n * 2;
    case CRIA_DTYPE_I64:
      return n * 8;
    case CRIA_DTYPE_U8:
      return n;
    case CRIA_DTYPE_NF4:
      return (n + 1) / 2;
    default:
      return 0;
  }
}
