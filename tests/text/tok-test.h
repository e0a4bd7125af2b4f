/* tok-test.h: what the tokenizer test programs share. */
#pragma once

#include "../cria-test.h"

static CriaRegistry *registry;

/* A tokenizer from ../shared (the test skips when it is absent). */
static inline CriaTokenizer *
load (const char *rel)
{
  g_autofree char *path = cria_test_shared (rel);
  g_autoptr (GError) error = NULL;
  CriaTokenizer *tok = cria_tokenizer_load (registry, path, &error);
  if (!tok)
    fprintf (stderr, "%s: %s\n", path, error->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  return tok;
}
