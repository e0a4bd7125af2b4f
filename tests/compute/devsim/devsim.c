/* devsim: a test-only backend whose memory the host cannot touch, to prove
 * the device-memory contract (cria-backend.h) without a GPU.
 *
 *   cria --plugin-path tests/compute/.libs logits --backend devsim -m MODEL 'Hello'
 *
 * It runs the CPU backend's kernels, so its results are the cpu backend's
 * bit for bit, but every byte it allocates sits in pages mapped PROT_NONE,
 * opened only while one of its own kernels or copies runs. Any place in the
 * core that dereferences backend memory instead of going through upload,
 * download and copy dies there with SIGSEGV. Not installed. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The cpu backend's create, destroy and kernels; its descriptor under
 * another name, which the plugin does not export. */
#define cria_plugin_descriptor_cpu devsim_cpu_descriptor
#include "../../../plugins/backends/cpu/cpu.c"
#include "../../../core/train/cria-optim-kernels.h"

typedef struct {
  gpointer cpu;
  GHashTable *maps; /* start -> length of each mapping */
  guint64 n_uploads, n_downloads, n_syncs;
  guint64 download_bytes;
} Devsim;

static void
set_access (Devsim *d, int prot)
{
  GHashTableIter it;
  gpointer start, length;
  g_hash_table_iter_init (&it, d->maps);
  while (g_hash_table_iter_next (&it, &start, &length))
    if (mprotect (start, GPOINTER_TO_SIZE (length), prot) != 0)
      g_error ("devsim: mprotect: %s", g_strerror (errno));
}

/* Host access to the backend's memory only between these two. */
static void
open_memory (Devsim *d)
{
  set_access (d, PROT_READ | PROT_WRITE);
}

static void
close_memory (Devsim *d)
{
  set_access (d, PROT_NONE);
}

static gpointer
devsim_create (const CriaProps *props, GError **error)
{
  gpointer cpu = cpu_create (props, error);
  if (!cpu)
    return NULL;
  Devsim *d = g_new0 (Devsim, 1);
  d->cpu = cpu;
  d->maps = g_hash_table_new (NULL, NULL);
  return d;
}

static void
devsim_destroy (gpointer self)
{
  Devsim *d = self;
  /* every allocation must have been freed: the core owns their lifetimes */
  if (g_hash_table_size (d->maps) != 0)
    g_error ("devsim: %u allocations never freed", g_hash_table_size (d->maps));
  /* what a test reads to see what crossed (test-cuda-parity's training) */
  const char *stats = g_getenv ("CRIA_DEVSIM_STATS");
  FILE *f = stats ? fopen (stats, "a") : NULL;
  if (f) {
    fprintf (f, "downloads %" G_GUINT64_FORMAT " bytes %" G_GUINT64_FORMAT "\n", d->n_downloads, d->download_bytes);
    fclose (f);
  }
  g_hash_table_unref (d->maps);
  cpu_destroy (d->cpu);
  g_free (d);
}

static gsize
page_round (gsize bytes)
{
  gsize page = (gsize) sysconf (_SC_PAGESIZE);
  return (MAX (bytes, 1) + page - 1) / page * page;
}

static gpointer
devsim_alloc (gpointer self, gsize bytes, GError **error)
{
  Devsim *d = self;
  gsize length = page_round (bytes);
  void *mem = mmap (NULL, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "devsim: cannot map %" G_GSIZE_FORMAT " bytes: %s", bytes,
                 g_strerror (errno));
    return NULL;
  }
  g_hash_table_insert (d->maps, mem, GSIZE_TO_POINTER (length));
  return mem;
}

static void
devsim_free (gpointer self, gpointer mem)
{
  Devsim *d = self;
  gpointer length;
  if (!g_hash_table_steal_extended (d->maps, mem, NULL, &length))
    g_error ("devsim: free of %p, which it did not allocate", mem);
  munmap (mem, GPOINTER_TO_SIZE (length));
}

static void
devsim_zero (gpointer self, gpointer mem, gsize bytes)
{
  Devsim *d = self;
  open_memory (d);
  memset (mem, 0, bytes);
  close_memory (d);
}

/* Every transfer: backend memory opened for the copy alone. */
static void
transfer (Devsim *d, gpointer dst, gconstpointer src, gsize bytes)
{
  open_memory (d);
  memmove (dst, src, bytes);
  close_memory (d);
}

static gboolean
devsim_upload (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  Devsim *d = self;
  transfer (d, dst, src, bytes);
  d->n_uploads++;
  return TRUE;
}

static gboolean
devsim_download (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  Devsim *d = self;
  transfer (d, dst, src, bytes);
  d->n_downloads++;
  d->download_bytes += bytes;
  return TRUE;
}

static gboolean
devsim_copy (gpointer self, gpointer dst, gconstpointer src, gsize bytes, GError **error)
{
  transfer (self, dst, src, bytes);
  return TRUE;
}

static gboolean
devsim_synchronize (gpointer self, GError **error)
{
  ((Devsim *) self)->n_syncs++;
  return TRUE;
}

/* An NF4 weight in devsim's memory is the device layout of
 * cria_nf4_device_layout, its host-side state without arrays. The cpu
 * kernels read the state through the tensor's `nf4`: while one runs, that
 * points to a state whose arrays and maps are those in devsim's memory, so
 * the kernels read what the core uploaded, not the host's copy. */
typedef struct {
  CriaTensor *t;
  CriaNf4State *host;
  CriaNf4State dev;
} Nf4View;

/* With the memory open. */
static int
nf4_views_open (CriaNode *node, Nf4View views[CRIA_MAX_SRC])
{
  int n = 0;
  for (int i = 0; i < node->n_src; i++) {
    CriaTensor *t = node->src[i] ? node->src[i]->value : NULL;
    if (!t || t->dtype != CRIA_DTYPE_NF4)
      continue;
    CriaNf4Layout l;
    cria_nf4_device_layout (t, &l);
    Nf4View *v = &views[n++];
    char *base = t->data;
    v->t = t;
    v->host = t->nf4;
    v->dev = *t->nf4;
    if (v->dev.n_nested) {
      v->dev.absmax = (guint8 *) (base + l.absmax);
      v->dev.nested_absmax = (float *) (base + l.nested_absmax);
    } else {
      v->dev.absmax_f32 = (float *) (base + l.absmax);
    }
    memcpy (v->dev.quant_map, base + l.quant_map, sizeof v->dev.quant_map);
    memcpy (v->dev.nested_quant_map, base + l.nested_quant_map, sizeof v->dev.nested_quant_map);
    t->nf4 = &v->dev;
  }
  return n;
}

static void
nf4_views_close (Nf4View *views, int n)
{
  for (int i = 0; i < n; i++)
    views[i].t->nf4 = views[i].host;
}

static gboolean
devsim_run (Devsim *d, CriaNode *node, gboolean backward, GError **error)
{
  const CriaKernel *k = &cpu_elementwise_kernels[node->op];
  Nf4View views[CRIA_MAX_SRC];
  open_memory (d);
  int n = nf4_views_open (node, views);
  gboolean ok = (backward ? k->backward : k->forward) (d->cpu, node, error);
  nf4_views_close (views, n);
  close_memory (d);
  return ok;
}

static gboolean
devsim_forward (gpointer self, CriaNode *node, GError **error)
{
  return devsim_run (self, node, FALSE, error);
}

static gboolean
devsim_backward (gpointer self, CriaNode *node, GError **error)
{
  return devsim_run (self, node, TRUE, error);
}

/* The optimizer entries (contract 1.2): the host's own loops on the
 * "device" copies, in cria_adamw_grad_norm's order, so a step on devsim is
 * the cpu's bit for bit. */
static gboolean
devsim_accumulate (gpointer self, float *dst, const float *src, gsize n, GError **error)
{
  open_memory (self);
  for (gsize i = 0; i < n; i++)
    dst[i] += src[i];
  close_memory (self);
  return TRUE;
}

static gboolean
devsim_grad_sumsq (gpointer self, const CriaOptimSpan *spans, guint n_spans, float pre, double *sumsq, GError **error)
{
  double sum = 0.0;
  open_memory (self);
  for (guint k = 0; k < n_spans; k++)
    for (gsize off = 0; off < spans[k].n; off += CRIA_OPTIM_NORM_CHUNK) {
      double lanes[CRIA_OPTIM_NORM_LANES] = { 0 };
      optim_kernel_sumsq (spans[k].grad + off, MIN (CRIA_OPTIM_NORM_CHUNK, spans[k].n - off), pre, lanes);
      for (int l = 0; l < CRIA_OPTIM_NORM_LANES; l++)
        sum += lanes[l];
    }
  close_memory (self);
  *sumsq = sum;
  return TRUE;
}

static gboolean
devsim_adamw_step (gpointer self, const CriaOptimSpan *spans, guint n_spans, const CriaAdamwScalars *s, GError **error)
{
  CriaAdamwScalars plain = *s;
  plain.shrink = 1.0f;
  open_memory (self);
  for (guint k = 0; k < n_spans; k++)
    optim_kernel_adamw (spans[k].param, spans[k].m, spans[k].v, spans[k].grad, spans[k].n, spans[k].decay ? s : &plain);
  close_memory (self);
  return TRUE;
}

static char *
devsim_describe (gpointer self)
{
  Devsim *d = self;
  g_autofree char *cpu = cpu_describe (d->cpu);
  return g_strdup_printf (
      "devsim: memory the host cannot address, %u mappings, %" G_GUINT64_FORMAT " uploads, %" G_GUINT64_FORMAT
      " downloads (%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT " syncs; kernels of %s",
      g_hash_table_size (d->maps), d->n_uploads, d->n_downloads, d->download_bytes, d->n_syncs, cpu);
}

static CriaKernel devsim_kernels[CRIA_N_OPS];

static const CriaBackendVTable devsim_vtable = {
  CRIA_VTABLE_INIT (CriaBackendVTable),
  .create = devsim_create,
  .destroy = devsim_destroy,
  .alloc = devsim_alloc,
  .free = devsim_free,
  .zero = devsim_zero,
  .describe = devsim_describe,
  .kernels = devsim_kernels,
  .n_kernels = CRIA_N_OPS,
  .device_memory = TRUE,
  .upload = devsim_upload,
  .download = devsim_download,
  .copy = devsim_copy,
  .synchronize = devsim_synchronize,
  .accumulate = devsim_accumulate,
  .grad_sumsq = devsim_grad_sumsq,
  .adamw_step = devsim_adamw_step,
};

static const CriaProviderInfo devsim_info = {
  .name = "devsim",
  .description = "Test backend: the cpu kernels on memory the host cannot address (PROT_NONE but inside its own "
                 "kernels and copies)",
  .example = "cria inspect devsim",
  .props = cpu_props,
  .rank = CRIA_RANK_NONE,
};

/* The same without a dequantize kernel: a device backend to which the core
 * refuses NF4 weights (cria_backend_get_resident). */
static CriaKernel devsim_nodequant_kernels[CRIA_N_OPS];

static CriaBackendVTable devsim_nodequant_vtable;

static const CriaProviderInfo devsim_nodequant_info = {
  .name = "devsim-nodequant",
  .description = "Test backend: devsim without a dequantize kernel, so without NF4 weights",
  .example = "cria inspect devsim-nodequant",
  .props = cpu_props,
  .rank = CRIA_RANK_NONE,
};

static gboolean
devsim_init (CriaPlugin *plugin, GError **error)
{
  for (int op = 0; op < CRIA_N_OPS; op++)
    if (cpu_elementwise_kernels[op].forward)
      devsim_kernels[op] = (CriaKernel){ devsim_forward,
                                         cpu_elementwise_kernels[op].backward ? devsim_backward : NULL };
  memcpy (devsim_nodequant_kernels, devsim_kernels, sizeof devsim_kernels);
  devsim_nodequant_kernels[CRIA_OP_DEQUANTIZE] = (CriaKernel){ NULL, NULL };
  devsim_nodequant_vtable = devsim_vtable;
  devsim_nodequant_vtable.kernels = devsim_nodequant_kernels;
  cria_plugin_add_backend (plugin, &devsim_info, &devsim_vtable);
  cria_plugin_add_backend (plugin, &devsim_nodequant_info, &devsim_nodequant_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (devsim, "A test backend with memory the host cannot address", devsim_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria tests");
