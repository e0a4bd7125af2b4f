/* plugin.c: the model architectures cria builds from Hugging Face
 * directories. Each provider only builds a forward pass from core ops; the
 * core derives backward passes, and adapters attach to the named linear
 * layers.
 *
 *   cria inspect -k model */
#include "config.h"

#include <cria/cria-plugin.h>

#include "models.h"

static const CriaPropSpec no_props[] = { CRIA_PROP_END };

static const CriaProviderInfo llama_info = {
  .name = "llama",
  .description = "LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM: RMSNorm, RoPE, GQA, SwiGLU",
  .example = "cria generate --model Qwen2.5-0.5B-Instruct \"Name three colours.\"",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo gpt2_info = {
  .name = "gpt2",
  .description = "GPT2LMHeadModel: learned positions, LayerNorm, tanh-GELU, Conv1D layout, tied head",
  .example = "cria generate --model gpt2 \"The quick brown fox\"",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo qwen3_info = {
  .name = "qwen3",
  .description =
      "Qwen3ForCausalLM: LLaMA's decoder with RMSNorm on each head of q and k before RoPE, explicit head_dim",
  .example = "cria generate --model Qwen3-0.6B \"Name three colours.\"",
  .props = no_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_model (plugin, &llama_info, &cria_llama_vtable);
  cria_plugin_add_model (plugin, &gpt2_info, &cria_gpt2_vtable);
  cria_plugin_add_model (plugin, &qwen3_info, &cria_qwen3_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (models, "Model architectures: GPT-2, LLaMA, Qwen2, Mistral, Qwen3", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
