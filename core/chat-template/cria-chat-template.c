/* cria-chat-template.c: loading chat templates from tokenizer configs and
 * model directories, and rendering conversations through them.
 *
 *   cria generate --chat MODEL_DIR   (through cria_chat_prompt_for_model) */
#include "config.h"

#include <string.h>

#include <cria/cria-chat-template.h>
#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-prompt-format.h>
#include <cria/cria-rows.h>

#include "cria-chat-template-private.h"

/* A template is a program of a few KiB: a larger file (or a device) is not one. */
#define CRIA_CHAT_TEMPLATE_MAX_BYTES ((gsize) 16 << 20)

struct _CriaChatTemplate {
  char *origin;
  GPtrArray *program;
  CtArena *literals;
  JsonObject *specials; /* bos_token etc. from the tokenizer config */
};

void
cria_chat_template_free (CriaChatTemplate *t)
{
  if (!t)
    return;
  g_free (t->origin);
  if (t->program)
    g_ptr_array_unref (t->program);
  ct_arena_free (t->literals);
  if (t->specials)
    json_object_unref (t->specials);
  g_free (t);
}

CriaChatTemplate *
cria_chat_template_new_from_string (const char *source, const char *origin, GError **error)
{
  g_return_val_if_fail (source != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (CriaChatTemplate) t = g_new0 (CriaChatTemplate, 1);
  t->origin = g_strdup (origin ? origin : "chat template");
  t->literals = ct_arena_new (0);
  t->specials = json_object_new ();
  if (!(t->program = ct_parse (source, t->origin, t->literals, error)))
    return NULL;
  return g_steal_pointer (&t);
}

const char *
cria_chat_template_get_origin (const CriaChatTemplate *t)
{
  g_return_val_if_fail (t != NULL, NULL);
  return t->origin;
}

/* transformers' special token attributes; a value is a string or an
 * AddedToken object ({"content": ...}). */
static void
read_specials (JsonObject *config, JsonObject *into)
{
  static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "sep_token",
                                      "pad_token", "cls_token", "mask_token" };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++) {
    JsonNode *v = json_object_get_member (config, keys[i]);
    if (v && JSON_NODE_HOLDS_OBJECT (v))
      v = json_object_get_member (json_node_get_object (v), "content");
    if (v && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING)
      json_object_set_string_member (into, keys[i], json_node_get_string (v));
  }
}

static JsonObject *
load_config (const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON object", path);
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

/* The string members `a` and `b` of a JSON object; FALSE when it is not one
 * or either is missing or not a string. */
static gboolean
two_strings (JsonNode *node, const char *a, const char *b, const char **va, const char **vb)
{
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  *va = o ? json_object_get_string_member_with_default (o, a, NULL) : NULL;
  *vb = o ? json_object_get_string_member_with_default (o, b, NULL) : NULL;
  return *va && *vb;
}

/* The template source named `name` in a config's chat_template member. */
static const char *
find_source (JsonObject *config, const char *path, const char *name, GError **error)
{
  JsonNode *ct = json_object_get_member (config, "chat_template");
  if (!ct || JSON_NODE_HOLDS_NULL (ct)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no chat_template", path);
    return NULL;
  }
  if (JSON_NODE_HOLDS_VALUE (ct) && json_node_get_value_type (ct) == G_TYPE_STRING) {
    if (name && strcmp (name, "default")) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: chat_template has no template named '%s'", path, name);
      return NULL;
    }
    return json_node_get_string (ct);
  }
  if (!JSON_NODE_HOLDS_ARRAY (ct)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "%s: field 'chat_template': expected a string or a list of {\"name\", \"template\"}", path);
    return NULL;
  }
  JsonArray *list = json_node_get_array (ct);
  g_autoptr (GString) names = g_string_new (NULL);
  for (guint i = 0; i < json_array_get_length (list); i++) {
    const char *n, *src;
    if (!two_strings (json_array_get_element (list, i), "name", "template", &n, &src)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: field 'chat_template', item %u: expected {\"name\": string, \"template\": string}", path, i);
      return NULL;
    }
    if (!strcmp (n, name ? name : "default"))
      return src;
    g_string_append_printf (names, "%s%s", names->len ? ", " : "", n);
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: chat_template has no template named '%s' (it has: %s)",
               path, name ? name : "default", names->str);
  return NULL;
}

CriaChatTemplate *
cria_chat_template_load (const char *path, const char *name, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (JsonObject) config = load_config (path, error);
  if (!config)
    return NULL;
  const char *source = find_source (config, path, name, error);
  if (!source)
    return NULL;
  g_autofree char *origin = name ? g_strdup_printf ("%s:chat_template[%s]", path, name)
                                 : g_strdup_printf ("%s:chat_template", path);
  CriaChatTemplate *t = cria_chat_template_new_from_string (source, origin, error);
  if (t)
    read_specials (config, t->specials);
  return t;
}

char *
cria_chat_template_render (const CriaChatTemplate *t, JsonArray *messages, gboolean add_generation_prompt,
                           JsonObject *extra, GError **error)
{
  g_return_val_if_fail (t != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (JsonObject) vars = json_object_new ();
  json_object_set_array_member (vars, "messages", messages ? json_array_ref (messages) : json_array_new ());
  json_object_set_boolean_member (vars, "add_generation_prompt", add_generation_prompt);
  json_object_set_null_member (vars, "tools");
  json_object_set_null_member (vars, "documents");
  GList *members = json_object_get_members (t->specials);
  for (GList *l = members; l; l = l->next)
    json_object_set_member (vars, l->data, json_object_dup_member (t->specials, l->data));
  g_list_free (members);
  if (extra) {
    members = json_object_get_members (extra);
    for (GList *l = members; l; l = l->next)
      json_object_set_member (vars, l->data, json_object_dup_member (extra, l->data));
    g_list_free (members);
  }
  return ct_render (t->program, t->origin, vars, error);
}

gboolean
cria_chat_template_render_split (const CriaChatTemplate *t, JsonArray *messages, JsonObject *extra, char **prompt,
                                 char **response, GError **error)
{
  g_return_val_if_fail (t != NULL, FALSE);
  g_return_val_if_fail (messages != NULL, FALSE);
  g_return_val_if_fail (prompt != NULL, FALSE);
  g_return_val_if_fail (response != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  guint n = json_array_get_length (messages);
  JsonNode *last = n ? json_array_get_element (messages, n - 1) : NULL;
  const char *role = NULL, *content;
  if (!last || !two_strings (last, "role", "content", &role, &content) || strcmp (role, "assistant")) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: the conversation must end with an assistant message to split it into prompt and response",
                 t->origin);
    return FALSE;
  }
  g_autoptr (JsonArray) before = json_array_sized_new (n - 1);
  for (guint i = 0; i + 1 < n; i++)
    json_array_add_element (before, json_node_copy (json_array_get_element (messages, i)));
  g_autofree char *p = cria_chat_template_render (t, before, TRUE, extra, error);
  g_autofree char *whole = p ? cria_chat_template_render (t, messages, FALSE, extra, error) : NULL;
  if (!whole)
    return FALSE;
  if (!g_str_has_prefix (whole, p)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: the whole conversation does not render as its prompt followed by the last answer", t->origin);
    return FALSE;
  }
  *response = g_strdup (whole + strlen (p));
  *prompt = g_steal_pointer (&p);
  return TRUE;
}

JsonArray *
cria_chat_messages_from_record (const CriaRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);
  g_autoptr (GPtrArray) turns = cria_record_get_turns (record);
  JsonArray *messages = json_array_new ();
  for (guint i = 0; i < turns->len; i++) {
    CriaMessage *m = g_ptr_array_index (turns, i);
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "role", m->role);
    json_object_set_string_member (o, "content", m->content ? m->content : "");
    json_array_add_object_element (messages, o);
  }
  return messages;
}

/* ---- model directories ----------------------------------------------------- */

static char *
render_format (const char *name, JsonArray *messages, GError **error)
{
  g_autoptr (CriaPromptFormat) f = cria_prompt_format_load (name, error);
  if (!f)
    return NULL;
  g_autoptr (CriaRecord) r = cria_record_new ();
  for (guint i = 0; i < json_array_get_length (messages); i++) {
    const char *role, *content;
    if (!two_strings (json_array_get_element (messages, i), "role", "content", &role, &content)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "message %u: prompt format %s needs string fields 'role' and 'content'", i, name);
      return NULL;
    }
    cria_record_add_message (r, role, content);
  }
  g_autofree char *prompt = NULL, *response = NULL;
  if (!cria_prompt_format_render (f, r, &prompt, &response, error))
    return NULL;
  return g_strconcat (prompt, response, NULL);
}

static gboolean
has_tools (JsonObject *extra)
{
  JsonNode *tools = extra ? json_object_get_member (extra, "tools") : NULL;
  return tools && JSON_NODE_HOLDS_ARRAY (tools) && json_array_get_length (json_node_get_array (tools));
}

/* The template of tokenizer_config.json or chat_template.jinja; NULL with
 * no error when the directory has neither. */
static CriaChatTemplate *
find_template (const char *dir, JsonObject *extra, JsonObject *config, char **used, GError **error)
{
  g_autofree char *config_path = g_build_filename (dir, "tokenizer_config.json", NULL);
  g_autoptr (GError) err = NULL;
  JsonNode *ct = config ? json_object_get_member (config, "chat_template") : NULL;
  if (ct && !JSON_NODE_HOLDS_NULL (ct)) {
    CriaChatTemplate *t = has_tools (extra) ? cria_chat_template_load (config_path, "tool_use", &err) : NULL;
    if (!t && err && !g_error_matches (err, CRIA_ERROR, CRIA_ERROR_NOT_FOUND)) {
      g_propagate_error (error, g_steal_pointer (&err));
      return NULL;
    }
    if (!t && !(t = cria_chat_template_load (config_path, NULL, error)))
      return NULL;
    *used = g_strdup_printf ("the chat template of %s", config_path);
    return t;
  }
  g_autofree char *jinja = g_build_filename (dir, "chat_template.jinja", NULL);
  if (!g_file_test (jinja, G_FILE_TEST_EXISTS))
    return NULL;
  g_autofree char *source = NULL;
  if (!cria_file_get_contents (jinja, CRIA_CHAT_TEMPLATE_MAX_BYTES, &source, NULL, error))
    return NULL;
  CriaChatTemplate *t = cria_chat_template_new_from_string (source, jinja, error);
  if (t && config)
    read_specials (config, t->specials);
  if (t)
    *used = g_strdup_printf ("the chat template %s", jinja);
  return t;
}

/* The prompt format of a model family that ships no template, or NULL. */
static const char *
family_format (const char *dir, JsonObject *config)
{
  const char *tok_class = config ? json_object_get_string_member_with_default (config, "tokenizer_class", "") : "";
  g_autofree char *model_config = g_build_filename (dir, "config.json", NULL);
  g_autoptr (JsonNode) root = cria_json_load_file (model_config, NULL);
  const char *type = root && JSON_NODE_HOLDS_OBJECT (root)
                         ? json_object_get_string_member_with_default (json_node_get_object (root), "model_type", "")
                         : "";
  g_autofree char *spm = g_build_filename (dir, "tokenizer.model", NULL);
  if (g_str_has_prefix (tok_class, "Qwen2") || g_str_has_prefix (type, "qwen"))
    return "chatml";
  if (g_str_has_prefix (tok_class, "LlamaTokenizer") ||
      (!strcmp (type, "llama") && g_file_test (spm, G_FILE_TEST_EXISTS)))
    return "llama2";
  return NULL;
}

char *
cria_chat_prompt_for_model (const char *dir, const char *format, JsonArray *messages, gboolean add_generation_prompt,
                            JsonObject *extra, char **used, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *what = NULL;
  g_autoptr (CriaChatTemplate) t = NULL;
  g_autofree char *config_path = g_build_filename (dir, "tokenizer_config.json", NULL);
  g_autoptr (JsonObject) config = NULL;
  if (g_file_test (config_path, G_FILE_TEST_EXISTS) && !(config = load_config (config_path, error)))
    return NULL;
  if (format && g_str_has_suffix (format, ".jinja")) {
    g_autofree char *source = NULL;
    if (!cria_file_get_contents (format, CRIA_CHAT_TEMPLATE_MAX_BYTES, &source, NULL, error))
      return NULL;
    if (!(t = cria_chat_template_new_from_string (source, format, error)))
      return NULL;
    if (config)
      read_specials (config, t->specials);
    what = g_strdup_printf ("the chat template %s", format);
  } else if (!format) {
    g_autoptr (GError) err = NULL;
    t = find_template (dir, extra, config, &what, &err);
    if (err) {
      g_propagate_error (error, g_steal_pointer (&err));
      return NULL;
    }
  }
  char *text;
  if (t) {
    text = cria_chat_template_render (t, messages, add_generation_prompt, extra, error);
  } else {
    const char *name = format ? format : family_format (dir, config);
    if (!name) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND,
                   "%s: no chat template (tokenizer_config.json has no chat_template, no chat_template.jinja) and no "
                   "prompt format is known for this model's family; name one (alpaca, chatml, llama2, vicuna)",
                   dir);
      return NULL;
    }
    text = render_format (name, messages, error);
    what = g_strdup_printf (format ? "the prompt format %s" : "the prompt format %s (the model ships no chat template)",
                            name);
  }
  if (text && used)
    *used = g_steal_pointer (&what);
  return text;
}
