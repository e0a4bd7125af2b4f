/* cria-random-model: writes a Hugging Face model directory with the tensors
 * a config.json implies, filled from a seed, so that checkpoints too large to
 * commit (the real Qwen2.5-0.5B and GPT-2 124M shapes) are made at test or
 * bench time. tests/reference/random_weights.py computes the same values in
 * numpy, bit for bit, for the PyTorch reference.
 *
 *   cria-random-model tests/models/configs/qwen2.5-0.5b-2l.json OUT_DIR [SEED] [f32|bf16] [SHARD_MB]
 *
 * Value i of tensor NAME: x = splitmix64 (seed ^ fnv1a64 (NAME)) + i, then
 * u = (top 24 bits of splitmix64 (x)) / 2^23 - 1 in [-1, 1), and
 *   2-D: u * sqrt (3 / shape[1]);  norm/ln_ weights: 1 + u / 10;  other 1-D: u / 10.
 *
 * The tensor list is the model provider's: the plugins come from
 * CRIA_TEST_PLUGINS (make check) or the usual search path (CRIA_PLUGIN_PATH). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria.h>

static guint64
splitmix64 (guint64 x)
{
  x += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static guint64
fnv1a64 (const char *s)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325);
  for (; *s; s++)
    h = (h ^ (guint8) *s) * G_GUINT64_CONSTANT (0x100000001b3);
  return h;
}

/* Round to nearest even, as torch's .to(bfloat16) does (no NaNs arise here). */
static guint16
f32_to_bf16 (float f)
{
  guint32 u;
  memcpy (&u, &f, 4);
  return (guint16) ((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static gboolean
is_norm (const char *name, guint n_dims)
{
  return n_dims == 1 && g_str_has_suffix (name, ".weight") && (strstr (name, "norm") || strstr (name, ".ln_"));
}

static void *
fill (const CriaHfTensorSpec *s, guint64 seed, CriaDType dtype, gsize *n_bytes, gint64 *n_out)
{
  gint64 n = s->n_dims == 2 ? s->shape[0] * s->shape[1] : s->shape[0];
  double scale = s->n_dims == 2 ? sqrt (3.0 / (double) s->shape[1]) : 0.1;
  gboolean norm = is_norm (s->name, s->n_dims);
  guint64 base = splitmix64 (seed ^ fnv1a64 (s->name));
  *n_bytes = cria_dtype_bytes (dtype, (gsize) n);
  *n_out = n;
  void *data = g_malloc (MAX (*n_bytes, 1));
  for (gint64 i = 0; i < n; i++) {
    double u = (double) (splitmix64 (base + (guint64) i) >> 40) / 8388608.0 - 1.0;
    float v = (float) (norm ? 1.0 + u * scale : u * scale);
    if (dtype == CRIA_DTYPE_F32)
      ((float *) data)[i] = v;
    else
      ((guint16 *) data)[i] = f32_to_bf16 (v);
  }
  return data;
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: cria-random-model CONFIG.json OUT_DIR [SEED] [f32|bf16] [SHARD_MB]\n");
    return 2;
  }
  guint64 seed = argc > 3 ? g_ascii_strtoull (argv[3], NULL, 10) : 0;
  CriaDType dtype = CRIA_DTYPE_F32;
  if (argc > 4 && (!cria_dtype_from_name (argv[4], &dtype) || dtype > CRIA_DTYPE_BF16)) {
    fprintf (stderr, "cria-random-model: dtype is f32 or bf16\n");
    return 2;
  }
  guint64 shard = argc > 5 ? g_ascii_strtoull (argv[5], NULL, 10) << 20 : 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) registry = cria_registry_new ();
  if (g_getenv ("CRIA_TEST_PLUGINS"))
    cria_registry_add_path (registry, g_getenv ("CRIA_TEST_PLUGINS"));
  cria_registry_add_default_paths (registry);
  cria_registry_scan (registry);
  g_autoptr (CriaHfConfig) config = cria_hf_config_load (argv[1], &error);
  const CriaProvider *provider = config ? cria_model_configure (registry, config, &error) : NULL;
  if (!provider) {
    fprintf (stderr, "cria-random-model: %s\n", error->message);
    return 1;
  }
  static const char *const torch_names[] = { "float32", "bfloat16" };
  json_object_set_string_member (config->json, "torch_dtype", torch_names[dtype]);
  g_autoptr (GArray) specs = cria_model_provider_vtable (provider)->tensors (config);
  g_autoptr (GArray) weights = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  for (guint i = 0; i < specs->len; i++) {
    const CriaHfTensorSpec *s = &g_array_index (specs, CriaHfTensorSpec, i);
    if (s->optional)
      continue; /* the tied lm_head */
    CriaWeight w = { .name = s->name, .dtype = dtype, .n_dims = s->n_dims, .shape = { s->shape[0], s->shape[1] } };
    w.data = fill (s, seed, dtype, &w.n_bytes, &w.n_elements);
    g_array_append_val (weights, w);
  }
  gboolean ok = cria_hf_model_write (argv[2], config, (CriaWeight *) weights->data, weights->len, shard, &error);
  for (guint i = 0; i < weights->len; i++)
    g_free ((void *) g_array_index (weights, CriaWeight, i).data);
  if (!ok) {
    fprintf (stderr, "cria-random-model: %s\n", error->message);
    return 1;
  }
  return 0;
}
