/* ui-train.c: training runs from the page: `cria train` started as a child
 * process with the options of cria-train(1), stopped with SIGINT (Ctrl-C:
 * it saves a checkpoint; a run started elsewhere through the process id in
 * its train.pid), resumed from its newest checkpoint, and its
 * train-log.jsonl sent as server-sent events while it grows.
 *
 *   POST /api/train/start {"options": {"model": "m", "data": "d.jsonl", "out": "run1", "max-steps": "10"}}
 *   GET  /api/train/log?run=run1     text/event-stream, one event per log line */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ui-private.h"

#define TAIL_POLL_MS 200
#define MAX_STDERR (64 * 1024)

typedef struct {
  char *dir;
  GSubprocess *proc; /* NULL once it exited */
  gboolean exited;
  int status;   /* exit status, or 128 + signal */
  GString *err; /* its stderr, the last MAX_STDERR bytes */
  GInputStream *err_in;
  GCancellable *cancel; /* cancelled when the record goes: the callbacks then leave it alone */
  guint stop_later;     /* a stop waiting for the child to become cria train */
  char buf[4096];
} UiRun;

static JsonNode *
node_of (JsonObject *o)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, o);
  return node;
}

void
ui_train_run_free (gpointer data)
{
  UiRun *run = data;
  g_cancellable_cancel (run->cancel);
  g_object_unref (run->cancel);
  if (run->stop_later)
    g_source_remove (run->stop_later);
  g_free (run->dir);
  g_clear_object (&run->proc);
  g_clear_object (&run->err_in);
  g_string_free (run->err, TRUE);
  g_free (run);
}

static void
read_err (GObject *source, GAsyncResult *res, gpointer data)
{
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), res, NULL);
  if (n <= 0)
    return;
  UiRun *run = data;
  g_string_append_len (run->err, run->buf, n);
  if (run->err->len > MAX_STDERR)
    g_string_erase (run->err, 0, (gssize) (run->err->len - MAX_STDERR));
  g_input_stream_read_async (run->err_in, run->buf, sizeof run->buf, G_PRIORITY_DEFAULT, run->cancel, read_err, run);
}

static void
exited (GObject *source, GAsyncResult *res, gpointer data)
{
  if (!g_subprocess_wait_finish (G_SUBPROCESS (source), res, NULL))
    return;
  UiRun *run = data;
  run->exited = TRUE;
  run->status = g_subprocess_get_if_exited (run->proc) ? g_subprocess_get_exit_status (run->proc)
                                                       : 128 + g_subprocess_get_term_sig (run->proc);
}

/* The process of a run this server did not start: the id in DIR/train.pid
 * (cria train writes it while it runs) when it names a live process whose
 * command line is cria's train verb, else 0. A stale file (a run killed
 * hard, its id reused) names no such process. */
/* Whether process `pid` runs cria's train verb: its command line
 * (NUL-separated) is cria (or libtool's lt-cria), then train. */
static gboolean
is_train (int pid)
{
  g_autofree char *cmdline_path = g_strdup_printf ("/proc/%d/cmdline", pid);
  g_autofree char *cmdline = NULL;
  gsize len = 0;
  if (!g_file_get_contents (cmdline_path, &cmdline, &len, NULL) || !len)
    return FALSE;
  g_autofree char *prog = g_path_get_basename (cmdline);
  gsize first = strlen (cmdline) + 1;
  return strstr (prog, "cria") && first < len && !strcmp (cmdline + first, "train");
}

static int
run_pid (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "train.pid", NULL);
  g_autofree char *text = NULL;
  if (!cria_file_get_contents (path, 64, &text, NULL, NULL))
    return 0;
  char *end = NULL;
  gint64 pid = g_ascii_strtoll (text, &end, 10);
  if (pid <= 1 || pid > G_MAXINT || !end || (*end && *end != '\n'))
    return 0;
  return is_train ((int) pid) ? (int) pid : 0;
}

/* Ctrl-C to a run this server started. Between its fork and its exec the
 * child has this server's SIGINT handler, which would swallow the signal:
 * until the child is cria train, the signal waits. */
static gboolean
stop_own (gpointer data)
{
  UiRun *run = data;
  const char *id = run->exited ? NULL : g_subprocess_get_identifier (run->proc);
  if (id && !is_train (atoi (id)))
    return G_SOURCE_CONTINUE;
  if (id)
    g_subprocess_send_signal (run->proc, SIGINT);
  run->stop_later = 0;
  return G_SOURCE_REMOVE;
}

static void
stop_run (UiRun *run)
{
  if (!run->stop_later && stop_own (run))
    run->stop_later = g_timeout_add (20, stop_own, run);
}

static gboolean
spawn (Ui *ui, const char *dir, GPtrArray *args, GError **error)
{
  UiRun *old = g_hash_table_lookup (ui->runs, dir);
  if ((old && !old->exited) || run_pid (dir)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: a run of this directory is going on", dir);
    return FALSE;
  }
  g_ptr_array_insert (args, 0, (gpointer) "train");
  g_ptr_array_insert (args, 0, (gpointer) ui->o.cria_path);
  g_ptr_array_add (args, (gpointer) "--progress");
  g_ptr_array_add (args, (gpointer) "never");
  g_ptr_array_add (args, NULL);
  GSubprocess *proc = g_subprocess_newv ((const char *const *) args->pdata,
                                         G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, error);
  if (!proc)
    return FALSE;
  UiRun *run = g_new0 (UiRun, 1);
  run->dir = g_strdup (dir);
  run->proc = proc;
  run->err = g_string_new (NULL);
  run->err_in = g_object_ref (g_subprocess_get_stderr_pipe (proc));
  run->cancel = g_cancellable_new ();
  g_hash_table_replace (ui->runs, g_strdup (dir), run);
  g_input_stream_read_async (run->err_in, run->buf, sizeof run->buf, G_PRIORITY_DEFAULT, run->cancel, read_err, run);
  g_subprocess_wait_async (proc, run->cancel, exited, run);
  return TRUE;
}

/* GET /api/train/options: cria-train(1)'s table, for the form. */
static void
options_handle (SoupServerMessage *msg)
{
  JsonArray *list = json_array_new ();
  for (const CriaPropSpec *s = cria_train_option_specs (); s->name; s++) {
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "name", s->name);
    json_object_set_string_member (o, "type", cria_prop_type_name (s->type));
    if (s->default_value)
      json_object_set_string_member (o, "default", s->default_value);
    if (s->choices)
      json_object_set_string_member (o, "choices", s->choices);
    json_object_set_string_member (o, "description", s->blurb);
    json_object_set_boolean_member (o, "required", (s->flags & CRIA_PROP_FLAG_REQUIRED) != 0);
    json_array_add_object_element (list, o);
  }
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (node, list);
  ui_respond_json (msg, SOUP_STATUS_OK, node);
}

static const char *const path_options[] = { "model",     "data",   "out",       "eval-data",
                                            "tokenizer", "resume", "ref-model", NULL };

/* POST /api/train/start {"options": {NAME: VALUE}}: values as text, as on
 * the command line; a boolean as "true" or "false". */
static void
start_handle (Ui *ui, SoupServerMessage *msg)
{
  g_autoptr (JsonObject) req = ui_request_object (msg);
  if (!req)
    return;
  JsonObject *opts = cria_json_get_object (req, "options");
  if (!opts) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "options: expected an object of cria train's options");
    return;
  }
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GList) names = json_object_get_members (opts);
  for (GList *l = names; l; l = l->next) {
    const char *name = l->data;
    const CriaPropSpec *spec = cria_train_option_specs ();
    while (spec->name && strcmp (spec->name, name) != 0)
      spec++;
    JsonNode *v = json_object_get_member (opts, name);
    const char *value = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                            ? json_node_get_string (v)
                            : NULL;
    if (!spec->name || !value || !cria_prop_spec_validate (spec, value, &error)) {
      g_autofree char *why = g_strdup_printf ("options.%s: %s", name,
                                              !spec->name ? "not an option of cria train (see cria-train(1))"
                                              : !value    ? "expected a string"
                                                          : error->message);
      ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, why);
      return;
    }
    if (!*value)
      continue;
    if (g_strv_contains (path_options, name) ||
        (!strcmp (name, "format") &&
         (strchr (value, '/') || g_str_has_suffix (value, ".json") || g_str_has_suffix (value, ".jinja")))) {
      char *path = ui_confine (ui, value, &error);
      if (!path) {
        g_autofree char *why = g_strdup_printf ("options.%s: %s", name, error->message);
        ui_respond_error (msg, SOUP_STATUS_FORBIDDEN, why);
        return;
      }
      g_ptr_array_add (owned, path);
      value = path;
      if (!strcmp (name, "out"))
        out = g_strdup (path);
    }
    if (spec->type == CRIA_PROP_BOOL && strcmp (value, "true") != 0)
      continue;
    char *flag = g_strconcat ("--", name, NULL);
    g_ptr_array_add (owned, flag);
    g_ptr_array_add (args, flag);
    if (spec->type != CRIA_PROP_BOOL)
      g_ptr_array_add (args, (gpointer) value);
  }
  if (!out) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "options.out: the run's directory is required");
    return;
  }
  if (!spawn (ui, out, args, &error)) {
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, error->message);
    return;
  }
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "run", out);
  ui_respond_json (msg, SOUP_STATUS_OK, node_of (o));
}

/* The run's directory named by "run" in the body or the query. */
static char *
run_dir (Ui *ui, SoupServerMessage *msg, GHashTable *query, JsonObject *body)
{
  const char *given = body    ? cria_json_get_string (body, "run", NULL)
                      : query ? g_hash_table_lookup (query, "run")
                              : NULL;
  if (!given) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "run: the run's directory is required");
    return NULL;
  }
  g_autoptr (GError) error = NULL;
  char *dir = ui_confine (ui, given, &error);
  if (!dir)
    ui_respond_error (msg, SOUP_STATUS_FORBIDDEN, error->message);
  return dir;
}

/* POST /api/train/stop {"run": DIR}: Ctrl-C, as at a terminal. */
static void
stop_handle (Ui *ui, SoupServerMessage *msg)
{
  g_autoptr (JsonObject) req = ui_request_object (msg);
  g_autofree char *dir = req ? run_dir (ui, msg, NULL, req) : NULL;
  if (!dir)
    return;
  UiRun *run = g_hash_table_lookup (ui->runs, dir);
  int pid = run && !run->exited ? 0 : run_pid (dir);
  if ((!run || run->exited) && !pid) {
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, "no run of this directory is going on");
    return;
  }
  if (pid && kill (pid, SIGINT) != 0) {
    g_autofree char *why = g_strdup_printf ("the run's process %d: %s", pid, g_strerror (errno));
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, why);
    return;
  }
  if (!pid)
    stop_run (run);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "run", dir);
  json_object_set_boolean_member (o, "stopping", TRUE);
  if (pid)
    json_object_set_int_member (o, "pid", pid);
  ui_respond_json (msg, SOUP_STATUS_OK, node_of (o));
}

/* The newest checkpoints/checkpoint-N of a run, or NULL. */
static char *
newest_checkpoint (const char *dir)
{
  g_autofree char *ckpts = g_build_filename (dir, "checkpoints", NULL);
  g_autoptr (GDir) d = g_dir_open (ckpts, 0, NULL);
  gint64 best = -1;
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    char *end = NULL;
    if (!g_str_has_prefix (name, "checkpoint-"))
      continue;
    gint64 step = g_ascii_strtoll (name + 11, &end, 10);
    if (end && !*end && step > best)
      best = step;
  }
  if (best < 0)
    return NULL;
  g_autofree char *leaf = g_strdup_printf ("checkpoint-%" G_GINT64_FORMAT, best);
  return g_build_filename (ckpts, leaf, NULL);
}

/* POST /api/train/resume {"run": DIR}: cria train --resume NEWEST. */
static void
resume_handle (Ui *ui, SoupServerMessage *msg)
{
  g_autoptr (JsonObject) req = ui_request_object (msg);
  g_autofree char *dir = req ? run_dir (ui, msg, NULL, req) : NULL;
  if (!dir)
    return;
  g_autofree char *ckpt = newest_checkpoint (dir);
  if (!ckpt) {
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, "the run has no checkpoint to resume from");
    return;
  }
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  g_ptr_array_add (args, (gpointer) "--resume");
  g_ptr_array_add (args, ckpt);
  g_autoptr (GError) error = NULL;
  if (!spawn (ui, dir, args, &error)) {
    ui_respond_error (msg, SOUP_STATUS_CONFLICT, error->message);
    return;
  }
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "run", dir);
  json_object_set_string_member (o, "checkpoint", ckpt);
  ui_respond_json (msg, SOUP_STATUS_OK, node_of (o));
}

static JsonObject *
status_object (Ui *ui, const char *dir)
{
  UiRun *run = g_hash_table_lookup (ui->runs, dir);
  /* A run started elsewhere is seen running through its train.pid. */
  int pid = run && !run->exited ? 0 : run_pid (dir);
  if (pid)
    run = NULL;
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "run", dir);
  json_object_set_string_member (o, "state", pid ? "running" : !run ? "unknown" : run->exited ? "exited" : "running");
  if (pid)
    json_object_set_int_member (o, "pid", pid);
  if (run && run->exited)
    json_object_set_int_member (o, "exit_status", run->status);
  if (run)
    json_object_set_string_member (o, "stderr", run->err->str);
  g_autofree char *ckpt = newest_checkpoint (dir);
  if (ckpt)
    json_object_set_string_member (o, "checkpoint", ckpt);
  return o;
}

/* GET /api/train/file?run=DIR&name=loss.png|report.json */
static void
file_handle (Ui *ui, SoupServerMessage *msg, GHashTable *query)
{
  g_autofree char *dir = run_dir (ui, msg, query, NULL);
  if (!dir)
    return;
  const char *name = g_hash_table_lookup (query, "name");
  static const char *const files[] = { "loss.png", "report.json", "train-log.jsonl", NULL };
  if (!name || !g_strv_contains (files, name)) {
    ui_respond_error (msg, SOUP_STATUS_BAD_REQUEST, "name: expected loss.png, report.json or train-log.jsonl");
    return;
  }
  g_autofree char *path = g_build_filename (dir, name, NULL);
  char *data = NULL;
  gsize len = 0;
  if (!cria_file_get_contents (path, 256 << 20, &data, &len, NULL)) {
    ui_respond_error (msg, SOUP_STATUS_NOT_FOUND, "the run has no such file yet");
    return;
  }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, g_str_has_suffix (name, ".png") ? "image/png" : "application/json",
                                    SOUP_MEMORY_TAKE, data, len);
}

/* A train-log.jsonl followed as server-sent events: each complete line is
 * a "data:" event; the run's state an "event: status" when it changes.
 * The trainer rewrites the log whole (atomically), so the file is read
 * again at each poll and what is past the bytes sent is sent; a shorter
 * file (a resumed run cut it back) sends "event: reset" and starts over. */
typedef struct {
  Ui *ui;
  SoupServerMessage *msg;
  char *dir, *path;
  gsize sent;
  char *last_state;
  guint timer, quiet; /* polls since the last bytes sent */
  gulong on_finished;
} Tail;

static void
tail_free (Tail *t)
{
  t->ui->tails = g_list_remove (t->ui->tails, t);
  if (t->timer)
    g_source_remove (t->timer);
  g_signal_handler_disconnect (t->msg, t->on_finished);
  g_object_unref (t->msg);
  g_free (t->dir);
  g_free (t->path);
  g_free (t->last_state);
  g_free (t);
}

static gboolean
tail_poll (gpointer data)
{
  Tail *t = data;
  g_autoptr (GString) events = g_string_new (NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  if (cria_file_get_contents (t->path, CRIA_INPUT_MAX_FILE_BYTES, &text, &len, NULL)) {
    if (len < t->sent) {
      g_string_append (events, "event: reset\ndata: {}\n\n");
      t->sent = 0;
    }
    const char *end = NULL;
    for (gsize i = len; i > t->sent && !end; i--)
      if (text[i - 1] == '\n')
        end = text + i - 1;
    if (end) {
      g_auto (GStrv) lines = g_strsplit (text + t->sent, "\n", -1);
      gsize upto = (gsize) (end - text) + 1;
      t->sent = upto;
      for (guint i = 0; lines[i] && lines[i + 1]; i++)
        if (*lines[i])
          g_string_append_printf (events, "data: %s\n\n", lines[i]);
    }
  }
  g_autoptr (JsonObject) status = status_object (t->ui, t->dir);
  json_object_remove_member (status, "stderr");
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, status);
  g_autofree char *state = json_to_string (node, FALSE);
  if (g_strcmp0 (state, t->last_state) != 0) {
    g_string_append_printf (events, "event: status\ndata: %s\n\n", state);
    g_free (t->last_state);
    t->last_state = g_steal_pointer (&state);
  }
  /* A comment now and then: a client that went away is noticed, and one
   * that waits with a read timeout is not cut off while the run is quiet. */
  if (!events->len && ++t->quiet >= 2000 / TAIL_POLL_MS)
    g_string_append (events, ": quiet\n\n");
  if (events->len) {
    t->quiet = 0;
    soup_message_body_append (soup_server_message_get_response_body (t->msg), SOUP_MEMORY_COPY, events->str,
                              events->len);
    soup_server_message_unpause (t->msg);
  }
  return G_SOURCE_CONTINUE;
}

static void
tail_gone (SoupServerMessage *msg, gpointer data)
{
  tail_free (data);
}

static void
log_handle (Ui *ui, SoupServerMessage *msg, GHashTable *query)
{
  g_autofree char *dir = run_dir (ui, msg, query, NULL);
  if (!dir)
    return;
  Tail *t = g_new0 (Tail, 1);
  t->ui = ui;
  t->msg = g_object_ref (msg);
  t->dir = g_strdup (dir);
  t->path = g_build_filename (dir, "train-log.jsonl", NULL);
  ui_respond_events (msg);
  t->on_finished = g_signal_connect (msg, "finished", G_CALLBACK (tail_gone), t);
  ui->tails = g_list_prepend (ui->tails, t);
  soup_server_message_pause (msg);
  tail_poll (t);
  t->timer = g_timeout_add (TAIL_POLL_MS, tail_poll, t);
}

void
ui_train_handle (Ui *ui, SoupServerMessage *msg, const char *what, GHashTable *query)
{
  gboolean post = !strcmp (soup_server_message_get_method (msg), "POST");
  if (!strcmp (what, "options") && !post) {
    options_handle (msg);
  } else if (!strcmp (what, "start") && post) {
    start_handle (ui, msg);
  } else if (!strcmp (what, "stop") && post) {
    stop_handle (ui, msg);
  } else if (!strcmp (what, "resume") && post) {
    resume_handle (ui, msg);
  } else if (!strcmp (what, "log") && !post) {
    log_handle (ui, msg, query);
  } else if (!strcmp (what, "file") && !post) {
    file_handle (ui, msg, query);
  } else if (!strcmp (what, "status") && !post) {
    g_autofree char *dir = run_dir (ui, msg, query, NULL);
    if (dir)
      ui_respond_json (msg, SOUP_STATUS_OK, node_of (status_object (ui, dir)));
  } else {
    g_autofree char *why = g_strdup_printf ("no route %s /api/train/%s (see cria-ui(1))",
                                            soup_server_message_get_method (msg), what);
    ui_respond_error (msg, SOUP_STATUS_NOT_FOUND, why);
  }
}

/* At exit: every run still going gets Ctrl-C and is waited for, so that it
 * leaves its checkpoint. */
void
ui_train_stop_all (Ui *ui)
{
  /* Streams libsoup did not finish when the server went: nothing more is
   * written to them. */
  while (ui->tails)
    tail_free (ui->tails->data);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, ui->runs);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    UiRun *run = value;
    if (!run->exited) {
      stop_run (run);
      while (run->stop_later)
        g_main_context_iteration (NULL, TRUE);
      g_subprocess_wait (run->proc, NULL, NULL);
    }
  }
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_hash_table_remove_all (ui->runs);
}
