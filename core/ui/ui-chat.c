/* ui-chat.c: the chat view's models. POST /api/chat/open loads a model (and
 * an adapter) in a thread, so that the server goes on answering while it
 * reads weights; the model with its adapter answers on /v1 (serve's code),
 * and with an adapter the base model is loaded beside it and answers POST
 * /api/chat/base, the same request and stream as /v1/chat/completions, so
 * that the page can send one message to both and show them side by side.
 *
 *   POST /api/chat/open {"model": "model", "adapter": "run1"}  -> {"model": "model+run1", "base": "model"}
 *   POST /api/chat/base {"messages": [...], "stream": true}    -> data: {chunk} ... data: [DONE] */
#include "config.h"

#include <string.h>

#include "ui-private.h"
#include "../serve/serve-request.h"

/* ---- loading ------------------------------------------------------------- */

typedef struct {
  Ui *ui;
  SoupServerMessage *msg;
  gulong on_gone;
  gboolean gone;
  char *model_dir, *adapter_dir, *key, *name, *base_name;
  /* the model with its adapter (/v1), and with an adapter the base alone */
  gpointer handle, base_handle;
  CriaLmRunner *runner, *base_runner;
  GError *error;
} ChatLoad;

static void
chat_load_free (ChatLoad *load)
{
  if (load->on_gone)
    g_signal_handler_disconnect (load->msg, load->on_gone);
  g_object_unref (load->msg);
  g_free (load->model_dir);
  g_free (load->adapter_dir);
  g_free (load->key);
  g_free (load->name);
  g_free (load->base_name);
  g_clear_error (&load->error);
  g_free (load);
}

static void
chat_answer (Ui *ui, SoupServerMessage *msg)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "model", ui->model_name);
  if (ui->base_name)
    json_object_set_string_member (o, "base", ui->base_name);
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, o);
  ui_respond_json (msg, SOUP_STATUS_OK, root);
}

static void
load_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  ChatLoad *load = data;
  Ui *ui = load->ui;
  load->handle = ui->o.open_model (load->model_dir, load->adapter_dir, &load->runner, &load->error);
  if (load->handle && load->adapter_dir) {
    load->base_handle = ui->o.open_model (load->model_dir, NULL, &load->base_runner, &load->error);
    if (!load->base_handle)
      g_clear_pointer (&load->handle, ui->o.close_model);
  }
  g_task_return_boolean (task, TRUE);
}

static void
close_loaded (Ui *ui, ChatLoad *load)
{
  g_clear_pointer (&load->handle, ui->o.close_model);
  g_clear_pointer (&load->base_handle, ui->o.close_model);
}

/* The models open (their names are the server's until it is told others). */
static void
close_models (Ui *ui)
{
  g_clear_pointer (&ui->model_handle, ui->o.close_model);
  g_clear_pointer (&ui->base_handle, ui->o.close_model);
  g_clear_pointer (&ui->model_name, g_free);
  g_clear_pointer (&ui->model_key, g_free);
  g_clear_pointer (&ui->base_name, g_free);
}

/* Main thread: the models loaded (or not) become the ones that answer. */
static void
load_done (GObject *source, GAsyncResult *res, gpointer data)
{
  ChatLoad *load = data;
  Ui *ui = load->ui;
  g_clear_pointer (&ui->loading, g_free);
  guint status = SOUP_STATUS_OK;
  const char *why = NULL;
  if (!load->handle) {
    status = SOUP_STATUS_UNPROCESSABLE_ENTITY;
    why = load->error->message;
  } else if (ui->closing || ui->base_jobs > 0 || !cria_server_set_runner (ui->server, load->runner, load->name)) {
    close_loaded (ui, load);
    status = SOUP_STATUS_CONFLICT;
    why = "the model is answering a request; try again when it is done";
  } else {
    close_models (ui);
    ui->model_handle = g_steal_pointer (&load->handle);
    ui->runner = load->runner;
    /* The server borrows the name. */
    ui->model_name = g_steal_pointer (&load->name);
    ui->model_key = g_steal_pointer (&load->key);
    ui->base_handle = g_steal_pointer (&load->base_handle);
    ui->base_runner = load->base_runner;
    ui->base_name = ui->base_handle ? g_steal_pointer (&load->base_name) : NULL;
  }
  if (!load->gone && !ui->closing) {
    if (why)
      ui_respond_error (load->msg, status, why);
    else
      chat_answer (ui, load->msg);
    soup_server_message_unpause (load->msg);
  }
  chat_load_free (load);
}

static void
load_gone (SoupServerMessage *msg, gpointer data)
{
  ((ChatLoad *) data)->gone = TRUE;
}

/* POST /api/chat/open {"model": DIR, "adapter": DIR}: the model the /v1
 * routes answer with from now on, under the name it returns, loaded in a
 * thread (one load at a time); with an adapter, the base model too. */
void
ui_chat_open (Ui *ui, SoupServerMessage *msg)
{
  g_autoptr (JsonObject) req = ui_request_object (msg);
  if (!req)
    return;
  const char *model = cria_json_get_string (req, "model", NULL);
  const char *adapter = cria_json_get_string (req, "adapter", NULL);
  if (adapter && !*adapter)
    adapter = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *model_dir = model ? ui_confine (ui, model, &error) : NULL;
  g_autofree char *adapter_dir = adapter && model_dir ? ui_confine (ui, adapter, &error) : NULL;
  if (!model || !model_dir || (adapter && !adapter_dir)) {
    ui_respond_error (msg, model ? SOUP_STATUS_FORBIDDEN : SOUP_STATUS_BAD_REQUEST,
                      error ? error->message : "model: a model directory is required");
    return;
  }
  g_autofree char *key = g_strdup_printf ("%s\n%s", model_dir, adapter_dir ? adapter_dir : "");
  if (!g_strcmp0 (key, ui->model_key)) {
    chat_answer (ui, msg);
    return;
  }
  if (ui->loading) {
    g_autofree char *why = g_strdup_printf ("the model %s is loading; try again when it is done", ui->loading);
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, why);
    return;
  }
  ChatLoad *load = g_new0 (ChatLoad, 1);
  load->ui = ui;
  load->msg = g_object_ref (msg);
  load->model_dir = g_steal_pointer (&model_dir);
  load->adapter_dir = g_steal_pointer (&adapter_dir);
  load->key = g_steal_pointer (&key);
  load->base_name = g_path_get_basename (load->model_dir);
  g_autofree char *abase = load->adapter_dir ? g_path_get_basename (load->adapter_dir) : NULL;
  load->name = g_strconcat (load->base_name, abase ? "+" : "", abase, NULL);
  load->on_gone = g_signal_connect (msg, "disconnected", G_CALLBACK (load_gone), load);
  ui->loading = g_strdup (load->name);
  soup_server_message_pause (msg);
  g_autoptr (GTask) task = g_task_new (NULL, NULL, load_done, load);
  g_task_set_task_data (task, load, NULL);
  g_task_run_in_thread (task, load_thread);
}

void
ui_chat_stop (Ui *ui)
{
  /* A model still loading is waited for: its thread uses the options. */
  ui->closing = TRUE;
  while (ui->loading)
    g_main_context_iteration (NULL, TRUE);
  /* Base requests still running end at their cancellation and post
   * their last piece. */
  for (GList *l = ui->base_cancels; l; l = l->next)
    g_cancellable_cancel (l->data);
  while (ui->base_jobs)
    g_main_context_iteration (NULL, TRUE);
}

void
ui_chat_clear (Ui *ui)
{
  close_models (ui);
  g_free (ui->loading);
}

/* ---- the base model's answers ---------------------------------------------- */

typedef struct {
  Ui *ui;
  SoupServerMessage *msg;
  gulong on_gone;
  gboolean gone; /* main thread */
  GCancellable *cancel;
  ServeRequest req;
  ServeAnswer answer;
  char *id, *model;
} BaseChat;

static void
base_chat_clear (gpointer data)
{
  BaseChat *c = data;
  if (c->on_gone)
    g_signal_handler_disconnect (c->msg, c->on_gone);
  g_object_unref (c->msg);
  g_object_unref (c->cancel);
  serve_request_clear (&c->req);
  g_free (c->id);
  g_free (c->model);
}

static void
base_chat_unref (BaseChat *c)
{
  g_atomic_rc_box_release_full (c, base_chat_clear);
}

/* What the worker sends the main thread: an event of the stream, or (with
 * a status) the whole answer; `last` ends the request. */
typedef struct {
  BaseChat *c;
  char *text;
  guint status;
  gboolean last;
} Piece;

static gboolean
deliver (gpointer data)
{
  Piece *p = data;
  BaseChat *c = p->c;
  if (!c->gone && !c->ui->closing) {
    if (p->status) {
      gsize len = strlen (p->text);
      soup_server_message_set_status (c->msg, p->status, NULL);
      soup_server_message_set_response (c->msg, "application/json", SOUP_MEMORY_TAKE, g_steal_pointer (&p->text), len);
    } else {
      SoupMessageBody *body = soup_server_message_get_response_body (c->msg);
      soup_message_body_append (body, SOUP_MEMORY_TAKE, p->text, strlen (p->text));
      p->text = NULL;
      if (p->last)
        soup_message_body_complete (body);
    }
    soup_server_message_unpause (c->msg);
  }
  if (p->last) {
    c->ui->base_jobs--;
    c->ui->base_cancels = g_list_remove (c->ui->base_cancels, c->cancel);
  }
  g_free (p->text);
  base_chat_unref (c);
  g_free (p);
  return G_SOURCE_REMOVE;
}

/* The last piece takes the worker's reference, so that the request is
 * let go of in the main thread. */
static void
send_piece (BaseChat *c, char *text, guint status, gboolean last)
{
  Piece *p = g_new0 (Piece, 1);
  p->c = last ? c : g_atomic_rc_box_acquire (c);
  p->text = text;
  p->status = status;
  p->last = last;
  g_idle_add (deliver, p);
}

static gboolean
stream_piece (const char *piece, gpointer data)
{
  BaseChat *c = data;
  if (*piece)
    send_piece (c, serve_chunk_event (&c->answer, 0, FALSE, piece, NULL, NULL, 0), 0, FALSE);
  return TRUE;
}

static gpointer
base_thread (gpointer data)
{
  BaseChat *c = data;
  Ui *ui = c->ui;
  CriaGenRequest gen = serve_request_gen (&c->req, 0);
  CriaGenResult result = { 0 };
  g_autoptr (GError) error = NULL;
  if (c->req.stream)
    send_piece (c, serve_chunk_event (&c->answer, 0, TRUE, "", NULL, NULL, 0), 0, FALSE);
  g_mutex_lock (&ui->base_lock);
  gboolean ok = cria_lm_runner_generate (ui->base_runner, &gen, c->req.stream ? stream_piece : NULL, c, c->cancel,
                                         &result, &error);
  g_mutex_unlock (&ui->base_lock);
  gboolean client = !ok && error->domain == CRIA_ERROR && error->code == CRIA_ERROR_INVALID_ARGUMENT;
  char *body = ok ? NULL
                  : serve_error_body (error->message, client ? "invalid_request_error" : "server_error", NULL, NULL);
  if (c->req.stream && ok) {
    char *finish = serve_chunk_event (&c->answer, 0, FALSE, NULL, result.finish_reason, NULL, 0);
    send_piece (c, g_strconcat (finish, "data: [DONE]\n\n", NULL), 0, TRUE);
    g_free (finish);
  } else if (c->req.stream) {
    /* The status line is gone already: the error travels as an event. */
    send_piece (c, g_strdup_printf ("data: %s\n\ndata: [DONE]\n\n", body), 0, TRUE);
  } else if (ok) {
    send_piece (c, serve_answer_body (&c->answer, &result, NULL, 1), SOUP_STATUS_OK, TRUE);
  } else {
    send_piece (c, g_strdup (body), client ? SOUP_STATUS_BAD_REQUEST : SOUP_STATUS_INTERNAL_SERVER_ERROR, TRUE);
  }
  g_free (body);
  cria_gen_result_clear (&result);
  return NULL;
}

static void
base_gone (SoupServerMessage *msg, gpointer data)
{
  BaseChat *c = data;
  c->gone = TRUE;
  g_cancellable_cancel (c->cancel);
}

/* POST /api/chat/base: a /v1/chat/completions request answered by the
 * base model loaded beside the adapted one. */
void
ui_chat_base (Ui *ui, SoupServerMessage *msg)
{
  if (!ui->base_runner) {
    ui_respond_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                      "no base model: open a model with an adapter (POST /api/chat/open) first");
    return;
  }
  g_autoptr (GBytes) bytes = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);
  BaseChat *c = g_atomic_rc_box_new0 (BaseChat);
  c->ui = ui;
  c->msg = g_object_ref (msg);
  c->cancel = g_cancellable_new ();
  g_autofree char *param = NULL;
  g_autoptr (GError) error = NULL;
  if (!serve_request_parse (&c->req, TRUE, data ? data : "", len, &param, &error)) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, error->message);
    base_chat_unref (c);
    return;
  }
  g_autofree char *uuid = g_uuid_string_random ();
  c->id = g_strconcat ("chatcmpl-", uuid, NULL);
  c->model = g_strdup (ui->base_name);
  c->answer = (ServeAnswer){ c->id, c->model, g_get_real_time () / G_USEC_PER_SEC, TRUE, FALSE, 1 };
  if (c->req.stream)
    ui_respond_events (msg);
  c->on_gone = g_signal_connect (msg, "disconnected", G_CALLBACK (base_gone), c);
  ui->base_jobs++;
  ui->base_cancels = g_list_prepend (ui->base_cancels, c->cancel);
  soup_server_message_pause (msg);
  g_thread_unref (g_thread_new ("cria-ui-base", base_thread, c));
}
