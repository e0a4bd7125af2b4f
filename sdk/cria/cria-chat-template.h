/* cria-chat-template.h: chat templates, the programs that turn a list of
 * messages into the exact prompt text a model was tuned on.
 *
 * Hugging Face keeps them in tokenizer_config.json ("chat_template") as
 * Jinja2; cria compiles the subset of Jinja2 that model families use
 * (cria-chat-template(5)) once, and renders it as often as needed. A model
 * directory without one falls back to cria's prompt formats (share/formats,
 * cria-prompt-format.h). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <cria/cria-record.h>

G_BEGIN_DECLS

typedef struct _CriaChatTemplate CriaChatTemplate;

/* Compiles `source`. `origin` names it in errors ("file:line:column: ..."):
 * an unknown tag, filter, test, function or method fails here, not when
 * rendering. */
CriaChatTemplate *cria_chat_template_new_from_string (const char *source, const char *origin, GError **error);
/* The chat_template of a tokenizer_config.json: a string, or a list of
 * {"name", "template"} from which `name` is taken (NULL: "default").
 * bos_token, eos_token and the other special tokens of the file (strings or
 * {"content": ...} objects) become variables of every render.
 * CRIA_ERROR_NOT_FOUND when the file has no such template. */
CriaChatTemplate *cria_chat_template_load (const char *tokenizer_config_path, const char *name, GError **error);
void cria_chat_template_free (CriaChatTemplate *tmpl);
/* Where the template came from, as errors name it. */
const char *cria_chat_template_get_origin (const CriaChatTemplate *tmpl);

/* The prompt for `messages` (JSON objects with "role", "content" and
 * whatever else the template reads: tool_calls, reasoning_content...).
 * `extra` (may be NULL) adds or overrides variables: tools, documents,
 * enable_thinking, bos_token... A failure while rendering
 * (raise_exception(), a type error, a limit on steps or size) is
 * CRIA_ERROR_FAILED with the template's message and position. */
char *cria_chat_template_render (const CriaChatTemplate *tmpl, JsonArray *messages, gboolean add_generation_prompt,
                                 JsonObject *extra, GError **error);

/* For training on the last assistant turn: *prompt is the conversation
 * before it rendered with the generation prompt, *response what rendering
 * the whole conversation adds after that prompt. CRIA_ERROR_UNSUPPORTED
 * when the conversation does not end with an assistant message, or when the
 * template does not render the whole conversation as an extension of the
 * prompt (then no split would be honest). */
gboolean cria_chat_template_render_split (const CriaChatTemplate *tmpl, JsonArray *messages, JsonObject *extra,
                                          char **prompt, char **response, GError **error);

/* A record's conversation (cria_record_get_turns()) as chat messages. */
JsonArray *cria_chat_messages_from_record (const CriaRecord *record);

/* The prompt a model directory expects, and in *used (may be NULL) a short
 * description of what produced it. `format` (may be NULL) forces a choice:
 * a .jinja file, or the name of a prompt format. Otherwise, in order:
 * tokenizer_config.json's chat_template (its "tool_use" template when
 * extra has tools), chat_template.jinja, then the prompt format of the
 * model's family (chatml for Qwen, llama2 for LLaMA with a SentencePiece
 * tokenizer). A family without one (GPT-2) is CRIA_ERROR_NOT_FOUND, which
 * asks for `format`. Prompt formats end a conversation that does not end
 * with the assistant with their generation prefix, whatever
 * add_generation_prompt says. */
char *cria_chat_prompt_for_model (const char *model_dir, const char *format, JsonArray *messages,
                                  gboolean add_generation_prompt, JsonObject *extra, char **used, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaChatTemplate, cria_chat_template_free)

G_END_DECLS
