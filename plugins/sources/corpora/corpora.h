/* corpora.h: what the converters of public corpora share.
 *
 * Every converter is a source that fills a queue of records from one unit of
 * its input (a row, an article, a story) and hands them out one by one, so
 * memory holds one unit at a time (plus the whole document for corpora that
 * are shipped as one JSON document: SQuAD, CoQA). */
#pragma once

#include <cria/cria.h>

typedef struct _Conv Conv;

/* Fills self->pending from the next unit of input; EOS at the end. A
 * CRIA_RECORD_ERROR concerns that unit only. */
typedef CriaFlow (*ConvFill) (Conv *self, GError **error);
/* Turns one row into a record; NULL without an error drops the row (the
 * reason goes to cria_context_skip()). */
typedef CriaRecord *(*ConvRow) (Conv *self, JsonObject *row, const char *where, GError **error);

struct _Conv {
  const CriaProps *props;
  CriaContext *ctx;
  CriaRows *rows;     /* row-based converters */
  JsonNode *document; /* document-based converters */
  CriaJsonDoc *doc;   /* the same, read compactly */
  guint unit;         /* the next unit of the document */
  GQueue pending;     /* CriaRecord* */
  ConvFill fill;
  ConvRow row;
  gpointer data;
  GDestroyNotify data_free;
};

/* A converter reading rows of `location` (format= when the table has it). */
Conv *conv_new_rows (const CriaProps *props, CriaContext *ctx, ConvRow row, GError **error);
/* A converter over one JSON document, as a json-glib tree (self->document)
 * or as a compact block (self->doc), which is much faster to read and free. */
Conv *conv_new_document (const CriaProps *props, CriaContext *ctx, ConvFill fill, GError **error);
Conv *conv_new_doc (const CriaProps *props, CriaContext *ctx, ConvFill fill, GError **error);
void conv_destroy (gpointer self);
CriaFlow conv_next (gpointer self, CriaRecord **record, GError **error);

/* Renders a `{member}` template over a row; arrays give their first element. */
char *conv_render_row (const char *tmpl, JsonObject *row, const char *where, GError **error);
/* A property's value, NULL when unset or empty. */
const char *conv_prop (Conv *self, const char *name);
/* Stores strings as a JSON array of metadata. */
void conv_set_strings (CriaRecord *record, const char *member, GPtrArray *strings);

#define CONV_LOCATION_PROP(what_)                                                                                      \
  {                                                                                                                    \
    "location", CRIA_PROP_STRING, NULL, 0, 0, NULL, what_, CRIA_PROP_FLAG_REQUIRED                                     \
  }
#define CONV_FORMAT_PROP                                                                                               \
  {                                                                                                                    \
    "format", CRIA_PROP_ENUM, "auto", 0, 0, "auto|jsonl|json|csv",                                                     \
        "container of the rows: JSON lines, a JSON array, CSV, or auto-detected"                                       \
  }

#define SOURCE_VTABLE(name_)                                                                                           \
  const CriaStageVTable name_##_vtable = { CRIA_VTABLE_INIT (CriaStageVTable), .create = name_##_create,               \
                                           .destroy = conv_destroy, .next = conv_next }
