/* test-data-curate: the transforms on fixtures whose right answers are known
 * by construction (clusters written in, reasons planted). */
#include "data-test.h"

static char *
write_records (const char *name, const char *const *instructions)
{
  char *p = data_path (name);
  GString *s = g_string_new (NULL);
  for (guint i = 0; instructions[i]; i++) {
    g_autoptr (CriaRecord) r = cria_record_new ();
    r->instruction = g_strdup (instructions[i]);
    r->output = g_strdup ("ok");
    json_object_set_int_member (r->meta, "id", i);
    g_autofree char *line = cria_record_to_json_line (r);
    g_string_append_printf (s, "%s\n", line);
  }
  cria_test_write_file (p, s->str);
  g_string_free (s, TRUE);
  return p;
}

static void
test_dedup_clusters (void)
{
  const char *fixture[] = {
    /* 0 */ "Explain how photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    /* 1 */
    "explain how photosynthesis turns   sunlight, water and carbon dioxide into sugar and oxygen.", /* exact of 0 */
    /* 2 */ "Explain how photosynthesis turns sunlight, water and carbon dioxide into sugars and oxygen!", /* near 0 */
    /* 3 */ "Write a haiku about the sea at night.",
    /* 4 */ "请解释光合作用如何把阳光、水和二氧化碳转化为糖和氧气，并说明叶绿体在其中的作用。",
    /* 5 */ "请解释光合作用如何把阳光、水和二氧化碳转化为糖和氧气，并说明叶绿体在其中的作用！", /* near 4 */
    /* 6 */ "List three prime numbers greater than one hundred.",
    /* 7 */ "Ｗｒｉｔｅ a haiku about the sea at night.", /* exact of 3 after NFKC */
    NULL,
  };
  g_autofree char *in = write_records ("dups.jsonl", fixture);
  g_autofree char *out = data_path ("unique.jsonl");
  g_autofree char *report = data_path ("clusters.jsonl");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! dedup threshold=0.7 ngram=3 report=%s ! jsonl location=%s", in, report, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  CU_ASSERT_EQUAL (data_reason (sum, 1, "duplicate"), 2);
  CU_ASSERT_EQUAL (data_reason (sum, 1, "near-duplicate"), 2);
  g_autofree char *clusters = cria_test_read_file (report);
  CU_ASSERT_STRING_EQUAL (clusters, "{\"kept\":0,\"duplicates\":[1,2],\"kind\":\"near\"}\n"
                                    "{\"kept\":3,\"duplicates\":[7],\"kind\":\"exact\"}\n"
                                    "{\"kept\":4,\"duplicates\":[5],\"kind\":\"near\"}\n");
  g_autoptr (GPtrArray) kept = data_read_records (out);
  CU_ASSERT_EQUAL (kept->len, 4);

  g_autofree char *exact = g_strdup_printf ("file location=%s ! dedup mode=exact ! jsonl location=%s", in, out);
  g_autoptr (JsonNode) s2 = data_run (exact, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_EQUAL (data_count (s2, 1, "out"), 6);
  g_autofree char *bad = g_strdup_printf ("file location=%s ! dedup num-perm=100 bands=32 ! jsonl location=%s", in,
                                          out);
  CU_ASSERT_PTR_NULL (data_run (bad, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "multiple of bands"));
}

static void
test_variants (void)
{
  const char *fixture[] = { "Explain the water cycle.",       "Summarize the following article.",
                            "What is the capital of France?", "解释什么是机器学习。",
                            "把下面的句子翻译成英文。",       NULL };
  g_autofree char *in = write_records ("seeds.jsonl", fixture);
  g_autofree char *a = data_path ("va.jsonl");
  g_autofree char *b = data_path ("vb.jsonl");
  g_autofree char *da = g_strdup_printf ("file location=%s ! variants n=4 ! jsonl location=%s", in, a);
  g_autofree char *db = g_strdup_printf ("file location=%s ! variants n=4 ! jsonl location=%s", in, b);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s1 = data_run (da, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (JsonNode) s2 = data_run (db, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  CU_ASSERT_EQUAL (data_count (s1, 1, "out"), 20);
  g_autofree char *ta = cria_test_read_file (a);
  g_autofree char *tb = cria_test_read_file (b);
  CU_ASSERT_STRING_EQUAL (ta, tb); /* seeded: the same run gives the same variants */
  g_autoptr (GPtrArray) rs = data_read_records (a);
  for (guint i = 0; i < 5; i++) {
    g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
    for (guint k = 0; k < 4; k++) {
      CriaRecord *r = g_ptr_array_index (rs, i * 4 + k);
      CU_ASSERT_FALSE (g_hash_table_contains (seen, r->instruction));
      g_hash_table_add (seen, r->instruction);
      CU_ASSERT_STRING_EQUAL (r->output, "ok");
      if (k == 0)
        CU_ASSERT_STRING_EQUAL (r->instruction, fixture[i]);
    }
  }
}

static void
test_filter_and_clean (void)
{
  g_autofree char *in = data_path ("mixed.jsonl");
  g_autofree char *out = data_path ("filtered.jsonl");
  cria_test_write_file (in,
                        "{\"instruction\":\"<p>Hello&amp;  <b>world</b></p>\\u0007\",\"output\":\"fine answer here\"}\n"
                        "{\"instruction\":\"short\",\"output\":\"x\"}\n"
                        "{\"instruction\":\"As an AI language model I cannot\",\"output\":\"blocked answer\"}\n"
                        "{\"instruction\":\"没有输出的记录在这里\"}\n"
                        "{\"instruction\":\"这是一个完全用中文写成的指令\",\"output\":\"这是回答的内容\"}\n");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! clean ! filter min-chars=15 require=instruction,output "
                                           "blocklist=\"as an ai\" ! jsonl location=%s",
                                           in, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  CU_ASSERT_EQUAL (data_reason (sum, 2, "too-short"), 1);
  CU_ASSERT_EQUAL (data_reason (sum, 2, "blocked"), 1);
  CU_ASSERT_EQUAL (data_reason (sum, 2, "missing-field"), 1);
  g_autoptr (GPtrArray) rs = data_read_records (out);
  CU_ASSERT_EQUAL_FATAL (rs->len, 2);
  CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (rs, 0))->instruction, "Hello& world");
  g_autofree char *zh = g_strdup_printf (
      "file location=%s ! filter script=han min-script-ratio=0.9 ! jsonl location=%s", in, out);
  g_autoptr (JsonNode) s2 = data_run (zh, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_EQUAL (data_count (s2, 1, "out"), 2);
  CU_ASSERT_EQUAL (data_reason (s2, 1, "wrong-script"), 3);
  g_autofree char *re = g_strdup_printf ("file location=%s ! filter regex=\"[\" ! jsonl location=%s", in, out);
  CU_ASSERT_PTR_NULL (data_run (re, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "regex: "));
}

static char *
numbered (guint n)
{
  g_autoptr (GPtrArray) ins = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (ins, g_strdup_printf ("instruction number %u", i));
  g_ptr_array_add (ins, NULL);
  return write_records ("numbered.jsonl", (const char *const *) ins->pdata);
}

static void
test_order_and_split (void)
{
  g_autofree char *in = numbered (200);
  g_autofree char *a = data_path ("s1.jsonl"), *b = data_path ("s2.jsonl"), *ev = data_path ("eval.jsonl");
  g_autoptr (GError) e = NULL;
  g_autofree char *d1 = g_strdup_printf ("file location=%s ! shuffle seed=3 ! jsonl location=%s", in, a);
  g_autofree char *d2 = g_strdup_printf ("file location=%s ! shuffle seed=3 ! jsonl location=%s", in, b);
  g_autoptr (JsonNode) x1 = data_run (d1, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (JsonNode) x2 = data_run (d2, CRIA_ON_ERROR_STOP, &e);
  g_autofree char *t1 = cria_test_read_file (a), *t2 = cria_test_read_file (b), *t0 = cria_test_read_file (in);
  CU_ASSERT_STRING_EQUAL (t1, t2);
  CU_ASSERT_STRING_NOT_EQUAL (t1, t0);
  CU_ASSERT_EQUAL (strlen (t1), strlen (t0));

  /* split by ratio is a property of each record's content: shuffled input
   * sends the same records to eval. */
  g_autofree char *d3 = g_strdup_printf ("file location=%s ! split ratio=0.25 eval-location=%s ! jsonl location=%s", in,
                                         ev, b);
  g_autoptr (JsonNode) x3 = data_run (d3, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (GPtrArray) eval1 = data_read_records (ev);
  gint64 train = data_count (x3, 1, "out");
  CU_ASSERT_EQUAL (train + (gint64) eval1->len, 200);
  CU_ASSERT_TRUE (eval1->len > 25 && eval1->len < 75);
  g_autofree char *d4 = g_strdup_printf ("file location=%s ! split ratio=0.25 eval-location=%s ! jsonl location=%s", a,
                                         ev, b);
  g_autoptr (JsonNode) x4 = data_run (d4, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (GPtrArray) eval2 = data_read_records (ev);
  CU_ASSERT_EQUAL (eval1->len, eval2->len);
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < eval1->len; i++)
    g_hash_table_add (ids, ((CriaRecord *) g_ptr_array_index (eval1, i))->instruction);
  for (guint i = 0; i < eval2->len; i++)
    CU_ASSERT_TRUE (g_hash_table_contains (ids, ((CriaRecord *) g_ptr_array_index (eval2, i))->instruction));
  g_autofree char *d5 = g_strdup_printf ("file location=%s ! split count=17 eval-location=%s ! jsonl location=%s", in,
                                         ev, b);
  g_autoptr (JsonNode) x5 = data_run (d5, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (GPtrArray) eval3 = data_read_records (ev);
  CU_ASSERT_EQUAL (eval3->len, 17);
  CU_ASSERT_EQUAL (data_count (x5, 1, "out"), 183);

  g_autofree char *d6 = g_strdup_printf ("file location=%s ! sample n=10 seed=1 ! jsonl location=%s", in, b);
  g_autoptr (JsonNode) x6 = data_run (d6, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_EQUAL (data_count (x6, 1, "out"), 10);
  CU_ASSERT_EQUAL (data_reason (x6, 1, "not-sampled"), 190);
  g_autofree char *d7 = g_strdup_printf (
      "file location=%s ! repeat field=instruction match=\"number 1.$\" times=3 ! jsonl location=%s", in, b);
  g_autoptr (JsonNode) x7 = data_run (d7, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_EQUAL (data_count (x7, 1, "out"), 200 + 2 * 10);
}

static void
test_mix (void)
{
  const char *en[] = { "e1", "e2", "e3", "e4", "e5", "e6", NULL }, *zh[] = { "z1", "z2", NULL };
  g_autofree char *a = write_records ("en.jsonl", en);
  g_autofree char *b = write_records ("zh.jsonl", zh);
  g_autofree char *out = data_path ("mix.jsonl");
  g_autofree char *d = g_strdup_printf ("mix locations=%s,%s weights=3,1 ! jsonl location=%s", a, b, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s = data_run (d, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_EQUAL (data_count (s, 1, "out"), 8);
  g_autoptr (GPtrArray) rs = data_read_records (out);
  /* Each source keeps its own order within the blend. */
  guint ne = 0, nz = 0;
  for (guint i = 0; i < rs->len; i++) {
    const char *ins = ((CriaRecord *) g_ptr_array_index (rs, i))->instruction;
    g_autofree char *want = g_strdup_printf ("%c%u", ins[0], ins[0] == 'e' ? ++ne : ++nz);
    CU_ASSERT_STRING_EQUAL (ins, want);
  }
  g_autofree char *bad = g_strdup_printf ("mix locations=%s,%s weights=3 ! jsonl location=%s", a, b, out);
  CU_ASSERT_PTR_NULL (data_run (bad, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "weights: 1 given for 2 locations"));
}

/* The pipeline string and its JSON form give byte-identical output. */
static void
test_string_and_json (void)
{
  const char *fixture[] = { "Explain gravity.", "Explain gravity!", "List two colors.", "解释引力。", NULL };
  g_autofree char *in = write_records ("pj.jsonl", fixture);
  g_autofree char *a = data_path ("pa.json"), *b = data_path ("pb.json"), *ea = data_path ("ea.jsonl"),
                  *eb = data_path ("eb.jsonl");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! variants n=3 ! dedup ! shuffle seed=9 ! split ratio=0.3 eval-location=%s ! "
      "alpaca location=%s",
      in, ea, a);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s1 = data_run (desc, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autofree char *json = g_strdup_printf (
      "{\"stages\":[{\"provider\":\"file\",\"properties\":{\"location\":\"%s\"}},{\"provider\":\"variants\","
      "\"properties\":{\"n\":3}},"
      "{\"provider\":\"dedup\"},{\"provider\":\"shuffle\",\"properties\":{\"seed\":9}},"
      "{\"provider\":\"split\",\"properties\":{\"ratio\":0.3,\"eval-location\":\"%s\"}},{\"provider\":\"alpaca\","
      "\"properties\":{\"location\":\"%s\"}}]}",
      in, eb, b);
  g_autoptr (CriaPipeline) p = cria_pipeline_parse_json (data_reg, json, -1, "p.json", &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (p);
  CU_ASSERT_TRUE (cria_pipeline_run (p, &e));
  g_autofree char *ta = cria_test_read_file (a), *tb = cria_test_read_file (b);
  g_autofree char *tea = cria_test_read_file (ea), *teb = cria_test_read_file (eb);
  CU_ASSERT_STRING_EQUAL (ta, tb);
  CU_ASSERT_STRING_EQUAL (tea, teb);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "dedup finds the planted clusters", test_dedup_clusters },
    { "variants: n distinct instructions, seeded", test_variants },
    { "clean and filter, with reasons", test_filter_and_clean },
    { "shuffle, split, sample, repeat", test_order_and_split },
    { "mix interleaves by weight", test_mix },
    { "pipeline string and JSON give the same bytes", test_string_and_json },
    { NULL },
  };
  data_add_suite ("data-curate", cases);
}

CRIA_TEST_MAIN (register_suites)
