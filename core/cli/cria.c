/* cria.c: the cria command: global options and dispatch to verbs. */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cria-cli.h"

void cria_paths_set_uninstalled (const char *plugin_dir, const char *data_dir);

static const CriaVerb verbs[] = {
  { "chat", "talk with a model; replies stream as they are generated", cria_verb_chat },
  { "data", "build instruction datasets with a record pipeline", cria_verb_data },
  { "eval", "generate answers for a dataset, score them with metrics, compare base and adapted", cria_verb_eval },
  { "export", "write a model (adapter merged) or a LoRA adapter as GGUF for llama.cpp and Ollama", cria_verb_export },
  { "generate", "generate text from a model for each prompt, streamed as it comes", cria_verb_generate },
  { "inspect", "list plugins and providers, or show one provider's properties", cria_verb_inspect },
  { "logits", "write the logits of every position of a text or of token ids", cria_verb_logits },
  { "merge", "fold a trained adapter into its base model as a Hugging Face checkpoint", cria_verb_merge },
  { "metric", "score generations against references (BLEU, ROUGE, SQuAD EM/F1, distinct-n)", cria_verb_metric },
  { "model", "describe and check a Hugging Face model directory", cria_verb_model },
  { "pull", "download a model from the Hugging Face hub into its cache (--model ORG/NAME finds it)", cria_verb_pull },
  { "serve", "serve a model over an OpenAI-compatible HTTP API (chat, completions, streaming)", cria_verb_serve },
  { "tokenize", "print the token ids of text, or decode ids, with a model's tokenizer", cria_verb_tokenize },
  { "tokenizer", "train a byte-level BPE tokenizer and write its tokenizer.json", cria_verb_tokenizer },
  { "train", "fine-tune a model with LoRA or full fine-tuning; checkpoints, resume, loss curve", cria_verb_train },
  { "ui", "a local web page: preview pipelines, watch and start training, compare, chat", cria_verb_ui },
};

static char **plugin_paths;  /* --plugin-path after the verb */
static char **leading_paths; /* --plugin-path before it */

static const GOptionEntry common_entries[] = {
  { "plugin-path", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &plugin_paths,
    "Search DIR for plugins before the default paths (repeatable)", "DIR" },
  { NULL },
};

/* A build tree holds a cria-uninstalled file beside the cria program (or its
 * libtool wrapper): there the program uses the plugins and data it was built with. */
static void
detect_uninstalled (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  if (!exe)
    return;
  g_autofree char *dir = g_path_get_dirname (exe);
  if (g_str_has_suffix (dir, "/.libs")) {
    char *parent = g_path_get_dirname (dir);
    g_free (dir);
    dir = parent;
  }
  g_autofree char *marker = g_build_filename (dir, "cria-uninstalled.ini", NULL);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_file (kf, marker, G_KEY_FILE_NONE, NULL))
    return;
  g_autofree char *plugins = g_key_file_get_string (kf, "uninstalled", "plugins", NULL);
  g_autofree char *data = g_key_file_get_string (kf, "uninstalled", "data", NULL);
  if (plugins && data)
    cria_paths_set_uninstalled (plugins, data);
  g_autofree char *scanner = g_key_file_get_string (kf, "uninstalled", "scanner", NULL);
  if (scanner)
    g_setenv ("CRIA_PLUGIN_SCANNER", scanner, FALSE);
  g_autofree char *modules = g_key_file_get_string (kf, "uninstalled", "modules", NULL);
  if (modules)
    g_setenv ("CRIA_MODULE_DIR", modules, FALSE);
}

CriaRegistry *
cria_cli_load_registry (void)
{
  CriaRegistry *reg = cria_registry_new ();
  for (char **p = leading_paths; p && *p; p++)
    cria_registry_add_path (reg, *p);
  for (char **p = plugin_paths; p && *p; p++)
    cria_registry_add_path (reg, *p);
  cria_registry_add_default_paths (reg);
  /* Only the plugins a run uses are loaded, found through an index per
   * search path (so that runs with other --plugin-path directories do not
   * rewrite each other's). */
  g_autofree char *joined = g_strjoinv ("\n", (char **) cria_registry_get_paths (reg));
  g_autofree char *name = g_strdup_printf ("registry-%08x.ini", g_str_hash (joined));
  g_autofree char *cache = g_build_filename (g_get_user_cache_dir (), "cria-" CRIA_API_VERSION, name, NULL);
  cria_registry_scan_lazily (reg, cache);
  return reg;
}

gboolean
cria_cli_parse (GOptionContext *ctx, int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, common_entries, NULL);
  /* --help shows every option, those of the groups (model, decoding) too:
   * GOption keeps them for --help-all, where nobody looks. */
  for (int i = 1; i < *argc && strcmp ((*argv)[i], "--"); i++)
    if (!strcmp ((*argv)[i], "--help") || !strcmp ((*argv)[i], "-h") || !strcmp ((*argv)[i], "-?"))
      (*argv)[i] = (char *) "--help-all";
  if (!g_option_context_parse (ctx, argc, argv, &error)) {
    g_printerr ("cria: %s (see %s --help)\n", error->message, (*argv)[0]);
    return FALSE;
  }
  return TRUE;
}

void
cria_cli_error (const char *verb, const GError *error)
{
  g_printerr ("cria %s: %s\n", verb, error->message);
}

void
cria_cli_say_option (GError *error)
{
  g_autoptr (GRegex) re = g_regex_new ("property '([a-z0-9-]+)'", 0, 0, NULL);
  char *fixed = g_regex_replace (re, error->message, -1, 0, "option --\\1", 0, NULL);
  if (fixed) {
    g_free (error->message);
    error->message = fixed;
  }
}

gboolean
cria_cli_resolve_model (char **path, GError **error)
{
  if (!*path)
    return TRUE;
  char *dir = cria_hf_resolve_model (*path, error);
  if (!dir)
    return FALSE;
  g_free (*path);
  *path = dir;
  return TRUE;
}

void
cria_cli_print_json (JsonNode *node)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, node);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

static void
usage (FILE *f)
{
  fprintf (f, "Usage: cria [--version] [--help] VERB [OPTIONS...]\n\n"
              "cria builds instruction datasets and fine-tunes language models.\n\nVerbs:\n");
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++)
    fprintf (f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf (f, "\nRun 'cria VERB --help' for a verb's options; see cria(1).\n");
}

/* libcria reports through g_log (cria-log.h); the command shows its messages
 * as a person reads them: notes as plain lines on stderr, a status line
 * rewritten in place (ended before any other line), results on stdout.
 * Everything else keeps GLib's own form. */
static gboolean status_open;

static GLogWriterOutput
write_log (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  const char *domain = NULL, *message = NULL, *kind = NULL, *last = NULL;
  for (gsize i = 0; i < n_fields; i++) {
    const char *v = fields[i].length < 0 ? fields[i].value : NULL;
    if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
      domain = v;
    else if (strcmp (fields[i].key, "MESSAGE") == 0)
      message = v;
    else if (strcmp (fields[i].key, CRIA_LOG_FIELD_KIND) == 0)
      kind = v;
    else if (strcmp (fields[i].key, "CRIA_LAST") == 0)
      last = v;
  }
  gboolean ours = (level & G_LOG_LEVEL_MASK) == G_LOG_LEVEL_MESSAGE && message && domain &&
                  strcmp (domain, CRIA_LOG_DOMAIN) == 0;
  if (status_open && !(ours && kind && strcmp (kind, "status") == 0)) {
    fputc ('\n', stderr);
    status_open = FALSE;
  }
  if (!ours)
    return g_log_writer_default (level, fields, n_fields, user_data);
  if (kind && strcmp (kind, "result") == 0) {
    printf ("%s\n", message);
    fflush (stdout);
  } else if (kind && strcmp (kind, "status") == 0) {
    gboolean end = last && strcmp (last, "1") == 0;
    fprintf (stderr, "\r%s%s", message, end ? "\n" : "");
    status_open = !end;
  } else {
    fprintf (stderr, "%s\n", message);
  }
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  g_log_set_writer_func (write_log, NULL, NULL);
  detect_uninstalled ();
  /* Options common to every verb may also come before the verb. */
  g_autoptr (GPtrArray) leading = g_ptr_array_new ();
  while (argc >= 2 && g_str_has_prefix (argv[1], "--plugin-path")) {
    const char *value = argv[1][13] == '=' ? argv[1] + 14 : NULL;
    if (!value && argv[1][13] == '\0' && argc >= 3) {
      value = argv[2];
      argv++;
      argc--;
    }
    if (!value) {
      fprintf (stderr, "cria: %s needs a directory\n", argv[1]);
      return CRIA_EXIT_USAGE;
    }
    g_ptr_array_add (leading, (gpointer) value);
    argv++;
    argc--;
  }
  if (leading->len) {
    g_ptr_array_add (leading, NULL);
    leading_paths = g_strdupv ((char **) leading->pdata);
  }
  if (argc < 2) {
    usage (stderr);
    return CRIA_EXIT_USAGE;
  }
  if (!strcmp (argv[1], "--version") || !strcmp (argv[1], "-V")) {
    printf ("cria %s (plugin ABI %d.%d)\n", CRIA_VERSION, CRIA_ABI_MAJOR, CRIA_ABI_MINOR);
    return CRIA_EXIT_OK;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h") || !strcmp (argv[1], "help")) {
    usage (stdout);
    return CRIA_EXIT_OK;
  }
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++) {
    if (strcmp (argv[1], verbs[i].name) == 0) {
      /* The verb sees "cria VERB" as its program name. */
      g_autofree char *prog = g_strdup_printf ("cria %s", verbs[i].name);
      argv[1] = prog;
      return verbs[i].run (argc - 1, argv + 1);
    }
  }
  fprintf (stderr, "cria: unknown verb '%s'\n\n", argv[1]);
  usage (stderr);
  return CRIA_EXIT_USAGE;
}
