/* cria-dtype.h: element types of tensors, in memory and in model files. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_DTYPE_F32,
  CRIA_DTYPE_BF16,
  CRIA_DTYPE_F16,
  CRIA_DTYPE_I32,
  CRIA_DTYPE_I64, /* as read from files (ids, positions); computed on as i32 */
  CRIA_DTYPE_U8,  /* raw bytes: quantized payloads and their state */
  CRIA_DTYPE_NF4, /* 4-bit NormalFloat, two values per byte (the QLoRA issue) */
  CRIA_N_DTYPES
} CriaDType;

/* "f32", "bf16", "f16", "i32", "i64", "u8", "nf4". */
const char *cria_dtype_name (CriaDType dtype);
/* Returns FALSE for an unknown name. */
gboolean cria_dtype_from_name (const char *name, CriaDType *dtype);
/* Bytes of `n` elements (NF4 packs two per byte, rounding up). */
gsize cria_dtype_bytes (CriaDType dtype, gsize n);

G_END_DECLS
