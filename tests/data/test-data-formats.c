/* test-data-formats: CSV, format detection, the Alpaca/ShareGPT/messages/CSV
 * sinks and their round trips, and the errors bad files get. */
#include <glib/gstdio.h>

#include "data-test.h"

static char **
csv_rows (const char *text, GError **error, guint *n_rows)
{
  g_autofree char *p = data_path ("t.csv");
  cria_test_write_file (p, text);
  g_autoptr (CriaCsv) csv = cria_csv_new (cria_input_open (p, NULL));
  GPtrArray *flat = g_ptr_array_new ();
  char **row;
  *n_rows = 0;
  while ((row = cria_csv_read_row (csv, error))) {
    for (guint i = 0; row[i]; i++)
      g_ptr_array_add (flat, g_strdup (row[i]));
    g_ptr_array_add (flat, g_strdup ("|"));
    g_strfreev (row);
    (*n_rows)++;
  }
  g_ptr_array_add (flat, NULL);
  return (char **) g_ptr_array_free (flat, FALSE);
}

static void
test_csv_reader (void)
{
  GError *e = NULL;
  guint n;
  /* BOM, quoted comma, quoted newline, doubled quote, empty field, CRLF. */
  g_auto (GStrv) f = csv_rows ("\xEF\xBB\xBF"
                               "a,b,c\r\n\"x, y\",\"line1\nline2\",\"say \"\"hi\"\"\"\r\n,,z\n",
                               &e, &n);
  CU_ASSERT_PTR_NULL (e);
  CU_ASSERT_EQUAL (n, 3);
  const char *want[] = { "a", "b", "c", "|", "x, y", "line1\nline2", "say \"hi\"", "|", "", "", "z", "|", NULL };
  CU_ASSERT_EQUAL (g_strv_length (f), G_N_ELEMENTS (want) - 1);
  for (guint i = 0; want[i] && f[i]; i++)
    CU_ASSERT_STRING_EQUAL (f[i], want[i]);

  g_auto (GStrv) g = csv_rows ("a,b\n1,2\n3,\"open\n4,5\n", &e, &n);
  CU_ASSERT_TRUE (data_error_says (e, "t.csv:3: unbalanced quote"));
  g_clear_error (&e);
  g_auto (GStrv) h = csv_rows ("a,b\n\"1\"x,2\n", &e, &n);
  CU_ASSERT_TRUE (data_error_says (e, "t.csv:2:4: unexpected character after a closing quote"));
  g_clear_error (&e);

  GString *s = g_string_new (NULL);
  cria_csv_append_field (s, "plain");
  g_string_append_c (s, ',');
  cria_csv_append_field (s, "a \"q\", b\nc");
  CU_ASSERT_STRING_EQUAL (s->str, "plain,\"a \"\"q\"\", b\nc\"");
  g_string_free (s, TRUE);
}

/* Every input layout the file source detects gives the same records. */
static void
test_file_detects_layouts (void)
{
  static const struct {
    const char *name, *text, *format;
  } files[] = {
    { "a.jsonl", "{\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello\"}\n", "auto" },
    { "a.json", " [ {\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello\"} ]\n", "auto" },
    { "a.csv", "instruction,input,output\nHi,,Hello\n", "auto" },
    { "a.txt", "instruction,input,output\nHi,,Hello\n", "csv" },
    { "s.json", "[{\"conversations\":[{\"from\":\"human\",\"value\":\"Hi\"},{\"from\":\"gpt\",\"value\":\"Hello\"}]}]",
      "auto" },
    { "m.jsonl",
      "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n",
      "auto" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *in = data_path (files[i].name);
    g_autofree char *out = data_path ("detected.json");
    cria_test_write_file (in, files[i].text);
    g_autofree char *desc = g_strdup_printf ("file location=%s format=%s ! alpaca location=%s", in, files[i].format,
                                             out);
    g_autoptr (GError) e = NULL;
    g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_STOP, &e);
    CU_ASSERT_PTR_NULL (e);
    g_autofree char *text = cria_test_read_file (out);
    CU_ASSERT_STRING_EQUAL (text, "[\n{\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello\"}\n]\n");
  }
}

static void
test_bad_files (void)
{
  g_autofree char *in = data_path ("bad.jsonl");
  g_autofree char *out = data_path ("never.json");
  cria_test_write_file (in, "{\"instruction\":\"a\",\"output\":\"1\"}\n{\"instruction\": \"b\",, "
                            "}\n{\"instruction\":\"c\",\"output\":\"3\"}\n");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! alpaca location=%s", in, out);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (data_run (desc, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *where = g_strdup_printf ("%s:2:", in);
  CU_ASSERT_TRUE (data_error_says (e, where));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS)); /* nothing half-written */
  g_clear_error (&e);
  g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_SKIP, &e);
  CU_ASSERT_EQUAL (data_reason (sum, 0, "syntax"), 1);
  CU_ASSERT_EQUAL (data_count (sum, 1, "out"), 2);

  /* A forced schema names the missing field. */
  cria_test_write_file (in, "{\"instruction\":\"a\"}\n");
  g_autofree char *forced = g_strdup_printf ("file location=%s schema=alpaca ! alpaca location=%s", in, out);
  CU_ASSERT_PTR_NULL (data_run (forced, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *missing = g_strdup_printf ("%s:1: missing field 'output'", in);
  CU_ASSERT_TRUE (data_error_says (e, missing));
  g_clear_error (&e);
  cria_test_write_file (in, "{\"conversations\":[{\"from\":\"human\"}]}\n");
  CU_ASSERT_PTR_NULL (data_run (desc, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "field 'conversations[0]'"));
  g_clear_error (&e);

  g_remove (out);
  g_autofree char *csv = data_path ("bad.csv");
  cria_test_write_file (csv, "instruction,output\na,1\nb,\"2\nc,3\n");
  g_autofree char *cdesc = g_strdup_printf ("file location=%s ! alpaca location=%s", csv, out);
  CU_ASSERT_PTR_NULL (data_run (cdesc, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *line3 = g_strdup_printf ("%s:3: unbalanced quote", csv);
  CU_ASSERT_TRUE (data_error_says (e, line3));
  g_clear_error (&e);
  cria_test_write_file (csv, "instruction,output\na,1,extra\n");
  CU_ASSERT_PTR_NULL (data_run (cdesc, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "bad.csv:2: 3 fields where the header has 2"));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
  g_clear_error (&e);

  /* What used to be read wrong without a word: a NUL cut a field short, a
   * file with CR-only line ends gave no records, a repeated header name kept
   * its last column. */
  static const char nul[] = "instruction,output\na,x\0y\nb,2\n";
  g_assert_true (g_file_set_contents (csv, nul, sizeof nul - 1, NULL));
  CU_ASSERT_PTR_NULL (data_run (cdesc, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "bad.csv:2:4: field 'output': a NUL byte"));
  g_clear_error (&e);
  g_autoptr (JsonNode) nul_sum = data_run (cdesc, CRIA_ON_ERROR_SKIP, &e);
  CU_ASSERT_EQUAL (data_reason (nul_sum, 0, "encoding"), 1);
  CU_ASSERT_EQUAL (data_count (nul_sum, 1, "out"), 1);
  g_remove (out);
  cria_test_write_file (csv, "instruction,output\ra,1\rb,2\r");
  CU_ASSERT_PTR_NULL (data_run (cdesc, CRIA_ON_ERROR_SKIP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "bad.csv:1:19: field 2: a carriage return (CR) outside quotes"));
  g_clear_error (&e);
  cria_test_write_file (csv, "instruction,output,output\na,1,2\n");
  CU_ASSERT_PTR_NULL (data_run (cdesc, CRIA_ON_ERROR_SKIP, &e));
  CU_ASSERT_TRUE (data_error_says (e, "bad.csv:1: the header names column 'output' twice (columns 2 and 3)"));
  g_clear_error (&e);
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));

  /* A row with none of the record's fields is no empty example; a message
   * role must be one cria-record(5) names. */
  cria_test_write_file (in, "{\"question\":\"q\",\"answer\":\"a\"}\n{\"instruction\":\"i\",\"output\":\"o\"}\n"
                            "{\"messages\":[{\"role\":\"usr\",\"content\":\"hi\"}]}\n");
  CU_ASSERT_PTR_NULL (data_run (desc, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *none = g_strdup_printf (
      "%s:1: none of the fields instruction, input, output, messages, conversations (its fields: 'question', 'answer')",
      in);
  CU_ASSERT_TRUE (data_error_says (e, none));
  g_clear_error (&e);
  g_autoptr (JsonNode) role_sum = data_run (desc, CRIA_ON_ERROR_SKIP, &e);
  CU_ASSERT_EQUAL (data_reason (role_sum, 0, "missing-field"), 1);
  CU_ASSERT_EQUAL (data_reason (role_sum, 0, "invalid-field"), 1);
  CU_ASSERT_EQUAL (data_count (role_sum, 1, "out"), 1);
  g_autoptr (GError) re = NULL;
  g_autoptr (JsonNode) node = json_from_string ("{\"messages\":[{\"role\":\"usr\",\"content\":\"hi\"}]}", NULL);
  g_autoptr (CriaRecord) bad_role = cria_record_from_json (json_node_get_object (node), &re);
  CU_ASSERT_PTR_NULL (bad_role);
  CU_ASSERT_TRUE (data_error_says (re, "field 'messages[0].role': unknown role 'usr'"));
}

/* read -> write -> read gives the records read first, for every sink that
 * can carry them. */
static void
round_trip (const char *src, const char *sink, const char *props)
{
  g_autofree char *a = data_path ("rt-a.jsonl");
  g_autofree char *b = data_path ("rt-b.out");
  g_autofree char *c = data_path ("rt-c.jsonl");
  g_autofree char *d1 = g_strdup_printf ("file location=%s ! jsonl location=%s", src, a);
  g_autofree char *d2 = g_strdup_printf ("file location=%s ! %s location=%s %s", src, sink, b, props);
  g_autofree char *d3 = g_strdup_printf ("file location=%s ! jsonl location=%s", b, c);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) s1 = data_run (d1, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (JsonNode) s2 = data_run (d2, CRIA_ON_ERROR_STOP, &e);
  g_autoptr (JsonNode) s3 = data_run (d3, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autofree char *ta = cria_test_read_file (a);
  g_autofree char *tc = cria_test_read_file (c);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ta);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tc);
  if (strcmp (ta, tc))
    printf ("\n%s through %s %s changed\n", src, sink, props);
  CU_ASSERT_STRING_EQUAL (ta, tc);
}

static void
test_round_trips (void)
{
  g_autofree char *alpaca = data_path ("alpaca.json");
  cria_test_write_file (alpaca,
                        "[{\"instruction\":\"Add\",\"input\":\"1, 2\",\"output\":\"3\",\"system\":\"Be exact.\","
                        "\"history\":[[\"q\",\"a\"]],\"id\":7},{\"instruction\":\"多行\\n\\\"引号\\\"\",\"input\":\"\","
                        "\"output\":\"好\"}]");
  round_trip (alpaca, "alpaca", "");
  round_trip (alpaca, "alpaca", "format=jsonl");
  g_autofree char *chats = data_path ("chats.jsonl");
  cria_test_write_file (chats,
                        "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"u1\"},"
                        "{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},"
                        "{\"role\":\"assistant\",\"content\":\"a2\"}],\"source\":\"x\"}\n");
  round_trip (chats, "messages", "");
  round_trip (chats, "sharegpt", "");
  g_autofree char *plain = data_path ("plain.jsonl");
  cria_test_write_file (plain, "{\"instruction\":\"a, \\\"b\\\"\\nc\",\"input\":\"\",\"output\":\"d\"}\n");
  round_trip (plain, "csv", "");

  /* The real LLaMA-Factory and Alpaca files. */
  const char *shared[] = { "data/llamafactory_alpaca_demo/alpaca_en_demo.json",
                           "data/llamafactory_alpaca_demo/alpaca_zh_demo.json",
                           "data/stanford_alpaca/alpaca_subset_2000_longoutput.gumbelsoft.json" };
  for (guint i = 0; i < G_N_ELEMENTS (shared); i++) {
    g_autofree char *p = g_build_filename (cria_test_env ("CRIA_SHARED"), shared[i], NULL);
    if (!g_file_test (p, G_FILE_TEST_EXISTS))
      continue;
    round_trip (p, "alpaca", "");
    round_trip (p, "alpaca", "format=jsonl");
  }
}

static void
test_sharegpt_and_dataset_info (void)
{
  g_autofree char *in = data_path ("one.jsonl");
  g_autofree char *out = data_path ("chat.json");
  g_autofree char *info = data_path ("dataset_info.json");
  cria_test_write_file (in, "{\"instruction\":\"Hi\",\"input\":\"there\",\"output\":\"Hello\",\"system\":\"S\"}\n");
  cria_test_write_file (info, "{\"existing\": {\"file_name\": \"x.json\"}}");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! sharegpt location=%s dataset-info=%s", in, out, info);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_STOP, &e);
  CU_ASSERT_PTR_NULL (e);
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (
      text,
      "[\n{\"conversations\":[{\"from\":\"human\",\"value\":\"Hi\\n\\nthere\"},{\"from\":\"gpt\",\"value\":\"Hello\"}],"
      "\"system\":\"S\"}\n]\n");
  g_autofree char *info_text = cria_test_read_file (info);
  g_autoptr (JsonNode) root = json_from_string (info_text, NULL);
  JsonObject *o = json_node_get_object (root);
  CU_ASSERT_TRUE (json_object_has_member (o, "existing"));
  JsonObject *entry = json_object_get_object_member (o, "chat");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (entry, "file_name"), "chat.json");
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (entry, "formatting"), "sharegpt");
}

/* LLaMA-Factory's loader, as its source reads (data/parser.py, converter.py,
 * loader.py): the file is dataset_dir/file_name; with "columns" given, an
 * alpaca prompt/query/response left out is None, and every declared column
 * is indexed in every example (HF datasets gives a column when some record
 * has it: a column no record has is a KeyError). Checks the entry `name` of
 * `info` against the records it points to, and that no written system or
 * history member goes undeclared (LLaMA-Factory would drop it silently). */
static void
check_llama_factory_entry (const char *info, const char *name)
{
  g_autofree char *text = cria_test_read_file (info);
  g_autoptr (JsonNode) root = json_from_string (text, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (root);
  JsonObject *entry = json_object_get_object_member (json_node_get_object (root), name);
  CU_ASSERT_PTR_NOT_NULL_FATAL (entry);
  g_autofree char *dir = g_path_get_dirname (info);
  g_autofree char *file = g_build_filename (dir, json_object_get_string_member (entry, "file_name"), NULL);
  g_autofree char *data = cria_test_read_file (file);
  CU_ASSERT_PTR_NOT_NULL_FATAL (data);
  g_autoptr (JsonNode) records = json_from_string (data, NULL);
  CU_ASSERT_TRUE_FATAL (records && JSON_NODE_HOLDS_ARRAY (records));
  JsonArray *a = json_node_get_array (records);
  gboolean sharegpt = !g_strcmp0 (json_object_get_string_member_with_default (entry, "formatting", "alpaca"),
                                  "sharegpt");
  JsonObject *columns = json_object_get_object_member (entry, "columns");
  static const char *const alpaca_cols[] = { "prompt", "query", "response", "history", "system", NULL };
  static const char *const alpaca_default[] = { "instruction", "input", "output", NULL, NULL };
  static const char *const sharegpt_cols[] = { "messages", "system", NULL };
  static const char *const sharegpt_default[] = { "conversations", NULL };
  const char *const *cols = sharegpt ? sharegpt_cols : alpaca_cols;
  for (guint c = 0; cols[c]; c++) {
    const char *def = sharegpt ? sharegpt_default[c] : alpaca_default[c];
    const char *member = columns ? json_object_get_string_member_with_default (columns, cols[c], NULL) : def;
    if (!sharegpt && c < 3)
      CU_ASSERT_PTR_NOT_NULL (member); /* None would lose the prompt or the response */
    gboolean somewhere = FALSE;
    const char *written = c >= (sharegpt ? 1u : 3u) ? cols[c] : NULL;
    gboolean written_somewhere = FALSE;
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonObject *rec = json_array_get_object_element (a, i);
      somewhere |= member && json_object_has_member (rec, member);
      written_somewhere |= written && json_object_has_member (rec, written);
    }
    if (member && !somewhere)
      printf ("\n%s: column %s=%s is declared but no record has it (a KeyError)\n", name, cols[c], member);
    CU_ASSERT_TRUE (!member || somewhere);
    CU_ASSERT_TRUE (!written_somewhere || (member && !strcmp (member, written)));
  }
  /* sharegpt: human/gpt turns in turn after an optional system, an even count. */
  for (guint i = 0; sharegpt && i < json_array_get_length (a); i++) {
    JsonArray *turns = json_object_get_array_member (json_array_get_object_element (a, i), "conversations");
    guint n = json_array_get_length (turns), first = 0;
    if (n && !strcmp (json_object_get_string_member (json_array_get_object_element (turns, 0), "from"), "system"))
      first = 1;
    CU_ASSERT_EQUAL ((n - first) % 2, 0);
    for (guint k = first; k < n; k++)
      CU_ASSERT_STRING_EQUAL (json_object_get_string_member (json_array_get_object_element (turns, k), "from"),
                              (k - first) % 2 ? "gpt" : "human");
  }
}

/* The entries written for records with and without system and history,
 * and file_name relative to dataset_info.json wherever the file is. */
static void
test_dataset_info_columns (void)
{
  g_autofree char *in_plain = data_path ("plain.jsonl");
  g_autofree char *in_rich = data_path ("rich.jsonl");
  cria_test_write_file (in_plain, "{\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello\"}\n");
  cria_test_write_file (in_rich,
                        "{\"instruction\":\"Hi\",\"output\":\"Hello\"}\n"
                        "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                        "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}\n");
  g_autofree char *lf = data_path ("lf");
  g_autofree char *sub = g_build_filename (lf, "sub", NULL);
  g_autofree char *sibling = data_path ("elsewhere");
  g_mkdir_with_parents (sub, 0755);
  g_mkdir_with_parents (sibling, 0755);
  g_autofree char *info = g_build_filename (lf, "dataset_info.json", NULL);
  static const struct {
    const char *in, *sink, *where, *name, *file_name, *columns;
  } cases[] = {
    { "plain", "alpaca", "lf", "a_plain", "a_plain.json", "prompt,query,response" },
    { "rich", "alpaca", "sub", "a_rich", "sub/a_rich.json", "prompt,query,response,history,system" },
    { "plain", "sharegpt", "elsewhere", "s_plain", "../elsewhere/s_plain.json", "messages" },
    { "rich", "sharegpt", "lf", "s_rich", "s_rich.json", "messages,system" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const char *where = !strcmp (cases[i].where, "lf") ? lf : !strcmp (cases[i].where, "sub") ? sub : sibling;
    g_autofree char *base = g_strdup_printf ("%s.json", cases[i].name);
    g_autofree char *out = g_build_filename (where, base, NULL);
    g_autofree char *desc = g_strdup_printf ("file location=%s ! %s location=%s dataset-info=%s",
                                             !strcmp (cases[i].in, "plain") ? in_plain : in_rich, cases[i].sink, out,
                                             info);
    g_autoptr (GError) e = NULL;
    g_autoptr (JsonNode) sum = data_run (desc, CRIA_ON_ERROR_STOP, &e);
    CU_ASSERT_PTR_NULL_FATAL (e);
    check_llama_factory_entry (info, cases[i].name);
    g_autofree char *text = cria_test_read_file (info);
    g_autoptr (JsonNode) root = json_from_string (text, NULL);
    JsonObject *entry = json_object_get_object_member (json_node_get_object (root), cases[i].name);
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (entry, "file_name"), cases[i].file_name);
    g_autoptr (GList) names = json_object_get_members (json_object_get_object_member (entry, "columns"));
    g_autoptr (GString) got = g_string_new (NULL);
    for (GList *l = names; l; l = l->next)
      g_string_append_printf (got, "%s%s", got->len ? "," : "", (const char *) l->data);
    CU_ASSERT_STRING_EQUAL (got->str, cases[i].columns);
  }
}

static void
test_prompt_formats (void)
{
  g_autoptr (CriaRecord) r = cria_record_new ();
  r->instruction = g_strdup ("Add");
  r->input = g_strdup ("1 2");
  r->output = g_strdup ("3");
  r->system = g_strdup ("S");
  static const struct {
    const char *name, *prompt, *response;
  } want[] = {
    { "chatml", "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nAdd\n\n1 2<|im_end|>\n",
      "<|im_start|>assistant\n3<|im_end|>\n" },
    { "llama2", "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nAdd\n\n1 2 [/INST]", " 3 </s>" },
    { "vicuna", "S USER: Add\n\n1 2 ", "ASSISTANT: 3</s>" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaPromptFormat) f = cria_prompt_format_load (want[i].name, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL (f);
    g_autofree char *p = NULL, *resp = NULL;
    CU_ASSERT_TRUE (cria_prompt_format_render (f, r, &p, &resp, &e));
    CU_ASSERT_STRING_EQUAL (p, want[i].prompt);
    CU_ASSERT_STRING_EQUAL (resp, want[i].response);
  }
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPromptFormat) alpaca = cria_prompt_format_load ("alpaca", &e);
  g_autofree char *p = NULL, *resp = NULL;
  CU_ASSERT_TRUE (cria_prompt_format_render (alpaca, r, &p, &resp, &e));
  CU_ASSERT_TRUE (g_str_has_suffix (p, "### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n"));
  CU_ASSERT_STRING_EQUAL (resp, "3");
  g_clear_pointer (&r->input, g_free);
  g_free (p);
  g_free (resp);
  CU_ASSERT_TRUE (cria_prompt_format_render (alpaca, r, &p, &resp, &e));
  CU_ASSERT_TRUE (g_str_has_suffix (p, "requests.\n\n### Instruction:\nAdd\n\n### Response:\n") ||
                  strstr (p, "### Input") == NULL);
  CU_ASSERT_PTR_NULL (cria_prompt_format_load ("no-such-format", &e));
  CU_ASSERT_TRUE (data_error_says (e, "prompt format 'no-such-format'"));
}

/* Mutated inputs never crash or hang the readers: every row is a record or an error. */
static void
test_fuzz_readers (void)
{
  static const char *seeds[] = {
    "instruction,input,output\n\"a, \"\"b\"\"\",\"x\ny\",z\n1,2,3\n",
    "{\"instruction\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}\n{\"conversations\":[]}\n",
    "[{\"instruction\":\"a\",\"output\":\"b\"},{\"history\":[[\"q\",\"a\"]]}]",
  };
  const char *formats[] = { "csv", "jsonl", "json", "auto" };
  g_autofree char *p = data_path ("fuzz.txt");
  GRand *rand = g_rand_new_with_seed (42);
  for (guint iter = 0; iter < 600; iter++) {
    g_autoptr (GString) s = g_string_new (seeds[iter % G_N_ELEMENTS (seeds)]);
    guint edits = 1 + g_rand_int_range (rand, 0, 6);
    for (guint k = 0; k < edits && s->len; k++) {
      guint at = g_rand_int_range (rand, 0, (gint32) s->len);
      static const char alphabet[] = "\",\n\r{}[]:\\ a\xEF\xBB\xBF\xff";
      char c = alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)];
      switch (g_rand_int_range (rand, 0, 3)) {
        case 0:
          s->str[at] = c;
          break;
        case 1:
          g_string_insert_c (s, at, c);
          break;
        default:
          g_string_erase (s, at, 1);
          break;
      }
    }
    g_file_set_contents (p, s->str, (gssize) s->len, NULL);
    g_autoptr (CriaRows) rows = cria_rows_open (p, formats[iter % G_N_ELEMENTS (formats)], NULL);
    for (guint n = 0; rows && n < 1000; n++) {
      g_autoptr (GError) e = NULL;
      g_autoptr (JsonObject) row = NULL;
      CriaFlow f = cria_rows_next (rows, &row, &e);
      if (f == CRIA_FLOW_EOS || (f == CRIA_FLOW_ERROR && e->domain != CRIA_RECORD_ERROR))
        break;
      CU_ASSERT_TRUE ((f == CRIA_FLOW_OK) == (row != NULL));
      if (row) {
        g_autoptr (CriaRecord) r = cria_record_from_json (row, NULL);
      }
    }
  }
  g_rand_free (rand);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "CSV reader (RFC 4180)", test_csv_reader },
    { "file detects JSONL, JSON, CSV, ShareGPT, messages", test_file_detects_layouts },
    { "bad files name file, line and field", test_bad_files },
    { "sinks round-trip records", test_round_trips },
    { "sharegpt and dataset_info.json", test_sharegpt_and_dataset_info },
    { "dataset_info.json declares the columns the records have", test_dataset_info_columns },
    { "prompt formats", test_prompt_formats },
    { "readers survive mutated files", test_fuzz_readers },
    { NULL },
  };
  data_add_suite ("data-formats", cases);
}

CRIA_TEST_MAIN (register_suites)
