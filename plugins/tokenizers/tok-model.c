/* tok-model.c: the models of tokenizer.json: BPE (byte-level or with byte
 * fallback) and WordPiece, applied to one pre-tokenized word.
 *
 *   cria tokenize --tokenizer gpt2-hf/tokenizer.json input.txt
 *
 * BPE merges the adjacent pair of lowest rank, leftmost first, until no pair
 * has a rank: the order the Hugging Face implementation's queue yields. */
#include "config.h"

#include <string.h>

#include "tok.h"

static inline gsize
hash64 (guint64 k)
{
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (gsize) k;
}

void
tok_merges_init (TokMerges *m, gsize n)
{
  gsize size = 16;
  while (size < n * 2)
    size *= 2;
  m->mask = size - 1;
  m->keys = g_new (guint64, size);
  memset (m->keys, 0xff, size * sizeof (guint64));
  m->rank = g_new (guint32, size);
  m->merged = g_new (guint32, size);
}

void
tok_merges_add (TokMerges *m, gint32 a, gint32 b, guint32 rank, gint32 merged)
{
  guint64 key = ((guint64) (guint32) a << 32) | (guint32) b;
  gsize i = hash64 (key) & m->mask;
  while (m->keys[i] != G_MAXUINT64) {
    if (m->keys[i] == key)
      return; /* a repeated merge keeps its first rank */
    i = (i + 1) & m->mask;
  }
  m->keys[i] = key;
  m->rank[i] = rank;
  m->merged[i] = (guint32) merged;
}

static inline gboolean
merges_find (const TokMerges *m, gint32 a, gint32 b, guint32 *rank, gint32 *merged)
{
  guint64 key = ((guint64) (guint32) a << 32) | (guint32) b;
  gsize i = hash64 (key) & m->mask;
  while (m->keys[i] != G_MAXUINT64) {
    if (m->keys[i] == key) {
      *rank = m->rank[i];
      *merged = (gint32) m->merged[i];
      return TRUE;
    }
    i = (i + 1) & m->mask;
  }
  return FALSE;
}

void
tok_merges_clear (TokMerges *m)
{
  g_free (m->keys);
  g_free (m->rank);
  g_free (m->merged);
  memset (m, 0, sizeof *m);
}

typedef struct {
  gint32 id;
  guint32 start, end; /* bytes of the word */
} Sym;

static void
emit (GArray *ids, GArray *spans, gint32 id, guint32 a, guint32 b)
{
  g_array_append_val (ids, id);
  if (spans) {
    CriaTokenSpan s = { a, b };
    g_array_append_val (spans, s);
  }
}

/* The initial symbols of a non-byte-level word: its characters, or their
 * <0xXX> bytes (byte fallback), or unk (fused when fuse_unk). */
static guint
initial_chars (const Tok *tok, const char *s, gsize n, Sym *sym)
{
  guint k = 0;
  for (gsize i = 0; i < n;) {
    gsize j = g_utf8_next_char (s + i) - s;
    gint32 id = tok_lookup (tok, s + i, (gssize) (j - i));
    gboolean bytes_ok = tok->byte_fallback;
    for (gsize b = i; id < 0 && bytes_ok && b < j; b++)
      bytes_ok = tok->byte_ids[(guchar) s[b]] >= 0;
    if (id >= 0)
      sym[k++] = (Sym){ id, (guint32) i, (guint32) j };
    else if (bytes_ok)
      for (gsize b = i; b < j; b++)
        sym[k++] = (Sym){ tok->byte_ids[(guchar) s[b]], (guint32) b, (guint32) b + 1 };
    else if (tok->fuse_unk && k > 0 && sym[k - 1].id == tok->unk_id && tok->unk_id >= 0)
      sym[k - 1].end = (guint32) j;
    else
      sym[k++] = (Sym){ tok->unk_id, (guint32) i, (guint32) j };
    i = j;
  }
  return k;
}

typedef struct {
  guint32 rank, pos;
  gint32 merged;
} Cand;

static inline gboolean
cand_below (const Cand *a, const Cand *b)
{
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void
cand_push (GArray *heap, guint32 rank, guint32 pos, gint32 merged)
{
  Cand c = { rank, pos, merged };
  g_array_append_val (heap, c);
  Cand *h = (Cand *) heap->data;
  for (guint i = heap->len - 1; i > 0 && cand_below (&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2) {
    Cand t = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = t;
  }
}

static Cand
cand_pop (GArray *heap)
{
  Cand *h = (Cand *) heap->data;
  Cand top = h[0];
  h[0] = h[heap->len - 1];
  g_array_set_size (heap, heap->len - 1);
  for (guint i = 0;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap->len && cand_below (&h[l], &h[m]))
      m = l;
    if (r < heap->len && cand_below (&h[r], &h[m]))
      m = r;
    if (m == i)
      break;
    Cand t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

/* Long words (a whole line for SentencePiece): the same merge order, lowest
 * rank then leftmost, from a queue of candidate pairs over a linked list of
 * symbols; a candidate whose pair has changed since it was queued is dropped. */
static void
merge_long (const Tok *tok, Sym *sym, guint k, GArray *ids, GArray *spans)
{
  g_autofree gint32 *next = g_new (gint32, k);
  g_autofree gint32 *prev = g_new (gint32, k);
  g_autofree guint8 *dead = g_new0 (guint8, k);
  g_autoptr (GArray) heap = g_array_sized_new (FALSE, FALSE, sizeof (Cand), k);
  guint32 rank;
  gint32 merged;
  for (guint i = 0; i < k; i++) {
    next[i] = i + 1 < k ? (gint32) i + 1 : -1;
    prev[i] = (gint32) i - 1;
    if (i + 1 < k && merges_find (&tok->merges, sym[i].id, sym[i + 1].id, &rank, &merged))
      cand_push (heap, rank, i, merged);
  }
  while (heap->len > 0) {
    Cand c = cand_pop (heap);
    gint32 nx = next[c.pos];
    if (dead[c.pos] || nx < 0 || !merges_find (&tok->merges, sym[c.pos].id, sym[nx].id, &rank, &merged) ||
        merged != c.merged)
      continue;
    sym[c.pos].id = merged;
    sym[c.pos].end = sym[nx].end;
    dead[nx] = 1;
    next[c.pos] = next[nx];
    if (next[nx] >= 0)
      prev[next[nx]] = (gint32) c.pos;
    gint32 pv = prev[c.pos];
    if (pv >= 0 && merges_find (&tok->merges, sym[pv].id, sym[c.pos].id, &rank, &merged))
      cand_push (heap, rank, (guint32) pv, merged);
    if (next[c.pos] >= 0 && merges_find (&tok->merges, sym[c.pos].id, sym[next[c.pos]].id, &rank, &merged))
      cand_push (heap, rank, c.pos, merged);
  }
  for (gint32 i = 0; i >= 0; i = next[i])
    if (sym[i].id >= 0)
      emit (ids, spans, sym[i].id, sym[i].start, sym[i].end);
}

static void
bpe_word (const Tok *tok, const char *s, gsize n, GArray *ids, GArray *spans)
{
  if (tok->ignore_merges) {
    gint32 id = -1;
    if (tok->byte_level) {
      g_autoptr (GBytes) key = g_bytes_new_static (s, n);
      id = GPOINTER_TO_INT (g_hash_table_lookup (tok->raw_ids, key)) - 1;
    } else
      id = tok_lookup (tok, s, (gssize) n);
    if (id >= 0) {
      emit (ids, spans, id, 0, (guint32) n);
      return;
    }
  }
  Sym stack_sym[64];
  Sym *sym = n <= G_N_ELEMENTS (stack_sym) ? stack_sym : g_new (Sym, n);
  guint k;
  if (tok->byte_level) {
    for (k = 0; k < n; k++)
      sym[k] = (Sym){ tok->byte_ids[(guchar) s[k]], k, k + 1 };
  } else
    k = initial_chars (tok, s, n, sym);
  if (k > 48) {
    merge_long (tok, sym, k, ids, spans);
    if (sym != stack_sym)
      g_free (sym);
    return;
  }
  /* Short words: scanning all pairs beats keeping a queue. */
  for (;;) {
    guint32 best = G_MAXUINT32, rank;
    guint at = 0;
    gint32 merged, best_id = -1;
    for (guint i = 0; i + 1 < k; i++)
      if (merges_find (&tok->merges, sym[i].id, sym[i + 1].id, &rank, &merged) && rank < best) {
        best = rank;
        best_id = merged;
        at = i;
      }
    if (best_id < 0)
      break;
    sym[at].id = best_id;
    sym[at].end = sym[at + 1].end;
    memmove (sym + at + 1, sym + at + 2, (k - at - 2) * sizeof (Sym));
    k--;
  }
  for (guint i = 0; i < k; i++)
    if (sym[i].id >= 0)
      emit (ids, spans, sym[i].id, sym[i].start, sym[i].end);
  if (sym != stack_sym)
    g_free (sym);
}

/* Greedy longest match first; a word with an unmatchable rest is one unk. */
static void
wordpiece_word (const Tok *tok, const char *s, gsize n, GArray *ids, GArray *spans)
{
  if ((guint) g_utf8_strlen (s, (gssize) n) > tok->wp_max_chars) {
    emit (ids, spans, tok->unk_id, 0, (guint32) n);
    return;
  }
  guint mark = ids->len, smark = spans ? spans->len : 0;
  gsize plen = strlen (tok->wp_prefix);
  g_autofree char *buf = g_malloc (n + plen + 1);
  for (gsize i = 0; i < n;) {
    gsize j = n;
    gint32 id = -1;
    while (j > i) {
      gsize off = i > 0 ? plen : 0;
      if (i > 0)
        memcpy (buf, tok->wp_prefix, plen);
      memcpy (buf + off, s + i, j - i);
      buf[off + j - i] = '\0';
      id = tok_lookup (tok, buf, -1);
      if (id >= 0)
        break;
      j = g_utf8_find_prev_char (s + i, s + j) ? (gsize) (g_utf8_find_prev_char (s + i, s + j) - s) : i;
    }
    if (id < 0) {
      g_array_set_size (ids, mark);
      if (spans)
        g_array_set_size (spans, smark);
      emit (ids, spans, tok->unk_id, 0, (guint32) n);
      return;
    }
    emit (ids, spans, id, (guint32) i, (guint32) j);
    i = j;
  }
}

/* Natural text repeats its words, so each thread remembers the tokens of the
 * short words it has seen, keyed by the tokenizer's serial and the word
 * (a serial is never reused, unlike a freed tokenizer's address). */
#define CACHE_MAX_WORD 48
#define CACHE_MAX_ENTRIES 65536

static void
cache_free (gpointer table)
{
  g_hash_table_unref (table);
}

static GPrivate word_cache = G_PRIVATE_INIT (cache_free);

/* Stores the ids appended from `mark` and the spans appended from `smark`. */
static void
cache_store (GHashTable *cache, const char *key, GArray *ids, guint mark, GArray *spans, guint smark)
{
  if (g_hash_table_size (cache) >= CACHE_MAX_ENTRIES)
    g_hash_table_remove_all (cache);
  guint n = ids->len - mark;
  guint32 *e = g_new (guint32, 1 + 3 * n);
  e[0] = n;
  for (guint i = 0; i < n; i++) {
    CriaTokenSpan sp = g_array_index (spans, CriaTokenSpan, smark + i);
    e[1 + 3 * i] = (guint32) g_array_index (ids, gint32, mark + i);
    e[2 + 3 * i] = sp.start;
    e[3 + 3 * i] = sp.end;
  }
  g_hash_table_insert (cache, g_strdup (key), e);
}

void
tok_model_word (const Tok *tok, const char *s, gsize n, GArray *ids, GArray *spans)
{
  if (n > CACHE_MAX_WORD || memchr (s, '\0', n)) {
    if (tok->model == MODEL_WORDPIECE)
      wordpiece_word (tok, s, n, ids, spans);
    else
      bpe_word (tok, s, n, ids, spans);
    return;
  }
  GHashTable *cache = g_private_get (&word_cache);
  if (!cache) {
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    g_private_set (&word_cache, cache);
  }
  char key[24 + CACHE_MAX_WORD];
  int head = g_snprintf (key, 24, "%" G_GUINT64_FORMAT ":", tok->serial);
  memcpy (key + head, s, n);
  key[head + n] = '\0';
  /* An entry: n, then n triples (id, start, end). */
  const guint32 *e = g_hash_table_lookup (cache, key);
  if (e) {
    for (guint i = 0; i < e[0]; i++)
      emit (ids, spans, (gint32) e[1 + 3 * i], e[2 + 3 * i], e[3 + 3 * i]);
    return;
  }
  /* Spans are always computed here so that the entry serves every caller. */
  g_autoptr (GArray) own = spans ? NULL : g_array_new (FALSE, FALSE, sizeof (CriaTokenSpan));
  GArray *sp = spans ? spans : own;
  guint mark = ids->len, smark = sp->len;
  if (tok->model == MODEL_WORDPIECE)
    wordpiece_word (tok, s, n, ids, sp);
  else
    bpe_word (tok, s, n, ids, sp);
  cache_store (cache, key, ids, mark, sp, smark);
}
