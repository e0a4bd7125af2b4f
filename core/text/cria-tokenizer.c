/* cria-tokenizer.c: the CriaTokenizer handle over a tokenizer provider.
 *
 * The core finds the files and parses the JSON ones once; providers probe the
 * result and the best one loads it. Special ids come from tokenizer_config.json
 * first, as transformers reads them, then from the provider. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>
#include <cria/cria-tokenizer.h>

struct _CriaTokenizer {
  const CriaProvider *provider;
  const CriaTokenizerVTable *vt;
  gpointer self;
  gint32 special[CRIA_N_SPECIAL];
};

/* A JSON object, or (allow_list) a JSON list: a WordPiece vocabulary. */
static JsonNode *
parse_json_file (const char *path, gboolean allow_list, GError **error)
{
  JsonNode *root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root) && !(allow_list && JSON_NODE_HOLDS_ARRAY (root))) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: $: expected a JSON object", path);
    json_node_unref (root);
    return NULL;
  }
  return root;
}

static char *
existing (const char *dir, const char *name)
{
  char *p = g_build_filename (dir, name, NULL);
  if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
    return p;
  g_free (p);
  return NULL;
}

CriaTokenizerFiles *
cria_tokenizer_files_new (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (CriaTokenizerFiles) f = g_new0 (CriaTokenizerFiles, 1);
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    f->dir = g_strdup (path);
    f->tokenizer_json = existing (path, "tokenizer.json");
    f->vocab_txt = existing (path, "vocab.txt");
    f->encoder_json = existing (path, "encoder.json");
    if (!f->encoder_json)
      f->encoder_json = existing (path, "vocab.json");
    f->vocab_bpe = existing (path, "vocab.bpe");
    if (!f->vocab_bpe)
      f->vocab_bpe = existing (path, "merges.txt");
    f->tokenizer_model = existing (path, "tokenizer.model");
  } else if (g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    f->dir = g_path_get_dirname (path);
    g_autofree char *base = g_path_get_basename (path);
    if (g_str_has_suffix (base, ".txt") && !strstr (base, "merges"))
      f->vocab_txt = g_strdup (path);
    else if (g_str_has_suffix (base, ".model"))
      f->tokenizer_model = g_strdup (path);
    else if (strcmp (base, "encoder.json") == 0 || strcmp (base, "vocab.json") == 0) {
      f->encoder_json = g_strdup (path);
      f->vocab_bpe = existing (f->dir, "vocab.bpe");
      if (!f->vocab_bpe)
        f->vocab_bpe = existing (f->dir, "merges.txt");
    } else
      f->tokenizer_json = g_strdup (path);
  } else {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no such file or directory", path);
    return NULL;
  }
  f->tokenizer_config = existing (f->dir, "tokenizer_config.json");
  if (!f->tokenizer_json && !f->vocab_txt && !(f->encoder_json && f->vocab_bpe) && !f->tokenizer_model) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND,
                 "%s: no tokenizer files (tokenizer.json, vocab.txt, encoder.json + vocab.bpe, tokenizer.model)", path);
    return NULL;
  }
  if (f->tokenizer_json && !(f->json = parse_json_file (f->tokenizer_json, TRUE, error)))
    return NULL;
  /* A JSON list is a WordPiece vocabulary, as vocab.txt is: the id is the position. */
  if (f->json && JSON_NODE_HOLDS_ARRAY (f->json)) {
    g_clear_pointer (&f->json, json_node_unref);
    g_free (f->vocab_txt);
    f->vocab_txt = g_steal_pointer (&f->tokenizer_json);
  }
  if (f->tokenizer_config && !(f->config = parse_json_file (f->tokenizer_config, FALSE, error)))
    return NULL;
  return g_steal_pointer (&f);
}

void
cria_tokenizer_files_free (CriaTokenizerFiles *f)
{
  if (!f)
    return;
  g_free (f->dir);
  g_free (f->tokenizer_json);
  g_free (f->tokenizer_config);
  g_free (f->vocab_txt);
  g_free (f->encoder_json);
  g_free (f->vocab_bpe);
  g_free (f->tokenizer_model);
  if (f->json)
    json_node_unref (f->json);
  if (f->config)
    json_node_unref (f->config);
  g_free (f);
}

/* tokenizer_config.json names a special token as a string or as an
 * AddedToken object {"content": ...}; null says there is none (Qwen's BOS).
 * *said is TRUE when the file has the key at all. */
static const char *
config_special (const CriaTokenizerFiles *f, CriaSpecialToken which, gboolean *said)
{
  static const char *const keys[] = { "bos_token", "eos_token", "pad_token", "unk_token" };
  *said = FALSE;
  if (!f->config)
    return NULL;
  JsonObject *o = json_node_get_object (f->config);
  JsonNode *n = json_object_get_member (o, keys[which]);
  *said = n != NULL;
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return json_node_get_string (n);
  if (n && JSON_NODE_HOLDS_OBJECT (n)) {
    JsonNode *c = json_object_get_member (json_node_get_object (n), "content");
    if (c && JSON_NODE_HOLDS_VALUE (c) && json_node_get_value_type (c) == G_TYPE_STRING)
      return json_node_get_string (c);
  }
  return NULL;
}

static CriaTokenizer *
tokenizer_new (const CriaProvider *provider, const CriaTokenizerFiles *files, const CriaProps *props, GError **error)
{
  const CriaTokenizerVTable *vt = cria_provider_get_vtable (provider);
  g_autoptr (CriaProps) defaults = props ? NULL : cria_provider_new_props (provider);
  gpointer self = vt->load (files, props ? props : defaults, error);
  if (!self)
    return NULL;
  CriaTokenizer *tok = g_new0 (CriaTokenizer, 1);
  tok->provider = provider;
  tok->vt = vt;
  tok->self = self;
  for (int w = 0; w < CRIA_N_SPECIAL; w++) {
    gboolean said;
    const char *name = config_special (files, w, &said);
    if (!said && vt->default_special)
      name = vt->default_special (self, w);
    tok->special[w] = name ? vt->token_to_id (self, name) : -1;
  }
  return tok;
}

CriaTokenizer *
cria_tokenizer_load (CriaRegistry *registry, const char *path, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (CriaTokenizerFiles) files = cria_tokenizer_files_new (path, error);
  if (!files)
    return NULL;
  /* The highest rank among the providers that can read the files; the
   * probe's score decides between equal ranks. */
  g_autoptr (GPtrArray) all = cria_registry_list_kind (registry, CRIA_KIND_TOKENIZER);
  const CriaProvider *best = NULL;
  int best_score = 0;
  for (guint i = 0; i < all->len; i++) {
    const CriaProvider *p = all->pdata[i];
    if (best && cria_provider_get_rank (p) < cria_provider_get_rank (best))
      break;
    const CriaTokenizerVTable *vt = cria_provider_get_vtable (p);
    int score = vt->probe ? vt->probe (files) : 0;
    if (score > best_score) {
      best = p;
      best_score = score;
    }
  }
  if (!best && files->json) {
    /* Say which field made every provider decline. */
    JsonNode *m = json_object_get_member (json_node_get_object (files->json), "model");
    JsonNode *t = m && JSON_NODE_HOLDS_OBJECT (m) ? json_object_get_member (json_node_get_object (m), "type") : NULL;
    if (!t || !JSON_NODE_HOLDS_VALUE (t) || json_node_get_value_type (t) != G_TYPE_STRING)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s: missing or not an object with a string \"type\"",
                   files->tokenizer_json, m ? "$.model.type" : "$.model");
    else
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: $.model.type: no installed provider reads \"%s\"",
                   files->tokenizer_json, json_node_get_string (t));
    return NULL;
  }
  if (!best) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: no installed tokenizer provider can read these files",
                 path);
    return NULL;
  }
  return tokenizer_new (best, files, NULL, error);
}

CriaTokenizer *
cria_tokenizer_load_with (CriaRegistry *registry, const char *provider, const char *path, const CriaProps *props,
                          GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (provider != NULL, NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProvider *p = cria_registry_require (registry, CRIA_KIND_TOKENIZER, provider, error);
  if (!p)
    return NULL;
  g_autoptr (CriaTokenizerFiles) files = cria_tokenizer_files_new (path, error);
  if (!files)
    return NULL;
  return tokenizer_new (p, files, props, error);
}

void
cria_tokenizer_free (CriaTokenizer *tok)
{
  if (!tok)
    return;
  tok->vt->destroy (tok->self);
  g_free (tok);
}

const char *
cria_tokenizer_get_provider_name (const CriaTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, NULL);
  return cria_provider_get_name (tok->provider);
}

CriaEncoding *
cria_encoding_new (gboolean with_offsets)
{
  CriaEncoding *enc = g_new0 (CriaEncoding, 1);
  enc->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  if (with_offsets)
    enc->offsets = g_array_new (FALSE, FALSE, sizeof (CriaTokenSpan));
  return enc;
}

void
cria_encoding_free (CriaEncoding *enc)
{
  if (!enc)
    return;
  g_array_unref (enc->ids);
  if (enc->offsets)
    g_array_unref (enc->offsets);
  g_free (enc);
}

/* The length of the well-formed sequence at p (Unicode table 3-7), or the
 * negated length of its maximal ill-formed prefix. */
static int
utf8_seq (const guchar *p, gsize n)
{
  guchar c = p[0];
  guchar lo = 0x80, hi = 0xBF;
  int need;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else
    return -1;
  for (int k = 1; k <= need; k++) {
    if ((gsize) k >= n || p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xBF))
      return -k;
  }
  return need + 1;
}

char *
cria_utf8_make_valid (const char *text, gssize len, gsize *out_len)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  GString *s = g_string_sized_new (n + 8);
  const guchar *p = (const guchar *) text;
  for (gsize i = 0; i < n;) {
    int k = utf8_seq (p + i, n - i);
    if (k > 0)
      g_string_append_len (s, text + i, k);
    else
      g_string_append (s, "\xEF\xBF\xBD");
    i += (gsize) ABS (k);
  }
  if (out_len)
    *out_len = s->len;
  return g_string_free (s, FALSE);
}

CriaEncoding *
cria_tokenizer_encode (CriaTokenizer *tok, const char *text, gssize len, CriaEncodeFlags flags, GError **error)
{
  g_return_val_if_fail (tok != NULL, NULL);
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  g_autofree char *valid = NULL;
  if (!g_utf8_validate_len (text, n, NULL)) {
    valid = cria_utf8_make_valid (text, (gssize) n, &n);
    text = valid;
  }
  g_autoptr (CriaEncoding) enc = cria_encoding_new (flags & CRIA_ENCODE_OFFSETS);
  if (!tok->vt->encode (tok->self, text, n, flags, enc, error))
    return NULL;
  return g_steal_pointer (&enc);
}

typedef struct {
  CriaTokenizer *tok;
  const char *const *texts;
  CriaEncoding **out;
  guint n;
  CriaEncodeFlags flags;
  gint next;     /* atomically claimed index */
  GError *error; /* the first failure */
  GMutex lock;
} BatchJob;

static gpointer
batch_worker (gpointer data)
{
  BatchJob *job = data;
  for (;;) {
    guint i = (guint) g_atomic_int_add (&job->next, 1);
    if (i >= job->n)
      break;
    GError *err = NULL;
    job->out[i] = cria_tokenizer_encode (job->tok, job->texts[i], -1, job->flags, &err);
    if (err) {
      g_mutex_lock (&job->lock);
      if (!job->error)
        job->error = err;
      else
        g_error_free (err);
      g_mutex_unlock (&job->lock);
    }
  }
  return NULL;
}

GPtrArray *
cria_tokenizer_encode_batch (CriaTokenizer *tok, const char *const *texts, guint n, CriaEncodeFlags flags,
                             guint n_threads, GError **error)
{
  g_return_val_if_fail (tok != NULL, NULL);
  g_return_val_if_fail (texts != NULL || n == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  BatchJob job = { tok, texts, g_new0 (CriaEncoding *, n), n, flags, 0, NULL, { 0 } };
  g_mutex_init (&job.lock);
  if (n_threads == 0)
    n_threads = g_get_num_processors ();
  n_threads = MIN (n_threads, MAX (n, 1));
  GThread **threads = g_new0 (GThread *, n_threads);
  for (guint t = 1; t < n_threads; t++)
    threads[t] = g_thread_new ("cria-tokenize", batch_worker, &job);
  batch_worker (&job);
  for (guint t = 1; t < n_threads; t++)
    g_thread_join (threads[t]);
  g_free (threads);
  g_mutex_clear (&job.lock);
  GPtrArray *result = g_ptr_array_new_full (n, (GDestroyNotify) cria_encoding_free);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (result, job.out[i]);
  g_free (job.out);
  if (job.error) {
    g_propagate_error (error, job.error);
    g_ptr_array_unref (result);
    return NULL;
  }
  return result;
}

char *
cria_tokenizer_decode (CriaTokenizer *tok, const gint32 *ids, gsize n_ids, gboolean skip_special, GError **error)
{
  g_return_val_if_fail (tok != NULL, NULL);
  g_return_val_if_fail (ids != NULL || n_ids == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return tok->vt->decode (tok->self, ids, n_ids, skip_special, error);
}

const char *
cria_tokenizer_id_to_token (CriaTokenizer *tok, gint32 id)
{
  g_return_val_if_fail (tok != NULL, NULL);
  return tok->vt->id_to_token (tok->self, id);
}

gint32
cria_tokenizer_token_to_id (CriaTokenizer *tok, const char *token)
{
  g_return_val_if_fail (tok != NULL, -1);
  g_return_val_if_fail (token != NULL, -1);
  return tok->vt->token_to_id (tok->self, token);
}

guint
cria_tokenizer_vocab_size (CriaTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->vt->vocab_size (tok->self);
}

gboolean
cria_tokenizer_is_special (CriaTokenizer *tok, gint32 id)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  return tok->vt->is_special (tok->self, id);
}

gint32
cria_tokenizer_special_id (CriaTokenizer *tok, CriaSpecialToken which)
{
  g_return_val_if_fail (tok != NULL, -1);
  g_return_val_if_fail (which < CRIA_N_SPECIAL, -1);
  return tok->special[which];
}
