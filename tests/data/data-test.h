/* data-test.h: helpers of the dataset-construction suites. */
#pragma once

#include <string.h>

#include "cria-test.h"

extern CriaRegistry *data_reg;
extern char *data_dir;

int data_setup (void);
int data_teardown (void);
/* A path inside the suite's temporary directory (transfer full). */
char *data_path (const char *name);
/* Runs a pipeline string; returns its summary (NULL on failure, *error set). */
JsonNode *data_run (const char *description, CriaOnError mode, GError **error);
/* One stage's counter ("in", "out", "skipped") or a reason's count. */
gint64 data_count (JsonNode *summary, guint stage, const char *what);
gint64 data_reason (JsonNode *summary, guint stage, const char *reason);
/* Reads a JSONL file of records. */
GPtrArray *data_read_records (const char *path);
/* TRUE when error's message holds fragment (printed when it does not). */
gboolean data_error_says (const GError *error, const char *fragment);
/* Registers a suite run between data_setup() and data_teardown(). */
void data_add_suite (const char *name, const CriaTestCase *cases);
