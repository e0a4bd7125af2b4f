/* serve-job.c: a request of `cria serve` on a worker thread: the model runs
 * it (logprobs and response_format's mask in its hooks), and its answer goes
 * back to the main thread, whole or as server-sent events. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "cria-server-private.h"

void
serve_job_free (Job *job)
{
  if (job->on_finished)
    g_signal_handler_disconnect (job->msg, job->on_finished);
  if (job->on_disconnected)
    g_signal_handler_disconnect (job->msg, job->on_disconnected);
  g_object_unref (job->msg);
  g_free (job->id);
  g_object_unref (job->cancel);
  g_mutex_clear (&job->lock);
  g_string_free (job->pending, TRUE);
  g_free (job->body);
  g_free (job->raw);
  g_clear_pointer (&job->grammar, serve_grammar_free);
  for (guint i = 0; job->logprobs && i < serve_request_n_choices (&job->req); i++)
    g_clear_pointer (&job->logprobs[i], g_array_unref);
  g_free (job->logprobs);
  serve_request_clear (&job->req);
  if (job->conn) {
    job->conn->state = CONN_ANSWER;
    job->conn->last = g_get_monotonic_time ();
    job->conn->job = NULL;
  }
  g_free (job);
}

/* Main thread: writes what the worker handed over. */
static gboolean
flush (gpointer data)
{
  Job *job = data;
  g_mutex_lock (&job->lock);
  job->flush_scheduled = FALSE;
  g_autofree char *events = job->pending->len ? g_strdup (job->pending->str) : NULL;
  g_string_truncate (job->pending, 0);
  gboolean done = job->done;
  guint status = job->status;
  g_autofree char *body = g_steal_pointer (&job->body);
  g_mutex_unlock (&job->lock);
  if (!job->gone) {
    SoupServerMessage *msg = job->msg;
    if (status) {
      serve_respond (msg, status, body);
    } else if (!job->answered) {
      soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
      SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
      soup_message_headers_set_encoding (h, SOUP_ENCODING_CHUNKED);
      soup_message_headers_replace (h, "Content-Type", "text/event-stream");
      soup_message_headers_replace (h, "Cache-Control", "no-cache");
    }
    job->answered = TRUE;
    SoupMessageBody *out = soup_server_message_get_response_body (msg);
    if (events && !status)
      soup_message_body_append (out, SOUP_MEMORY_COPY, events, strlen (events));
    if (done && !status)
      soup_message_body_complete (out);
    soup_server_message_unpause (msg);
  }
  if (done) {
    g_hash_table_remove (job->server->jobs, job);
    serve_job_free (job);
  }
  return G_SOURCE_REMOVE;
}

/* Worker thread; `lock` held. Always through a source of the main context,
 * never g_main_context_invoke, which would run flush() right here (and take
 * `lock` again) once the main loop has stopped and left the context free. */
static void
schedule_flush (Job *job)
{
  if (!job->flush_scheduled) {
    job->flush_scheduled = TRUE;
    GSource *source = g_idle_source_new ();
    g_source_set_callback (source, flush, job, NULL);
    g_source_attach (source, job->server->context);
    g_source_unref (source);
  }
}

static void
push_event (Job *job, char *event)
{
  g_mutex_lock (&job->lock);
  g_string_append (job->pending, event);
  job->streamed = TRUE;
  schedule_flush (job);
  g_mutex_unlock (&job->lock);
  g_free (event);
}

/* Worker thread: a chat choice opens with the assistant's role. */
static void
open_choice (Job *job)
{
  if (!job->choice_open && job->req.chat)
    push_event (job, serve_chunk_event (&job->answer, job->choice, TRUE, "", NULL, NULL, 0));
  job->choice_open = TRUE;
}

/* Worker thread: the text of the running choice, as chunks. */
static gboolean
stream_piece (const char *piece, gpointer data)
{
  Job *job = data;
  open_choice (job);
  if (*piece) {
    GArray *lp = job->logprobs ? job->logprobs[job->choice] : NULL;
    push_event (job, serve_chunk_event (&job->answer, job->choice, FALSE, piece, NULL, lp, job->lp_sent));
    job->lp_sent = lp ? lp->len : 0;
  }
  return TRUE;
}

/* Worker thread, before each token: keeps the model's logits for
 * logprobs, then masks what response_format cannot take. */
static gboolean
on_logits (float *logits, gint64 vocab, const gint32 *generated, gsize n_generated, gint64 remaining, gpointer data)
{
  Job *job = data;
  if (job->logprobs) {
    if (!job->raw)
      job->raw = g_new (float, vocab);
    job->n_raw = vocab;
    memcpy (job->raw, logits, (gsize) vocab * sizeof (float));
    float max = -INFINITY;
    for (gint64 i = 0; i < vocab; i++)
      max = MAX (max, logits[i]);
    double sum = 0;
    for (gint64 i = 0; i < vocab; i++)
      sum += exp ((double) logits[i] - max);
    job->raw_lse = max + log (sum);
  }
  if (job->grammar) {
    /* The document is whole (or cannot go on): the answer ends here. */
    if (serve_grammar_done (job->grammar) ||
        !serve_grammar_mask (job->grammar, job->server->vocab, logits, vocab, remaining))
      return FALSE;
  }
  return TRUE;
}

/* A token as it shows in the answer's text: the first one decoded alone,
 * as the answer's text is (a SentencePiece "▁time" opens it as "time"),
 * the others in the middle of a text. */
static char *
token_text (Job *job, gint32 id, gboolean first)
{
  Server *server = job->server;
  CriaTokenizer *tok = cria_lm_runner_get_tokenizer (server->o.runner);
  if (!server->anchored) {
    server->anchor = serve_token_anchor (tok);
    server->anchored = TRUE;
  }
  return serve_token_text (tok, first ? -1 : server->anchor, id, FALSE);
}

/* Worker thread, after each token drawn. */
static void
on_token (gint32 id, gpointer data)
{
  Job *job = data;
  if (job->grammar)
    serve_grammar_feed_token (job->grammar, job->server->vocab, id);
  if (!job->logprobs || !job->raw)
    return;
  gboolean first = job->logprobs[job->choice]->len == 0;
  ServeTokenLogprob t = { .token = token_text (job, id, first), .logprob = (float) (job->raw[id] - job->raw_lse) };
  /* The most likely tokens, best first (ties: the lower id). */
  guint want = MIN (job->req.top_logprobs, SERVE_MAX_TOP);
  gint32 top[SERVE_MAX_TOP];
  for (guint k = 0; k < want; k++) {
    gint32 best = -1;
    for (gint64 i = 0; i < job->n_raw; i++) {
      gboolean taken = FALSE;
      for (guint j = 0; j < k && !taken; j++)
        taken = top[j] == i;
      if (!taken && (best < 0 || job->raw[i] > job->raw[best]))
        best = (gint32) i;
    }
    if (best < 0)
      break;
    top[k] = best;
    t.top_token[k] = token_text (job, best, first);
    t.top_logprob[k] = (float) (job->raw[best] - job->raw_lse);
    t.n_top = k + 1;
  }
  g_array_append_val (job->logprobs[job->choice], t);
}

static void
fail (Job *job, const GError *error)
{
  gboolean client = error->domain == CRIA_ERROR && error->code == CRIA_ERROR_INVALID_ARGUMENT;
  const char *type = client ? "invalid_request_error" : "server_error";
  /* The runner names the field its message is about ("prompt: ..."). */
  const char *param = !client                                         ? NULL
                      : g_str_has_prefix (error->message, "prompt")   ? "prompt"
                      : g_str_has_prefix (error->message, "messages") ? "messages"
                                                                      : NULL;
  g_autofree char *body = serve_error_body (error->message, type, param, NULL);
  g_mutex_lock (&job->lock);
  if (job->streamed) {
    /* The status line is gone already: the error travels as an event. */
    g_string_append_printf (job->pending, "data: %s\n\ndata: [DONE]\n\n", body);
  } else {
    job->status = client ? SOUP_STATUS_BAD_REQUEST : SOUP_STATUS_INTERNAL_SERVER_ERROR;
    job->body = g_steal_pointer (&body);
  }
  g_mutex_unlock (&job->lock);
}

void
serve_job_run (gpointer data, gpointer user_data)
{
  Job *job = data;
  Server *server = user_data;
  guint n = serve_request_n_choices (&job->req);
  CriaGenResult *results = g_new0 (CriaGenResult, n);
  g_autoptr (GError) error = NULL;
  if (job->req.logprobs) {
    job->logprobs = g_new0 (GArray *, n);
    for (guint i = 0; i < n; i++) {
      job->logprobs[i] = g_array_new (FALSE, TRUE, sizeof (ServeTokenLogprob));
      g_array_set_clear_func (job->logprobs[i], serve_token_logprob_clear);
    }
  }
  /* Every token's text, once, for response_format's masks. */
  g_mutex_lock (&server->vocab_lock);
  if (job->req.json && !server->vocab)
    server->vocab = serve_vocab_new (cria_lm_runner_get_tokenizer (server->o.runner));
  g_mutex_unlock (&server->vocab_lock);
  CriaLmRunnerHooks hooks = { job->req.presence_penalty, job->req.frequency_penalty, on_logits, on_token, job };
  for (guint i = 0; i < n && !error; i++) {
    results[i].prompt_tokens = results[i].completion_tokens = -1;
    CriaGenRequest gr = serve_request_gen (&job->req, i);
    job->choice = i;
    job->choice_open = FALSE;
    job->lp_sent = 0;
    g_clear_pointer (&job->grammar, serve_grammar_free);
    if (job->req.json)
      job->grammar = serve_grammar_new (job->req.schema);
    if (!cria_lm_runner_generate_full (server->o.runner, &gr, &hooks, job->req.stream ? stream_piece : NULL, job,
                                       job->cancel, &results[i], &error))
      break;
    if (job->req.stream) {
      open_choice (job);
      push_event (job, serve_chunk_event (&job->answer, i, FALSE, NULL, results[i].finish_reason,
                                          job->logprobs ? job->logprobs[i] : NULL, job->lp_sent));
    }
  }
  if (error) {
    fail (job, error);
  } else if (job->req.stream) {
    if (job->req.include_usage)
      push_event (job, serve_usage_event (&job->answer, results, n));
    push_event (job, g_strdup ("data: [DONE]\n\n"));
  } else {
    char *body = serve_answer_body (&job->answer, results, job->logprobs, n);
    g_mutex_lock (&job->lock);
    job->status = SOUP_STATUS_OK;
    job->body = body;
    g_mutex_unlock (&job->lock);
  }
  for (guint i = 0; i < n; i++)
    cria_gen_result_clear (&results[i]);
  g_free (results);
  g_mutex_lock (&job->lock);
  job->done = TRUE;
  schedule_flush (job);
  g_mutex_unlock (&job->lock);
}

/* The client hung up (or the answer is written): stop generating for it. */
void
serve_job_gone (SoupServerMessage *msg, gpointer data)
{
  Job *job = data;
  job->gone = TRUE;
  g_cancellable_cancel (job->cancel);
}
