/* bench-matmul: GFLOP/s of the cpu backend's matmul at transformer shapes.
 *
 *   bench/bench-matmul [--threads N] [--isa auto|avx512|avx2|generic] [--amx true|false]
 *                      [--layout nt|nn|tn] M,N,K ...
 *
 * Each shape is a linear layer, x [M,K] times a weight [N,K] transposed,
 * with the weight in f32, in bf16 and in NF4 (QLoRA's base weights), and the
 * last two again with bf16-dot=true (activations rounded to bf16, AMX or AVX512-BF16
 * dot products where present). --layout picks the operands of a linear
 * layer's backward pass instead: nn is dX = dY [M,K] times the weight [K,N]
 * as stored, tn is dW = dY [K,M] transposed times x [K,N]; both f32 only
 * (the other figures print as 0). Prints one JSON object per line; the
 * median of the timed repetitions is reported. bench/matmul.sh runs it beside
 * torch.matmul and prints the ratio. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <cria/cria.h>

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

/* The machine's peak: independent FMAs on registers only, per thread. */
typedef float v16 __attribute__ ((vector_size (64)));
#define PEAK_ITERS 20000000

__attribute__ ((target ("avx512f,fma"))) static gpointer
fma_loop (gpointer data)
{
  v16 m = { 0 }, x = { 0 };
  m += 0.999999f;
  x += 1e-7f;
  v16 a0 = m, a1 = m + 1, a2 = m + 2, a3 = m + 3, a4 = m + 4, a5 = m + 5;
  v16 a6 = m + 6, a7 = m + 7, a8 = m + 8, a9 = m + 9, a10 = m + 10, a11 = m + 11;
  for (int it = 0; it < PEAK_ITERS; it++) {
    a0 = a0 * m + x;
    a1 = a1 * m + x;
    a2 = a2 * m + x;
    a3 = a3 * m + x;
    a4 = a4 * m + x;
    a5 = a5 * m + x;
    a6 = a6 * m + x;
    a7 = a7 * m + x;
    a8 = a8 * m + x;
    a9 = a9 * m + x;
    a10 = a10 * m + x;
    a11 = a11 * m + x;
  }
  v16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  *(float *) data = s[0];
  return NULL;
}

static double
measure_peak (int threads)
{
  if (!__builtin_cpu_supports ("avx512f"))
    return 0;
  GThread **t = g_new (GThread *, threads);
  float *sink = g_new (float, threads);
  double t0 = now ();
  for (int i = 0; i < threads; i++)
    t[i] = g_thread_new ("peak", fma_loop, sink + i);
  for (int i = 0; i < threads; i++)
    g_thread_join (t[i]);
  double secs = now () - t0;
  g_free (t);
  g_free (sink);
  return (double) threads * PEAK_ITERS * 12 * 16 * 2 / secs / 1e9;
}

/* The best of five: other processes on the machine only ever slow it down. */
static double
best_peak (int threads)
{
  double best = 0;
  for (int i = 0; i < 5; i++)
    best = MAX (best, measure_peak (threads));
  return best;
}

/* Which operand is stored transposed: "nt" (a linear layer's forward
 * pass), "nn" or "tn" (its backward pass). */
static const char *layout = "nt";

static double
time_matmul (CriaBackend *be, gint64 M, gint64 N, gint64 K, CriaDType wtype)
{
  gboolean ta = layout[0] == 't', tb = layout[1] == 't';
  if (wtype != CRIA_DTYPE_F32 && !tb)
    return 0;
  gint64 xs[] = { ta ? K : M, ta ? M : K }, ws[] = { tb ? N : K, tb ? K : N };
  g_autoptr (CriaTensor) x = cria_tensor_new (CRIA_DTYPE_F32, 2, xs);
  g_autoptr (CriaTensor) w32 = cria_tensor_new (CRIA_DTYPE_F32, 2, ws);
  for (gint64 i = 0; i < M * K; i++)
    ((float *) x->data)[i] = (float) ((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (gint64 i = 0; i < N * K; i++)
    ((float *) w32->data)[i] = (float) ((i * 104729) % 1000) / 1000.0f - 0.5f;
  g_autoptr (CriaTensor) w = NULL;
  if (wtype == CRIA_DTYPE_NF4) {
    w = cria_nf4_quantize (w32, "w", NULL);
  } else {
    w = cria_tensor_new (wtype, 2, ws);
    cria_convert_from_f32 (wtype, w32->data, w->data, (gsize) (N * K));
  }
  g_autoptr (CriaGraph) g = cria_graph_new ();
  cria_matmul (g, cria_graph_param (g, "x", x, FALSE), cria_graph_param (g, "w", w, FALSE), ta, tb);
  g_autoptr (GError) error = NULL;
  if (!cria_graph_plan (g, be, NULL, &error))
    g_error ("%s", error->message);
  double flops = 2.0 * M * N * K;
  /* About a quarter of a second of repetitions, at least 5. */
  double t0 = now ();
  cria_graph_forward (g, NULL);
  double one = MAX (now () - t0, 1e-7);
  int reps = (int) CLAMP (0.25 / one, 5, 2000);
  double *times = g_new (double, reps);
  for (int r = 0; r < reps; r++) {
    t0 = now ();
    cria_graph_forward (g, NULL);
    times[r] = now () - t0;
  }
  qsort (times, (size_t) reps, sizeof (double), cmp_double);
  double med = times[reps / 2];
  g_free (times);
  return flops / med / 1e9;
}

int
main (int argc, char **argv)
{
  const char *threads = "0", *isa = "auto", *amx = "true";
  int first = 1;
  while (first + 1 < argc && argv[first][0] == '-') {
    if (g_str_equal (argv[first], "--threads"))
      threads = argv[first + 1];
    else if (g_str_equal (argv[first], "--isa"))
      isa = argv[first + 1];
    else if (g_str_equal (argv[first], "--amx"))
      amx = argv[first + 1];
    else if (g_str_equal (argv[first], "--layout"))
      layout = argv[first + 1];
    first += 2;
  }
  if (!g_str_equal (layout, "nt") && !g_str_equal (layout, "nn") && !g_str_equal (layout, "tn")) {
    fprintf (stderr, "bench-matmul: --layout %s is not nt, nn or tn\n", layout);
    return 2;
  }
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  const char *plugins = g_getenv ("CRIA_PLUGIN_PATH");
  cria_registry_add_path (reg, plugins ? plugins : "plugins/.libs");
  cria_registry_scan (reg);
  g_autoptr (GError) error = NULL;
  const CriaProvider *p = cria_registry_require (reg, CRIA_KIND_BACKEND, "cpu", &error);
  if (!p) {
    fprintf (stderr, "bench-matmul: %s\n", error->message);
    return 1;
  }
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  if (!cria_props_set (props, "threads", threads, &error) || !cria_props_set (props, "isa", isa, &error) ||
      !cria_props_set (props, "amx", amx, &error)) {
    fprintf (stderr, "bench-matmul: %s\n", error->message);
    return 1;
  }
  g_autoptr (CriaBackend) be = cria_backend_new (p, props, &error);
  if (!be) {
    fprintf (stderr, "bench-matmul: %s\n", error->message);
    return 1;
  }
  /* the same with bf16-dot: bf16 and NF4 weights times bf16-rounded activations */
  g_autoptr (CriaProps) dot_props = cria_props_copy (props);
  g_autoptr (CriaBackend) be_dot = NULL;
  if (!cria_props_set (dot_props, "bf16-dot", "true", &error) || !(be_dot = cria_backend_new (p, dot_props, &error))) {
    fprintf (stderr, "bench-matmul: %s\n", error->message);
    return 1;
  }
  g_autofree char *desc = cria_backend_describe (be);
  int n_threads = atoi (threads) > 0 ? atoi (threads) : (int) g_get_num_processors ();
  printf ("{\"backend\": \"%s\", \"fma_peak_gflops\": %.1f}\n", desc, best_peak (n_threads));
  for (int i = first; i < argc; i++) {
    gint64 M, N, K;
    if (sscanf (argv[i], "%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT, &M, &N, &K) != 3) {
      fprintf (stderr, "bench-matmul: %s is not M,N,K\n", argv[i]);
      return 2;
    }
    double f32 = time_matmul (be, M, N, K, CRIA_DTYPE_F32);
    double bf16 = time_matmul (be, M, N, K, CRIA_DTYPE_BF16);
    double nf4 = time_matmul (be, M, N, K, CRIA_DTYPE_NF4);
    double bf16_dot = time_matmul (be_dot, M, N, K, CRIA_DTYPE_BF16);
    double nf4_dot = time_matmul (be_dot, M, N, K, CRIA_DTYPE_NF4);
    printf ("{\"shape\": \"%s\", \"f32_gflops\": %.2f, \"bf16_gflops\": %.2f, \"nf4_gflops\": %.2f, "
            "\"bf16_dot_gflops\": %.2f, \"nf4_bf16_dot_gflops\": %.2f, \"bf16_dot_vs_f32\": %.2f}\n",
            argv[i], f32, bf16, nf4, bf16_dot, nf4_dot, f32 > 0 ? bf16_dot / f32 : 0);
    fflush (stdout);
  }
  return 0;
}
