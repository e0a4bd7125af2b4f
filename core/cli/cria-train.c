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

/* Reads -f FILE; the options it names count as given (`given`). */
static gboolean
load_config (CriaProps *props, const char *path, GPtrArray *given, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return FALSE;
  if (!cria_train_options_set_json (props, root, path, error))
    return FALSE;
  g_autoptr (GList) names = json_object_get_members (json_node_get_object (root));
  for (GList *l = names; l; l = l->next)
    g_ptr_array_add (given, g_strdup (l->data));
  return TRUE;
}

static gboolean
set_option (CriaProps *props, const char *name, const char *value, GError **error)
{
  if (cria_props_set (props, name, value, error))
    return TRUE;
  cria_cli_say_option (*error);
  return FALSE;
}

typedef struct {
  const CriaPropSpec *specs;
  char **values;
} BoolOptions;

/* --NAME alone is true; --NAME=false and --NAME=true say which, where a
 * plain flag would take `--shuffle=false` for true. */
static gboolean
on_bool_option (const char *option_name, const char *value, gpointer data, GError **error)
{
  (void) error;
  BoolOptions *b = data;
  const char *name = option_name + strspn (option_name, "-");
  for (guint i = 0; b->specs[i].name; i++)
    if (!strcmp (b->specs[i].name, name)) {
      g_free (b->values[i]);
      b->values[i] = g_strdup (value ? value : "true");
    }
  return TRUE;
}

int
cria_verb_train (int argc, char **argv)
{
  const CriaPropSpec *specs = cria_train_option_specs ();
  guint n = 0;
  while (specs[n].name)
    n++;
  g_autofree char **values = g_new0 (char *, n);
  BoolOptions bools = { specs, values };
  g_autofree char *config = NULL;
  g_autoptr (GArray) entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  GOptionEntry f = {
    "config", 'f', 0, G_OPTION_ARG_FILENAME, &config, "Read options from a JSON object (default: none)", "FILE"
  };
  g_array_append_val (entries, f);
  /* --help shows each option's default and choices, from the same table. */
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++) {
    gboolean is_bool = specs[i].type == CRIA_PROP_BOOL;
    const char *def = specs[i].default_value;
    char *blurb = (specs[i].flags & CRIA_PROP_FLAG_REQUIRED)
                      ? g_strdup_printf ("%s (required; with --resume, the run's)", specs[i].blurb)
                  : strstr (specs[i].blurb, "default") ? g_strdup (specs[i].blurb)
                  : def && !is_bool                    ? g_strdup_printf ("%s (default: %s)", specs[i].blurb, def)
                  : is_bool ? g_strdup_printf ("%s (default: %s)", specs[i].blurb, def ? def : "false")
                            : g_strdup_printf ("%s (default: none)", specs[i].blurb);
    g_ptr_array_add (texts, blurb);
    char *arg = specs[i].type == CRIA_PROP_ENUM     ? g_ascii_strup (specs[i].choices, -1)
                : specs[i].type == CRIA_PROP_INT    ? g_strdup ("N")
                : specs[i].type == CRIA_PROP_DOUBLE ? g_strdup ("X")
                                                    : g_strdup ("VALUE");
    g_ptr_array_add (texts, arg);
    GOptionEntry e = { specs[i].name,
                       0,
                       is_bool ? G_OPTION_FLAG_OPTIONAL_ARG : 0,
                       is_bool ? G_OPTION_ARG_CALLBACK : G_OPTION_ARG_STRING,
                       is_bool ? (gpointer) on_bool_option : (gpointer) &values[i],
                       blurb,
                       is_bool ? NULL : arg };
    g_array_append_val (entries, e);
  }
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- fine-tune a model with an adapter");
  GOptionGroup *main_group = g_option_group_new (NULL, NULL, NULL, &bools, NULL);
  g_option_group_add_entries (main_group, (GOptionEntry *) (void *) entries->data);
  g_option_context_set_main_group (ctx, main_group);
  g_option_context_set_description (ctx, "Options may also be given in a JSON file (-f); the command line wins.\n"
                                         "See cria-train(1).");
  gboolean parsed = cria_cli_parse (ctx, &argc, &argv);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaProps) props = cria_props_new (specs);
  g_autoptr (GPtrArray) given = g_ptr_array_new_with_free_func (g_free);
  gboolean usable = parsed && argc <= 1 && (!config || load_config (props, config, given, &error));
  for (guint i = 0; usable && i < n; i++) {
    usable = !(values[i] && !set_option (props, specs[i].name, values[i], &error));
    if (values[i])
      g_ptr_array_add (given, g_strdup (specs[i].name));
  }
  g_ptr_array_add (given, NULL);
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
  /* --resume DIR alone: the run's own options, from its checkpoint (an
   * unreadable one is a failure, not a usage error). */
  if (!cria_train_options_from_checkpoint (props, (const char *const *) given->pdata, &error)) {
    cria_cli_error ("train", error);
    return CRIA_EXIT_FAILURE;
  }
  if (!cria_props_check_required (props, &error)) {
    cria_cli_say_option (error);
    cria_cli_error ("train", error);
    return CRIA_EXIT_USAGE;
  }
  /* --model and --tokenizer may name a model pulled from the hub. */
  const char *hub_options[] = { "model", "tokenizer" };
  for (guint i = 0; i < G_N_ELEMENTS (hub_options); i++) {
    g_autofree char *path = g_strdup (cria_props_get_string (props, hub_options[i]));
    if (!cria_cli_resolve_model (&path, &error) || (path && !set_option (props, hub_options[i], path, &error))) {
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
