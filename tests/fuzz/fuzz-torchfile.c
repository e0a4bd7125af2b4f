/* fuzz-torchfile: pytorch_model.bin, torch.save's zip of a pickle and its
 * storages, read with libarchive. It fails with a one-line error, or every
 * weight it gives has exactly the bytes its shape and dtype say. */
#define _GNU_SOURCE
#define FUZZ_WANT_FILE
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

#include "fuzz.h"

static int fd = -1;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char path[64];
  fuzz_file (&fd, path, sizeof path, data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTorchFile) tf = cria_torch_file_open (path, &error);
  if (!tf) {
    if (!error || !error->message[0] || strchr (error->message, '\n'))
      abort ();
    /* without cria's archive module nothing past the open would be tried */
    if (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_PLUGIN))
      g_error ("%s", error->message);
    return 0;
  }
  guint8 sum = 0;
  for (guint i = 0; i < cria_torch_file_get_n_weights (tf); i++) {
    const CriaWeight *w = cria_torch_file_get_weight (tf, i);
    gint64 n = 1;
    for (guint d = 0; d < w->n_dims; d++)
      n *= w->shape[d];
    if (n != w->n_elements || w->n_bytes != cria_dtype_bytes (w->dtype, (gsize) n))
      abort ();
    /* Touch every byte: ASan catches a weight that lies about its size. */
    for (gsize b = 0; b < w->n_bytes; b++)
      sum ^= ((const guint8 *) w->data)[b];
  }
  (void) sum;
  return 0;
}
