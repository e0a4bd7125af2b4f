/* fuzz-unpickle: libFuzzer target of the restricted unpickler (data.pkl).
 *   ./configure --enable-fuzzing CC=clang-14 && make && tests/fuzz/run-fuzz.sh 60 */
#include <string.h>

#include <cria/cria.h>

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  GError *error = NULL;
  GArray *entries = cria_torch_unpickle (data, size, "fuzz.bin", &error);
  if (entries) {
    for (guint i = 0; i < entries->len; i++) {
      const CriaTorchEntry *e = &g_array_index (entries, CriaTorchEntry, i);
      g_assert (e->name && e->storage_key && e->n_dims <= CRIA_WEIGHT_MAX_DIMS);
    }
    g_array_unref (entries);
  } else {
    g_assert (error && !strchr (error->message, '\n'));
    g_error_free (error);
  }
  return 0;
}
