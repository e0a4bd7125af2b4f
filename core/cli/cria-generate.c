/* cria-generate.c: `cria generate`, text from a model for each prompt given,
 * streamed as it comes.
 *
 *   cria generate --model tests/models/tiny-llama --max-new-tokens 20 "Once upon a time"
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "cria-cli-model.h"

static const char *const finish_names[] = { "length", "stop", "caller" };

static JsonNode *
describe (const char *prompt, const GArray *prompt_ids, const CriaGeneration *gen)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "prompt");
  json_builder_add_string_value (b, prompt);
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, gen->text);
  json_builder_set_member_name (b, "ids");
  json_builder_begin_array (b);
  for (guint i = 0; i < gen->ids->len; i++)
    json_builder_add_int_value (b, g_array_index (gen->ids, gint32, i));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "finish_reason");
  json_builder_add_string_value (b, finish_names[gen->finish]);
  json_builder_set_member_name (b, "prompt_tokens");
  json_builder_add_int_value (b, prompt_ids->len);
  json_builder_set_member_name (b, "completion_tokens");
  json_builder_add_int_value (b, gen->ids->len);
  json_builder_set_member_name (b, "prefill_tokens_per_second");
  json_builder_add_double_value (b, gen->prefill_seconds > 0 ? prompt_ids->len / gen->prefill_seconds : 0);
  json_builder_set_member_name (b, "decode_tokens_per_second");
  json_builder_add_double_value (b, gen->decode_seconds > 0 ? gen->ids->len / gen->decode_seconds : 0);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

int
cria_verb_generate (int argc, char **argv)
{
  CriaCliModel m;
  CriaCliSampling so;
  cria_cli_model_init (&m);
  cria_cli_sampling_init (&so);
  gboolean as_json = FALSE, add_special = FALSE, no_special = FALSE;
  g_autofree char *ids_text = NULL;
  GOptionEntry entries[] = {
    { "ids", 0, 0, G_OPTION_ARG_STRING, &ids_text,
      "Generate from these token ids (commas or spaces) instead of a PROMPT (default: none)", "IDS" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &as_json,
      "Print one JSON object per prompt (text, ids, finish reason, speed) instead of streaming text", NULL },
    { "no-add-special", 0, 0, G_OPTION_ARG_NONE, &no_special,
      "Do not add the tokenizer's special tokens (BOS) to the prompt (default: added, as its tokenizer_config.json "
      "says, except to a prompt a chat template wrote)",
      NULL },
    { "add-special", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &add_special,
      "Add the tokenizer's special tokens (the default)", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("PROMPT... - generate text from a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_model_options (&m));
  g_option_context_add_group (ctx, cria_cli_sampling_options (&so));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  int status = CRIA_EXIT_FAILURE;
  g_autoptr (GError) error = NULL;
  CriaSampling s;
  cria_sampling_init (&s);
  if ((argc < 2) == (ids_text == NULL)) {
    g_printerr ("cria generate: give PROMPT... or --ids (see cria generate --help)\n");
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (add_special && no_special) {
    g_printerr ("cria generate: --add-special and --no-add-special contradict each other\n");
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (!cria_cli_model_open (&m, TRUE, &error) || !cria_cli_sampling_apply (&so, m.model, &s, &error) ||
      !cria_cli_sampling_resolve_format (&so, &m, &error))
    goto done;
  for (int i = ids_text ? 0 : 1; i < (ids_text ? 1 : argc); i++) {
    g_autoptr (CriaRecord) record = cria_record_new ();
    cria_record_set_field (record, "instruction", ids_text ? ids_text : argv[i]);
    gboolean special = TRUE;
    g_autofree char *prompt = ids_text ? NULL : cria_cli_render_prompt (&so, m.chat_dir, record, &special, &error);
    g_autoptr (GArray) ids = ids_text ? cria_cli_parse_ids (ids_text, &error)
                             : prompt ? cria_cli_encode (&m, prompt, special && !no_special, &error)
                                      : NULL;
    if (!ids)
      goto done;
    if (ids->len == 0) {
      g_set_error (&error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "prompt %d is empty after tokenization", i);
      goto done;
    }
    CriaGeneration gen;
    gboolean ok = cria_lm_generate (m.lm, m.tokenizer, (const gint32 *) ids->data, ids->len, &s,
                                    as_json ? NULL : cria_cli_print_piece, NULL, &gen, &error);
    if (ok && as_json) {
      g_autoptr (JsonNode) node = describe (ids_text ? ids_text : argv[i], ids, &gen);
      cria_cli_print_json (node);
    } else if (ok)
      printf ("\n");
    cria_generation_clear (&gen);
    if (!ok)
      goto done;
  }
  status = CRIA_EXIT_OK;
done:
  if (error)
    cria_cli_error ("generate", error);
  cria_sampling_clear (&s);
  cria_cli_sampling_clear (&so);
  cria_cli_model_clear (&m);
  return status;
}
