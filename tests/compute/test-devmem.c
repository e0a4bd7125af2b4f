/* test-devmem: the device-memory contract of backends (cria-backend.h) on
 * devsim, a test backend that runs the cpu kernels on memory the host cannot
 * address (tests/compute/devsim: PROT_NONE but inside its own kernels and
 * copies). Whatever the core reads or writes of a node's value or gradient
 * without upload/download would crash here. The results must be the cpu
 * backend's bit for bit, since the kernels are the same: a LoRA step's loss
 * and adapter gradients, the logits and greedy ids of cria_lm (with its KV
 * cache, one sequence and a batch), the logits with NF4 weights in device
 * memory, and `cria logits` and `cria train` end to end. That the memory
 * really is out of reach is checked first. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "cria-test.h"

static CriaRegistry *registry;
static CriaBackend *cpu, *dev;
static char *devsim_dir, *tmp;

/* A device tensor's data is not host memory: reading it kills a child. */
static void
test_memory_unreachable (void)
{
  g_autoptr (GError) error = NULL;
  CU_ASSERT_FALSE (cria_backend_is_host (dev));
  CU_ASSERT_TRUE (cria_backend_is_host (cpu));
  g_autoptr (CriaTensor) host = cria_tensor_new (CRIA_DTYPE_F32, 1, (gint64[]){ 5 });
  for (int i = 0; i < 5; i++)
    ((float *) host->data)[i] = (float) i + 0.5f;
  g_autoptr (CriaTensor) t = cria_backend_get_resident (dev, host, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (t);
  CU_ASSERT_TRUE (cria_tensor_is_device (t));
  CU_ASSERT_FALSE (cria_tensor_is_device (host));
  /* uploaded once: the same copy the second time */
  g_autoptr (CriaTensor) again = cria_backend_get_resident (dev, host, &error);
  CU_ASSERT_PTR_EQUAL (again, t);
  float back[5];
  CU_ASSERT_TRUE (cria_tensor_read (t, 0, back, sizeof back, &error));
  CU_ASSERT_EQUAL (memcmp (back, host->data, sizeof back), 0);
  /* the host changes it: update uploads it again */
  ((float *) host->data)[2] = 42;
  CU_ASSERT_TRUE (cria_backend_update_tensor (dev, host, &error));
  CU_ASSERT_TRUE (cria_tensor_read (t, 2 * sizeof (float), back, sizeof (float), &error));
  CU_ASSERT_EQUAL (back[0], 42);
  fflush (NULL);
  pid_t pid = fork ();
  if (pid == 0) {
    signal (SIGSEGV, SIG_DFL);
    volatile float x = ((volatile float *) t->data)[0];
    (void) x;
    _exit (0);
  }
  int status = 0;
  CU_ASSERT_EQUAL_FATAL (waitpid (pid, &status, 0), pid);
  /* SIGSEGV, or a sanitizer's report of it */
  CU_ASSERT_TRUE (WIFSIGNALED (status) || (WIFEXITED (status) && WEXITSTATUS (status) != 0));
  /* a host backend's copy is the tensor itself: no copy on the cpu path */
  g_autoptr (CriaTensor) same = cria_backend_get_resident (cpu, host, &error);
  CU_ASSERT_PTR_EQUAL (same, host);
  g_autoptr (CriaTensor) view = cria_tensor_to_host (host, &error);
  CU_ASSERT_PTR_EQUAL (view, host);
}

static CriaModel *
open_model (const char *name, CriaModelDType dtype)
{
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (GError) error = NULL;
  CriaModel *m = cria_model_open (registry, dir, dtype, &error);
  if (!m)
    printf ("\n%s\n", error->message);
  return m;
}

typedef struct {
  float ce[2];
  GPtrArray *grads; /* CriaTensor (host), summed per adapter param */
} StepResult;

static void
step_result_clear (StepResult *r)
{
  g_clear_pointer (&r->grads, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (StepResult, step_result_clear)

static gboolean
lora_step (const char *name, const char *targets, CriaBackend *backend, StepResult *r)
{
  g_autofree char *tail = g_strdup_printf ("target-modules=%s", targets);
  g_autoptr (GError) error = NULL;
  r->grads = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_tensor_unref);
  if (!cria_test_lora_step (registry, name, tail, backend, r->ce, r->grads, &error)) {
    printf ("\n%s: %s\n", cria_backend_get_name (backend), error->message);
    return FALSE;
  }
  return TRUE;
}

static void
check_lora_step (const char *name, const char *targets)
{
  g_auto (StepResult) a = { 0 }, b = { 0 };
  CU_ASSERT_TRUE_FATAL (lora_step (name, targets, cpu, &a));
  CU_ASSERT_TRUE_FATAL (lora_step (name, targets, dev, &b));
  CU_ASSERT_EQUAL (memcmp (a.ce, b.ce, sizeof a.ce), 0);
  CU_ASSERT_TRUE (a.ce[1] > 0);
  CU_ASSERT_EQUAL_FATAL (a.grads->len, b.grads->len);
  gboolean nonzero = FALSE;
  for (guint i = 0; i < a.grads->len; i++) {
    CriaTensor *x = g_ptr_array_index (a.grads, i), *y = g_ptr_array_index (b.grads, i);
    CU_ASSERT_EQUAL (memcmp (x->data, y->data, cria_tensor_nbytes (x)), 0);
    for (gint64 e = 0; e < cria_tensor_numel (x); e++)
      nonzero |= ((float *) x->data)[e] != 0;
  }
  CU_ASSERT_TRUE (nonzero);
}

static void
test_lora_step_llama (void)
{
  check_lora_step ("tiny-llama", "q_proj,v_proj,down_proj");
}

static void
test_lora_step_gpt2 (void)
{
  check_lora_step ("tiny-gpt2", "attn.c_attn,c_proj");
}

/* Greedy decoding of two prompts, one at a time through cria_lm_feed and
 * then together through cria_lm_feed_batch (ragged KV caches), plus the
 * logits of every position of the first prompt. */
static gboolean
decode (CriaBackend *backend, GArray *ids, GByteArray *logits)
{
  g_autoptr (CriaModel) model = open_model ("tiny-qwen2", CRIA_MODEL_DTYPE_F32);
  if (!model)
    return FALSE;
  gint64 V = cria_model_get_config (model)->vocab_size;
  CriaLm *lm = cria_lm_new (model, backend);
  g_autoptr (GError) error = NULL;
  const gint32 p0[] = { 1, 17, 200, 5 }, p1[] = { 3, 9 };
  g_autoptr (CriaTensor) all = cria_lm_logits (lm, p0, 4, &error);
  gboolean ok = all != NULL;
  if (ok)
    g_byte_array_append (logits, all->data, (guint) cria_tensor_nbytes (all));
  g_autofree float *row = g_new (float, 2 * V);
  CriaLmCache *c[2] = { cria_lm_cache_new (lm), cria_lm_cache_new (lm) };
  ok = ok && cria_lm_feed (lm, c[0], p0, 4, row, &error);
  gint32 next[2] = { ok ? cria_test_argmax (row, V) : 0, 0 };
  ok = ok && cria_lm_feed (lm, c[1], p1, 2, row + V, &error);
  next[1] = ok ? cria_test_argmax (row + V, V) : 0;
  for (int step = 0; ok && step < 4; step++) {
    g_array_append_vals (ids, next, 2);
    ok = step % 2
             ? cria_lm_feed_batch (lm, c, next, 2, row, &error)
             : cria_lm_feed (lm, c[0], next, 1, row, &error) && cria_lm_feed (lm, c[1], next + 1, 1, row + V, &error);
    if (ok) {
      next[0] = cria_test_argmax (row, V);
      next[1] = cria_test_argmax (row + V, V);
      g_byte_array_append (logits, (const guint8 *) row, (guint) (2 * V * sizeof (float)));
    }
  }
  if (!ok)
    printf ("\n%s: %s\n", cria_backend_get_name (backend), error->message);
  cria_lm_cache_free (c[0]);
  cria_lm_cache_free (c[1]);
  cria_lm_free (lm);
  return ok;
}

static void
test_generate (void)
{
  g_autoptr (GArray) ia = g_array_new (FALSE, FALSE, sizeof (gint32)), ib = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GByteArray) la = g_byte_array_new (), lb = g_byte_array_new ();
  CU_ASSERT_TRUE_FATAL (decode (cpu, ia, la));
  CU_ASSERT_TRUE_FATAL (decode (dev, ib, lb));
  CU_ASSERT_EQUAL_FATAL (ia->len, 8);
  CU_ASSERT_EQUAL (memcmp (ia->data, ib->data, ia->len * sizeof (gint32)), 0);
  CU_ASSERT_EQUAL_FATAL (la->len, lb->len);
  CU_ASSERT_EQUAL (memcmp (la->data, lb->data, la->len), 0);
}

/* The logits of tiny-llama with its linear weights quantized to NF4 (as
 * qlora does) on a backend, or NULL with the error printed. */
static CriaTensor *
nf4_logits (CriaBackend *backend, GError **error)
{
  g_autoptr (CriaModel) model = open_model ("tiny-llama", CRIA_MODEL_DTYPE_F32);
  if (!model || !cria_adapter_quantize_model (model, error))
    return NULL;
  CriaLm *lm = cria_lm_new (model, backend);
  const gint32 ids[] = { 1, 2, 17, 200 };
  CriaTensor *out = cria_lm_logits (lm, ids, G_N_ELEMENTS (ids), error);
  cria_lm_free (lm);
  return out;
}

/* NF4 weights in device memory (cria_nf4_device_layout): devsim's kernels
 * read the uploaded codes, scales and maps, and give the cpu's logits bit
 * for bit; a downloaded copy holds what the host tensor holds. */
static void
test_nf4_device (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaTensor) a = nf4_logits (cpu, &error);
  g_autoptr (CriaTensor) b = nf4_logits (dev, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_PTR_NOT_NULL_FATAL (b);
  CU_ASSERT_EQUAL_FATAL (cria_tensor_nbytes (a), cria_tensor_nbytes (b));
  CU_ASSERT_EQUAL (memcmp (a->data, b->data, cria_tensor_nbytes (a)), 0);
  /* odd sizes: a last half-filled byte, a partial block and nested block */
  g_autoptr (CriaTensor) w = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 129, 131 });
  for (gint64 i = 0; i < cria_tensor_numel (w); i++)
    ((float *) w->data)[i] = sinf ((float) i * 0.37f) * (1.0f + (float) (i % 97));
  g_autoptr (CriaTensor) q = cria_nf4_quantize (w, "w", &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (q);
  g_autoptr (CriaTensor) r = cria_backend_get_resident (dev, q, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (r);
  CU_ASSERT_TRUE (cria_tensor_is_device (r) && r->nf4 && !r->nf4->absmax && !r->nf4->nested_absmax);
  g_autoptr (CriaTensor) back = cria_tensor_to_host (r, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (back);
  CriaNf4State *s = q->nf4, *t = back->nf4;
  CU_ASSERT_EQUAL (memcmp (back->data, q->data, cria_tensor_nbytes (q)), 0);
  CU_ASSERT_TRUE (t->n_blocks == s->n_blocks && t->n_nested == s->n_nested && t->offset == s->offset);
  CU_ASSERT_EQUAL (memcmp (t->absmax, s->absmax, (gsize) s->n_blocks), 0);
  CU_ASSERT_EQUAL (memcmp (t->nested_absmax, s->nested_absmax, (gsize) s->n_nested * sizeof (float)), 0);
  CU_ASSERT_EQUAL (memcmp (t->quant_map, s->quant_map, sizeof s->quant_map), 0);
  CU_ASSERT_EQUAL (memcmp (t->nested_quant_map, s->nested_quant_map, sizeof s->nested_quant_map), 0);
  CriaNf4Layout l;
  cria_nf4_device_layout (q, &l);
  CU_ASSERT_EQUAL (l.bytes, l.nested_quant_map + 256 * sizeof (float));
  CU_ASSERT_TRUE (l.absmax >= cria_tensor_nbytes (q) && l.absmax % 16 == 0 && l.nested_absmax % 16 == 0);
}

/* A device backend without a dequantize kernel gets no NF4 weight: one
 * line at plan time. */
static void
test_nf4_refused (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaBackend) nodq = cria_backend_open (registry, "devsim-nodequant", &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (nodq);
  g_autoptr (CriaTensor) out = nf4_logits (nodq, &error);
  CU_ASSERT_PTR_NULL (out);
  CU_ASSERT_TRUE (error && strstr (error->message, "backend 'devsim-nodequant' has no dequantize kernel"));
  CU_ASSERT_TRUE (error && !strchr (error->message, '\n'));
}

/* ---- the cria program on devsim ------------------------------------------------- */

static int
run_cria (const char *const *args, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) "--plugin-path");
  g_ptr_array_add (argv, devsim_dir);
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, (gpointer) *a);
  g_ptr_array_add (argv, NULL);
  g_autofree char *e = NULL;
  int status = cria_test_run_cria ((const char *const *) argv->pdata, NULL, NULL, &e);
  if (status != 0)
    printf ("\ncria %s failed (%d): %s\n", args[0], status, e);
  if (err)
    *err = g_steal_pointer (&e);
  return status;
}

static GBytes *
file_bytes (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GMappedFile) f = g_mapped_file_new (path, FALSE, NULL);
  return f ? g_mapped_file_get_bytes (f) : NULL;
}

static void
test_cli_logits (void)
{
  g_autofree char *model = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-llama", NULL);
  g_autofree char *a = g_build_filename (tmp, "logits-cpu.safetensors", NULL);
  g_autofree char *b = g_build_filename (tmp, "logits-devsim.safetensors", NULL);
  const char *ca[] = { "logits", "-m", model, "--ids", "1,17,200,3", "--out", a, "--backend", "cpu", NULL };
  const char *cb[] = { "logits", "-m", model, "--ids", "1,17,200,3", "--out", b, "--backend", "devsim", NULL };
  CU_ASSERT_EQUAL_FATAL (run_cria (ca, NULL), 0);
  CU_ASSERT_EQUAL_FATAL (run_cria (cb, NULL), 0);
  g_autoptr (GBytes) x = file_bytes (tmp, "logits-cpu.safetensors");
  g_autoptr (GBytes) y = file_bytes (tmp, "logits-devsim.safetensors");
  CU_ASSERT_TRUE (x && y && g_bytes_get_size (x) > 1000 && g_bytes_equal (x, y));
}

/* "loss", "grad_norm" and "lr" of each step line of a run's log, as text. */
static char *
step_numbers (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "train-log.jsonl", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  GString *s = g_string_new (NULL);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_autoptr (JsonParser) p = json_parser_new ();
    if (!**l || !json_parser_load_from_data (p, *l, -1, NULL))
      continue;
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    if (!json_object_has_member (o, "step") || !json_object_has_member (o, "loss"))
      continue;
    g_string_append_printf (s, "%" G_GINT64_FORMAT " %.9g %.9g %.9g\n", json_object_get_int_member (o, "step"),
                            json_object_get_double_member (o, "loss"),
                            json_object_get_double_member_with_default (o, "grad_norm", -1),
                            json_object_get_double_member_with_default (o, "lr", -1));
  }
  return g_string_free (s, FALSE);
}

/* Three LoRA steps with clipping and accumulation: the params go back up
 * after each optimizer step, so steps 2 and 3 see the updated adapter. */
static void
test_cli_train (void)
{
  g_autofree char *base = g_build_filename (tmp, "train", NULL);
  g_autofree char *model = cria_test_tiny_model (base, "tiny-llama");
  g_autofree char *data = g_build_filename (base, "text.jsonl", NULL);
  cria_test_write_file (data, "{\"output\": \"The quick brown fox jumps over the lazy dog.\"}\n"
                              "{\"output\": \"A small cat sat on the mat and looked at the door.\"}\n");
  const char *backends[] = { "cpu", "devsim" };
  char *runs[2] = { NULL, NULL };
  for (int i = 0; i < 2; i++) {
    runs[i] = g_strdup_printf ("%s/run-%s", base, backends[i]);
    const char *a[] = { "train",
                        "--model",
                        model,
                        "--data",
                        data,
                        "--out",
                        runs[i],
                        "--format",
                        "text",
                        "--adapter",
                        "lora r=4 alpha=8",
                        "--backend",
                        backends[i],
                        "--threads",
                        "1",
                        "--max-steps",
                        "3",
                        "--batch-size",
                        "1",
                        "--grad-accum",
                        "2",
                        "--lr",
                        "0.02",
                        "--max-grad-norm",
                        "0.5",
                        "--seed",
                        "3",
                        "--max-length",
                        "32",
                        NULL };
    CU_ASSERT_EQUAL (run_cria (a, NULL), 0);
  }
  g_autofree char *na = step_numbers (runs[0]), *nb = step_numbers (runs[1]);
  CU_ASSERT_PTR_NOT_NULL_FATAL (na);
  CU_ASSERT_PTR_NOT_NULL_FATAL (nb);
  CU_ASSERT_TRUE (strstr (na, "\n3 ") != NULL);
  CU_ASSERT_STRING_EQUAL (na, nb);
  g_autoptr (GBytes) x = file_bytes (runs[0], "adapter_model.safetensors");
  g_autoptr (GBytes) y = file_bytes (runs[1], "adapter_model.safetensors");
  CU_ASSERT_TRUE (x && y && g_bytes_equal (x, y));
  g_free (runs[0]);
  g_free (runs[1]);
}

static void
teardown (void)
{
  cria_backend_free (dev);
  cria_backend_free (cpu);
  cria_registry_free (registry);
  if (tmp)
    cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (devsim_dir);
}

static void
register_suites (void)
{
  devsim_dir = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "compute", "devsim", ".libs", NULL);
  registry = cria_registry_new ();
  cria_registry_add_path (registry, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_add_path (registry, devsim_dir);
  cria_registry_scan (registry);
  cpu = cria_backend_open (registry, "cpu", NULL);
  g_autoptr (GError) error = NULL;
  dev = cria_backend_open (registry, "devsim", &error);
  if (!dev)
    g_error ("devsim: %s", error->message);
  g_assert (cpu);
  tmp = cria_test_tmpdir ();
  atexit (teardown);
  static const CriaTestCase cases[] = {
    { "device memory is out of the host's reach", test_memory_unreachable },
    { "llama lora step: devsim = cpu, bit for bit", test_lora_step_llama },
    { "gpt2 lora step: devsim = cpu, bit for bit", test_lora_step_gpt2 },
    { "logits and greedy ids with KV caches: devsim = cpu", test_generate },
    { "nf4 weights in device memory: devsim = cpu", test_nf4_device },
    { "nf4 weights refused without a dequantize kernel", test_nf4_refused },
    { "cria logits --backend devsim = cpu", test_cli_logits },
    { "cria train --backend devsim = cpu", test_cli_train },
    { NULL },
  };
  cria_test_add_suite ("device memory", cases);
}

CRIA_TEST_MAIN (register_suites)
