/* fuzz-tokenizer: tokenizer files as the tokenizers plugin loads them. The
 * first byte picks the files the rest becomes: tokenizer.json, vocab.txt,
 * encoder.json + vocab.bpe (GPT-2's merges), or tokenizer.json +
 * tokenizer_config.json; a NUL byte separates the two files of a pair.
 * Loading fails with a one-line error, or gives a tokenizer whose ids lie
 * inside its vocabulary, whose offsets lie inside the text, and whose decode
 * is valid UTF-8. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include <cria/cria.h>

#include "fuzz.h"

static const char *const names[][2] = {
  { "tokenizer.json", NULL },
  { "vocab.txt", NULL },
  { "encoder.json", "vocab.bpe" },
  { "tokenizer.json", "tokenizer_config.json" },
};

static CriaRegistry *reg;
static char *dir;

static void
remove_dir (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    for (guint j = 0; j < 2 && names[i][j]; j++) {
      g_autofree char *p = g_build_filename (dir, names[i][j], NULL);
      g_unlink (p);
    }
  g_rmdir (dir);
}

static void
setup (void)
{
  reg = cria_registry_new ();
  const char *plugins = g_getenv ("CRIA_TEST_PLUGINS");
  cria_registry_add_path (reg, plugins ? plugins : "plugins/.libs");
  cria_registry_scan (reg);
  dir = g_dir_make_tmp ("fuzz-tokenizer-XXXXXX", NULL);
  if (!dir)
    abort ();
  atexit (remove_dir);
}

static void
put (const char *name, const uint8_t *data, size_t size)
{
  g_autofree char *p = g_build_filename (dir, name, NULL);
  FILE *f = fopen (p, "wb");
  if (!f || fwrite (data, 1, size, f) != size || fclose (f) != 0)
    abort ();
}

static void
check_error (const GError *error)
{
  if (!error || !error->message[0] || strchr (error->message, '\n'))
    abort ();
}

static void
check_encoding (CriaTokenizer *tok, const char *text, gssize len)
{
  g_autoptr (GError) error = NULL;
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  g_autoptr (CriaEncoding)
      e = cria_tokenizer_encode (tok, text, len, CRIA_ENCODE_ADD_SPECIAL | CRIA_ENCODE_OFFSETS, &error);
  if (!e) {
    check_error (error);
    return;
  }
  guint vocab = cria_tokenizer_vocab_size (tok);
  const gint32 *ids = (const gint32 *) e->ids->data;
  for (guint i = 0; i < e->ids->len; i++)
    if (ids[i] < 0 || (guint) ids[i] >= vocab)
      abort ();
  /* Offsets count bytes of the text as encoded, after invalid UTF-8 was
   * replaced: each U+FFFD takes 3 bytes for at least 1. */
  for (guint i = 0; e->offsets && i < e->offsets->len; i++) {
    const CriaTokenSpan *s = &g_array_index (e->offsets, CriaTokenSpan, i);
    if (s->start > s->end || s->end > 3 * n)
      abort ();
  }
  g_autofree char *back = cria_tokenizer_decode (tok, ids, e->ids->len, FALSE, &error);
  if (back ? !g_utf8_validate (back, -1, NULL) : (check_error (error), FALSE))
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!reg)
    setup ();
  if (size < 1)
    return 0;
  guint kind = data[0] % G_N_ELEMENTS (names);
  const uint8_t *rest = data + 1, *second = NULL;
  size_t n = size - 1, n2 = 0;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    for (guint j = 0; j < 2 && names[i][j]; j++) {
      g_autofree char *p = g_build_filename (dir, names[i][j], NULL);
      g_unlink (p);
    }
  if (names[kind][1]) {
    const uint8_t *nul = memchr (rest, 0, n);
    if (nul) {
      second = nul + 1;
      n2 = n - (size_t) (second - rest);
      n = (size_t) (nul - rest);
    }
    put (names[kind][1], second ? second : (const uint8_t *) "", n2);
  }
  put (names[kind][0], rest, n);

  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (reg, dir, &error);
  if (!tok) {
    check_error (error);
    return 0;
  }
  check_encoding (tok, "Hello world! It's 2024, naïve café \xe4\xbd\xa0\xe5\xa5\xbd <s></s>[CLS] ", -1);
  check_encoding (tok, (const char *) rest, (gssize) MIN (n, 512));
  for (int which = 0; which < CRIA_N_SPECIAL; which++) {
    gint32 id = cria_tokenizer_special_id (tok, (CriaSpecialToken) which);
    if (id >= 0 && !cria_tokenizer_id_to_token (tok, id))
      abort ();
  }
  return 0;
}
