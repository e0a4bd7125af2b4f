/* spm: SentencePiece-style BPE with byte fallback, as LLaMA-2's tokenizer.json
 * declares it (Prepend/Replace normalizers or Metaspace, ByteFallback, Fuse
 * and Strip decoders).
 *
 *   cria tokenize --tokenizer llama2 --tokens prompts.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

static int
spm_probe (const CriaTokenizerFiles *f)
{
  const char *model = tok_model_type (f);
  if (model)
    return strcmp (model, "BPE") == 0 && !tok_json_is_byte_level (f) ? 10 : 0;
  return f->tokenizer_model ? 1 : 0;
}

static gpointer
spm_load (const CriaTokenizerFiles *f, const CriaProps *props, GError **error)
{
  (void) props;
  if (f->json)
    return tok_load_json (f->json, f->tokenizer_json, error);
  /* Reading the protobuf of tokenizer.model is not implemented yet. */
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
               "%s: reading a SentencePiece tokenizer.model is not supported; use its tokenizer.json",
               f->tokenizer_model ? f->tokenizer_model : f->dir);
  return NULL;
}

static const CriaTokenizerVTable spm_vtable = {
  CRIA_VTABLE_INIT (CriaTokenizerVTable),
  .probe = spm_probe,
  .load = spm_load,
  TOK_VTABLE_SHARED,
};

static const CriaProviderInfo tok_spm_info = {
  .name = "spm",
  .description = "SentencePiece BPE with byte fallback, as in LLaMA-2 (tokenizer.json)",
  .example = "cria tokenize --tokenizer llama2 --tokens prompts.txt",
  .props = NULL,
  .rank = CRIA_RANK_PRIMARY,
};

void tok_spm_register (CriaPlugin *plugin);

void
tok_spm_register (CriaPlugin *plugin)
{
  cria_plugin_add_tokenizer (plugin, &tok_spm_info, &spm_vtable);
}
