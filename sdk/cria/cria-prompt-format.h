/* cria-prompt-format.h: prompt formats, the text a record becomes for training.
 *
 * A format is a JSON file under share/formats/ (cria-record(5), PROMPT
 * FORMATS): "single" formats (Alpaca) fill a prompt template with the
 * record's instruction and input; "chat" formats (ChatML, LLaMA-2, Vicuna)
 * wrap each turn of the record's conversation in its role's template. */
#pragma once

#include <glib.h>
#include <cria/cria-record.h>

G_BEGIN_DECLS

typedef struct _CriaPromptFormat CriaPromptFormat;

/* A name ("chatml", found as share/formats/chatml.json) or a path. */
CriaPromptFormat *cria_prompt_format_load (const char *name, GError **error);
void cria_prompt_format_free (CriaPromptFormat *format);
const char *cria_prompt_format_get_name (const CriaPromptFormat *format);

/* The record as text: *prompt is everything the model reads, *response what
 * it learns to write (the last assistant turn; "" when the record has no
 * output, and then the prompt ends with the format's generation prefix). */
gboolean cria_prompt_format_render (const CriaPromptFormat *format, const CriaRecord *record, char **prompt,
                                    char **response, GError **error);

/* What an adapter (or a fully fine-tuned model) directory remembers of its
 * training: cria train copies the format's file there as
 * prompt_format.json, so that the directory alone says how to prompt it.
 * `format` is a name or a path, as for cria_prompt_format_load. */
#define CRIA_PROMPT_FORMAT_RECORD "prompt_format.json"
gboolean cria_prompt_format_record (const char *dir, const char *format, GError **error);
/* The path of the format recorded in `dir`, or NULL when it has none. */
char *cria_prompt_format_recorded (const char *dir);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaPromptFormat, cria_prompt_format_free)

G_END_DECLS
