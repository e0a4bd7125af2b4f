/* cpu: the CPU backend, a thread pool and kernels chosen by the instruction
 * sets the processor has.
 *
 *   cria inspect cpu        (a model run picks it: --backend 'cpu threads=8')
 *
 * Memory is host memory aligned for the widest vector loads. The `isa`
 * property can force an older instruction set, to compare or to work around
 * a broken one. */
#include "config.h"

#include <string.h>

#include "cpu.h"

static const CriaPropSpec cpu_props[] = {
  { "threads", CRIA_PROP_INT, "0", 0, 4096, NULL, "worker threads, the caller included; 0 uses every core" },
  { "spin-us", CRIA_PROP_INT, "0", 0, 100000, NULL,
    "microseconds the idle threads spin for the next op before they sleep: saves the wake-up between small ops "
    "on an otherwise idle machine, costs CPU time where more threads run than there are cores (0: sleep at once)" },
  { "isa", CRIA_PROP_ENUM, "auto", 0, 0, "auto|avx512|avx2|generic",
    "instruction set of the kernels: auto picks the best the processor supports" },
  { "attention", CRIA_PROP_ENUM, "blocked", 0, 0, "blocked|rows",
    "attention kernels: blocked (vectorized, an online softmax over key blocks) or rows (the previous scalar "
    "one-row-at-a-time kernels, kept to compare)" },
  { "bf16-dot", CRIA_PROP_BOOL, "false", 0, 0, NULL,
    "products with bf16 weights (--dtype bf16) and NF4 weights round the activations to bf16 too and accumulate "
    "in f32: AMX tiles or AVX512-BF16 dot products where the processor has them (see amx), the f32 kernels "
    "on the same rounded values elsewhere (up to 64 rows, as in decoding, each row gets the floats it gets "
    "alone); off keeps f32 activations" },
  { "amx", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "with bf16-dot, where the processor has AMX-BF16: the products with bf16 (or NF4) weights that pack the "
    "weight (more than 64 rows, as in training and long prompts, or a weight not stored [N,K]) run on AMX tiles, "
    "3-5x the AVX512-BF16 kernels' rate, and so do decoding's dot products with bf16 weights (up to 64 rows, the "
    "weight read in place as tiles: a step of 16 sequences about 1.5x faster, each row still the floats it gets "
    "alone); the same products summed in another order, so the last bits differ; off keeps the AVX512-BF16 "
    "kernels" },
  { "fuse", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "a linear layer's bias, GELU/SiLU and residual add are computed on each block of its product as the product "
    "finishes it, instead of in passes of their own over memory (the same results); off runs each op alone" },
  CRIA_PROP_END
};

const char *
cpu_isa_name (CpuIsa isa)
{
  static const char *const names[CPU_N_ISAS] = { "generic", "avx2", "avx512" };
  return names[isa];
}

static CpuIsa
detect_isa (void)
{
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f"))
    return CPU_ISA_AVX512;
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    return CPU_ISA_AVX2;
  return CPU_ISA_GENERIC;
}

static gpointer
cpu_create (const CriaProps *props, GError **error)
{
  const char *want = cria_props_get_string (props, "isa");
  CpuIsa best = detect_isa (), isa = best;
  if (strcmp (want, "auto") != 0) {
    for (isa = 0; isa < CPU_N_ISAS && strcmp (cpu_isa_name (isa), want) != 0; isa++)
      ;
    if (isa > best) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "cpu: this processor lacks %s (it has %s)", want,
                   cpu_isa_name (best));
      return NULL;
    }
  }
  int threads = (int) cria_props_get_int (props, "threads");
  if (threads == 0)
    threads = (int) g_get_num_processors ();
  CpuBackend *be = g_new0 (CpuBackend, 1);
  g_mutex_init (&be->spare_lock);
  be->isa = isa;
  be->has_bf16 = __builtin_cpu_supports ("avx512bf16");
  be->bf16_dot = cria_props_get_bool (props, "bf16-dot");
  /* the AMX kernel takes the operands of the AVX512-BF16 one */
  be->amx = isa == CPU_ISA_AVX512 && be->has_bf16 && cria_props_get_bool (props, "amx") && cpu_amx_init ();
  be->attention_rows = strcmp (cria_props_get_string (props, "attention"), "rows") == 0;
  be->fuse = cria_props_get_bool (props, "fuse");
  be->pool = cpu_pool_new (threads, cria_props_get_int (props, "spin-us"));
  be->scratch = g_new0 (float *, threads);
  be->scratch_size = g_new0 (gsize, threads);
  return be;
}

static void
cpu_destroy (gpointer self)
{
  CpuBackend *be = self;
  int threads = cpu_pool_n_threads (be->pool);
  cpu_pool_free (be->pool);
  for (int i = 0; i < threads; i++)
    g_aligned_free (be->scratch[i]);
  g_free (be->scratch);
  g_free (be->scratch_size);
  g_aligned_free (be->packed_a);
  g_free (be->ce_keep);
  free (be->spare);
  g_mutex_clear (&be->spare_lock);
  g_free (be);
}

float *
cpu_scratch (CpuBackend *be, int thread, gsize n)
{
  if (be->scratch_size[thread] < n) {
    g_aligned_free (be->scratch[thread]);
    be->scratch[thread] = g_aligned_alloc (n, sizeof (float), 64);
    be->scratch_size[thread] = n;
  }
  return be->scratch[thread];
}

/* A block carries its capacity in a header, and the last big one freed is
 * kept for the next alloc that it fits (up to twice too large): decoding
 * plans a graph of about the same size every step, an arena of tens of
 * megabytes, and pages fresh from the system cost a fault each. Big blocks
 * get an eighth more room, so that an arena growing by one cached position
 * a step still fits the last one. */
#define BLOCK_HEADER 64
#define SPARE_MIN ((gsize) 1 << 20)
#define SPARE_MAX ((gsize) 1 << 30)

static gpointer
cpu_alloc (gpointer self, gsize bytes, GError **error)
{
  CpuBackend *be = self;
  char *mem = NULL;
  if (bytes >= SPARE_MIN) {
    g_mutex_lock (&be->spare_lock);
    gsize cap = be->spare ? *(gsize *) be->spare : 0;
    if (cap >= bytes && cap / 2 <= bytes)
      mem = g_steal_pointer (&be->spare);
    g_mutex_unlock (&be->spare_lock);
    if (mem)
      return mem + BLOCK_HEADER;
  }
  gsize cap = bytes >= SPARE_MIN && bytes <= SPARE_MAX ? bytes + bytes / 8 : MAX (bytes, 64);
  /* posix_memalign reports failure, where g_aligned_alloc aborts. */
  if (cap > G_MAXSIZE - BLOCK_HEADER || posix_memalign ((void **) &mem, 64, cap + BLOCK_HEADER) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "cpu: cannot allocate %" G_GSIZE_FORMAT " bytes", bytes);
    return NULL;
  }
  *(gsize *) mem = cap;
  return mem + BLOCK_HEADER;
}

static void
cpu_free (gpointer self, gpointer block)
{
  CpuBackend *be = self;
  if (!block)
    return;
  char *mem = (char *) block - BLOCK_HEADER;
  gsize cap = *(gsize *) mem;
  if (cap >= SPARE_MIN && cap <= SPARE_MAX + SPARE_MAX / 8) {
    g_mutex_lock (&be->spare_lock);
    if (!be->spare || *(gsize *) be->spare < cap) {
      char *old = be->spare;
      be->spare = mem;
      mem = old;
    }
    g_mutex_unlock (&be->spare_lock);
  }
  free (mem);
}

static void
zero_task (gpointer data, gint64 begin, gint64 end, int thread)
{
  memset ((char *) data + begin, 0, (gsize) (end - begin));
}

/* The graph zeroes each activation gradient before its first writer, one
 * after another between the ops: on the pool, not the caller alone, in
 * chunks small enough that a GPT-2 124M batch's 1.5 MB gradient of one
 * layer's activations is split too (2 MiB chunks left it to the caller). */
static void
cpu_zero (gpointer self, gpointer mem, gsize bytes)
{
  CpuBackend *be = self;
  cpu_pool_run (be->pool, (gint64) bytes, 256 * 1024, zero_task, mem);
}

static char *
cpu_describe (gpointer self)
{
  CpuBackend *be = self;
  return g_strdup_printf (
      "cpu: %d threads, %s%s%s%s", cpu_pool_n_threads (be->pool), cpu_isa_name (be->isa),
      be->has_bf16 ? ", avx512-bf16" : "", be->amx ? ", amx-bf16" : "",
      be->bf16_dot ? (be->has_bf16 && be->isa == CPU_ISA_AVX512 ? ", bf16 dot products" : ", bf16-rounded activations")
                   : "");
}

static const CriaBackendVTable cpu_vtable = {
  CRIA_VTABLE_INIT (CriaBackendVTable),
  .create = cpu_create,
  .destroy = cpu_destroy,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .zero = cpu_zero,
  .describe = cpu_describe,
  .kernels = cpu_elementwise_kernels,
  .n_kernels = CRIA_N_OPS, /* cpu-ops.c asserts the table is that long */
  .fuses = cpu_fuses,
};

static const CriaProviderInfo cpu_info = {
  .name = "cpu",
  .description = "Runs graphs on the CPU: a thread pool and AVX-512/AVX2 kernels picked at run time",
  .example = "cria inspect cpu",
  .props = cpu_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_backend (plugin, &cpu_info, &cpu_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (cpu, "The CPU compute backend", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
