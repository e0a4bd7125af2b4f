/* cria-pull.c: `cria pull` — download a model repository from the Hugging
 * Face hub into its cache, as `huggingface-cli download` does.
 *
 *   cria pull Qwen/Qwen2.5-0.5B-Instruct
 *   cria pull meta-llama/Llama-3.2-1B --include '*.json' --include '*.safetensors' --out llama-1b
 *
 * Then --model Qwen/Qwen2.5-0.5B-Instruct in any verb finds it there. The
 * HTTP side lives in core/hub (cria-hub.c), reached through cria's hub module
 * so that only this verb loads libsoup. */
#include "config.h"

#include <unistd.h>

#include "cria-cli.h"
#include "../hub/cria-hub.h"
#include "../plugin/cria-module-private.h"

int
cria_verb_pull (int argc, char **argv)
{
  g_autofree char *revision = NULL, *out = NULL;
  g_auto (GStrv) include = NULL;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
    { "revision", 'r', 0, G_OPTION_ARG_STRING, &revision, "Branch, tag or commit to download (default main)", "REV" },
    { "include", 'i', 0, G_OPTION_ARG_STRING_ARRAY, &include,
      "Download only the files matching GLOB ('*' matches '/' too; repeatable; default: every file)", "GLOB" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out,
      "Also put the files in DIR as a plain folder (hard links or copies; default: the cache only)", "DIR" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress bar", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("ORG/NAME - download a model from the Hugging Face hub");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx, "Files go to the hub cache ($HF_HOME/hub, else ~/.cache/huggingface/hub),\n"
                                         "where --model ORG/NAME finds them. HF_ENDPOINT names a mirror, HF_TOKEN\n"
                                         "a token for gated models. Prints the snapshot directory. See cria-pull(1).");
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (argc != 2) {
    g_printerr ("cria pull: usage: cria pull [--revision REV] [--include GLOB]... [--out DIR] ORG/NAME\n");
    return CRIA_EXIT_USAGE;
  }
  CriaHubOptions o = { .revision = revision,
                       .include = (const char *const *) include,
                       .out = out,
                       .progress = !quiet && isatty (STDERR_FILENO) };
  g_autoptr (GError) error = NULL;
  const CriaHubModule *hub = cria_module_load ("hub", sizeof (CriaHubModule), "cria pull", &error);
  g_autofree char *snapshot = hub ? hub->pull (argv[1], &o, &error) : NULL;
  if (!snapshot) {
    cria_cli_error ("pull", error);
    return error->code == CRIA_ERROR_INVALID_ARGUMENT ? CRIA_EXIT_USAGE : CRIA_EXIT_FAILURE;
  }
  printf ("%s\n", out ? out : snapshot);
  return CRIA_EXIT_OK;
}
