/* cria-pipeline-private.h: the pipeline's insides, shared by the parser and the runner. */
#pragma once

#include <cria/cria-pipeline.h>

struct _CriaContext {
  CriaRegistry *registry;
  guint64 seed;
  char *stage_name;
  guint warnings;
};

struct _CriaEmitter {
  CriaPipeline *pipeline;
  guint index; /* the stage whose output this is */
};

typedef struct {
  const CriaProvider *provider;
  CriaProps *props;
  gpointer self;
  CriaContext ctx;
  CriaEmitter emitter;
  guint64 n_in, n_out, n_skipped;
  GHashTable *reasons; /* char* -> guint64* */
} CriaStage;

struct _CriaPipeline {
  CriaRegistry *registry;
  GPtrArray *stages; /* CriaStage* */
  CriaOnError on_error;
  guint64 seed;
  void (*progress) (guint64, gpointer);
  gpointer progress_data;
  volatile gint cancelled;
  gboolean ran;
};

CriaPipeline *cria_pipeline_new_empty (CriaRegistry *registry);
/* Appends a stage; `where` prefixes errors ("stage 2" or "stages[1]"). */
CriaStage *cria_pipeline_add_stage (CriaPipeline *pipeline, const char *provider, const char *where, GError **error);
/* Checks kinds and order, and required properties. */
gboolean cria_pipeline_validate (CriaPipeline *pipeline, GError **error);
