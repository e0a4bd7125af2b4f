/* cria-ui.c: `cria ui`, a local web page over a working directory: preview
 * pipelines, start and watch training runs, compare evaluations, chat.
 *
 *   cria ui --port 8800 work/
 *
 * The page and its server live in cria's ui module (core/ui), so that only
 * this verb loads libsoup; models for the chat view are opened here, with
 * the model and decoding options every verb shares. */
#include "config.h"

#include <string.h>

#include "cria-cli-model.h"
#include "../plugin/cria-module-private.h"
#include "../ui/cria-ui.h"

/* The decoding options of the command line, the defaults of chat requests. */
static CriaCliSampling sampling;
static int threads;

typedef struct {
  CriaCliModel m;
  CriaCliSampling so;
  CriaSampling s;
  CriaLmRunner *runner;
} UiModel;

static void
close_model (gpointer data)
{
  UiModel *um = data;
  g_clear_pointer (&um->runner, cria_lm_runner_free);
  cria_sampling_clear (&um->s);
  cria_cli_sampling_clear (&um->so);
  cria_cli_model_clear (&um->m);
  g_free (um);
}

static gpointer
open_model (const char *model, const char *adapter, CriaLmRunner **runner, GError **error)
{
  UiModel *um = g_new0 (UiModel, 1);
  cria_cli_model_init (&um->m);
  um->m.dir = g_strdup (model);
  um->m.adapter_dir = g_strdup (adapter);
  um->m.threads = threads;
  um->so = sampling;
  um->so.stop = g_strdupv (sampling.stop);
  um->so.prompt_format = g_strdup (sampling.prompt_format);
  cria_sampling_init (&um->s);
  if (!cria_cli_model_open (&um->m, TRUE, error) || !cria_cli_sampling_apply (&um->so, um->m.model, &um->s, error) ||
      !cria_cli_sampling_resolve_format (&um->so, &um->m, error)) {
    close_model (um);
    return NULL;
  }
  um->runner = cria_lm_runner_new (um->m.lm, um->m.tokenizer, NULL, &um->s, TRUE);
  /* The model's own chat template, as under cria serve. */
  cria_lm_runner_set_chat (um->runner, um->m.chat_dir, um->so.prompt_format);
  *runner = um->runner;
  return um;
}

static gboolean
is_loopback (const char *host)
{
  if (!strcmp (host, "localhost"))
    return TRUE;
  g_autoptr (GInetAddress) addr = g_inet_address_new_from_string (host);
  return addr && g_inet_address_get_is_loopback (addr);
}

int
cria_verb_ui (int argc, char **argv)
{
  g_autofree char *host = NULL, *api_key = NULL;
  int port = 8800;
  cria_cli_sampling_init (&sampling);
  GOptionEntry entries[] = {
    { "host", 0, 0, G_OPTION_ARG_STRING, &host,
      "Address to listen on (default 127.0.0.1; any other than loopback needs --api-key)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port to listen on (default 8800; 0 picks a free one)", "PORT" },
    { "api-key", 0, 0, G_OPTION_ARG_STRING, &api_key,
      "Require \"Authorization: Bearer KEY\" on every /api and /v1 route (the page asks for it once)", "KEY" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "Compute threads of the chat model (default: every core)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[DIR] - a local web page over a working directory");
  g_option_context_set_summary (ctx, "Serves the data, training, evaluation and chat views of DIR (default: the\n"
                                     "current directory) at http://HOST:PORT/. See cria-ui(1).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_sampling_options (&sampling));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  int status = CRIA_EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = NULL;
  g_autofree char *self = NULL;
  if (argc > 2) {
    g_printerr ("cria ui: takes one working directory at most (see cria ui --help)\n");
    goto done;
  }
  if (api_key && !*api_key) {
    g_printerr ("cria ui: the API key is empty\n");
    goto done;
  }
  if (host && !is_loopback (host) && !api_key) {
    g_printerr ("cria ui: --host %s is not loopback: give --api-key KEY so that others cannot use the page\n", host);
    goto done;
  }
  status = CRIA_EXIT_FAILURE;
  reg = cria_cli_load_registry ();
  self = g_file_read_link ("/proc/self/exe", NULL);
  CriaUiOptions options = {
    .host = host ? host : "127.0.0.1",
    .port = port,
    .api_key = api_key,
    .root = argc > 1 ? argv[1] : ".",
    .registry = reg,
    .cria_path = self ? self : argv[0],
    .open_model = open_model,
    .close_model = close_model,
  };
  const CriaUiModule *ui = cria_module_load ("ui", sizeof (CriaUiModule), "cria ui", &error);
  if (ui && ui->run (&options, &error))
    status = CRIA_EXIT_OK;
  if (error)
    cria_cli_error ("ui", error);
done:
  cria_cli_sampling_clear (&sampling);
  return status;
}
