/* cria-chat.c: `cria chat`, an interactive conversation with a model; the
 * reply streams as it is generated. Lines typed are user turns; /reset
 * starts over, /quit (or end of input) leaves.
 *
 *   cria chat --model Qwen2.5-0.5B-Instruct --prompt-format chatml --system "Answer briefly."
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cria-cli-model.h"

static CriaRecord *
new_conversation (const char *system)
{
  CriaRecord *r = cria_record_new ();
  if (system)
    cria_record_add_message (r, "system", system);
  return r;
}

static char *
read_line (FILE *in)
{
  g_autoptr (GString) s = g_string_new (NULL);
  int c;
  while ((c = fgetc (in)) != EOF && c != '\n')
    g_string_append_c (s, (char) c);
  if (c == EOF && s->len == 0)
    return NULL;
  return g_string_free (g_steal_pointer (&s), FALSE);
}

int
cria_verb_chat (int argc, char **argv)
{
  CriaCliModel m;
  CriaCliSampling so;
  cria_cli_model_init (&m);
  cria_cli_sampling_init (&so);
  g_autofree char *system = NULL;
  gboolean no_special = FALSE;
  GOptionEntry entries[] = {
    { "system", 's', 0, G_OPTION_ARG_STRING, &system,
      "A system message that opens the conversation (default: none; the template's own, if any)", "TEXT" },
    { "no-add-special", 0, 0, G_OPTION_ARG_NONE, &no_special,
      "Do not add the tokenizer's special tokens (BOS) to a prompt a prompt format wrote (a chat template writes "
      "its own)",
      NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- talk with a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, cria_cli_model_options (&m));
  g_option_context_add_group (ctx, cria_cli_sampling_options (&so));
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  int status = CRIA_EXIT_FAILURE;
  g_autoptr (GError) error = NULL;
  CriaSampling s;
  cria_sampling_init (&s);
  gboolean tty = isatty (STDIN_FILENO);
  g_autoptr (CriaRecord) conv = new_conversation (system);
  if (argc > 1) {
    g_printerr ("cria chat: unexpected argument \"%s\" (see cria chat --help)\n", argv[1]);
    status = CRIA_EXIT_USAGE;
    goto done;
  }
  if (!cria_cli_model_open (&m, TRUE, &error) || !cria_cli_sampling_apply (&so, m.model, &s, &error) ||
      !cria_cli_sampling_resolve_format (&so, &m, &error))
    goto done;
  if (tty)
    printf ("cria chat: %s — /reset starts over, /quit leaves\n", m.dir);
  for (;;) {
    if (tty) {
      printf ("> ");
      fflush (stdout);
    }
    g_autofree char *line = read_line (stdin);
    if (!line || strcmp (g_strstrip (line), "/quit") == 0)
      break;
    if (!*line)
      continue;
    if (strcmp (line, "/reset") == 0) {
      cria_record_free (conv);
      conv = new_conversation (system);
      continue;
    }
    cria_record_add_message (conv, "user", line);
    gboolean special = TRUE;
    g_autofree char *prompt = cria_cli_render_prompt (&so, m.chat_dir, conv, &special, &error);
    g_autoptr (GArray) ids = prompt ? cria_cli_encode (&m, prompt, special && !no_special, &error) : NULL;
    if (!ids)
      goto done;
    CriaGeneration gen;
    if (!cria_lm_generate (m.lm, m.tokenizer, (const gint32 *) ids->data, ids->len, &s, cria_cli_print_piece, NULL,
                           &gen, &error))
      goto done;
    printf ("\n");
    cria_record_add_message (conv, "assistant", gen.text);
    cria_generation_clear (&gen);
  }
  status = CRIA_EXIT_OK;
done:
  if (error)
    cria_cli_error ("chat", error);
  cria_sampling_clear (&s);
  cria_cli_sampling_clear (&so);
  cria_cli_model_clear (&m);
  return status;
}
