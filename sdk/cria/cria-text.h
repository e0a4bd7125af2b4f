/* cria-text.h: text helpers the dataset stages share: `{field}` templates,
 * normalization for comparing texts, and stable hashes. */
#pragma once

#include <glib.h>
#include <cria/cria-record.h>

G_BEGIN_DECLS

/* The value of one `{name}` of a template, or NULL when there is none. */
typedef const char *(*CriaTemplateLookup) (const char *name, gpointer data);

/* Replaces every `{name}` with its value; `{{` and `}}` stand for braces.
 * A name without a value fails with CRIA_RECORD_ERROR_MISSING_FIELD naming it. */
char *cria_template_render (const char *tmpl, CriaTemplateLookup lookup, gpointer data, GError **error);
/* The same, looking names up with cria_record_get_field(). */
char *cria_template_render_record (const char *tmpl, const CriaRecord *record, GError **error);

/* NFKC, case-folded, whitespace runs collapsed to one space, trimmed: two
 * texts a reader would call the same compare equal. */
char *cria_text_normalize (const char *text);

/* 64-bit FNV-1a with a final avalanche mix; stable across runs and machines. */
guint64 cria_hash64 (const void *data, gsize len, guint64 seed);

/* A small seeded generator (SplitMix64): the same seed gives the same stream
 * everywhere. */
typedef struct {
  guint64 state;
} CriaRng;

void cria_rng_init (CriaRng *rng, guint64 seed);
guint64 cria_rng_next (CriaRng *rng);
/* Uniform in [0, n); n > 0. */
guint64 cria_rng_below (CriaRng *rng, guint64 n);
/* Uniform in [0, 1). */
double cria_rng_double (CriaRng *rng);

G_END_DECLS
