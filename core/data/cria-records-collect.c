/* cria-records-collect.c: the records of a file or a pipeline, in memory,
 * for verbs that need them all (eval, train).
 *
 * A file goes through the `file` source, so every format it detects (JSONL,
 * Alpaca, ShareGPT, OpenAI messages, CSV) is accepted here too; a pipeline
 * is run as written. Either way the records pass through a JSONL sink into a
 * temporary file, which is read back: one way in, whatever the source. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-pipeline.h>
#include <cria/cria-rows.h>

static char *
quote (const char *path)
{
  /* Pipeline values are quoted like a shell word. */
  g_autoptr (GString) s = g_string_new ("\"");
  for (const char *p = path; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_c (s, '\\');
    g_string_append_c (s, *p);
  }
  g_string_append_c (s, '"');
  return g_string_free (g_steal_pointer (&s), FALSE);
}

GPtrArray *
cria_pipeline_collect (CriaRegistry *registry, const char *source, GError **error)
{
  g_return_val_if_fail (source != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *dir = g_dir_make_tmp ("cria-collect-XXXXXX", error);
  if (!dir)
    return NULL;
  g_autofree char *tmp = g_build_filename (dir, "records.jsonl", NULL);
  g_autofree char *qtmp = quote (tmp);
  g_autofree char *description = NULL;
  if (strchr (source, '!') || !g_file_test (source, G_FILE_TEST_EXISTS)) {
    if (!strchr (source, '!')) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: no such file", source);
      g_rmdir (dir);
      return NULL;
    }
    description = g_strdup_printf ("%s ! jsonl location=%s", source, qtmp);
  } else {
    g_autofree char *qsrc = quote (source);
    description = g_strdup_printf ("file location=%s ! jsonl location=%s", qsrc, qtmp);
  }
  GPtrArray *records = NULL;
  g_autoptr (CriaPipeline) pipeline = cria_pipeline_parse (registry, description, error);
  if (pipeline && cria_pipeline_run (pipeline, error)) {
    g_autoptr (CriaRows) rows = cria_rows_open (tmp, "jsonl", error);
    records = rows ? g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free) : NULL;
    for (;;) {
      if (!rows)
        break;
      JsonObject *row = NULL;
      CriaFlow flow = cria_rows_next (rows, &row, error);
      if (flow == CRIA_FLOW_EOS)
        break;
      CriaRecord *r = flow == CRIA_FLOW_OK ? cria_record_from_json (row, error) : NULL;
      if (row)
        json_object_unref (row);
      if (!r) {
        g_clear_pointer (&records, g_ptr_array_unref);
        break;
      }
      g_ptr_array_add (records, r);
    }
  }
  g_unlink (tmp);
  g_rmdir (dir);
  return records;
}
