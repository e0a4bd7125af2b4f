/* cria-lm-runner.c: generator requests on cria's own runtime (cria-lm-runner.h). */
#include "config.h"

#include <string.h>

#include <cria/cria-chat-template.h>
#include <cria/cria-error.h>
#include <cria/cria-lm-runner.h>

gboolean
cria_lm_stack_open (CriaLmStack *st, CriaRegistry *registry, const char *dir, CriaModelDType dtype,
                    const char *backend_spec, int threads, gboolean need_tokenizer, GError **error)
{
  g_return_val_if_fail (st != NULL, FALSE);
  g_return_val_if_fail (registry != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (st, 0, sizeof *st);
  const CriaProvider *provider;
  g_autoptr (CriaProps) props = NULL;
  if (!cria_registry_parse_spec (registry, CRIA_KIND_BACKEND, backend_spec ? backend_spec : "cpu", &provider, &props,
                                 error))
    return FALSE;
  if (threads > 0) {
    g_autofree char *n = g_strdup_printf ("%d", threads);
    if (!cria_props_set (props, "threads", n, error))
      return FALSE;
  }
  st->backend = cria_backend_new (provider, props, error);
  if (!st->backend)
    return FALSE;
  st->model = cria_model_open (registry, dir, dtype, error);
  if (!st->model)
    return FALSE;
  if (need_tokenizer) {
    st->tokenizer = cria_tokenizer_load (registry, dir, error);
    if (!st->tokenizer) {
      g_prefix_error (error, "%s: no tokenizer: ", dir);
      return FALSE;
    }
  }
  st->lm = cria_lm_new (st->model, st->backend);
  return TRUE;
}

void
cria_lm_stack_clear (CriaLmStack *st)
{
  g_clear_pointer (&st->lm, cria_lm_free);
  g_clear_pointer (&st->adapter, cria_adapter_free);
  g_clear_pointer (&st->tokenizer, cria_tokenizer_free);
  g_clear_pointer (&st->model, cria_model_free);
  g_clear_pointer (&st->backend, cria_backend_free);
}

gboolean
cria_lm_stack_add_adapter (CriaLmStack *st, CriaRegistry *registry, const char *dir, GError **error)
{
  g_return_val_if_fail (st != NULL, FALSE);
  g_return_val_if_fail (registry != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  st->adapter = cria_adapter_load (registry, st->model, dir, error);
  if (!st->adapter)
    return FALSE;
  /* An adapter that brought its tokenizer (the tokens it added) replaces the base's. */
  const char *tok_dir = cria_model_get_tokenizer_dir (st->model);
  if (g_strcmp0 (tok_dir, cria_model_get_dir (st->model)) != 0) {
    CriaTokenizer *tok = cria_tokenizer_load (registry, tok_dir, error);
    if (!tok) {
      g_prefix_error (error, "adapter %s: its tokenizer: ", dir);
      return FALSE;
    }
    cria_tokenizer_free (st->tokenizer);
    st->tokenizer = tok;
    gint64 vocab = cria_model_get_config (st->model)->vocab_size;
    if ((gint64) cria_tokenizer_vocab_size (tok) > vocab) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "adapter %s: its tokenizer has ids up to %u, beyond the model's vocabulary of %" G_GINT64_FORMAT
                   " tokens (an adapter of another base, or a resized vocabulary whose modules_to_save are missing)",
                   dir, cria_tokenizer_vocab_size (tok) - 1, vocab);
      return FALSE;
    }
  }
  gpointer data;
  CriaLinearHook hook = cria_adapter_get_linear_hook (st->adapter, &data);
  cria_lm_set_linear_hook (st->lm, hook, data);
  return TRUE;
}

char *
cria_lm_render_request (const CriaPromptFormat *format, const CriaGenRequest *req, GError **error)
{
  g_return_val_if_fail (req != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!req->messages)
    return g_strdup (req->prompt ? req->prompt : "");
  const GPtrArray *msgs = req->messages;
  if (msgs->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "messages: the conversation is empty");
    return NULL;
  }
  const CriaMessage *last = g_ptr_array_index ((GPtrArray *) msgs, msgs->len - 1);
  if (!strcmp (last->role, "assistant")) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "messages: the last message is the assistant's; there is nothing to answer");
    return NULL;
  }
  if (!format) {
    if (!req->system && msgs->len == 1 && !strcmp (last->role, "user"))
      return g_strdup (last->content);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "messages: only one user message can be answered without a prompt format "
                 "(the server was started without --prompt-format)");
    return NULL;
  }
  g_autoptr (CriaRecord) record = cria_record_new ();
  if (req->system)
    cria_record_add_message (record, "system", req->system);
  for (guint i = 0; i < msgs->len; i++) {
    const CriaMessage *m = g_ptr_array_index ((GPtrArray *) msgs, i);
    cria_record_add_message (record, m->role, m->content);
  }
  g_autofree char *prompt = NULL, *response = NULL;
  g_autoptr (GError) why = NULL;
  if (!cria_prompt_format_render (format, record, &prompt, &response, &why)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "messages: %s", why->message);
    return NULL;
  }
  return g_steal_pointer (&prompt);
}

struct _CriaLmRunner {
  CriaLm *lm;
  CriaTokenizer *tokenizer;
  const CriaPromptFormat *format;
  CriaSampling defaults;
  gboolean add_special;
  char *model_dir, *chat_format; /* cria_lm_runner_set_chat */
  CriaLmBatcher *batcher;        /* NULL: one request at a time */
  GMutex lock;                   /* rendering and encoding, one request at a time */
};

static void
copy_sampling (CriaSampling *to, const CriaSampling *from)
{
  GPtrArray *stop = to->stop;
  GArray *stop_ids = to->stop_ids;
  *to = *from;
  to->stop = stop;
  to->stop_ids = stop_ids;
  g_ptr_array_set_size (stop, 0);
  for (guint i = 0; from->stop && i < from->stop->len; i++)
    g_ptr_array_add (stop, g_strdup (g_ptr_array_index (from->stop, i)));
  g_array_set_size (stop_ids, 0);
  if (from->stop_ids)
    g_array_append_vals (stop_ids, from->stop_ids->data, from->stop_ids->len);
}

CriaLmRunner *
cria_lm_runner_new (CriaLm *lm, CriaTokenizer *tokenizer, const CriaPromptFormat *format, const CriaSampling *defaults,
                    gboolean add_special)
{
  g_return_val_if_fail (lm != NULL, NULL);
  g_return_val_if_fail (defaults != NULL, NULL);
  CriaLmRunner *r = g_new0 (CriaLmRunner, 1);
  r->lm = lm;
  r->tokenizer = tokenizer;
  r->format = format;
  r->add_special = add_special;
  g_mutex_init (&r->lock);
  cria_sampling_init (&r->defaults);
  copy_sampling (&r->defaults, defaults);
  return r;
}

void
cria_lm_runner_free (CriaLmRunner *r)
{
  if (!r)
    return;
  cria_sampling_clear (&r->defaults);
  cria_lm_batcher_free (r->batcher);
  g_mutex_clear (&r->lock);
  g_free (r->model_dir);
  g_free (r->chat_format);
  g_free (r);
}

void
cria_lm_runner_set_chat (CriaLmRunner *r, const char *model_dir, const char *format)
{
  g_return_if_fail (r != NULL);
  g_free (r->model_dir);
  g_free (r->chat_format);
  r->model_dir = g_strdup (model_dir);
  r->chat_format = format && strcmp (format, "auto") != 0 ? g_strdup (format) : NULL;
}

void
cria_lm_runner_set_batch (CriaLmRunner *r, guint max_batch)
{
  g_return_if_fail (r != NULL);
  g_clear_pointer (&r->batcher, cria_lm_batcher_free);
  if (max_batch > 1)
    r->batcher = cria_lm_batcher_new (r->lm, max_batch);
}

guint
cria_lm_runner_get_batch (CriaLmRunner *r)
{
  g_return_val_if_fail (r != NULL, 1);
  return r->batcher ? cria_lm_batcher_get_max_batch (r->batcher) : 1;
}

CriaTokenizer *
cria_lm_runner_get_tokenizer (CriaLmRunner *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  return r->tokenizer;
}

/* A conversation through the model's chat template (or the format named). */
static char *
render_chat (CriaLmRunner *r, const CriaGenRequest *req, gboolean *add_special, GError **error)
{
  const GPtrArray *msgs = req->messages;
  const CriaMessage *last = msgs->len ? g_ptr_array_index ((GPtrArray *) msgs, msgs->len - 1) : NULL;
  if (!last) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "messages: the conversation is empty");
    return NULL;
  }
  if (!strcmp (last->role, "assistant")) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "messages: the last message is the assistant's; there is nothing to answer");
    return NULL;
  }
  g_autoptr (JsonArray) messages = json_array_new ();
  for (guint i = 0; i <= msgs->len; i++) {
    const char *role = "system", *content = req->system;
    if (i > 0) {
      const CriaMessage *m = g_ptr_array_index ((GPtrArray *) msgs, i - 1);
      role = m->role;
      content = m->content;
    } else if (!content) {
      continue;
    }
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "role", role);
    json_object_set_string_member (o, "content", content ? content : "");
    json_array_add_object_element (messages, o);
  }
  g_autofree char *used = NULL;
  g_autoptr (GError) why = NULL;
  char *text = cria_chat_prompt_for_model (r->model_dir, r->chat_format, messages, TRUE, NULL, &used, &why);
  if (!text && g_error_matches (why, CRIA_ERROR, CRIA_ERROR_NOT_FOUND) && !r->chat_format && !req->system &&
      msgs->len == 1 && !strcmp (last->role, "user")) {
    /* No template and no family format (GPT-2): a lone message as it is. */
    *add_special = r->add_special;
    return g_strdup (last->content);
  }
  if (!text) {
    /* The template's raise_exception() and a missing template alike are
     * the request's to fix (or the server's start-up options'). */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "messages: %s", why->message);
    return NULL;
  }
  *add_special = r->add_special && g_str_has_prefix (used, "the prompt format");
  return text;
}

char *
cria_lm_runner_render (CriaLmRunner *r, const CriaGenRequest *req, gboolean *add_special, GError **error)
{
  g_return_val_if_fail (r != NULL, NULL);
  g_return_val_if_fail (req != NULL, NULL);
  *add_special = r->add_special;
  if (req->messages && r->model_dir)
    return render_chat (r, req, add_special, error);
  return cria_lm_render_request (r->format, req, error);
}

typedef struct {
  CriaTextFunc on_text;
  gpointer user_data;
  GCancellable *cancellable;
} Relay;

static gboolean
relay_text (const char *piece, gpointer data)
{
  Relay *relay = data;
  if (g_cancellable_is_cancelled (relay->cancellable))
    return FALSE;
  return relay->on_text ? relay->on_text (piece, relay->user_data) : TRUE;
}

/* The request's fields over the defaults; its stop strings replace the
 * defaults' (the model's stop tokens stay). */
static void
request_sampling (const CriaLmRunner *r, const CriaGenRequest *req, gint64 room, CriaSampling *s)
{
  copy_sampling (s, &r->defaults);
  if (req->max_tokens > 0)
    s->max_new_tokens = req->max_tokens;
  if (room > 0)
    s->max_new_tokens = MIN (s->max_new_tokens, room);
  if (req->temperature >= 0)
    s->temperature = req->temperature;
  if (req->top_p >= 0)
    s->top_p = req->top_p;
  if (req->seed >= 0)
    s->seed = (guint64) req->seed;
  if (req->stop && req->stop[0]) {
    g_ptr_array_set_size (s->stop, 0);
    for (const char *const *stop = req->stop; *stop; stop++)
      if (**stop)
        g_ptr_array_add (s->stop, g_strdup (*stop));
  }
}

gboolean
cria_lm_runner_generate (CriaLmRunner *r, const CriaGenRequest *req, CriaTextFunc on_text, gpointer user_data,
                         GCancellable *cancellable, CriaGenResult *res, GError **error)
{
  return cria_lm_runner_generate_full (r, req, NULL, on_text, user_data, cancellable, res, error);
}

gboolean
cria_lm_runner_generate_full (CriaLmRunner *r, const CriaGenRequest *req, const CriaLmRunnerHooks *hooks,
                              CriaTextFunc on_text, gpointer user_data, GCancellable *cancellable, CriaGenResult *res,
                              GError **error)
{
  g_return_val_if_fail (r != NULL, FALSE);
  g_return_val_if_fail (req != NULL, FALSE);
  g_return_val_if_fail (res != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  gboolean add_special = r->add_special;
  g_mutex_lock (&r->lock);
  g_autofree char *prompt = cria_lm_runner_render (r, req, &add_special, error);
  g_autoptr (CriaEncoding)
      enc = prompt ? cria_tokenizer_encode (r->tokenizer, prompt, -1, add_special ? CRIA_ENCODE_ADD_SPECIAL : 0, error)
                   : NULL;
  g_mutex_unlock (&r->lock);
  if (!enc)
    return FALSE;
  gint64 n = enc->ids->len;
  gint64 context = cria_model_get_config (cria_lm_get_model (r->lm))->max_positions;
  if (n == 0 || (context > 0 && n >= context)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: %" G_GINT64_FORMAT " tokens; the model takes 1 to %" G_GINT64_FORMAT " (room to answer included)",
                 req->messages ? "messages" : "prompt", n, context > 0 ? context - 1 : G_MAXINT64);
    return FALSE;
  }
  CriaSampling s;
  cria_sampling_init (&s);
  request_sampling (r, req, context > 0 ? context - n : 0, &s);
  if (hooks) {
    s.presence_penalty = hooks->presence_penalty;
    s.frequency_penalty = hooks->frequency_penalty;
    s.on_logits = hooks->on_logits;
    s.on_token = hooks->on_token;
    s.hook_data = hooks->hook_data;
  }
  Relay relay = { on_text, user_data, cancellable };
  CriaGeneration gen;
  const gint32 *ids = (const gint32 *) enc->ids->data;
  gboolean ok = r->batcher
                    ? cria_lm_batcher_generate (r->batcher, r->tokenizer, ids, enc->ids->len, &s, relay_text, &relay,
                                                cancellable, &gen, error)
                    : cria_lm_generate (r->lm, r->tokenizer, ids, enc->ids->len, &s, relay_text, &relay, &gen, error);
  cria_sampling_clear (&s);
  if (ok && g_cancellable_set_error_if_cancelled (cancellable, error))
    ok = FALSE;
  if (ok) {
    res->text = g_steal_pointer (&gen.text);
    res->finish_reason = g_strdup (gen.finish == CRIA_FINISH_LENGTH ? "length" : "stop");
    res->prompt_tokens = (int) n;
    res->completion_tokens = (int) gen.ids->len;
  }
  cria_generation_clear (&gen);
  return ok;
}
