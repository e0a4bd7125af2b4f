/* test-rules: Self-Instruct and Evol-Instruct parsing and filter rules on
 * crafted model outputs, one case per rule. */
#include <math.h>

#include "rules.h"
#include "cria-test.h"

static CriaRegistry *reg;
static RulesPool *pool;

static int
setup (void)
{
  reg = cria_test_registry ();
  pool = rules_pool_new (reg, NULL);
  return pool ? 0 : 1;
}

static int
teardown (void)
{
  rules_pool_free (pool);
  cria_registry_free (reg);
  return 0;
}

static void
expect_items (const char *text, guint first, const char *const *want)
{
  g_autoptr (GPtrArray) items = rules_parse_numbered_list (text, first);
  guint n = g_strv_length ((char **) want);
  if (items->len != n)
    printf ("\n'%s': %u items, want %u\n", text, items->len, n);
  CU_ASSERT_EQUAL_FATAL (items->len, n);
  for (guint i = 0; i < n; i++)
    CU_ASSERT_STRING_EQUAL (g_ptr_array_index (items, i), want[i]);
}

static void
test_numbered_lists (void)
{
  /* The prompt ended with "9." so the answer starts inside item 9. */
  expect_items (" Write a haiku about rain.\n10. Translate the sentence into French.\n11. "
                "请把下面的句子翻译成英文。\n12.\n13. ignored",
                9,
                (const char *[]){ "Write a haiku about rain.", "Translate the sentence into French.",
                                  "请把下面的句子翻译成英文。", NULL });
  /* The model repeated the number itself. */
  expect_items ("9. a b c\n10) d e f", 9, (const char *[]){ "a b c", "d e f", NULL });
  /* A broken numbering ends the list. */
  expect_items ("9. one\n10. two\n15. three", 9, (const char *[]){ "one", "two", NULL });
  /* Items continue over lines. */
  expect_items ("Summarize the text\n   in two sentences.\n10、 再写一个例子", 9,
                (const char *[]){ "Summarize the text in two sentences.", "再写一个例子", NULL });
  expect_items ("", 9, (const char *[]){ NULL });
  expect_items ("\n\n", 1, (const char *[]){ NULL });
}

static void
test_instruction_filters (void)
{
  char *blocklist[] = { "image", "draw", "go to", "图片", NULL };
  RulesInstructionFilter f = { .min_words = 3, .max_words = 12, .blocklist = blocklist, .ascii_start = TRUE };
  struct {
    const char *text, *reason;
  } cases[] = {
    { "Give three tips for staying healthy.", NULL },
    { "Describe the image below.", "blocklist" },
    { "Draw a cat.", "blocklist" },
    { "Please go to the store website and order milk.", "blocklist" },
    { "Imagine you are a pilot and describe takeoff.", NULL }, /* "image" only as part of a word */
    { "Sort these.", "too-short" },
    { "Write a very long instruction that goes on and on past any limit we set here today", "too-long" },
    { "- List five fruits that are red.", "punctuation-start" },
    { "“Quote” the following sentence back to me.", "punctuation-start" },
    { "Éditez la phrase suivante en anglais.", "non-ascii-start" },
    { "   ", "empty" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const char *got = rules_check_instruction (&f, cases[i].text);
    if (g_strcmp0 (got, cases[i].reason) != 0)
      printf ("\n'%s': %s, want %s\n", cases[i].text, got ? got : "accepted",
              cases[i].reason ? cases[i].reason : "accepted");
    CU_ASSERT_STRING_EQUAL (got ? got : "accepted", cases[i].reason ? cases[i].reason : "accepted");
  }
  /* Chinese pools: words are characters, and a CJK start is fine. */
  RulesInstructionFilter zh = { .min_words = 4, .max_words = 50, .blocklist = blocklist, .ascii_start = FALSE };
  CU_ASSERT_PTR_NULL (rules_check_instruction (&zh, "给出下面词语的同义词"));
  CU_ASSERT_STRING_EQUAL (rules_check_instruction (&zh, "描述这张图片"), "blocklist");
  CU_ASSERT_STRING_EQUAL (rules_check_instruction (&zh, "写诗"), "too-short");
  CU_ASSERT_EQUAL (rules_count_words ("请写 a poem 关于海"), 7);
}

static void
test_similarity (void)
{
  /* LCS of 5 of 6 words either way: F1 = 5/6; punctuation and case do not count. */
  double f = rules_pool_similarity (pool, "Write a poem about the sea.", "write a poem about the ocean");
  CU_ASSERT_DOUBLE_EQUAL (f, 5.0 / 6.0, 1e-12);
  /* Chinese by characters: 请写一首关于海的诗 is common, 9 of 10 each way. */
  f = rules_pool_similarity (pool, "请写一首关于大海的诗", "请写一首关于海洋的诗");
  CU_ASSERT_DOUBLE_EQUAL (f, 0.9, 1e-12);
  CU_ASSERT (rules_pool_similarity (pool, "Name three primary colors.", "Translate this into German.") < 0.2);
  g_autoptr (RulesPool) p = rules_pool_new (reg, NULL);
  int where = 7;
  CU_ASSERT_DOUBLE_EQUAL (rules_pool_max_similarity (p, "anything", &where), 0, 0);
  CU_ASSERT_EQUAL (where, -1);
  rules_pool_add (p, "Name three primary colors.");
  rules_pool_add (p, "Write a poem about the ocean.");
  rules_pool_add (p, "Translate this into German.");
  f = rules_pool_max_similarity (p, "Write a poem about the sea.", &where);
  CU_ASSERT_EQUAL (where, 1);
  CU_ASSERT (f > 0.7);
  CU_ASSERT_EQUAL (rules_pool_size (p), 3);
}

static void
expect_instance (const char *text, gboolean output_first, const char *input, const char *output)
{
  char *in = NULL, *out = NULL;
  gboolean ok = rules_parse_instance (text, output_first, &in, &out);
  if (ok != (output != NULL) || (ok && (strcmp (in, input) || strcmp (out, output))))
    printf ("\n'%s': %s / %s\n", text, ok ? in : "(no instance)", ok ? out : "");
  CU_ASSERT_EQUAL (ok, output != NULL);
  if (ok && output) {
    CU_ASSERT_STRING_EQUAL (in, input);
    CU_ASSERT_STRING_EQUAL (out, output);
  }
  g_free (in);
  g_free (out);
}

static void
test_instances (void)
{
  expect_instance ("Input: The movie was great.\nOutput: positive", FALSE, "The movie was great.", "positive");
  expect_instance ("input: <noinput>\nOUTPUT: Paris", FALSE, "", "Paris");
  expect_instance ("Output: 42", FALSE, "", "42");
  expect_instance ("输入：今天天气很好\n输出：积极", FALSE, "今天天气很好", "积极");
  expect_instance ("Input: something\nno answer here", FALSE, NULL, NULL);
  expect_instance ("Input: something\nOutput:   ", FALSE, NULL, NULL);
  expect_instance ("Output: first\nInput: after", FALSE, NULL, NULL);
  expect_instance ("Class label: Positive\nInput: I loved every minute.", TRUE, "I loved every minute.", "Positive");
  expect_instance ("类别：负面\n输入：太难吃了", TRUE, "太难吃了", "负面");
  expect_instance ("Input: I loved it\nClass label: Positive", TRUE, NULL, NULL);
  gboolean yes;
  CU_ASSERT_TRUE (rules_parse_yes_no ("  Yes, it is.", &yes) && yes);
  CU_ASSERT_TRUE (rules_parse_yes_no ("No", &yes) && !yes);
  CU_ASSERT_TRUE (rules_parse_yes_no ("是的", &yes) && yes);
  CU_ASSERT_TRUE (rules_parse_yes_no ("不是", &yes) && !yes);
  CU_ASSERT_FALSE (rules_parse_yes_no ("Maybe", &yes));
}

static void
test_evolution (void)
{
  const char *orig = "Explain photosynthesis.";
  const char
      *good = "Explain photosynthesis to a ten-year-old, then compare it with how solar panels make electricity.";
  const char
      *answer = "Plants catch sunlight with chlorophyll and turn water and carbon dioxide into sugar and oxygen. "
                "Solar panels also catch sunlight, but they turn it straight into electricity.";
  struct {
    const char *evolved, *response, *reason;
  } cases[] = {
    { good, answer, NULL },
    { "Explain photosynthesis.", answer, "no-information-gain" },
    { "Explain the photosynthesis.", answer, "no-information-gain" },
    { "#Rewritten Prompt#: Explain photosynthesis in detail with examples.", answer, "prompt-leak" },
    { "Rewrite the given prompt so that it asks about photosynthesis in deserts.", answer, "prompt-leak" },
    { good, "I'm sorry, but I cannot help with that request.", "apology" },
    { good, "抱歉，我无法回答这个问题。", "apology" },
    { good, "... the, and of it!", "punctuation-and-stop-words" },
    { good, "这是的了。", "punctuation-and-stop-words" },
    { good, "  ", "empty" },
    { "", answer, "empty" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const char *got = rules_check_evolution (pool, orig, cases[i].evolved, cases[i].response, 0.7);
    if (g_strcmp0 (got, cases[i].reason) != 0)
      printf ("\ncase %u: %s, want %s\n", i, got ? got : "accepted", cases[i].reason ? cases[i].reason : "accepted");
    CU_ASSERT_STRING_EQUAL (got ? got : "accepted", cases[i].reason ? cases[i].reason : "accepted");
  }
  /* A long, helpful answer that mentions "sorry" in passing is not an apology. */
  GString *long_answer = g_string_new ("Saying sorry matters. ");
  for (int i = 0; i < 30; i++)
    g_string_append (long_answer, "Here is one more useful step to follow. ");
  CU_ASSERT_PTR_NULL (rules_check_evolution (pool, orig, good, long_answer->str, 0.7));
  g_string_free (long_answer, TRUE);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "numbered lists in model output", test_numbered_lists },
    { "Self-Instruct instruction filters", test_instruction_filters },
    { "ROUGE-L similarity (words and Chinese characters)", test_similarity },
    { "instances and yes/no answers", test_instances },
    { "Evol-Instruct elimination rules", test_evolution },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("construct rules", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
