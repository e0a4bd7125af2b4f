/* cria-eval.c: `cria eval`, which generates an answer for every record of a
 * dataset, scores the answers with metric plugins, and writes one JSON line
 * per example and a summary table; --compare does it for the base model and
 * the adapted one side by side.
 *
 *   cria eval --model DIR --data test.jsonl --metrics bleu,rouge,perplexity --out eval/
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cria-cli-model.h"
#include "cria-eval.h"

static void
arm_free (EvalArm *arm)
{
  if (arm->metrics)
    g_ptr_array_unref (arm->metrics);
  g_clear_pointer (&arm->corpus, g_ptr_array_unref);
  g_free (arm->label);
  if (arm->own_lm)
    cria_lm_free (arm->lm);
  eval_close_base (arm->model);
  g_free (arm);
}

/* A metric for each spec: "bleu" or "bleu smoothing=method1". */
static GPtrArray *
open_metrics (CriaRegistry *registry, GPtrArray *specs, GError **error)
{
  g_autoptr (GPtrArray) metrics = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_metric_free);
  for (guint i = 0; i < specs->len; i++) {
    const CriaProvider *provider;
    g_autoptr (CriaProps) props = NULL;
    if (!cria_registry_parse_spec (registry, CRIA_KIND_METRIC, g_ptr_array_index (specs, i), &provider, &props, error))
      return NULL;
    CriaMetric *m = cria_metric_new (provider, props, error);
    if (!m)
      return NULL;
    g_ptr_array_add (metrics, m);
  }
  return g_steal_pointer (&metrics);
}

/* Scores one answer of one arm into `scores` (per metric, an object). */
static gboolean
score_example (EvalArm *arm, const EvalExample *ex, const char *prediction, JsonObject *scores, GError **error)
{
  for (guint i = 0; i < arm->metrics->len; i++) {
    CriaMetric *metric = g_ptr_array_index (arm->metrics, i);
    g_autoptr (CriaScores) seg = cria_scores_new ();
    gboolean ok;
    if (cria_metric_get_flags (metric) & CRIA_METRIC_FLAG_NEEDS_MODEL) {
      double nll;
      guint64 n;
      ok = cria_lm_nll (arm->lm, (const gint32 *) ex->ids->data, (const gint32 *) ex->labels->data, ex->ids->len, &nll,
                        &n, error) &&
           cria_metric_add_loss (metric, nll, n, seg, error);
    } else
      ok = cria_metric_add (metric, prediction, (const char *const *) ex->refs->pdata, ex->refs->len, seg, error);
    if (!ok) {
      g_prefix_error (error, "%s: ", cria_metric_get_name (metric));
      return FALSE;
    }
    json_object_set_object_member (scores, cria_metric_get_name (metric), cria_scores_to_json (seg));
  }
  return TRUE;
}

static gboolean
finish_arm (EvalArm *arm, GError **error)
{
  arm->corpus = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_scores_free);
  for (guint i = 0; i < arm->metrics->len; i++) {
    CriaScores *s = cria_metric_finish (g_ptr_array_index (arm->metrics, i), error);
    if (!s)
      return FALSE;
    g_ptr_array_add (arm->corpus, s);
  }
  return TRUE;
}

static gboolean
run_eval (EvalOptions *o, CriaCliModel *m, GError **error)
{
  g_autoptr (GPtrArray) records = cria_pipeline_collect (m->registry, o->data, error);
  if (!records)
    return FALSE;
  if (o->limit > 0 && records->len > (guint) o->limit)
    g_ptr_array_set_size (records, (guint) o->limit);
  if (records->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: no records to evaluate", o->data);
    return FALSE;
  }
  gboolean pairs = TRUE;
  for (guint i = 0; i < records->len; i++)
    pairs &= cria_record_is_preference (g_ptr_array_index (records, i));
  if (pairs)
    return eval_preferences (o, m, records, error);
  g_autoptr (CriaPromptFormat) format = NULL;
  if (!eval_resolve_format (o, m, &format, error))
    return FALSE;
  g_autoptr (GPtrArray) arms = g_ptr_array_new_with_free_func ((GDestroyNotify) arm_free);
  if (!eval_open_arms (o, m, arms, error))
    return FALSE;
  for (guint a = 0; a < arms->len; a++) {
    EvalArm *arm = g_ptr_array_index (arms, a);
    arm->metrics = open_metrics (m->registry, o->metric_specs, error);
    if (!arm->metrics)
      return FALSE;
  }
  CriaSampling s;
  cria_sampling_init (&s);
  gboolean ok = cria_cli_sampling_apply (&o->sampling, m->model, &s, error);
  g_autoptr (CriaOutput) pred_out = NULL;
  if (ok && o->out_dir) {
    g_autofree char *path = g_build_filename (o->out_dir, "predictions.jsonl", NULL);
    ok = g_mkdir_with_parents (o->out_dir, 0755) == 0 && (pred_out = cria_output_open (path, error)) != NULL;
    if (!ok && error && !*error)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create the directory", o->out_dir);
  }
  gboolean tty = isatty (STDERR_FILENO);
  g_autoptr (GTimer) timer = g_timer_new ();
  for (guint i = 0; ok && i < records->len; i++) {
    const CriaRecord *r = g_ptr_array_index (records, i);
    EvalExample ex = { 0 };
    ok = eval_prepare (o, m, format, r, i, &ex, error);
    g_autoptr (JsonObject) line = json_object_new ();
    json_object_set_int_member (line, "index", i);
    if (cria_record_get_field (r, "id"))
      json_object_set_string_member (line, "id", cria_record_get_field (r, "id"));
    if (ok) {
      json_object_set_string_member (line, "prompt", ex.prompt);
      JsonArray *ra = json_array_new ();
      for (guint k = 0; k < ex.refs->len; k++)
        json_array_add_string_element (ra, g_ptr_array_index (ex.refs, k));
      json_object_set_array_member (line, "references", ra);
    }
    for (guint a = 0; ok && a < arms->len; a++) {
      EvalArm *arm = g_ptr_array_index (arms, a);
      /* a base opened on its own encodes the prompt with its own tokenizer */
      EvalExample own = { 0 };
      const EvalExample *aex = &ex;
      if (arm->model) {
        ok = eval_prepare (o, arm->model, format, r, i, &own, error);
        aex = &own;
      }
      CriaGeneration gen = { 0 };
      ok = ok && (!arm->needs_text || cria_lm_generate (arm->lm, arm->model ? arm->model->tokenizer : m->tokenizer,
                                                        (const gint32 *) aex->prompt_ids->data, aex->prompt_ids->len,
                                                        &s, NULL, NULL, &gen, error));
      JsonObject *scores = json_object_new ();
      ok = ok && score_example (arm, aex, gen.text ? gen.text : "", scores, error);
      eval_example_clear (&own);
      if (ok && arm->needs_text) {
        g_autofree char *key = g_strdup_printf ("prediction%s%s", arms->len > 1 ? "_" : "",
                                                arms->len > 1 ? arm->label : "");
        json_object_set_string_member (line, key, gen.text);
      }
      g_autofree char *skey = g_strdup_printf ("scores%s%s", arms->len > 1 ? "_" : "", arms->len > 1 ? arm->label : "");
      json_object_set_object_member (line, skey, scores);
      cria_generation_clear (&gen);
    }
    if (!ok)
      g_prefix_error (error, "%s: record %u: ", o->data, i + 1);
    if (ok && pred_out) {
      g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), line);
      g_autofree char *text = json_to_string (node, FALSE);
      ok = cria_output_printf (pred_out, error, "%s\n", text);
    }
    eval_example_clear (&ex);
    if (tty && ok)
      g_printerr ("\rcria eval: %u/%u examples, %.0f s", i + 1, records->len, g_timer_elapsed (timer, NULL));
  }
  if (tty)
    g_printerr ("\n");
  cria_sampling_clear (&s);
  for (guint a = 0; ok && a < arms->len; a++)
    ok = finish_arm (g_ptr_array_index (arms, a), error);
  if (ok && pred_out)
    ok = cria_output_commit (g_steal_pointer (&pred_out), error);
  return ok && eval_report (o, arms, records->len, error);
}

int
cria_verb_eval (int argc, char **argv)
{
  CriaCliModel m;
  EvalOptions o = { .beta = 0.1 };
  cria_cli_model_init (&m);
  cria_cli_sampling_init (&o.sampling);
  g_auto (GStrv) metric_specs = NULL;
  g_autofree char *metrics = NULL;
  GOptionEntry entries[] = {
    { "data", 'd', 0, G_OPTION_ARG_FILENAME, &o.data,
      "Records to evaluate: a data file (any format the file source reads) or a pipeline; required", "FILE" },
    { "metrics", 'M', 0, G_OPTION_ARG_STRING, &metrics,
      "Metrics, separated by commas (bleu, rouge, squad, distinct, perplexity; default bleu,rouge)", "LIST" },
    { "metric", 0, 0, G_OPTION_ARG_STRING_ARRAY, &metric_specs,
      "A metric with properties, e.g. \"bleu smoothing=method1 tokenize=char\" (repeatable; default: none)", "SPEC" },
    { "compare", 'c', 0, G_OPTION_ARG_NONE, &o.compare,
      "Evaluate the base model and the adapted one (--adapter) side by side", NULL },
    { "limit", 'l', 0, G_OPTION_ARG_INT, &o.limit, "Evaluate the first N records only (default 0: all)", "N" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &o.out_dir,
      "Write predictions.jsonl, summary.json and summary.txt into DIR (default: none, the summary is printed only)",
      "DIR" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &o.as_json, "Print the summary as JSON", NULL },
    { "beta", 0, 0, G_OPTION_ARG_DOUBLE, &o.beta,
      "Preference pairs: beta of the DPO rewards of the adapted model against the base (default 0.1)", "X" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- generate answers for a dataset and score them");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_model_options (&m));
  g_option_context_add_group (ctx, cria_cli_sampling_options (&o.sampling));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  int status = CRIA_EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  o.metric_specs = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) names = g_strsplit (metrics ? metrics : (metric_specs ? "" : "bleu,rouge"), ",", -1);
  for (guint i = 0; names[i]; i++)
    if (*g_strstrip (names[i]))
      g_ptr_array_add (o.metric_specs, g_strdup (names[i]));
  for (guint i = 0; metric_specs && metric_specs[i]; i++)
    g_ptr_array_add (o.metric_specs, g_strdup (metric_specs[i]));
  if (argc > 1 || !o.data || o.metric_specs->len == 0 || (o.compare && !m.adapter_dir)) {
    g_printerr ("cria eval: %s (see cria eval --help)\n", argc > 1    ? "unexpected arguments"
                                                          : !o.data   ? "--data FILE is required"
                                                          : o.compare ? "--compare needs --adapter DIR"
                                                                      : "no metrics");
    goto done;
  }
  status = CRIA_EXIT_FAILURE;
  if (cria_cli_model_open (&m, TRUE, &error) && run_eval (&o, &m, &error))
    status = CRIA_EXIT_OK;
done:
  if (error)
    cria_cli_error ("eval", error);
  g_ptr_array_unref (o.metric_specs);
  g_free (o.data);
  g_free (o.out_dir);
  cria_cli_sampling_clear (&o.sampling);
  cria_cli_model_clear (&m);
  return status;
}
