/* cria-gguf.h: GGUF files, the format llama.cpp and Ollama run.
 *
 * A GGUF file (version 3) is a header, typed key-value metadata, a table of
 * tensor descriptions and the tensors' data, each aligned to 32 bytes. A
 * tensor's dimensions are listed innermost first (ggml's ne): a linear
 * weight of shape [out, in] in cria's tables is ne = {in, out}, with the same
 * bytes. q8_0 and q4_0 blocks are ggml's reference quantizer's, bit for bit.
 *
 * cria_model_export_gguf writes a whole model with its tokenizer, and
 * cria_model_export_gguf_lora a LoRA adapter, as llama.cpp's converters
 * (convert_hf_to_gguf.py, convert_lora_to_gguf.py) lay them out; the model
 * provider of the architecture names the tensors and writes its
 * hyperparameters (CriaModelVTable's gguf members). */
#pragma once

#include <glib.h>
#include <cria/cria-registry.h>
#include <cria/cria-tensor.h>

G_BEGIN_DECLS

/* ggml's type numbers for the types cria writes. */
typedef enum {
  CRIA_GGUF_F32 = 0,
  CRIA_GGUF_F16 = 1,
  CRIA_GGUF_Q4_0 = 2,
  CRIA_GGUF_Q8_0 = 8,
  CRIA_GGUF_BF16 = 30,
} CriaGgufType;

/* "f32", "f16", "bf16", "q8_0", "q4_0". */
gboolean cria_gguf_type_from_name (const char *name, CriaGgufType *type);
const char *cria_gguf_type_name (CriaGgufType type);
/* Bytes of a row of `n` values; 0 when n is not a whole number of blocks. */
gsize cria_gguf_row_size (CriaGgufType type, gint64 n);
/* Writes one row of `n` values (a whole number of blocks) as `type`:
 * cria_gguf_row_size (type, n) bytes. */
void cria_gguf_quantize_row (CriaGgufType type, const float *x, gint64 n, guint8 *out);

typedef struct _CriaGgufWriter CriaGgufWriter;

CriaGgufWriter *cria_gguf_writer_new (void);
void cria_gguf_writer_free (CriaGgufWriter *writer);

/* Metadata, in the order added (a key added twice keeps its first place
 * and takes the new value). */
void cria_gguf_set_u32 (CriaGgufWriter *writer, const char *key, guint32 value);
void cria_gguf_set_i32 (CriaGgufWriter *writer, const char *key, gint32 value);
void cria_gguf_set_f32 (CriaGgufWriter *writer, const char *key, float value);
void cria_gguf_set_bool (CriaGgufWriter *writer, const char *key, gboolean value);
void cria_gguf_set_string (CriaGgufWriter *writer, const char *key, const char *value);
void cria_gguf_set_string_array (CriaGgufWriter *writer, const char *key, const char *const *values, gsize n);
void cria_gguf_set_f32_array (CriaGgufWriter *writer, const char *key, const float *values, gsize n);
void cria_gguf_set_i32_array (CriaGgufWriter *writer, const char *key, const gint32 *values, gsize n);
/* The string value of `key`, or NULL. */
const char *cria_gguf_get_string (CriaGgufWriter *writer, const char *key);

/* Adds tensor `name` holding `tensor`'s values (any float type, [rows,
 * cols] or a vector; a reference is kept and converted when the file is
 * written) as `type`. Fails when the innermost dimension is not a whole
 * number of `type`'s blocks, or the name is taken. */
gboolean cria_gguf_add_tensor (CriaGgufWriter *writer, const char *name, CriaGgufType type, CriaTensor *tensor,
                               GError **error);
guint cria_gguf_get_n_tensors (CriaGgufWriter *writer);

/* Writes the file atomically (cria-output.h). */
gboolean cria_gguf_write (CriaGgufWriter *writer, const char *path, GError **error);

/* ---- Export ---- */
typedef struct _CriaModel CriaModel;

/* Writes `model` (its weights as the table holds them: fold an adapter in
 * first with cria_adapter_merge) with the vocabulary of `tokenizer` (a
 * tokenizer.json or a directory holding one; NULL: the model's directory),
 * matrices as `type` (those whose rows are not whole blocks as f16) and
 * vectors as f32. */
gboolean cria_model_export_gguf (CriaRegistry *registry, CriaModel *model, const char *tokenizer, CriaGgufType type,
                                 const char *path, GError **error);
/* Writes the LoRA adapter of `adapter_dir` (PEFT's format) as llama.cpp's
 * --lora loads it onto the GGUF of `model`: A and B in f32 under the base
 * tensor's name + ".lora_a"/".lora_b", B's rows permuted where the base's
 * are, and adapter.lora.alpha such that alpha / r is PEFT's scale. */
gboolean cria_model_export_gguf_lora (CriaRegistry *registry, CriaModel *model, const char *adapter_dir,
                                      const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaGgufWriter, cria_gguf_writer_free)

G_END_DECLS
