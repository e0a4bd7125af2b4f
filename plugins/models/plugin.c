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
  .kind = CRIA_KIND_MODEL,
  .name = "llama",
  .description = "LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM: RMSNorm, RoPE, GQA, SwiGLU",
  .example = "cria generate --model Qwen2.5-0.5B-Instruct \"Name three colours.\"",
  .props = no_props,
  .vtable = &cria_llama_vtable,
};

static const CriaProviderInfo gpt2_info = {
  .kind = CRIA_KIND_MODEL,
  .name = "gpt2",
  .description = "GPT2LMHeadModel: learned positions, LayerNorm, tanh-GELU, Conv1D layout, tied head",
  .example = "cria generate --model gpt2 \"The quick brown fox\"",
  .props = no_props,
  .vtable = &cria_gpt2_vtable,
};

static const CriaProviderInfo qwen3_info = {
  .kind = CRIA_KIND_MODEL,
  .name = "qwen3",
  .description =
      "Qwen3ForCausalLM: LLaMA's decoder with RMSNorm on each head of q and k before RoPE, explicit head_dim",
  .example = "cria generate --model Qwen3-0.6B \"Name three colours.\"",
  .props = no_props,
  .vtable = &cria_qwen3_vtable,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &llama_info);
  cria_plugin_add_provider (plugin, &gpt2_info);
  cria_plugin_add_provider (plugin, &qwen3_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("models", "Model architectures: GPT-2, LLaMA, Qwen2, Mistral, Qwen3", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
