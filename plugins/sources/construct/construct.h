/* construct.h: what the construction stages (selfinstruct, evolinstruct,
 * fill, synth) share: a generator with its cache, prompt files found by
 * language and overridable by a directory, and the common properties. */
#pragma once

#include <cria/cria.h>

#include "rules.h"

/* clang-format off */
#define CONSTRUCT_GENERATOR_PROP(flags_, what_) \
  { "generator", CRIA_PROP_STRING, NULL, 0, 0, NULL, \
    "the generator that " what_ ", as a spec: \"openai base-url=http://127.0.0.1:8080/v1 model=m\"", flags_ }
#define CONSTRUCT_COMMON_PROPS \
  { "cache", CRIA_PROP_STRING, NULL, 0, 0, NULL, \
    "directory of the generation cache (default: $XDG_CACHE_HOME/cria-1.0/generations); none: no cache" }, \
  { "prompts", CRIA_PROP_STRING, NULL, 0, 0, NULL, \
    "a directory whose NAME.txt files replace the prompt files of share/construct/LANG/ of the same name" }, \
  { "temperature", CRIA_PROP_DOUBLE, "0.7", 0, 2, NULL, "sampling temperature asked of the generator" }, \
  { "top-p", CRIA_PROP_DOUBLE, "1", 0, 1, NULL, "nucleus sampling mass asked of the generator" }, \
  { "max-tokens", CRIA_PROP_INT, "1024", 1, 1000000, NULL, "longest answer asked of the generator, in tokens" }, \
  { "seed", CRIA_PROP_INT, NULL, 0, (double) G_MAXINT64, NULL, \
    "seed of its random choices and of the requests (default: the pipeline's --seed)" }
/* clang-format on */

typedef enum { CONSTRUCT_EN, CONSTRUCT_ZH, CONSTRUCT_N_LANGS } ConstructLang;

typedef struct {
  CriaContext *ctx;
  gboolean finishing; /* the pipeline names the stage in errors of finish() itself */
  CriaGenerator *gen; /* NULL when the stage was given none */
  gboolean cached;    /* FALSE with cache=none */
  char *prompts_dir;
  GHashTable *prompts; /* "en/name" -> text */
  double temperature, top_p;
  int max_tokens;
  guint64 seed;
} Construct;

/* Reads the common properties and makes the generator, when one is named. */
gboolean construct_init (Construct *c, const CriaProps *props, CriaContext *ctx, GError **error);
void construct_clear (Construct *c);

const char *construct_lang_name (ConstructLang lang);
/* "en" or "zh" by property value; "auto" looks at the text (Han characters). */
ConstructLang construct_lang_of (const char *prop, const char *text);

/* The text of prompt file NAME.txt for a language (trailing white space cut):
 * from the prompts= directory when it holds one, else share/construct/LANG/. */
const char *construct_prompt (Construct *c, ConstructLang lang, const char *name, GError **error);
/* Renders a prompt file with `{key}` values given as key, value, ..., NULL.
 * A `{name}` without a value fails naming the prompt file. */
char *construct_render (Construct *c, ConstructLang lang, const char *name, GError **error, ...) G_GNUC_NULL_TERMINATED;

/* Asks each text as one user message, up to the generator's concurrency at
 * once. `salt` varies the request seed, so that the same prompt asked again
 * for another purpose is another sample. When any request fails, the first
 * error is returned; the answers that came are kept in the cache. `stop` may
 * be NULL. Returns an array of n results (free with construct_results_free). */
CriaGenResult *construct_ask (Construct *c, char *const *texts, guint n, const guint64 *salts, const char *const *stop,
                              GError **error);
void construct_results_free (CriaGenResult *results, guint n);

/* Cuts a model's answer at the first of the markers that starts a line, for
 * endpoints that ignore stop strings; transfer full. */
char *construct_cut_at (const char *text, const char *const *markers);

/* A seeded generator for one item: the stage's seed, the text and a number. */
void construct_rng_for (Construct *c, CriaRng *rng, const char *text, guint64 n);
