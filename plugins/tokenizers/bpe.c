/* bpe: byte-level BPE (GPT-2, Qwen2/2.5, LLaMA-3) from a tokenizer.json or
 * from GPT-2's original encoder.json + vocab.bpe.
 *
 *   cria tokenize --tokenizer qwen2.5 --ids prompts.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

static int
bpe_probe (const CriaTokenizerFiles *f)
{
  const char *model = tok_model_type (f);
  if (model)
    return strcmp (model, "BPE") == 0 && tok_json_is_byte_level (f) ? 10 : 0;
  return f->encoder_json && f->vocab_bpe ? 10 : 0;
}

static gpointer
bpe_load (const CriaTokenizerFiles *f, const CriaProps *props, GError **error)
{
  (void) props;
  if (f->json)
    return tok_load_json (f->json, f->tokenizer_json, error);
  if (!f->encoder_json || !f->vocab_bpe) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: bpe needs tokenizer.json or encoder.json + vocab.bpe",
                 f->dir);
    return NULL;
  }
  return tok_load_gpt2 (f->encoder_json, f->vocab_bpe, error);
}

static const CriaTokenizerVTable bpe_vtable = {
  CRIA_VTABLE_INIT (CriaTokenizerVTable),
  .probe = bpe_probe,
  .load = bpe_load,
  TOK_VTABLE_SHARED,
};

static const CriaProviderInfo tok_bpe_info = {
  .name = "bpe",
  .description = "Byte-level BPE as in GPT-2, Qwen2.5 and LLaMA-3 (tokenizer.json, or encoder.json + vocab.bpe)",
  .example = "cria tokenize --tokenizer qwen2.5 --ids prompts.txt",
  .props = NULL,
  .rank = CRIA_RANK_PRIMARY,
};

void tok_bpe_register (CriaPlugin *plugin);

void
tok_bpe_register (CriaPlugin *plugin)
{
  cria_plugin_add_tokenizer (plugin, &tok_bpe_info, &bpe_vtable);
}
