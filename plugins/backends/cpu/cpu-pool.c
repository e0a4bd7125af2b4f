/* cpu-pool.c: a fork-join thread pool. Kernels split their work into chunks
 * that the threads take from a shared counter, so uneven chunks balance.
 * Between jobs the workers (and the caller, waiting for them) may spin for a
 * few microseconds before they sleep (the backend's spin-us, off by
 * default): a graph's next op usually comes that soon, and waking a sleeping
 * thread can cost more than a small op takes, but spinning steals time from
 * other processes where the cores are oversubscribed. */
#include "config.h"

#include "cpu.h"

struct _CpuPool {
  int n_threads;
  GThread **threads;
  GMutex lock;
  GCond wake, done;
  guint64 generation;
  int busy; /* atomic reads while spinning; written under the lock */
  /* who sleeps on wake and done, under the lock: GLib's signal and
   * broadcast make a futex call even where none waits, two a job */
  int sleepers;
  gboolean caller_sleeps;
  gboolean quit;
  gint64 spin_us;
  /* the current job */
  CpuTaskFunc fn;
  gpointer ctx;
  gint64 n, grain;
  gint64 next; /* atomic: the next chunk's first item */
};

typedef struct {
  CpuPool *pool;
  int index;
} Worker;

/* One turn of a spin-wait; FALSE once the pool's spin time has passed. */
static inline gboolean
spin_more (const CpuPool *p, guint *turn, gint64 *until)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
  if (++*turn % 256 != 0)
    return TRUE;
  gint64 t = g_get_monotonic_time ();
  if (*until == 0)
    *until = t + p->spin_us;
  return t <= *until;
}

static void
run_chunks (CpuPool *p, int thread)
{
  for (;;) {
    gint64 begin = __atomic_fetch_add (&p->next, p->grain, __ATOMIC_RELAXED);
    if (begin >= p->n)
      return;
    p->fn (p->ctx, begin, MIN (begin + p->grain, p->n), thread);
  }
}

static gpointer
worker_main (gpointer data)
{
  Worker *w = data;
  CpuPool *p = w->pool;
  guint64 seen = 0;
  for (;;) {
    guint turn = 0;
    gint64 until = 0;
    while (p->spin_us > 0 && __atomic_load_n (&p->generation, __ATOMIC_ACQUIRE) == seen && spin_more (p, &turn, &until))
      ;
    g_mutex_lock (&p->lock);
    while (p->generation == seen && !p->quit) {
      p->sleepers++;
      g_cond_wait (&p->wake, &p->lock);
      p->sleepers--;
    }
    if (p->quit) {
      g_mutex_unlock (&p->lock);
      break;
    }
    seen = p->generation;
    g_mutex_unlock (&p->lock);
    run_chunks (p, w->index);
    g_mutex_lock (&p->lock);
    if (__atomic_sub_fetch (&p->busy, 1, __ATOMIC_RELEASE) == 0 && p->caller_sleeps)
      g_cond_signal (&p->done);
    g_mutex_unlock (&p->lock);
  }
  g_free (w);
  return NULL;
}

CpuPool *
cpu_pool_new (int n_threads, gint64 spin_us)
{
  CpuPool *p = g_new0 (CpuPool, 1);
  p->n_threads = MAX (n_threads, 1);
  p->spin_us = spin_us;
  g_mutex_init (&p->lock);
  g_cond_init (&p->wake);
  g_cond_init (&p->done);
  p->threads = g_new0 (GThread *, p->n_threads);
  for (int i = 1; i < p->n_threads; i++) {
    Worker *w = g_new (Worker, 1);
    w->pool = p;
    w->index = i;
    p->threads[i] = g_thread_new ("cria-cpu", worker_main, w);
  }
  return p;
}

void
cpu_pool_free (CpuPool *p)
{
  if (!p)
    return;
  g_mutex_lock (&p->lock);
  p->quit = TRUE;
  g_cond_broadcast (&p->wake);
  g_mutex_unlock (&p->lock);
  for (int i = 1; i < p->n_threads; i++)
    g_thread_join (p->threads[i]);
  g_free (p->threads);
  g_mutex_clear (&p->lock);
  g_cond_clear (&p->wake);
  g_cond_clear (&p->done);
  g_free (p);
}

int
cpu_pool_n_threads (CpuPool *p)
{
  return p->n_threads;
}

void
cpu_pool_run (CpuPool *p, gint64 n, gint64 grain, CpuTaskFunc fn, gpointer ctx)
{
  if (n <= 0)
    return;
  grain = MAX (grain, 1);
  if (p->n_threads == 1 || n <= grain) {
    fn (ctx, 0, n, 0);
    return;
  }
  g_mutex_lock (&p->lock);
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->grain = grain;
  p->next = 0;
  __atomic_store_n (&p->busy, p->n_threads - 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&p->generation, 1, __ATOMIC_RELEASE);
  if (p->sleepers > 0)
    g_cond_broadcast (&p->wake);
  g_mutex_unlock (&p->lock);
  run_chunks (p, 0);
  guint turn = 0;
  gint64 until = 0;
  while (p->spin_us > 0 && __atomic_load_n (&p->busy, __ATOMIC_ACQUIRE) > 0 && spin_more (p, &turn, &until))
    ;
  g_mutex_lock (&p->lock);
  while (p->busy > 0) {
    p->caller_sleeps = TRUE;
    g_cond_wait (&p->done, &p->lock);
  }
  p->caller_sleeps = FALSE;
  g_mutex_unlock (&p->lock);
}
