/* cria-cli-model.c: what the verbs that run a model share — the options
 * that pick the model, its weight dtype and the backend, and opening them. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <cria/cria-chat-template.h>
#include <cria/cria-input.h>

#include "cria-cli-model.h"

void
cria_cli_model_init (CriaCliModel *m)
{
  memset (m, 0, sizeof *m);
}

static gboolean
parse_dtype (const char *name, CriaModelDType *dtype, GError **error)
{
  if (!name || strcmp (name, "auto") == 0)
    *dtype = CRIA_MODEL_DTYPE_AUTO;
  else if (strcmp (name, "f32") == 0)
    *dtype = CRIA_MODEL_DTYPE_F32;
  else if (strcmp (name, "bf16") == 0)
    *dtype = CRIA_MODEL_DTYPE_BF16;
  else {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "--dtype %s: expected auto, f32 or bf16", name);
    return FALSE;
  }
  return TRUE;
}

GOptionGroup *
cria_cli_model_options (CriaCliModel *m)
{
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &m->dir,
      "Hugging Face model directory (config.json, weights, tokenizer), or ORG/NAME pulled by cria pull; required",
      "DIR" },
    { "dtype", 0, 0, G_OPTION_ARG_STRING, &m->dtype, "Weights in memory: auto (as stored), f32 or bf16 (default: auto)",
      "DTYPE" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &m->backend_spec,
      "Compute backend and its properties (default \"cpu\"; e.g. \"cpu threads=2\")", "SPEC" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &m->threads, "Threads of the cpu backend (default: every core)", "N" },
    { "adapter", 'a', 0, G_OPTION_ARG_FILENAME, &m->adapter_dir,
      "A PEFT adapter directory (cria train's output) applied to the model (default: none)", "DIR" },
    { NULL }
  };
  GOptionGroup *group = g_option_group_new ("model", "Model options:", "Show the model options", NULL, NULL);
  g_option_group_add_entries (group, entries);
  return group;
}

/* TRUE when `dir` ships a chat template: tokenizer_config.json's
 * chat_template or chat_template.jinja. */
static gboolean
ships_chat_template (const char *dir)
{
  g_autofree char *jinja = g_build_filename (dir, "chat_template.jinja", NULL);
  if (g_file_test (jinja, G_FILE_TEST_EXISTS))
    return TRUE;
  g_autofree char *path = g_build_filename (dir, "tokenizer_config.json", NULL);
  g_autoptr (JsonNode) root = g_file_test (path, G_FILE_TEST_EXISTS) ? cria_json_load_file (path, NULL) : NULL;
  JsonObject *config = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *t = config ? json_object_get_member (config, "chat_template") : NULL;
  return t && !JSON_NODE_HOLDS_NULL (t);
}

gboolean
cria_cli_model_open (CriaCliModel *m, gboolean need_tokenizer, GError **error)
{
  if (!m->dir) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "option --model is required");
    return FALSE;
  }
  if (m->threads < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "option --threads: %d is negative (0: every core)",
                 m->threads);
    return FALSE;
  }
  CriaModelDType dtype;
  if (!parse_dtype (m->dtype, &dtype, error))
    return FALSE;
  if (!m->name)
    m->name = g_strdup (m->dir);
  if (!cria_cli_resolve_model (&m->dir, error))
    return FALSE;
  m->registry = cria_cli_load_registry ();
  CriaLmStack st;
  /* With an adapter, the tokenizer may be the one it saved */
  gboolean ok = cria_lm_stack_open (&st, m->registry, m->dir, dtype, m->backend_spec, m->threads,
                                    need_tokenizer && !m->adapter_dir, error);
  /* --threads is set on the backend's property table. */
  if (!ok && m->threads && error && g_str_has_prefix ((*error)->message, "property 'threads'"))
    cria_cli_say_option (*error);
  /* Kept even on failure, so that cria_cli_model_clear frees what was opened. */
  m->backend = st.backend;
  m->model = st.model;
  m->tokenizer = st.tokenizer;
  m->lm = st.lm;
  if (ok && m->adapter_dir) {
    ok = cria_lm_stack_add_adapter (&st, m->registry, m->adapter_dir, error);
    m->adapter = st.adapter;
    m->tokenizer = st.tokenizer; /* the adapter's, when it brought one */
  }
  /* Decided once: eval and generate render a prompt per record. */
  m->chat_dir = m->adapter_dir && ships_chat_template (m->adapter_dir) ? m->adapter_dir : m->dir;
  if (ok && need_tokenizer && !m->tokenizer) {
    m->tokenizer = cria_tokenizer_load (m->registry, m->dir, error);
    if (!m->tokenizer) {
      g_prefix_error (error, "%s: no tokenizer: ", m->dir);
      ok = FALSE;
    }
  }
  return ok;
}

void
cria_cli_model_clear (CriaCliModel *m)
{
  g_clear_pointer (&m->lm, cria_lm_free);
  g_clear_pointer (&m->adapter, cria_adapter_free);
  g_clear_pointer (&m->tokenizer, cria_tokenizer_free);
  g_clear_pointer (&m->model, cria_model_free);
  g_clear_pointer (&m->backend, cria_backend_free);
  g_clear_pointer (&m->registry, cria_registry_free);
  g_clear_pointer (&m->dir, g_free);
  g_clear_pointer (&m->name, g_free);
  g_clear_pointer (&m->dtype, g_free);
  g_clear_pointer (&m->backend_spec, g_free);
  g_clear_pointer (&m->adapter_dir, g_free);
}

GArray *
cria_cli_parse_ids (const char *text, GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_auto (GStrv) parts = g_strsplit_set (text, ", ", -1);
  for (guint i = 0; parts[i]; i++) {
    if (!*parts[i])
      continue;
    gint64 v;
    if (!g_ascii_string_to_signed (parts[i], 10, 0, G_MAXINT32, &v, NULL)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "--ids: \"%s\" is not a token id", parts[i]);
      return NULL;
    }
    gint32 id = (gint32) v;
    g_array_append_val (ids, id);
  }
  if (ids->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "--ids: no token ids");
    return NULL;
  }
  return g_steal_pointer (&ids);
}

gboolean
cria_cli_print_piece (const char *piece, gpointer user_data)
{
  fputs (piece, stdout);
  fflush (stdout);
  return TRUE;
}

GArray *
cria_cli_encode (CriaCliModel *m, const char *text, gboolean add_special, GError **error)
{
  g_autoptr (CriaEncoding)
      enc = cria_tokenizer_encode (m->tokenizer, text, -1, add_special ? CRIA_ENCODE_ADD_SPECIAL : 0, error);
  if (!enc)
    return NULL;
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_array_append_vals (ids, enc->ids->data, enc->ids->len);
  return ids;
}

void
cria_cli_sampling_init (CriaCliSampling *o)
{
  memset (o, 0, sizeof *o);
  o->max_new_tokens = 256;
  o->top_p = 1.0;
  o->repetition_penalty = 1.0;
}

GOptionGroup *
cria_cli_sampling_options (CriaCliSampling *o)
{
  GOptionEntry entries[] = {
    { "max-new-tokens", 'n', 0, G_OPTION_ARG_INT, &o->max_new_tokens, "Tokens to generate at most (default 256)", "N" },
    { "temperature", 0, 0, G_OPTION_ARG_DOUBLE, &o->temperature, "Sampling temperature; 0 (default) is greedy", "T" },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &o->top_k, "Sample among the K most likely tokens (default 0: all)", "K" },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &o->top_p,
      "Nucleus sampling: the most likely tokens up to probability P (default 1)", "P" },
    { "repetition-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &o->repetition_penalty,
      "Divide the logits of tokens already present by R (default 1: off)", "R" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, "Seed of the sampler (default 0)", "N" },
    { "stop", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->stop,
      "End the text before this string (repeatable; default: the model's stop tokens only)", "TEXT" },
    { "prompt-format", 'p', 0, G_OPTION_ARG_STRING, &o->prompt_format,
      "Prompt format: auto (the model's chat template; the default, after the format an --adapter was trained "
      "with), a format of share/formats (alpaca, chatml, llama2, vicuna), a format file or a .jinja template",
      "NAME" },
    { NULL }
  };
  GOptionGroup *group = g_option_group_new ("sampling", "Decoding options:", "Show the decoding options", NULL, NULL);
  g_option_group_add_entries (group, entries);
  return group;
}

gboolean
cria_cli_sampling_apply (const CriaCliSampling *o, CriaModel *model, CriaSampling *s, GError **error)
{
  if (o->max_new_tokens < 1 || o->temperature < 0 || o->top_k < 0 || o->top_p <= 0 || o->top_p > 1 ||
      o->repetition_penalty <= 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "decoding options out of range: --max-new-tokens >= 1, --temperature >= 0, --top-k >= 0, "
                 "0 < --top-p <= 1, --repetition-penalty > 0");
    return FALSE;
  }
  s->max_new_tokens = o->max_new_tokens;
  s->temperature = o->temperature;
  s->top_k = o->top_k;
  s->top_p = o->top_p;
  s->repetition_penalty = o->repetition_penalty;
  s->seed = (guint64) o->seed;
  for (guint i = 0; o->stop && o->stop[i]; i++)
    if (*o->stop[i])
      g_ptr_array_add (s->stop, g_strdup (o->stop[i]));
  cria_sampling_add_model_stops (s, model);
  return TRUE;
}

void
cria_cli_sampling_clear (CriaCliSampling *o)
{
  g_clear_pointer (&o->stop, g_strfreev);
  g_clear_pointer (&o->prompt_format, g_free);
}

gboolean
cria_cli_sampling_resolve_format (CriaCliSampling *o, const CriaCliModel *m, GError **error)
{
  if (!o->prompt_format && m->adapter_dir)
    o->prompt_format = cria_prompt_format_recorded (m->adapter_dir);
  if (!o->prompt_format && m->dir)
    o->prompt_format = cria_prompt_format_recorded (m->dir);
  const char *f = o->prompt_format;
  if (!f || !strcmp (f, "auto"))
    return TRUE;
  if (g_str_has_suffix (f, ".jinja")) {
    g_autofree char *source = NULL;
    if (!cria_file_get_contents (f, 16 << 20, &source, NULL, error))
      return FALSE;
    g_autoptr (CriaChatTemplate) t = cria_chat_template_new_from_string (source, f, error);
    return t != NULL;
  }
  g_autoptr (CriaPromptFormat) format = cria_prompt_format_load (f, error);
  return format != NULL;
}

char *
cria_cli_render_prompt (const CriaCliSampling *o, const char *model_dir, const CriaRecord *record,
                        gboolean *add_special, GError **error)
{
  gboolean special_dummy;
  if (!add_special)
    add_special = &special_dummy;
  *add_special = TRUE;
  /* A plain prompt is given to the model as it is, unless a format is asked for. */
  if (!o->prompt_format && !record->messages) {
    const char *instruction = cria_record_get_field (record, "instruction");
    return g_strdup (instruction ? instruction : "");
  }
  /* "auto" (and a conversation without --prompt-format): the model's own
   * chat template, else its family's prompt format. */
  const char *format = o->prompt_format && strcmp (o->prompt_format, "auto") != 0 ? o->prompt_format : NULL;
  if (format && !record->messages && !g_str_has_suffix (format, ".jinja")) {
    /* As cria train and cria eval render a record: the same prompt. */
    g_autoptr (CriaPromptFormat) f = cria_prompt_format_load (format, error);
    g_autofree char *prompt = NULL, *response = NULL;
    if (!f || !cria_prompt_format_render (f, record, &prompt, &response, error))
      return NULL;
    return g_steal_pointer (&prompt);
  }
  g_autoptr (JsonArray) messages = cria_chat_messages_from_record (record);
  g_autofree char *used = NULL;
  g_autoptr (GError) why = NULL;
  char *text = cria_chat_prompt_for_model (model_dir, format, messages, TRUE, NULL, &used, &why);
  JsonObject *only = json_array_get_length (messages) == 1 ? json_array_get_object_element (messages, 0) : NULL;
  if (!text && !format && g_error_matches (why, CRIA_ERROR, CRIA_ERROR_NOT_FOUND) && only &&
      !strcmp (json_object_get_string_member (only, "role"), "user")) {
    /* No template and no family format (GPT-2): a lone message as it is,
     * as cria serve answers it. */
    return g_strdup (json_object_get_string_member (only, "content"));
  }
  if (!text) {
    g_propagate_error (error, g_steal_pointer (&why));
    return NULL;
  }
  *add_special = g_str_has_prefix (used, "the prompt format");
  return text;
}
