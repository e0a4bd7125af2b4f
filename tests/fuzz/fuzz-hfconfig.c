/* fuzz-hfconfig: libFuzzer target of config.json parsing, of each model
 * provider's reading of it and of the tensor list a parsed config implies.
 *   ./configure --enable-fuzzing CC=clang-14 && make && tests/fuzz/run-fuzz.sh 60
 * (the model plugins come from CRIA_TEST_PLUGINS, as make check sets it, or CRIA_PLUGIN_PATH) */
#include <string.h>

#include <cria/cria.h>

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

static CriaRegistry *registry;

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  if (!registry) {
    registry = cria_registry_new ();
    if (g_getenv ("CRIA_TEST_PLUGINS"))
      cria_registry_add_path (registry, g_getenv ("CRIA_TEST_PLUGINS"));
    cria_registry_add_default_paths (registry);
    cria_registry_scan (registry);
  }
  GError *error = NULL;
  CriaHfConfig *c = cria_hf_config_parse ((const char *) data, (gssize) size, "config.json", &error);
  const CriaProvider *p = c ? cria_model_configure (registry, c, &error) : NULL;
  if (p) {
    /* Sizes are bounded only by int64: list the tensors of small configs. */
    if (c->n_layers < 64) {
      GArray *specs = cria_model_provider_vtable (p)->tensors (c);
      g_array_unref (specs);
    }
  } else {
    g_assert (error);
    g_error_free (error);
  }
  cria_hf_config_free (c);
  return 0;
}
