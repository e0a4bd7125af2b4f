/* cria-generator.h: producing text from prompts, whoever runs the model.
 *
 * A generator provider (kind CRIA_KIND_GENERATOR) runs one request at a time;
 * a CriaGenerator handle adds what every caller needs on top of it: an on-disk
 * cache keyed by the request (a rerun is free and gives the same text, and an
 * interrupted run resumes from it) and batches run with a concurrency limit. */
#pragma once

#include <gio/gio.h>
#include <cria/cria-record.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

typedef struct {
  const char *system;        /* chat: a system message first; may be NULL */
  const GPtrArray *messages; /* chat: CriaMessage*; NULL for a completion */
  const char *prompt;        /* completion: the text to continue */
  int max_tokens;            /* 0: the provider's default */
  double temperature;        /* < 0: the provider's default */
  double top_p;              /* < 0: the provider's default */
  gint64 seed;               /* < 0: none */
  const char *const *stop;   /* NULL-terminated; may be NULL */
} CriaGenRequest;

typedef struct {
  char *text;
  char *finish_reason; /* "stop", "length", ... or NULL when unknown */
  int prompt_tokens;   /* -1 when unknown */
  int completion_tokens;
  gboolean cached; /* answered from the cache, not the model */
  GError *error;   /* set, in batches, when this request failed */
} CriaGenResult;

void cria_gen_result_clear (CriaGenResult *result);

struct _CriaGeneratorVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaGeneratorVTable) */
  gpointer (*create) (const CriaProps *props, CriaRegistry *registry, GError **error);
  void (*destroy) (gpointer self);
  /* What answers: the part of the cache key that is not the request, such as
   * "openai http://host/v1 chat MODEL". Transfer full. */
  char *(*describe) (gpointer self);
  /* One request; may be called from several threads at once, up to
   * max_concurrency. Must honour the cancellable. */
  gboolean (*generate) (gpointer self, const CriaGenRequest *request, CriaGenResult *result, GCancellable *cancellable,
                        GError **error);
  /* How many generate() calls may run at once (NULL: 1). */
  guint (*max_concurrency) (gpointer self);
};

typedef struct _CriaGenerator CriaGenerator;

/* A generator from a spec in pipeline syntax: "openai model=m base-url=http://h/v1". */
CriaGenerator *cria_generator_new (CriaRegistry *registry, const char *spec, GError **error);
void cria_generator_free (CriaGenerator *generator);

/* Caches results as files under `dir` (created when missing); NULL turns it off. */
void cria_generator_set_cache_dir (CriaGenerator *generator, const char *dir);
/* Requests answered by the model, not the cache, since the generator was made. */
guint64 cria_generator_get_n_calls (CriaGenerator *generator);

gboolean cria_generator_generate (CriaGenerator *generator, const CriaGenRequest *request, CriaGenResult *result,
                                  GCancellable *cancellable, GError **error);
/* Runs every request, up to the provider's concurrency at once; each result
 * holds its text or its error. Returns the number that succeeded. */
guint cria_generator_generate_batch (CriaGenerator *generator, const CriaGenRequest *requests, CriaGenResult *results,
                                     guint n, GCancellable *cancellable);

/* The cache key of a request for this generator (hex SHA-256). */
char *cria_generator_request_key (CriaGenerator *generator, const CriaGenRequest *request);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaGenerator, cria_generator_free)

G_END_DECLS
