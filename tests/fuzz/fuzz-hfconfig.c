/* fuzz-hfconfig: libFuzzer target of config.json parsing and of the tensor
 * list a parsed config implies.
 *   ./configure --enable-fuzzing CC=clang-14 && make && tests/fuzz/run-fuzz.sh 60 */
#include <string.h>

#include <cria/cria.h>

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  GError *error = NULL;
  CriaHfConfig *c = cria_hf_config_parse ((const char *) data, (gssize) size, "config.json", &error);
  if (c) {
    /* Sizes are bounded only by int64: list the tensors of small configs. */
    if (c->n_layers < 64) {
      GArray *specs = cria_hf_config_expected_tensors (c);
      g_array_unref (specs);
    }
    cria_hf_config_free (c);
  } else {
    g_assert (error);
    g_error_free (error);
  }
  return 0;
}
