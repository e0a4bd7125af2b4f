/* bench-lm-step: the time of one decoding step of B sequences at once
 * (cria_lm_feed_batch) against B = 1, and of feeding a prompt, on a model
 * directory, interleaved so that a busy machine slows both arms alike.
 *
 *   bench-lm-step [--threads N] [--bf16-dot] MODEL_DIR [B] [PROMPT] [PAST] [ROUNDS]
 *
 * Prints per arm the milliseconds of a step (median), and the step-time
 * ratio that bounds what continuous batching can gain: B x t(1) / t(B). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <cria/cria.h>

/* CPU seconds of the process: steadier than wall time on a shared machine
 * (at one thread; with more, the pool's waiting counts too). */
static double
cpu_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  const char *threads = "0";
  gboolean bf16_dot = FALSE;
  int first = 1;
  while (first < argc && argv[first][0] == '-') {
    if (g_str_equal (argv[first], "--threads") && first + 1 < argc)
      threads = argv[++first];
    else if (g_str_equal (argv[first], "--bf16-dot"))
      bf16_dot = TRUE;
    first++;
  }
  if (first >= argc) {
    fprintf (stderr, "usage: bench-lm-step [--threads N] [--bf16-dot] MODEL_DIR [B] [PROMPT] [PAST] [ROUNDS]\n");
    return 2;
  }
  const char *dir = argv[first];
  int B = first + 1 < argc ? atoi (argv[first + 1]) : 16;
  int prompt = first + 2 < argc ? atoi (argv[first + 2]) : 36;
  int past = first + 3 < argc ? atoi (argv[first + 3]) : 64;
  int rounds = first + 4 < argc ? atoi (argv[first + 4]) : 5;
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  const char *plugins = g_getenv ("CRIA_PLUGIN_PATH");
  cria_registry_add_path (reg, plugins ? plugins : "plugins/.libs");
  cria_registry_scan (reg);
  g_autoptr (GError) error = NULL;
  const CriaProvider *p = cria_registry_require (reg, CRIA_KIND_BACKEND, "cpu", &error);
  g_autoptr (CriaProps) props = p ? cria_provider_new_props (p) : NULL;
  g_autoptr (CriaBackend) be = NULL;
  g_autoptr (CriaModel) model = NULL;
  if (!p || !cria_props_set (props, "threads", threads, &error) ||
      !cria_props_set (props, "bf16-dot", bf16_dot ? "true" : "false", &error) ||
      !(be = cria_backend_new (p, props, &error)) ||
      !(model = cria_model_open (reg, dir, CRIA_MODEL_DTYPE_AUTO, &error))) {
    fprintf (stderr, "bench-lm-step: %s\n", error->message);
    return 1;
  }
  g_autoptr (CriaLm) lm = cria_lm_new (model, be);
  gint64 vocab = cria_model_get_config (model)->vocab_size;
  CriaLmCache **caches = g_new (CriaLmCache *, B);
  g_autofree gint32 *ids = g_new (gint32, MAX (B, MAX (prompt, past)));
  for (int i = 0; i < MAX (B, MAX (prompt, past)); i++)
    ids[i] = (gint32) ((i * 7919 + 13) % vocab);
  for (int b = 0; b < B; b++) {
    caches[b] = cria_lm_cache_new (lm);
    if (!cria_lm_feed (lm, caches[b], ids, past, NULL, &error)) {
      fprintf (stderr, "bench-lm-step: %s\n", error->message);
      return 1;
    }
  }
  g_autofree float *logits = g_new (float, B *vocab);
  g_autofree double *t1 = g_new (double, rounds), *tb = g_new (double, rounds), *tp = g_new (double, rounds);
  g_autofree double *c1 = g_new (double, rounds), *cb = g_new (double, rounds), *cp = g_new (double, rounds);
  g_autoptr (GTimer) timer = g_timer_new ();
  for (int r = 0; r < rounds; r++) {
    for (int arm = 0; arm < 3; arm++) {
      g_timer_start (timer);
      double c0 = cpu_seconds ();
      gboolean ok;
      if (arm == 0)
        ok = cria_lm_feed_batch (lm, caches, ids, 1, logits, &error);
      else if (arm == 1)
        ok = cria_lm_feed_batch (lm, caches, ids, (gsize) B, logits, &error);
      else {
        g_autoptr (CriaLmCache) c = cria_lm_cache_new (lm);
        ok = cria_lm_feed (lm, c, ids, prompt, logits, &error);
      }
      double s = g_timer_elapsed (timer, NULL), cs = cpu_seconds () - c0;
      if (!ok) {
        fprintf (stderr, "bench-lm-step: %s\n", error->message);
        return 1;
      }
      (arm == 0 ? t1 : arm == 1 ? tb : tp)[r] = s;
      (arm == 0 ? c1 : arm == 1 ? cb : cp)[r] = cs;
    }
    for (int b = 0; b < B; b++) /* keep the pasts where they were */
      cria_lm_cache_truncate (caches[b], past);
  }
  qsort (t1, rounds, sizeof *t1, cmp_double);
  qsort (tb, rounds, sizeof *tb, cmp_double);
  qsort (tp, rounds, sizeof *tp, cmp_double);
  qsort (c1, rounds, sizeof *c1, cmp_double);
  qsort (cb, rounds, sizeof *cb, cmp_double);
  qsort (cp, rounds, sizeof *cp, cmp_double);
  double m1 = t1[rounds / 2], mb = tb[rounds / 2], mp = tp[rounds / 2];
  printf ("step B=1: %.1f ms; step B=%d: %.1f ms; prompt of %d: %.1f ms; B x t(1) / t(B) = %.2fx\n", 1e3 * m1, B,
          1e3 * mb, prompt, 1e3 * mp, B * m1 / mb);
  m1 = c1[rounds / 2], mb = cb[rounds / 2], mp = cp[rounds / 2];
  printf ("cpu time: step B=1: %.1f ms; step B=%d: %.1f ms; prompt of %d: %.1f ms; B x t(1) / t(B) = %.2fx\n", 1e3 * m1,
          B, 1e3 * mb, prompt, 1e3 * mp, B * m1 / mb);
  for (int b = 0; b < B; b++)
    cria_lm_cache_free (caches[b]);
  g_free (caches);
  return 0;
}
