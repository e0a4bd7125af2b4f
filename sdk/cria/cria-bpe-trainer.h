/* cria-bpe-trainer.h: training a byte-level BPE tokenizer (GPT-2 style) on
 * text and writing it as a Hugging Face tokenizer.json. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CriaBpeTrainer CriaBpeTrainer;

CriaBpeTrainer *cria_bpe_trainer_new (void);
void cria_bpe_trainer_free (CriaBpeTrainer *trainer);
/* Counts the words of a text (split with GPT-2's pattern). `len` < 0: NUL-terminated;
 * invalid UTF-8 is replaced by U+FFFD. */
void cria_bpe_trainer_feed (CriaBpeTrainer *trainer, const char *text, gssize len);
/* Learns merges until the vocabulary (256 bytes, the merges and the special
 * tokens) reaches vocab_size or no pair occurs min_frequency times; ties go to
 * the pair of smaller ids. Special tokens take the first ids, in order.
 * Writes tokenizer.json to `path` atomically. */
gboolean cria_bpe_trainer_write (CriaBpeTrainer *trainer, guint vocab_size, guint min_frequency,
                                 const char *const *special_tokens, const char *path, GError **error);
/* The number of merges the last write learned. */
guint cria_bpe_trainer_get_n_merges (CriaBpeTrainer *trainer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaBpeTrainer, cria_bpe_trainer_free)

G_END_DECLS
