/* cria-train.c: `cria train` — fine-tune a model with an adapter.
 *
 *   cria train --model tiny-gpt2 --data train.jsonl --adapter 'lora r=8 target-modules=c_attn' --out run1
 *   cria train -f run.json --resume run1/checkpoints/checkpoint-200
 *
 * Every option comes from the trainer's table (cria-trainer.h), so the
 * command line, the -f JSON file and cria-train(1) agree; an unknown option
 * in either is an error before anything is loaded. Ctrl-C saves a checkpoint
 * after the current step and exits. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "cria-cli.h"

static void
on_signal (int sig)
{
  (void) sig;
  static volatile sig_atomic_t seen;
  if (seen)
    _exit (130); /* a second Ctrl-C does not wait for the step */
  seen = 1;
  cria_train_interrupt ();
}

static gboolean
load_config (CriaProps *props, const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return FALSE;
  return cria_train_options_set_json (props, root, path, error);
}

int
cria_verb_train (int argc, char **argv)
{
  const CriaPropSpec *specs = cria_train_option_specs ();
  guint n = 0;
  while (specs[n].name)
    n++;
  g_autofree char **values = g_new0 (char *, n);
  g_autofree gboolean *flags = g_new0 (gboolean, n);
  g_autofree char *config = NULL;
  g_autoptr (GArray) entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  GOptionEntry f = { "config", 'f', 0, G_OPTION_ARG_FILENAME, &config, "Read options from a JSON object", "FILE" };
  g_array_append_val (entries, f);
  for (guint i = 0; i < n; i++) {
    gboolean is_bool = specs[i].type == CRIA_PROP_BOOL;
    GOptionEntry e = { specs[i].name,
                       0,
                       0,
                       is_bool ? G_OPTION_ARG_NONE : G_OPTION_ARG_STRING,
                       is_bool ? (gpointer) &flags[i] : (gpointer) &values[i],
                       specs[i].blurb,
                       is_bool ? NULL : "VALUE" };
    g_array_append_val (entries, e);
  }
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- fine-tune a model with an adapter");
  g_option_context_add_main_entries (ctx, (GOptionEntry *) (void *) entries->data, NULL);
  g_option_context_set_description (ctx, "Options may also be given in a JSON file (-f); the command line wins.\n"
                                         "See cria-train(1).");
  gboolean parsed = cria_cli_parse (ctx, &argc, &argv);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaProps) props = cria_props_new (specs);
  gboolean usable = parsed && argc <= 1 && (!config || load_config (props, config, &error));
  for (guint i = 0; usable && i < n; i++)
    usable = !(values[i] && !cria_props_set (props, specs[i].name, values[i], &error)) &&
             !(flags[i] && !cria_props_set (props, specs[i].name, "true", &error));
  /* The option strings are ours whatever happened. */
  for (guint i = 0; i < n; i++)
    g_free (values[i]);
  if (!usable) {
    if (parsed && argc > 1)
      g_printerr ("cria train: unexpected argument '%s' (options are --NAME VALUE)\n", argv[1]);
    else if (error)
      cria_cli_error ("train", error);
    return CRIA_EXIT_USAGE;
  }
  if (!cria_props_check_required (props, &error)) {
    cria_cli_error ("train", error);
    return CRIA_EXIT_USAGE;
  }
  /* --model and --tokenizer may name a model pulled from the hub. */
  const char *hub_options[] = { "model", "tokenizer" };
  for (guint i = 0; i < G_N_ELEMENTS (hub_options); i++) {
    g_autofree char *path = g_strdup (cria_props_get_string (props, hub_options[i]));
    if (!cria_cli_resolve_model (&path, &error) || (path && !cria_props_set (props, hub_options[i], path, &error))) {
      cria_cli_error ("train", error);
      return CRIA_EXIT_FAILURE;
    }
  }
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  gboolean ok = cria_train_run (reg, props, &error);
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);
  if (!ok) {
    cria_cli_error ("train", error);
    return g_error_matches (error, CRIA_ERROR, CRIA_ERROR_CANCELLED) ? 130 : CRIA_EXIT_FAILURE;
  }
  return CRIA_EXIT_OK;
}
