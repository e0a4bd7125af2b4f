/* cria-tokenizer.c: `cria tokenizer train`, which learns a byte-level BPE
 * tokenizer from text or records and writes its tokenizer.json.
 *
 *   cria tokenizer train --vocab-size 4096 --output tok/ corpus.txt */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <cria/cria-bpe-trainer.h>

#include "cria-cli.h"

static gint vocab_size;
static gint min_frequency = 2;
static char **specials;
static char *output;
static gboolean records;

static const GOptionEntry train_entries[] = {
  { "vocab-size", 'n', 0, G_OPTION_ARG_INT, &vocab_size,
    "Size of the vocabulary to reach, bytes and special tokens included (required)", "N" },
  { "min-frequency", 0, 0, G_OPTION_ARG_INT, &min_frequency, "Stop when no pair occurs this often (default 2)", "N" },
  { "special", 's', 0, G_OPTION_ARG_STRING_ARRAY, &specials,
    "A special token, given the first ids in order (repeatable; default <|endoftext|>)", "TOKEN" },
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
    "Where to write tokenizer.json: a file, or a directory to write it in (required)", "PATH" },
  { "records", 'r', 0, G_OPTION_ARG_NONE, &records,
    "The input is JSONL records (cria-record(5)): train on their text fields", NULL },
  { NULL }
};

/* The text of a record: every string of the fields a model sees. */
static void
feed_record (CriaBpeTrainer *t, JsonNode *node)
{
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    cria_bpe_trainer_feed (t, json_node_get_string (node), -1);
  else if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    for (guint i = 0; i < json_array_get_length (a); i++)
      feed_record (t, json_array_get_element (a, i));
  } else if (JSON_NODE_HOLDS_OBJECT (node)) {
    static const char *const fields[] = { "system", "instruction", "input", "output", "messages", "content" };
    JsonObject *o = json_node_get_object (node);
    for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
      if (json_object_has_member (o, fields[i]))
        feed_record (t, json_object_get_member (o, fields[i]));
  }
}

static gboolean
feed_file (CriaBpeTrainer *t, const char *path, GError **error)
{
  g_autoptr (CriaInput) in = cria_input_open (path, error);
  if (!in)
    return FALSE;
  const char *line;
  gsize len;
  GError *rerr = NULL;
  while (cria_input_read_line (in, &line, &len, &rerr)) {
    if (!records) {
      /* Lines are fed with their newline: the pattern keeps "\n" runs as words. */
      g_autofree char *with_nl = g_strndup (line, len + 1);
      with_nl[len] = '\n';
      cria_bpe_trainer_feed (t, with_nl, (gssize) len + 1);
      continue;
    }
    if (len == 0)
      continue;
    g_autoptr (JsonNode)
        node = cria_json_parse (line, (gssize) len, cria_input_get_path (in), cria_input_get_line_number (in), &rerr);
    if (!node)
      break;
    if (!JSON_NODE_HOLDS_OBJECT (node)) {
      g_set_error (&rerr, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%" G_GUINT64_FORMAT ": expected a JSON object (a record)",
                   cria_input_get_path (in), cria_input_get_line_number (in));
      break;
    }
    feed_record (t, node);
  }
  if (rerr) {
    g_propagate_error (error, rerr);
    return FALSE;
  }
  return TRUE;
}

static int
train (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[FILE...]");
  g_option_context_set_summary (
      ctx, "Train a byte-level BPE tokenizer on the text of FILE (or stdin) and write tokenizer.json.");
  g_option_context_add_main_entries (ctx, train_entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (vocab_size <= 0 || !output) {
    fprintf (stderr, "cria tokenizer train: --vocab-size N and --output PATH are required\n");
    return CRIA_EXIT_USAGE;
  }
  static const char *const default_specials[] = { "<|endoftext|>", NULL };
  g_autoptr (CriaBpeTrainer) t = cria_bpe_trainer_new ();
  g_autoptr (GError) error = NULL;
  for (int i = 1; i < MAX (argc, 2); i++)
    if (!feed_file (t, argc < 2 ? "-" : argv[i], &error)) {
      cria_cli_error ("tokenizer train", error);
      return CRIA_EXIT_FAILURE;
    }
  g_autofree char *path = g_file_test (output, G_FILE_TEST_IS_DIR) ? g_build_filename (output, "tokenizer.json", NULL)
                                                                   : g_strdup (output);
  if (!cria_bpe_trainer_write (t, (guint) vocab_size, (guint) MAX (min_frequency, 1),
                               specials ? (const char *const *) specials : default_specials, path, &error)) {
    cria_cli_error ("tokenizer train", error);
    return CRIA_EXIT_FAILURE;
  }
  fprintf (stderr, "cria tokenizer train: %u merges written to %s\n", cria_bpe_trainer_get_n_merges (t), path);
  return CRIA_EXIT_OK;
}

int
cria_verb_tokenizer (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "train") == 0) {
    g_autofree char *name = g_strdup_printf ("%s train", argv[0]);
    argv[1] = name;
    return train (argc - 1, argv + 1);
  }
  fprintf (stderr, "usage: cria tokenizer train --vocab-size N --output PATH [FILE...]\n"
                   "See cria-tokenizer(1); to tokenize text, see cria tokenize.\n");
  return CRIA_EXIT_USAGE;
}
