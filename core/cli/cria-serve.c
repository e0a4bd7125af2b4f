/* cria-serve.c: `cria serve`, an OpenAI-compatible HTTP server on a model.
 *
 *   cria serve --model ../shared/models/stories260K --port 8080 --max-new-tokens 128
 *
 * The decoding options are the defaults of requests that leave the field
 * out; the HTTP side lives in core/serve (cria-server.c), reached through
 * cria's serve module so that only this verb loads libsoup. */
#include "config.h"

#include <string.h>

#include <cria/cria-input.h>

#include "cria-cli-model.h"
#include "../plugin/cria-module-private.h"
#include "../serve/cria-server.h"

int
cria_verb_serve (int argc, char **argv)
{
  CriaCliModel m;
  CriaCliSampling so;
  cria_cli_model_init (&m);
  cria_cli_sampling_init (&so);
  g_autofree char *host = NULL, *name = NULL, *base = NULL, *api_key = NULL, *key_file = NULL, *key_text = NULL;
  g_auto (GStrv) cors = NULL;
  int port = 8080, max_concurrent = 16, batch = 16, max_body_kib = 1024, header_timeout = 10, idle_timeout = 60;
  gboolean no_special = FALSE, log_requests = FALSE;
  GOptionEntry entries[] = {
    { "host", 0, 0, G_OPTION_ARG_STRING, &host, "Address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)",
      "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port to listen on (default 8080; 0 picks a free one)", "PORT" },
    { "served-model-name", 0, 0, G_OPTION_ARG_STRING, &name,
      "Model id in /v1/models and in answers (default: the model directory's name)", "NAME" },
    { "max-concurrent", 0, 0, G_OPTION_ARG_INT, &max_concurrent,
      "Requests admitted at once, running or waiting (default 16); more get 503", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch,
      "Requests decoded together, one forward pass for all (default 16; 1: one at a time); answers do not change",
      "N" },
    { "max-body", 0, 0, G_OPTION_ARG_INT, &max_body_kib, "Largest request body in KiB (default 1024); larger get 413",
      "KIB" },
    { "header-timeout", 0, 0, G_OPTION_ARG_INT, &header_timeout,
      "Seconds a client has from connecting to the end of its request headers (default 10)", "SECONDS" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &idle_timeout,
      "Seconds a connection may send or take nothing while no request of it runs "
      "(default 60)",
      "SECONDS" },
    { "no-add-special", 0, 0, G_OPTION_ARG_NONE, &no_special,
      "Do not add the tokenizer's special tokens (BOS) to prompts", NULL },
    { "log-requests", 0, 0, G_OPTION_ARG_NONE, &log_requests,
      "Print one line per request on stderr: address, method, path, status, seconds", NULL },
    { "api-key", 0, 0, G_OPTION_ARG_STRING, &api_key,
      "Require \"Authorization: Bearer KEY\" on every route but /health (default: none; see --api-key-file)", "KEY" },
    { "api-key-file", 0, 0, G_OPTION_ARG_FILENAME, &key_file,
      "Read the API key from the first line of FILE (keeps it out of the process list; default: none)", "FILE" },
    { "cors-origin", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cors,
      "Let browser pages from ORIGIN (e.g. http://localhost:3000; * for any) call the API (repeatable; "
      "default: none)",
      "ORIGIN" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- serve a model over an OpenAI-compatible HTTP API");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_model_options (&m));
  g_option_context_add_group (ctx, cria_cli_sampling_options (&so));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  int status = CRIA_EXIT_FAILURE;
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaLmRunner) runner = NULL;
  CriaSampling s;
  cria_sampling_init (&s);
  if (argc > 1 || max_concurrent < 1 || batch < 1 || max_body_kib < 1 || header_timeout < 1 || idle_timeout < 1) {
    g_printerr ("cria serve: %s (see cria serve --help)\n",
                argc > 1 ? "takes no arguments"
                         : "--max-concurrent, --batch, --max-body, --header-timeout and --idle-timeout must be at "
                           "least 1");
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (api_key && key_file) {
    g_printerr ("cria serve: give --api-key or --api-key-file, not both (see cria serve --help)\n");
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (key_file) {
    if (!cria_file_get_contents (key_file, 64 * 1024, &key_text, NULL, &error))
      goto done;
    key_text[strcspn (key_text, "\r\n")] = '\0';
    api_key = g_strdup (g_strstrip (key_text));
  }
  if (api_key && !*api_key) {
    g_printerr ("cria serve: the API key is empty%s%s\n", key_file ? " in " : "", key_file ? key_file : "");
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (!cria_cli_model_open (&m, TRUE, &error) || !cria_cli_sampling_apply (&so, m.model, &s, &error) ||
      !cria_cli_sampling_resolve_format (&so, &m, &error))
    goto done;
  runner = cria_lm_runner_new (m.lm, m.tokenizer, NULL, &s, !no_special);
  /* Conversations through the model's own chat template, unless -p (or the
   * adapter's recorded format) names another. */
  cria_lm_runner_set_chat (runner, m.chat_dir, so.prompt_format);
  cria_lm_runner_set_batch (runner, (guint) MIN (batch, max_concurrent));
  base = g_path_get_basename (m.name);
  CriaServerOptions options = {
    .host = host ? host : "127.0.0.1",
    .port = port,
    .model_name = name ? name : base,
    .max_concurrent = (guint) max_concurrent,
    .max_body = (gsize) max_body_kib * 1024,
    .runner = runner,
    .log_requests = log_requests,
    .header_timeout = (guint) header_timeout,
    .idle_timeout = (guint) idle_timeout,
    .api_key = api_key,
    .cors_origins = (const char *const *) cors,
  };
  const CriaServeModule *serve = cria_module_load ("serve", sizeof (CriaServeModule), "cria serve", &error);
  if (!serve || !serve->run (&options, &error))
    goto done;
  status = CRIA_EXIT_OK;
done:
  if (error)
    cria_cli_error ("serve", error);
  g_clear_pointer (&runner, cria_lm_runner_free);
  cria_sampling_clear (&s);
  cria_cli_sampling_clear (&so);
  cria_cli_model_clear (&m);
  return status;
}
