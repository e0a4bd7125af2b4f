/* cria-record.h: one instruction-tuning example. See cria-record(5). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
  char *role; /* "system", "user", "assistant" (or a tool's role) */
  char *content;
} CriaMessage;

/* Text fields are UTF-8; NULL means absent, which differs from "". */
typedef struct {
  char *instruction;
  char *input;
  char *output;
  char *system;
  GPtrArray *messages; /* of CriaMessage*; NULL for a single-turn record */
  JsonObject *meta;    /* free metadata: source, id, category, references...; never NULL */
  /* A preference pair (DPO, IPO, ORPO): two answers to the prompt above (the
   * instruction and input, or the conversation, which then ends before the
   * answer), the preferred one and the other; both or neither. */
  char *chosen;
  char *rejected;
} CriaRecord;

CriaRecord *cria_record_new (void);
void cria_record_free (CriaRecord *record);
CriaRecord *cria_record_copy (const CriaRecord *record);

/* Takes ownership of nothing: copies the strings. */
void cria_record_add_message (CriaRecord *record, const char *role, const char *content);
void cria_record_set_field (CriaRecord *record, const char *field, const char *value);
/* "instruction", "input", "output", "system", "chosen" or "rejected"; NULL
 * when absent. Any other
 * name is looked up among the metadata strings. */
const char *cria_record_get_field (const CriaRecord *record, const char *field);

/* The record as a JSON object in cria's interchange form (cria-record(5)):
 * known fields first, then each metadata member at top level. */
JsonObject *cria_record_to_json (const CriaRecord *record);
/* Builds a record from that form. Unknown members become metadata. A known
 * field of the wrong type, or a message whose role is not one of
 * cria_record_role_is_known(), fails with CRIA_RECORD_ERROR_INVALID_FIELD
 * naming it. */
CriaRecord *cria_record_from_json (JsonObject *object, GError **error);
/* One line of JSON, without the newline. */
char *cria_record_to_json_line (const CriaRecord *record);
/* The same line appended to `out`, for writers that reuse one buffer. */
void cria_record_append_json_line (GString *out, const CriaRecord *record);

/* The record as a conversation (CriaMessage*, transfer full): its messages,
 * or else system, then user (instruction, a blank line, then the input when
 * there is one), then assistant (the output, when present). */
GPtrArray *cria_record_get_turns (const CriaRecord *record);

/* system, developer, user, assistant, tool, function: the roles of a
 * messages record (cria-record(5)). */
gboolean cria_record_role_is_known (const char *role);
/* TRUE when the record holds an instruction, an input, an output or messages:
 * a record with none of them has nothing to train on. */
gboolean cria_record_has_content (const CriaRecord *record);

/* Preference layouts other than strings: `chosen` and `rejected` given as a
 * message ({role, content} or ShareGPT's {from, value}) or as a whole
 * conversation (TRL's implicit prompt, UltraFeedback), which
 * cria_record_from_json leaves in the metadata, become the two answers, and
 * the conversation before them (or a `prompt` string or message list) the
 * record's prompt. Fails naming the field when only one answer is given,
 * when the two conversations differ before their answers, or when the
 * prompt conversation ends with an assistant turn. */
gboolean cria_record_take_preference (CriaRecord *record, GError **error);

/* TRUE when the record is a preference pair (chosen and rejected). */
gboolean cria_record_is_preference (const CriaRecord *record);
/* The record with `answer` as its output (a single-turn record) or as an
 * assistant turn after its conversation, without chosen and rejected:
 * what a preference pair's side is trained as (transfer full). */
CriaRecord *cria_record_with_answer (const CriaRecord *record, const char *answer);

/* TRUE when both hold the same fields, messages and metadata. */
gboolean cria_record_equal (const CriaRecord *a, const CriaRecord *b);

void cria_message_free (CriaMessage *message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaRecord, cria_record_free)

G_END_DECLS
