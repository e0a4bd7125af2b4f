/* cria-bpe-trainer.c: byte-level BPE training.
 *
 *   cria tokenizer train --vocab-size 4096 --output tok/ corpus.txt
 *
 * Words are counted once; then each step merges the most frequent adjacent
 * pair. Pair counts are kept up to date incrementally: only the words that
 * hold the merged pair are recounted, found through a pair -> words index
 * (stale entries are harmless: recounting a word is idempotent). The most
 * frequent pair comes from a max-heap with lazy deletion: every rise of a
 * count pushes an entry, and an entry whose count is stale when it reaches
 * the top is pushed again with the current count. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>
#include <cria/cria-bpe-trainer.h>
#include <cria/cria-tokenizer.h>

#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

struct _CriaBpeTrainer {
  GRegex *regex;
  GHashTable *words; /* word bytes (char*) -> count */
  guint n_merges;
};

typedef struct {
  GArray *sym; /* gint32 symbol ids */
  gint64 count;
} Word;

typedef struct {
  gint64 count;
  guint64 key;
} HeapEntry;

/* Higher count first; on ties, the smaller pair. */
static inline gboolean
heap_above (const HeapEntry *a, const HeapEntry *b)
{
  return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static void
heap_push (GArray *heap, gint64 count, guint64 key)
{
  HeapEntry e = { count, key };
  g_array_append_val (heap, e);
  HeapEntry *h = (HeapEntry *) heap->data;
  for (guint i = heap->len - 1; i > 0 && heap_above (&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2) {
    HeapEntry t = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = t;
  }
}

static HeapEntry
heap_pop (GArray *heap)
{
  HeapEntry *h = (HeapEntry *) heap->data;
  HeapEntry top = h[0];
  h[0] = h[heap->len - 1];
  g_array_set_size (heap, heap->len - 1);
  h = (HeapEntry *) heap->data;
  for (guint i = 0;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap->len && heap_above (&h[l], &h[m]))
      m = l;
    if (r < heap->len && heap_above (&h[r], &h[m]))
      m = r;
    if (m == i)
      break;
    HeapEntry t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

CriaBpeTrainer *
cria_bpe_trainer_new (void)
{
  CriaBpeTrainer *t = g_new0 (CriaBpeTrainer, 1);
  t->regex = g_regex_new (GPT2_PATTERN, G_REGEX_OPTIMIZE, 0, NULL);
  t->words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return t;
}

void
cria_bpe_trainer_free (CriaBpeTrainer *t)
{
  if (!t)
    return;
  g_regex_unref (t->regex);
  g_hash_table_unref (t->words);
  g_free (t);
}

guint
cria_bpe_trainer_get_n_merges (CriaBpeTrainer *t)
{
  g_return_val_if_fail (t != NULL, 0);
  return t->n_merges;
}

void
cria_bpe_trainer_feed (CriaBpeTrainer *t, const char *text, gssize len)
{
  g_return_if_fail (t != NULL);
  g_return_if_fail (text != NULL || len == 0);
  gsize n;
  g_autofree char *valid = cria_utf8_make_valid (text, len, &n);
  g_autoptr (GMatchInfo) mi = NULL;
  g_regex_match_full (t->regex, valid, (gssize) n, 0, 0, &mi, NULL);
  while (g_match_info_matches (mi)) {
    int a, b;
    g_match_info_fetch_pos (mi, 0, &a, &b);
    if (b > a) {
      g_autofree char *w = g_strndup (valid + a, (gsize) (b - a));
      gpointer old = g_hash_table_lookup (t->words, w);
      g_hash_table_replace (t->words, g_steal_pointer (&w), GSIZE_TO_POINTER (GPOINTER_TO_SIZE (old) + 1));
    }
    g_match_info_next (mi, NULL);
  }
}

static inline guint64
pair_key (gint32 a, gint32 b)
{
  return ((guint64) (guint32) a << 32) | (guint32) b;
}

/* Adds sign * count for each adjacent pair of w, and indexes the word. Only
 * pairs holding `fresh` (the merged symbol; -1: all) can have risen, so only
 * those go to the heap. */
static void
count_pairs (GHashTable *counts, GHashTable *where, GArray *heap, const Word *w, guint index, int sign, gint32 fresh)
{
  for (guint i = 0; i + 1 < w->sym->len; i++) {
    gint32 l = g_array_index (w->sym, gint32, i), r = g_array_index (w->sym, gint32, i + 1);
    if (sign > 0 && fresh >= 0 && l != fresh && r != fresh) {
      *(gint64 *) g_hash_table_lookup (counts, &(guint64){ pair_key (l, r) }) += w->count;
      continue;
    }
    guint64 key = pair_key (l, r);
    gint64 *c = g_hash_table_lookup (counts, &key);
    if (!c) {
      guint64 *k = g_new (guint64, 1);
      *k = key;
      c = g_new0 (gint64, 1);
      g_hash_table_insert (counts, k, c);
    }
    *c += sign * w->count;
    if (sign > 0) {
      heap_push (heap, *c, key);
      GArray *list = g_hash_table_lookup (where, &key);
      if (!list) {
        guint64 *k = g_new (guint64, 1);
        *k = key;
        list = g_array_new (FALSE, FALSE, sizeof (guint));
        g_hash_table_insert (where, k, list);
      }
      if (list->len == 0 || g_array_index (list, guint, list->len - 1) != index)
        g_array_append_val (list, index);
    }
  }
}

static gboolean
has_pair (const Word *w, gint32 a, gint32 b)
{
  for (guint i = 0; i + 1 < w->sym->len; i++)
    if (g_array_index (w->sym, gint32, i) == a && g_array_index (w->sym, gint32, i + 1) == b)
      return TRUE;
  return FALSE;
}

static void
merge_word (Word *w, gint32 a, gint32 b, gint32 merged)
{
  guint o = 0;
  for (guint i = 0; i < w->sym->len; i++) {
    gint32 s = g_array_index (w->sym, gint32, i);
    if (s == a && i + 1 < w->sym->len && g_array_index (w->sym, gint32, i + 1) == b) {
      s = merged;
      i++;
    }
    g_array_index (w->sym, gint32, o++) = s;
  }
  g_array_set_size (w->sym, o);
}

/* GPT-2's printable form of a byte. */
static gunichar
byte_char (int b)
{
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
    return (gunichar) b;
  int n = 0;
  for (int x = 0; x < b; x++)
    n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
  return (gunichar) (256 + n);
}

static JsonNode *
byte_level_component (const char *type, gboolean prefix, gboolean trim)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, type);
  json_builder_set_member_name (b, "add_prefix_space");
  json_builder_add_boolean_value (b, prefix);
  json_builder_set_member_name (b, "trim_offsets");
  json_builder_add_boolean_value (b, trim);
  json_builder_set_member_name (b, "use_regex");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static void
add_null (JsonBuilder *b, const char *name)
{
  json_builder_set_member_name (b, name);
  json_builder_add_null_value (b);
}

static char *
tokenizer_json (GPtrArray *tokens, GArray *merges, guint n_special)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, "1.0");
  add_null (b, "truncation");
  add_null (b, "padding");
  json_builder_set_member_name (b, "added_tokens");
  json_builder_begin_array (b);
  for (guint i = 0; i < n_special; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_int_value (b, i);
    json_builder_set_member_name (b, "content");
    json_builder_add_string_value (b, tokens->pdata[i]);
    static const char *const flags[] = { "single_word", "lstrip", "rstrip", "normalized" };
    for (guint f = 0; f < G_N_ELEMENTS (flags); f++) {
      json_builder_set_member_name (b, flags[f]);
      json_builder_add_boolean_value (b, FALSE);
    }
    json_builder_set_member_name (b, "special");
    json_builder_add_boolean_value (b, TRUE);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  add_null (b, "normalizer");
  json_builder_set_member_name (b, "pre_tokenizer");
  json_builder_add_value (b, byte_level_component ("ByteLevel", FALSE, TRUE));
  json_builder_set_member_name (b, "post_processor");
  json_builder_add_value (b, byte_level_component ("ByteLevel", TRUE, FALSE));
  json_builder_set_member_name (b, "decoder");
  json_builder_add_value (b, byte_level_component ("ByteLevel", TRUE, TRUE));
  json_builder_set_member_name (b, "model");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "BPE");
  static const char *const nulls[] = { "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix" };
  for (guint i = 0; i < G_N_ELEMENTS (nulls); i++)
    add_null (b, nulls[i]);
  static const char *const falses[] = { "fuse_unk", "byte_fallback", "ignore_merges" };
  for (guint i = 0; i < G_N_ELEMENTS (falses); i++) {
    json_builder_set_member_name (b, falses[i]);
    json_builder_add_boolean_value (b, FALSE);
  }
  json_builder_set_member_name (b, "vocab");
  json_builder_begin_object (b);
  for (guint i = n_special; i < tokens->len; i++) {
    json_builder_set_member_name (b, tokens->pdata[i]);
    json_builder_add_int_value (b, i);
  }
  json_builder_end_object (b);
  json_builder_set_member_name (b, "merges");
  json_builder_begin_array (b);
  for (guint i = 0; i < merges->len; i += 2) {
    json_builder_begin_array (b);
    json_builder_add_string_value (b, tokens->pdata[g_array_index (merges, gint32, i)]);
    json_builder_add_string_value (b, tokens->pdata[g_array_index (merges, gint32, i + 1)]);
    json_builder_end_array (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

static void
free_word (gpointer p)
{
  g_array_unref (((Word *) p)->sym);
}

gboolean
cria_bpe_trainer_write (CriaBpeTrainer *t, guint vocab_size, guint min_frequency, const char *const *special,
                        const char *path, GError **error)
{
  g_return_val_if_fail (t != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; special && special[i]; i++)
    g_ptr_array_add (tokens, g_strdup (special[i]));
  guint n_special = tokens->len;
  if (vocab_size < n_special + 256) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "a vocabulary of %u cannot hold the 256 bytes and %u special tokens", vocab_size, n_special);
    return FALSE;
  }
  for (int byte = 0; byte < 256; byte++) {
    char ch[8];
    ch[g_unichar_to_utf8 (byte_char (byte), ch)] = '\0';
    g_ptr_array_add (tokens, g_strdup (ch));
  }
  /* Words in a stable order, so that training is reproducible. */
  g_autoptr (GArray) words = g_array_new (FALSE, FALSE, sizeof (Word));
  g_array_set_clear_func (words, free_word);
  g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (t->words), (GCompareFunc) strcmp);
  for (GList *l = keys; l; l = l->next) {
    const char *w = l->data;
    Word word = { g_array_new (FALSE, FALSE, sizeof (gint32)),
                  (gint64) GPOINTER_TO_SIZE (g_hash_table_lookup (t->words, w)) };
    for (const char *p = w; *p; p++) {
      gint32 id = (gint32) (n_special + (guchar) *p);
      g_array_append_val (word.sym, id);
    }
    g_array_append_val (words, word);
  }
  g_autoptr (GArray) heap = g_array_new (FALSE, FALSE, sizeof (HeapEntry));
  g_autoptr (GHashTable) counts = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  g_autoptr (GHashTable)
      where = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, (GDestroyNotify) g_array_unref);
  for (guint i = 0; i < words->len; i++)
    count_pairs (counts, where, heap, &g_array_index (words, Word, i), i, +1, -1);
  g_autoptr (GArray) merges = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal); /* token -> id + 1, borrowed */
  for (guint i = 0; i < tokens->len; i++)
    g_hash_table_insert (ids, tokens->pdata[i], GINT_TO_POINTER (i + 1));
  while (tokens->len < vocab_size) {
    guint64 best = 0;
    gint64 best_count = 0;
    while (heap->len > 0) {
      HeapEntry e = heap_pop (heap);
      gint64 now = *(gint64 *) g_hash_table_lookup (counts, &e.key);
      if (now == e.count) {
        best = e.key;
        best_count = now;
        break;
      }
      if (now > 0 && now < e.count)
        heap_push (heap, now, e.key);
    }
    if (best_count < (gint64) MAX (min_frequency, 1))
      break;
    gint32 a = (gint32) (best >> 32), bb = (gint32) (best & 0xffffffff);
    /* Two merges can spell the same token ("ab"+"c", "a"+"bc"): one id. */
    char *text = g_strconcat (tokens->pdata[a], tokens->pdata[bb], NULL);
    gint32 merged = GPOINTER_TO_INT (g_hash_table_lookup (ids, text)) - 1;
    if (merged < 0) {
      merged = (gint32) tokens->len;
      g_ptr_array_add (tokens, text);
      g_hash_table_insert (ids, text, GINT_TO_POINTER (merged + 1));
    } else
      g_free (text);
    g_array_append_val (merges, a);
    g_array_append_val (merges, bb);
    g_autoptr (GArray) list = g_array_ref (g_hash_table_lookup (where, &best));
    for (guint i = 0; i < list->len; i++) {
      guint wi = g_array_index (list, guint, i);
      Word *w = &g_array_index (words, Word, wi);
      if (!has_pair (w, a, bb))
        continue; /* a stale or repeated index entry */
      count_pairs (counts, where, heap, w, wi, -1, -1);
      merge_word (w, a, bb, merged);
      count_pairs (counts, where, heap, w, wi, +1, merged);
    }
  }
  t->n_merges = merges->len / 2;
  g_autofree char *json = tokenizer_json (tokens, merges, n_special);
  g_autoptr (CriaOutput) out = cria_output_open (path, error);
  if (!out || !cria_output_write (out, json, strlen (json), error) || !cria_output_write (out, "\n", 1, error))
    return FALSE;
  return cria_output_commit (g_steal_pointer (&out), error);
}
