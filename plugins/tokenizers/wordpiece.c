/* wordpiece: BERT's WordPiece from a tokenizer.json or a vocab.txt,
 * with BERT's basic tokenizer (whitespace and punctuation
 * split, CJK characters alone, optional lowercasing and accent stripping).
 *
 *   cria tokenize --tokenizer bert-base-uncased/vocab.txt --tokens questions.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

static const CriaPropSpec wordpiece_props[] = {
  { "lowercase", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "lowercase the text before splitting (vocab.txt only; a tokenizer.json says it itself)" },
  { "strip-accents", CRIA_PROP_ENUM, "auto", 0, 0, "auto|true|false",
    "remove accents after NFD (vocab.txt only); auto: when lowercasing, as BERT does" },
  CRIA_PROP_END
};

static int
wordpiece_probe (const CriaTokenizerFiles *f)
{
  const char *model = tok_model_type (f);
  if (model)
    return strcmp (model, "WordPiece") == 0 ? 10 : 0;
  return f->vocab_txt ? 5 : 0;
}

static gpointer
wordpiece_load (const CriaTokenizerFiles *f, const CriaProps *props, GError **error)
{
  if (f->json)
    return tok_load_json (f->json, f->tokenizer_json, error);
  if (!f->vocab_txt) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: wordpiece needs tokenizer.json or vocab.txt", f->dir);
    return NULL;
  }
  const char *sa = cria_props_get_string (props, "strip-accents");
  int strip = strcmp (sa, "auto") == 0 ? -1 : strcmp (sa, "true") == 0;
  return tok_load_vocab_txt (f->vocab_txt, cria_props_get_bool (props, "lowercase"), strip, error);
}

static const CriaTokenizerVTable wordpiece_vtable = {
  CRIA_VTABLE_INIT (CriaTokenizerVTable),
  .probe = wordpiece_probe,
  .load = wordpiece_load,
  TOK_VTABLE_SHARED,
};

static const CriaProviderInfo tok_wordpiece_info = {
  .name = "wordpiece",
  .description = "BERT WordPiece with the basic tokenizer (tokenizer.json, vocab.txt or a JSON list of tokens)",
  .example = "cria tokenize --tokenizer bert-base-uncased/vocab.txt --tokens questions.txt",
  .props = wordpiece_props,
  .rank = CRIA_RANK_PRIMARY,
};

void tok_wordpiece_register (CriaPlugin *plugin);

void
tok_wordpiece_register (CriaPlugin *plugin)
{
  cria_plugin_add_tokenizer (plugin, &tok_wordpiece_info, &wordpiece_vtable);
}
