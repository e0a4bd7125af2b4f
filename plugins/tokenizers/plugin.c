/* The tokenizers plugin: bpe, spm and wordpiece over one engine, and the
 * vtable functions they share.
 *
 *   cria tokenize --tokenizer /path/to/model-dir input.txt */
#include "config.h"

#include <string.h>

#include "tok.h"

void tok_bpe_register (CriaPlugin *plugin);
void tok_spm_register (CriaPlugin *plugin);
void tok_wordpiece_register (CriaPlugin *plugin);

void
tok_destroy (gpointer self)
{
  tok_free (self);
}

gboolean
tok_vt_encode (gpointer self, const char *text, gsize len, CriaEncodeFlags flags, CriaEncoding *out, GError **error)
{
  return tok_encode (self, text, len, flags, out, error);
}

char *
tok_vt_decode (gpointer self, const gint32 *ids, gsize n, gboolean skip_special, GError **error)
{
  return tok_decode (self, ids, n, skip_special, error);
}

const char *
tok_id_to_token (gpointer self, gint32 id)
{
  Tok *tok = self;
  return id >= 0 && (guint) id < tok->n_ids ? tok->tokens[id] : NULL;
}

gint32
tok_token_to_id (gpointer self, const char *token)
{
  return tok_lookup (self, token, -1);
}

guint
tok_vocab_size (gpointer self)
{
  return ((Tok *) self)->n_ids;
}

gboolean
tok_is_special (gpointer self, gint32 id)
{
  Tok *tok = self;
  return id >= 0 && (guint) id < tok->n_ids && tok->special[id];
}

/* The names the families cria knows use, for files that do not say. */
const char *
tok_default_special (gpointer self, CriaSpecialToken which)
{
  static const char *const names[CRIA_N_SPECIAL][5] = {
    { "<s>", "<|begin_of_text|>", "[CLS]", "<|endoftext|>", NULL },
    { "</s>", "<|end_of_text|>", "[SEP]", "<|endoftext|>", NULL },
    { "[PAD]", "<pad>", NULL },
    { "[UNK]", "<unk>", NULL },
  };
  Tok *tok = self;
  if (which == CRIA_SPECIAL_UNK && tok->unk_id >= 0)
    return tok->tokens[tok->unk_id];
  for (int i = 0; names[which][i]; i++)
    if (tok_lookup (tok, names[which][i], -1) >= 0)
      return names[which][i];
  return NULL;
}

const char *
tok_model_type (const CriaTokenizerFiles *files)
{
  if (!files->json)
    return NULL;
  JsonObject *o = json_node_get_object (files->json);
  JsonNode *m = json_object_get_member (o, "model");
  if (!m || !JSON_NODE_HOLDS_OBJECT (m))
    return "";
  JsonNode *t = json_object_get_member (json_node_get_object (m), "type");
  return t && JSON_NODE_HOLDS_VALUE (t) && json_node_get_value_type (t) == G_TYPE_STRING ? json_node_get_string (t)
                                                                                         : "";
}

gboolean
tok_json_is_byte_level (const CriaTokenizerFiles *files)
{
  JsonNode *pre = files->json ? json_object_get_member (json_node_get_object (files->json), "pre_tokenizer") : NULL;
  if (!pre || JSON_NODE_HOLDS_NULL (pre))
    return FALSE;
  g_autofree char *text = json_to_string (pre, FALSE);
  return strstr (text, "\"ByteLevel\"") != NULL;
}

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  (void) error;
  tok_bpe_register (plugin);
  tok_spm_register (plugin);
  tok_wordpiece_register (plugin);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (tokenizers, "Byte-level BPE, SentencePiece BPE and WordPiece tokenizers", plugin_init,
                    PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
