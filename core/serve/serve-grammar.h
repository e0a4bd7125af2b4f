/* serve-grammar.h: response_format of `cria serve` — JSON (and a JSON
 * Schema subset) as a state machine over characters, and the token mask it
 * makes, so that what the model writes always parses and matches.
 * (No HTTP and no model here: testable on their own.) */
#pragma once

#include <cria/cria.h>

/* A compiled schema; NULL-schema grammars take any JSON object. */
typedef struct _ServeSchema ServeSchema;

/* Compiles the JSON Schema subset cria can enforce: type (one or a list),
 * properties (at most 64, each given at most once, in any order; only the
 * declared ones), required, additionalProperties (false, or true/absent
 * when no properties are declared), items, minItems, maxItems, enum, const,
 * anyOf (branches that begin with different characters), minLength,
 * maxLength, $ref to #/$defs or #/definitions; annotations are ignored. Any
 * other keyword (pattern, minimum...) is CRIA_ERROR_UNSUPPORTED naming it,
 * with its path in the schema. */
ServeSchema *serve_schema_compile (JsonNode *schema, GError **error);
void serve_schema_free (ServeSchema *schema);

typedef struct _ServeGrammar ServeGrammar;

/* With schema NULL: any JSON object (response_format json_object). The
 * schema is borrowed. */
ServeGrammar *serve_grammar_new (const ServeSchema *schema);
void serve_grammar_free (ServeGrammar *g);
/* Feeds text; FALSE (and the grammar unchanged) when it cannot continue
 * a matching document. */
gboolean serve_grammar_feed (ServeGrammar *g, const char *text, gsize len);
/* The document is whole: nothing more may follow. */
gboolean serve_grammar_done (const ServeGrammar *g);

/* The text token `id` adds in the middle of a text (after `anchor`, a
 * plain token; -1: decoded alone). */
char *serve_token_text (CriaTokenizer *tok, gint32 anchor, gint32 id, gboolean skip_special);
/* A token to decode others after: the one "a" encodes to, or -1. */
gint32 serve_token_anchor (CriaTokenizer *tok);

/* The text of every token of a vocabulary (serve_token_text), for masks. */
typedef struct _ServeVocab ServeVocab;
ServeVocab *serve_vocab_new (CriaTokenizer *tok);
void serve_vocab_free (ServeVocab *v);
/* Characters at least that make the document whole from here. */
gint64 serve_grammar_close_cost (const ServeGrammar *g);
/* Sets the logits of every token that the grammar cannot take to
 * -INFINITY; FALSE when no token can be taken (then nothing is masked).
 * With `budget` (tokens left; -1: unknown) close to what closing the
 * document takes, only tokens that bring its end nearer are kept, so that
 * it ends whole within max_tokens whenever that is possible. */
gboolean serve_grammar_mask (const ServeGrammar *g, const ServeVocab *v, float *logits, gint64 vocab, gint64 budget);
/* Advances by token `id`'s text. */
gboolean serve_grammar_feed_token (ServeGrammar *g, const ServeVocab *v, gint32 id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ServeSchema, serve_schema_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ServeGrammar, serve_grammar_free)
