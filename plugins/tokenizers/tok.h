/* tok.h: the tokenizer engine shared by the bpe, spm and wordpiece providers.
 *
 * It runs the stages a Hugging Face tokenizer.json declares, in its order:
 * added tokens, normalizers, pre-tokenizers, the model, the post-processor;
 * and the decoders back. Text is handled as UTF-8 bytes; every byte of the
 * normalized text remembers the span of the original text it came from, so
 * offsets survive normalization. */
#pragma once

#include <cria/cria.h>
#include <cria/cria-tokenizer.h>

/* Normalized text: bytes, and for each byte the original [os, oe) it came from. */
typedef struct {
  char *s;
  guint32 *os, *oe;
  gsize len, cap;
} TokStr;

typedef struct {
  guint32 start, end; /* bytes of a TokStr */
} TokPiece;

typedef enum {
  NORM_NFC,
  NORM_NFD,
  NORM_NFKC,
  NORM_NFKD,
  NORM_LOWERCASE,
  NORM_STRIP_ACCENTS,
  NORM_PREPEND,
  NORM_REPLACE,
  NORM_STRIP,
  NORM_BERT
} TokNormKind;

typedef struct {
  TokNormKind kind;
  char *str;           /* Prepend: the text; Replace: the content */
  GRegex *regex;       /* Replace */
  gboolean a, b, c, d; /* Strip: left, right; Bert: clean, chinese, accents, lowercase */
} TokNorm;

typedef enum {
  PRE_SPLIT,
  PRE_BYTELEVEL,
  PRE_METASPACE,
  PRE_BERT,
  PRE_WHITESPACE,
  PRE_WHITESPACE_SPLIT,
  PRE_DIGITS
} TokPreKind;

/* What ByteLevel's use_regex splits with. */
#define TOK_GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_PREVIOUS, SPLIT_NEXT } TokSplitBehavior;

typedef struct {
  TokPreKind kind;
  GRegex *regex; /* Split; ByteLevel with use_regex */
  TokSplitBehavior behavior;
  gboolean add_prefix_space; /* ByteLevel; Metaspace: prepend_scheme != never */
  gboolean first_only;       /* Metaspace prepend_scheme == first */
  gboolean split;            /* Metaspace; Digits: individual */
  char *replacement;         /* Metaspace */
} TokPre;

typedef enum {
  DEC_BYTELEVEL,
  DEC_REPLACE,
  DEC_BYTEFALLBACK,
  DEC_FUSE,
  DEC_STRIP,
  DEC_WORDPIECE,
  DEC_METASPACE
} TokDecKind;

typedef struct {
  TokDecKind kind;
  char *pattern, *content; /* Replace; Strip: content; WordPiece: prefix; Metaspace: replacement */
  int start, stop;         /* Strip */
  gboolean cleanup;        /* WordPiece; Metaspace: prepend */
} TokDec;

typedef struct {
  char *content;
  gsize len;
  gint32 id;
  gboolean special, normalized, lstrip, rstrip, single_word;
} TokAdded;

typedef enum { MODEL_BPE, MODEL_WORDPIECE } TokModelKind;

/* Open addressing: (left id, right id) -> (rank, merged id). */
typedef struct {
  guint64 *keys;
  guint32 *rank, *merged;
  gsize mask;
} TokMerges;

typedef struct {
  guint64 serial; /* unique per Tok in this process: the word caches' key */
  /* vocabulary, added tokens included */
  char **tokens; /* by id; NULL for holes */
  char **raw;    /* by id: the bytes a byte-level token stands for */
  guint32 *raw_len;
  guint8 *special; /* by id */
  guint n_ids;
  guint cap_ids;       /* what tokens and special hold */
  GHashTable *ids;     /* token -> id + 1 */
  GHashTable *raw_ids; /* byte-level: raw bytes (GBytes) -> id + 1 */

  TokModelKind model;
  gint32 unk_id;
  TokMerges merges;
  gboolean byte_level; /* the model sees bytes (a ByteLevel pre-tokenizer) */
  gboolean byte_fallback, fuse_unk, ignore_merges;
  gint32 byte_ids[256]; /* byte level: the id of each byte; byte fallback: <0xXX> */
  char *wp_prefix;      /* WordPiece */
  guint wp_max_chars;

  GArray *norms;                   /* TokNorm */
  GArray *pres;                    /* TokPre */
  GArray *decs;                    /* TokDec */
  GArray *added;                   /* TokAdded, longest first */
  guint8 added_first[256];         /* 1 when some added token starts with this byte */
  GArray *prefix_ids, *suffix_ids; /* the post-processor's, for ADD_SPECIAL */
  char *default_special[CRIA_N_SPECIAL];
} Tok;

/* tok-text.c */
void tokstr_init (TokStr *t, gsize cap);
void tokstr_clear (TokStr *t);
void tokstr_append (TokStr *t, const char *s, gsize n, guint32 os, guint32 oe);
/* The slice [a, b) of src appended with its alignment. */
void tokstr_append_slice (TokStr *t, const TokStr *src, gsize a, gsize b);
void tok_normalize (const Tok *tok, TokStr *t);
void tok_norm_clear (TokNorm *n);
gboolean tok_is_bert_punct (gunichar c);

/* tok-pretok.c: splits the pieces (in order) of t; may rewrite t. */
void tok_pretokenize (const Tok *tok, TokStr *t, GArray *pieces, gboolean first_segment);
void tok_pre_clear (TokPre *p);

/* tok-model.c */
void tok_merges_init (TokMerges *m, gsize n);
void tok_merges_add (TokMerges *m, gint32 a, gint32 b, guint32 rank, gint32 merged);
void tok_merges_clear (TokMerges *m);
/* Appends ids (and spans relative to s) for one pre-tokenized word. */
void tok_model_word (const Tok *tok, const char *s, gsize n, GArray *ids, GArray *spans);

/* tok-core.c */
Tok *tok_new (void);
void tok_free (Tok *tok);
/* Sets id's token; grows the tables. */
void tok_set_token (Tok *tok, gint32 id, const char *token);
gint32 tok_lookup (const Tok *tok, const char *token, gssize len);
void tok_add_added (Tok *tok, const TokAdded *a);
/* Called once the tables are complete: raw bytes, byte ids, added-token index. */
gboolean tok_finish (Tok *tok, GError **error);
gboolean tok_encode (Tok *tok, const char *text, gsize len, CriaEncodeFlags flags, CriaEncoding *out, GError **error);
char *tok_decode (Tok *tok, const gint32 *ids, gsize n, gboolean skip_special, GError **error);

/* tok-json.c: tokenizer.json; errors name the JSON path of the bad field. */
Tok *tok_load_json (JsonNode *root, const char *file, GError **error);
/* tok-legacy.c */
Tok *tok_load_gpt2 (const char *encoder_json, const char *vocab_bpe, GError **error);
Tok *tok_load_vocab_txt (const char *path, gboolean lowercase, int strip_accents, GError **error);

/* plugin.c: the vtable functions every provider shares. */
void tok_destroy (gpointer self);
gboolean tok_vt_encode (gpointer self, const char *text, gsize len, CriaEncodeFlags flags, CriaEncoding *out,
                        GError **error);
char *tok_vt_decode (gpointer self, const gint32 *ids, gsize n, gboolean skip_special, GError **error);
const char *tok_id_to_token (gpointer self, gint32 id);
gint32 tok_token_to_id (gpointer self, const char *token);
guint tok_vocab_size (gpointer self);
gboolean tok_is_special (gpointer self, gint32 id);
const char *tok_default_special (gpointer self, CriaSpecialToken which);
#define TOK_VTABLE_SHARED                                                                                              \
  .destroy = tok_destroy, .encode = tok_vt_encode, .decode = tok_vt_decode, .id_to_token = tok_id_to_token,            \
  .token_to_id = tok_token_to_id, .vocab_size = tok_vocab_size, .is_special = tok_is_special,                          \
  .default_special = tok_default_special
/* model.type of the tokenizer.json, "" when unreadable, NULL without one. */
const char *tok_model_type (const CriaTokenizerFiles *files);
/* TRUE when the tokenizer.json's pre-tokenizer includes ByteLevel. */
gboolean tok_json_is_byte_level (const CriaTokenizerFiles *files);
