/* cria-model-init.c: a new model directory with freshly initialized weights,
 * the starting point of pretraining (`cria model init`, then
 * `cria train --adapter full`).
 *
 * The initialization is the one transformers gives these architectures,
 * read from the roles in the provider's tensor list: every matrix (linear
 * layers, embeddings) normal with mean 0 and standard deviation
 * `initializer_range` (0.02 unless the config says otherwise) times the
 * tensor's init_scale (a provider scales residual projections that way),
 * biases 0, norm weights 1. The values come from cria's seeded generator, so
 * a seed fixes the weights on any machine. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include <cria/cria-error.h>
#include <cria/cria-model.h>
#include <cria/cria-text.h>

/* Standard normal by Box-Muller, from two uniforms of the stream. */
static double
normal (CriaRng *rng)
{
  double u = 1.0 - cria_rng_double (rng), v = cria_rng_double (rng);
  return sqrt (-2.0 * log (u)) * cos (2.0 * G_PI * v);
}

gboolean
cria_model_init_dir (CriaRegistry *registry, const char *config_path, const char *dir, guint64 seed, CriaDType dtype,
                     GError **error)
{
  g_return_val_if_fail (registry && config_path && dir, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (dtype != CRIA_DTYPE_F32 && dtype != CRIA_DTYPE_BF16) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "new models are written in f32 or bf16");
    return FALSE;
  }
  g_autoptr (CriaHfConfig) config = cria_hf_config_load (config_path, error);
  if (!config)
    return FALSE;
  const CriaProvider *provider = cria_model_configure (registry, config, error);
  if (!provider)
    return FALSE;
  const CriaModelVTable *vt = cria_model_provider_vtable (provider);
  double std = json_object_get_double_member_with_default (config->json, "initializer_range", 0.02);
  g_autoptr (GArray) specs = vt->tensors (config);
  /* Every weight is held until the directory is written: refuse a config
   * whose weights this machine cannot hold before allocating any. */
  double total = 0;
  for (guint i = 0; i < specs->len; i++) {
    const CriaHfTensorSpec *spec = &g_array_index (specs, CriaHfTensorSpec, i);
    if (!spec->optional)
      total += (double) spec->shape[0] * (double) (spec->n_dims == 2 ? spec->shape[1] : 1);
  }
  double bytes = total * (double) cria_dtype_bytes (dtype, 1),
         ram = (double) sysconf (_SC_PHYS_PAGES) * (double) sysconf (_SC_PAGESIZE);
  if (bytes > ram) {
    g_autofree char *need = g_format_size ((guint64) MIN (bytes, 1e18)), *have = g_format_size ((guint64) ram);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "the model of this config has %.0f parameters (%s in %s), more than this machine's %s of memory",
                 total, need, cria_dtype_name (dtype), have);
    return FALSE;
  }
  g_autofree CriaWeight *weights = g_new0 (CriaWeight, specs->len);
  g_autoptr (GPtrArray) buffers = g_ptr_array_new_with_free_func (g_free);
  guint n = 0;
  for (guint i = 0; i < specs->len; i++) {
    const CriaHfTensorSpec *spec = &g_array_index (specs, CriaHfTensorSpec, i);
    if (spec->optional)
      continue; /* a tied head is the embedding */
    gint64 numel = spec->shape[0] * (spec->n_dims == 2 ? spec->shape[1] : 1);
    g_autofree float *f = g_new (float, numel);
    /* One stream per tensor, keyed by its name: adding a tensor elsewhere
     * leaves the others unchanged. */
    CriaRng rng;
    cria_rng_init (&rng, seed ^ cria_hash64 (spec->name, strlen (spec->name), 0));
    double s = spec->role == CRIA_HF_TENSOR_LINEAR ? std * spec->init_scale : std;
    for (gint64 k = 0; k < numel; k++)
      f[k] = spec->role == CRIA_HF_TENSOR_NORM   ? 1.0f
             : spec->role == CRIA_HF_TENSOR_BIAS ? 0.0f
                                                 : (float) (s * normal (&rng));
    CriaWeight *w = &weights[n++];
    w->name = spec->name;
    w->dtype = dtype;
    w->n_dims = spec->n_dims;
    w->shape[0] = spec->shape[0];
    w->shape[1] = spec->shape[1];
    w->n_elements = numel;
    w->n_bytes = cria_dtype_bytes (dtype, (gsize) numel);
    void *buf = g_malloc (w->n_bytes);
    cria_convert_from_f32 (dtype, f, buf, (gsize) numel);
    g_ptr_array_add (buffers, buf);
    w->data = buf;
  }
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create the directory", dir);
    return FALSE;
  }
  return cria_hf_model_write (dir, config, weights, n, 0, error);
}
