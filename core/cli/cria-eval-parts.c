/* cria-eval-parts.c: the arms of an evaluation, turning a record into model
 * input, and the summary table. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cria-eval.h"

static EvalArm *
arm_new (const char *label, CriaLm *lm, gboolean own)
{
  EvalArm *arm = g_new0 (EvalArm, 1);
  arm->label = g_strdup (label);
  arm->lm = lm;
  arm->own_lm = own;
  return arm;
}

static gboolean
any_text_metric (GPtrArray *specs)
{
  for (guint i = 0; i < specs->len; i++) {
    const char *spec = g_ptr_array_index (specs, i);
    if (!g_str_has_prefix (spec, "perplexity"))
      return TRUE;
  }
  return FALSE;
}

/* Whether the adapter saved whole modules, which replaced the base's in
 * the model object when it loaded. */
static gboolean
adapter_replaces_base (CriaCliModel *m, gboolean *replaces, GError **error)
{
  g_autofree char *path = g_build_filename (m->adapter_dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, error);
  g_autoptr (GHashTable) saved = st ? cria_adapter_peft_saved_modules (st, error) : NULL;
  if (!saved)
    return FALSE;
  *replaces = g_hash_table_size (saved) > 0;
  return TRUE;
}

gboolean
eval_open_base (CriaCliModel *m, CriaCliModel **base, GError **error)
{
  *base = NULL;
  gboolean replaces;
  if (!adapter_replaces_base (m, &replaces, error))
    return FALSE;
  if (!replaces)
    return TRUE;
  g_message ("adapter %s replaces modules of the base: --compare loads the base model a second time", m->adapter_dir);
  CriaCliModel *b = g_new0 (CriaCliModel, 1);
  cria_cli_model_init (b);
  b->dir = g_strdup (m->dir);
  b->dtype = g_strdup (m->dtype);
  b->backend_spec = g_strdup (m->backend_spec);
  b->threads = m->threads;
  if (!cria_cli_model_open (b, TRUE, error)) {
    eval_close_base (b);
    return FALSE;
  }
  /* Both arms are given the same prompt text (m outlives its arms). */
  b->chat_dir = m->chat_dir;
  *base = b;
  return TRUE;
}

void
eval_close_base (CriaCliModel *base)
{
  if (!base)
    return;
  cria_cli_model_clear (base);
  g_free (base);
}

gboolean
eval_open_arms (EvalOptions *o, CriaCliModel *m, GPtrArray *arms, GError **error)
{
  /* With --compare the base model runs beside the adapted one, without the
   * adapter's hook. */
  if (o->compare) {
    CriaCliModel *base;
    if (!eval_open_base (m, &base, error))
      return FALSE;
    EvalArm *arm = arm_new ("base", base ? base->lm : cria_lm_new (m->model, m->backend), !base);
    arm->model = base;
    g_ptr_array_add (arms, arm);
    g_ptr_array_add (arms, arm_new ("adapted", m->lm, FALSE));
  } else
    g_ptr_array_add (arms, arm_new (m->adapter ? "adapted" : "model", m->lm, FALSE));
  for (guint i = 0; i < arms->len; i++)
    ((EvalArm *) g_ptr_array_index (arms, i))->needs_text = any_text_metric (o->metric_specs);
  return TRUE;
}

static GPtrArray *
references (const CriaRecord *r, const char *response)
{
  GPtrArray *refs = g_ptr_array_new_with_free_func (g_free);
  const char *keys[] = { "references", "answers" };
  for (guint k = 0; k < G_N_ELEMENTS (keys); k++) {
    JsonNode *n = json_object_get_member (r->meta, keys[k]);
    if (!n || !JSON_NODE_HOLDS_ARRAY (n))
      continue;
    JsonArray *a = json_node_get_array (n);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING)
        g_ptr_array_add (refs, g_strdup (json_node_get_string (e)));
    }
    return refs;
  }
  if (response && *response)
    g_ptr_array_add (refs, g_strdup (response));
  return refs;
}

gboolean
eval_resolve_format (EvalOptions *o, CriaCliModel *m, CriaPromptFormat **format, GError **error)
{
  *format = NULL;
  if (!cria_cli_sampling_resolve_format (&o->sampling, m, error))
    return FALSE;
  if (!o->sampling.prompt_format)
    o->sampling.prompt_format = g_strdup ("auto");
  const char *name = o->sampling.prompt_format;
  if (!strcmp (name, "auto") || g_str_has_suffix (name, ".jinja"))
    return TRUE;
  *format = cria_prompt_format_load (name, error);
  return *format != NULL;
}

/* Through a chat template: the conversation before the answer, rendered as
 * cria generate, chat and serve render a prompt; the answer is the
 * reference. */
static gboolean
chat_prepare (EvalOptions *o, CriaCliModel *m, const CriaRecord *r, char **prompt, char **response, gboolean *special,
              GError **error)
{
  g_autoptr (CriaRecord) question = cria_record_new ();
  g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
  guint n = turns->len;
  const CriaMessage *last = n ? g_ptr_array_index (turns, n - 1) : NULL;
  if (last && !strcmp (last->role, "assistant"))
    n--;
  for (guint i = 0; i < n; i++) {
    const CriaMessage *t = g_ptr_array_index (turns, i);
    cria_record_add_message (question, t->role, t->content);
  }
  if (!(*prompt = cria_cli_render_prompt (&o->sampling, m->chat_dir, question, special, error)))
    return FALSE;
  *response = g_strdup (n < turns->len ? last->content : "");
  return TRUE;
}

gboolean
eval_prepare (EvalOptions *o, CriaCliModel *m, CriaPromptFormat *format, const CriaRecord *r, guint index,
              EvalExample *ex, GError **error)
{
  gboolean special = TRUE;
  if (format) {
    if (!cria_prompt_format_render (format, r, &ex->prompt, &ex->response, error))
      return FALSE;
  } else if (!chat_prepare (o, m, r, &ex->prompt, &ex->response, &special, error)) {
    return FALSE;
  }
  ex->refs = references (r, ex->response);
  ex->prompt_ids = cria_cli_encode (m, ex->prompt, special, error);
  g_autoptr (GArray) resp = ex->prompt_ids ? cria_cli_encode (m, ex->response, FALSE, error) : NULL;
  if (!resp)
    return FALSE;
  if (ex->prompt_ids->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "the prompt is empty");
    return FALSE;
  }
  ex->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_array_append_vals (ex->ids, ex->prompt_ids->data, ex->prompt_ids->len);
  g_array_append_vals (ex->ids, resp->data, resp->len);
  ex->labels = g_array_sized_new (FALSE, FALSE, sizeof (gint32), ex->ids->len);
  for (guint t = 0; t < ex->ids->len; t++) {
    gint32 l = t + 1 < ex->ids->len && t + 1 >= ex->prompt_ids->len ? g_array_index (ex->ids, gint32, t + 1)
                                                                    : CRIA_IGNORE_INDEX;
    g_array_append_val (ex->labels, l);
  }
  return TRUE;
}

void
eval_example_clear (EvalExample *ex)
{
  g_free (ex->prompt);
  g_free (ex->response);
  if (ex->refs)
    g_ptr_array_unref (ex->refs);
  if (ex->prompt_ids)
    g_array_unref (ex->prompt_ids);
  if (ex->ids)
    g_array_unref (ex->ids);
  if (ex->labels)
    g_array_unref (ex->labels);
  memset (ex, 0, sizeof *ex);
}

static JsonNode *
summary_json (GPtrArray *arms, guint n_examples)
{
  JsonObject *root = json_object_new ();
  json_object_set_int_member (root, "examples", n_examples);
  for (guint a = 0; a < arms->len; a++) {
    EvalArm *arm = g_ptr_array_index (arms, a);
    JsonObject *o = json_object_new ();
    for (guint i = 0; i < arm->metrics->len; i++)
      json_object_set_object_member (o, cria_metric_get_name (g_ptr_array_index (arm->metrics, i)),
                                     cria_scores_to_json (g_ptr_array_index (arm->corpus, i)));
    json_object_set_object_member (root, arm->label, o);
  }
  return json_node_init_object (json_node_alloc (), root);
}

/* metric / score, then one column per arm, and the change when two. */
static char *
summary_table (GPtrArray *arms, guint n_examples)
{
  GString *s = g_string_new (NULL);
  EvalArm *first = g_ptr_array_index (arms, 0);
  g_string_append_printf (s, "%u examples\n%-24s", n_examples, "metric");
  for (guint a = 0; a < arms->len; a++)
    g_string_append_printf (s, " %12s", ((EvalArm *) g_ptr_array_index (arms, a))->label);
  if (arms->len == 2)
    g_string_append_printf (s, " %12s", "change");
  g_string_append_c (s, '\n');
  for (guint i = 0; i < first->metrics->len; i++) {
    CriaScores *sc = g_ptr_array_index (first->corpus, i);
    const char *metric = cria_metric_get_name (g_ptr_array_index (first->metrics, i));
    for (guint k = 0; k < cria_scores_get_n (sc); k++) {
      const char *name = cria_scores_get_name (sc, k);
      g_autofree char *row = g_strcmp0 (metric, name) == 0 ? g_strdup (name) : g_strdup_printf ("%s.%s", metric, name);
      g_string_append_printf (s, "%-24s", row);
      double v0 = 0, v;
      for (guint a = 0; a < arms->len; a++) {
        EvalArm *arm = g_ptr_array_index (arms, a);
        cria_scores_lookup (g_ptr_array_index (arm->corpus, i), name, &v);
        g_string_append_printf (s, " %12.4f", v);
        if (a == 0)
          v0 = v;
      }
      if (arms->len == 2)
        g_string_append_printf (s, " %+12.4f", v - v0);
      g_string_append_c (s, '\n');
    }
  }
  return g_string_free (s, FALSE);
}

static gboolean
write_file (const char *dir, const char *name, const char *text, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (CriaOutput) out = cria_output_open (path, error);
  return out && cria_output_write (out, text, strlen (text), error) &&
         cria_output_commit (g_steal_pointer (&out), error);
}

gboolean
eval_report (EvalOptions *o, GPtrArray *arms, guint n_examples, GError **error)
{
  g_autoptr (JsonNode) json = summary_json (arms, n_examples);
  g_autofree char *table = summary_table (arms, n_examples);
  if (o->as_json)
    cria_cli_print_json (json);
  else
    fputs (table, stdout);
  if (!o->out_dir)
    return TRUE;
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, json);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  g_autofree char *text_nl = g_strconcat (text, "\n", NULL);
  return write_file (o->out_dir, "summary.json", text_nl, error) &&
         write_file (o->out_dir, "summary.txt", table, error);
}
