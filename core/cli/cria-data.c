/* cria-data.c: `cria data`, which runs a record pipeline. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cria-cli.h"

static char *pipeline_file;
static char *on_error;
static gint64 seed;
static gboolean as_json;
static gboolean quiet;
static gboolean print_only;
static gint64 preview;
static char *prompt_format;

static const GOptionEntry entries[] = {
  { "file", 'f', 0, G_OPTION_ARG_FILENAME, &pipeline_file,
    "Run the pipeline written as JSON in FILE (cria-pipeline(5); default: the pipeline given as arguments)", "FILE" },
  { "on-error", 0, 0, G_OPTION_ARG_STRING, &on_error,
    "What a bad record does: stop (default) or skip (counted in the summary)", "stop|skip" },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed of every random choice of the stages (default 0)", "N" },
  { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print the summary as JSON on stdout", NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print no summary and no progress", NULL },
  { "print", 0, 0, G_OPTION_ARG_NONE, &print_only, "Print the pipeline in canonical form and exit without running it",
    NULL },
  { "preview", 0, 0, G_OPTION_ARG_INT64, &preview,
    "Print the first N records rendered through a prompt format instead of writing them (the pipeline ends before its "
    "sink; default 0: run the pipeline)",
    "N" },
  { "prompt-format", 0, 0, G_OPTION_ARG_STRING, &prompt_format,
    "The prompt format --preview renders through (share/formats: alpaca, chatml, llama2, vicuna; default alpaca)",
    "NAME" },
  { NULL }
};

static CriaPipeline *running;

/* --preview: an in-process sink that prints records through a prompt format. */
static const CriaPropSpec preview_props[] = {
  { "n", CRIA_PROP_INT, "5", 0, (double) G_MAXINT64, NULL, "how many records to print" },
  { "prompt-format", CRIA_PROP_STRING, "alpaca", 0, 0, NULL, "the prompt format to render through" },
  CRIA_PROP_END
};

typedef struct {
  CriaPromptFormat *format;
  gint64 n, shown;
} Preview;

static gpointer
preview_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  CriaPromptFormat *format = cria_prompt_format_load (cria_props_get_string (props, "prompt-format"), error);
  if (!format)
    return NULL;
  Preview *self = g_new0 (Preview, 1);
  self->format = format;
  self->n = cria_props_get_int (props, "n");
  return self;
}

static void
preview_destroy (gpointer data)
{
  Preview *self = data;
  cria_prompt_format_free (self->format);
  g_free (self);
}

static gboolean
preview_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Preview *self = data;
  g_autoptr (CriaRecord) r = record;
  if (self->shown >= self->n)
    return TRUE;
  g_autofree char *prompt = NULL, *response = NULL;
  if (!cria_prompt_format_render (self->format, r, &prompt, &response, error))
    return FALSE;
  self->shown++;
  /* On a terminal the response stands out from the prompt; in a file the text is exact. */
  gboolean tty = isatty (STDOUT_FILENO);
  printf ("%s--- record %" G_GINT64_FORMAT " (%s) ---%s\n%s%s%s%s\n", tty ? "\033[2m" : "", self->shown,
          cria_prompt_format_get_name (self->format), tty ? "\033[0m" : "", prompt, tty ? "\033[1m" : "", response,
          tty ? "\033[0m" : "");
  return TRUE;
}

static const CriaStageVTable preview_vtable = { CRIA_VTABLE_INIT (CriaStageVTable), .create = preview_create,
                                                .destroy = preview_destroy, .push = preview_push };
static const CriaProviderInfo preview_info = {
  .name = "preview",
  .description = "Prints records rendered through a prompt format (cria data --preview)",
  .example = "file location=in.jsonl ! preview n=3 prompt-format=chatml",
  .props = preview_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
preview_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_sink (plugin, &preview_info, &preview_vtable);
  return TRUE;
}

static const CriaPluginDescriptor preview_plugin = {
  CRIA_ABI_MAJOR,  CRIA_ABI_MINOR,      "cria-data-preview",
  PACKAGE_VERSION, "LGPL-2.1-or-later", "The --preview sink of cria data",
  "cria",          preview_init,
};

static void
on_signal (int sig)
{
  /* The loop notices, aborts the sinks and exits; a second signal exits now. */
  static volatile sig_atomic_t signalled;
  if (running && !signalled) {
    signalled = 1;
    cria_pipeline_cancel (running);
    return;
  }
  cria_output_abort_all ();
  _exit (130);
}

static void
progress (guint64 n, gpointer data)
{
  fprintf (stderr, "\rcria data: %" G_GUINT64_FORMAT " records read", n);
}

/* gst-launch style: each argument is a word; quote those that hold spaces so
 * that `cria data file location="a b.jsonl" ! ...` keeps the value whole. */
static char *
join_arguments (int argc, char **argv)
{
  /* One argument is the whole pipeline, quoted by the shell as a unit. */
  if (argc == 2)
    return g_strdup (argv[1]);
  GString *s = g_string_new (NULL);
  for (int i = 1; i < argc; i++) {
    if (i > 1)
      g_string_append_c (s, ' ');
    const char *eq = strchr (argv[i], '=');
    gboolean spaced = strpbrk (argv[i], " \t\n") != NULL;
    gboolean is_property = eq && eq > argv[i] &&
                           strspn (argv[i], "abcdefghijklmnopqrstuvwxyz0123456789-_") == (size_t) (eq - argv[i]);
    if (spaced && is_property) {
      g_string_append_len (s, argv[i], eq - argv[i] + 1);
      g_string_append_c (s, '"');
      for (const char *p = eq + 1; *p; p++) {
        if (*p == '"' || *p == '\\')
          g_string_append_c (s, '\\');
        g_string_append_c (s, *p);
      }
      g_string_append_c (s, '"');
    } else {
      g_string_append (s, argv[i]);
    }
  }
  return g_string_free (s, FALSE);
}

int
cria_verb_data (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[PIPELINE]");
  g_option_context_set_summary (ctx,
                                "Runs a record pipeline: a source, transforms and a sink separated by '!',\n"
                                "  cria data 'file location=in.jsonl ! head n=10 ! jsonl location=out.jsonl'\n"
                                "or the same pipeline written as JSON with -f. See cria-data(1), cria-pipeline(5).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if ((pipeline_file != NULL) == (argc > 1)) {
    g_printerr ("cria data: give either a pipeline or -f FILE\n");
    return CRIA_EXIT_USAGE;
  }
  CriaOnError mode = CRIA_ON_ERROR_STOP;
  if (on_error && !strcmp (on_error, "skip"))
    mode = CRIA_ON_ERROR_SKIP;
  else if (on_error && strcmp (on_error, "stop")) {
    g_printerr ("cria data: --on-error takes stop or skip, not '%s'\n", on_error);
    return CRIA_EXIT_USAGE;
  }
  if (seed < 0) {
    g_printerr ("cria data: --seed must not be negative\n");
    return CRIA_EXIT_USAGE;
  }

  if (preview < 0 || (preview && pipeline_file)) {
    g_printerr ("cria data: --preview takes a positive count and a pipeline string (without its sink)\n");
    return CRIA_EXIT_USAGE;
  }

  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaPipeline) pipeline = NULL;
  if (pipeline_file) {
    pipeline = cria_pipeline_load_file (reg, pipeline_file, &error);
  } else {
    g_autofree char *text = join_arguments (argc, argv);
    if (preview) {
      /* Text that has no quotes of its own is safe to embed unquoted. */
      g_autofree char *fmt = g_strdup (prompt_format ? prompt_format : "alpaca");
      g_autoptr (CriaPromptFormat) check = NULL;
      if (!cria_registry_add_static (reg, &preview_plugin, &error) || strpbrk (fmt, " \"'!") ||
          !(check = cria_prompt_format_load (fmt, &error))) {
        if (!error)
          g_set_error (&error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "'%s' is not a format name", fmt);
        /* The option typed, not the preview stage's property. */
        g_prefix_error (&error, "option --prompt-format: ");
        cria_cli_error ("data", error);
        return CRIA_EXIT_USAGE;
      }
      char *full = g_strdup_printf ("%s ! preview n=%" G_GINT64_FORMAT " prompt-format=%s", text, preview, fmt);
      g_free (text);
      text = full;
      quiet = TRUE;
    }
    pipeline = cria_pipeline_parse (reg, text, &error);
  }
  if (!pipeline) {
    cria_cli_error ("data", error);
    return CRIA_EXIT_FAILURE;
  }
  if (print_only) {
    g_autofree char *text = cria_pipeline_to_string (pipeline);
    printf ("%s\n", text);
    return CRIA_EXIT_OK;
  }
  /* The file's own on-error/seed hold unless the command line says otherwise. */
  if (on_error || !pipeline_file)
    cria_pipeline_set_on_error (pipeline, mode);
  if (seed || !pipeline_file)
    cria_pipeline_set_seed (pipeline, (guint64) seed);
  gboolean tty = isatty (STDERR_FILENO) && !quiet && !as_json;
  if (tty)
    cria_pipeline_set_progress (pipeline, progress, NULL);

  running = pipeline;
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  gboolean ok = cria_pipeline_run (pipeline, &error);
  running = NULL;
  if (tty)
    fprintf (stderr, "\r\033[K");
  if (!ok) {
    cria_cli_error ("data", error);
    return CRIA_EXIT_FAILURE;
  }
  if (as_json) {
    g_autoptr (JsonNode) summary = cria_pipeline_get_summary (pipeline);
    cria_cli_print_json (summary);
  } else if (!quiet) {
    g_autofree char *text = cria_pipeline_format_summary (pipeline);
    fputs (text, stderr);
  }
  return CRIA_EXIT_OK;
}
