/* cria-merge.c: `cria merge` — fold an adapter into its base model.
 *
 *   cria merge --model tiny-gpt2 --adapter run1 --out tiny-gpt2-merged
 *
 * The result is a plain Hugging Face checkpoint (f32 unless --dtype says
 * otherwise) that any runtime loads without PEFT. An adapter trained by
 * qlora goes into the weights it was trained on with --nf4-base: the base's
 * linear weights quantized to NF4 and dequantized again.
 *
 *   cria merge --model qwen --adapter qlora-run --nf4-base --out qwen-merged */
#include "config.h"

#include "cria-cli.h"

int
cria_verb_merge (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *dtype_name = NULL;
  gboolean nf4_base = FALSE;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir,
      "Base model directory, or ORG/NAME pulled by cria pull; required", "DIR" },
    { "adapter", 'a', 0, G_OPTION_ARG_FILENAME, &adapter_dir, "PEFT adapter directory (adapter_config.json); required",
      "DIR" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Directory of the merged checkpoint; required", "DIR" },
    { "dtype", 0, 0, G_OPTION_ARG_STRING, &dtype_name, "Weight type written: f32 (default), bf16 or f16", "TYPE" },
    { "nf4-base", 0, 0, G_OPTION_ARG_NONE, &nf4_base,
      "Quantize the base's linear weights to NF4 first, as qlora trained on them", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- merge an adapter into its base model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (!model_dir || !adapter_dir || !out || argc > 1) {
    g_printerr ("cria merge: needs --model DIR --adapter DIR --out DIR\n");
    return CRIA_EXIT_USAGE;
  }
  CriaDType dtype = CRIA_DTYPE_F32;
  if (dtype_name && (!cria_dtype_from_name (dtype_name, &dtype) || dtype == CRIA_DTYPE_NF4 || dtype > CRIA_DTYPE_F16)) {
    g_printerr ("cria merge: --dtype %s: not f32, bf16 or f16\n", dtype_name);
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  g_autoptr (CriaModel) model = cria_cli_resolve_model (&model_dir, &error)
                                    ? cria_model_open (reg, model_dir, CRIA_MODEL_DTYPE_F32, &error)
                                    : NULL;
  if (model && nf4_base && !cria_adapter_quantize_model (model, &error))
    g_clear_pointer (&model, cria_model_free);
  g_autoptr (CriaAdapter) adapter = model ? cria_adapter_load (reg, model, adapter_dir, &error) : NULL;
  if (!adapter || !cria_adapter_merge (adapter, model, &error) || !cria_model_save (model, out, dtype, 0, &error)) {
    cria_cli_error ("merge", error);
    return CRIA_EXIT_FAILURE;
  }
  printf ("merged %s into %s: %s\n", adapter_dir, model_dir, out);
  return CRIA_EXIT_OK;
}
