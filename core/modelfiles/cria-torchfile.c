/* cria-torchfile.c: pytorch_model.bin (torch.save's zip format) read with
 * libarchive; the pickle goes through the restricted unpickler and each
 * tensor is copied out of its storage, contiguous, after bounds checks.
 *
 *   cria model info DIR_WITH_pytorch_model.bin
 */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-torchfile.h>

#include "../data/cria-archive-module.h"
#include "cria-modelfiles-private.h"

struct _CriaTorchFile {
  GArray *weights; /* CriaWeight; name and data owned */
};

void
cria_torch_file_free (CriaTorchFile *tf)
{
  if (!tf)
    return;
  for (guint i = 0; i < tf->weights->len; i++) {
    CriaWeight *w = &g_array_index (tf->weights, CriaWeight, i);
    g_free ((char *) w->name);
    g_free ((void *) w->data);
  }
  g_array_unref (tf->weights);
  g_free (tf);
}

guint
cria_torch_file_get_n_weights (CriaTorchFile *tf)
{
  g_return_val_if_fail (tf != NULL, 0);
  return tf->weights->len;
}

const CriaWeight *
cria_torch_file_get_weight (CriaTorchFile *tf, guint index)
{
  g_return_val_if_fail (tf != NULL, NULL);
  g_return_val_if_fail (index < tf->weights->len, NULL);
  return &g_array_index (tf->weights, CriaWeight, index);
}

/* Every member of the zip under its path without the leading "ARCHIVE/". */
static GHashTable *
read_members (const char *path, GError **error)
{
  g_autoptr (GHashTable)
      members = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  const CriaArchiveModule *ar = cria_archive_module ("reading pytorch_model.bin", error);
  if (!ar)
    return NULL;
  struct archive *a = ar->read_new ();
  ar->read_support_format_zip (a);
  ar->read_support_filter_none (a);
  gboolean ok = ar->read_open_filename (a, path, 1 << 16) == ARCHIVE_OK;
  struct archive_entry *entry;
  int r = ARCHIVE_OK;
  guint64 budget = cria_archive_budget (path);
  GError *member_error = NULL;
  while (ok && (r = ar->read_next_header (a, &entry)) == ARCHIVE_OK) {
    const char *name = ar->entry_pathname (entry);
    const char *slash = name ? strchr (name, '/') : NULL;
    if (!slash || ar->entry_filetype (entry) != AE_IFREG)
      continue;
    g_autofree char *where = g_strdup_printf ("%s: %s", path, name);
    /* tensor storages are stored, not compressed: a member bigger than the
     * whole archive's budget is a bomb, not weights */
    GBytes *bytes = cria_archive_read_member (a, where, budget, &budget, &member_error);
    if (!bytes) {
      ok = FALSE;
      break;
    }
    g_hash_table_insert (members, g_strdup (slash + 1), bytes);
  }
  if (member_error) {
    g_propagate_error (error, member_error);
    ar->read_free (a);
    return NULL;
  }
  if (!ok || r != ARCHIVE_EOF) {
    /* torch.save before 1.6 wrote a bare pickle, not a zip. */
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a readable torch zip archive: %s", path,
                 ar->error_string (a) ? ar->error_string (a) : "unknown error");
    ar->read_free (a);
    return NULL;
  }
  ar->read_free (a);
  return g_steal_pointer (&members);
}

/* Copies a strided view of a storage into a new contiguous buffer. */
static gboolean
copy_tensor (const CriaTorchEntry *e, GBytes *storage, const char *path, CriaWeight *w, GError **error)
{
  gsize elem = cria_dtype_bytes (e->dtype, 1);
  gsize have = g_bytes_get_size (storage);
  if ((guint64) e->storage_numel > have / elem) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "%s: tensor '%s': storage %s holds %" G_GSIZE_FORMAT " bytes, the pickle claims %" G_GINT64_FORMAT
                 " elements of %s",
                 path, e->name, e->storage_key, have, e->storage_numel, cria_dtype_name (e->dtype));
    return FALSE;
  }
  /* The last element reached must lie inside the storage; each step is
   * checked before it is added, so nothing overflows. */
  guint64 numel = (guint64) e->storage_numel, n = 1, last = (guint64) e->storage_offset;
  gboolean empty = FALSE;
  for (guint d = 0; d < e->n_dims; d++)
    empty = empty || e->shape[d] == 0;
  if (last > numel)
    goto out_of_bounds;
  for (guint d = 0; d < e->n_dims && !empty; d++) {
    guint64 dim = (guint64) e->shape[d], stride = (guint64) e->stride[d];
    if (n > (G_GUINT64_CONSTANT (1) << 40) / dim)
      goto out_of_bounds;
    n *= dim;
    if (dim > 1 && stride && dim - 1 > (numel - last) / stride)
      goto out_of_bounds;
    last += (dim - 1) * stride;
  }
  if (empty)
    n = 0;
  else if (last >= numel)
    goto out_of_bounds;
  w->name = g_strdup (e->name);
  w->dtype = e->dtype;
  w->n_dims = e->n_dims;
  memcpy (w->shape, e->shape, sizeof w->shape);
  w->n_elements = (gint64) n;
  w->n_bytes = n * elem;
  guint8 *dst = g_malloc (MAX (w->n_bytes, 1));
  w->data = dst;
  const guint8 *src = g_bytes_get_data (storage, NULL);
  /* Walk the index like an odometer; contiguous rows are copied whole. */
  gint64 idx[CRIA_WEIGHT_MAX_DIMS] = { 0 };
  guint nd = e->n_dims;
  gsize row = nd && e->stride[nd - 1] == 1 ? (gsize) e->shape[nd - 1] : 1;
  guint outer = row > 1 ? nd - 1 : nd;
  for (guint64 done = 0; done < n; done += row) {
    guint64 at = (guint64) e->storage_offset;
    for (guint d = 0; d < outer; d++)
      at += (guint64) idx[d] * (guint64) e->stride[d];
    memcpy (dst + done * elem, src + at * elem, row * elem);
    for (int d = (int) outer - 1; d >= 0; d--) {
      if (++idx[d] < e->shape[d])
        break;
      idx[d] = 0;
    }
  }
  return TRUE;

out_of_bounds:
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
               "%s: tensor '%s': offset, shape and strides reach past its storage %s (%" G_GINT64_FORMAT " elements)",
               path, e->name, e->storage_key, e->storage_numel);
  return FALSE;
}

static CriaTorchFile *torch_file_open (const char *path, GError **error);

CriaTorchFile *
cria_torch_file_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  CriaTorchFile *tf = torch_file_open (path, error);
  mf_one_line (error);
  return tf;
}

static CriaTorchFile *
torch_file_open (const char *path, GError **error)
{
  g_autoptr (GHashTable) members = read_members (path, error);
  if (!members)
    return NULL;
  GBytes *order = g_hash_table_lookup (members, "byteorder");
  if (order && (g_bytes_get_size (order) != 6 || memcmp (g_bytes_get_data (order, NULL), "little", 6) != 0)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: byteorder: only little-endian files are read", path);
    return NULL;
  }
  GBytes *pkl = g_hash_table_lookup (members, "data.pkl");
  if (!pkl) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: no data.pkl in the archive", path);
    return NULL;
  }
  gsize len;
  const guint8 *bytes = g_bytes_get_data (pkl, &len);
  g_autoptr (GArray) entries = cria_torch_unpickle (bytes, len, path, error);
  if (!entries)
    return NULL;
  g_autoptr (CriaTorchFile) tf = g_new0 (CriaTorchFile, 1);
  tf->weights = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  for (guint i = 0; i < entries->len; i++) {
    const CriaTorchEntry *e = &g_array_index (entries, CriaTorchEntry, i);
    g_autofree char *key = g_strconcat ("data/", e->storage_key, NULL);
    GBytes *storage = g_hash_table_lookup (members, key);
    if (!storage) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tensor '%s': storage %s is not in the archive", path,
                   e->name, key);
      return NULL;
    }
    CriaWeight w = { 0 };
    if (!copy_tensor (e, storage, path, &w, error))
      return NULL;
    g_array_append_val (tf->weights, w);
  }
  return g_steal_pointer (&tf);
}
