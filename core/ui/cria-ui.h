/* cria-ui.h: `cria ui`, a local web page over the data, training, evaluation
 * and chat of one working directory, served by the server of `cria serve`
 * (core/serve) from cria's ui module (cria-ui.so), so that only this verb
 * loads libsoup. cria-ui(1) documents the page and its endpoints. */
#pragma once

#include <cria/cria.h>

typedef struct {
  const char *host;       /* address to listen on; loopback unless api_key is set (the verb checks) */
  int port;               /* 0: any free port */
  const char *api_key;    /* NULL: none; else every /api and /v1 route needs "Authorization: Bearer KEY" */
  const char *root;       /* the working directory: every path of a request is confined to it */
  CriaRegistry *registry; /* borrowed: pipelines are run in the server */
  /* The cria program, spawned for `cria train` runs. */
  const char *cria_path;
  /* Opens a model (and an adapter, or NULL) for chat, through the cria
   * program's own model options (cria chat's and cria serve's); returns a
   * handle for close_model and sets *runner (owned by the handle). */
  gpointer (*open_model) (const char *model, const char *adapter, CriaLmRunner **runner, GError **error);
  void (*close_model) (gpointer handle);
} CriaUiOptions;

/* Listens, prints "cria ui: listening on http://HOST:PORT/" on stdout and
 * answers until SIGINT or SIGTERM; runs it started are stopped first. */
gboolean cria_ui_run (const CriaUiOptions *options, GError **error);

/* What cria's ui module exports as cria_module_ui. */
typedef struct {
  gsize size; /* sizeof (CriaUiModule) of the module's build */
  gboolean (*run) (const CriaUiOptions *options, GError **error);
} CriaUiModule;
