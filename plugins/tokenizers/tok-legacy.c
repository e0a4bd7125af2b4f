/* tok-legacy.c: the tokenizer files that came before tokenizer.json: GPT-2's
 * encoder.json + vocab.bpe, and BERT's vocab.txt. Each is turned into the
 * pipeline its tokenizer.json would declare.
 *
 *   cria tokenize --tokenizer gpt2/encoder.json input.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

static gboolean
read_text (const char *path, char **text, gsize *len, GError **error)
{
  if (!cria_file_get_contents (path, CRIA_JSON_MAX_FILE_BYTES, text, len, error))
    return FALSE;
  const char *bad;
  if (!g_utf8_validate_len (*text, *len, &bad)) {
    guint line = 1;
    for (const char *p = *text; p < bad; p++)
      line += *p == '\n';
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%u: invalid UTF-8", path, line);
    g_clear_pointer (text, g_free);
    return FALSE;
  }
  return TRUE;
}

static void
add_special (Tok *tok, const char *name)
{
  gint32 id = tok_lookup (tok, name, -1);
  if (id < 0)
    return;
  TokAdded a = { .content = (char *) name, .id = id, .special = TRUE };
  tok_add_added (tok, &a);
}

static Tok *
failed (Tok *tok)
{
  tok_free (tok);
  return NULL;
}

Tok *
tok_load_gpt2 (const char *encoder_json, const char *vocab_bpe, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;
  if (!read_text (encoder_json, &text, &len, error))
    return NULL;
  g_autoptr (GError) jerr = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (text, (gssize) len, encoder_json, 1, &jerr);
  if (!root) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", jerr->message);
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: $: expected an object of token: id", encoder_json);
    return NULL;
  }
  Tok *tok = tok_new ();
  JsonObjectIter it;
  const char *key;
  JsonNode *val;
  json_object_iter_init (&it, json_node_get_object (root));
  while (json_object_iter_next (&it, &key, &val)) {
    /* Below the number of tokens: one stray large id would size the id tables. */
    if (!JSON_NODE_HOLDS_VALUE (val) || json_node_get_value_type (val) != G_TYPE_INT64 || json_node_get_int (val) < 0 ||
        json_node_get_int (val) >= (gint64) json_object_get_size (json_node_get_object (root))) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: $[\"%s\"]: expected an id from 0 to the number of tokens less one (%u)", encoder_json, key,
                   json_object_get_size (json_node_get_object (root)) - 1);
      return failed (tok);
    }
    gint32 id = (gint32) json_node_get_int (val);
    if ((guint) id < tok->n_ids && tok->tokens[id]) {
      g_autofree char *other = cria_error_quote (tok->tokens[id], -1, 40);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: $[\"%s\"]: id %d is also the id of \"%s\"", encoder_json,
                   key, id, other);
      return failed (tok);
    }
    tok_set_token (tok, id, key);
  }
  g_clear_pointer (&text, g_free);
  if (!read_text (vocab_bpe, &text, &len, error))
    return failed (tok);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  tok_merges_init (&tok->merges, g_strv_length (lines));
  guint32 rank = 0;
  for (guint i = 0; lines[i]; i++) {
    char *l = lines[i];
    g_strchomp (l);
    if (!*l || (i == 0 && g_str_has_prefix (l, "#version")))
      continue;
    char *sp = strchr (l, ' ');
    if (!sp || strchr (sp + 1, ' ')) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%u: expected two tokens separated by one space", vocab_bpe,
                   i + 1);
      return failed (tok);
    }
    *sp = '\0';
    g_autofree char *joined = g_strconcat (l, sp + 1, NULL);
    gint32 a = tok_lookup (tok, l, -1), b = tok_lookup (tok, sp + 1, -1), m = tok_lookup (tok, joined, -1);
    if (a < 0 || b < 0 || m < 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%u: the merge \"%s %s\" uses a token not in %s", vocab_bpe,
                   i + 1, l, sp + 1, encoder_json);
      return failed (tok);
    }
    tok_merges_add (&tok->merges, a, b, rank++, m);
  }
  tok->model = MODEL_BPE;
  TokPre pre = { .kind = PRE_BYTELEVEL };
  pre.regex = g_regex_new (TOK_GPT2_REGEX, G_REGEX_OPTIMIZE, 0, NULL);
  g_array_append_val (tok->pres, pre);
  tok->byte_level = TRUE;
  TokDec dec = { .kind = DEC_BYTELEVEL };
  g_array_append_val (tok->decs, dec);
  add_special (tok, "<|endoftext|>");
  if (!tok_finish (tok, error))
    return failed (tok);
  return tok;
}

Tok *
tok_load_vocab_txt (const char *path, gboolean lowercase, int strip_accents, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;
  if (!read_text (path, &text, &len, error))
    return NULL;
  Tok *tok = tok_new ();
  /* "[PAD]" opens a vocab.txt too: a JSON list starts with [ then a string or ]. */
  const char *start = text;
  while (g_ascii_isspace (*start))
    start++;
  const char *next = *start == '[' ? start + 1 : start;
  while (*start == '[' && g_ascii_isspace (*next))
    next++;
  if (*start == '[' && (*next == '"' || *next == ']')) {
    /* The vocabulary as a JSON list of tokens: the id is the position. */
    g_autoptr (GError) jerr = NULL;
    g_autoptr (JsonNode) root = cria_json_parse (text, (gssize) len, path, 1, &jerr);
    if (!root || !JSON_NODE_HOLDS_ARRAY (root)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", root ? "expected a JSON list of tokens" : jerr->message);
      if (root)
        g_prefix_error (error, "%s: ", path);
      return failed (tok);
    }
    JsonArray *a = json_node_get_array (root);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: [%u]: expected a token string", path, i);
        return failed (tok);
      }
      tok_set_token (tok, (gint32) i, json_node_get_string (e));
    }
  } else {
    g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
    guint n = g_strv_length (lines);
    if (n > 0 && !*lines[n - 1])
      n--; /* the final newline */
    for (guint i = 0; i < n; i++) {
      char *l = lines[i];
      gsize ll = strlen (l);
      if (ll && l[ll - 1] == '\r')
        l[ll - 1] = '\0';
      tok_set_token (tok, (gint32) i, l);
    }
  }
  tok->model = MODEL_WORDPIECE;
  tok->wp_prefix = g_strdup ("##");
  tok->unk_id = tok_lookup (tok, "[UNK]", -1);
  if (tok->unk_id < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: the vocabulary has no [UNK] token", path);
    return failed (tok);
  }
  TokNorm norm = {
    .kind = NORM_BERT, .a = TRUE, .b = TRUE, .c = strip_accents < 0 ? lowercase : strip_accents, .d = lowercase
  };
  g_array_append_val (tok->norms, norm);
  TokPre pre = { .kind = PRE_BERT };
  g_array_append_val (tok->pres, pre);
  TokDec dec = { .kind = DEC_WORDPIECE, .content = g_strdup ("##"), .cleanup = TRUE };
  g_array_append_val (tok->decs, dec);
  static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
  for (guint i = 0; i < G_N_ELEMENTS (specials); i++)
    add_special (tok, specials[i]);
  gint32 cls = tok_lookup (tok, "[CLS]", -1), sep = tok_lookup (tok, "[SEP]", -1);
  if (cls >= 0 && sep >= 0) {
    g_array_append_val (tok->prefix_ids, cls);
    g_array_append_val (tok->suffix_ids, sep);
  }
  if (!tok_finish (tok, error))
    return failed (tok);
  return tok;
}
