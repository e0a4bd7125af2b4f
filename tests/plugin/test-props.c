/* test-props: property tables, values, validation. */
#include "cria-test.h"

static const CriaPropSpec specs[] = { { "n", CRIA_PROP_INT, "3", 1, 10, NULL, "a count" },
                                      { "ratio", CRIA_PROP_DOUBLE, "0.5", 0, 1, NULL, "a share" },
                                      { "flag", CRIA_PROP_BOOL, "false", 0, 0, NULL, "a switch" },
                                      { "mode", CRIA_PROP_ENUM, "fast", 0, 0, "fast|exact", "a choice" },
                                      { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "a file",
                                        CRIA_PROP_FLAG_REQUIRED },
                                      { "big", CRIA_PROP_INT, "-5", 0, 0, NULL, "unbounded" },
                                      CRIA_PROP_END };

static void
test_defaults (void)
{
  g_autoptr (CriaProps) p = cria_props_new (specs);
  CU_ASSERT_EQUAL (cria_props_get_int (p, "n"), 3);
  CU_ASSERT_DOUBLE_EQUAL (cria_props_get_double (p, "ratio"), 0.5, 0);
  CU_ASSERT_FALSE (cria_props_get_bool (p, "flag"));
  CU_ASSERT_STRING_EQUAL (cria_props_get_string (p, "mode"), "fast");
  CU_ASSERT_PTR_NULL (cria_props_get_string (p, "location"));
  CU_ASSERT_FALSE (cria_props_is_set (p, "location"));
  CU_ASSERT_EQUAL (cria_props_get_int (p, "big"), -5);
}

static void
test_set_valid (void)
{
  g_autoptr (CriaProps) p = cria_props_new (specs);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE (cria_props_set (p, "n", "10", &e));
  CU_ASSERT_TRUE (cria_props_set (p, "ratio", "1e-1", &e));
  CU_ASSERT_TRUE (cria_props_set (p, "flag", "yes", &e));
  CU_ASSERT_TRUE (cria_props_set (p, "mode", "exact", &e));
  CU_ASSERT_TRUE (cria_props_set (p, "location", "a b.jsonl", &e));
  CU_ASSERT_TRUE (cria_props_set (p, "big", "-9223372036854775807", &e));
  CU_ASSERT_PTR_NULL (e);
  CU_ASSERT_EQUAL (cria_props_get_int (p, "n"), 10);
  CU_ASSERT_DOUBLE_EQUAL (cria_props_get_double (p, "ratio"), 0.1, 1e-15);
  CU_ASSERT_TRUE (cria_props_get_bool (p, "flag"));
  CU_ASSERT_STRING_EQUAL (cria_props_get_text (p, "flag"), "true");
  CU_ASSERT_STRING_EQUAL (cria_props_get_string (p, "location"), "a b.jsonl");
  CU_ASSERT_TRUE (cria_props_check_required (p, NULL));
  g_autoptr (CriaProps) c = cria_props_copy (p);
  CU_ASSERT_STRING_EQUAL (cria_props_get_string (c, "mode"), "exact");
}

static void
expect_error (const char *name, const char *value, const char *fragment)
{
  g_autoptr (CriaProps) p = cria_props_new (specs);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (cria_props_set (p, name, value, &e));
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  CU_ASSERT_TRUE (g_error_matches (e, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT));
  if (!strstr (e->message, fragment))
    printf ("\nmessage '%s' lacks '%s'\n", e->message, fragment);
  CU_ASSERT_PTR_NOT_NULL (strstr (e->message, fragment));
}

static void
test_set_invalid (void)
{
  expect_error ("n", "11", "outside");
  expect_error ("n", "0", "outside");
  expect_error ("n", "3x", "not an integer");
  expect_error ("n", "", "not an integer");
  expect_error ("n", "99999999999999999999", "not an integer");
  expect_error ("ratio", "nan", "finite");
  expect_error ("ratio", "1.5", "outside");
  expect_error ("flag", "maybe", "boolean");
  expect_error ("mode", "slow", "fast|exact");
  expect_error ("location", "\xff", "UTF-8");
  expect_error ("nope", "1", "no property 'nope'");
}

static void
test_required (void)
{
  g_autoptr (CriaProps) p = cria_props_new (specs);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (cria_props_check_required (p, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "'location' is required"));
}

static void
test_json_values (void)
{
  g_autoptr (CriaProps) p = cria_props_new (specs);
  g_autoptr (JsonNode) i = json_node_init_int (json_node_alloc (), 7);
  g_autoptr (JsonNode) d = json_node_init_double (json_node_alloc (), 0.25);
  g_autoptr (JsonNode) b = json_node_init_boolean (json_node_alloc (), TRUE);
  g_autoptr (JsonNode) s = json_node_init_string (json_node_alloc (), "exact");
  g_autoptr (JsonArray) empty = json_array_new ();
  g_autoptr (JsonNode) a = json_node_init_array (json_node_alloc (), empty);
  CU_ASSERT_TRUE (cria_props_set_json (p, "n", i, NULL));
  CU_ASSERT_TRUE (cria_props_set_json (p, "ratio", d, NULL));
  CU_ASSERT_TRUE (cria_props_set_json (p, "flag", b, NULL));
  CU_ASSERT_TRUE (cria_props_set_json (p, "mode", s, NULL));
  CU_ASSERT_FALSE (cria_props_set_json (p, "mode", a, NULL));
  /* A number for an int property must be integral. */
  CU_ASSERT_FALSE (cria_props_set_json (p, "n", d, NULL));
  CU_ASSERT_EQUAL (cria_props_get_int (p, "n"), 7);
  CU_ASSERT_DOUBLE_EQUAL (cria_props_get_double (p, "ratio"), 0.25, 0);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "defaults", test_defaults }, { "valid values", test_set_valid },  { "invalid values", test_set_invalid },
    { "required", test_required }, { "JSON values", test_json_values }, { NULL },
  };
  cria_test_add_suite ("props", cases);
}

CRIA_TEST_MAIN (register_suites)
