/* curate.h: what the curating transforms share. */
#pragma once

#include <cria/cria.h>

#define FIELDS_PROP(default_)                                                                                          \
  {                                                                                                                    \
    "fields", CRIA_PROP_STRING, default_, 0, 0, NULL,                                                                  \
        "comma-separated fields it looks at (messages: every message's content)"                                       \
  }
#define SEED_PROP                                                                                                      \
  {                                                                                                                    \
    "seed", CRIA_PROP_INT, NULL, 0, (double) G_MAXINT64, NULL,                                                         \
        "seed of its random choices (default: the pipeline's --seed)"                                                  \
  }

/* The fields named by a comma-separated list (transfer full). */
char **curate_fields (const CriaProps *props);
/* The text of the named fields joined by newlines, messages included when
 * "messages" is named; for hashing and comparing records. */
char *curate_record_text (const CriaRecord *record, char *const *fields);
/* Applies `func` to every named text field that is set, and to each message's
 * content when "messages" is named. */
void curate_map_fields (CriaRecord *record, char *const *fields, char *(*func) (const char *text, gpointer data),
                        gpointer data);
/* The seed= property, or the pipeline's seed. */
guint64 curate_seed (const CriaProps *props, CriaContext *ctx);
/* A record's name for reports: its id metadata, or its position. */
char *curate_record_name (const CriaRecord *record, guint64 position);
