/* test-pipeline: parsing both pipeline forms, running, errors, atomic output. */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "cria-test.h"

static CriaRegistry *reg;
static char *dir;

static int
setup (void)
{
  reg = cria_test_registry ();
  dir = cria_test_tmpdir ();
  return 0;
}

static int
teardown (void)
{
  cria_registry_free (reg);
  cria_test_rmtree (dir);
  g_free (dir);
  return 0;
}

static char *
path (const char *name)
{
  return g_build_filename (dir, name, NULL);
}

static const char *records = "{\"instruction\":\"a\",\"output\":\"1\"}\n"
                             "\n"
                             "{\"instruction\":\"b\",\"output\":\"2\",\"id\":7}\r\n"
                             "{\"instruction\":\"c\",\"output\":\"3\"}\n";

static gboolean
run (const char *description, CriaOnError mode, GError **error)
{
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, description, error);
  if (!p)
    return FALSE;
  cria_pipeline_set_on_error (p, mode);
  return cria_pipeline_run (p, error);
}

static void
test_run_string (void)
{
  g_autofree char *in = path ("in.jsonl");
  g_autofree char *out = path ("out file.jsonl");
  cria_test_write_file (in, records);
  g_autofree char *desc = g_strdup_printf ("file location=%s ! head n=2 ! jsonl location=\"%s\"", in, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (p);
  CU_ASSERT_EQUAL (cria_pipeline_get_n_stages (p), 3);
  CU_ASSERT_TRUE (cria_pipeline_run (p, &e));
  CU_ASSERT_PTR_NULL (e);
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (
      text, "{\"instruction\":\"a\",\"output\":\"1\"}\n{\"instruction\":\"b\",\"output\":\"2\",\"id\":7}\n");
  g_autoptr (JsonNode) summary = cria_pipeline_get_summary (p);
  JsonArray *stages = json_object_get_array_member (json_node_get_object (summary), "stages");
  JsonObject *head = json_array_get_object_element (stages, 1);
  CU_ASSERT_EQUAL (json_object_get_int_member (head, "in"), 3);
  CU_ASSERT_EQUAL (json_object_get_int_member (head, "out"), 2);
  CU_ASSERT_EQUAL (json_object_get_int_member (head, "skipped"), 1);
  CU_ASSERT_EQUAL (json_object_get_int_member (json_object_get_object_member (head, "reasons"), "after-n"), 1);
  JsonObject *sink = json_array_get_object_element (stages, 2);
  CU_ASSERT_EQUAL (json_object_get_int_member (sink, "out"), 2);
  g_autofree char *canon = cria_pipeline_to_string (p);
  g_autofree char *want = g_strdup_printf ("file location=%s ! head n=2 ! jsonl location=\"%s\"", in, out);
  CU_ASSERT_STRING_EQUAL (canon, want);
}

static void
test_string_and_json_identical (void)
{
  g_autofree char *in = path ("in.jsonl");
  g_autofree char *a = path ("a.jsonl");
  g_autofree char *b = path ("b.jsonl");
  cria_test_write_file (in, records);
  g_autofree char *desc = g_strdup_printf ("file location=%s format=jsonl ! head n=3 ! jsonl location=%s", in, a);
  CU_ASSERT_TRUE (run (desc, CRIA_ON_ERROR_STOP, NULL));
  g_autofree char *json = g_strdup_printf ("{\"description\": \"the same\", \"stages\": [{\"provider\": \"file\", "
                                           "\"properties\": {\"location\": \"%s\", \"format\": \"jsonl\"}},"
                                           " {\"provider\": \"head\", \"properties\": {\"n\": 3}}, {\"provider\": "
                                           "\"jsonl\", \"properties\": {\"location\": \"%s\"}}]}",
                                           in, b);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse_json (reg, json, -1, "p.json", &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (p);
  CU_ASSERT_TRUE (cria_pipeline_run (p, &e));
  g_autofree char *ta = cria_test_read_file (a);
  g_autofree char *tb = cria_test_read_file (b);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ta);
  CU_ASSERT_STRING_EQUAL (ta, tb);
}

static void
expect_parse_error (const char *desc, const char *fragment)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, &e);
  CU_ASSERT_PTR_NULL (p);
  if (!e || !strstr (e->message, fragment))
    printf ("\n'%s': '%s' lacks '%s'\n", desc, e ? e->message : "(parsed)", fragment);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, fragment));
}

static void
test_parse_errors (void)
{
  expect_parse_error ("", "at least a source and a sink");
  expect_parse_error ("file location=a", "at least a source and a sink");
  expect_parse_error ("file location=a ! hed ! jsonl location=b", "stage 2: no source, transform or sink named 'hed'");
  expect_parse_error ("file location=a ! head n=-1 ! jsonl location=b", "stage 2 (head): property 'n'");
  expect_parse_error ("file location=a ! head nn=1 ! jsonl location=b", "no property 'nn'");
  expect_parse_error ("file location=a ! head n ! jsonl location=b", "'n' is not name=value");
  expect_parse_error ("file location=a ! ! jsonl location=b", "'!' where a provider name was expected");
  expect_parse_error ("file location=a ! jsonl location=b !", "ends with '!'");
  expect_parse_error ("file location=\"a ! jsonl location=b", "unterminated quote");
  expect_parse_error ("head ! jsonl location=b", "'head' is a transform, but a source belongs there");
  expect_parse_error ("file location=a ! head", "'head' is a transform, but a sink belongs there");
  expect_parse_error ("file ! jsonl location=b", "stage 1 (file): property 'location' is required");
  expect_parse_error ("location=a ! jsonl location=b", "expected a provider name");
  /* The last one used to win without a word. */
  expect_parse_error ("file location=a ! head n=1 n=2 ! jsonl location=b",
                      "stage 2 (head): property 'n' is given twice (n=1 and n=2)");
}

static void
expect_json_error (const char *json, const char *fragment)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse_json (reg, json, -1, "p.json", &e);
  CU_ASSERT_PTR_NULL (p);
  if (!e || !strstr (e->message, fragment))
    printf ("\n'%s': '%s' lacks '%s'\n", json, e ? e->message : "(parsed)", fragment);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, fragment));
}

static void
test_json_errors (void)
{
  expect_json_error ("{", "p.json:");
  expect_json_error ("[]", "p.json: stages: expected an array");
  expect_json_error ("{\"stages\": [{\"props\": {}}]}", "p.json: stages[0].provider");
  expect_json_error ("{\"stages\": [{\"provider\": \"file\", \"x\": 1}]}", "p.json: stages[0].x: unknown member");
  expect_json_error ("{\"stages\": [{\"provider\": \"file\", \"properties\": {\"location\": [1]}}]}",
                     "p.json: stages[0].properties.location");
  expect_json_error (
      "{\"stages\": [{\"provider\": \"file\", \"properties\": {\"location\": \"a\"}}, {\"provider\": \"head\", "
      "\"properties\": {\"n\": 1.5}}, {\"provider\": \"jsonl\", \"properties\": {\"location\": \"b\"}}]}",
      "p.json: stages[1].properties.n: property 'n': '1.5' is not an integer");
  expect_json_error ("{\"stages\": [], \"on-error\": \"maybe\"}", "p.json: on-error");
}

static void
test_bad_record_stop_leaves_nothing (void)
{
  g_autofree char *in = path ("bad.jsonl");
  g_autofree char *out = path ("kept.jsonl");
  cria_test_write_file (out, "old contents\n");
  cria_test_write_file (in, "{\"instruction\":\"a\"}\n{\"instruction\": tru}\n{\"instruction\":\"c\"}\n");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! jsonl location=%s", in, out);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (run (desc, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *want = g_strdup_printf ("%s:2:", in);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, want));
  /* The old file is untouched and no temporary file is left. */
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (text, "old contents\n");
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (d)))
    CU_ASSERT_PTR_NULL (strstr (name, ".tmp-"));
}

/* A run killed with SIGKILL leaves its temporary output behind; the next run
 * writing the same output removes it, but never one a live writer holds. */
static void
test_stale_temporaries_removed (void)
{
  g_autofree char *in = path ("stale-in.jsonl");
  g_autofree char *out = path ("stale.jsonl");
  cria_test_write_file (in, "{\"instruction\":\"a\"}\n");
  pid_t child = fork ();
  if (child == 0)
    _exit (0);
  waitpid (child, NULL, 0);
  g_autofree char *dead_name = g_strdup_printf (".stale.jsonl.tmp-%ld-abcdef", (long) child);
  g_autofree char *dead = path (dead_name);
  g_autofree char *old_style = path (".stale.jsonl.tmp-QWERTY");
  g_autofree char *live_name = g_strdup_printf (".stale.jsonl.tmp-%ld-livewr", (long) getpid ());
  g_autofree char *live = path (live_name);
  g_autofree char *locked = path (".stale.jsonl.tmp-LOCKED");
  g_autofree char *other = path (".other.jsonl.tmp-1-abcdef");
  const char *const files[] = { dead, old_style, live, locked, other };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    cria_test_write_file (files[i], "half a dataset");
  int fd = open (locked, O_RDONLY);
  CU_ASSERT_EQUAL_FATAL (flock (fd, LOCK_EX), 0);
  g_autofree char *desc = g_strdup_printf ("file location=%s ! jsonl location=%s", in, out);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE (run (desc, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_FALSE (g_file_test (dead, G_FILE_TEST_EXISTS));
  CU_ASSERT_FALSE (g_file_test (old_style, G_FILE_TEST_EXISTS));
  CU_ASSERT_TRUE (g_file_test (live, G_FILE_TEST_EXISTS));   /* its pid lives */
  CU_ASSERT_TRUE (g_file_test (locked, G_FILE_TEST_EXISTS)); /* its lock is held */
  CU_ASSERT_TRUE (g_file_test (other, G_FILE_TEST_EXISTS));  /* another output's */
  close (fd);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    g_remove (files[i]);
}

static void
test_bad_record_skip_counts (void)
{
  g_autofree char *in = path ("bad2.jsonl");
  g_autofree char *out = path ("skipped.jsonl");
  cria_test_write_file (
      in, "{\"instruction\":\"a\"}\n{\"instruction\": tru}\n[1]\n{\"instruction\":5}\n\xff\n{\"instruction\":\"c\"}\n");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! jsonl location=%s", in, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, &e);
  cria_pipeline_set_on_error (p, CRIA_ON_ERROR_SKIP);
  CU_ASSERT_TRUE (cria_pipeline_run (p, &e));
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (text, "{\"instruction\":\"a\"}\n{\"instruction\":\"c\"}\n");
  g_autoptr (JsonNode) summary = cria_pipeline_get_summary (p);
  JsonObject *src = json_array_get_object_element (
      json_object_get_array_member (json_node_get_object (summary), "stages"), 0);
  CU_ASSERT_EQUAL (json_object_get_int_member (src, "in"), 6);
  CU_ASSERT_EQUAL (json_object_get_int_member (src, "out"), 2);
  CU_ASSERT_EQUAL (json_object_get_int_member (src, "skipped"), 4);
  JsonObject *reasons = json_object_get_object_member (src, "reasons");
  CU_ASSERT_EQUAL (json_object_get_int_member (reasons, "syntax"), 2);
  CU_ASSERT_EQUAL (json_object_get_int_member (reasons, "invalid-field"), 1);
  CU_ASSERT_EQUAL (json_object_get_int_member (reasons, "encoding"), 1);
  g_autofree char *table = cria_pipeline_format_summary (p);
  CU_ASSERT_PTR_NOT_NULL (strstr (table, "encoding: 1, invalid-field: 1, syntax: 2"));
}

static void
test_json_array_input (void)
{
  g_autofree char *in = path ("arr.json");
  g_autofree char *out = path ("arr.jsonl");
  cria_test_write_file (in, "\xef\xbb\xbf  [\n {\"instruction\": \"x\", \"input\": \"\", \"output\": \"y\"},\n "
                            "{\"instruction\": \"z\"}\n]\n");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! jsonl location=%s", in, out);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE (run (desc, CRIA_ON_ERROR_STOP, &e));
  g_autofree char *text = cria_test_read_file (out);
  CU_ASSERT_STRING_EQUAL (text, "{\"instruction\":\"x\",\"input\":\"\",\"output\":\"y\"}\n{\"instruction\":\"z\"}\n");
  cria_test_write_file (in, "[{\"instruction\": \"x\"},\n {\"instruction\": ]");
  g_clear_error (&e);
  CU_ASSERT_FALSE (run (desc, CRIA_ON_ERROR_SKIP, &e));
  g_autofree char *want = g_strdup_printf ("%s:2:", in);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, want));
}

static void
test_missing_input (void)
{
  g_autofree char *out = path ("never.jsonl");
  g_autofree char *desc = g_strdup_printf ("file location=/nonexistent/in.jsonl ! jsonl location=%s", out);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (run (desc, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "file: /nonexistent/in.jsonl: No such file"));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
  /* An output directory that does not exist is named. */
  g_autofree char *in = path ("in.jsonl");
  cria_test_write_file (in, records);
  g_autofree char *desc2 = g_strdup_printf ("file location=%s ! jsonl location=/nonexistent/out.jsonl", in);
  g_clear_error (&e);
  CU_ASSERT_FALSE (run (desc2, CRIA_ON_ERROR_STOP, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "/nonexistent/out.jsonl"));
}

static void
test_cancel (void)
{
  g_autofree char *in = path ("in.jsonl");
  g_autofree char *out = path ("cancelled.jsonl");
  cria_test_write_file (in, records);
  g_autofree char *desc = g_strdup_printf ("file location=%s ! jsonl location=%s", in, out);
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, NULL);
  cria_pipeline_cancel (p);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_FALSE (cria_pipeline_run (p, &e));
  CU_ASSERT_TRUE (g_error_matches (e, CRIA_ERROR, CRIA_ERROR_CANCELLED));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "run a pipeline string", test_run_string },
    { "string and JSON forms give identical output", test_string_and_json_identical },
    { "pipeline string errors", test_parse_errors },
    { "pipeline JSON errors", test_json_errors },
    { "a bad record stops the run and leaves nothing", test_bad_record_stop_leaves_nothing },
    { "bad records are skipped and counted", test_bad_record_skip_counts },
    { "stale temporaries of dead runs are removed", test_stale_temporaries_removed },
    { "JSON array input", test_json_array_input },
    { "missing input and output directories", test_missing_input },
    { "cancelled runs write nothing", test_cancel },
    { NULL },
  };
  CU_pSuite suite = CU_add_suite ("pipeline", setup, teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}

CRIA_TEST_MAIN (register_suites)
