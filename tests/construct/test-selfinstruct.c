/* test-selfinstruct: the selfinstruct stage end to end against the scripted
 * server (script.h): crafted answers trip every filter and parse failure,
 * each counted under its reason; a rerun is answered from the cache with
 * byte-identical output; an endpoint that goes down fails clearly and a rerun
 * resumes. English and Chinese fixtures, and ../shared's seed tasks when
 * present. */
#include <string.h>

#include "script.h"

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
  g_autoptr (JsonNode) summary = run_ok (desc);
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
  g_autoptr (JsonNode) s1 = run_ok (d1);
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
  g_autoptr (JsonNode) s3 = run_ok (d2);
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
  g_autoptr (JsonNode) summary = run_ok (desc);
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
  g_autoptr (JsonNode) summary = run_ok (desc);
  CU_ASSERT_EQUAL (reason (summary, 0, "similar"), 1);
  CU_ASSERT_EQUAL (stage_count (summary, 0, "out"), 1);
  /* The paper's prompt: eight instructions, all human while there are no machine ones. */
  const char *first = g_ptr_array_index (seen, 0);
  CU_ASSERT_PTR_NOT_NULL (strstr (first, "\n8. "));
  CU_ASSERT_TRUE (g_str_has_suffix (first, "\n9."));
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "selfinstruct: every filter counted, a rerun from the cache", test_selfinstruct },
    { "selfinstruct: endpoint down, then a rerun resumes", test_selfinstruct_resume },
    { "selfinstruct: Chinese seeds", test_selfinstruct_chinese },
    { "selfinstruct: the 175 seed tasks", test_selfinstruct_shared_seeds },
    { NULL },
  };
  script_add_suite ("selfinstruct", cases);
}

CRIA_TEST_MAIN (register_suites)
