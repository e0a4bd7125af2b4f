/* test-train: `cria train` and `cria merge` end to end on the tiny GPT-2
 * checkpoint, with a byte-level tokenizer of its 256 ids written here.
 *
 * What a run leaves (PEFT adapter with PEFT's keys and shapes for GPT-2's
 * Conv1D layers, log, PNG, report, checkpoints), a run stopped and resumed
 * repeating the loss curve and the adapter bit for bit, Ctrl-C saving a
 * checkpoint, merged weights computing what base + adapter computes, full
 * fine-tuning writing a loadable checkpoint, and the bad inputs that must
 * fail before compute. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "cria-test.h"

static char *tmp;
static char *model_dir;
static char *data_path;
static char *format_path;

static void
setup (void)
{
  tmp = cria_test_tmpdir ();
  model_dir = cria_test_tiny_model (tmp, "tiny-gpt2");
  format_path = cria_test_short_format (tmp);
  data_path = cria_test_sums_data (tmp, 24, 13, 50);
}

static void
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  g_free (model_dir);
  g_free (data_path);
  g_free (format_path);
}

/* Runs cria train with the common options, then `extra` (NULL-terminated). */
static int
train (const char *out, const char *const *extra, char **err)
{
  const char *common[] = {
    "train", "--model",      model_dir, "--data",       data_path, "--format", format_path, "--max-length",
    "64",    "--batch-size", "2",       "--grad-accum", "2",       "--epochs", "3",         "--lr",
    "1e-2",  "--threads",    "1",       "--out",        out,       NULL
  };
  return cria_test_run_cria_lists (err, common, extra, NULL);
}

static char *
path_in (const char *dir, const char *name)
{
  return g_build_filename (dir, name, NULL);
}

/* The "loss" values of the step lines of a log, as written. */
static char *
losses (const char *dir)
{
  g_autofree char *path = path_in (dir, "train-log.jsonl");
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GRegex) re = g_regex_new ("\"step\":[0-9]+,\"epoch\":[0-9]+,\"loss\":[^,]+", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  for (g_regex_match (re, text, 0, &m); g_match_info_matches (m); g_match_info_next (m, NULL)) {
    g_autofree char *w = g_match_info_fetch (m, 0);
    g_string_append_printf (out, "%s\n", w);
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static const char *const lora_opts[] = { "--adapter", "lora r=4 target-modules=c_attn,c_fc dropout=0.1",
                                         "--packing", "--eval-ratio",
                                         "0.2",       NULL };

static void
test_outputs (void)
{
  g_autofree char *out = path_in (tmp, "run-a");
  CU_ASSERT_EQUAL_FATAL (train (out, lora_opts, NULL), 0);
  static const char *const files[] = { "adapter_config.json", "adapter_model.safetensors", "train-log.jsonl",
                                       "loss.png", "report.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *p = path_in (out, files[i]);
    CU_ASSERT_TRUE (g_file_test (p, G_FILE_TEST_IS_REGULAR));
  }
  g_autofree char *st_path = path_in (out, "adapter_model.safetensors");
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 8); /* 2 layers x (c_attn, c_fc) x (A, B) */
  const CriaWeight *a = cria_safetensors_lookup (st, "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight");
  const CriaWeight *b = cria_safetensors_lookup (st, "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight");
  CU_ASSERT_TRUE_FATAL (a && b);
  CU_ASSERT_TRUE (a->shape[0] == 4 && a->shape[1] == 32);  /* [r, in] */
  CU_ASSERT_TRUE (b->shape[0] == 128 && b->shape[1] == 4); /* [out, r] */
  g_autofree char *cfg_path = path_in (out, "adapter_config.json");
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, cfg_path, NULL));
  JsonObject *cfg = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_TRUE (json_object_get_boolean_member (cfg, "fan_in_fan_out"));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "base_model_name_or_path"), model_dir);
  g_autofree char *log = losses (out);
  CU_ASSERT_TRUE (strlen (log) > 0);
  g_autofree char *report_path = path_in (out, "report.json");
  g_autofree char *report = cria_test_read_file (report_path);
  CU_ASSERT_PTR_NOT_NULL (strstr (report, "\"final_eval_loss\""));
}

static void
test_resume (void)
{
  g_autofree char *a = path_in (tmp, "run-a");
  g_autofree char *b = path_in (tmp, "run-b");
  if (!g_file_test (a, G_FILE_TEST_IS_DIR))
    CU_ASSERT_EQUAL_FATAL (train (a, lora_opts, NULL), 0);
  const char *stop[] = {
    lora_opts[0], lora_opts[1], lora_opts[2], lora_opts[3], lora_opts[4], "--stop-after", "2", NULL
  };
  g_autofree char *stop_err = NULL;
  CU_ASSERT_EQUAL_FATAL (train (b, stop, &stop_err), 0);
  g_autofree char *ckpt = g_build_filename (b, "checkpoints", "checkpoint-2", NULL);
  CU_ASSERT_TRUE_FATAL (g_file_test (ckpt, G_FILE_TEST_IS_DIR));
  g_autofree char *png = path_in (b, "loss.png");
  CU_ASSERT_TRUE (g_file_test (png, G_FILE_TEST_IS_REGULAR)); /* a stopped run leaves its picture too */
  /* The hint printed, as printed: --resume DIR and nothing else. */
  const char *hint = stop_err ? strstr (stop_err, "continue with --resume ") : NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL (hint);
  g_autofree char *hint_dir = g_strndup (hint + strlen ("continue with --resume "),
                                         strcspn (hint + strlen ("continue with --resume "), "\n"));
  CU_ASSERT_STRING_EQUAL (hint_dir, ckpt);
  const char *alone[] = { "train", "--resume", hint_dir, NULL };
  g_autofree char *resume_err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (alone, NULL, NULL, &resume_err), 0);
  const char *resume[] = {
    lora_opts[0], lora_opts[1], lora_opts[2], lora_opts[3], lora_opts[4], "--resume", ckpt, NULL
  };
  g_autofree char *la = losses (a), *lb = losses (b);
  CU_ASSERT_STRING_EQUAL (la, lb);
  g_autofree char *wa = path_in (a, "adapter_model.safetensors"), *wb = path_in (b, "adapter_model.safetensors");
  gsize na = 0, nb = 0;
  g_autofree char *da = NULL, *db = NULL;
  CU_ASSERT_TRUE_FATAL (g_file_get_contents (wa, &da, &na, NULL) && g_file_get_contents (wb, &db, &nb, NULL));
  CU_ASSERT_TRUE (na == nb && memcmp (da, db, na) == 0);
  /* The report covers the whole run, not the resumed part only. */
  g_autofree char *report_path = path_in (b, "report.json");
  g_autoptr (JsonParser) rp = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (rp, report_path, NULL));
  JsonObject *report = json_node_get_object (json_parser_get_root (rp));
  g_autofree char *report_a = path_in (a, "report.json");
  g_autoptr (JsonParser) rpa = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (rpa, report_a, NULL));
  JsonObject *whole = json_node_get_object (json_parser_get_root (rpa));
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "steps"), json_object_get_int_member (whole, "steps"));
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "tokens_seen"),
                   json_object_get_int_member (whole, "tokens_seen"));
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "steps_this_run"),
                   json_object_get_int_member (whole, "steps") - 2);

  /* A checkpoint that spells a number otherwise (as older versions wrote
   * doubles) resumes the same run. */
  g_autofree char *state_path = g_build_filename (ckpt, "trainer_state.json", NULL);
  g_autofree char *state = cria_test_read_file (state_path);
  g_autoptr (GRegex) lr = g_regex_new ("\"lr\" *: *\"[^\"]*\"", 0, 0, NULL);
  g_autofree char *respelled = g_regex_replace_literal (lr, state, -1, 0, "\"lr\": \"0.010000000000000000208\"", 0,
                                                        NULL);
  CU_ASSERT_STRING_NOT_EQUAL (respelled, state);
  cria_test_write_file (state_path, respelled);
  CU_ASSERT_EQUAL_FATAL (train (b, resume, NULL), 0);
  g_autofree char *lb2 = losses (b);
  CU_ASSERT_STRING_EQUAL (la, lb2);

  /* Resuming with other numbers is refused. */
  const char *other[] = { lora_opts[0], lora_opts[1], lora_opts[2], lora_opts[3], lora_opts[4],
                          "--resume",   ckpt,         "--seed",     "7",          NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_NOT_EQUAL (train (b, other, &err), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "option --seed"));

  /* Another run's directory is not written over, unless asked. */
  g_autofree char *over_err = NULL;
  CU_ASSERT_EQUAL (train (a, stop, &over_err), 1);
  CU_ASSERT_PTR_NOT_NULL (over_err && strstr (over_err, "is not empty") && strstr (over_err, "--overwrite"));
}

static void
test_interrupt (void)
{
  g_autofree char *out = path_in (tmp, "run-int");
  g_autofree char *ckpts = path_in (out, "checkpoints");
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_new (
      G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, cria_test_env ("CRIA_BIN"), "train",
      "--model", model_dir, "--data", data_path, "--format", format_path, "--max-length", "64", "--threads", "1",
      "--adapter", "lora r=2 target-modules=c_attn", "--max-steps", "1000000", "--save-every", "1", "--out", out, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (proc);
  /* Wait for the first checkpoint: the run is then in its loop. */
  for (int i = 0; i < 3000 && !g_file_test (ckpts, G_FILE_TEST_IS_DIR); i++)
    g_usleep (10000);
  CU_ASSERT_TRUE_FATAL (g_file_test (ckpts, G_FILE_TEST_IS_DIR));
  g_subprocess_send_signal (proc, SIGINT);
  g_autofree char *err_text = NULL;
  CU_ASSERT_TRUE (g_subprocess_communicate_utf8 (proc, NULL, NULL, NULL, &err_text, &error));
  CU_ASSERT_EQUAL (g_subprocess_get_exit_status (proc), 130);
  CU_ASSERT_PTR_NOT_NULL (err_text && strstr (err_text, "checkpoint saved: continue with --resume"));
  g_autofree char *png = path_in (out, "loss.png");
  CU_ASSERT_TRUE (g_file_test (png, G_FILE_TEST_IS_REGULAR));
}

/* The merged checkpoint computes what base + adapter computes. */
static double
batch_loss_nf4 (CriaRegistry *reg, const char *dir, const char *adapter_dir, gboolean nf4)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) model = cria_model_open (reg, dir, CRIA_MODEL_DTYPE_F32, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (model);
  if (nf4)
    CU_ASSERT_TRUE_FATAL (cria_adapter_quantize_model (model, &error));
  g_autoptr (CriaAdapter) adapter = adapter_dir ? cria_adapter_load (reg, model, adapter_dir, &error) : NULL;
  if (adapter_dir && !adapter)
    printf ("\n%s\n", error->message);
  g_autoptr (CriaBackend) backend = cria_backend_open (reg, "cpu", &error);
  g_autoptr (CriaGraph) g = cria_graph_new ();
  if (adapter)
    cria_adapter_install (adapter, g);
  CriaModelShape shape = { .batch = 1, .seq = 12 };
  CriaModelGraph mg;
  CU_ASSERT_TRUE_FATAL (cria_model_build (model, g, &shape, &mg, &error));
  gint64 flat[] = { 12, 32 }, n[] = { 12 };
  CriaNode *labels = cria_graph_input (g, "labels", CRIA_DTYPE_I32, 1, n);
  CriaNode *ce = cria_lm_head_ce (g, cria_reshape (g, mg.hidden, 2, flat), mg.head, labels, 64);
  g_autoptr (CriaTensor) ids = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ 1, 12 });
  g_autoptr (CriaTensor) pos = cria_tensor_new (CRIA_DTYPE_I32, 2, (gint64[]){ 1, 12 });
  g_autoptr (CriaTensor) lab = cria_tensor_new (CRIA_DTYPE_I32, 1, n);
  const char *text = "add 3 + 4=7!";
  for (int i = 0; i < 12; i++) {
    ((gint32 *) ids->data)[i] = (guchar) text[i];
    ((gint32 *) pos->data)[i] = i;
    ((gint32 *) lab->data)[i] = i < 11 ? (guchar) text[i + 1] : CRIA_IGNORE_INDEX;
  }
  gboolean ok = cria_graph_plan (g, backend, NULL, &error) && cria_node_set_value (mg.ids, ids, &error) &&
                cria_node_set_value (mg.positions, pos, &error) && cria_node_set_value (labels, lab, &error) &&
                cria_graph_forward (g, &error);
  cria_model_graph_clear (&mg);
  CU_ASSERT_TRUE_FATAL (ok);
  return ((float *) ce->value->data)[0];
}

static double
batch_loss (CriaRegistry *reg, const char *dir, const char *adapter_dir)
{
  return batch_loss_nf4 (reg, dir, adapter_dir, FALSE);
}

static void
test_merge (void)
{
  g_autofree char *a = path_in (tmp, "run-a");
  if (!g_file_test (a, G_FILE_TEST_IS_DIR))
    CU_ASSERT_EQUAL_FATAL (train (a, lora_opts, NULL), 0);
  g_autofree char *merged = path_in (tmp, "merged");
  const char *args[] = { "merge", "--model", model_dir, "--adapter", a, "--out", merged, NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, &err), 0);
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  double with = batch_loss (reg, model_dir, a);
  double m = batch_loss (reg, merged, NULL);
  double base = batch_loss (reg, model_dir, NULL);
  CU_ASSERT_DOUBLE_EQUAL (m, with, 1e-5 * fabs (with));
  CU_ASSERT_TRUE (fabs (base - with) > 1e-4);
}

/* Greedy text of the merged checkpoint = greedy text of base + adapter. */
static char *
greedy_text (CriaRegistry *reg, const char *dir, const char *adapter_dir)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) model = cria_model_open (reg, dir, CRIA_MODEL_DTYPE_F32, &error);
  g_autoptr (CriaTokenizer) tok = model ? cria_tokenizer_load (reg, model_dir, &error) : NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL (tok);
  g_autoptr (CriaAdapter) adapter = adapter_dir ? cria_adapter_load (reg, model, adapter_dir, &error) : NULL;
  g_autoptr (CriaBackend) backend = cria_backend_open (reg, "cpu", &error);
  g_autoptr (CriaLm) lm = cria_lm_new (model, backend);
  if (adapter) {
    gpointer data = NULL;
    CriaLinearHook hook = cria_adapter_get_linear_hook (adapter, &data);
    cria_lm_set_linear_hook (lm, hook, data);
  }
  CriaSampling s;
  cria_sampling_init (&s);
  s.max_new_tokens = 16;
  const char *prompt = "add 12 + 30=";
  g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, prompt, -1, CRIA_ENCODE_DEFAULT, &error);
  CriaGeneration gen = { 0 };
  gboolean ok = cria_lm_generate (lm, NULL, (const gint32 *) (void *) enc->ids->data, enc->ids->len, &s, NULL, NULL,
                                  &gen, &error);
  if (!ok)
    printf ("\n%s\n", error->message);
  CU_ASSERT_TRUE_FATAL (ok);
  g_autoptr (GString) ids = g_string_new (NULL);
  for (guint i = 0; i < gen.ids->len; i++)
    g_string_append_printf (ids, "%d ", g_array_index (gen.ids, gint32, i));
  cria_generation_clear (&gen);
  return g_string_free (g_steal_pointer (&ids), FALSE);
}

static void
test_merge_generates (void)
{
  g_autofree char *a = path_in (tmp, "run-a");
  g_autofree char *merged = path_in (tmp, "merged");
  if (!g_file_test (merged, G_FILE_TEST_IS_DIR))
    test_merge ();
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autofree char *with = greedy_text (reg, model_dir, a);
  g_autofree char *m = greedy_text (reg, merged, NULL);
  g_autofree char *base = greedy_text (reg, model_dir, NULL);
  CU_ASSERT_STRING_EQUAL (m, with);
  if (strcmp (base, with) == 0)
    printf ("\n(note: the adapter does not change the greedy ids of this prompt)\n");
}

/* The first and last "loss" of a run's log. */
static void
first_last_loss (const char *dir, double *first, double *last)
{
  g_autofree char *log = losses (dir);
  g_auto (GStrv) lines = g_strsplit (log, "\n", -1);
  guint n = g_strv_length (lines);
  CU_ASSERT_TRUE_FATAL (n >= 3);
  *first = g_ascii_strtod (strstr (lines[0], "\"loss\":") + 7, NULL);
  *last = g_ascii_strtod (strstr (lines[n - 2], "\"loss\":") + 7, NULL);
}

/* qlora: the base's linear weights go NF4, the loss falls, the adapter is
 * PEFT LoRA, and merging with --nf4-base = NF4 base + adapter. */
static void
test_qlora (void)
{
  g_autofree char *out = path_in (tmp, "run-qlora");
  const char *opts[] = { "--adapter", "qlora r=4 target-modules=c_attn,c_fc", NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (train (out, opts, &err), 0);
  /* tiny GPT-2: 2 layers x (c_attn 32x96, c_proj 32x32, c_fc 32x128, mlp c_proj 128x32) */
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "8 linear weights of the base quantized to NF4"));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "memory:"));
  double first = 0, last = 0;
  first_last_loss (out, &first, &last);
  CU_ASSERT_TRUE (last < first);
  g_autofree char *cfg_path = path_in (out, "adapter_config.json");
  g_autofree char *cfg = cria_test_read_file (cfg_path);
  CU_ASSERT_PTR_NOT_NULL (strstr (cfg, "\"peft_type\" : \"LORA\""));

  g_autofree char *merged = path_in (tmp, "merged-qlora");
  const char *args[] = { "merge", "--model", model_dir, "--adapter", out, "--nf4-base", "--out", merged, NULL };
  g_autofree char *merr = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, &merr), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (merr, "dequantized NF4 weights"));
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  double with = batch_loss_nf4 (reg, model_dir, out, TRUE);
  double m = batch_loss (reg, merged, NULL);
  double plain = batch_loss (reg, model_dir, out); /* the adapter on the unquantized base */
  CU_ASSERT_DOUBLE_EQUAL (m, with, 1e-5 * fabs (with));
  CU_ASSERT_TRUE (fabs (plain - with) > 1e-6);
  /* The NF4 base alone = its dequantized weights, which is what the merged
   * checkpoint holds where the adapter adds nothing (c_proj). */
  double q = batch_loss_nf4 (reg, model_dir, NULL, TRUE);
  CU_ASSERT_TRUE (isfinite (q) && fabs (q - batch_loss (reg, model_dir, NULL)) > 0);
}

static void expect_failure (const char *const *opts, int status, const char *message);

/* adalora: the schedule prunes to target-r per module on average, the saved
 * tensors and config are PEFT's AdaLoRA, and it loads back and merges. */
static void
test_adalora (void)
{
  g_autofree char *out = path_in (tmp, "run-adalora");
  const char *opts[] = { "--adapter", "adalora init-r=4 target-r=2 tinit=1 tfinal=2 target-modules=c_attn,c_fc",
                         "--max-steps", "8", NULL };
  CU_ASSERT_EQUAL_FATAL (train (out, opts, NULL), 0);
  g_autofree char *cfg_path = path_in (out, "adapter_config.json");
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, cfg_path, NULL));
  JsonObject *cfg = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (cfg, "peft_type"), "ADALORA");
  CU_ASSERT_EQUAL (json_object_get_int_member (cfg, "init_r"), 4);
  CU_ASSERT_EQUAL (json_object_get_int_member (cfg, "target_r"), 2);
  CU_ASSERT_EQUAL (json_object_get_int_member (cfg, "total_step"), 8);
  CU_ASSERT_EQUAL (json_object_get_int_member (cfg, "deltaT"), 1);
  JsonObject *pattern = json_object_get_object_member (cfg, "rank_pattern");
  CU_ASSERT_PTR_NOT_NULL_FATAL (pattern);
  CU_ASSERT_EQUAL (json_object_get_size (pattern), 4);
  JsonArray *flags = json_object_get_array_member (pattern, "transformer.h.0.attn.c_attn.lora_E.default");
  CU_ASSERT_PTR_NOT_NULL_FATAL (flags);
  CU_ASSERT_EQUAL (json_array_get_length (flags), 4);
  gint64 kept = 0;
  for (guint i = 0; i < json_array_get_length (flags); i++)
    kept += json_array_get_boolean_element (flags, i);

  g_autofree char *st_path = path_in (out, "adapter_model.safetensors");
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 12);
  const char *pre = "base_model.model.transformer.h.0.attn.c_attn.";
  g_autofree char *ka = g_strconcat (pre, "lora_A", NULL), *ke = g_strconcat (pre, "lora_E", NULL),
                  *kb = g_strconcat (pre, "lora_B", NULL);
  const CriaWeight *wa = cria_safetensors_lookup (st, ka), *we = cria_safetensors_lookup (st, ke),
                   *wb = cria_safetensors_lookup (st, kb);
  CU_ASSERT_TRUE_FATAL (wa && we && wb);
  CU_ASSERT_TRUE (wa->shape[0] == kept && wa->shape[1] == 32);
  CU_ASSERT_TRUE (we->shape[0] == kept && we->shape[1] == 1);
  CU_ASSERT_TRUE (wb->shape[0] == 96 && wb->shape[1] == kept);
  gint64 total = 0;
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const CriaWeight *w = cria_safetensors_get_weight (st, i);
    if (g_str_has_suffix (w->name, "lora_E"))
      total += w->shape[0];
  }
  CU_ASSERT_TRUE (total <= 8); /* target-r x 4 modules; ties can prune more */

  /* Loads back (what --adapter does) and merges to the same numbers. */
  g_autofree char *merged = path_in (tmp, "merged-adalora");
  const char *args[] = { "merge", "--model", model_dir, "--adapter", out, "--out", merged, NULL };
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, NULL), 0);
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  double with = batch_loss (reg, model_dir, out);
  CU_ASSERT_DOUBLE_EQUAL (batch_loss (reg, merged, NULL), with, 1e-5 * fabs (with));
  CU_ASSERT_TRUE (fabs (batch_loss (reg, model_dir, NULL) - with) > 1e-7);

  expect_failure ((const char *[]){ "--adapter", "adalora init-r=2 target-r=4", NULL }, 1,
                  "target-r=4 is above init-r=2");
  expect_failure ((const char *[]){ "--adapter", "adalora rank=3", NULL }, 1, "rank");
}

/* The regularizer the trainer gets from the adalora hook: its gradient on
 * P and Q against central differences of the value it returns. */
static void
test_adalora_regularizer (void)
{
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaAdapter) ad = cria_adapter_new_from_spec (reg,
                                                           "adalora init-r=3 target-r=2 target-modules=all-linear "
                                                           "orth-reg-weight=0.7",
                                                           &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ad);
  g_autoptr (CriaTensor) w0 = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 5, 4 });
  g_autoptr (CriaTensor) w1 = cria_tensor_new (CRIA_DTYPE_F32, 2, (gint64[]){ 4, 6 });
  CriaAdapterEntry entries[] = { { .name = "l0.proj.weight", .tensor = w0, .linear = TRUE },
                                 { .name = "l1.proj.weight", .tensor = w1, .linear = TRUE } };
  CU_ASSERT_TRUE_FATAL (cria_adapter_attach_entries (ad, entries, 2, NULL, 11, &error));
  GArray *params = cria_adapter_get_params (ad);
  CU_ASSERT_EQUAL_FATAL (params->len, 6);
  float *grads[6];
  for (guint i = 0; i < 6; i++)
    grads[i] = g_new0 (float, cria_tensor_numel (g_array_index (params, CriaAdapterParam, i).value));
  CriaAdapterStep st = { 0, 10, grads, 6 };
  double r0 = cria_adapter_regularize (ad, &st);
  CU_ASSERT_TRUE (r0 > 0);
  float *scratch[6];
  for (guint i = 0; i < 6; i++)
    scratch[i] = g_new0 (float, cria_tensor_numel (g_array_index (params, CriaAdapterParam, i).value));
  CriaAdapterStep st2 = { 0, 10, scratch, 6 };
  double worst = 0;
  for (guint i = 0; i < 6; i++) {
    CriaTensor *v = g_array_index (params, CriaAdapterParam, i).value;
    float *d = v->data;
    for (gint64 k = 0; k < cria_tensor_numel (v); k++) {
      float keep = d[k];
      const double h = 1e-3;
      d[k] = keep + (float) h;
      double up = cria_adapter_regularize (ad, &st2);
      d[k] = keep - (float) h;
      double down = cria_adapter_regularize (ad, &st2);
      d[k] = keep;
      worst = MAX (worst, fabs ((up - down) / (2 * h) - grads[i][k]));
    }
  }
  CU_ASSERT_TRUE (worst < 2e-3);
  if (worst >= 2e-3)
    printf ("\nregularizer gradient off by %g\n", worst);
  for (guint i = 0; i < 6; i++) {
    g_free (grads[i]);
    g_free (scratch[i]);
  }
}

static void
test_full (void)
{
  g_autofree char *out = path_in (tmp, "run-full");
  const char *opts[] = { "--adapter", "full", "--max-steps", "2", NULL };
  CU_ASSERT_EQUAL_FATAL (train (out, opts, NULL), 0);
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) m = cria_model_open (reg, out, CRIA_MODEL_DTYPE_AUTO, &error);
  CU_ASSERT_PTR_NOT_NULL (m);
  CU_ASSERT_TRUE (fabs (batch_loss (reg, out, NULL) - batch_loss (reg, model_dir, NULL)) > 1e-4);
}

/* Pretraining text longer than max-length is cut into pieces, not truncated:
 * 40 bytes + eos at 16 tokens per example are 16 + 16 + 9. */
static void
test_text_split (void)
{
  g_autofree char *out = path_in (tmp, "run-text");
  g_autofree char *text_path = path_in (tmp, "text.jsonl");
  cria_test_write_file (text_path, "{\"output\":\"abcdefghijabcdefghijabcdefghijabcdefghij\"}\n"
                                   "{\"output\":\"short\"}\n");
  const char *args[] = { "train", "--model",   model_dir, "--data",       text_path, "--format",
                         "text",  "--adapter", "full",    "--max-length", "16",      "--max-steps",
                         "1",     "--threads", "1",       "--out",        out,       NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, &err), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "1 texts longer than max-length 16 cut into pieces (4 examples)"));
  g_autofree char *report_path = path_in (out, "report.json");
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, report_path, NULL));
  JsonObject *report = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "train_examples"), 4);
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "truncated_examples"), 0);
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "split_texts"), 1);
}

/* --on-long: a record longer than max-length is skipped (the default) or
 * truncated, counted, and the run goes on; one whose prompt alone is too
 * long is skipped under truncate too. */
static void
test_on_long (void)
{
  g_autofree char *data = path_in (tmp, "long.jsonl");
  cria_test_write_file (data, "{\"instruction\":\"a\",\"output\":\"b\"}\n"
                              "{\"instruction\":\"a\",\"output\":\"bbbbbbbbbbbbbbbbbbbbbbbb\"}\n"
                              "{\"instruction\":\"aaaaaaaaaaaaaaaaaaaaaaaa\",\"output\":\"b\"}\n"
                              "{\"instruction\":\"c\",\"output\":\"d\"}\n");
  static const struct {
    const char *mode;
    gint64 examples, skipped, truncated;
  } cases[] = { { "skip", 2, 2, 0 }, { "truncate", 3, 1, 1 } };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *name = g_strdup_printf ("run-long-%s", cases[i].mode);
    g_autofree char *out = path_in (tmp, name);
    const char *args[] = { "train",
                           "--model",
                           model_dir,
                           "--data",
                           data,
                           "--format",
                           format_path,
                           "--adapter",
                           "lora r=2 target-modules=c_attn",
                           "--max-length",
                           "16",
                           "--max-steps",
                           "1",
                           "--threads",
                           "1",
                           "--on-long",
                           cases[i].mode,
                           "--out",
                           out,
                           NULL };
    g_autofree char *err = NULL;
    CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, NULL, &err), 0);
    g_autofree char *report_path = path_in (out, "report.json");
    g_autoptr (JsonParser) p = json_parser_new ();
    CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, report_path, NULL));
    JsonObject *report = json_node_get_object (json_parser_get_root (p));
    CU_ASSERT_EQUAL (json_object_get_int_member (report, "train_examples"), cases[i].examples);
    CU_ASSERT_EQUAL (json_object_get_int_member (report, "long_skipped_examples"), cases[i].skipped);
    CU_ASSERT_EQUAL (json_object_get_int_member (report, "truncated_examples"), cases[i].truncated);
    g_autofree char *said = g_strdup_printf ("%" G_GINT64_FORMAT " records longer than max-length 16 skipped "
                                             "(on-long=%s)",
                                             cases[i].skipped, cases[i].mode);
    CU_ASSERT_PTR_NOT_NULL (err && strstr (err, said));
  }
}

static void
expect_failure (const char *const *opts, int status, const char *message)
{
  g_autofree char *out = path_in (tmp, "run-bad");
  g_autofree char *err = NULL;
  int got = train (out, opts, &err);
  CU_ASSERT_EQUAL (got, status);
  if (got != status)
    printf ("\n%s ...: exit %d, expected %d: %s\n", opts[0], got, status, err ? err : "(nothing)");
  if (!err || !strstr (err, message))
    printf ("\nexpected '%s' in: %s\n", message, err ? err : "(nothing)");
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, message));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS)); /* nothing computed, nothing written */
}

static void
test_bad_input (void)
{
  expect_failure ((const char *[]){ "--no-such-option", "1", NULL }, 2, "no-such-option");
  expect_failure ((const char *[]){ "--lr", "fast", NULL }, 2, "lr");
  expect_failure ((const char *[]){ "--max-length", "6", NULL }, 1, "all 24 records are longer than max-length 6");
  expect_failure ((const char *[]){ "--max-length", "6", "--on-long", "error", NULL }, 1,
                  "record 1: 12 tokens, longer than max-length 6");
  expect_failure ((const char *[]){ "--on-long", "cut", NULL }, 2, "option --on-long: 'cut' is not one of");
  expect_failure ((const char *[]){ "--resume", "no-such-checkpoint", NULL }, 1,
                  "resume: no-such-checkpoint/trainer_state.json");
  expect_failure ((const char *[]){ "--adapter", "lora target-modules=q_proj", NULL }, 1, "matches no linear layer");
  expect_failure ((const char *[]){ "--adapter", "nosuch", NULL }, 1, "nosuch");
  /* --backend takes a spec with properties, as the other verbs do */
  expect_failure ((const char *[]){ "--backend", "cpu no-such-property=1", NULL }, 1, "no-such-property");
  expect_failure ((const char *[]){ "--backend", "cpu fuse=maybe", NULL }, 1, "fuse");
  expect_failure ((const char *[]){ "--max-length", "65", NULL }, 1, "beyond the 64 positions");

  g_autofree char *cfg = path_in (tmp, "bad.json");
  cria_test_write_file (cfg, "{\"lr\": 0.001, \"warmup\": 3}");
  g_autofree char *d = g_strdup_printf ("--config=%s", cfg);
  expect_failure ((const char *[]){ d, NULL }, 2, "no property 'warmup'");

  g_autofree char *bad_data = path_in (tmp, "bad.jsonl");
  cria_test_write_file (bad_data, "{\"instruction\":\"add\",\"output\":\"1\"}\n{\"instruction\": 5\n");
  g_autofree char *out = path_in (tmp, "run-bad");
  const char *args[] = { "train", "--model", model_dir, "--data", bad_data, "--max-length", "64", "--out", out, NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "bad.jsonl"));

  /* An adapter of another model. */
  g_autofree char *llama = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-llama", NULL);
  g_autofree char *a = path_in (tmp, "run-a");
  if (g_file_test (a, G_FILE_TEST_IS_DIR)) {
    g_autofree char *merged = path_in (tmp, "merged-bad");
    const char *margs[] = { "merge", "--model", llama, "--adapter", a, "--out", merged, NULL };
    g_autofree char *merr = NULL;
    CU_ASSERT_EQUAL (cria_test_run_cria (margs, NULL, NULL, &merr), 1);
    CU_ASSERT_PTR_NOT_NULL (merr && strstr (merr, "matches no linear layer"));
  }
}

/* --recompute: the same loss curve and adapter, bit for bit, as run-a's
 * (test_outputs), and the memory line says it. */
static void
test_recompute (void)
{
  g_autofree char *a = path_in (tmp, "run-a");
  g_autofree char *out = path_in (tmp, "run-recompute");
  const char *opts[G_N_ELEMENTS (lora_opts) + 1] = { "--recompute" };
  memcpy (opts + 1, lora_opts, sizeof lora_opts);
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (train (out, opts, &err), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "each block recomputed in backward"));
  g_autofree char *want = losses (a), *got = losses (out);
  CU_ASSERT_TRUE (*want && strcmp (want, got) == 0);
  g_autofree char *wa = path_in (a, "adapter_model.safetensors"), *ga = path_in (out, "adapter_model.safetensors");
  g_autofree char *wt = NULL, *gt = NULL;
  gsize wn = 0, gn = 0;
  CU_ASSERT_TRUE_FATAL (g_file_get_contents (wa, &wt, &wn, NULL) && g_file_get_contents (ga, &gt, &gn, NULL));
  CU_ASSERT_TRUE (wn == gn && memcmp (wt, gt, wn) == 0);
}

/* The tiny GPT-2 with position 40 of its learned position embeddings set to
 * +Inf: an example reaching 41 tokens gets a NaN loss, shorter ones do not. */
static char *
write_inf_model (void)
{
  char *dir = path_in (tmp, "model-inf");
  g_mkdir (dir, 0755);
  static const char *const files[] = { "config.json", "generation_config.json", "tokenizer.json", "model.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *from = path_in (model_dir, files[i]), *to = path_in (dir, files[i]);
    g_autofree char *text = NULL;
    gsize len = 0;
    g_assert (g_file_get_contents (from, &text, &len, NULL));
    if (i == 3) {
      guint64 head = GUINT64_FROM_LE (*(guint64 *) (void *) text);
      g_autoptr (JsonParser) p = json_parser_new ();
      g_assert (json_parser_load_from_data (p, text + 8, (gssize) head, NULL));
      JsonObject *wpe = json_object_get_object_member (json_node_get_object (json_parser_get_root (p)),
                                                       "transformer.wpe.weight");
      gint64 start = json_array_get_int_element (json_object_get_array_member (wpe, "data_offsets"), 0);
      float *row = (float *) (void *) (text + 8 + head + start) + 40 * 32;
      for (int k = 0; k < 32; k++)
        row[k] = INFINITY;
    }
    g_assert (g_file_set_contents (to, text, (gssize) len, NULL));
  }
  return dir;
}

/* Trains the Inf model at batch 1 for one epoch over `n` records of 11 to 13
 * tokens then `long_n` of 50, with --nan-limit 2 and `extra`; returns the
 * exit status and stderr. */
static int
train_guard (const char *out, int n, int long_n, const char *extra, char **err)
{
  g_autofree char *inf = write_inf_model ();
  g_autofree char *data = path_in (tmp, "guard.jsonl");
  g_autoptr (GString) text = g_string_new (NULL);
  for (int i = 0; i < n + long_n; i++)
    g_string_append_printf (text, "{\"instruction\":\"add\",\"input\":\"%s%d + %d\",\"output\":\"%d\"}\n",
                            i < n ? "" : "0+0+0+0+0+0+0+0+0+0+0+0+0+0+0+0+0+0+0+", i, i + 1, 2 * i + 1);
  cria_test_write_file (data, text->str);
  g_auto (GStrv) more = g_strsplit (extra, " ", -1);
  const char *opts[] = { "--model",      inf,     "--data",   data, "--batch-size", "1",
                         "--grad-accum", "1",     "--epochs", "1",  "--nan-limit",  "2",
                         more[0],        more[1], NULL };
  return train (out, opts, err);
}

static void
test_nan_skip (void)
{
  g_autofree char *out = path_in (tmp, "run-nan");
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL_FATAL (train_guard (out, 5, 1, "--schedule linear", &err), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "skipped: non-finite loss (1 in a row)"));
  g_autofree char *report_path = path_in (out, "report.json"), *log_path = path_in (out, "train-log.jsonl");
  g_autoptr (JsonParser) p = json_parser_new ();
  CU_ASSERT_TRUE_FATAL (json_parser_load_from_file (p, report_path, NULL));
  JsonObject *report = json_node_get_object (json_parser_get_root (p));
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "steps"), 6);
  CU_ASSERT_EQUAL (json_object_get_int_member (report, "skipped_steps"), 1);
  CU_ASSERT_TRUE (isfinite (json_object_get_double_member (report, "final_loss")));
  /* The skipped step is logged; the schedule follows the updates made: the
   * k-th update of 6 has lr 1e-2 * (6 - k) / 6, skipped steps or not. */
  g_autofree char *log = cria_test_read_file (log_path);
  g_auto (GStrv) lines = g_strsplit (log, "\n", -1);
  int updates = 0, skipped = 0;
  for (guint i = 0; lines[i] && *lines[i]; i++) {
    g_autoptr (JsonParser) lp = json_parser_new ();
    CU_ASSERT_TRUE_FATAL (json_parser_load_from_data (lp, lines[i], -1, NULL));
    JsonObject *o = json_node_get_object (json_parser_get_root (lp));
    if (json_object_has_member (o, "skipped")) {
      skipped++;
      CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "skipped"), "non-finite loss");
      CU_ASSERT_EQUAL (json_object_get_int_member (o, "skipped_steps"), 1);
    } else if (json_object_has_member (o, "lr")) {
      double lr = json_object_get_double_member (o, "lr"), want = 1e-2 * (6 - updates) / 6;
      if (fabs (lr - want) > 1e-12)
        printf ("\nupdate %d: lr %.17g, expected %.17g\n", updates, lr, want);
      CU_ASSERT_TRUE (fabs (lr - want) <= 1e-12);
      updates++;
    }
  }
  CU_ASSERT_EQUAL (skipped, 1);
  CU_ASSERT_EQUAL (updates, 5);
}

static void
test_nan_limit (void)
{
  g_autofree char *out = path_in (tmp, "run-nan-limit");
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (train_guard (out, 0, 4, "--save-every 1", &err), 1);
  g_autofree char *last = g_strstrip (g_strdup (strrchr (g_strstrip (err), '\n') ? strrchr (err, '\n') : err));
  if (!strstr (last, "2 steps in a row had a non-finite loss or gradients (--nan-limit 2): stopping at step 2"))
    printf ("\nlast line: %s\n", last);
  CU_ASSERT_PTR_NOT_NULL (strstr (last, "(--nan-limit 2): stopping at step 2"));
  CU_ASSERT_PTR_NULL (strchr (last, '\n'));
  g_autofree char *ckpt = g_build_filename (out, "checkpoints", "checkpoint-1", NULL);
  CU_ASSERT_TRUE (g_file_test (ckpt, G_FILE_TEST_IS_DIR));
}

/* An adapter saved with modules_to_save (as LLaMA-Factory writes a trained
 * lm_head) under `key`, with an untrained LoRA beside it: loading it puts
 * the saved head in the base's place. Returns the error of the load, if any. */
static char *
load_with_saved_head (CriaRegistry *reg, const char *llama, const char *key, gint64 rows, gboolean declared,
                      float *head_out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = path_in (tmp, "saved-head");
  cria_test_rmtree (dir);
  {
    g_autoptr (CriaModel) m = cria_model_open (reg, llama, CRIA_MODEL_DTYPE_F32, &error);
    g_autoptr (CriaAdapter) a = cria_adapter_new_from_spec (reg, "lora r=2 target-modules=q_proj", &error);
    CU_ASSERT_TRUE_FATAL (m && a && cria_adapter_attach (a, m, 1, &error) &&
                          cria_adapter_save_peft (a, dir, llama, &error));
  }
  g_autofree char *st_path = path_in (dir, "adapter_model.safetensors");
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (st_path, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  g_autoptr (CriaSafetensorsWriter) w = cria_safetensors_writer_new ();
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++)
    CU_ASSERT_TRUE (cria_safetensors_writer_add (w, cria_safetensors_get_weight (st, i), &error));
  g_autofree float *head = g_new (float, rows * 32);
  for (gint64 i = 0; i < rows * 32; i++)
    head[i] = (float) ((i * 37 % 101) - 50) / 50.0f;
  CriaWeight hw = { .name = (char *) key,
                    .dtype = CRIA_DTYPE_F32,
                    .n_dims = 2,
                    .shape = { rows, 32 },
                    .n_elements = rows * 32,
                    .data = head,
                    .n_bytes = (gsize) (rows * 32) * sizeof (float) };
  CU_ASSERT_TRUE_FATAL (cria_safetensors_writer_add (w, &hw, &error));
  CU_ASSERT_TRUE_FATAL (cria_safetensors_writer_write (w, st_path, &error));
  g_autofree char *cfg_path = path_in (dir, "adapter_config.json");
  g_autofree char *cfg = cria_test_read_file (cfg_path);
  g_autoptr (GRegex) re = g_regex_new ("\"modules_to_save\" *: *null", 0, 0, NULL);
  g_autofree char *with = g_regex_replace_literal (
      re, cfg, -1, 0, declared ? "\"modules_to_save\": [\"lm_head\"]" : "\"modules_to_save\": null", 0, NULL);
  CU_ASSERT_TRUE (!declared || strcmp (with, cfg) != 0);
  cria_test_write_file (cfg_path, with);

  g_autoptr (CriaModel) model = cria_model_open (reg, llama, CRIA_MODEL_DTYPE_F32, &error);
  CU_ASSERT_PTR_NOT_NULL_FATAL (model);
  g_autoptr (CriaAdapter) adapter = cria_adapter_load (reg, model, dir, &error);
  if (!adapter)
    return g_strdup (error->message);
  CriaTensor *t = cria_model_get_param (model, "lm_head.weight");
  memcpy (head_out, t->data, 256 * 32 * sizeof (float));
  CU_ASSERT_EQUAL (memcmp (head_out, head, 256 * 32 * sizeof (float)), 0);
  return NULL;
}

static void
test_modules_to_save (void)
{
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autofree char *llama = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-llama", NULL);
  g_autofree float *head = g_new (float, 256 * 32);
  /* PEFT's saved name, and the live model's (modules_to_save.default kept). */
  static const char *const keys[] = { "base_model.model.lm_head.weight",
                                      "base_model.model.lm_head.modules_to_save.default.weight" };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++) {
    g_autofree char *err = load_with_saved_head (reg, llama, keys[i], 256, TRUE, head);
    if (err)
      printf ("\n%s: %s\n", keys[i], err);
    CU_ASSERT_PTR_NULL (err);
  }
  /* Not declared in modules_to_save: a tensor of another adapter. */
  g_autofree char *undeclared = load_with_saved_head (reg, llama, keys[0], 256, FALSE, head);
  CU_ASSERT_PTR_NOT_NULL (undeclared && strstr (undeclared, "matches no adapted layer"));
  /* A resized vocabulary without the tokenizer of its added tokens is
   * refused (test-resized-vocab loads complete ones). */
  g_autofree char *resized = load_with_saved_head (reg, llama, keys[0], 260, TRUE, head);
  CU_ASSERT_PTR_NOT_NULL (resized && strstr (resized, "holds no tokenizer"));
}

/* --help lists every option with its default, the model and decoding
 * options of the other verbs too (not only under --help-all). */
static void
test_help (void)
{
  const char *args[] = { "train", "--help", NULL };
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &out, NULL), 0);
  for (const CriaPropSpec *s = cria_train_option_specs (); s->name; s++) {
    g_autofree char *flag = g_strdup_printf ("\n  --%s", s->name);
    const char *line = strstr (out, flag);
    while (line && line[strlen (flag)] != '=' && line[strlen (flag)] != ' ')
      line = strstr (line + 1, flag);
    CU_ASSERT_PTR_NOT_NULL_FATAL (line);
    line++;
    g_autofree char *one = g_strndup (line, strcspn (line, "\n"));
    if (!strstr (one, "default") && !strstr (one, "required"))
      printf ("\nno default in: %s\n", one);
    CU_ASSERT_TRUE (strstr (one, "default") || strstr (one, "required"));
  }
  const char *gen[] = { "generate", "--help", NULL };
  g_autofree char *gen_out = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (gen, NULL, &gen_out, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (gen_out, "--temperature"));
  CU_ASSERT_PTR_NOT_NULL (strstr (gen_out, "--dtype"));
}

/* cria-train(1) documents every option of the table. */
static void
test_man_page (void)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "man", "cria-train.1", NULL);
  g_autofree char *man = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (man);
  for (const CriaPropSpec *s = cria_train_option_specs (); s->name; s++) {
    g_auto (GStrv) parts = g_strsplit (s->name, "-", -1);
    g_autofree char *joined = g_strjoinv ("\\-", parts);
    g_autofree char *entry = g_strdup_printf ("\\fB\\-\\-%s\\fR", joined);
    g_autofree char *bare = g_strdup_printf (".B \\-\\-%s\n", joined);
    if (!strstr (man, entry) && !strstr (man, bare))
      printf ("\ncria-train(1) lacks --%s\n", s->name);
    CU_ASSERT_TRUE (strstr (man, entry) || strstr (man, bare));
  }
}

static void
register_suites (void)
{
  setup ();
  atexit (teardown);
  static const CriaTestCase cases[] = {
    { "a run's outputs, PEFT keys and shapes for GPT-2", test_outputs },
    { "stopped and resumed = never stopped", test_resume },
    { "Ctrl-C saves a checkpoint", test_interrupt },
    { "merge = base + adapter", test_merge },
    { "merged generates what base + adapter generates", test_merge_generates },
    { "full fine-tuning writes a model", test_full },
    { "text longer than max-length is cut into pieces", test_text_split },
    { "--on-long skips or truncates long records, counted", test_on_long },
    { "modules_to_save tensors of an adapter replace the base's", test_modules_to_save },
    { "qlora: NF4 base, loss falls, merge into dequantized weights", test_qlora },
    { "adalora: pruned to the budget, PEFT keys, loads and merges", test_adalora },
    { "adalora: regularizer gradient = central differences", test_adalora_regularizer },
    { "--recompute: the same losses and adapter, bit for bit", test_recompute },
    { "a non-finite loss skips the step; the schedule follows the updates", test_nan_skip },
    { "--nan-limit non-finite steps in a row stop the run", test_nan_limit },
    { "bad input fails before compute", test_bad_input },
    { "cria-train(1) lists every option", test_man_page },
    { "--help shows every option and its default", test_help },
    { NULL },
  };
  cria_test_add_suite ("train", cases);
}

CRIA_TEST_MAIN (register_suites)
