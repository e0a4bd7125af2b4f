/* cria-export.c: `cria export` — a model for another runtime.
 *
 *   cria export --format gguf --model qwen --adapter run1 --out qwen.gguf --type q8_0
 *   cria export --format gguf-lora --model qwen --adapter run1 --out run1.gguf
 *
 * gguf writes the model, the adapter folded in as `cria merge` does, with
 * its tokenizer, for llama.cpp and Ollama; gguf-lora writes the adapter
 * alone, for llama.cpp's --lora on top of the base model's GGUF. */
#include "config.h"

#include <string.h>

#include "cria-cli.h"

int
cria_verb_export (int argc, char **argv)
{
  g_autofree char *format = NULL, *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *type_name = NULL;
  g_autofree char *tokenizer = NULL;
  gboolean nf4_base = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, "gguf (a whole model) or gguf-lora (a LoRA adapter); required",
      "FORMAT" },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Base model directory; required", "DIR" },
    { "adapter", 'a', 0, G_OPTION_ARG_FILENAME, &adapter_dir,
      "PEFT adapter directory (adapter_config.json) merged first (default: none; required by gguf-lora)", "DIR" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "The file written; required", "FILE" },
    { "type", 't', 0, G_OPTION_ARG_STRING, &type_name, "Matrix type of gguf: f32 (default), f16, bf16, q8_0 or q4_0",
      "TYPE" },
    { "tokenizer", 0, 0, G_OPTION_ARG_FILENAME, &tokenizer,
      "tokenizer.json (or its directory) when the model directory has none (default: the model's)", "PATH" },
    { "nf4-base", 0, 0, G_OPTION_ARG_NONE, &nf4_base,
      "Quantize the base's linear weights to NF4 before merging, as qlora trained on them", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- write a model or an adapter as GGUF for llama.cpp");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  gboolean lora = g_strcmp0 (format, "gguf-lora") == 0;
  if (!format || (!lora && strcmp (format, "gguf") != 0)) {
    g_printerr ("cria export: --format %s: not gguf or gguf-lora\n", format ? format : "(missing)");
    return CRIA_EXIT_USAGE;
  }
  if (!model_dir || !out || (lora && !adapter_dir) || argc > 1) {
    g_printerr ("cria export: needs --model DIR --out FILE%s\n", lora ? " --adapter DIR" : "");
    return CRIA_EXIT_USAGE;
  }
  CriaGgufType type = CRIA_GGUF_F32;
  if (type_name && (lora || !cria_gguf_type_from_name (type_name, &type))) {
    g_printerr ("cria export: --type %s: %s\n", type_name,
                lora ? "gguf-lora is written in f32" : "not f32, f16, bf16, q8_0 or q4_0");
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  /* weights stay as the files hold them (mapped): each is converted when
   * written, so a bf16 model is never held in f32 as a whole */
  g_autoptr (CriaModel)
      model = cria_model_open (reg, model_dir, nf4_base ? CRIA_MODEL_DTYPE_F32 : CRIA_MODEL_DTYPE_AUTO, &error);
  gboolean ok = model != NULL;
  if (ok && lora) {
    ok = cria_model_export_gguf_lora (reg, model, adapter_dir, out, &error);
  } else if (ok) {
    if (nf4_base && adapter_dir)
      ok = cria_adapter_quantize_model (model, &error);
    g_autoptr (CriaAdapter) adapter = ok && adapter_dir ? cria_adapter_load (reg, model, adapter_dir, &error) : NULL;
    ok = ok && (!adapter_dir || (adapter && cria_adapter_merge (adapter, model, &error))) &&
         cria_model_export_gguf (reg, model, tokenizer, type, out, &error);
  }
  if (!ok) {
    cria_cli_error ("export", error);
    return CRIA_EXIT_FAILURE;
  }
  printf ("exported %s%s%s as %s: %s\n", model_dir, adapter_dir ? " with " : "", adapter_dir ? adapter_dir : "",
          lora ? "gguf-lora" : cria_gguf_type_name (type), out);
  return CRIA_EXIT_OK;
}
