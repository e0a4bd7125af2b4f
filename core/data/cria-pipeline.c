/* cria-pipeline.c: running a record pipeline and counting what each stage did.
 *
 * The source is pulled one record at a time and each record is pushed down the
 * chain synchronously, so memory stays bounded unless a stage must hold
 * records (dedup, shuffle), which it documents. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <cria/cria-error.h>
#include "cria-pipeline-private.h"

#define MAX_WARNINGS_PER_STAGE 10

static void
stage_free (CriaStage *st)
{
  if (st->self) {
    const CriaStageVTable *vt = cria_provider_get_vtable (st->provider);
    vt->destroy (st->self);
  }
  cria_props_free (st->props);
  g_free (st->ctx.stage_name);
  g_hash_table_unref (st->reasons);
  g_free (st);
}

CriaPipeline *
cria_pipeline_new_empty (CriaRegistry *registry)
{
  CriaPipeline *p = g_new0 (CriaPipeline, 1);
  p->registry = registry;
  p->stages = g_ptr_array_new_with_free_func ((GDestroyNotify) stage_free);
  p->on_error = CRIA_ON_ERROR_STOP;
  return p;
}

void
cria_pipeline_free (CriaPipeline *p)
{
  if (!p)
    return;
  g_ptr_array_unref (p->stages);
  g_free (p);
}

CriaStage *
cria_pipeline_add_stage (CriaPipeline *p, const char *name, const char *where, GError **error)
{
  const CriaProvider *provider = cria_registry_lookup_stage (p->registry, name);
  if (!provider) {
    g_autoptr (GString) known = g_string_new (NULL);
    GPtrArray *all = cria_registry_list (p->registry);
    for (guint i = 0; i < all->len; i++) {
      const CriaProvider *q = g_ptr_array_index (all, i);
      if (cria_kind_is_stage (cria_provider_get_kind (q)))
        g_string_append_printf (known, "%s%s", known->len ? ", " : "", cria_provider_get_name (q));
    }
    g_autofree char *shown = cria_error_quote (name, -1, 60);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no source, transform or sink named '%s' (available: %s)",
                 where, shown, known->len ? known->str : "none");
    return NULL;
  }
  CriaStage *st = g_new0 (CriaStage, 1);
  st->provider = provider;
  st->props = cria_provider_new_props (provider);
  st->reasons = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  st->ctx.registry = p->registry;
  st->ctx.stage_name = g_strdup (name);
  st->emitter.pipeline = p;
  st->emitter.index = p->stages->len;
  g_ptr_array_add (p->stages, st);
  return st;
}

gboolean
cria_pipeline_validate (CriaPipeline *p, GError **error)
{
  guint n = p->stages->len;
  if (n < 2) {
    g_set_error (
        error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
        "pipeline: needs at least a source and a sink (e.g. file location=in.jsonl ! jsonl location=out.jsonl)");
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    CriaKind want = i == 0 ? CRIA_KIND_SOURCE : i == n - 1 ? CRIA_KIND_SINK : CRIA_KIND_TRANSFORM;
    CriaKind have = cria_provider_get_kind (st->provider);
    if (have != want) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "pipeline stage %u: '%s' is a %s, but a %s belongs there (source ! transform ... ! sink)", i + 1,
                   st->ctx.stage_name, cria_kind_name (have), cria_kind_name (want));
      return FALSE;
    }
    g_autoptr (GError) perr = NULL;
    if (!cria_props_check_required (st->props, &perr)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "pipeline stage %u (%s): %s", i + 1,
                   st->ctx.stage_name, perr->message);
      return FALSE;
    }
  }
  return TRUE;
}

void
cria_pipeline_set_on_error (CriaPipeline *p, CriaOnError mode)
{
  g_return_if_fail (p != NULL);
  p->on_error = mode;
}

void
cria_pipeline_set_seed (CriaPipeline *p, guint64 seed)
{
  g_return_if_fail (p != NULL);
  p->seed = seed;
}

void
cria_pipeline_set_progress (CriaPipeline *p, void (*func) (guint64, gpointer), gpointer data)
{
  g_return_if_fail (p != NULL);
  p->progress = func;
  p->progress_data = data;
}

void
cria_pipeline_cancel (CriaPipeline *p)
{
  g_return_if_fail (p != NULL);
  g_atomic_int_set (&p->cancelled, 1);
}

guint
cria_pipeline_get_n_stages (CriaPipeline *p)
{
  g_return_val_if_fail (p != NULL, 0);
  return p->stages->len;
}

void
cria_pipeline_set_observer (CriaPipeline *p, const CriaPipelineObserver *observer)
{
  g_return_if_fail (p != NULL);
  p->observer = *observer;
}

static void
count_skip (CriaStage *st, const char *reason, const char *message)
{
  CriaPipeline *p = st->emitter.pipeline;
  if (p->observer.skip)
    p->observer.skip (st->emitter.index, reason, message, p->observer.data);
  st->n_skipped++;
  guint64 *n = g_hash_table_lookup (st->reasons, reason);
  if (!n) {
    n = g_new0 (guint64, 1);
    g_hash_table_insert (st->reasons, g_strdup (reason), n);
  }
  (*n)++;
}

/* A record-level error either stops the run or is counted, as the user chose. */
static gboolean
handle_error (CriaPipeline *p, CriaStage *st, GError **error)
{
  if (p->on_error != CRIA_ON_ERROR_SKIP || !*error || (*error)->domain != CRIA_RECORD_ERROR)
    return FALSE;
  count_skip (st, cria_record_error_reason ((*error)->code), (*error)->message);
  if (st->ctx.warnings++ < MAX_WARNINGS_PER_STAGE)
    g_printerr ("cria: warning: %s: skipped: %s\n", st->ctx.stage_name, (*error)->message);
  else if (st->ctx.warnings == MAX_WARNINGS_PER_STAGE + 1)
    g_printerr ("cria: warning: %s: more records skipped; see the summary\n", st->ctx.stage_name);
  g_clear_error (error);
  return TRUE;
}

static gboolean
push_into (CriaPipeline *p, guint index, CriaRecord *record, GError **error)
{
  CriaStage *st = g_ptr_array_index (p->stages, index);
  const CriaStageVTable *vt = cria_provider_get_vtable (st->provider);
  st->n_in++;
  if (p->observer.push)
    p->observer.push (index, record, p->observer.data);
  gboolean pushed = vt->push (st->self, record, &st->emitter, error);
  gboolean ok = pushed || handle_error (p, st, error);
  if (p->observer.push)
    p->observer.push (index, NULL, p->observer.data);
  if (!pushed)
    return ok;
  /* A sink's output is what it wrote. */
  if (index + 1 == p->stages->len)
    st->n_out++;
  return TRUE;
}

gboolean
cria_emit (CriaEmitter *out, CriaRecord *record, GError **error)
{
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  CriaPipeline *p = out->pipeline;
  CriaStage *st = g_ptr_array_index (p->stages, out->index);
  st->n_out++;
  if (out->index + 1 >= p->stages->len) {
    cria_record_free (record);
    return TRUE;
  }
  return push_into (p, out->index + 1, record, error);
}

void
cria_emit_skip (CriaEmitter *out, const char *reason)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (reason != NULL);
  count_skip (g_ptr_array_index (out->pipeline->stages, out->index), reason, NULL);
}

static void
abort_all (CriaPipeline *p)
{
  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    const CriaStageVTable *vt = cria_provider_get_vtable (st->provider);
    if (st->self && vt->abort)
      vt->abort (st->self);
  }
}

gboolean
cria_pipeline_run (CriaPipeline *p, GError **error)
{
  g_return_val_if_fail (p != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (!p->ran, FALSE);
  p->ran = TRUE;

  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    const CriaStageVTable *vt = cria_provider_get_vtable (st->provider);
    st->ctx.seed = p->seed;
    st->self = vt->create (st->props, &st->ctx, error);
    if (!st->self) {
      if (error && *error)
        g_prefix_error (error, "%s: ", st->ctx.stage_name);
      else
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: could not be created", st->ctx.stage_name);
      abort_all (p);
      return FALSE;
    }
  }

  CriaStage *src = g_ptr_array_index (p->stages, 0);
  const CriaStageVTable *svt = cria_provider_get_vtable (src->provider);
  gint64 last_progress = g_get_monotonic_time ();
  for (;;) {
    if (g_atomic_int_get (&p->cancelled)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_CANCELLED, "interrupted; no output was written");
      abort_all (p);
      return FALSE;
    }
    CriaRecord *record = NULL;
    CriaFlow flow = svt->next (src->self, &record, error);
    if (flow == CRIA_FLOW_EOS)
      break;
    src->n_in++;
    if (flow == CRIA_FLOW_ERROR) {
      if (handle_error (p, src, error))
        continue;
      abort_all (p);
      return FALSE;
    }
    if (!cria_emit (&src->emitter, record, error)) {
      abort_all (p);
      return FALSE;
    }
    if (p->progress && (src->n_in & 255) == 0) {
      gint64 now = g_get_monotonic_time ();
      if (now - last_progress > 100000) {
        p->progress (src->n_in, p->progress_data);
        last_progress = now;
      }
    }
  }

  /* Finish in order: what a stage emits at the end flows into later stages
   * before they are finished themselves. */
  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    const CriaStageVTable *vt = cria_provider_get_vtable (st->provider);
    if (vt->finish && !vt->finish (st->self, &st->emitter, error)) {
      if (error && *error)
        g_prefix_error (error, "%s: ", st->ctx.stage_name);
      abort_all (p);
      return FALSE;
    }
  }
  if (p->progress)
    p->progress (src->n_in, p->progress_data);
  return TRUE;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static GPtrArray *
sorted_reasons (CriaStage *st)
{
  GPtrArray *keys = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, st->reasons);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (keys, key);
  g_ptr_array_sort (keys, compare_strings);
  return keys;
}

JsonNode *
cria_pipeline_get_summary (CriaPipeline *p)
{
  g_return_val_if_fail (p != NULL, NULL);
  JsonArray *stages = json_array_new ();
  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "stage", st->ctx.stage_name);
    json_object_set_string_member (o, "kind", cria_kind_name (cria_provider_get_kind (st->provider)));
    json_object_set_int_member (o, "in", (gint64) st->n_in);
    json_object_set_int_member (o, "out", (gint64) st->n_out);
    json_object_set_int_member (o, "skipped", (gint64) st->n_skipped);
    JsonObject *reasons = json_object_new ();
    g_autoptr (GPtrArray) keys = sorted_reasons (st);
    for (guint k = 0; k < keys->len; k++) {
      const char *key = g_ptr_array_index (keys, k);
      json_object_set_int_member (reasons, key, (gint64) * (guint64 *) g_hash_table_lookup (st->reasons, key));
    }
    json_object_set_object_member (o, "reasons", reasons);
    json_array_add_object_element (stages, o);
  }
  JsonObject *root = json_object_new ();
  json_object_set_array_member (root, "stages", stages);
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, root);
  return node;
}

char *
cria_pipeline_format_summary (CriaPipeline *p)
{
  g_return_val_if_fail (p != NULL, NULL);
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "%-3s %-14s %-9s %10s %10s %10s  %s\n", "#", "stage", "kind", "in", "out", "skipped",
                          "reasons");
  for (guint i = 0; i < p->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (p->stages, i);
    g_autoptr (GPtrArray) keys = sorted_reasons (st);
    g_autoptr (GString) why = g_string_new (NULL);
    for (guint k = 0; k < keys->len; k++) {
      const char *key = g_ptr_array_index (keys, k);
      g_string_append_printf (why, "%s%s: %" G_GUINT64_FORMAT, k ? ", " : "", key,
                              *(guint64 *) g_hash_table_lookup (st->reasons, key));
    }
    g_string_append_printf (
        s, "%-3u %-14s %-9s %10" G_GUINT64_FORMAT " %10" G_GUINT64_FORMAT " %10" G_GUINT64_FORMAT "  %s\n", i + 1,
        st->ctx.stage_name, cria_kind_name (cria_provider_get_kind (st->provider)), st->n_in, st->n_out, st->n_skipped,
        why->str);
  }
  return g_string_free (s, FALSE);
}

CriaRegistry *
cria_context_get_registry (CriaContext *ctx)
{
  g_return_val_if_fail (ctx != NULL, NULL);
  return ctx->registry;
}

guint64
cria_context_get_seed (CriaContext *ctx)
{
  g_return_val_if_fail (ctx != NULL, 0);
  return ctx->seed;
}

void
cria_context_skip (CriaContext *ctx, const char *reason)
{
  g_return_if_fail (ctx != NULL);
  g_return_if_fail (reason != NULL);
  /* Every context lives inside its stage. */
  count_skip ((CriaStage *) ((char *) ctx - G_STRUCT_OFFSET (CriaStage, ctx)), reason, NULL);
}

const char *
cria_context_get_stage_name (CriaContext *ctx)
{
  g_return_val_if_fail (ctx != NULL, NULL);
  return ctx->stage_name;
}

void
cria_context_warn (CriaContext *ctx, const char *format, ...)
{
  g_return_if_fail (ctx != NULL);
  g_return_if_fail (format != NULL);
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_printerr ("cria: warning: %s: %s\n", ctx->stage_name, msg);
}
