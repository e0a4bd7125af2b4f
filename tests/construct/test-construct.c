/* test-construct: the selfinstruct, evolinstruct, fill and synth stages run
 * end to end in pipelines against a scripted OpenAI-compatible server on
 * loopback (fake-openai.h). The script's crafted answers trip every filter,
 * elimination rule and parse failure, each of which must be counted under its
 * reason; a rerun must be answered from the cache with byte-identical
 * output; an endpoint that goes down must fail clearly and a rerun resume. */
#include <string.h>

#include <glib/gstdio.h>

#include "cria-test.h"
#include "fake-openai.h"

static CriaRegistry *reg;
static char *base;

/* ---- the script ------------------------------------------------------------ */

static GMutex lock;
static GPtrArray *lists;    /* answers to "continue the list" requests, in order */
static GPtrArray *finishes; /* their finish reasons (NULL: stop) */
static guint list_next;
static GHashTable *answers; /* "kind:key" -> answer */
static int n_requests;
static int down_after = -1; /* answer this many requests, then 503 */
static GPtrArray *seen;     /* every request's text */

static void
script_reset (void)
{
  g_mutex_lock (&lock);
  g_clear_pointer (&lists, g_ptr_array_unref);
  g_clear_pointer (&finishes, g_ptr_array_unref);
  g_clear_pointer (&answers, g_hash_table_unref);
  g_clear_pointer (&seen, g_ptr_array_unref);
  lists = g_ptr_array_new_with_free_func (g_free);
  finishes = g_ptr_array_new_with_free_func (g_free);
  answers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  seen = g_ptr_array_new_with_free_func (g_free);
  list_next = 0;
  n_requests = 0;
  down_after = -1;
  g_mutex_unlock (&lock);
}

static void
script_list (const char *text, const char *finish)
{
  g_ptr_array_add (lists, g_strdup (text));
  g_ptr_array_add (finishes, g_strdup (finish));
}

static void
script_answer (const char *kind, const char *key, const char *text)
{
  g_hash_table_insert (answers, g_strconcat (kind, ":", key, NULL), g_strdup (text));
}

static const char *
lookup (const char *kind, const char *key)
{
  g_autofree char *k = g_strconcat (kind, ":", key, NULL);
  return g_hash_table_lookup (answers, k);
}

static gboolean
is_number_line (const char *line)
{
  const char *p = line;
  while (g_ascii_isdigit (*p))
    p++;
  return p > line && !strcmp (p, ".");
}

/* Picks the answer from what the prompt asks, by the layout of cria's prompt files. */
static char *
script (const char *said, const char **finish)
{
  const char *nl = strrchr (said, '\n');
  const char *last = nl ? nl + 1 : said;
  *finish = NULL;
  if (is_number_line (last)) {
    if (list_next >= lists->len)
      return g_strdup ("");
    *finish = g_ptr_array_index (finishes, list_next);
    return g_strdup (g_ptr_array_index (lists, list_next++));
  }
  if (g_str_has_prefix (last, "Is the answer one of") || g_str_has_prefix (last, "答案是否取自")) {
    g_autofree char *head = g_strndup (said, (gsize) (nl - said));
    const char *task = strrchr (head, '\n') + 1;
    task += g_str_has_prefix (task, "Task: ") ? strlen ("Task: ") : strlen ("任务：");
    const char *a = lookup ("classify", task);
    return g_strdup (a ? a : g_str_has_prefix (last, "Is") ? "No" : "否");
  }
  if (g_str_has_prefix (last, "Task: ") || g_str_has_prefix (last, "任务：")) {
    const char *task = last + (g_str_has_prefix (last, "Task: ") ? strlen ("Task: ") : strlen ("任务："));
    const char *a = lookup ("instance", task);
    if (a)
      return g_strdup (a);
    if (strstr (said, "Class label:"))
      return g_strdup ("Class label: positive\nInput: A fine day at the beach.\n\nTask: more");
    return g_strdup (*last == 'T' ? "Input: <noinput>\nOutput: A careful answer." : "输入：无\n输出：一个认真的回答。");
  }
  const char *given = strstr (said, "\nGiven prompt:\n");
  if (g_str_has_prefix (said, "EVOLVE ") || given) {
    const char *instr = given ? given + strlen ("\nGiven prompt:\n") : strchr (said, '\n') + 1;
    const char *a = lookup ("evolve", instr);
    return a ? g_strdup (a) : g_strdup_printf ("%s Use at most %d words.", instr, 10 + n_requests);
  }
  const char *slot = strstr (said, "placeholder named \"");
  if (slot) {
    slot += strlen ("placeholder named \"");
    g_autofree char *name = g_strndup (slot, strcspn (slot, "\""));
    const char *a = lookup ("slot", name);
    return g_strdup (a ? a : "\"winter\".");
  }
  const char *a = lookup ("answer", said);
  return a ? g_strdup (a) : g_strconcat ("Answer: ", said, NULL);
}

static void
handle (SoupServerMessage *msg, const char *path, gpointer data)
{
  g_mutex_lock (&lock);
  if (down_after >= 0 && n_requests >= down_after) {
    g_mutex_unlock (&lock);
    cria_fake_openai_respond (msg, 503, "{\"error\": {\"message\": \"down for maintenance\"}}");
    return;
  }
  n_requests++;
  g_autofree char *said = cria_fake_openai_said (msg, TRUE);
  g_ptr_array_add (seen, g_strdup (said));
  const char *finish = NULL;
  g_autofree char *text = script (said, &finish);
  g_autofree char *fin = g_strdup (finish);
  g_mutex_unlock (&lock);
  cria_fake_openai_answer (msg, TRUE, text, fin);
}

static int
requests (void)
{
  g_mutex_lock (&lock);
  int n = n_requests;
  g_mutex_unlock (&lock);
  return n;
}

/* ---- running pipelines ------------------------------------------------------ */

static char *tmp;

static int
setup (void)
{
  reg = cria_test_registry ();
  base = cria_fake_openai_start (handle, NULL);
  tmp = cria_test_tmpdir ();
  script_reset ();
  return 0;
}

static int
teardown (void)
{
  cria_test_rmtree (tmp);
  cria_registry_free (reg);
  return 0;
}

static char *
gen_spec (void)
{
  return g_strdup_printf ("generator=\"openai base-url=%s/v1 model=t concurrency=1 retries=0 backoff=0\"", base);
}

static char *
fixture (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "construct", name, NULL);
}

static char *
in_tmp (const char *name)
{
  return g_build_filename (tmp, name, NULL);
}

/* Runs a pipeline (on-error=skip, seed 1); returns its summary or NULL with *error. */
static JsonNode *
run (const char *description, GError **error)
{
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, description, error);
  if (!p)
    return NULL;
  cria_pipeline_set_on_error (p, CRIA_ON_ERROR_SKIP);
  cria_pipeline_set_seed (p, 1);
  if (!cria_pipeline_run (p, error))
    return NULL;
  return cria_pipeline_get_summary (p);
}

static JsonObject *
stage_of (JsonNode *summary, guint stage)
{
  JsonArray *stages = json_object_get_array_member (json_node_get_object (summary), "stages");
  return json_array_get_object_element (stages, stage);
}

static gint64
reason (JsonNode *summary, guint stage, const char *name)
{
  JsonObject *st = stage_of (summary, stage);
  return json_object_get_int_member_with_default (json_object_get_object_member (st, "reasons"), name, 0);
}

static gint64
stage_count (JsonNode *summary, guint stage, const char *what)
{
  return json_object_get_int_member (stage_of (summary, stage), what);
}

static GPtrArray *
read_records (const char *path)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  g_autofree char *text = cria_test_read_file (path);
  g_auto (GStrv) lines = g_strsplit (text ? text : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!**l)
      continue;
    g_autoptr (JsonNode) n = json_from_string (*l, NULL);
    g_ptr_array_add (out, cria_record_from_json (json_node_get_object (n), NULL));
  }
  return out;
}

static void
expect_reasons (JsonNode *summary, guint stage, const char *const *pairs)
{
  for (const char *const *p = pairs; *p; p += 2) {
    gint64 want = g_ascii_strtoll (p[1], NULL, 10), got = reason (summary, stage, p[0]);
    if (got != want)
      printf ("\nreason %s: %" G_GINT64_FORMAT ", want %" G_GINT64_FORMAT "\n", p[0], got, want);
    CU_ASSERT_EQUAL (got, want);
  }
}

/* Runs the pipeline again into another file: answered from the cache alone,
 * it must write the same bytes. */
static void
expect_same_rerun (const char *desc, const char *out)
{
  g_autofree char *again = g_strconcat (out, ".again", NULL);
  g_autofree char *from = g_strconcat ("location=", out, NULL), *to = g_strconcat ("location=", again, NULL);
  g_auto (GStrv) parts = g_strsplit (desc, from, -1);
  g_autofree char *desc2 = g_strjoinv (to, parts);
  int before = requests ();
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc2, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  CU_ASSERT_EQUAL (requests (), before);
  g_autofree char *a = cria_test_read_file (out), *b = cria_test_read_file (again);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_STRING_EQUAL (a, b);
}

/* ---- selfinstruct ------------------------------------------------------------- */

/* Four rounds of two prompts: items that trip each filter, a seed copied
 * (similar), an answer cut by the token limit, answers that are no list,
 * a classification and an instance that cannot be read, and surplus. */
static void
script_selfinstruct (void)
{
  script_reset ();
  GString *long_one = g_string_new ("Write");
  for (int i = 0; i < 160; i++)
    g_string_append (long_one, " more");
  g_autofree char *list0 = g_strdup_printf (
      " Write a short poem about the autumn rain falling on a quiet town.\n6. Sort these.\n7. Describe the image "
      "below and list every object in it.\n8. - List five fruits that are red and grow on trees.\n9. Écrivez une "
      "lettre à votre ami au sujet de vos vacances.\n10. Convert the temperature from Celsius to Fahrenheit.\n11. "
      "%s\n12. Classify the sentiment of the given movie review as positive or negative.",
      long_one->str);
  g_string_free (long_one, TRUE);
  script_list (list0, NULL);
  script_list ("Explain how a bicycle gear system helps a rider climb steep hills.\n6. Suggest three names for a "
               "bakery that sells only sourdough bread.\n7. Give the",
               "length");
  script_list ("", NULL);
  script_list ("Translate the sentence into French.\n6. Write a limerick about a cat who is afraid of mice.\n7. Name "
               "the capital city of every country in South America.",
               NULL);
  script_list ("Write a limerick about a cat who is afraid of the mice.\n6. Suggest a weekend itinerary in Kyoto "
               "for a family with two children.",
               NULL);
  script_answer ("classify", "Classify the sentiment of the given movie review as positive or negative.", "Yes");
  script_answer ("classify", "Suggest three names for a bakery that sells only sourdough bread.", "Maybe later");
  script_answer ("instance", "Explain how a bicycle gear system helps a rider climb steep hills.",
                 "I am not sure what to write here.");
  script_answer ("instance", "Translate the sentence into French.", "Input: bonjour\nOutput: bonjour");
  script_answer ("instance", "Write a limerick about a cat who is afraid of mice.",
                 "Input: <noinput>\nOutput: A cat with a fear of the mouse\nkept watch on the stairs of the house.");
}

static char *
selfinstruct_pipeline (const char *cache, const char *out)
{
  g_autofree char *seeds = fixture ("seeds-en.jsonl");
  g_autofree char *gen = gen_spec ();
  return g_strdup_printf ("selfinstruct seeds=%s count=4 examples=4 machine-examples=1 batch=2 task-examples=1 "
                          "cache=%s %s ! jsonl location=%s",
                          seeds, cache, gen, out);
}

static void
test_selfinstruct (void)
{
  script_selfinstruct ();
  g_autofree char *cache = in_tmp ("si-cache"), *out = in_tmp ("si.jsonl");
  g_autofree char *desc = selfinstruct_pipeline (cache, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  if (e)
    printf ("\n%s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  expect_reasons (summary, 0,
                  (const char *[]){ "too-short",
                                    "1",
                                    "blocklist",
                                    "1",
                                    "punctuation-start",
                                    "1",
                                    "non-ascii-start",
                                    "1",
                                    "similar",
                                    "2",
                                    "too-long",
                                    "1",
                                    "truncated",
                                    "1",
                                    "unparsed-list",
                                    "2",
                                    "unparsed-classification",
                                    "1",
                                    "unparsed-instance",
                                    "1",
                                    "same-input-output",
                                    "1",
                                    "surplus",
                                    "1",
                                    NULL });
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 4);
  const char *want[] = { "Write a short poem about the autumn rain falling on a quiet town.",
                         "Classify the sentiment of the given movie review as positive or negative.",
                         "Write a limerick about a cat who is afraid of mice.",
                         "Suggest a weekend itinerary in Kyoto for a family with two children." };
  for (guint i = 0; i < 4; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    CU_ASSERT_STRING_EQUAL (r->instruction, want[i]);
    CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "source"), "selfinstruct");
  }
  CriaRecord *cls = g_ptr_array_index (recs, 1);
  CU_ASSERT_TRUE (json_object_get_boolean_member (cls->meta, "is_classification"));
  CU_ASSERT_STRING_EQUAL (cls->output, "positive");
  CU_ASSERT_STRING_EQUAL (cls->input, "A fine day at the beach."); /* cut before the model's next "Task:" */
  CriaRecord *limerick = g_ptr_array_index (recs, 2);
  CU_ASSERT_STRING_EQUAL (limerick->input, "");
  CU_ASSERT_PTR_NOT_NULL (strstr (limerick->output, "kept watch"));
  /* Later prompts mix the model's own instructions (machine-examples=1) with 3 seeds. */
  guint n_lists = 0, mixed = 0;
  for (guint i = 0; i < seen->len; i++) {
    const char *s = g_ptr_array_index (seen, i);
    if (!g_str_has_suffix (s, "\n5."))
      continue;
    n_lists++;
    mixed += strstr (s, "autumn rain") || strstr (s, "movie review") || strstr (s, "bicycle gear") ||
             strstr (s, "sourdough") || strstr (s, "into French") || strstr (s, "afraid of mice");
    CU_ASSERT_PTR_NOT_NULL (strstr (s, "\n4. "));
  }
  CU_ASSERT_EQUAL (n_lists, 6);
  CU_ASSERT_EQUAL (mixed, 4);
  expect_same_rerun (desc, out);
}

static void
test_selfinstruct_resume (void)
{
  /* The uninterrupted run, for reference. */
  script_selfinstruct ();
  g_autofree char *c1 = in_tmp ("resume-ref"), *ref = in_tmp ("resume-ref.jsonl");
  g_autofree char *d1 = selfinstruct_pipeline (c1, ref);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s1 = run (d1, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (s1);
  int total = requests ();
  /* The endpoint goes down after 5 answers: a clear error and no output file. */
  script_selfinstruct ();
  down_after = 5;
  g_autofree char *c2 = in_tmp ("resume"), *out = in_tmp ("resume.jsonl");
  g_autofree char *d2 = selfinstruct_pipeline (c2, out);
  g_autoptr (JsonNode) s2 = run (d2, &e);
  CU_ASSERT_PTR_NULL (s2);
  if (!e || !strstr (e->message, "HTTP 503: down for maintenance"))
    printf ("\n%s\n", e ? e->message : "(no error)");
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "HTTP 503: down for maintenance"));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "selfinstruct: "));
  CU_ASSERT_PTR_NULL (e ? strchr (e->message, '\n') : NULL);
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
  g_clear_error (&e);
  /* Back up: the rerun asks only what was not answered, and gives the same records. */
  g_mutex_lock (&lock);
  down_after = -1;
  g_mutex_unlock (&lock);
  g_autoptr (JsonNode) s3 = run (d2, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (s3);
  CU_ASSERT_EQUAL (requests (), total);
  g_autofree char *a = cria_test_read_file (ref), *b = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (a, b);
}

static void
run_chinese (const char *seeds)
{
  script_reset ();
  script_list ("请写一首关于春天的短诗，描写花开和鸟鸣。\n6. 描述这张图片中的人物。\n7. 好的\n8. "
               "“春眠不觉晓”的下一句是什么？\n9. "
               "Python是一种什么样的编程语言？请简要介绍它的特点。",
               NULL);
  script_answer ("instance", "Python是一种什么样的编程语言？请简要介绍它的特点。",
                 "输入：无\n输出：Python 是一种简洁易读的解释型语言。");
  g_autofree char *cache = in_tmp ("zh-cache"), *out = in_tmp ("zh.jsonl");
  g_autofree char *gen = gen_spec ();
  g_autofree char *desc = g_strdup_printf (
      "selfinstruct seeds=%s count=2 examples=4 machine-examples=0 batch=1 cache=%s %s ! jsonl location=%s", seeds,
      cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  /* Length in characters; no ASCII rule for Chinese pools; Chinese punctuation counts. */
  expect_reasons (
      summary, 0,
      (const char *[]){ "blocklist", "1", "too-short", "1", "punctuation-start", "1", "non-ascii-start", "0", NULL });
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 2);
  CriaRecord *r = g_ptr_array_index (recs, 1);
  CU_ASSERT_STRING_EQUAL (r->output, "Python 是一种简洁易读的解释型语言。");
  CU_ASSERT_STRING_EQUAL (r->input, "");
  /* The Chinese prompt files were used. */
  CU_ASSERT_PTR_NOT_NULL (strstr (g_ptr_array_index (seen, 0), "编号列表"));
}

static void
test_selfinstruct_chinese (void)
{
  g_autofree char *fix = fixture ("seeds-zh.jsonl");
  run_chinese (fix);
  /* The real 175 Chinese seeds, when ../shared has them. */
  g_autofree char *shared = g_build_filename (cria_test_env ("CRIA_SHARED"), "data/belle_zh/zh_seed_tasks.json", NULL);
  if (g_file_test (shared, G_FILE_TEST_EXISTS))
    run_chinese (shared);
}

static void
test_selfinstruct_shared_seeds (void)
{
  g_autofree char *seeds = g_build_filename (cria_test_env ("CRIA_SHARED"), "data/self_instruct/seed_tasks.jsonl",
                                             NULL);
  if (!g_file_test (seeds, G_FILE_TEST_EXISTS)) {
    printf ("(../shared absent: skipped) ");
    return;
  }
  script_reset ();
  /* A seed task copied word for word, and a new one. */
  script_list (" What is the relation between the given pairs?\n10. Plan a three-course vegetarian dinner for six "
               "guests on a small budget.",
               NULL);
  g_autofree char *cache = in_tmp ("shared-cache"), *out = in_tmp ("shared.jsonl");
  g_autofree char *gen = gen_spec ();
  g_autofree char *desc = g_strdup_printf ("selfinstruct seeds=%s count=1 batch=1 cache=%s %s ! jsonl location=%s",
                                           seeds, cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  CU_ASSERT_EQUAL (reason (summary, 0, "similar"), 1);
  CU_ASSERT_EQUAL (stage_count (summary, 0, "out"), 1);
  /* The paper's prompt: eight instructions, all human while there are no machine ones. */
  const char *first = g_ptr_array_index (seen, 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (first, "\n8. "));
  CU_ASSERT_TRUE (g_str_has_suffix (first, "\n9."));
}

/* ---- evolinstruct ------------------------------------------------------------- */

static void
test_evolinstruct (void)
{
  script_reset ();
  script_answer ("evolve", "Name a color.", "#Rewritten Prompt#: Name a color that feels warm.");
  script_answer ("evolve", "Say hello to the team.", "Say hello to the team.");
  script_answer ("evolve", "Explain gravity.", "Explain gravity to a child using a falling apple.");
  script_answer ("answer", "Explain gravity to a child using a falling apple.", "Sorry, I cannot help with that.");
  script_answer ("evolve", "List three prime numbers.", "List three prime numbers greater than fifty.");
  script_answer ("answer", "List three prime numbers greater than fifty.", "the, of and .");
  script_answer ("evolve", "Tell a joke.", "   ");
  g_autofree char *prompts = in_tmp ("evolve-prompts");
  g_mkdir (prompts, 0755);
  const char *kinds[] = { "constraints", "breadth" };
  for (guint i = 0; i < 2; i++) {
    g_autofree char *name = g_strdup_printf ("evolve-%s.txt", kinds[i]);
    g_autofree char *path = g_build_filename (prompts, name, NULL);
    g_autofree char *text = g_strdup_printf ("EVOLVE %s\n{instruction}\n", kinds[i]);
    cria_test_write_file (path, text);
  }
  g_autofree char *in = in_tmp ("evolve-in.jsonl"), *out = in_tmp ("evolve-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"Write a poem about rain.\", \"output\": \"Rain.\", \"id\": \"p1\"}\n"
                            "{\"instruction\": \"Name a color.\", \"output\": \"Red.\"}\n"
                            "{\"instruction\": \"Say hello to the team.\", \"output\": \"Hello!\"}\n"
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                            "{\"instruction\": \"Explain gravity.\", \"output\": \"Mass attracts mass.\"}\n"
                            "{\"instruction\": \"List three prime numbers.\", \"output\": \"2, 3, 5\"}\n"
                            "{\"instruction\": \"Tell a joke.\", \"output\": \"Knock knock.\"}\n");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("evolve-cache");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! evolinstruct rounds=2 batch=4 kinds=constraints,breadth prompts=%s cache=%s %s ! "
      "jsonl location=%s",
      in, prompts, cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  if (e)
    printf ("\n%s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  /* Each failing item fails in both rounds: the original goes back and is tried again. */
  expect_reasons (summary, 1,
                  (const char *[]){ "prompt-leak", "2", "no-information-gain", "2", "apology", "2",
                                    "punctuation-and-stop-words", "2", "empty", "2", NULL });
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 9); /* 7 passed on, 2 evolutions of the poem */
  guint evolved = 0;
  const char *round1 = NULL;
  for (guint i = 0; i < recs->len; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    if (g_strcmp0 (cria_record_get_field (r, "source"), "evolinstruct"))
      continue;
    evolved++;
    gint64 round = json_object_get_int_member (r->meta, "round");
    CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "parent"), "p1");
    CU_ASSERT_TRUE (g_str_has_prefix (r->instruction, "Write a poem about rain. Use at most"));
    CU_ASSERT_TRUE (g_str_has_prefix (r->output, "Answer: "));
    if (round == 1)
      round1 = r->instruction;
    else
      CU_ASSERT_TRUE (round1 && g_str_has_prefix (r->instruction, round1)); /* evolved from round 1's */
  }
  CU_ASSERT_EQUAL (evolved, 2);
  /* "Name a color." was evolved from the original in both rounds. */
  guint tries = 0;
  for (guint i = 0; i < seen->len; i++)
    tries += g_str_has_suffix (g_ptr_array_index (seen, i), "\nName a color.");
  CU_ASSERT_EQUAL (tries, 2);
  expect_same_rerun (desc, out);
}

static void
test_evolinstruct_chinese (void)
{
  script_reset ();
  g_autofree char *in = in_tmp ("evolve-zh.jsonl"), *out = in_tmp ("evolve-zh-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"写一首关于秋天的诗。\", \"output\": \"秋风起。\"}\n");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("evolve-zh-cache");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! evolinstruct rounds=1 kinds=deepen cache=%s %s ! jsonl location=%s", in, cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  /* The shipped Chinese prompt went out; the script echoed it whole, which leaks it. */
  CU_ASSERT_PTR_NOT_NULL (strstr (g_ptr_array_index (seen, 0), "给定提示：\n写一首关于秋天的诗。"));
  CU_ASSERT_EQUAL (reason (summary, 1, "prompt-leak"), 1);
}

/* ---- fill and synth ------------------------------------------------------------- */

static void
test_fill (void)
{
  script_reset ();
  script_answer ("slot", "nothing", "   ");
  g_autofree char *in = in_tmp ("fill.jsonl"), *slots = in_tmp ("slots.json"), *out = in_tmp ("fill-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"Write a travel tip for {city} in {season}.\", \"id\": \"t1\"}\n"
                            "{\"instruction\": \"Summarize this.\", \"input\": \"{text}\", \"text\": \"Cats nap.\"}\n"
                            "{\"instruction\": \"Say {nothing}.\"}\n"
                            "{\"instruction\": \"Translate to French: hello\", \"output\": \"bonjour\"}\n");
  cria_test_write_file (slots, "{\"city\": [\"Lima\", \"Oslo\"]}");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("fill-cache");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! fill slots=%s n=2 cache=%s %s ! jsonl location=%s", in,
                                           slots, cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  if (e)
    printf ("\n%s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  /* The slot the generator left empty fails its record (counted), not the run. */
  CU_ASSERT_EQUAL (reason (summary, 1, "missing-field"), 1);
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 6);
  for (guint i = 0; i < 2; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    JsonObject *s = json_object_get_object_member (r->meta, "slots");
    const char *city = json_object_get_string_member (s, "city");
    CU_ASSERT_TRUE (!strcmp (city, "Lima") || !strcmp (city, "Oslo"));
    /* The generator's value, without its quotes and full stop. */
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (s, "season"), "winter");
    g_autofree char *want = g_strdup_printf ("Write a travel tip for %s in winter.", city);
    CU_ASSERT_STRING_EQUAL (r->instruction, want);
    g_autofree char *answer = g_strdup_printf ("Answer: %s", want);
    CU_ASSERT_STRING_EQUAL (r->output, answer);
  }
  CriaRecord *own = g_ptr_array_index (recs, 2);
  CU_ASSERT_STRING_EQUAL (own->input, "Cats nap.");
  CU_ASSERT_STRING_EQUAL (own->output, "Answer: Summarize this.\n\nCats nap.");
  CriaRecord *kept = g_ptr_array_index (recs, 4);
  CU_ASSERT_STRING_EQUAL (kept->output, "bonjour"); /* answer=missing: not asked */
  expect_same_rerun (desc, out);
  /* Without a generator, an unknown slot is a clear record error. */
  g_autofree char *d2 = g_strdup_printf ("file location=%s ! fill answer=never ! jsonl location=%s", in, out);
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, d2, &e);
  CU_ASSERT_FALSE (cria_pipeline_run (p, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "record t1: slot 'city' has no value"));
}

static void
test_synth (void)
{
  script_reset ();
  g_autofree char *facts = in_tmp ("facts.csv"), *tmpl = in_tmp ("synth.json"), *out = in_tmp ("synth.jsonl");
  cria_test_write_file (facts, "country,capital,population\nFrance,Paris,68 million\nPeru,Lima,\nAtlantis,,\n");
  cria_test_write_file (
      tmpl, "{\"templates\": [{\"name\": \"capital\", \"instruction\": \"What is the capital of {country}?\", "
            "\"output\": \"The capital of {country} is {capital}.\"}, {\"name\": \"people\", \"instruction\": "
            "\"How many people live in {country}?\", \"output\": \"{country} has about {population} people.\"}]}");
  g_autofree char *desc = g_strdup_printf ("synth facts=%s templates=%s ! jsonl location=%s", facts, tmpl, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  CU_ASSERT_EQUAL (reason (summary, 0, "no-template"), 1);
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 3);
  const char *outputs[] = { "The capital of France is Paris.", "France has about 68 million people.",
                            "The capital of Peru is Lima." };
  for (guint i = 0; i < 3; i++)
    CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (recs, i))->output, outputs[i]);
  CU_ASSERT_EQUAL (requests (), 0);
  /* Verbalized: the generator sees the question, the facts used and the draft. */
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("synth-cache");
  g_autofree char *d2 = g_strdup_printf ("synth facts=%s templates=%s cache=%s %s ! jsonl location=%s", facts, tmpl,
                                         cache, gen, out);
  g_autoptr (JsonNode) s2 = run (d2, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (s2);
  g_autoptr (GPtrArray) v = read_records (out);
  CU_ASSERT_EQUAL_FATAL (v->len, 3);
  CriaRecord *r = g_ptr_array_index (v, 0);
  CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "draft"), "The capital of France is Paris.");
  CU_ASSERT_PTR_NOT_NULL (strstr (r->output, "country: France\ncapital: Paris"));
  CU_ASSERT_PTR_NOT_NULL (strstr (r->output, "What is the capital of France?"));
  CU_ASSERT_EQUAL (requests (), 3);
  expect_same_rerun (d2, out);
}

/* ---- bad input ------------------------------------------------------------------ */

static void
expect_error (const char *desc, const char *fragment)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, &e);
  gboolean ran = p && cria_pipeline_run (p, &e);
  CU_ASSERT_FALSE (ran);
  if (!e || !strstr (e->message, fragment))
    printf ("\n'%s':\n  '%s' lacks '%s'\n", desc, e ? e->message : "(ran)", fragment);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, fragment));
  CU_ASSERT_PTR_NULL (e ? strchr (e->message, '\n') : NULL);
}

static void
test_bad_input (void)
{
  g_autofree char *gen = gen_spec ();
  g_autofree char *out = in_tmp ("bad.jsonl");
  struct {
    const char *name, *contents, *fragment;
  } seeds[] = {
    { "s1.jsonl",
      "{\"instruction\": \"a b c\", \"instances\": [{\"input\": \"\", \"output\": \"x\"}]}\n{\"name\": 1}\n",
      "s1.jsonl:2: missing field 'instruction'" },
    { "s2.jsonl", "{\"instruction\": \"a b c\", \"instances\": {}}\n", "s2.jsonl:1: field 'instances'" },
    { "s3.jsonl", "{\"instruction\": \"a\", \"instances\": [{\"input\": \"\"}]}\n", "s3.jsonl:1: instances[0]" },
    { "s4.jsonl", "{\"instruction\": \"a\", \"instances\": [{\"output\": \"y\"}], \"is_classification\": \"yes\"}\n",
      "s4.jsonl:1: field 'is_classification'" },
    { "s5.jsonl", "", "s5.jsonl: no seed tasks" },
    { "s6.jsonl", "{\"instruction\": \"a\",\n", "s6.jsonl:1" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (seeds); i++) {
    g_autofree char *path = in_tmp (seeds[i].name);
    cria_test_write_file (path, seeds[i].contents);
    g_autofree char *desc = g_strdup_printf ("selfinstruct seeds=%s %s ! jsonl location=%s", path, gen, out);
    expect_error (desc, seeds[i].fragment);
  }
  g_autofree char *fix = fixture ("seeds-en.jsonl");
  g_autofree char *d1 = g_strdup_printf ("selfinstruct seeds=%s generator=\"nope x=1\" ! jsonl location=%s", fix, out);
  expect_error (d1, "generator: no generator named 'nope'");
  g_autofree char *d2 = g_strdup_printf ("selfinstruct seeds=/nonexistent/seeds.jsonl %s ! jsonl location=%s", gen,
                                         out);
  expect_error (d2, "/nonexistent/seeds.jsonl");
  g_autofree char *d3 = g_strdup_printf ("selfinstruct seeds=%s prompts=/nonexistent %s ! jsonl location=%s", fix, gen,
                                         out);
  expect_error (d3, "prompts: /nonexistent is not a directory");
  /* A prompt file of one's own that names a value cria does not have. */
  g_autofree char *dir = in_tmp ("bad-prompts");
  g_mkdir (dir, 0755);
  g_autofree char *pf = g_build_filename (dir, "selfinstruct-generate.txt", NULL);
  cria_test_write_file (pf, "{examples}\n{nope}\n");
  g_autofree char *cache = in_tmp ("bad-cache");
  g_autofree char *d4 = g_strdup_printf ("selfinstruct seeds=%s prompts=%s cache=%s %s ! jsonl location=%s", fix, dir,
                                         cache, gen, out);
  expect_error (d4, "selfinstruct-generate.txt: template needs field 'nope'");
  g_autofree char *d5 = g_strdup_printf ("file location=%s ! evolinstruct kinds=deepen,sideways %s ! jsonl location=%s",
                                         fix, gen, out);
  expect_error (d5, "kinds: 'sideways' is not one of");
  g_autofree char *slots = in_tmp ("bad-slots.json");
  cria_test_write_file (slots, "{\"city\": [\"Lima\", 3]}");
  g_autofree char *d6 = g_strdup_printf ("file location=%s ! fill slots=%s %s ! jsonl location=%s", fix, slots, gen,
                                         out);
  expect_error (d6, "bad-slots.json: slot 'city': expected a non-empty array of strings");
  g_autofree char *d7 = g_strdup_printf ("file location=%s ! fill ! jsonl location=%s", fix, out);
  expect_error (d7, "answering needs a generator");
  g_autofree char *d9 = g_strdup_printf ("file location=%s ! fill fields=instruction,title %s ! jsonl location=%s", fix,
                                         gen, out);
  expect_error (d9, "fields: 'title' is not one of");
  g_autofree char *tmpl = in_tmp ("bad-templates.json"), *facts = in_tmp ("facts.jsonl");
  cria_test_write_file (tmpl, "{\"templates\": [{\"name\": \"x\", \"output\": \"{a}\"}]}");
  cria_test_write_file (facts, "{\"a\": \"1\"}\n{\"a\": \n");
  g_autofree char *d8 = g_strdup_printf ("synth facts=%s templates=%s ! jsonl location=%s", facts, tmpl, out);
  expect_error (d8, "bad-templates.json: templates[0]: field 'instruction': missing");
  cria_test_write_file (tmpl, "{\"templates\": [{\"instruction\": \"Say {a}.\", \"output\": \"{a}\"}]}");
  expect_error (d8, "facts.jsonl:2");
}

/* Through the command: an endpoint nobody listens on fails the run with one
 * line on stderr and exit status 1. */
static void
test_command_line (void)
{
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_socket_bind (sock, any, TRUE, NULL);
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (sock, NULL);
  guint16 port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);
  g_autofree char *seeds = fixture ("seeds-en.jsonl"), *out = in_tmp ("cli.jsonl"), *cache = in_tmp ("cli-cache");
  g_autofree char *desc = g_strdup_printf (
      "selfinstruct seeds=%s cache=%s generator=\"openai base-url=http://127.0.0.1:%u/v1 model=m retries=0\" ! "
      "jsonl location=%s",
      seeds, cache, port, out);
  const char *args[] = { "data", desc, NULL };
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  CU_ASSERT_EQUAL (status, 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "selfinstruct: 4 of 4 requests failed"));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "cannot reach it"));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (err), "\n", -1);
  CU_ASSERT_EQUAL (g_strv_length (lines), 1);
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* ---- the hybrid example of share/ ------------------------------------------------- */

static void
test_hybrid_example (void)
{
  script_reset ();
  script_answer ("slot", "concept", "photosynthesis");
  script_answer ("slot", "dish", "risotto");
  script_answer ("slot", "exam", "chemistry");
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_DATA_DIR"), "construct", "hybrid.json", NULL);
  g_autofree char *json = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (json);
  /* Pointed at the scripted server, with a cache and an output of the test's own. */
  g_autofree char *url = g_strdup_printf ("%s/v1", base);
  g_autofree char *cache = in_tmp ("hybrid-cache"), *out = in_tmp ("hybrid.jsonl");
  g_autofree char *gen = g_strdup_printf ("%s model=t concurrency=1 retries=0 backoff=0\", \"cache\": \"%s", url,
                                          cache);
  g_auto (GStrv) parts = g_strsplit (json, "http://127.0.0.1:8080/v1 model=demo", -1);
  g_autofree char *j1 = g_strjoinv (gen, parts);
  g_auto (GStrv) parts2 = g_strsplit (j1, "\"hybrid.jsonl\"", -1);
  g_autofree char *quoted = g_strdup_printf ("\"%s\"", out);
  g_autofree char *j2 = g_strjoinv (quoted, parts2);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse_json (reg, j2, -1, path, &e);
  if (e)
    printf ("\n%s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (p);
  CU_ASSERT_TRUE_FATAL (cria_pipeline_run (p, &e));
  g_autoptr (GPtrArray) recs = read_records (out);
  /* 6 + 2 templated records answered, each evolved once; dedup keeps them apart. */
  CU_ASSERT_EQUAL (recs->len, 16);
  guint evolved = 0;
  for (guint i = 0; i < recs->len; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    CU_ASSERT_PTR_NULL (strchr (r->instruction, '{'));
    CU_ASSERT_PTR_NOT_NULL (r->output);
    evolved += !g_strcmp0 (cria_record_get_field (r, "source"), "evolinstruct");
  }
  CU_ASSERT_EQUAL (evolved, 8);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "selfinstruct: every filter counted, a rerun from the cache", test_selfinstruct },
    { "selfinstruct: endpoint down, then a rerun resumes", test_selfinstruct_resume },
    { "selfinstruct: Chinese seeds", test_selfinstruct_chinese },
    { "selfinstruct: the 175 seed tasks", test_selfinstruct_shared_seeds },
    { "evolinstruct: every elimination rule, failures stay in the pool", test_evolinstruct },
    { "evolinstruct: Chinese prompts", test_evolinstruct_chinese },
    { "fill: slots from lists, records and the generator", test_fill },
    { "synth: facts through templates, verbalized", test_synth },
    { "bad seeds, prompts, slots, templates and facts", test_bad_input },
    { "the command line: endpoint unreachable", test_command_line },
    { "the hybrid example pipeline", test_hybrid_example },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("construct", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
