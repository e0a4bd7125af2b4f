/* cria-torchfile.h: pytorch_model.bin, read without running any of it.
 *
 * torch.save writes a zip holding ARCHIVE/data.pkl (a pickle of the state
 * dict) and ARCHIVE/data/KEY (one raw storage per key). The pickle is read by
 * a restricted unpickler that knows only the opcodes and globals a state dict
 * of tensors needs, as torch.load(weights_only=True) does, and refuses
 * anything else with an error naming the opcode or global. */
#pragma once

#include <glib.h>
#include <cria/cria-safetensors.h>

G_BEGIN_DECLS

/* One tensor of the pickle, before its storage is read. */
typedef struct {
  char *name;
  CriaDType dtype;
  char *storage_key;     /* the file ARCHIVE/data/KEY */
  gint64 storage_numel;  /* elements of the storage, as the pickle claims */
  gint64 storage_offset; /* in elements */
  guint n_dims;
  gint64 shape[CRIA_WEIGHT_MAX_DIMS];
  gint64 stride[CRIA_WEIGHT_MAX_DIMS];
} CriaTorchEntry;

/* Runs the restricted unpickler over data.pkl; returns CriaTorchEntry in the
 * order of the state dict. `file` names the input in errors. */
GArray *cria_torch_unpickle (const guint8 *pickle, gsize len, const char *file, GError **error);

typedef struct _CriaTorchFile CriaTorchFile;

/* Reads the whole archive (storages are copied into memory and made
 * contiguous); every storage key, offset, stride and size is checked. */
CriaTorchFile *cria_torch_file_open (const char *path, GError **error);
void cria_torch_file_free (CriaTorchFile *file);
guint cria_torch_file_get_n_weights (CriaTorchFile *file);
const CriaWeight *cria_torch_file_get_weight (CriaTorchFile *file, guint index);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaTorchFile, cria_torch_file_free)

G_END_DECLS
