/* modelfiles-test.h: what the model-file tests share. */
#pragma once

#include <string.h>

#include "cria-test.h"

/* Asserts an error whose one-line message holds `needle`; prints both when not. */
static inline void
assert_message (const GError *e, const char *needle)
{
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  if (!strstr (e->message, needle)) {
    printf ("\n  message: %s\n  wanted:  %s\n", e->message, needle);
    CU_FAIL ("error message");
  }
  CU_ASSERT_PTR_NULL (strchr (e->message, '\n'));
}
