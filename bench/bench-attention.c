/* bench-attention: the cpu backend's blocked attention kernels against its
 * previous scalar ones (attention=rows), interleaved in one process so that
 * a busy machine slows both alike.
 *
 *   make bench/bench-attention && bench/bench-attention [--threads N] [--reps N]
 *
 * Shapes are those of bench/train (GPT-2 124M 4x128, Qwen2.5-0.5B 1x256) and
 * a decoding step over a 1024-token KV cache. For each, forward alone and
 * forward + backward; prints one JSON object per line with the median
 * milliseconds of each kernel and the ratio rows / blocked. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cria/cria.h>

typedef struct {
  const char *name;
  gint64 B, Tq, Tk, Hq, Hkv, D;
  gboolean backward;
} Shape;

static double
now (void)
{
  return (double) g_get_monotonic_time () / 1e6;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static CriaTensor *
random_tensor (GRand *rand, int n_dims, const gint64 *shape)
{
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_F32, n_dims, shape);
  float *d = t->data;
  for (gint64 i = 0; i < cria_tensor_numel (t); i++)
    d[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
  return t;
}

/* A planned graph of one attention op (and its backward, through a sum). */
static CriaGraph *
build (const Shape *s, CriaBackend *be, GError **error)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  gint64 qs[] = { s->B, s->Tq, s->Hq, s->D }, ks[] = { s->B, s->Tk, s->Hkv, s->D };
  gint64 n = s->B * s->Tq * s->Hq * s->D, flat[] = { 1, n }, rs[] = { n, 1 };
  CriaGraph *g = cria_graph_new ();
  g_autoptr (CriaTensor) tq = random_tensor (rand, 4, qs), tk = random_tensor (rand, 4, ks);
  g_autoptr (CriaTensor) tv = random_tensor (rand, 4, ks), tr = random_tensor (rand, 2, rs);
  CriaNode *q = cria_graph_param (g, "q", tq, s->backward), *k = cria_graph_param (g, "k", tk, s->backward);
  CriaNode *v = cria_graph_param (g, "v", tv, s->backward);
  CriaNode *out = cria_attention (g, q, k, v, NULL, 1.0f / sqrtf ((float) s->D));
  if (s->backward) {
    CriaNode *loss = cria_matmul (g, cria_reshape (g, out, 2, flat), cria_graph_param (g, "R", tr, FALSE), FALSE,
                                  FALSE);
    if (!cria_graph_backward (g, loss, error)) {
      cria_graph_free (g);
      return NULL;
    }
  }
  if (!cria_graph_plan (g, be, NULL, error)) {
    cria_graph_free (g);
    return NULL;
  }
  return g;
}

static gboolean
step (CriaGraph *g, gboolean backward, GError **error)
{
  return cria_graph_forward (g, error) && (!backward || cria_graph_run_backward (g, error));
}

int
main (int argc, char **argv)
{
  int threads = 0, reps = 15;
  GOptionEntry entries[] = {
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "threads (default: every core)", "N" },
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "timed repetitions of each kernel (default 15)", "N" },
    { NULL },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- blocked against row attention kernels");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-attention: %s\n", error->message);
    return 2;
  }
  reps = MAX (reps, 1);
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  const char *plugins = g_getenv ("CRIA_PLUGIN_PATH");
  cria_registry_add_path (reg, plugins ? plugins : "plugins/.libs");
  cria_registry_scan (reg);
  const CriaProvider *p = cria_registry_require (reg, CRIA_KIND_BACKEND, "cpu", &error);
  if (!p) {
    fprintf (stderr, "bench-attention: %s\n", error->message);
    return 1;
  }
  CriaBackend *be[2];
  const char *kinds[2] = { "rows", "blocked" };
  g_autofree char *nthreads = g_strdup_printf ("%d", threads);
  for (int i = 0; i < 2; i++) {
    g_autoptr (CriaProps) props = cria_provider_new_props (p);
    if (!cria_props_set (props, "threads", nthreads, &error) ||
        !cria_props_set (props, "attention", kinds[i], &error) || !(be[i] = cria_backend_new (p, props, &error))) {
      fprintf (stderr, "bench-attention: %s\n", error->message);
      return 1;
    }
  }
  static const Shape shapes[] = {
    { "gpt2 4x128", 4, 128, 128, 12, 12, 64, FALSE },
    { "gpt2 4x128", 4, 128, 128, 12, 12, 64, TRUE },
    { "qwen2.5-0.5b 1x256", 1, 256, 256, 14, 2, 64, FALSE },
    { "qwen2.5-0.5b 1x256", 1, 256, 256, 14, 2, 64, TRUE },
    { "qwen2.5-0.5b decode at 1024", 1, 1, 1024, 14, 2, 64, FALSE },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    CriaGraph *g[2];
    for (int i = 0; i < 2; i++)
      if (!(g[i] = build (&shapes[s], be[i], &error)) || !step (g[i], shapes[s].backward, &error)) {
        fprintf (stderr, "bench-attention: %s\n", error->message);
        return 1;
      }
    g_autofree double *ms = g_new (double, 2 * reps);
    for (int r = 0; r < reps; r++)
      for (int i = 0; i < 2; i++) { /* interleaved: load changes hit both */
        double t0 = now ();
        if (!step (g[i], shapes[s].backward, &error)) {
          fprintf (stderr, "bench-attention: %s\n", error->message);
          return 1;
        }
        ms[i * reps + r] = (now () - t0) * 1e3;
      }
    for (int i = 0; i < 2; i++)
      qsort (ms + i * reps, (gsize) reps, sizeof (double), cmp_double);
    double rows = ms[reps / 2], blocked = ms[reps + reps / 2];
    printf ("{\"shape\": \"%s\", \"pass\": \"%s\", \"rows_ms\": %.3f, \"blocked_ms\": %.3f, \"speedup\": %.2f}\n",
            shapes[s].name, shapes[s].backward ? "forward+backward" : "forward", rows, blocked, rows / blocked);
    fflush (stdout);
    for (int i = 0; i < 2; i++)
      cria_graph_free (g[i]);
  }
  for (int i = 0; i < 2; i++)
    cria_backend_free (be[i]);
  return 0;
}
