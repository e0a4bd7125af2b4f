/* fuzz-safetensors: libFuzzer target of the safetensors header parser.
 *   ./configure --enable-fuzzing CC=clang-14 && make && tests/fuzz/run-fuzz.sh 60 */
#include <string.h>

#include <cria/cria.h>

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  GError *error = NULL;
  CriaSafetensors *st = cria_safetensors_parse (data, size, "fuzz.safetensors", &error);
  if (st) {
    /* Touch every byte a view claims: ASan catches one that lies. */
    guint8 sum = 0;
    for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
      const CriaWeight *w = cria_safetensors_get_weight (st, i);
      for (gsize b = 0; b < w->n_bytes; b++)
        sum ^= ((const guint8 *) w->data)[b];
      g_assert (cria_safetensors_lookup (st, w->name) == w);
    }
    (void) sum;
    cria_safetensors_free (st);
  } else {
    g_assert (error && !strchr (error->message, '\n'));
    g_error_free (error);
  }
  return 0;
}
