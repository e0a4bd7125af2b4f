/* cria-tokenize.c: `cria tokenize`, which prints the token ids (or tokens) of
 * each input line as a JSON array, or decodes lines of ids back to text.
 *
 *   printf 'Hello world\n' | cria tokenize --tokenizer qwen2.5 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cria-cli.h"

static char *tokenizer_path;
static char *provider;
static gboolean show_tokens;
static gboolean show_ids;
static gboolean decode;
static gboolean add_special;
static gboolean skip_special;
static gint threads;
static char **settings;

static const GOptionEntry entries[] = {
  { "tokenizer", 't', 0, G_OPTION_ARG_FILENAME, &tokenizer_path, "A model directory or tokenizer file (required)",
    "PATH" },
  { "provider", 0, 0, G_OPTION_ARG_STRING, &provider, "Use this tokenizer provider (default: the one that fits best)",
    "NAME" },
  { "ids", 0, 0, G_OPTION_ARG_NONE, &show_ids, "Print token ids (the default)", NULL },
  { "tokens", 0, 0, G_OPTION_ARG_NONE, &show_tokens, "Print the tokens' strings instead of ids", NULL },
  { "decode", 'd', 0, G_OPTION_ARG_NONE, &decode, "Read JSON arrays of ids and print the decoded text as JSON strings",
    NULL },
  { "add-special", 0, 0, G_OPTION_ARG_NONE, &add_special,
    "Add the special tokens the post-processor declares (BOS, [CLS] ...)", NULL },
  { "skip-special", 0, 0, G_OPTION_ARG_NONE, &skip_special, "When decoding, leave special tokens out", NULL },
  { "set", 0, 0, G_OPTION_ARG_STRING_ARRAY, &settings,
    "Set a property of the --provider (see cria inspect NAME); repeatable (default: the provider's defaults)",
    "NAME=VALUE" },
  { "threads", 'j', 0, G_OPTION_ARG_INT, &threads, "Encode on N threads (default: one per processor)", "N" },
  { NULL }
};

static void
print_string (GString *out, const char *s)
{
  g_autoptr (JsonNode) n = json_node_new (JSON_NODE_VALUE);
  json_node_set_string (n, s);
  g_autofree char *text = json_to_string (n, FALSE);
  g_string_append (out, text);
}

static void
print_encoding (CriaTokenizer *tok, const CriaEncoding *enc)
{
  GString *out = g_string_new ("[");
  for (guint i = 0; i < enc->ids->len; i++) {
    gint32 id = g_array_index (enc->ids, gint32, i);
    if (i)
      g_string_append_c (out, ',');
    if (show_tokens)
      print_string (out, cria_tokenizer_id_to_token (tok, id));
    else
      g_string_append_printf (out, "%d", id);
  }
  g_string_append (out, "]\n");
  fwrite (out->str, 1, out->len, stdout);
  g_string_free (out, TRUE);
}

static gboolean
decode_line (CriaTokenizer *tok, CriaInput *in, const char *line, gsize len, GError **error)
{
  const char *path = cria_input_get_path (in);
  guint64 lineno = cria_input_get_line_number (in);
  g_autoptr (JsonNode) node = cria_json_parse (line, (gssize) len, path, lineno, error);
  if (!node)
    return FALSE;
  if (!JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%" G_GUINT64_FORMAT ": expected a JSON array of ids", path,
                 lineno);
    return FALSE;
  }
  JsonArray *a = json_node_get_array (node);
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%" G_GUINT64_FORMAT ": [%u]: expected an integer id", path,
                   lineno, i);
      return FALSE;
    }
    gint32 id = (gint32) CLAMP (json_node_get_int (e), -1, G_MAXINT32);
    g_array_append_val (ids, id);
  }
  g_autoptr (GError) derr = NULL;
  g_autofree char *text = cria_tokenizer_decode (tok, (gint32 *) ids->data, ids->len, skip_special, &derr);
  if (!text) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s:%" G_GUINT64_FORMAT ": %s", path, lineno,
                 derr->message);
    return FALSE;
  }
  g_autoptr (GString) out = g_string_new (NULL);
  print_string (out, text);
  printf ("%s\n", out->str);
  return TRUE;
}

/* Lines are encoded in batches so that every thread has work. */
static gboolean
flush_batch (CriaTokenizer *tok, GPtrArray *batch, GError **error)
{
  if (batch->len == 0)
    return TRUE;
  CriaEncodeFlags flags = add_special ? CRIA_ENCODE_ADD_SPECIAL : CRIA_ENCODE_DEFAULT;
  g_autoptr (GPtrArray) encs = cria_tokenizer_encode_batch (tok, (const char *const *) batch->pdata, batch->len, flags,
                                                            (guint) MAX (threads, 0), error);
  if (!encs)
    return FALSE;
  for (guint i = 0; i < encs->len; i++)
    print_encoding (tok, encs->pdata[i]);
  g_ptr_array_set_size (batch, 0);
  return TRUE;
}

static int
run_file (CriaTokenizer *tok, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaInput) in = cria_input_open (path, &error);
  if (!in) {
    cria_cli_error ("tokenize", error);
    return CRIA_EXIT_FAILURE;
  }
  g_autoptr (GPtrArray) batch = g_ptr_array_new_with_free_func (g_free);
  const char *line;
  gsize len;
  gboolean ok = TRUE;
  while (ok && cria_input_read_line (in, &line, &len, &error)) {
    if (decode)
      ok = decode_line (tok, in, line, len, &error);
    else {
      g_ptr_array_add (batch, g_strndup (line, len));
      if (batch->len >= 4096)
        ok = flush_batch (tok, batch, &error);
    }
  }
  if (ok && !error)
    ok = flush_batch (tok, batch, &error);
  if (error) {
    cria_cli_error ("tokenize", error);
    return CRIA_EXIT_FAILURE;
  }
  return CRIA_EXIT_OK;
}

int
cria_verb_tokenize (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[FILE...]");
  g_option_context_set_summary (ctx, "Print the token ids of each line of FILE (or stdin) as a JSON array.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (!tokenizer_path) {
    fprintf (stderr, "cria tokenize: --tokenizer PATH is required\n");
    return CRIA_EXIT_USAGE;
  }
  if (show_ids && show_tokens) {
    fprintf (stderr, "cria tokenize: --ids and --tokens exclude each other\n");
    return CRIA_EXIT_USAGE;
  }
  if (settings && !provider) {
    fprintf (stderr, "cria tokenize: --set needs --provider\n");
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaProps) props = NULL;
  if (provider) {
    const CriaProvider *p = cria_registry_require (reg, CRIA_KIND_TOKENIZER, provider, &error);
    props = p ? cria_provider_new_props (p) : NULL;
    for (guint i = 0; props && settings && settings[i]; i++) {
      g_auto (GStrv) kv = g_strsplit (settings[i], "=", 2);
      if (!kv[1]) {
        fprintf (stderr, "cria tokenize: --set %s: expected NAME=VALUE\n", settings[i]);
        return CRIA_EXIT_USAGE;
      }
      if (!cria_props_set (props, kv[0], kv[1], &error))
        g_clear_pointer (&props, cria_props_free);
    }
    if (!props) {
      cria_cli_error ("tokenize", error);
      return CRIA_EXIT_USAGE;
    }
  }
  if (!cria_cli_resolve_model (&tokenizer_path, &error)) {
    cria_cli_error ("tokenize", error);
    return CRIA_EXIT_FAILURE;
  }
  g_autoptr (CriaTokenizer) tok = provider ? cria_tokenizer_load_with (reg, provider, tokenizer_path, props, &error)
                                           : cria_tokenizer_load (reg, tokenizer_path, &error);
  if (!tok) {
    cria_cli_error ("tokenize", error);
    return CRIA_EXIT_FAILURE;
  }
  if (argc < 2)
    return run_file (tok, "-");
  for (int i = 1; i < argc; i++) {
    int rc = run_file (tok, argv[i]);
    if (rc != CRIA_EXIT_OK)
      return rc;
  }
  return CRIA_EXIT_OK;
}
