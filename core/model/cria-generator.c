/* cria-generator.c: the generator handle: provider + request cache + batches. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-generator.h>
#include <cria/cria-output.h>
#include <cria/cria-rows.h>

struct _CriaGenerator {
  const CriaGeneratorVTable *vt;
  gpointer self;
  char *identity;
  char *cache_dir;
  gint n_calls; /* atomic */
};

void
cria_gen_result_clear (CriaGenResult *r)
{
  g_clear_pointer (&r->text, g_free);
  g_clear_pointer (&r->finish_reason, g_free);
  g_clear_error (&r->error);
  r->prompt_tokens = r->completion_tokens = -1;
  r->cached = FALSE;
}

CriaGenerator *
cria_generator_new (CriaRegistry *registry, const char *spec, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (spec != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProvider *provider = NULL;
  g_autoptr (CriaProps) props = NULL;
  if (!cria_registry_parse_spec (registry, CRIA_KIND_GENERATOR, spec, &provider, &props, error))
    return NULL;
  const CriaGeneratorVTable *vt = cria_provider_get_vtable (provider);
  gpointer self = vt->create (props, registry, error);
  if (!self)
    return NULL;
  CriaGenerator *g = g_new0 (CriaGenerator, 1);
  g->vt = vt;
  g->self = self;
  g->identity = vt->describe (self);
  return g;
}

void
cria_generator_free (CriaGenerator *g)
{
  if (!g)
    return;
  g->vt->destroy (g->self);
  g_free (g->identity);
  g_free (g->cache_dir);
  g_free (g);
}

void
cria_generator_set_cache_dir (CriaGenerator *g, const char *dir)
{
  g_return_if_fail (g != NULL);
  g_free (g->cache_dir);
  g->cache_dir = g_strdup (dir);
}

guint64
cria_generator_get_n_calls (CriaGenerator *g)
{
  g_return_val_if_fail (g != NULL, 0);
  return (guint64) g_atomic_int_get (&g->n_calls);
}

static void
add_number (JsonBuilder *b, const char *name, double v)
{
  /* Text, so that the key does not depend on how a double prints. */
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, g_ascii_dtostr (buf, sizeof buf, v));
}

char *
cria_generator_request_key (CriaGenerator *g, const CriaGenRequest *req)
{
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (req != NULL, NULL);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "generator");
  json_builder_add_string_value (b, g->identity);
  json_builder_set_member_name (b, "system");
  json_builder_add_string_value (b, req->system);
  json_builder_set_member_name (b, "messages");
  if (req->messages) {
    json_builder_begin_array (b);
    for (guint i = 0; i < req->messages->len; i++) {
      const CriaMessage *m = g_ptr_array_index ((GPtrArray *) req->messages, i);
      json_builder_begin_array (b);
      json_builder_add_string_value (b, m->role);
      json_builder_add_string_value (b, m->content);
      json_builder_end_array (b);
    }
    json_builder_end_array (b);
  } else {
    json_builder_add_null_value (b);
  }
  json_builder_set_member_name (b, "prompt");
  json_builder_add_string_value (b, req->prompt);
  json_builder_set_member_name (b, "max_tokens");
  json_builder_add_int_value (b, req->max_tokens);
  add_number (b, "temperature", req->temperature);
  add_number (b, "top_p", req->top_p);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, req->seed);
  json_builder_set_member_name (b, "stop");
  json_builder_begin_array (b);
  for (const char *const *s = req->stop; s && *s; s++)
    json_builder_add_string_value (b, *s);
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, text, -1);
}

static char *
cache_path (CriaGenerator *g, const char *key)
{
  char prefix[3] = { key[0], key[1], 0 };
  g_autofree char *name = g_strconcat (key, ".json", NULL);
  return g_build_filename (g->cache_dir, prefix, name, NULL);
}

/* A cache entry that cannot be read is a miss: the request is simply run again. */
static gboolean
cache_lookup (CriaGenerator *g, const char *key, CriaGenResult *res)
{
  g_autofree char *path = cache_path (g, key);
  g_autoptr (JsonNode) root = cria_json_load_file (path, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (!o || g_strcmp0 (json_object_get_string_member_with_default (o, "key", NULL), key) != 0)
    return FALSE;
  JsonObject *r = json_object_get_object_member (o, "result");
  const char *out = r ? json_object_get_string_member_with_default (r, "text", NULL) : NULL;
  if (!out)
    return FALSE;
  res->text = g_strdup (out);
  res->finish_reason = g_strdup (json_object_get_string_member_with_default (r, "finish_reason", NULL));
  res->prompt_tokens = (int) json_object_get_int_member_with_default (r, "prompt_tokens", -1);
  res->completion_tokens = (int) json_object_get_int_member_with_default (r, "completion_tokens", -1);
  res->cached = TRUE;
  return TRUE;
}

static gboolean
cache_store (CriaGenerator *g, const char *key, const CriaGenResult *res, GError **error)
{
  g_autofree char *path = cache_path (g, key);
  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create the cache directory: %s", dir,
                 g_strerror (errno));
    return FALSE;
  }
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "key");
  json_builder_add_string_value (b, key);
  json_builder_set_member_name (b, "generator");
  json_builder_add_string_value (b, g->identity);
  json_builder_set_member_name (b, "result");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, res->text);
  json_builder_set_member_name (b, "finish_reason");
  json_builder_add_string_value (b, res->finish_reason);
  json_builder_set_member_name (b, "prompt_tokens");
  json_builder_add_int_value (b, res->prompt_tokens);
  json_builder_set_member_name (b, "completion_tokens");
  json_builder_add_int_value (b, res->completion_tokens);
  json_builder_end_object (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, TRUE);
  CriaOutput *out = cria_output_open (path, error);
  if (!out)
    return FALSE;
  if (!cria_output_write (out, text, strlen (text), error)) {
    cria_output_abort (out);
    return FALSE;
  }
  return cria_output_commit (out, error);
}

gboolean
cria_generator_generate (CriaGenerator *g, const CriaGenRequest *req, CriaGenResult *res, GCancellable *cancellable,
                         GError **error)
{
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (req != NULL, FALSE);
  g_return_val_if_fail (res != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (res, 0, sizeof *res);
  res->prompt_tokens = res->completion_tokens = -1;
  g_autofree char *key = g->cache_dir ? cria_generator_request_key (g, req) : NULL;
  if (key && cache_lookup (g, key, res))
    return TRUE;
  g_atomic_int_inc (&g->n_calls);
  if (!g->vt->generate (g->self, req, res, cancellable, error)) {
    cria_gen_result_clear (res);
    return FALSE;
  }
  if (!res->text)
    res->text = g_strdup ("");
  /* The text is already here: a cache that cannot be written costs a rerun, not this result. */
  g_autoptr (GError) cerr = NULL;
  if (key && !cache_store (g, key, res, &cerr))
    g_message ("cria: warning: generation cache: %s", cerr->message);
  return TRUE;
}

typedef struct {
  CriaGenerator *g;
  const CriaGenRequest *req;
  CriaGenResult *res;
  GCancellable *cancellable;
} Job;

static void
run_job (gpointer data, gpointer user_data)
{
  Job *job = data;
  GError *error = NULL;
  if (!cria_generator_generate (job->g, job->req, job->res, job->cancellable, &error))
    job->res->error = error;
}

guint
cria_generator_generate_batch (CriaGenerator *g, const CriaGenRequest *reqs, CriaGenResult *res, guint n,
                               GCancellable *cancellable)
{
  g_return_val_if_fail (g != NULL, 0);
  g_return_val_if_fail (reqs != NULL || n == 0, 0);
  g_return_val_if_fail (res != NULL || n == 0, 0);
  guint width = g->vt->max_concurrency ? MAX (1, g->vt->max_concurrency (g->self)) : 1;
  g_autofree Job *jobs = g_new0 (Job, n);
  GThreadPool *pool = g_thread_pool_new (run_job, NULL, (int) MIN (width, MAX (n, 1)), TRUE, NULL);
  for (guint i = 0; i < n; i++) {
    jobs[i] = (Job){ g, &reqs[i], &res[i], cancellable };
    g_thread_pool_push (pool, &jobs[i], NULL);
  }
  g_thread_pool_free (pool, FALSE, TRUE);
  guint ok = 0;
  for (guint i = 0; i < n; i++)
    ok += res[i].error == NULL;
  return ok;
}
