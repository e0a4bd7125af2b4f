/* test-data-corpora: converters on the real shared files (counts the corpora's
 * own documentation states) and on fixtures built from the published schemas. */
#include <archive.h>
#include <archive_entry.h>
#include <glib/gstdio.h>

#include "data-test.h"

/* A shared file, or NULL when ../shared is not here (those checks are skipped). */
static char *
shared (const char *relative)
{
  char *p = g_build_filename (cria_test_env ("CRIA_SHARED"), relative, NULL);
  if (g_file_test (p, G_FILE_TEST_EXISTS))
    return p;
  printf ("(absent: %s) ", p);
  g_free (p);
  return NULL;
}

static JsonNode *
convert (const char *source, const char *props, const char *out, GError **error)
{
  g_autofree char *desc = g_strdup_printf ("%s %s ! jsonl location=%s", source, props, out);
  return data_run (desc, CRIA_ON_ERROR_STOP, error);
}

static void
expect_count (const char *file, const char *source, const char *props, gint64 records, gint64 skipped)
{
  g_autofree char *p = shared (file);
  if (!p)
    return;
  g_autofree char *out = data_path ("shared.jsonl");
  g_autofree char *all = g_strdup_printf ("location=%s %s", p, props);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert (source, all, out, &e);
  CU_ASSERT_PTR_NULL (e);
  if (data_count (sum, 1, "out") != records)
    printf ("\n%s %s: %" G_GINT64_FORMAT " records, expected %" G_GINT64_FORMAT "\n", source, props,
            data_count (sum, 1, "out"), records);
  CU_ASSERT_EQUAL (data_count (sum, 1, "out"), records);
  CU_ASSERT_EQUAL (data_count (sum, 0, "skipped"), skipped);
}

static void
test_shared_counts (void)
{
  expect_count ("data/squad_v1.1/dev-v1.1.reconstructed.json", "squad", "", 10570, 0);
  expect_count ("data/squad_v2.0/dev-v2.0.reconstructed.json", "squad", "", 11873, 0);
  expect_count ("data/squad_v2.0/dev-v2.0.reconstructed.json", "squad", "unanswerable=skip", 5928, 5945);
  expect_count ("data/dialogsum/dialogsum.dev.jsonl", "dialogsum", "", 500, 0);
  expect_count ("data/natural_questions_open/NQ-open.dev.jsonl", "nq", "", 3610, 0);
  expect_count ("data/huatuogpt_o1_medical_reasoning/demo_data.json", "mapper",
                "instruction={Question} output={Response} reasoning=Complex_CoT", 198, 0);
  expect_count ("data/coqa/coqa-dev-v1.0.hf-dummy.json", "coqa", "", 12, 0);
  expect_count ("data/coqa/coqa-dev-v1.0.hf-dummy.json", "coqa", "mode=messages", 1, 0);
}

/* SQuAD v2.0: 5,945 records flagged unanswerable; every answer kept. */
static void
test_squad_content (void)
{
  g_autofree char *p = shared ("data/squad_v2.0/dev-v2.0.reconstructed.json");
  if (!p)
    return;
  g_autofree char *out = data_path ("squad.jsonl");
  g_autofree char *props = g_strdup_printf ("location=%s refusal=NONE", p);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert ("squad", props, out, &e);
  g_autoptr (GPtrArray) rs = data_read_records (out);
  guint flagged = 0, refused = 0;
  for (guint i = 0; i < rs->len; i++) {
    CriaRecord *r = g_ptr_array_index (rs, i);
    flagged += json_object_get_boolean_member (r->meta, "unanswerable");
    refused += !g_strcmp0 (r->output, "NONE");
  }
  CU_ASSERT_EQUAL (flagged, 5945);
  CU_ASSERT_EQUAL (refused, 5945);
  CriaRecord *first = g_ptr_array_index (rs, 0);
  CU_ASSERT_STRING_EQUAL (first->instruction, "In what country is Normandy located?");
  CU_ASSERT_STRING_EQUAL (first->output, "France");
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (first->meta, "answers")), 4);
  CU_ASSERT_TRUE (g_str_has_prefix (first->input, "The Normans (Norman: Nourmands;"));
}

static void
test_squad_fixture (void)
{
  g_autofree char *in = data_path ("squad.json");
  g_autofree char *out = data_path ("squad-out.jsonl");
  cria_test_write_file (
      in,
      "{\"data\":[{\"title\":\"T\",\"paragraphs\":[{\"context\":\"Paris is in France.\",\"qas\":["
      "{\"id\":\"1\",\"question\":\"Where is "
      "Paris?\",\"answers\":[{\"text\":\"France\",\"answer_start\":12},{\"text\":\"in France\",\"answer_start\":9}]},"
      "{\"id\":\"2\",\"question\":\"Who?\",\"answers\":[],\"is_impossible\":true}]}]}]}");
  g_autofree char *props = g_strdup_printf ("location=%s context=inline", in);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert ("squad", props, out, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (
      text,
      "{\"instruction\":\"Paris is in France.\\n\\nWhere is "
      "Paris?\",\"output\":\"France\",\"source\":\"squad\",\"id\":\"1\",\"title\":\"T\",\"answers\":[\"France\",\"in "
      "France\"],\"unanswerable\":false}\n"
      "{\"instruction\":\"Paris is in France.\\n\\nWho?\",\"output\":\"The context does not contain the answer to this "
      "question.\",\"source\":\"squad\",\"id\":\"2\",\"title\":\"T\",\"answers\":[],\"unanswerable\":true}\n");
  /* A question without its text names the field and the place. */
  cria_test_write_file (in,
                        "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[{\"id\":\"1\",\"answers\":[]}]}]}]}");
  g_clear_pointer (&sum, json_node_unref);
  sum = convert ("squad", props, out, &e);
  CU_ASSERT_TRUE (data_error_says (e, "data[0].paragraphs[0].qas[0]: missing field 'question'"));
  g_clear_error (&e);
  cria_test_write_file (in, "{\"version\": 2}");
  CU_ASSERT_PTR_NULL (convert ("squad", props, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "not SQuAD"));
  /* Each malformed shape names its place and field. */
  static const struct {
    const char *text, *says;
  } bad[] = {
    { "[{\"data\":[]}]", "not SQuAD" },
    { "{\"data\":{}}", "not SQuAD" },
    { "{\"data\":[{\"title\":\"T\"}]}", "data[0]: missing field 'paragraphs'" },
    { "{\"data\":[{\"paragraphs\":[{\"qas\":[]}]}]}", "data[0].paragraphs[0]: missing field 'context'" },
    { "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":{}}]}]}", "data[0].paragraphs[0]: missing field 'qas'" },
    { "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[{\"id\":\"1\",\"question\":\"q\",\"answers\":3}]}]}]}",
      "data[0].paragraphs[0].qas[0]: missing field 'answers'" },
    { "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[{\"id\":\"1\",\"question\":\"q\",\"answers\":[{}]}]}]}]"
      "}",
      "data[0].paragraphs[0].qas[0]: field 'answers[0].text': expected a string" },
    { "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[{\"id\":7,\"question\":\"q\",\"answers\":[]}]}]}]}",
      "data[0].paragraphs[0].qas[0]: missing field 'id'" },
    { "{\"data\":[\n{\"paragraphs\":[}]}", ":2:16: expected a value, not '}'" },
    { "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[", "before the end of the text" },
    { "", "empty JSON text" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    cria_test_write_file (in, bad[i].text);
    g_clear_error (&e);
    g_clear_pointer (&sum, json_node_unref);
    sum = convert ("squad", props, out, &e);
    CU_ASSERT_TRUE (data_error_says (e, bad[i].says));
  }
  /* A non-zero is_impossible counts as true, as json-glib read it; a question
   * that is not an object is passed over. */
  cria_test_write_file (in, "{\"data\":[{\"paragraphs\":[{\"context\":\"c\",\"qas\":[7,{\"id\":\"1\",\"question\":"
                            "\"q\",\"answers\":[{\"text\":\"a\"}],\"is_impossible\":1}]}]}]}");
  g_clear_error (&e);
  g_clear_pointer (&sum, json_node_unref);
  sum = convert ("squad", props, out, &e);
  CU_ASSERT_PTR_NULL (e);
  g_free (text);
  text = cria_test_read_file (out);
  CU_ASSERT_PTR_NOT_NULL (text && strstr (text, "\"answers\":[\"a\"],\"unanswerable\":true}\n"));
}

static void
test_coqa_fixture (void)
{
  g_autofree char *in = data_path ("coqa.json");
  g_autofree char *out = data_path ("coqa-out.jsonl");
  cria_test_write_file (
      in, "{\"data\":[{\"id\":\"s1\",\"story\":\"Tom has a cat.\",\"questions\":[{\"input_text\":\"Who has a cat?\"},"
          "{\"input_text\":\"What colour?\"},{\"input_text\":\"Is it his?\"}],\"answers\":[{\"input_text\":\"Tom\"},"
          "{\"input_text\":\"unknown\"},{\"input_text\":\"yes\"}],\"additional_answers\":{\"0\":[{\"input_text\":\"Tom "
          "does\"},"
          "{\"input_text\":\"unknown\"},{\"input_text\":\"yes\"}]}}]}");
  g_autofree char *props = g_strdup_printf ("location=%s unknown=skip", in);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert ("coqa", props, out, &e);
  CU_ASSERT_EQUAL (data_count (sum, 1, "out"), 2);
  CU_ASSERT_EQUAL (data_reason (sum, 0, "unknown"), 1);
  g_autoptr (GPtrArray) rs = data_read_records (out);
  CriaRecord *last = g_ptr_array_index (rs, 1);
  CU_ASSERT_STRING_EQUAL (last->instruction, "Q: Who has a cat?\nA: Tom\nQ: What colour?\nA: unknown\n\nIs it his?");
  CU_ASSERT_STRING_EQUAL (last->input, "Tom has a cat.");
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (last->meta, "answers")), 2);
  g_free (props);
  props = g_strdup_printf ("location=%s mode=messages unknown=refuse refusal=?", in);
  g_clear_pointer (&sum, json_node_unref);
  sum = convert ("coqa", props, out, &e);
  g_autoptr (GPtrArray) chats = data_read_records (out);
  CriaRecord *chat = g_ptr_array_index (chats, 0);
  CU_ASSERT_EQUAL (chat->messages->len, 7);
  CU_ASSERT_STRING_EQUAL (((CriaMessage *) g_ptr_array_index (chat->messages, 4))->content, "?");
}

static void
test_row_corpora (void)
{
  g_autofree char *dolly = data_path ("dolly.jsonl");
  g_autofree char *out = data_path ("rows.jsonl");
  cria_test_write_file (
      dolly,
      "{\"instruction\":\"Name a color.\",\"context\":\"\",\"response\":\"Red\",\"category\":\"open_qa\"}\n"
      "{\"instruction\":\"Who?\",\"context\":\"Ann wrote it.\",\"response\":\"Ann\",\"category\":\"closed_qa\"}\n");
  g_autofree char *p1 = g_strdup_printf ("location=%s", dolly);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s1 = convert ("dolly", p1, out, &e);
  g_autofree char *t1 = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (t1,
                          "{\"instruction\":\"Name a "
                          "color.\",\"input\":\"\",\"output\":\"Red\",\"source\":\"dolly\",\"category\":\"open_qa\"}\n"
                          "{\"instruction\":\"Who?\",\"input\":\"Ann wrote "
                          "it.\",\"output\":\"Ann\",\"source\":\"dolly\",\"category\":\"closed_qa\"}\n");
  g_autofree char *p2 = g_strdup_printf ("location=%s mode=reverse", dolly);
  g_autoptr (JsonNode) s2 = convert ("dolly", p2, out, &e);
  g_autoptr (GPtrArray) rev = data_read_records (out);
  CriaRecord *r = g_ptr_array_index (rev, 1);
  CU_ASSERT_STRING_EQUAL (r->output, "Who?");
  CU_ASSERT_STRING_EQUAL (r->input, "Ann\n\nContext:\nAnn wrote it.");

  g_autofree char *xsum = data_path ("xsum.jsonl");
  cria_test_write_file (xsum, "{\"document\":\"Long text.\",\"summary\":\"Short.\",\"id\":\"3\"}\n{\"document\":\"No "
                              "summary\",\"id\":\"4\"}\n");
  g_autofree char *p3 = g_strdup_printf ("xsum location=%s ! jsonl location=%s", xsum, out);
  g_autoptr (JsonNode) s3 = data_run (p3, CRIA_ON_ERROR_SKIP, &e);
  CU_ASSERT_EQUAL (data_count (s3, 1, "out"), 1);
  CU_ASSERT_EQUAL (data_reason (s3, 0, "missing-field"), 1);
  g_autoptr (JsonNode) s3b = data_run (p3, CRIA_ON_ERROR_STOP, &e);
  g_autofree char *where = g_strdup_printf ("%s:2: missing field 'summary'", xsum);
  CU_ASSERT_TRUE (data_error_says (e, where));
  g_clear_error (&e);

  g_autofree char *ds = data_path ("dialogsum-test.csv");
  cria_test_write_file (
      ds, "fname,dialogue,summary1,summary2,summary3,topic\nt_1,\"#Person1#: Hi\n#Person2#: Hello\",A,B,C,greeting\n");
  g_autofree char *p4 = g_strdup_printf ("location=%s", ds);
  g_autoptr (JsonNode) s4 = convert ("dialogsum", p4, out, &e);
  g_autofree char *t4 = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (
      t4, "{\"instruction\":\"Summarize the following dialogue.\",\"input\":\"#Person1#: Hi\\n#Person2#: Hello\","
          "\"output\":\"A\",\"source\":\"dialogsum\",\"id\":\"t_1\",\"references\":[\"A\",\"B\",\"C\"],\"topic\":"
          "\"greeting\"}\n");

  g_autofree char *med = data_path ("med.csv");
  cria_test_write_file (med, "symptoms,diagnosis,why\nfever,flu,season\n");
  g_autofree char *p5 = g_strdup_printf (
      "location=%s instruction=\"Symptoms: {symptoms}. Diagnosis?\" output={diagnosis} reasoning=why", med);
  g_autoptr (JsonNode) s5 = convert ("mapper", p5, out, &e);
  g_autofree char *t5 = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (t5,
                          "{\"instruction\":\"Symptoms: fever. "
                          "Diagnosis?\",\"output\":\"<think>\\nseason\\n</think>\\n\\nflu\",\"source\":\"mapper\"}\n");
  g_autofree char *p6 = g_strdup_printf ("location=%s instruction={symptom} output={diagnosis}", med);
  CU_ASSERT_PTR_NULL (convert ("mapper", p6, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "med.csv:2: template needs field 'symptom'"));
}

static void
add_entry (struct archive *a, const char *name, const char *text)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, name);
  archive_entry_set_size (e, (la_int64_t) strlen (text));
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_write_header (a, e);
  archive_write_data (a, text, strlen (text));
  archive_entry_free (e);
}

static void
test_cnndm (void)
{
  static const char
      *story = "(CNN) -- First paragraph.\n\nSecond paragraph.\n\n@highlight\n\nPoint one\n\n@highlight\n\nPoint two\n";
  g_autofree char *expected = g_strdup (
      "{\"instruction\":\"Summarize the following news article in a few bullet points.\",\"input\":\"(CNN) -- First "
      "paragraph.\\n\\nSecond paragraph.\","
      "\"output\":\"Point one\\nPoint "
      "two\",\"source\":\"cnndm\",\"id\":\"0001d1afc246a7964130f43ae940af6bc6c57f01\"}\n");
  const char *kinds[] = { "cnn_stories.tgz", "dailymail_stories.zip" };
  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    g_autofree char *arc = data_path (kinds[k]);
    struct archive *a = archive_write_new ();
    if (k == 0) {
      archive_write_add_filter_gzip (a);
      archive_write_set_format_pax_restricted (a);
    } else {
      archive_write_set_format_zip (a);
    }
    CU_ASSERT_EQUAL_FATAL (archive_write_open_filename (a, arc), ARCHIVE_OK);
    add_entry (a, "cnn/stories/README.txt", "not a story");
    add_entry (a, "cnn/stories/0001d1afc246a7964130f43ae940af6bc6c57f01.story", story);
    archive_write_close (a);
    archive_write_free (a);
    g_autofree char *out = data_path ("cnn.jsonl");
    g_autofree char *props = g_strdup_printf ("location=%s", arc);
    g_autoptr (GError) e = NULL;
    g_autoptr (JsonNode) sum = convert ("cnndm", props, out, &e);
    CU_ASSERT_PTR_NULL (e);
    g_autofree char *text = cria_test_read_file (out);
    CU_ASSERT_STRING_EQUAL (text, expected);
  }
  g_autofree char *csv = data_path ("cnn.csv");
  cria_test_write_file (csv, "id,article,highlights\n0001d1afc246a7964130f43ae940af6bc6c57f01,\"(CNN) -- First "
                             "paragraph.\n\nSecond paragraph.\",\"Point one\nPoint two\"\n");
  g_autofree char *out = data_path ("cnn2.jsonl");
  g_autofree char *props = g_strdup_printf ("location=%s", csv);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert ("cnndm", props, out, &e);
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (text, expected);
  g_autofree char *junk = data_path ("junk.tgz");
  cria_test_write_file (junk, "this is not gzip");
  g_autofree char *jprops = g_strdup_printf ("location=%s", junk);
  CU_ASSERT_PTR_NULL (convert ("cnndm", jprops, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "junk.tgz"));
}

/* A decompression bomb: a .tgz of ~100 KB whose one story expands to 80 MiB
 * is refused at the member limit, before it is held whole. */
static void
test_cnndm_bomb (void)
{
  g_autofree char *arc = data_path ("bomb.tgz");
  struct archive *a = archive_write_new ();
  archive_write_add_filter_gzip (a);
  archive_write_set_format_pax_restricted (a);
  CU_ASSERT_EQUAL_FATAL (archive_write_open_filename (a, arc), ARCHIVE_OK);
  const gsize size = (gsize) 80 << 20, block = 1 << 20;
  struct archive_entry *entry = archive_entry_new ();
  archive_entry_set_pathname (entry, "cnn/stories/bomb.story");
  archive_entry_set_size (entry, (la_int64_t) size);
  archive_entry_set_filetype (entry, AE_IFREG);
  archive_entry_set_perm (entry, 0644);
  archive_write_header (a, entry);
  g_autofree char *zeros = g_malloc0 (block);
  for (gsize done = 0; done < size; done += block)
    archive_write_data (a, zeros, block);
  archive_entry_free (entry);
  archive_write_close (a);
  archive_write_free (a);
  GStatBuf st;
  CU_ASSERT_TRUE_FATAL (g_stat (arc, &st) == 0 && st.st_size < (4 << 20));
  g_autofree char *out = data_path ("bomb.jsonl");
  g_autofree char *props = g_strdup_printf ("location=%s", arc);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (convert ("cnndm", props, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "bomb.story: the member expands past cria's limit of 67108864 bytes"));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_template_source (void)
{
  g_autofree char *spec = data_path ("spec.json");
  g_autofree char *out = data_path ("manual.jsonl");
  cria_test_write_file (
      spec, "{\"tasks\":[{\"name\":\"tr\",\"templates\":[\"Translate from {src} to {dst}.\",\"{src} -> {dst}\"],"
            "\"slots\":{\"src\":[\"en\",\"zh\"],\"dst\":[\"fr\"]},\"output\":\"({dst})\"},"
            "{\"name\":\"plain\",\"templates\":[\"Hello\"]}]}");
  g_autofree char *props = g_strdup_printf ("location=%s", spec);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = convert ("template", props, out, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autoptr (GPtrArray) rs = data_read_records (out);
  CU_ASSERT_EQUAL_FATAL (rs->len, 5);
  const char *want[] = { "Translate from en to fr.", "Translate from zh to fr.", "en -> fr", "zh -> fr", "Hello" };
  for (guint i = 0; i < 5; i++)
    CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (rs, i))->instruction, want[i]);
  CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (rs, 0))->output, "(fr)");
  CU_ASSERT_PTR_NULL (((CriaRecord *) g_ptr_array_index (rs, 4))->output);
  cria_test_write_file (spec, "{\"tasks\":[{\"name\":\"x\",\"templates\":[\"{missing}\"]}]}");
  CU_ASSERT_PTR_NULL (convert ("template", props, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "tasks[0].templates[0]: template needs field 'missing'"));
  g_clear_error (&e);
  cria_test_write_file (spec, "{\"tasks\":[{\"name\":\"x\",\"templates\":[\"a\"],\"slots\":{\"s\":[]}}]}");
  CU_ASSERT_PTR_NULL (convert ("template", props, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "tasks[0]: slot 's'"));
  g_clear_error (&e);

  /* Object slot values: members vary together, and a missing member is named. */
  cria_test_write_file (spec, "{\"tasks\":[{\"name\":\"price\",\"templates\":[\"Cost of {plan.name}?\"],"
                              "\"slots\":{\"plan\":[{\"name\":\"Pro\",\"price\":\"8\"},{\"name\":\"Team\","
                              "\"price\":\"12\"}]},\"output\":\"{plan.name}: {plan.price}\"}]}");
  g_autoptr (JsonNode) obj = convert ("template", props, out, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autoptr (GPtrArray) ors = data_read_records (out);
  CU_ASSERT_EQUAL_FATAL (ors->len, 2);
  CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (ors, 1))->instruction, "Cost of Team?");
  CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (ors, 1))->output, "Team: 12");
  cria_test_write_file (spec, "{\"tasks\":[{\"name\":\"x\",\"templates\":[\"{plan.cost}\"],"
                              "\"slots\":{\"plan\":[{\"name\":\"Pro\"}]}}]}");
  CU_ASSERT_PTR_NULL (convert ("template", props, out, &e));
  CU_ASSERT_TRUE (data_error_says (e, "tasks[0].templates[0]: template needs field 'plan.cost'"));
  g_clear_error (&e);

  /* The shipped starter specs expand. */
  const char *starters[] = { "templates/starter.en.json", "templates/starter.zh.json" };
  for (guint i = 0; i < 2; i++) {
    g_autofree char *p = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "share", starters[i], NULL);
    g_autofree char *sp = g_strdup_printf ("location=%s", p);
    g_autoptr (JsonNode) s = convert ("template", sp, out, &e);
    CU_ASSERT_PTR_NULL (e);
    CU_ASSERT_TRUE (data_count (s, 1, "out") > 20);
  }
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "counts on the shared corpora", test_shared_counts },
    { "squad v2.0 content", test_squad_content },
    { "squad fixture and errors", test_squad_fixture },
    { "coqa turns, unknown answers, messages", test_coqa_fixture },
    { "dolly, xsum, dialogsum test layout, mapper", test_row_corpora },
    { "cnndm from tgz, zip and CSV", test_cnndm },
    { "cnndm refuses a decompression bomb", test_cnndm_bomb },
    { "template specs", test_template_source },
    { NULL },
  };
  data_add_suite ("data-corpora", cases);
}

CRIA_TEST_MAIN (register_suites)
