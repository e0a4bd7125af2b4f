/* cria-safetensors.h: reading and writing .safetensors files.
 *
 * A file is opened memory-mapped and its header is never trusted: the header
 * length, every dtype, shape and data offset is checked against the file before
 * anything is exposed. Tensors come out as CriaWeight views into the mapping,
 * which a tensor of the compute engine can borrow without copying. */
#pragma once

#include <glib.h>
#include <cria/cria-dtype.h>

G_BEGIN_DECLS

#define CRIA_WEIGHT_MAX_DIMS 8

/* A weight as stored in a model file. `data` points into memory owned by the
 * file it came from and stays valid until that file is freed; it is only
 * aligned to the element size when the file was written aligned (cria and
 * Hugging Face pad the header to 8 bytes, so it is for their files). */
typedef struct {
  const char *name;
  CriaDType dtype;
  guint n_dims;
  gint64 shape[CRIA_WEIGHT_MAX_DIMS];
  gint64 n_elements;
  const void *data;
  gsize n_bytes;
} CriaWeight;

/* "[768, 2304]" (newly allocated). */
char *cria_weight_shape_string (const CriaWeight *weight);

typedef struct _CriaSafetensors CriaSafetensors;

/* Maps `path` read-only and validates its header. */
CriaSafetensors *cria_safetensors_open (const char *path, GError **error);
/* Validates a file already in memory; `data` is borrowed and must outlive the
 * result. `file` names it in errors. */
CriaSafetensors *cria_safetensors_parse (const void *data, gsize len, const char *file, GError **error);
void cria_safetensors_free (CriaSafetensors *st);

const char *cria_safetensors_get_path (CriaSafetensors *st);
/* Tensors in the order of their data offsets. */
guint cria_safetensors_get_n_weights (CriaSafetensors *st);
const CriaWeight *cria_safetensors_get_weight (CriaSafetensors *st, guint index);
/* NULL when absent. */
const CriaWeight *cria_safetensors_lookup (CriaSafetensors *st, const char *name);
/* A value of the string-to-string __metadata__ map, or NULL. */
const char *cria_safetensors_get_metadata (CriaSafetensors *st, const char *key);

/* The safetensors name of a dtype ("F32", "BF16", ...), or NULL for one the
 * format cannot hold (nf4). */
const char *cria_safetensors_dtype_name (CriaDType dtype);

/* Writing: weights are added by reference (their data must live until
 * write() returns). The format allows no gaps between tensors, so they are
 * written widest element first (stable otherwise) and the header is padded to
 * 8 bytes: every tensor then starts aligned to its element size. */
typedef struct _CriaSafetensorsWriter CriaSafetensorsWriter;

CriaSafetensorsWriter *cria_safetensors_writer_new (void);
void cria_safetensors_writer_free (CriaSafetensorsWriter *writer);
void cria_safetensors_writer_set_metadata (CriaSafetensorsWriter *writer, const char *key, const char *value);
/* Fails on a duplicate name, an nf4 weight or a size that disagrees with the
 * shape. The name is copied; the data is not. */
gboolean cria_safetensors_writer_add (CriaSafetensorsWriter *writer, const CriaWeight *weight, GError **error);
/* Bytes the file will take. */
guint64 cria_safetensors_writer_get_size (CriaSafetensorsWriter *writer);
/* Writes atomically through cria_output. */
gboolean cria_safetensors_writer_write (CriaSafetensorsWriter *writer, const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaSafetensors, cria_safetensors_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaSafetensorsWriter, cria_safetensors_writer_free)

G_END_DECLS
