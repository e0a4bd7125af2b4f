/* cria-model-gguf.c: a loaded model, its tokenizer or a LoRA adapter as a
 * GGUF file for llama.cpp, laid out as llama.cpp's converters write them
 * (convert_hf_to_gguf.py, convert_lora_to_gguf.py).
 *
 *   cria export --format gguf --model qwen --adapter run1 --out qwen.gguf --type q8_0
 *
 * The model provider names the tensors and writes the hyperparameters
 * (CriaModelVTable's gguf members); this file writes what every
 * architecture shares: general.*, the vocabulary, and the tensors in the
 * requested type (vectors and norms stay f32, as the converter keeps them). */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>
#include <cria/cria-gguf.h>
#include <cria/cria-model.h>
#include <cria/cria-tokenizer.h>

/* llama.cpp's token types (llama_token_type). */
enum {
  TOKEN_NORMAL = 1,
  TOKEN_UNKNOWN = 2,
  TOKEN_CONTROL = 3,
  TOKEN_USER_DEFINED = 4,
  TOKEN_UNUSED = 5,
  TOKEN_BYTE = 6
};

/* general.file_type (llama_ftype) of each type. */
static guint32
file_type (CriaGgufType type)
{
  switch (type) {
    case CRIA_GGUF_F32:
      return 0;
    case CRIA_GGUF_F16:
      return 1;
    case CRIA_GGUF_Q4_0:
      return 2;
    case CRIA_GGUF_Q8_0:
      return 7;
    case CRIA_GGUF_BF16:
      return 32;
  }
  return 0;
}

static const CriaModelVTable *
gguf_vtable (CriaModel *model, GError **error)
{
  const CriaModelVTable *vt = cria_model_provider_vtable (cria_model_get_provider (model));
  if (!vt || !CRIA_VTABLE_HAS (vt, gguf_metadata) || !CRIA_VTABLE_HAS (vt, gguf_tensor_name)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: the %s provider of %s has no GGUF export",
                 cria_model_get_dir (model), cria_provider_get_info (cria_model_get_provider (model))->name,
                 cria_model_get_config (model)->architecture);
    return NULL;
  }
  return vt;
}

/* Rows [h][2][half] become [h][half][2]: Hugging Face's rotate-half pairs
 * (j, j + half) of each head become llama.cpp's adjacent pairs. */
static CriaTensor *
permute_rows (const CriaTensor *t, gint64 heads, const char *name, GError **error)
{
  gint64 rows = t->shape[0], cols = t->n_dims == 2 ? t->shape[1] : 1;
  if (heads <= 0 || rows % (2 * heads)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: %" G_GINT64_FORMAT " rows do not split into %" G_GINT64_FORMAT " heads of rotary pairs", name,
                 rows, heads);
    return NULL;
  }
  g_autoptr (CriaTensor) src = cria_tensor_to_f32 (t);
  CriaTensor *out = cria_tensor_new (CRIA_DTYPE_F32, t->n_dims, t->shape);
  gint64 hd = rows / heads, half = hd / 2;
  const float *x = src->data;
  float *y = out->data;
  for (gint64 h = 0; h < heads; h++)
    for (gint64 j = 0; j < half; j++)
      for (gint64 s = 0; s < 2; s++)
        memcpy (y + (h * hd + 2 * j + s) * cols, x + (h * hd + s * half + j) * cols, (gsize) cols * sizeof (float));
  return out;
}

/* ---- the vocabulary ---- */

static JsonObject *
object_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static JsonArray *
array_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static const char *
string_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ? json_node_get_string (n)
                                                                                         : NULL;
}

static gboolean
bool_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN && json_node_get_boolean (n);
}

/* A merge as the file has it: "a b" or ["a", "b"]; transfer full. */
static char *
merge_text (JsonNode *m)
{
  if (JSON_NODE_HOLDS_VALUE (m) && json_node_get_value_type (m) == G_TYPE_STRING)
    return g_strdup (json_node_get_string (m));
  if (JSON_NODE_HOLDS_ARRAY (m) && json_array_get_length (json_node_get_array (m)) == 2) {
    JsonArray *a = json_node_get_array (m);
    JsonNode *l = json_array_get_element (a, 0), *r = json_array_get_element (a, 1);
    if (JSON_NODE_HOLDS_VALUE (l) && json_node_get_value_type (l) == G_TYPE_STRING && JSON_NODE_HOLDS_VALUE (r) &&
        json_node_get_value_type (r) == G_TYPE_STRING)
      return g_strconcat (json_node_get_string (l), " ", json_node_get_string (r), NULL);
  }
  return NULL;
}

/* llama.cpp's pre-tokenizer name for a byte-level BPE, from the split
 * regex of tokenizer.json (the converter hashes a tokenization instead). */
static const char *
bpe_pre (JsonObject *root)
{
  JsonNode *pre = json_object_get_member (root, "pre_tokenizer");
  g_autofree char *text = pre ? json_to_string (pre, FALSE) : g_strdup ("");
  if (strstr (text, "\\\\p{N}{1,3}"))
    return "llama-bpe";
  if (strstr (text, "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}|"))
    return "qwen2";
  return "gpt-2";
}

static gboolean
is_byte_token (const char *t)
{
  return strlen (t) == 6 && g_str_has_prefix (t, "<0x") && g_ascii_isxdigit (t[3]) && g_ascii_isxdigit (t[4]) &&
         t[5] == '>';
}

static gboolean
vocab_fail (GError **error, const char *file, const char *field, const char *why)
{
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: %s: %s", file, field, why);
  return FALSE;
}

/* tokenizer.ggml.*: the tokens of ids 0..n_vocab-1 (holes and the rows the
 * model has past the tokenizer as [PADi], unused), their types, merges
 * ("gpt2": byte-level BPE) or scores ("llama": SentencePiece BPE with byte
 * fallback, the merges' order as score), special ids and the chat template. */
static gboolean
write_vocab (CriaRegistry *registry, CriaGgufWriter *w, const char *path, gint64 n_vocab, GError **error)
{
  g_autoptr (CriaTokenizerFiles) files = cria_tokenizer_files_new (path, error);
  if (!files)
    return FALSE;
  if (!files->json)
    return vocab_fail (
        error, files->dir, "tokenizer.json",
        "missing: GGUF export reads the vocabulary from tokenizer.json (--tokenizer FILE names another)");
  const char *file = files->tokenizer_json;
  JsonObject *root = JSON_NODE_HOLDS_OBJECT (files->json) ? json_node_get_object (files->json) : NULL;
  JsonObject *model = object_member (root, "model");
  JsonObject *vocab = object_member (model, "vocab");
  const char *type = string_member (model, "type");
  if (!vocab || (type && strcmp (type, "BPE") != 0))
    return vocab_fail (error, file, "model.type", "only BPE vocabularies (byte-level or byte-fallback) are exported");
  gboolean spm = bool_member (model, "byte_fallback");
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (registry, path, error);
  if (!tok)
    return FALSE;

  g_autoptr (GPtrArray) tokens = g_ptr_array_new_full ((guint) n_vocab, g_free);
  g_ptr_array_set_size (tokens, (guint) n_vocab);
  g_autofree gint32 *types = g_new0 (gint32, n_vocab);
  JsonObjectIter it;
  const char *text;
  JsonNode *node;
  json_object_iter_init (&it, vocab);
  while (json_object_iter_next (&it, &text, &node)) {
    gint64 id = JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64
                    ? json_node_get_int (node)
                    : -1;
    if (id < 0 || id >= n_vocab) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: model.vocab: token id %" G_GINT64_FORMAT " of \"%s\" is outside the model's %" G_GINT64_FORMAT
                   " embedding rows",
                   file, id, text, n_vocab);
      return FALSE;
    }
    g_free (g_ptr_array_index (tokens, id));
    g_ptr_array_index (tokens, id) = g_strdup (text);
    types[id] = spm && is_byte_token (text) ? TOKEN_BYTE : TOKEN_NORMAL;
  }
  JsonArray *added = array_member (root, "added_tokens");
  for (guint i = 0; added && i < json_array_get_length (added); i++) {
    JsonNode *an = json_array_get_element (added, i);
    JsonObject *a = JSON_NODE_HOLDS_OBJECT (an) ? json_node_get_object (an) : NULL;
    const char *content = string_member (a, "content");
    JsonNode *idn = a ? json_object_get_member (a, "id") : NULL;
    gint64 id = idn && JSON_NODE_HOLDS_VALUE (idn) && json_node_get_value_type (idn) == G_TYPE_INT64
                    ? json_node_get_int (idn)
                    : -1;
    if (!content || id < 0 || id >= n_vocab) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: added_tokens[%u]: no content, or an id outside the model's %" G_GINT64_FORMAT " rows", file, i,
                   n_vocab);
      return FALSE;
    }
    g_free (g_ptr_array_index (tokens, id));
    g_ptr_array_index (tokens, id) = g_strdup (content);
    types[id] = bool_member (a, "special") ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
  }
  gint32 unk = cria_tokenizer_special_id (tok, CRIA_SPECIAL_UNK);
  if (unk >= 0 && unk < n_vocab)
    types[unk] = TOKEN_UNKNOWN;
  for (gint64 id = 0; id < n_vocab; id++)
    if (!g_ptr_array_index (tokens, id)) {
      g_ptr_array_index (tokens, id) = g_strdup_printf ("[PAD%" G_GINT64_FORMAT "]", id);
      types[id] = TOKEN_UNUSED;
    }

  JsonArray *merges = array_member (model, "merges");
  guint n_merges = merges ? json_array_get_length (merges) : 0;
  g_autoptr (GPtrArray) merge_texts = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n_merges; i++) {
    char *m = merge_text (json_array_get_element (merges, i));
    if (!m || !strchr (m, ' ')) {
      g_free (m);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: model.merges[%u]: not a pair of tokens", file,
                   i);
      return FALSE;
    }
    g_ptr_array_add (merge_texts, m);
  }

  if (spm) {
    /* llama.cpp's SentencePiece tokenizer merges the pair whose result
     * scores highest: the earlier a merge, the higher its result scores;
     * tokens no merge makes come last, in id order. */
    g_autoptr (GHashTable) rank = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < n_merges; i++) {
      g_autofree char *joined = g_strdup (g_ptr_array_index (merge_texts, i));
      char *space = strchr (joined, ' ');
      memmove (space, space + 1, strlen (space));
      if (!g_hash_table_contains (rank, joined))
        g_hash_table_insert (rank, g_steal_pointer (&joined), GUINT_TO_POINTER (i + 1));
    }
    g_autofree float *scores = g_new0 (float, n_vocab);
    for (gint64 id = 0; id < n_vocab; id++) {
      guint r = GPOINTER_TO_UINT (g_hash_table_lookup (rank, g_ptr_array_index (tokens, id)));
      if (types[id] == TOKEN_NORMAL)
        scores[id] = r ? -(float) (r - 1) : -(float) (n_merges + (guint64) id);
      else if (types[id] == TOKEN_UNUSED)
        scores[id] = -1000.0f * (float) n_merges - 1000.0f;
    }
    cria_gguf_set_string (w, "tokenizer.ggml.model", "llama");
    cria_gguf_set_string (w, "tokenizer.ggml.pre", "default");
    cria_gguf_set_string_array (w, "tokenizer.ggml.tokens", (const char *const *) tokens->pdata, tokens->len);
    cria_gguf_set_f32_array (w, "tokenizer.ggml.scores", scores, (gsize) n_vocab);
    cria_gguf_set_i32_array (w, "tokenizer.ggml.token_type", types, (gsize) n_vocab);
    JsonNode *norm = json_object_get_member (root, "normalizer");
    g_autofree char *norm_text = norm ? json_to_string (norm, FALSE) : NULL;
    cria_gguf_set_bool (w, "tokenizer.ggml.add_space_prefix", norm_text && strstr (norm_text, "Prepend"));
  } else {
    cria_gguf_set_string (w, "tokenizer.ggml.model", "gpt2");
    cria_gguf_set_string (w, "tokenizer.ggml.pre", bpe_pre (root));
    cria_gguf_set_string_array (w, "tokenizer.ggml.tokens", (const char *const *) tokens->pdata, tokens->len);
    cria_gguf_set_i32_array (w, "tokenizer.ggml.token_type", types, (gsize) n_vocab);
    cria_gguf_set_string_array (w, "tokenizer.ggml.merges", (const char *const *) merge_texts->pdata, merge_texts->len);
  }

  static const struct {
    CriaSpecialToken which;
    const char *key;
  } specials[] = {
    { CRIA_SPECIAL_BOS, "tokenizer.ggml.bos_token_id" },
    { CRIA_SPECIAL_EOS, "tokenizer.ggml.eos_token_id" },
    { CRIA_SPECIAL_UNK, "tokenizer.ggml.unknown_token_id" },
    { CRIA_SPECIAL_PAD, "tokenizer.ggml.padding_token_id" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (specials); i++) {
    gint32 id = cria_tokenizer_special_id (tok, specials[i].which);
    if (id >= 0 && id < n_vocab)
      cria_gguf_set_u32 (w, specials[i].key, (guint32) id);
  }
  /* whether the tokenizer adds BOS/EOS is what its post-processor does */
  g_autoptr (CriaEncoding) plain = cria_tokenizer_encode (tok, "a", -1, CRIA_ENCODE_DEFAULT, error);
  g_autoptr (CriaEncoding) full = plain ? cria_tokenizer_encode (tok, "a", -1, CRIA_ENCODE_ADD_SPECIAL, error) : NULL;
  if (!full)
    return FALSE;
  gint32 bos = cria_tokenizer_special_id (tok, CRIA_SPECIAL_BOS),
         eos = cria_tokenizer_special_id (tok, CRIA_SPECIAL_EOS);
  gboolean grew = full->ids->len > plain->ids->len;
  cria_gguf_set_bool (w, "tokenizer.ggml.add_bos_token",
                      grew && bos >= 0 && g_array_index (full->ids, gint32, 0) == bos);
  cria_gguf_set_bool (w, "tokenizer.ggml.add_eos_token",
                      grew && eos >= 0 && g_array_index (full->ids, gint32, full->ids->len - 1) == eos);

  JsonObject *tc = files->config && JSON_NODE_HOLDS_OBJECT (files->config) ? json_node_get_object (files->config)
                                                                           : NULL;
  const char *chat = string_member (tc, "chat_template");
  JsonArray *named = array_member (tc, "chat_template");
  for (guint i = 0; !chat && named && i < json_array_get_length (named); i++) {
    JsonNode *tn = json_array_get_element (named, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (tn) ? json_node_get_object (tn) : NULL;
    if (g_strcmp0 (string_member (t, "name"), "default") == 0)
      chat = string_member (t, "template");
  }
  if (chat)
    cria_gguf_set_string (w, "tokenizer.chat_template", chat);
  return TRUE;
}

/* ---- the model ---- */

/* The type a table tensor is written in: vectors (norms, biases) stay f32;
 * a matrix whose rows are not whole blocks of the quantized type falls back
 * to f16, as the converter does. */
static CriaGgufType
tensor_type (const CriaTensor *t, CriaGgufType type)
{
  if (t->n_dims < 2)
    return CRIA_GGUF_F32;
  return cria_gguf_row_size (type, t->shape[1]) ? type : CRIA_GGUF_F16;
}

gboolean
cria_model_export_gguf (CriaRegistry *registry, CriaModel *model, const char *tokenizer, CriaGgufType type,
                        const char *path, GError **error)
{
  const CriaModelVTable *vt = gguf_vtable (model, error);
  if (!vt)
    return FALSE;
  const CriaHfConfig *c = cria_model_get_config (model);
  g_autoptr (CriaGgufWriter) w = cria_gguf_writer_new ();
  if (!vt->gguf_metadata (c, w, error))
    return FALSE;
  g_autofree char *name = g_path_get_basename (cria_model_get_dir (model));
  cria_gguf_set_string (w, "general.type", "model");
  cria_gguf_set_string (w, "general.name", name);
  cria_gguf_set_u32 (w, "general.file_type", file_type (type));
  if (type == CRIA_GGUF_Q8_0 || type == CRIA_GGUF_Q4_0)
    cria_gguf_set_u32 (w, "general.quantization_version", 2);
  if (!write_vocab (registry, w, tokenizer ? tokenizer : cria_model_get_tokenizer_dir (model), c->vocab_size, error)) {
    g_prefix_error (error, "tokenizer: ");
    return FALSE;
  }
  for (guint i = 0; i < cria_model_get_n_params (model); i++) {
    const char *hf = cria_model_get_param_name (model, i);
    CriaTensor *t = cria_model_get_param (model, hf);
    gint64 heads = 0;
    g_autofree char *gname = vt->gguf_tensor_name (c, hf, &heads);
    if (!gname)
      continue;
    g_autoptr (CriaTensor) permuted = heads ? permute_rows (t, heads, hf, error) : NULL;
    if (heads && !permuted)
      return FALSE;
    CriaTensor *src = permuted ? permuted : t;
    if (!cria_gguf_add_tensor (w, gname, tensor_type (src, type), src, error))
      return FALSE;
  }
  return cria_gguf_write (w, path, error);
}

/* ---- a LoRA adapter ---- */

gboolean
cria_model_export_gguf_lora (CriaRegistry *registry, CriaModel *model, const char *adapter_dir, const char *path,
                             GError **error)
{
  /* as llama.cpp's convert_lora_to_gguf.py refuses whole modules (a resized
   * vocabulary's embeddings, a trained head) in an adapter; checked before
   * loading, which would apply them to the model */
  g_autofree char *st_path = g_build_filename (adapter_dir, "adapter_model.safetensors", NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, error);
  g_autoptr (GHashTable) saved = st ? cria_adapter_peft_saved_modules (st, error) : NULL;
  if (!saved)
    return FALSE;
  if (g_hash_table_size (saved) > 0) {
    guint n = 0;
    g_autofree gpointer *names = g_hash_table_get_keys_as_array (saved, &n);
    const char *first = names[0];
    for (guint i = 1; i < n; i++)
      if (strcmp (names[i], first) < 0)
        first = names[i];
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: tensor %s: modules_to_save replaces the base's %s whole, which a GGUF LoRA cannot carry (export "
                 "the merged model: cria export --format gguf)",
                 st_path, first, (const char *) g_hash_table_lookup (saved, first));
    return FALSE;
  }
  g_clear_pointer (&st, cria_safetensors_free);
  const CriaModelVTable *vt = gguf_vtable (model, error);
  if (!vt)
    return FALSE;
  const CriaHfConfig *c = cria_model_get_config (model);
  g_autoptr (CriaGgufWriter) arch = cria_gguf_writer_new ();
  if (!vt->gguf_metadata (c, arch, error))
    return FALSE;
  g_autoptr (CriaAdapter) adapter = cria_adapter_load (registry, model, adapter_dir, error);
  if (!adapter)
    return FALSE;
  g_autofree char *config_file = g_build_filename (adapter_dir, "adapter_config.json", NULL);
  const char *kind = cria_provider_get_info (cria_adapter_get_provider (adapter))->name;
  if (strcmp (kind, "lora") != 0 && strcmp (kind, "qlora") != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                 "%s: peft_type: a %s adapter; llama.cpp loads LoRA adapters only (cria merge folds others in)",
                 config_file, kind);
    return FALSE;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, config_file, error))
    return FALSE;
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *config = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (!config) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a JSON object", config_file);
    return FALSE;
  }
  double alpha = 8;
  gint64 r = 8;
  if (!cria_adapter_config_get_double (config, "lora_alpha", config_file, &alpha, error) ||
      !cria_adapter_config_get_int (config, "r", config_file, 1, 4096, &r, error))
    return FALSE;
  /* llama.cpp scales by alpha / rank; rsLoRA's alpha / sqrt(rank) is the
   * same with alpha * sqrt(rank) */
  if (bool_member (config, "use_rslora"))
    alpha *= sqrt ((double) r);

  g_autoptr (CriaGgufWriter) w = cria_gguf_writer_new ();
  cria_gguf_set_string (w, "general.architecture", cria_gguf_get_string (arch, "general.architecture"));
  cria_gguf_set_string (w, "general.type", "adapter");
  cria_gguf_set_string (w, "adapter.type", "lora");
  cria_gguf_set_f32 (w, "adapter.lora.alpha", (float) alpha);
  cria_gguf_set_u32 (w, "general.file_type", 0);
  GArray *params = cria_adapter_get_params (adapter);
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    const char *key = p->name;
    gboolean is_a = g_str_has_suffix (key, ".lora_A.weight"), is_b = g_str_has_suffix (key, ".lora_B.weight");
    if (!g_str_has_prefix (key, CRIA_ADAPTER_PEFT_PREFIX) || (!is_a && !is_b)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED,
                   "%s: %s: llama.cpp's LoRA carries only lora_A and lora_B (trained biases are not exported)",
                   config_file, key);
      return FALSE;
    }
    gsize plen = strlen (CRIA_ADAPTER_PEFT_PREFIX);
    g_autofree char *module = g_strndup (key + plen, strlen (key) - plen - strlen (".lora_A.weight"));
    g_autofree char *hf = g_strconcat (module, ".weight", NULL);
    gint64 heads = 0;
    g_autofree char *base = vt->gguf_tensor_name (c, hf, &heads);
    if (!base) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: %s: no GGUF tensor of that name", config_file, hf);
      return FALSE;
    }
    g_autofree char *gname = g_strconcat (base, is_a ? ".lora_a" : ".lora_b", NULL);
    /* B's rows are the base weight's output rows: permuted as they are */
    g_autoptr (CriaTensor) permuted = heads && is_b ? permute_rows (p->value, heads, hf, error) : NULL;
    if (heads && is_b && !permuted)
      return FALSE;
    if (!cria_gguf_add_tensor (w, gname, CRIA_GGUF_F32, permuted ? permuted : p->value, error))
      return FALSE;
  }
  return cria_gguf_write (w, path, error);
}
