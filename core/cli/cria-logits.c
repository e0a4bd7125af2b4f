/* cria-logits.c: `cria logits`, which writes the logits of every position of
 * a text or of token ids, for parity checks against another implementation.
 *
 *   cria logits --model tests/models/tiny-llama --ids 1,17,200 --out logits.safetensors
 */
#include "config.h"

#include <stdio.h>

#include "cria-cli-model.h"

static gboolean
write_logits (const char *out, const GArray *ids, const CriaTensor *logits, GError **error)
{
  g_autofree gint64 *ids64 = g_new (gint64, ids->len);
  for (guint i = 0; i < ids->len; i++)
    ids64[i] = g_array_index (ids, gint32, i);
  CriaWeight wi = { .name = "input_ids",
                    .dtype = CRIA_DTYPE_I64,
                    .n_dims = 1,
                    .shape = { ids->len },
                    .n_elements = ids->len,
                    .data = ids64,
                    .n_bytes = ids->len * sizeof (gint64) };
  CriaWeight wl = { .name = "logits",
                    .dtype = CRIA_DTYPE_F32,
                    .n_dims = 2,
                    .shape = { logits->shape[0], logits->shape[1] },
                    .n_elements = cria_tensor_numel (logits),
                    .data = logits->data,
                    .n_bytes = cria_tensor_nbytes (logits) };
  g_autoptr (CriaSafetensorsWriter) w = cria_safetensors_writer_new ();
  return cria_safetensors_writer_add (w, &wi, error) && cria_safetensors_writer_add (w, &wl, error) &&
         cria_safetensors_writer_write (w, out, error);
}

int
cria_verb_logits (int argc, char **argv)
{
  CriaCliModel m;
  cria_cli_model_init (&m);
  g_autofree char *text = NULL, *ids_text = NULL, *out = NULL;
  gboolean add_special = FALSE;
  GOptionEntry entries[] = { { "text", 0, 0, G_OPTION_ARG_STRING, &text,
                               "Text to tokenize with the model's tokenizer (this or --ids is required)", "TEXT" },
                             { "ids", 0, 0, G_OPTION_ARG_STRING, &ids_text,
                               "Token ids, separated by commas or spaces (this or --text is required)", "IDS" },
                             { "add-special", 0, 0, G_OPTION_ARG_NONE, &add_special,
                               "Add the tokenizer's special tokens (BOS) to --text", NULL },
                             { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out,
                               "Safetensors file to write: input_ids I64 [n] and logits F32 [n, vocab]; required",
                               "FILE" },
                             { NULL } };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- write the logits of every position");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_model_options (&m));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  int status = CRIA_EXIT_FAILURE;
  if ((text == NULL) == (ids_text == NULL) || !out) {
    g_printerr ("cria logits: give --out FILE and one of --text or --ids (see cria logits --help)\n");
    cria_cli_model_clear (&m);
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (GArray) ids = NULL;
  g_autoptr (CriaTensor) logits = NULL;
  if (!cria_cli_model_open (&m, text != NULL, &error))
    goto done;
  ids = text ? cria_cli_encode (&m, text, add_special, &error) : cria_cli_parse_ids (ids_text, &error);
  if (!ids)
    goto done;
  logits = cria_lm_logits (m.lm, (const gint32 *) ids->data, ids->len, &error);
  if (!logits)
    goto done;
  if (write_logits (out, ids, logits, &error))
    status = CRIA_EXIT_OK;
done:
  if (error)
    cria_cli_error ("logits", error);
  cria_cli_model_clear (&m);
  return status;
}
