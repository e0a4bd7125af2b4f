/* data-test.c: helpers of the dataset-construction suites. */
#include "data-test.h"

CriaRegistry *data_reg;
char *data_dir;

int
data_setup (void)
{
  data_reg = cria_test_registry ();
  data_dir = cria_test_tmpdir ();
  return 0;
}

int
data_teardown (void)
{
  cria_registry_free (data_reg);
  cria_test_rmtree (data_dir);
  g_free (data_dir);
  return 0;
}

char *
data_path (const char *name)
{
  return g_build_filename (data_dir, name, NULL);
}

JsonNode *
data_run (const char *description, CriaOnError mode, GError **error)
{
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (data_reg, description, error);
  if (!p)
    return NULL;
  cria_pipeline_set_on_error (p, mode);
  if (!cria_pipeline_run (p, error))
    return NULL;
  return cria_pipeline_get_summary (p);
}

static JsonObject *
stage (JsonNode *summary, guint i)
{
  return json_array_get_object_element (json_object_get_array_member (json_node_get_object (summary), "stages"), i);
}

gint64
data_count (JsonNode *summary, guint i, const char *what)
{
  return summary ? json_object_get_int_member (stage (summary, i), what) : -1;
}

gint64
data_reason (JsonNode *summary, guint i, const char *reason)
{
  if (!summary)
    return -1;
  return json_object_get_int_member_with_default (json_object_get_object_member (stage (summary, i), "reasons"), reason,
                                                  0);
}

GPtrArray *
data_read_records (const char *path)
{
  GPtrArray *records = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  g_autofree char *text = cria_test_read_file (path);
  g_auto (GStrv) lines = text ? cria_test_lines (text) : NULL;
  for (guint i = 0; lines && lines[i]; i++) {
    if (!*lines[i])
      continue;
    g_autoptr (JsonNode) n = json_from_string (lines[i], NULL);
    g_assert (n && JSON_NODE_HOLDS_OBJECT (n));
    g_ptr_array_add (records, cria_record_from_json (json_node_get_object (n), NULL));
  }
  return records;
}

gboolean
data_error_says (const GError *error, const char *fragment)
{
  if (error && strstr (error->message, fragment))
    return TRUE;
  printf ("\nexpected an error saying '%s', got '%s'\n", fragment, error ? error->message : "(none)");
  return FALSE;
}

void
data_add_suite (const char *name, const CriaTestCase *cases)
{
  CU_pSuite s = CU_add_suite (name, data_setup, data_teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (s, c->name, c->func);
}
