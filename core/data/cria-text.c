/* cria-text.c: templates, normalization, hashing and a seeded generator. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-text.h>

char *
cria_template_render (const char *tmpl, CriaTemplateLookup lookup, gpointer data, GError **error)
{
  g_return_val_if_fail (tmpl != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (GString) out = g_string_sized_new (strlen (tmpl) + 64);
  for (const char *p = tmpl; *p; p++) {
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      g_string_append_c (out, *p++);
      continue;
    }
    const char *end = p[0] == '{' ? strchr (p + 1, '}') : NULL;
    if (!end) {
      g_string_append_c (out, *p);
      continue;
    }
    g_autofree char *name = g_strndup (p + 1, end - p - 1);
    const char *v = lookup (name, data);
    if (!v) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                   "template needs field '%s', which the record lacks", name);
      return NULL;
    }
    g_string_append (out, v);
    p = end;
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static const char *
record_lookup (const char *name, gpointer data)
{
  return cria_record_get_field (data, name);
}

char *
cria_template_render_record (const char *tmpl, const CriaRecord *record, GError **error)
{
  g_return_val_if_fail (tmpl != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return cria_template_render (tmpl, record_lookup, (gpointer) record, error);
}

char *
cria_text_normalize (const char *text)
{
  g_return_val_if_fail (text != NULL, NULL);
  g_autofree char *nfkc = g_utf8_normalize (text, -1, G_NORMALIZE_ALL_COMPOSE);
  if (!nfkc)
    return g_strdup ("");
  g_autofree char *folded = g_utf8_casefold (nfkc, -1);
  GString *out = g_string_sized_new (strlen (folded));
  gboolean space = FALSE;
  for (const char *p = folded; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (g_unichar_isspace (c)) {
      space = out->len > 0;
      continue;
    }
    if (space)
      g_string_append_c (out, ' ');
    space = FALSE;
    g_string_append_unichar (out, c);
  }
  return g_string_free (out, FALSE);
}

static guint64
mix64 (guint64 z)
{
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

guint64
cria_hash64 (const void *data, gsize len, guint64 seed)
{
  g_return_val_if_fail (data != NULL || len == 0, 0);
  const guchar *p = data;
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325) ^ mix64 (seed);
  for (gsize i = 0; i < len; i++) {
    h ^= p[i];
    h *= G_GUINT64_CONSTANT (0x100000001b3);
  }
  return mix64 (h);
}

void
cria_rng_init (CriaRng *rng, guint64 seed)
{
  g_return_if_fail (rng != NULL);
  rng->state = seed;
}

guint64
cria_rng_next (CriaRng *rng)
{
  g_return_val_if_fail (rng != NULL, 0);
  rng->state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15);
  return mix64 (rng->state);
}

guint64
cria_rng_below (CriaRng *rng, guint64 n)
{
  g_return_val_if_fail (rng != NULL, 0);
  g_return_val_if_fail (n > 0, 0);
  /* Rejection keeps the draw unbiased for any n. */
  guint64 limit = G_MAXUINT64 - G_MAXUINT64 % n;
  guint64 x;
  do
    x = cria_rng_next (rng);
  while (x >= limit);
  return x % n;
}

double
cria_rng_double (CriaRng *rng)
{
  g_return_val_if_fail (rng != NULL, 0.0);
  return (double) (cria_rng_next (rng) >> 11) * (1.0 / 9007199254740992.0);
}
