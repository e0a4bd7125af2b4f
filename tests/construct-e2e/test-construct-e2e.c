/* test-construct-e2e: selfinstruct and evolinstruct through `cria serve` and
 * the openai generator over HTTP on loopback, on a small model trained for
 * it (tests/construct-e2e/model); then
 * the same pipelines again with the server stopped, from the cache.
 *
 *   cria serve --model tests/construct-e2e/model --served-model-name e2e --port 0 --log-requests &
 *   cria data --seed 1 'selfinstruct seeds=seeds-en.jsonl count=3 examples=2 batch=2 task-examples=1
 *       generator="openai base-url=http://127.0.0.1:PORT/v1 model=e2e" ! jsonl location=si.jsonl'
 *
 * The model. Records only come out of the stages when the model answers in
 * the layout the prompts ask for, with instructions that pass the filters; a
 * random or story model never does, and no model that writes instructions
 * can be shipped or trained in seconds. So tests/construct-e2e/model is
 * taught to answer these prompts as a scripted teacher does, and nothing else:
 *  1. The teacher (the scripted server of fake-openai.h, `lessons` below)
 *     answers a prompt by how it ends: the numbered list goes on after "3.",
 *     Yes or No after "Is the answer one of ... labels?", an instance after
 *     "Task: X", a rewrite after "Given prompt:\nX", and an answer to a
 *     rewrite. Both pipelines run against it first, in every run of this
 *     test (cache=none); each request it gets is a lesson: the prompt as the
 *     stage rendered it and the teacher's answer.
 *  2. The model (make-model.sh, with cria: `cria model init` of
 *     model-config.json, a Mistral layout of 2 layers with a sliding window
 *     of 32 keys, a byte-level tokenizer from `cria tokenizer train`, then
 *     `cria train --adapter full` for a few minutes, saved in bf16: ~200 KB)
 *     learned those lessons. Its last position sees the last 63 bytes of a
 *     prompt and no more (each layer looks back window - 1), and RoPE only
 *     knows relative positions: so a prompt cut to its last 63 bytes gives,
 *     at every position that predicts the answer, what the model computes on
 *     the whole prompt at serve time. The lessons are cut so, which makes
 *     them few and short. Training at test time was tried and measured: on 2
 *     shared cores it needs a minute or more of CPU to learn them well enough.
 *     When the stages' prompts change, the cut lessons differ from
 *     model/lessons.jsonl and the test fails saying to rerun make-model.sh.
 *  3. `cria serve` serves it; the same pipelines with the same seed send it
 *     the same prompts, and its sampled (temperature 0.7, seeded) answers are
 *     the teacher's. Those answers include what the filters must drop: a
 *     too-short item, a blocklisted one, a copy of a seed; the second prompt
 *     of a batch gets the same list again (all similar); a rewrite that leaks
 *     the evolution prompt; a response that is an apology.
 * What is tested is the path, not the model's wits: the stages' prompts, the
 * openai generator, HTTP, cria serve's tokenizer, model and seeded sampler,
 * the parsing and the filters on what it wrote, the records and the cache.
 *
 * Checked: the counts per reason in the summaries; every record's
 * instruction passes the rules, checked again here on its own (words,
 * blocklist, first character, ROUGE-L by an LCS written here); one line in
 * the server's request log per request; the records are the teacher run's;
 * and with the server stopped, a rerun writes the same bytes from the cache.
 * Nothing from ../shared is used: it always runs. */
#include <string.h>

#include "cria-test.h"
#include "fake-openai.h"

/* ---- the teacher ---------------------------------------------------------------- */

#define FRUITS "Name three red fruits."
#define HAIKU "Write a haiku about snow."
#define REVIEW "Is a cafe review positive or negative?"
#define LABELS "\nIs the answer one of a small fixed set of labels?"
#define GIVEN "Given prompt:\n"
#define SLEEP "Say why sleep matters for students."
#define SLEEP1 "Say why sleep matters for students in exams."
#define SLEEP2 "Explain step by step how sleep helps memory."
#define SHOP "Suggest a name for a new coffee shop."
#define SHOP1 "Rewritten prompt: a cafe name by the sea."
#define CLIMATE "Explain weather and climate."
#define CLIMATE1 "Explain weather and climate to a child."

/* The first match, by the end of the prompt, answers; order matters where one
 * end ends another ("Given prompt:\nX" before X). */
static const struct {
  const char *end, *answer;
} lessons[] = {
  /* selfinstruct with examples=2: the list goes on after "3." */
  { "\n3.",
    " " FRUITS "\n4. Sort.\n5. Draw a map.\n6. " HAIKU "\n7. Find the largest number in the list.\n8. " REVIEW },
  { "Task: " FRUITS LABELS, "No" },
  { "Task: " HAIKU LABELS, "No" },
  { "Task: " REVIEW LABELS, "Yes" },
  { "Task: " FRUITS, "Input: <noinput>\nOutput: Cherry, apple, plum." },
  { "Task: " HAIKU, "Input: <noinput>\nOutput: Soft snow, still town." },
  { "Task: " REVIEW, "Class label: positive\nInput: Kind staff, rich coffee." },
  /* evolinstruct: rewrites, then answers to them */
  { GIVEN SLEEP, SLEEP1 },
  { GIVEN SLEEP1, SLEEP2 },
  { GIVEN SHOP, SHOP1 },
  { GIVEN CLIMATE, CLIMATE1 },
  { SLEEP1, "It keeps memory sharp." },
  { SLEEP2, "Sleep replays the day, then stores it." },
  { SHOP1, "Tide and Bean." },
  { CLIMATE1, "Sorry, I cannot." },
};

static GMutex lock;
static GPtrArray *asked;  /* the prompts the teacher answered, in order */
static GPtrArray *taught; /* its answers (static strings) */

static void
teach (SoupServerMessage *msg, const char *path, gpointer data)
{
  g_autofree char *said = cria_fake_openai_said (msg, TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (lessons); i++) {
    if (!g_str_has_suffix (said, lessons[i].end))
      continue;
    g_mutex_lock (&lock);
    g_ptr_array_add (asked, g_strdup (said));
    g_ptr_array_add (taught, (gpointer) lessons[i].answer);
    g_mutex_unlock (&lock);
    cria_fake_openai_answer (msg, TRUE, lessons[i].answer, NULL);
    return;
  }
  /* A prompt the plan did not foresee fails the run (400: not retried). */
  g_autoptr (JsonObject) e = json_object_new ();
  g_autofree char *why = g_strdup_printf ("no lesson for a prompt ending '%s'",
                                          said + MAX (0, (int) strlen (said) - 60));
  json_object_set_string_member (e, "message", why);
  g_autoptr (JsonObject) body = json_object_new ();
  json_object_set_object_member (body, "error", json_object_ref (e));
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), body);
  g_autofree char *text = json_to_string (node, FALSE);
  cria_fake_openai_respond (msg, 400, text);
}

/* ---- state shared by the steps, which run in order ------------------------------- */

static char *tmp, *teacher_url, *log_path;
static GSubprocess *server;
static char *server_url;  /* http://127.0.0.1:PORT/v1 */
static guint n_si_asked;  /* requests of the selfinstruct run */
static guint n_evo_asked; /* and of the evolinstruct run */

static char *
in_tmp (const char *name)
{
  return g_build_filename (tmp, name, NULL);
}

/* A file of this test's folder in the source tree. */
static char *
in_src (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "construct-e2e", name, NULL);
}

static char *
seeds_path (void)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "construct", "seeds-en.jsonl", NULL);
}

/* The two pipelines, for a generator URL, a cache and an output name. */
static char *
selfinstruct_pipeline (const char *url, const char *cache, const char *out)
{
  g_autofree char *seeds = seeds_path (), *where = in_tmp (out);
  return g_strdup_printf ("selfinstruct seeds=%s count=3 examples=2 batch=2 task-examples=1 lang=en cache=%s "
                          "generator=\"openai base-url=%s model=e2e retries=0\" ! jsonl location=%s",
                          seeds, cache, url, where);
}

static char *
evolinstruct_pipeline (const char *url, const char *cache, const char *out)
{
  g_autofree char *in = in_tmp ("evolve-in.jsonl"), *where = in_tmp (out);
  return g_strdup_printf ("file location=%s ! evolinstruct rounds=2 lang=en cache=%s "
                          "generator=\"openai base-url=%s model=e2e retries=0\" ! jsonl location=%s",
                          in, cache, url, where);
}

/* `cria data --seed 1 --json PIPELINE`; its summary. */
static JsonNode *
run_data (const char *pipeline)
{
  const char *args[] = { "data", "--seed", "1", "--json", pipeline, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = cria_test_run_cria (args, NULL, &out, &err);
  if (status != 0)
    printf ("\ncria data failed (%d): %s\n", status, err);
  CU_ASSERT_EQUAL_FATAL (status, 0);
  JsonNode *summary = json_from_string (out, NULL);
  CU_ASSERT_FATAL (summary && JSON_NODE_HOLDS_OBJECT (summary));
  return summary;
}

static gint64
reason (JsonNode *summary, guint stage, const char *name)
{
  JsonArray *stages = json_object_get_array_member (json_node_get_object (summary), "stages");
  JsonObject *reasons = json_object_get_object_member (json_array_get_object_element (stages, stage), "reasons");
  return reasons ? json_object_get_int_member_with_default (reasons, name, 0) : 0;
}

/* The reasons of one stage, as "name=count" pairs, ending with NULL. */
static void
expect_reasons (JsonNode *summary, guint stage, const char *const *want)
{
  for (const char *const *w = want; *w; w++) {
    g_auto (GStrv) kv = g_strsplit (*w, "=", 2);
    gint64 got = reason (summary, stage, kv[0]);
    if (got != g_ascii_strtoll (kv[1], NULL, 10))
      printf ("\nreason %s: %" G_GINT64_FORMAT ", want %s\n", kv[0], got, kv[1]);
    CU_ASSERT_EQUAL (got, g_ascii_strtoll (kv[1], NULL, 10));
  }
}

static GPtrArray *
read_records (const char *name)
{
  g_autofree char *path = in_tmp (name);
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!**l)
      continue;
    g_autoptr (JsonNode) n = json_from_string (*l, NULL);
    CU_ASSERT_FATAL (n && JSON_NODE_HOLDS_OBJECT (n));
    g_ptr_array_add (out, cria_record_from_json (json_node_get_object (n), NULL));
  }
  return out;
}

static void
expect_same_file (const char *a, const char *b)
{
  g_autofree char *pa = in_tmp (a), *pb = in_tmp (b);
  g_autofree char *ta = cria_test_read_file (pa), *tb = cria_test_read_file (pb);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ta);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tb);
  if (strcmp (ta, tb) != 0)
    printf ("\n%s:\n%s\ndiffers from %s:\n%s\n", a, ta, b, tb);
  CU_ASSERT_STRING_EQUAL (ta, tb);
}

/* ---- the rules, checked here on their own ---------------------------------------- */

/* Lower-case runs of ASCII letters and digits. */
static GPtrArray *
words_of (const char *text)
{
  GPtrArray *words = g_ptr_array_new_with_free_func (g_free);
  for (const char *p = text; *p;) {
    while (*p && !g_ascii_isalnum (*p))
      p++;
    const char *start = p;
    while (g_ascii_isalnum (*p))
      p++;
    if (p > start)
      g_ptr_array_add (words, g_ascii_strdown (start, p - start));
  }
  return words;
}

/* ROUGE-L F1: the longest common subsequence of words. */
static double
rouge_l (const char *a, const char *b)
{
  g_autoptr (GPtrArray) x = words_of (a), y = words_of (b);
  if (!x->len || !y->len)
    return 0;
  g_autofree guint *row = g_new0 (guint, y->len + 1);
  for (guint i = 1; i <= x->len; i++) {
    guint diag = 0;
    for (guint j = 1; j <= y->len; j++) {
      guint up = row[j];
      row[j] = !strcmp (x->pdata[i - 1], y->pdata[j - 1]) ? diag + 1 : MAX (row[j], row[j - 1]);
      diag = up;
    }
  }
  double lcs = row[y->len], p = lcs / y->len, r = lcs / x->len;
  return lcs ? 2 * p * r / (p + r) : 0;
}

/* Whether the words of `phrase` come one after another in `words`. */
static gboolean
has_phrase (GPtrArray *words, const char *phrase)
{
  g_autoptr (GPtrArray) want = words_of (phrase);
  for (guint i = 0; want->len && i + want->len <= words->len; i++) {
    guint k = 0;
    while (k < want->len && !strcmp (words->pdata[i + k], want->pdata[k]))
      k++;
    if (k == want->len)
      return TRUE;
  }
  return FALSE;
}

/* What selfinstruct promises of a record it writes, with its defaults
 * (min-words 3, max-words 150, similarity 0.7, the English blocklist). */
static void
expect_kept (const CriaRecord *r, GPtrArray *pool)
{
  g_autofree char *list = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "share", "construct", "en", "blocklist.txt",
                                            NULL);
  g_autofree char *blocklist = cria_test_read_file (list);
  CU_ASSERT_PTR_NOT_NULL_FATAL (blocklist);
  g_autoptr (GPtrArray) words = words_of (r->instruction);
  CU_ASSERT (words->len >= 3 && words->len <= 150);
  CU_ASSERT (g_ascii_isalnum (r->instruction[0]));
  g_auto (GStrv) lines = g_strsplit (blocklist, "\n", -1);
  for (char **l = lines; *l; l++)
    if (**l && **l != '#' && has_phrase (words, *l))
      CU_FAIL ("an instruction holds a blocklisted word");
  for (guint i = 0; i < pool->len; i++)
    CU_ASSERT (rouge_l (r->instruction, pool->pdata[i]) <= 0.7);
  CU_ASSERT (r->output && *r->output);
  CU_ASSERT (!*r->input || strcmp (r->input, r->output) != 0);
}

/* ---- the steps -------------------------------------------------------------------- */

static void
write_evolve_input (void)
{
  g_autofree char *path = in_tmp ("evolve-in.jsonl");
  cria_test_write_file (path, "{\"instruction\": \"" SLEEP "\", \"input\": \"\", \"output\": \"Memory and mood.\"}\n"
                              "{\"instruction\": \"" SHOP "\", \"input\": \"\", \"output\": \"Cold Comfort.\"}\n"
                              "{\"instruction\": \"" CLIMATE "\", \"input\": \"\", \"output\": \"Days against "
                              "decades.\"}\n");
}

/* What the model sees of a prompt: the bytes its last position reads (each
 * layer of model-config.json looks back sliding_window - 1). */
static guint
seen_bytes (void)
{
  g_autofree char *path = in_src ("model-config.json");
  g_autofree char *text = cria_test_read_file (path);
  g_autoptr (JsonNode) n = text ? json_from_string (text, NULL) : NULL;
  CU_ASSERT_FATAL (n && JSON_NODE_HOLDS_OBJECT (n));
  JsonObject *o = json_node_get_object (n);
  gint64 layers = json_object_get_int_member (o, "num_hidden_layers");
  gint64 window = json_object_get_int_member (o, "sliding_window");
  CU_ASSERT_FATAL (layers > 0 && window > 1);
  return (guint) (layers * (window - 1) + 1);
}

static int
by_text (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The training set: each prompt the teacher was asked cut to what the model
 * sees, with its answer; one line per distinct cut. A cut taught two answers
 * could never be learned: the lessons must be changed. */
static char *
cut_lessons (void)
{
  guint seen = seen_bytes ();
  g_autoptr (GHashTable) cuts = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < asked->len; i++) {
    const char *prompt = asked->pdata[i];
    const char *cut = prompt + (strlen (prompt) > seen ? strlen (prompt) - seen : 0);
    const char *before = g_hash_table_lookup (cuts, cut);
    if (before && strcmp (before, taught->pdata[i]) != 0)
      printf ("\nthe cut '%s' is taught both '%s' and '%s'\n", cut, before, (char *) taught->pdata[i]);
    CU_ASSERT_FATAL (!before || !strcmp (before, taught->pdata[i]));
    if (before)
      continue;
    g_hash_table_insert (cuts, (gpointer) cut, taught->pdata[i]);
    g_autoptr (JsonObject) o = json_object_new ();
    json_object_set_string_member (o, "instruction", cut);
    json_object_set_string_member (o, "output", taught->pdata[i]);
    g_autoptr (JsonNode) n = json_node_init_object (json_node_alloc (), o);
    g_ptr_array_add (lines, json_to_string (n, FALSE));
  }
  /* Sorted: the requests of a batch come in any order. */
  g_ptr_array_sort (lines, by_text);
  GString *jsonl = g_string_new (NULL);
  for (guint i = 0; i < lines->len; i++)
    g_string_append_printf (jsonl, "%s\n", (char *) lines->pdata[i]);
  return g_string_free (jsonl, FALSE);
}

/* Both pipelines against the teacher; what it was asked becomes the training set. */
static void
test_teacher (void)
{
  write_evolve_input ();
  g_autofree char *si = selfinstruct_pipeline (teacher_url, "none", "teacher-si.jsonl");
  g_autoptr (JsonNode) s1 = run_data (si);
  n_si_asked = asked->len;
  g_autofree char *evo = evolinstruct_pipeline (teacher_url, "none", "teacher-evo.jsonl");
  g_autoptr (JsonNode) s2 = run_data (evo);
  n_evo_asked = asked->len - n_si_asked;
  /* 2 lists, then 3 classifications and 3 instances; 2 rounds of 3 rewrites and 3 answers. */
  CU_ASSERT_EQUAL (n_si_asked, 8);
  CU_ASSERT_EQUAL (n_evo_asked, 12);

  g_autofree char *learned = cut_lessons ();
  g_autofree char *committed_path = in_src ("model/lessons.jsonl");
  g_autofree char *committed = cria_test_read_file (committed_path);
  if (g_strcmp0 (learned, committed) != 0) {
    g_autofree char *fresh = g_build_filename (cria_test_env ("CRIA_BUILDDIR"), "tests", "construct-e2e",
                                               "lessons.new.jsonl", NULL);
    cria_test_write_file (fresh, learned);
    printf ("\nthe prompts the stages send have changed since tests/construct-e2e/model was trained on them "
            "(%s): the new lessons are in %s; run tests/construct-e2e/make-model.sh (a few minutes) and commit "
            "tests/construct-e2e/model\n",
            committed ? "see git diff --no-index" : "none committed", fresh);
  }
  CU_ASSERT_FATAL (g_strcmp0 (learned, committed) == 0);
}

static void
test_serve (void)
{
  g_autofree char *model_dir = in_src ("model");
  log_path = in_tmp ("serve.log");
  const char *argv[] = { cria_test_env ("CRIA_BIN"), "serve", "--model",   model_dir, "--port",         "0",
                         "--served-model-name",      "e2e",   "--threads", "1",       "--log-requests", NULL };
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_stderr_file_path (launcher, log_path);
  g_subprocess_launcher_set_child_setup (launcher, cria_test_die_with_parent, NULL, NULL);
  server_url = cria_test_start_listener (launcher, argv, &server);
}

/* The instructions of a JSON-lines file (the seed tasks). */
static GPtrArray *
read_instructions (const char *path)
{
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_autoptr (JsonNode) n = **l ? json_from_string (*l, NULL) : NULL;
    if (n && JSON_NODE_HOLDS_OBJECT (n))
      g_ptr_array_add (out, g_strdup (json_object_get_string_member (json_node_get_object (n), "instruction")));
  }
  return out;
}

/* A pipeline through cria serve, answers cached in tmp/cache; its summary. */
static JsonNode *
run_served (char *(*pipeline) (const char *url, const char *cache, const char *out), const char *out)
{
  CU_ASSERT_PTR_NOT_NULL_FATAL (server_url);
  g_autofree char *cache = in_tmp ("cache");
  g_autofree char *desc = pipeline (server_url, cache, out);
  return run_data (desc);
}

static void
test_selfinstruct (void)
{
  g_autoptr (JsonNode) summary = run_served (selfinstruct_pipeline, "si.jsonl");
  /* The first list: the fruits, the haiku and the review are kept; "Sort."
   * is too short, the map is blocklisted, the temperature is a seed. The
   * second is the same list: what the rules do not drop is similar. */
  expect_reasons (summary, 0,
                  (const char *[]){ "too-short=2", "blocklist=2", "similar=5", "surplus=0", "truncated=0",
                                    "unparsed-list=0", "unparsed-classification=0", "unparsed-instance=0",
                                    "same-input-output=0", NULL });
  g_autoptr (GPtrArray) recs = read_records ("si.jsonl");
  CU_ASSERT_EQUAL_FATAL (recs->len, 3);
  g_autofree char *seeds = seeds_path ();
  g_autoptr (GPtrArray) pool = read_instructions (seeds);
  for (guint i = 0; i < recs->len; i++) {
    CriaRecord *r = recs->pdata[i];
    expect_kept (r, pool);
    g_ptr_array_add (pool, g_strdup (r->instruction));
  }
  CriaRecord *review = recs->pdata[2];
  CU_ASSERT_STRING_EQUAL (review->instruction, REVIEW);
  CU_ASSERT_TRUE (json_object_get_boolean_member (review->meta, "is_classification"));
  CU_ASSERT_STRING_EQUAL (review->output, "positive");
  expect_same_file ("si.jsonl", "teacher-si.jsonl");
}

static void
test_evolinstruct (void)
{
  g_autoptr (JsonNode) summary = run_served (evolinstruct_pipeline, "evo.jsonl");
  /* The shop's rewrite leaks the prompt and the climate's answer apologizes,
   * in both rounds (a dropped evolution leaves its parent to the next). */
  expect_reasons (summary, 1,
                  (const char *[]){ "prompt-leak=2", "apology=2", "no-information-gain=0", "empty=0",
                                    "punctuation-and-stop-words=0", NULL });
  g_autoptr (GPtrArray) recs = read_records ("evo.jsonl");
  CU_ASSERT_EQUAL_FATAL (recs->len, 5);
  const char *want[] = { SLEEP, SHOP, CLIMATE, SLEEP1, SLEEP2 };
  for (guint i = 0; i < recs->len; i++)
    CU_ASSERT_STRING_EQUAL (((CriaRecord *) recs->pdata[i])->instruction, want[i]);
  /* Each evolution is its parent's, by rules checked here again. */
  for (guint i = 3; i < recs->len; i++) {
    CriaRecord *r = recs->pdata[i], *parent = recs->pdata[i == 3 ? 0 : i - 1];
    CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "source"), "evolinstruct");
    CU_ASSERT_EQUAL (json_object_get_int_member (r->meta, "round"), i - 2);
    CU_ASSERT (rouge_l (r->instruction, parent->instruction) < 0.9);
    g_autoptr (GPtrArray) words = words_of (r->instruction);
    g_autoptr (GPtrArray) answer = words_of (r->output);
    CU_ASSERT_FALSE (has_phrase (words, "prompt"));
    CU_ASSERT_FALSE (has_phrase (answer, "sorry") || has_phrase (answer, "i cannot"));
    CU_ASSERT (answer->len > 0);
  }
  expect_same_file ("evo.jsonl", "teacher-evo.jsonl");
}

/* Every request reached cria serve: one line each in its log, all answered. */
static void
test_log (void)
{
  CU_ASSERT_PTR_NOT_NULL_FATAL (server);
  CU_ASSERT_EQUAL (cria_test_stop_listener (server), 0);
  g_clear_object (&server);
  g_autofree char *log = cria_test_read_file (log_path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (log);
  guint lines = 0, answered = 0;
  g_auto (GStrv) l = g_strsplit (log, "\n", -1);
  for (char **p = l; *p; p++) {
    lines += **p != '\0';
    answered += g_str_has_prefix (*p, "cria serve: 127.0.0.1 POST /v1/chat/completions 200 ");
  }
  if (answered != n_si_asked + n_evo_asked || lines != answered)
    printf ("\nthe server's log:\n%s\n", log);
  CU_ASSERT_EQUAL (answered, n_si_asked + n_evo_asked);
  CU_ASSERT_EQUAL (lines, answered);
}

/* The server is gone: the same pipelines write the same bytes from the cache. */
static void
test_rerun_from_cache (void)
{
  CU_ASSERT_PTR_NULL_FATAL (server);
  g_autoptr (JsonNode) s1 = run_served (selfinstruct_pipeline, "si-again.jsonl");
  expect_same_file ("si.jsonl", "si-again.jsonl");
  CU_ASSERT_EQUAL (reason (s1, 0, "similar"), 5);
  g_autoptr (JsonNode) s2 = run_served (evolinstruct_pipeline, "evo-again.jsonl");
  expect_same_file ("evo.jsonl", "evo-again.jsonl");
  CU_ASSERT_EQUAL (reason (s2, 1, "apology"), 2);
}

static int
setup (void)
{
  tmp = cria_test_tmpdir ();
  asked = g_ptr_array_new_with_free_func (g_free);
  taught = g_ptr_array_new ();
  g_autofree char *base = cria_fake_openai_start (teach, NULL);
  teacher_url = g_strconcat (base, "/v1", NULL);
  return 0;
}

static int
teardown (void)
{
  if (server) {
    g_subprocess_force_exit (server);
    g_subprocess_wait (server, NULL, NULL);
    g_clear_object (&server);
  }
  cria_test_rmtree (tmp);
  g_clear_pointer (&tmp, g_free);
  g_clear_pointer (&teacher_url, g_free);
  g_clear_pointer (&log_path, g_free);
  g_clear_pointer (&server_url, g_free);
  g_clear_pointer (&asked, g_ptr_array_unref);
  g_clear_pointer (&taught, g_ptr_array_unref);
  return 0;
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "the pipelines against the teacher", test_teacher },
    { "cria serve starts on the model", test_serve },
    { "selfinstruct through cria serve", test_selfinstruct },
    { "evolinstruct through cria serve", test_evolinstruct },
    { "the server's request log", test_log },
    { "a rerun from the cache, server stopped", test_rerun_from_cache },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("construct-e2e", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
