/* cria-tokenizer.h: turning text into token ids and back.
 *
 * A tokenizer provider (kind CRIA_KIND_TOKENIZER) says how well it can read a
 * set of tokenizer files (probe) and loads them; the rest of cria uses the
 * CriaTokenizer handle, which cria_tokenizer_load() builds from a model
 * directory or a single tokenizer file by asking every provider. Ids are those
 * the Hugging Face tokenizers produce for the same files. */
#pragma once

#include <cria/cria-registry.h>

G_BEGIN_DECLS

/* The tokenizer files found in a directory (or the one file given). The
 * tokenizer.json and tokenizer_config.json are parsed once, by the core. */
typedef struct {
  char *dir;
  char *tokenizer_json; /* paths, NULL when absent */
  char *tokenizer_config;
  char *vocab_txt;
  char *encoder_json;
  char *vocab_bpe;
  char *tokenizer_model;
  JsonNode *json;   /* the parsed tokenizer.json, or NULL */
  JsonNode *config; /* the parsed tokenizer_config.json, or NULL */
} CriaTokenizerFiles;

typedef enum {
  CRIA_ENCODE_DEFAULT = 0,
  CRIA_ENCODE_ADD_SPECIAL = 1 << 0, /* apply the post-processor (BOS/EOS, [CLS]/[SEP]) */
  CRIA_ENCODE_OFFSETS = 1 << 1,     /* fill CriaEncoding.offsets */
} CriaEncodeFlags;

/* [start, end) in bytes of the text handed to encode. */
typedef struct {
  guint32 start, end;
} CriaTokenSpan;

typedef struct {
  GArray *ids;     /* gint32 */
  GArray *offsets; /* CriaTokenSpan, one per id; NULL unless CRIA_ENCODE_OFFSETS */
} CriaEncoding;

typedef enum {
  CRIA_SPECIAL_BOS,
  CRIA_SPECIAL_EOS,
  CRIA_SPECIAL_PAD,
  CRIA_SPECIAL_UNK,
  CRIA_N_SPECIAL
} CriaSpecialToken;

struct _CriaTokenizerVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaTokenizerVTable) */
  /* 0: cannot read these files; higher: a better fit. Must not fail. */
  int (*probe) (const CriaTokenizerFiles *files);
  gpointer (*load) (const CriaTokenizerFiles *files, const CriaProps *props, GError **error);
  void (*destroy) (gpointer self);
  /* Appends to out. Called from several threads at once. `text` is valid UTF-8. */
  gboolean (*encode) (gpointer self, const char *text, gsize len, CriaEncodeFlags flags, CriaEncoding *out,
                      GError **error);
  /* Returns valid UTF-8; unknown ids are an error. */
  char *(*decode) (gpointer self, const gint32 *ids, gsize n_ids, gboolean skip_special, GError **error);
  const char *(*id_to_token) (gpointer self, gint32 id);    /* NULL when unknown */
  gint32 (*token_to_id) (gpointer self, const char *token); /* -1 when unknown */
  guint (*vocab_size) (gpointer self);                      /* the largest id + 1 */
  gboolean (*is_special) (gpointer self, gint32 id);
  /* The provider's own idea of a special token, used when tokenizer_config.json
   * does not name it; NULL for none. */
  const char *(*default_special) (gpointer self, CriaSpecialToken which);
};

typedef struct _CriaTokenizer CriaTokenizer;

/* `path` is a model directory or one tokenizer file (tokenizer.json, vocab.txt,
 * encoder.json, tokenizer.model). The provider that probes best loads it. */
CriaTokenizer *cria_tokenizer_load (CriaRegistry *registry, const char *path, GError **error);
/* The same with a named provider and its properties (props may be NULL). */
CriaTokenizer *cria_tokenizer_load_with (CriaRegistry *registry, const char *provider, const char *path,
                                         const CriaProps *props, GError **error);
void cria_tokenizer_free (CriaTokenizer *tok);
const char *cria_tokenizer_get_provider_name (const CriaTokenizer *tok);

CriaEncoding *cria_encoding_new (gboolean with_offsets);
void cria_encoding_free (CriaEncoding *enc);

/* Invalid UTF-8 is replaced by U+FFFD first, as a JavaScript or Python string
 * decoded from those bytes would hold it. `len` < 0: NUL-terminated. */
CriaEncoding *cria_tokenizer_encode (CriaTokenizer *tok, const char *text, gssize len, CriaEncodeFlags flags,
                                     GError **error);
/* Encodes n texts on n_threads threads (0: one per processor). Element type:
 * CriaEncoding*, in the order of texts. */
GPtrArray *cria_tokenizer_encode_batch (CriaTokenizer *tok, const char *const *texts, guint n, CriaEncodeFlags flags,
                                        guint n_threads, GError **error);
char *cria_tokenizer_decode (CriaTokenizer *tok, const gint32 *ids, gsize n_ids, gboolean skip_special, GError **error);
const char *cria_tokenizer_id_to_token (CriaTokenizer *tok, gint32 id);
gint32 cria_tokenizer_token_to_id (CriaTokenizer *tok, const char *token);
guint cria_tokenizer_vocab_size (CriaTokenizer *tok);
gboolean cria_tokenizer_is_special (CriaTokenizer *tok, gint32 id);
/* -1 when the tokenizer has no such token. */
gint32 cria_tokenizer_special_id (CriaTokenizer *tok, CriaSpecialToken which);

/* Replaces each maximal ill-formed subsequence with U+FFFD, as Rust's
 * from_utf8_lossy and JavaScript's TextDecoder do. `len` < 0: NUL-terminated. */
char *cria_utf8_make_valid (const char *text, gssize len, gsize *out_len);

/* Finds the tokenizer files of a directory or file; fails when there are none
 * or a JSON file is malformed. */
CriaTokenizerFiles *cria_tokenizer_files_new (const char *path, GError **error);
void cria_tokenizer_files_free (CriaTokenizerFiles *files);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaTokenizer, cria_tokenizer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaEncoding, cria_encoding_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaTokenizerFiles, cria_tokenizer_files_free)

G_END_DECLS
