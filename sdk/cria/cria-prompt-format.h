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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaPromptFormat, cria_prompt_format_free)

G_END_DECLS
