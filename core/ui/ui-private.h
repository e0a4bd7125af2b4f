/* ui-private.h: what the parts of the ui module share. */
#pragma once

#include <libsoup/soup.h>

#include "cria-ui.h"
#include "../serve/cria-server.h"

typedef struct {
  CriaUiOptions o;
  char *root;         /* the working directory, absolute with its links resolved */
  char *static_dir;   /* share/ui */
  CriaServer *server; /* set at the first request */
  GHashTable *runs;   /* run directory (absolute) -> UiRun*: the runs this server started */
  GList *tails;       /* the train-log.jsonl streams open (ui-train.c) */
  /* chat: the model the /v1 routes answer with */
  gpointer model_handle;
  CriaLmRunner *runner;
  char *model_key; /* "MODEL\nADAPTER" */
  char *model_name;
  char *loading;    /* the name of the model a thread is loading, NULL when none */
  gboolean closing; /* the server is gone: a load that ends answers nobody */
  /* with an adapter, the base model beside it (POST /api/chat/base) */
  gpointer base_handle;
  CriaLmRunner *base_runner;
  char *base_name;
  guint base_jobs;     /* its requests admitted (main thread) */
  GList *base_cancels; /* their GCancellable*, cancelled when the server goes */
  GMutex base_lock;    /* one generation at a time on it */
  GMutex data_lock;    /* one pipeline at a time: they share the preview sink's slot */
} Ui;

/* Answers with a JSON body; `node` is taken. */
void ui_respond_json (SoupServerMessage *msg, guint status, JsonNode *node);
/* {"error": {"message": MESSAGE}} */
void ui_respond_error (SoupServerMessage *msg, guint status, const char *message);
/* 200, text/event-stream, chunked: the body is appended as events come. */
void ui_respond_events (SoupServerMessage *msg);
/* The request body as a JSON object (a 400 answered and NULL otherwise). */
JsonObject *ui_request_object (SoupServerMessage *msg);
/* `path` (relative to the working directory, or absolute) as an absolute
 * path with its links resolved; an error when that leaves the working
 * directory. The file need not exist. */
char *ui_confine (Ui *ui, const char *path, GError **error);

/* POST /api/data */
void ui_data_handle (Ui *ui, SoupServerMessage *msg);
gboolean ui_data_register (Ui *ui, GError **error);
/* GET /api/formats */
void ui_formats_handle (SoupServerMessage *msg);

/* POST /api/chat/open, POST /api/chat/base (ui-chat.c) */
void ui_chat_open (Ui *ui, SoupServerMessage *msg);
void ui_chat_base (Ui *ui, SoupServerMessage *msg);
/* When the server is gone: waits for a model loading. */
void ui_chat_stop (Ui *ui);
/* Closes the models. */
void ui_chat_clear (Ui *ui);

/* /api/train/... ; `what` is the path after /api/train/ */
void ui_train_handle (Ui *ui, SoupServerMessage *msg, const char *what, GHashTable *query);
void ui_train_stop_all (Ui *ui);
/* The value destructor of Ui.runs. */
void ui_train_run_free (gpointer run);
