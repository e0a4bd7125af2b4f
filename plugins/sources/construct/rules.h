/* rules.h: the parsing and filtering rules of automatic data construction.
 *
 * Pure functions over model output, shared by the selfinstruct and
 * evolinstruct stages and unit-tested on crafted outputs. Each check returns
 * NULL to accept, or the short reason under which the summary counts a reject. */
#pragma once

#include <cria/cria.h>
#include <cria/cria-metric.h>

G_BEGIN_DECLS

/* Words of a text: each CJK character is one, other text splits at whitespace. */
guint rules_count_words (const char *text);

/* Splits a model's continuation of a numbered list "N. ...\nN+1. ..." into its
 * items, trimmed; the first item is the text before the first number when the
 * prompt already wrote "N." itself. Items stop at an empty number or when the
 * numbering breaks (a model rambling past the list). */
GPtrArray *rules_parse_numbered_list (const char *text, guint first_number);

typedef struct {
  guint min_words;
  guint max_words;
  char **blocklist;     /* lower-case words or phrases a text model cannot act on */
  gboolean ascii_start; /* refuse instructions starting with a non-ASCII character (English pools) */
} RulesInstructionFilter;

/* Self-Instruct's heuristics: length, blocklist, starting with punctuation or
 * (for English) a non-ASCII character. Reasons: "too-short", "too-long",
 * "blocklist", "punctuation-start", "non-ascii-start", "empty". */
const char *rules_check_instruction (const RulesInstructionFilter *filter, const char *instruction);

/* A pool of accepted instructions, compared by ROUGE-L F1 through the rouge
 * metric provider, tokenized "mixed": each CJK character alone, other text by
 * words, so that Chinese is compared by characters. */
typedef struct _RulesPool RulesPool;
RulesPool *rules_pool_new (CriaRegistry *registry, GError **error);
void rules_pool_free (RulesPool *pool);
void rules_pool_add (RulesPool *pool, const char *instruction);
guint rules_pool_size (RulesPool *pool);
const char *rules_pool_get (RulesPool *pool, guint i);
/* ROUGE-L F1 of two texts. */
double rules_pool_similarity (RulesPool *pool, const char *a, const char *b);
/* The highest ROUGE-L F1 of text against the pool, and where (-1: empty pool). */
double rules_pool_max_similarity (RulesPool *pool, const char *text, int *most_similar);

/* An instance written as "Input: ...\nOutput: ..." (input-first) or
 * "Class label: ...\nInput: ..." (output-first); also "输入：" / "输出：" and
 * "类别：". An input of "<noinput>", "Null", "None" or "无" becomes "". */
gboolean rules_parse_instance (const char *text, gboolean output_first, char **input, char **output);

/* "yes"/"no" (or "是"/"否") at the start of an answer; FALSE when neither. */
gboolean rules_parse_yes_no (const char *text, gboolean *yes);

/* Evol-Instruct's elimination rules for an evolved instruction and its
 * response. Reasons: "no-information-gain" (the evolved instruction is the
 * original, or nearly: ROUGE-L F1 >= max_similarity), "apology" (a short
 * response that apologizes or refuses), "punctuation-and-stop-words" (a
 * response made only of those), "prompt-leak" (the evolved instruction repeats
 * the words of the evolution prompt), "empty". */
const char *rules_check_evolution (RulesPool *scratch, const char *original, const char *evolved, const char *response,
                                   double max_similarity);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RulesPool, rules_pool_free)

G_END_DECLS
