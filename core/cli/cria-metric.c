/* cria-metric.c: `cria metric`, which scores a file of generations against
 * files of references, one segment per line.
 *
 *   cria metric bleu --ref refs.txt --hyp out.txt -p smoothing=method1 --json
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cria-cli.h"

static char **ref_paths;
static char *hyp_path;
static char **prop_args;
static char *segments_path;
static gboolean as_json;

static const GOptionEntry entries[] = {
  { "ref", 'r', 0, G_OPTION_ARG_FILENAME_ARRAY, &ref_paths,
    "A file of references, one per line (repeatable: one more reference per segment); required", "FILE" },
  { "hyp", 0, 0, G_OPTION_ARG_FILENAME, &hyp_path, "The file of hypotheses (generations), one per line; required",
    "FILE" },
  { "property", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &prop_args,
    "Set a property of the metric (see cria inspect NAME; repeatable; default: the metric's defaults)", "KEY=VALUE" },
  { "segments", 's', 0, G_OPTION_ARG_FILENAME, &segments_path,
    "Also write each segment's scores as JSON lines to FILE (default: none)", "FILE" },
  { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print the corpus scores as JSON", NULL },
  { NULL }
};

/* Reads the next line of every file in step: FALSE at the common end, or on
 * an error (a read error or files of different lengths). */
static gboolean
read_step (CriaInput **inputs, guint n, const char **lines, gboolean *done, GError **error)
{
  guint ended = 0;
  for (guint i = 0; i < n; i++) {
    gsize len;
    GError *rerr = NULL;
    if (!cria_input_read_line (inputs[i], &lines[i], &len, &rerr)) {
      if (rerr) {
        g_propagate_error (error, rerr);
        return FALSE;
      }
      lines[i] = NULL;
      ended++;
      continue;
    }
    if (!g_utf8_validate_len (lines[i], len, NULL)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING, "%s:%" G_GUINT64_FORMAT ": invalid UTF-8",
                   cria_input_get_path (inputs[i]), cria_input_get_line_number (inputs[i]));
      return FALSE;
    }
  }
  *done = ended == n;
  if (ended && ended < n) {
    guint short_one = 0, long_one = 0;
    for (guint i = 0; i < n; i++) {
      if (lines[i])
        long_one = i;
      else
        short_one = i;
    }
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "%s has %" G_GUINT64_FORMAT " lines but %s has more: every file needs one line per segment",
                 cria_input_get_path (inputs[short_one]), cria_input_get_line_number (inputs[short_one]),
                 cria_input_get_path (inputs[long_one]));
    return FALSE;
  }
  return !*done;
}

static gboolean
set_properties (CriaProps *props, const char *metric, GError **error)
{
  for (char **p = prop_args; p && *p; p++) {
    const char *eq = strchr (*p, '=');
    if (!eq || eq == *p) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "-p takes KEY=VALUE, not '%s'", *p);
      return FALSE;
    }
    g_autofree char *key = g_strndup (*p, (gsize) (eq - *p));
    g_autoptr (GError) perr = NULL;
    if (!cria_props_set (props, key, eq + 1, &perr)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: %s", metric, perr->message);
      return FALSE;
    }
  }
  return TRUE;
}

static void
print_scores (const char *name, guint64 segments, CriaScores *scores)
{
  if (as_json) {
    g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "metric", name);
    json_object_set_int_member (o, "segments", (gint64) segments);
    json_object_set_object_member (o, "scores", cria_scores_to_json (scores));
    json_node_take_object (node, o);
    cria_cli_print_json (node);
    return;
  }
  for (guint i = 0; i < cria_scores_get_n (scores); i++)
    printf ("%-16s %.6f\n", cria_scores_get_name (scores, i), cria_scores_get_value (scores, i));
}

/* Scores every segment; the metric's corpus scores, or NULL on error. */
static CriaScores *
score_files (CriaMetric *metric, CriaInput **inputs, guint n, CriaOutput *seg_out, guint64 *segments, GError **error)
{
  g_autofree const char **lines = g_new0 (const char *, n);
  g_autoptr (GPtrArray) refs = g_ptr_array_new ();
  g_autoptr (CriaScores) seg = seg_out ? cria_scores_new () : NULL;
  gboolean done = FALSE;
  while (read_step (inputs, n, lines, &done, error)) {
    g_ptr_array_set_size (refs, 0);
    /* Later files may leave a line empty: that segment has fewer references. */
    for (guint i = 1; i < n; i++)
      if (i == 1 || lines[i][0])
        g_ptr_array_add (refs, (gpointer) lines[i]);
    g_autoptr (GError) merr = NULL;
    if (seg)
      cria_scores_clear (seg);
    if (!cria_metric_add (metric, lines[0], (const char *const *) refs->pdata, refs->len, seg, &merr)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s:%" G_GUINT64_FORMAT ": %s",
                   cria_input_get_path (inputs[0]), cria_input_get_line_number (inputs[0]), merr->message);
      return NULL;
    }
    (*segments)++;
    if (seg) {
      g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
      json_node_take_object (node, cria_scores_to_json (seg));
      g_autofree char *text = json_to_string (node, FALSE);
      if (!cria_output_printf (seg_out, error, "%s\n", text))
        return NULL;
    }
  }
  if (!done)
    return NULL;
  return cria_metric_finish (metric, error);
}

int
cria_verb_metric (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("NAME");
  g_option_context_set_summary (ctx,
                                "Scores generations against references, one segment per line:\n"
                                "  cria metric bleu --ref refs.txt --hyp out.txt -p smoothing=method1\n"
                                "Metrics: bleu, rouge, squad, distinct (cria inspect -k metric). See cria-metric(1).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (argc != 2) {
    g_printerr ("cria metric: name one metric (see cria inspect -k metric)\n");
    return CRIA_EXIT_USAGE;
  }
  if (!hyp_path) {
    g_printerr ("cria metric: --hyp FILE is required\n");
    return CRIA_EXIT_USAGE;
  }
  const char *name = argv[1];
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  g_autoptr (GError) error = NULL;
  const CriaProvider *provider = cria_registry_require (reg, CRIA_KIND_METRIC, name, &error);
  if (!provider) {
    cria_cli_error ("metric", error);
    return CRIA_EXIT_FAILURE;
  }
  const CriaMetricVTable *vt = cria_provider_get_vtable (provider);
  if (vt->flags & CRIA_METRIC_FLAG_NEEDS_MODEL) {
    g_printerr ("cria metric: %s scores a model's loss, not text files: use cria eval\n", name);
    return CRIA_EXIT_USAGE;
  }
  if (!ref_paths && !(vt->flags & CRIA_METRIC_FLAG_NO_REFERENCES)) {
    g_printerr ("cria metric: %s needs --ref FILE\n", name);
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (CriaProps) props = cria_provider_new_props (provider);
  g_autoptr (CriaMetric) metric = NULL;
  if (set_properties (props, name, &error))
    metric = cria_metric_new (provider, props, &error);
  if (!metric) {
    cria_cli_error ("metric", error);
    return CRIA_EXIT_USAGE;
  }

  g_autoptr (GPtrArray) inputs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_input_free);
  guint n_refs = ref_paths ? g_strv_length (ref_paths) : 0;
  guint n_stdin = !strcmp (hyp_path, "-");
  for (guint i = 0; i < n_refs; i++)
    n_stdin += !strcmp (ref_paths[i], "-");
  if (n_stdin > 1) {
    g_printerr ("cria metric: only one of the files can be - (standard input)\n");
    return CRIA_EXIT_USAGE;
  }
  for (guint i = 0; i <= n_refs; i++) {
    CriaInput *in = cria_input_open (i == 0 ? hyp_path : ref_paths[i - 1], &error);
    if (!in) {
      cria_cli_error ("metric", error);
      return CRIA_EXIT_FAILURE;
    }
    g_ptr_array_add (inputs, in);
  }
  g_autoptr (CriaOutput) seg_out = NULL;
  if (segments_path && !(seg_out = cria_output_open (segments_path, &error))) {
    cria_cli_error ("metric", error);
    return CRIA_EXIT_FAILURE;
  }
  guint64 segments = 0;
  g_autoptr (CriaScores)
      scores = score_files (metric, (CriaInput **) inputs->pdata, inputs->len, seg_out, &segments, &error);
  if (!scores || (seg_out && !cria_output_commit (g_steal_pointer (&seg_out), &error))) {
    cria_cli_error ("metric", error);
    return CRIA_EXIT_FAILURE;
  }
  print_scores (name, segments, scores);
  return CRIA_EXIT_OK;
}
