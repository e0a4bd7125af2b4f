/* cria-test.c: helpers shared by the test programs. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <glib/gstdio.h>

#include "cria-test.h"

void
cria_test_rmtree (const char *path)
{
  if (!path)
    return;
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK)) {
    GDir *dir = g_dir_open (path, 0, NULL);
    const char *name;
    while (dir && (name = g_dir_read_name (dir))) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      cria_test_rmtree (child);
    }
    if (dir)
      g_dir_close (dir);
    g_rmdir (path);
  } else {
    g_unlink (path);
  }
}

CriaRegistry *
cria_test_registry (void)
{
  CriaRegistry *reg = cria_registry_new ();
  cria_registry_add_path (reg, cria_test_env ("CRIA_TEST_PLUGINS"));
  cria_registry_scan (reg);
  return reg;
}

static char *
bytes_text (GBytes *b)
{
  /* NULL for no output, as g_subprocess_communicate_utf8 gave. */
  gsize n = 0;
  const char *data = b ? g_bytes_get_data (b, &n) : NULL;
  return n ? g_strndup (data, n) : NULL;
}

int
cria_test_run_cria (const char *const *args, const char *stdin_text, char **out, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) cria_test_env ("CRIA_BIN"));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, (gpointer) *a);
  g_ptr_array_add (argv, NULL);
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE;
  g_autoptr (GSubprocessLauncher)
      launcher = g_subprocess_launcher_new (flags | (stdin_text ? G_SUBPROCESS_FLAGS_STDIN_PIPE : 0));
  /* Without text the child reads an empty stdin; an empty pipe would leak
   * inside GIO 2.74, as would g_subprocess_communicate_utf8, and LeakSanitizer
   * can only suppress those with slow (costly) stack unwinding. */
  if (!stdin_text)
    g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_autoptr (GBytes) in = stdin_text ? g_bytes_new (stdin_text, strlen (stdin_text)) : NULL;
  g_autoptr (GBytes) ob = NULL, eb = NULL;
  g_subprocess_communicate (proc, in, NULL, &ob, &eb, &error);
  g_assert_no_error (error);
  char *o = bytes_text (ob), *e = bytes_text (eb);
  int status = g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc)
                                                 : 128 + g_subprocess_get_term_sig (proc);
  if (out)
    *out = o;
  else
    g_free (o);
  if (err)
    *err = e;
  else
    g_free (e);
  return status;
}

int
cria_test_run_cria_lists (char **err, const char *const *list, ...)
{
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  va_list ap;
  va_start (ap, list);
  for (const char *const *l = list; l; l = va_arg (ap, const char *const *))
    for (const char *const *a = l; *a; a++)
      g_ptr_array_add (args, (gpointer) *a);
  va_end (ap);
  g_ptr_array_add (args, NULL);
  char *text = NULL;
  int status = cria_test_run_cria ((const char *const *) args->pdata, NULL, NULL, &text);
  if (status != 0 && !err)
    printf ("\ncria %s failed (%d): %s\n", args->len > 1 ? (const char *) args->pdata[0] : "", status, text);
  if (err)
    *err = text;
  else
    g_free (text);
  return status;
}

void
cria_test_write_file (const char *path, const char *contents)
{
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

char *
cria_test_read_file (const char *path)
{
  char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  return text;
}

GStrv
cria_test_lines (const char *text)
{
  /* g_strsplit finds each separator with strstr, which ASan's interceptor
   * makes measure the whole rest of the text: quadratic on a 10 MB file. */
  GPtrArray *lines = g_ptr_array_new ();
  gsize len = strlen (text);
  for (const char *p = text, *end = text + len;;) {
    const char *nl = memchr (p, '\n', (gsize) (end - p));
    g_ptr_array_add (lines, g_strndup (p, nl ? (gsize) (nl - p) : (gsize) (end - p)));
    if (!nl)
      break;
    p = nl + 1;
  }
  g_ptr_array_add (lines, NULL);
  return (GStrv) g_ptr_array_free (lines, FALSE);
}

char *
cria_test_short_format (const char *dir)
{
  char *path = g_build_filename (dir, "short.json", NULL);
  cria_test_write_file (path, "{\"name\":\"short\",\"description\":\"terse\",\"kind\":\"single\","
                              "\"prompt\":\"{instruction} {input}=\",\"prompt_no_input\":\"{instruction}=\","
                              "\"response\":\"{output}\"}");
  return path;
}

char *
cria_test_sums_data (const char *dir, int n, int b_mul, int b_mod)
{
  g_autoptr (GString) data = g_string_new (NULL);
  for (int i = 0; i < n; i++) {
    int a = i * 7 % 50, b = i * b_mul % b_mod;
    g_string_append_printf (data, "{\"instruction\":\"add\",\"input\":\"%d + %d\",\"output\":\"%d\"}\n", a, b, a + b);
  }
  char *path = g_build_filename (dir, "train.jsonl", NULL);
  cria_test_write_file (path, data->str);
  return path;
}

static void write_byte_tokenizer (const char *dir);

char *
cria_test_tiny_model (const char *tmp, const char *name)
{
  char *dir = g_build_filename (tmp, "model", NULL);
  g_assert (g_mkdir_with_parents (dir, 0755) == 0);
  static const char *const files[] = { "config.json", "generation_config.json", "model.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *from = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, files[i], NULL);
    g_autofree char *to = g_build_filename (dir, files[i], NULL);
    g_autofree char *contents = NULL;
    gsize len = 0;
    g_assert (g_file_get_contents (from, &contents, &len, NULL));
    g_assert (g_file_set_contents (to, contents, (gssize) len, NULL));
  }
  write_byte_tokenizer (dir);
  return dir;
}

/* GPT-2's byte-to-unicode table: id b is byte b. */
static void
write_byte_tokenizer (const char *dir)
{
  int cp[256], n = 0;
  for (int b = 0; b < 256; b++) {
    gboolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[b] = printable ? b : 256 + n++;
  }
  g_autoptr (GString) s = g_string_new ("{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,"
                                        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                        "\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":null,"
                                        "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{");
  for (int b = 0; b < 256; b++) {
    char utf8[8] = { 0 };
    g_unichar_to_utf8 ((gunichar) cp[b], utf8);
    g_string_append_printf (s, "%s\"%s%s\":%d", b ? "," : "", cp[b] == '"' || cp[b] == '\\' ? "\\" : "", utf8, b);
  }
  g_string_append (s, "},\"merges\":[]}}");
  g_autofree char *path = g_build_filename (dir, "tokenizer.json", NULL);
  cria_test_write_file (path, s->str);
}

void
cria_test_die_with_parent (gpointer data)
{
#ifdef __linux__
  prctl (PR_SET_PDEATHSIG, SIGTERM);
#endif
}

char *
cria_test_start_listener (GSubprocessLauncher *launcher, const char *const *argv, GSubprocess **proc)
{
  g_autoptr (GSubprocessLauncher) plain = NULL;
  if (!launcher) {
    launcher = plain = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
    g_subprocess_launcher_set_child_setup (launcher, cria_test_die_with_parent, NULL, NULL);
  }
  g_autoptr (GError) error = NULL;
  *proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  g_autoptr (GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (*proc));
  g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_autofree char *prefix = g_strdup_printf ("cria %s: listening on ", argv[1]);
  g_assert (line && g_str_has_prefix (line, prefix));
  g_assert (g_str_has_prefix (line + strlen (prefix), "http://127.0.0.1:"));
  return g_strdup (line + strlen (prefix));
}

int
cria_test_stop_listener (GSubprocess *proc)
{
  g_subprocess_send_signal (proc, SIGTERM);
  g_autoptr (GError) error = NULL;
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  return g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc) : -1;
}

double
cria_test_rel_diff (const float *a, const float *b, gint64 n)
{
  double d = 0, m = 0;
  for (gint64 i = 0; i < n; i++) {
    d = MAX (d, fabs ((double) a[i] - b[i]));
    m = MAX (m, fabs ((double) b[i]));
  }
  return d / MAX (m, 1e-30);
}

gint32
cria_test_argmax (const float *x, gint64 n)
{
  gint64 best = 0;
  for (gint64 i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return (gint32) best;
}

static CriaTensor *
golden_i32 (CriaSafetensors *st, const char *key, int n_dims, const gint64 *shape)
{
  const CriaWeight *w = cria_safetensors_lookup (st, key);
  g_assert (w && w->dtype == CRIA_DTYPE_I32);
  CriaTensor *t = cria_tensor_new (CRIA_DTYPE_I32, n_dims, shape);
  memcpy (t->data, w->data, w->n_bytes);
  return t;
}

/* Each adapter param's gradient, summed over the graph's nodes of it. */
static gboolean
sum_grads (CriaGraph *g, GArray *params, CriaBackend *backend, GPtrArray *grads, GError **error)
{
  for (guint i = 0; i < params->len; i++) {
    CriaTensor *v = g_array_index (params, CriaAdapterParam, i).value;
    CriaTensor *sum = cria_tensor_new (CRIA_DTYPE_F32, v->n_dims, v->shape);
    g_ptr_array_add (grads, sum);
    for (guint k = 0; k < cria_graph_n_nodes (g); k++) {
      CriaNode *node = cria_graph_node (g, k);
      if (node->op != CRIA_OP_PARAM || cria_node_get_param_tensor (node) != v || !node->grad)
        continue;
      /* on a device backend the value bound is the resident copy, not the adapter's */
      if (cria_tensor_is_device (node->value) == cria_backend_is_host (backend) ||
          cria_tensor_is_device (node->grad) == cria_backend_is_host (backend)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_FAILED, "%s: the value or gradient of %s is not in its memory",
                     cria_backend_get_name (backend), g_array_index (params, CriaAdapterParam, i).name);
        return FALSE;
      }
      g_autoptr (CriaTensor) gr = cria_tensor_to_host (node->grad, error);
      if (!gr)
        return FALSE;
      for (gint64 e = 0; e < cria_tensor_numel (v); e++)
        ((float *) sum->data)[e] += ((float *) gr->data)[e];
    }
  }
  return TRUE;
}

gboolean
cria_test_lora_step (CriaRegistry *registry, const char *name, const char *spec_tail, CriaBackend *backend, float ce[2],
                     GPtrArray *grads, GError **error)
{
  g_autofree char *spec = g_strdup_printf ("lora r=4 alpha=8 %s", spec_tail);
  return cria_test_adapter_step (registry, name, spec, backend, ce, grads, error);
}

gboolean
cria_test_adapter_step (CriaRegistry *registry, const char *name, const char *spec, CriaBackend *backend, float ce[2],
                        GPtrArray *grads, GError **error)
{
  g_autofree char *file = g_strdup_printf ("grads-%s.safetensors", name);
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "train", file, NULL);
  g_autofree char *dir = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", name, NULL);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, error);
  g_autoptr (CriaModel) model = st ? cria_model_open (registry, dir, CRIA_MODEL_DTYPE_F32, error) : NULL;
  g_autoptr (CriaAdapter) a = model ? cria_adapter_new_from_spec (registry, spec, error) : NULL;
  if (!a || !cria_adapter_attach (a, model, 1, error))
    return FALSE;
  GArray *params = cria_adapter_get_params (a);
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    const CriaWeight *w = cria_safetensors_lookup (st, p->name);
    g_assert (w && w->n_elements == cria_tensor_numel (p->value));
    memcpy (p->value->data, w->data, w->n_bytes);
  }
  g_autoptr (CriaGraph) g = cria_graph_new ();
  cria_adapter_install (a, g);
  CriaModelShape shape = { .batch = 2, .seq = 8 };
  CriaModelGraph mg;
  if (!cria_model_build (model, g, &shape, &mg, error))
    return FALSE;
  gint64 flat[] = { 16, cria_model_get_config (model)->hidden_size }, n[] = { 16 };
  CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
  CriaNode *loss = cria_lm_head_ce (g, cria_reshape (g, mg.hidden, 2, flat), mg.head, labels, 100);
  g_autoptr (CriaTensor) ids = golden_i32 (st, "ids", 2, (gint64[]){ 2, 8 });
  g_autoptr (CriaTensor) lab = golden_i32 (st, "labels", 1, n);
  g_autoptr (CriaTensor) pos = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ 2, 8 });
  for (int i = 0; i < 16; i++)
    ((gint32 *) pos->data)[i] = i % 8;
  /* labels bound before planning (uploaded by the plan), the rest after */
  gboolean ok = cria_node_set_value (labels, lab, error) && cria_graph_backward (g, loss, error) &&
                cria_graph_plan (g, backend, NULL, error) && cria_node_set_value (mg.ids, ids, error) &&
                cria_node_set_value (mg.positions, pos, error) && cria_graph_forward (g, error) &&
                cria_graph_run_backward (g, error) &&
                cria_tensor_read (loss->value, 0, ce, 2 * sizeof (float), error) &&
                sum_grads (g, params, backend, grads, error);
  cria_model_graph_clear (&mg);
  return ok;
}

void
cria_test_run_graph (CriaGraph *g, CriaNode *loss, CriaBackend *backend, CriaPlanStats *stats)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = cria_graph_backward (g, loss, &error) && cria_graph_plan (g, backend, stats, &error) &&
                cria_graph_forward (g, &error) && cria_graph_run_backward (g, &error);
  if (!ok)
    printf ("\n%s\n", error->message);
  CU_ASSERT_TRUE_FATAL (ok);
}
