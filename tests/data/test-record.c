/* test-record: records and their JSON interchange form. */
#include "cria-test.h"

static CriaRecord *
parse (const char *text, GError **error)
{
  g_autoptr (JsonNode) node = json_from_string (text, NULL);
  g_assert (node && JSON_NODE_HOLDS_OBJECT (node));
  return cria_record_from_json (json_node_get_object (node), error);
}

static void
test_round_trip (void)
{
  const char
      *text = "{\"instruction\":\"Translate\",\"input\":\"你好\",\"output\":\"Hello\",\"system\":\"be brief\","
              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}],"
              "\"id\":\"x1\",\"scores\":{\"bleu\":0.5},\"refs\":[\"a\",\"b\"]}";
  g_autoptr (CriaRecord) r = parse (text, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (r);
  CU_ASSERT_STRING_EQUAL (r->instruction, "Translate");
  CU_ASSERT_STRING_EQUAL (r->input, "你好");
  CU_ASSERT_EQUAL (r->messages->len, 2);
  CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "id"), "x1");
  g_autofree char *line = cria_record_to_json_line (r);
  CU_ASSERT_STRING_EQUAL (line, text);
  g_autoptr (CriaRecord) again = parse (line, NULL);
  CU_ASSERT_TRUE (cria_record_equal (r, again));
}

static void
test_absent_differs_from_empty (void)
{
  g_autoptr (CriaRecord) a = parse ("{\"instruction\":\"x\",\"input\":\"\"}", NULL);
  g_autoptr (CriaRecord) b = parse ("{\"instruction\":\"x\"}", NULL);
  CU_ASSERT_STRING_EQUAL (a->input, "");
  CU_ASSERT_PTR_NULL (b->input);
  CU_ASSERT_FALSE (cria_record_equal (a, b));
  /* null means absent */
  g_autoptr (CriaRecord) c = parse ("{\"instruction\":\"x\",\"input\":null}", NULL);
  CU_ASSERT_TRUE (cria_record_equal (b, c));
}

static void
test_invalid_fields (void)
{
  const char *bad[][2] = {
    { "{\"instruction\":3}", "'instruction'" }, { "{\"output\":[\"a\"]}", "'output'" },
    { "{\"messages\":{}}", "'messages'" },      { "{\"messages\":[{\"role\":\"user\"}]}", "messages[0]" },
    { "{\"messages\":[1]}", "messages[0]" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) e = NULL;
    g_autoptr (CriaRecord) r = parse (bad[i][0], &e);
    CU_ASSERT_PTR_NULL (r);
    CU_ASSERT_TRUE (g_error_matches (e, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD));
    CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, bad[i][1]));
  }
}

static void
test_copy_is_deep (void)
{
  g_autoptr (CriaRecord) r = parse ("{\"instruction\":\"a\",\"meta\":{\"k\":[1,2]}}", NULL);
  g_autoptr (CriaRecord) c = cria_record_copy (r);
  CU_ASSERT_TRUE (cria_record_equal (r, c));
  JsonObject *inner = json_object_get_object_member (c->meta, "meta");
  json_array_add_int_element (json_object_get_array_member (inner, "k"), 3);
  cria_record_set_field (c, "instruction", "b");
  CU_ASSERT_FALSE (cria_record_equal (r, c));
  g_autofree char *line = cria_record_to_json_line (r);
  CU_ASSERT_STRING_EQUAL (line, "{\"instruction\":\"a\",\"meta\":{\"k\":[1,2]}}");
}

static void
test_fields (void)
{
  g_autoptr (CriaRecord) r = cria_record_new ();
  cria_record_set_field (r, "output", "o");
  cria_record_set_field (r, "category", "qa");
  CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "output"), "o");
  CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "category"), "qa");
  cria_record_set_field (r, "category", NULL);
  CU_ASSERT_PTR_NULL (cria_record_get_field (r, "category"));
  cria_record_add_message (r, "user", "q");
  g_autofree char *line = cria_record_to_json_line (r);
  CU_ASSERT_STRING_EQUAL (line, "{\"output\":\"o\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
}

static void
test_json_parse_errors (void)
{
  g_autoptr (GError) e = NULL;
  JsonNode *n = cria_json_parse ("{\"a\": tru}", -1, "in.jsonl", 7, &e);
  CU_ASSERT_PTR_NULL (n);
  CU_ASSERT_TRUE (g_error_matches (e, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX));
  CU_ASSERT_PTR_NOT_NULL (e && g_str_has_prefix (e->message, "in.jsonl:7:"));
  g_clear_error (&e);
  n = cria_json_parse ("{\"a\": \"\xc3\x28\"}", -1, "in.jsonl", 2, &e);
  CU_ASSERT_PTR_NULL (n);
  CU_ASSERT_TRUE (g_error_matches (e, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "in.jsonl:2:8: invalid UTF-8"));
  g_clear_error (&e);
  /* A lone surrogate escape cannot be written back as UTF-8. */
  n = cria_json_parse ("{\"a\": [\"x\\ud8e0y\"]}", -1, "in.jsonl", 3, &e);
  CU_ASSERT_PTR_NULL (n);
  CU_ASSERT_TRUE (g_error_matches (e, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "in.jsonl:3: a \\u escape is a lone surrogate"));
  g_clear_error (&e);
  /* A surrogate pair is one character. */
  n = cria_json_parse ("\"\\ud83d\\ude00\"", -1, "in.jsonl", 4, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (n);
  CU_ASSERT_STRING_EQUAL (json_node_get_string (n), "\xf0\x9f\x98\x80");
  json_node_unref (n);
}

static void
test_error_quote (void)
{
  g_autofree char *a = cria_error_quote ("a\nb\tc\x01\xff中", -1, -1);
  CU_ASSERT_STRING_EQUAL (a, "a\\nb\\tc\\x01\xef\xbf\xbd中");
  g_autofree char *b = cria_error_quote ("abcdef", -1, 3);
  CU_ASSERT_STRING_EQUAL (b, "abc\xe2\x80\xa6");
  g_autofree char *c = cria_error_quote ("abc", 2, -1);
  CU_ASSERT_STRING_EQUAL (c, "ab");
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "JSON round trip", test_round_trip },
    { "absent differs from empty", test_absent_differs_from_empty },
    { "invalid fields are named", test_invalid_fields },
    { "copies are deep", test_copy_is_deep },
    { "field access", test_fields },
    { "JSON errors carry positions", test_json_parse_errors },
    { "user text in error messages", test_error_quote },
    { NULL },
  };
  cria_test_add_suite ("record", cases);
}

CRIA_TEST_MAIN (register_suites)
