/* test-gguf: `cria export --format gguf|gguf-lora` checked with llama.cpp
 * itself (node-llama-cpp's prebuilt library, driven by llama-greedy.mjs):
 * greedy ids from the exported f32 GGUF equal cria's for the tiny llama
 * (LLaMA 3 RoPE, GQA: the q/k permutation), llama with linear and YaRN
 * RoPE, qwen2, qwen3 and gpt2 models, and llama2.c's golden ids for
 * stories260K; LoRA adapters (llama, gpt2) applied by llama.cpp equal
 * `cria generate --adapter`; bf16, f16 and q8_0 keep the first ids;
 * llama.cpp tokenizes ggml's vocabulary test strings with the exported
 * GPT-2 and LLaMA-2 vocabularies (Qwen2 and LLaMA-3 too with
 * CRIA_TEST_GGUF_VOCABS=all) as the Hugging Face tokenizers do. That part
 * is skipped where node or the package is absent; the rest runs anyway:
 * the file read back (names, metadata, permutation, types), the q8_0/q4_0
 * blocks against ggml's reference quantizer (ggml_quant_reference.py wrote
 * quant-golden.txt), and the errors. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cria-test.h"

static char *tmp;

/* The input ggml_quant_reference.py quantizes (test_input there). */
static GArray *
quant_input (void)
{
  GArray *x = g_array_new (FALSE, TRUE, sizeof (float));
  g_array_set_size (x, 32);
  for (int j = 0; j < 31; j++) {
    float v = (float) (j - 16) + 0.5f;
    g_array_append_val (x, v);
  }
  float v = 127.0f;
  g_array_append_val (x, v);
  for (int j = 0; j < 31; j++) {
    v = (float) (j - 16) * 0.25f;
    g_array_append_val (x, v);
  }
  v = -8.0f;
  g_array_append_val (x, v);
  guint64 state = 12345;
  const float scales[] = { 1.0f / (1 << 20), 1.0f / 8, 1.0f, 8.0f, 64.0f };
  for (guint b = 0; b < G_N_ELEMENTS (scales); b++)
    for (int j = 0; j < 32; j++) {
      state = (state * 1103515245u + 12345u) % (1u << 31);
      gint64 n = (gint64) ((state >> 8) % 20001) - 10000;
      v = ((float) n / 1000.0f) * scales[b];
      g_array_append_val (x, v);
    }
  return x;
}

static void
test_quant_golden (void)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "gguf", "quant-golden.txt", NULL);
  g_autofree char *golden = cria_test_read_file (path);
  CU_ASSERT_FATAL (golden != NULL);
  g_auto (GStrv) lines = g_strsplit (golden, "\n", -1);
  g_autoptr (GArray) x = quant_input ();
  const struct {
    CriaGgufType type;
    const char *name;
  } types[] = { { CRIA_GGUF_Q8_0, "q8_0" }, { CRIA_GGUF_Q4_0, "q4_0" } };
  for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
    gsize size = cria_gguf_row_size (types[t].type, x->len);
    CU_ASSERT_FATAL (size > 0);
    g_autofree guint8 *out = g_malloc (size);
    cria_gguf_quantize_row (types[t].type, (const float *) x->data, x->len, out);
    g_autoptr (GString) hex = g_string_new (types[t].name);
    g_string_append_c (hex, ' ');
    for (gsize i = 0; i < size; i++)
      g_string_append_printf (hex, "%02x", out[i]);
    CU_ASSERT_STRING_EQUAL (hex->str, lines[t]);
  }
  CU_ASSERT_EQUAL (cria_gguf_row_size (CRIA_GGUF_Q8_0, 48), 0); /* not whole blocks */
  CU_ASSERT_EQUAL (cria_gguf_row_size (CRIA_GGUF_Q4_0, 64), 36);
}

/* A LoRA adapter named `label` on the modules `csv` of `base`, with random
 * A and B (a fresh adapter's B is zero and would test nothing), rsLoRA
 * scaling. */
static char *
make_adapter (const char *base, const char *label, const char *csv)
{
  char *dir = g_build_filename (tmp, label, NULL);
  g_assert (g_mkdir_with_parents (dir, 0755) == 0);
  g_autofree char *config = g_build_filename (dir, "adapter_config.json", NULL);
  g_auto (GStrv) targets = g_strsplit (csv, ",", -1);
  g_autofree char *list = g_strjoinv ("\", \"", targets);
  g_autofree char *text = g_strdup_printf (
      "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"use_rslora\": true,"
      " \"target_modules\": [\"%s\"], \"bias\": \"none\", \"task_type\": \"CAUSAL_LM\"}",
      list);
  cria_test_write_file (config, text);
  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaModel) model = cria_model_open (reg, base, CRIA_MODEL_DTYPE_F32, &error);
  g_assert (model);
  g_autoptr (CriaSafetensorsWriter) st = cria_safetensors_writer_new ();
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  for (guint i = 0; i < cria_model_get_n_params (model); i++) {
    const char *name = cria_model_get_param_name (model, i);
    CriaTensor *w = cria_model_get_param (model, name);
    gboolean hit = FALSE;
    for (guint t = 0; targets[t]; t++) {
      g_autofree char *suffix = g_strconcat (targets[t], ".weight", NULL);
      hit |= g_str_has_suffix (name, suffix);
    }
    if (!hit)
      continue;
    g_autofree char *module = g_strndup (name, strlen (name) - strlen (".weight"));
    for (int ab = 0; ab < 2; ab++) {
      gint64 shape[2] = { ab ? w->shape[0] : 4, ab ? 4 : w->shape[1] };
      float *data = g_new (float, shape[0] * shape[1]);
      for (gint64 k = 0; k < shape[0] * shape[1]; k++)
        data[k] = (float) g_rand_double_range (rand, -0.5, 0.5);
      char *key = g_strdup_printf ("base_model.model.%s.lora_%c.weight", module, ab ? 'B' : 'A');
      g_ptr_array_add (keep, data);
      g_ptr_array_add (keep, key);
      CriaWeight weight = { .name = key, .dtype = CRIA_DTYPE_F32, .n_dims = 2, .data = data };
      memcpy (weight.shape, shape, sizeof shape);
      weight.n_bytes = (gsize) (shape[0] * shape[1]) * sizeof (float);
      CU_ASSERT_FATAL (cria_safetensors_writer_add (st, &weight, NULL));
    }
  }
  g_autofree char *file = g_build_filename (dir, "adapter_model.safetensors", NULL);
  g_assert (cria_safetensors_writer_write (st, file, NULL));
  return dir;
}

/* cria's greedy ids after `ids` (comma-separated), as a space-separated string. */
static char *
cria_ids (const char *model, const char *adapter, const char *ids, const char *n)
{
  const char *args[] = { "generate", "--model", model, "--ids", ids, "-n", n, "--json", NULL, NULL, NULL };
  if (adapter) {
    args[8] = "--adapter";
    args[9] = adapter;
  }
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL_FATAL (cria_test_run_cria (args, NULL, &out, NULL), 0);
  g_autoptr (JsonNode) node = json_from_string (out, NULL);
  CU_ASSERT_FATAL (node && JSON_NODE_HOLDS_OBJECT (node));
  JsonArray *a = json_object_get_array_member (json_node_get_object (node), "ids");
  g_autoptr (GString) s = g_string_new (NULL);
  for (guint i = 0; i < json_array_get_length (a); i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? " " : "", json_array_get_int_element (a, i));
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static void
run_export (const char *const *args)
{
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  if (status != 0)
    fprintf (stderr, "%s", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
}

typedef struct {
  char *job;      /* a line of llama-greedy.mjs's input */
  char *expected; /* the ids llama.cpp must print, or a prefix of them */
  gint64 prefix;  /* compare only the first `prefix` ids (0: all) */
} Job;

static void
job_free (Job *j)
{
  g_free (j->job);
  g_free (j->expected);
  g_free (j);
}

static void
add_job (GPtrArray *jobs, char *job, char *expected, gint64 prefix)
{
  Job *j = g_new0 (Job, 1);
  j->job = job;
  j->expected = expected;
  j->prefix = prefix;
  g_ptr_array_add (jobs, j);
}

static char *
first_ids (const char *ids, gint64 n)
{
  g_auto (GStrv) v = g_strsplit (ids, " ", -1);
  g_autoptr (GString) s = g_string_new (NULL);
  for (gint64 i = 0; v[i] && i < n; i++)
    g_string_append_printf (s, "%s%s", i ? " " : "", v[i]);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* A one-layer model as wide as the vocabulary of `tokenizer`, exported with
 * it; returns the GGUF's path. */
static char *
vocab_model (const char *tokenizer, const char *family, guint vocab_size)
{
  g_autofree char *dir = g_build_filename (tmp, family, NULL);
  g_autofree char *config = g_strconcat (dir, ".json", NULL);
  g_autofree char *text = g_strdup_printf (
      "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"intermediate_size\": 8,"
      " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": %u, \"tie_word_embeddings\": true}",
      vocab_size);
  cria_test_write_file (config, text);
  g_autofree char *tool = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "modelfiles", "cria-random-model",
                                            NULL);
  const char *argv[] = { tool, config, dir, "1", "f32", NULL };
  int status;
  g_assert (
      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL) &&
      status == 0);
  char *gguf = g_strconcat (dir, ".gguf", NULL);
  run_export (
      (const char *[]){ "export", "--format", "gguf", "--model", dir, "--tokenizer", tokenizer, "--out", gguf, NULL });
  return gguf;
}

static void
test_llama_cpp (void)
{
  g_autofree char *node = g_find_program_in_path ("node");
  const char *modules = g_getenv ("CRIA_NODE_MODULES");
  g_autofree char *package = modules ? g_build_filename (modules, "node-llama-cpp", "package.json", NULL) : NULL;
  if (!node || !package || !g_file_test (package, G_FILE_TEST_EXISTS)) {
    printf ("(skipped: no node, or no node-llama-cpp under CRIA_NODE_MODULES) ");
    return;
  }
  g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) job_free);
  static const char *const tiny[] = { "tiny-llama", "tiny-qwen2",        "tiny-qwen3",
                                      "tiny-gpt2",  "tiny-llama-linear", "tiny-llama-yarn" };
  char *dirs[G_N_ELEMENTS (tiny)], *ggufs[G_N_ELEMENTS (tiny)];
  for (guint i = 0; i < G_N_ELEMENTS (tiny); i++) {
    g_autofree char *sub = g_build_filename (tmp, tiny[i], NULL);
    dirs[i] = cria_test_tiny_model (sub, tiny[i]);
    ggufs[i] = g_strconcat (sub, ".gguf", NULL);
    run_export ((const char *[]){ "export", "--format", "gguf", "--model", dirs[i], "--out", ggufs[i], NULL });
    add_job (jobs, g_strdup_printf ("%s - 16 1 2 3", ggufs[i]), cria_ids (dirs[i], NULL, "1,2,3", "16"), 0);
  }
  /* LoRA: llama.cpp's --lora on the base's GGUF (llama: B's rows of q and
   * k permuted; gpt2: the fused q/k/v projection), and the merged export */
  static const struct {
    guint model;
    const char *targets;
  } loras[] = { { 0, "q_proj,k_proj,v_proj,o_proj,down_proj" }, { 3, "c_attn,c_proj,c_fc" } };
  for (guint i = 0; i < G_N_ELEMENTS (loras); i++) {
    const char *dir = dirs[loras[i].model];
    g_autofree char *name = g_strdup_printf ("adapter-%s", tiny[loras[i].model]);
    g_autofree char *adapter = make_adapter (dir, name, loras[i].targets);
    g_autofree char *lora = g_strdup_printf ("%s/%s.gguf", tmp, name);
    run_export ((const char *[]){ "export", "--format", "gguf-lora", "--model", dir, "--adapter", adapter, "--out",
                                  lora, NULL });
    g_autofree char *adapted = cria_ids (dir, adapter, "1,2,3", "16");
    g_autofree char *base = cria_ids (dir, NULL, "1,2,3", "16");
    CU_ASSERT_STRING_NOT_EQUAL (adapted, base); /* the adapter changes something */
    add_job (jobs, g_strdup_printf ("%s %s 16 1 2 3", ggufs[loras[i].model], lora), g_strdup (adapted), 0);
    if (i == 0) {
      g_autofree char *merged = g_build_filename (tmp, "merged.gguf", NULL);
      run_export ((const char *[]){ "export", "--format", "gguf", "--model", dir, "--adapter", adapter, "--out", merged,
                                    NULL });
      add_job (jobs, g_strdup_printf ("%s - 16 1 2 3", merged), g_strdup (adapted), 0);
    }
  }
  for (guint i = 0; i < G_N_ELEMENTS (tiny); i++) {
    g_free (dirs[i]);
    g_free (ggufs[i]);
  }

  /* stories260K: llama2.c's golden greedy ids from BOS */
  g_autofree char *stories = cria_test_shared_optional ("models/stories260K");
  if (stories) {
    g_autofree char *golden_file = g_build_filename (stories, "golden_greedy_from_bos_60.ids", NULL);
    g_autofree char *golden = cria_test_read_file (golden_file);
    g_strstrip (golden);
    static const char *const types[] = { "f32", "bf16", "f16", "q8_0", "q4_0" };
    for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
      g_autofree char *gguf = g_strdup_printf ("%s/stories-%s.gguf", tmp, types[t]);
      run_export ((const char *[]){ "export", "--format", "gguf", "--model", stories, "--type", types[t], "--out", gguf,
                                    NULL });
      if (t == 0)
        add_job (jobs, g_strdup_printf ("%s - 60 1", gguf), g_strdup (golden), 0);
      else if (t < 4)
        add_job (jobs, g_strdup_printf ("%s - 8 1", gguf), first_ids (golden, 8), 8);
      else /* q4_0 is lossy enough to part from f32: it must only run */
        add_job (jobs, g_strdup_printf ("%s - 8 1", gguf), NULL, 0);
    }
  }

  /* the real vocabularies: llama.cpp tokenizes ggml's test strings with the
   * exported vocabulary as the Hugging Face tokenizers do (the .out files).
   * The two of 130-150K tokens take 5 s of CPU each (mostly llama.cpp
   * building its tables): they run with CRIA_TEST_GGUF_VOCABS=all. */
  gboolean all_vocabs = g_strcmp0 (g_getenv ("CRIA_TEST_GGUF_VOCABS"), "all") == 0;
  static const struct {
    const char *tokenizer, *family;
    guint vocab_size; /* ids, special ones included */
    gboolean large;
  } vocabs[] = {
    { "tokenizers/gpt2-hf", "gpt-2", 50257, FALSE },
    { "tokenizers/qwen2.5", "qwen2", 151665, TRUE },
    { "tokenizers/llama3", "llama-bpe", 128256, TRUE },
    { "tokenizers/llama2", "llama-spm", 32000, FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (vocabs); i++) {
    if (vocabs[i].large && !all_vocabs)
      continue;
    g_autofree char *path = cria_test_shared_optional (vocabs[i].tokenizer);
    g_autofree char *inp = g_strdup_printf ("%s/tokenizers/conformance/ggml-vocab-%s.gguf.inp",
                                            cria_test_env ("CRIA_SHARED"), vocabs[i].family);
    g_autofree char *outp = g_strdup_printf ("%s/tokenizers/conformance/ggml-vocab-%s.gguf.out",
                                             cria_test_env ("CRIA_SHARED"), vocabs[i].family);
    g_autofree char *expected = path ? cria_test_read_file (outp) : NULL;
    if (!expected)
      continue;
    g_autofree char *gguf = vocab_model (path, vocabs[i].family, vocabs[i].vocab_size);
    g_strstrip (expected);
    g_auto (GStrv) lines = g_strsplit (expected, "\n", -1);
    for (guint l = 0; lines[l]; l++)
      g_strstrip (lines[l]);
    add_job (jobs, g_strdup_printf ("tok %s %s", gguf, inp), g_strjoinv (";", lines), 0);
  }

  g_autoptr (GString) input = g_string_new (NULL);
  for (guint i = 0; i < jobs->len; i++)
    g_string_append_printf (input, "%s\n", ((Job *) g_ptr_array_index (jobs, i))->job);
  g_autofree char *script = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "gguf", "llama-greedy.mjs", NULL);
  g_autofree char *input_file = g_build_filename (tmp, "jobs.txt", NULL);
  cria_test_write_file (input_file, input->str);
  g_autofree char *cmd = g_strdup_printf ("'%s' '%s' < '%s'", node, script, input_file);
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  CU_ASSERT_FATAL (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err, &status, NULL));
  if (WIFEXITED (status) && WEXITSTATUS (status) == 77) {
    printf ("(skipped: node-llama-cpp is not installed) ");
    return;
  }
  if (status != 0)
    fprintf (stderr, "%s", err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  CU_ASSERT_FATAL (g_strv_length (lines) >= jobs->len);
  for (guint i = 0; i < jobs->len; i++) {
    Job *j = g_ptr_array_index (jobs, i);
    g_autofree char *got = j->prefix ? first_ids (lines[i], j->prefix) : g_strdup (lines[i]);
    if (g_str_has_prefix (j->job, "tok "))
      printf ("\n  llama.cpp tokenizes %s", strrchr (j->job, '/') + 1);
    else
      printf ("\n  llama.cpp %s -> %s", j->job + strlen (tmp) + 1, lines[i]);
    if (j->expected) {
      if (strcmp (got, j->expected) != 0)
        fprintf (stderr, "\n%s: llama.cpp %s, cria %s\n", j->job, got, j->expected);
      CU_ASSERT_STRING_EQUAL (got, j->expected);
    } else {
      g_auto (GStrv) ids = g_strsplit (lines[i], " ", -1);
      CU_ASSERT_EQUAL (g_strv_length (ids), 8);
    }
  }
  printf ("\n");
}

/* ---- a small GGUF reader, to look at what was written ---- */

typedef struct {
  guint32 type;
  guint n_dims;
  guint64 ne[4];
  guint64 offset;
} GgufInfo;

typedef struct {
  GMappedFile *file;
  const guint8 *p, *end, *data;
  GHashTable *kv;      /* key -> value as text (arrays: "[TYPE x N]") */
  GHashTable *tensors; /* name -> GgufInfo* */
  GPtrArray *order;    /* tensor names in file order */
} Gguf;

static guint64
rd (Gguf *g, guint n)
{
  CU_ASSERT_FATAL (g->p + n <= g->end);
  guint64 v = 0;
  for (guint i = 0; i < n; i++)
    v |= (guint64) g->p[i] << (8 * i);
  g->p += n;
  return v;
}

static char *
rd_string (Gguf *g)
{
  guint64 n = rd (g, 8);
  CU_ASSERT_FATAL (n <= (guint64) (g->end - g->p));
  char *s = g_strndup ((const char *) g->p, n);
  g->p += n;
  return s;
}

static char *
rd_value (Gguf *g, guint32 type)
{
  static const guint sizes[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
  CU_ASSERT_FATAL (type <= 12);
  if (type == 8)
    return rd_string (g);
  if (type == 9) {
    guint32 et = (guint32) rd (g, 4);
    guint64 n = rd (g, 8);
    for (guint64 i = 0; i < n; i++)
      g_free (rd_value (g, et));
    return g_strdup_printf ("[%u x %" G_GUINT64_FORMAT "]", et, n);
  }
  guint64 v = rd (g, sizes[type]);
  if (type == 6) {
    guint32 u = (guint32) v;
    float f;
    memcpy (&f, &u, 4);
    return g_strdup_printf ("%g", f);
  }
  if (type == 5)
    return g_strdup_printf ("%d", (gint32) v);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, v);
}

static void
gguf_close (Gguf *g)
{
  g_mapped_file_unref (g->file);
  g_hash_table_destroy (g->kv);
  g_hash_table_destroy (g->tensors);
  g_ptr_array_unref (g->order);
  g_free (g);
}

static Gguf *
gguf_open (const char *path)
{
  Gguf *g = g_new0 (Gguf, 1);
  g->file = g_mapped_file_new (path, FALSE, NULL);
  g_assert (g->file);
  g->p = (const guint8 *) g_mapped_file_get_contents (g->file);
  g->end = g->p + g_mapped_file_get_length (g->file);
  const guint8 *start = g->p;
  g->kv = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g->tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g->order = g_ptr_array_new_with_free_func (g_free);
  CU_ASSERT_FATAL (memcmp (g->p, "GGUF", 4) == 0);
  g->p += 4;
  CU_ASSERT_EQUAL (rd (g, 4), 3);
  guint64 n_tensors = rd (g, 8), n_kv = rd (g, 8);
  for (guint64 i = 0; i < n_kv; i++) {
    char *key = rd_string (g);
    g_hash_table_insert (g->kv, key, rd_value (g, (guint32) rd (g, 4)));
  }
  for (guint64 i = 0; i < n_tensors; i++) {
    char *name = rd_string (g);
    GgufInfo *t = g_new0 (GgufInfo, 1);
    t->n_dims = (guint) rd (g, 4);
    CU_ASSERT_FATAL (t->n_dims >= 1 && t->n_dims <= 4);
    for (guint d = 0; d < t->n_dims; d++)
      t->ne[d] = rd (g, 8);
    t->type = (guint32) rd (g, 4);
    t->offset = rd (g, 8);
    CU_ASSERT_EQUAL (t->offset % 32, 0);
    g_ptr_array_add (g->order, name);
    g_hash_table_insert (g->tensors, name, t);
  }
  gsize head = (gsize) (g->p - start);
  g->data = start + (head + 31) / 32 * 32;
  return g;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Gguf, gguf_close)

static const char *
kv (Gguf *g, const char *key)
{
  const char *v = g_hash_table_lookup (g->kv, key);
  return v ? v : "(absent)";
}

/* The file's bytes of tensor `name`, checked against `expected` rows
 * written as `type`. */
static void
check_tensor (Gguf *g, const char *name, CriaGgufType type, const float *expected, gint64 rows, gint64 cols)
{
  GgufInfo *t = g_hash_table_lookup (g->tensors, name);
  CU_ASSERT_PTR_NOT_NULL_FATAL (t);
  CU_ASSERT_EQUAL (t->type, (guint32) type);
  CU_ASSERT_EQUAL (t->ne[0], (guint64) cols);
  CU_ASSERT_EQUAL (t->n_dims == 2 ? t->ne[1] : 1, (guint64) rows);
  gsize row = cria_gguf_row_size (type, cols);
  g_autofree guint8 *want = g_malloc (row);
  for (gint64 r = 0; r < rows; r++) {
    cria_gguf_quantize_row (type, expected + r * cols, cols, want);
    CU_ASSERT_FATAL (g->data + t->offset + (r + 1) * row <= g->end);
    CU_ASSERT (memcmp (g->data + t->offset + r * row, want, row) == 0);
  }
}

/* tiny-llama as q8_0: the metadata, the tensor list, q and k permuted as
 * convert_hf_to_gguf.py permutes them (rows viewed as [heads, 2, half]
 * and the last two axes swapped), vectors in f32, LLaMA 3's rope_freqs. */
static void
test_layout (void)
{
  g_autofree char *sub = g_build_filename (tmp, "layout", NULL);
  g_autofree char *dir = cria_test_tiny_model (sub, "tiny-llama");
  g_autofree char *tc = g_build_filename (dir, "tokenizer_config.json", NULL);
  cria_test_write_file (tc, "{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}");
  g_autofree char *out = g_build_filename (sub, "q8.gguf", NULL);
  run_export ((const char *[]){ "export", "--format", "gguf", "--model", dir, "--type", "q8_0", "--out", out, NULL });
  g_autoptr (Gguf) g = gguf_open (out);
  CU_ASSERT_STRING_EQUAL (kv (g, "general.architecture"), "llama");
  CU_ASSERT_STRING_EQUAL (kv (g, "general.file_type"), "7");
  CU_ASSERT_STRING_EQUAL (kv (g, "llama.block_count"), "2");
  CU_ASSERT_STRING_EQUAL (kv (g, "llama.attention.head_count"), "4");
  CU_ASSERT_STRING_EQUAL (kv (g, "llama.attention.head_count_kv"), "2");
  CU_ASSERT_STRING_EQUAL (kv (g, "llama.rope.freq_base"), "500000");
  CU_ASSERT_STRING_EQUAL (kv (g, "llama.context_length"), "64");
  CU_ASSERT_STRING_EQUAL (kv (g, "tokenizer.ggml.model"), "gpt2");
  CU_ASSERT_STRING_EQUAL (kv (g, "tokenizer.ggml.pre"), "gpt-2");
  CU_ASSERT_STRING_EQUAL (kv (g, "tokenizer.ggml.tokens"), "[8 x 256]");
  CU_ASSERT_STRING_EQUAL (kv (g, "tokenizer.chat_template"), "{% for m in messages %}{{ m.content }}{% endfor %}");

  g_autoptr (CriaRegistry) reg = cria_test_registry ();
  g_autoptr (CriaModel) model = cria_model_open (reg, dir, CRIA_MODEL_DTYPE_F32, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (model);
  /* every weight, and rope_freqs */
  CU_ASSERT_EQUAL (g->order->len, cria_model_get_n_params (model) + 1);
  CU_ASSERT_STRING_EQUAL (g_ptr_array_index (g->order, 0), "rope_freqs.weight"); /* as the converter: first */
  CU_ASSERT_STRING_EQUAL (g_ptr_array_index (g->order, 1), "token_embd.weight");
  static const struct {
    const char *hf, *gguf;
    gint64 heads;
  } checks[] = {
    { "model.layers.1.self_attn.q_proj.weight", "blk.1.attn_q.weight", 4 },
    { "model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", 2 },
    { "model.layers.1.self_attn.v_proj.weight", "blk.1.attn_v.weight", 0 },
    { "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", 0 },
    { "model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", 0 },
    { "lm_head.weight", "output.weight", 0 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (checks); i++) {
    CriaTensor *w = cria_model_get_param (model, checks[i].hf);
    gint64 rows = w->n_dims == 2 ? w->shape[0] : 1, cols = w->shape[w->n_dims - 1];
    g_autofree float *want = g_new (float, rows *cols);
    const float *x = w->data;
    gint64 hd = checks[i].heads ? rows / checks[i].heads : 1;
    for (gint64 r = 0; r < rows; r++) {
      gint64 src = r;
      if (checks[i].heads) { /* row (h, j, s) of the file is row (h, s, j) of q_proj */
        gint64 h = r / hd, j = (r % hd) / 2, s = r % 2;
        src = h * hd + s * (hd / 2) + j;
      }
      memcpy (want + r * cols, x + src * cols, (gsize) cols * sizeof (float));
    }
    check_tensor (g, checks[i].gguf, w->n_dims == 2 ? CRIA_GGUF_Q8_0 : CRIA_GGUF_F32, want, rows, cols);
  }
  /* LLaMA 3 scaling as convert_hf_to_gguf.py computes the factors (theta
   * 500000, head_dim 8, factor 8, low/high_freq_factor 1/4, original 16) */
  GgufInfo *rope = g_hash_table_lookup (g->tensors, "rope_freqs.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL (rope);
  CU_ASSERT_EQUAL (rope->ne[0], 4);
  const float *f = (const float *) (g->data + rope->offset);
  for (int i = 0; i < 4; i++) {
    double wavelen = 2 * G_PI * pow (500000.0, 2.0 * i / 8), want = 8;
    if (wavelen < 16.0 / 4)
      want = 1;
    else if (wavelen <= 16.0 / 1) {
      double smooth = (16.0 / wavelen - 1) / (4 - 1);
      want = 1 / ((1 - smooth) / 8 + smooth);
    }
    CU_ASSERT_DOUBLE_EQUAL (f[i], want, 1e-5 * want);
  }
}

/* One-line errors, and nothing left under the output name or beside it. */
static void
test_errors (void)
{
  g_autofree char *dyn_sub = g_build_filename (tmp, "dynamic", NULL);
  g_autofree char *dyn = cria_test_tiny_model (dyn_sub, "tiny-llama-dynamic");
  g_autofree char *dyn_out = g_build_filename (dyn_sub, "out.gguf", NULL);
  g_autofree char *dyn_err = NULL;
  const char *dynamic[] = { "export", "--format", "gguf", "--model", dyn, "--out", dyn_out, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (dynamic, NULL, NULL, &dyn_err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (dyn_err, "config.json: rope_scaling: dynamic"));
  CU_ASSERT_FALSE (g_file_test (dyn_out, G_FILE_TEST_EXISTS));

  g_autofree char *sub = g_build_filename (tmp, "errors", NULL);
  g_autofree char *dir = cria_test_tiny_model (sub, "tiny-llama");
  g_autofree char *out = g_build_filename (sub, "out.gguf", NULL);
  g_autofree char *tok = g_build_filename (dir, "tokenizer.json", NULL);
  g_autofree char *err = NULL;
  const char *no_format[] = { "export", "--model", dir, "--out", out, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (no_format, NULL, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "--format"));
  g_clear_pointer (&err, g_free);
  const char *bad_type[] = { "export", "--format", "gguf", "--model", dir, "--out", out, "--type", "q5_k", NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (bad_type, NULL, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "q5_k"));
  g_clear_pointer (&err, g_free);
  const char *no_adapter[] = { "export", "--format", "gguf-lora", "--model", dir, "--out", out, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (no_adapter, NULL, NULL, &err), 2);
  g_clear_pointer (&err, g_free);
  /* a tokenizer of more ids than the model has rows */
  g_autofree char *text = cria_test_read_file (tok);
  g_autoptr (GString) big = g_string_new (text);
  char *vocab = strstr (big->str, "\"vocab\":{");
  CU_ASSERT_FATAL (vocab != NULL);
  g_string_insert (big, vocab - big->str + 9, "\"extra\":256,");
  cria_test_write_file (tok, big->str);
  const char *too_big[] = { "export", "--format", "gguf", "--model", dir, "--out", out, NULL };
  CU_ASSERT_EQUAL (cria_test_run_cria (too_big, NULL, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "tokenizer.json: model.vocab: token id 256"));
  CU_ASSERT_PTR_EQUAL (strchr (err, '\n'), err + strlen (err) - 1); /* one line */
  g_clear_pointer (&err, g_free);
  g_unlink (tok); /* no tokenizer at all */
  CU_ASSERT_EQUAL (cria_test_run_cria (too_big, NULL, NULL, &err), 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "cria export: "));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
  g_autoptr (GDir) d = g_dir_open (sub, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (d)))
    CU_ASSERT_STRING_EQUAL (name, "model"); /* no temporary file left */
}

static const CriaTestCase cases[] = {
  { "q8_0 and q4_0 blocks equal ggml's reference quantizer", test_quant_golden },
  { "the file holds llama.cpp's names, metadata, permutation and types", test_layout },
  { "llama.cpp continues exported models and adapters as cria does", test_llama_cpp },
  { "bad inputs give one-line errors and leave no file", test_errors },
  { NULL },
};

static int
setup (void)
{
  tmp = cria_test_tmpdir ();
  return 0;
}

static int
teardown (void)
{
  cria_test_rmtree (tmp);
  g_free (tmp);
  return 0;
}

static void
register_suites (void)
{
  CU_pSuite suite = CU_add_suite ("gguf", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
