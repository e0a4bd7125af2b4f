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

/* Watches a run from inside (cria ui shows the records a stage skipped):
 * `push` sees each record before stage `index` takes it, then NULL once
 * the stage is done with it; `skip` each record a stage skips, with its
 * reason and, for a bad record, the error's message (else NULL). */
typedef struct {
  void (*push) (guint index, const CriaRecord *record, gpointer data);
  void (*skip) (guint index, const char *reason, const char *message, gpointer data);
  gpointer data;
} CriaPipelineObserver;

struct _CriaPipeline {
  CriaRegistry *registry;
  GPtrArray *stages; /* CriaStage* */
  CriaOnError on_error;
  guint64 seed;
  void (*progress) (guint64, gpointer);
  gpointer progress_data;
  volatile gint cancelled;
  gboolean ran;
  CriaPipelineObserver observer;
};

CriaPipeline *cria_pipeline_new_empty (CriaRegistry *registry);
void cria_pipeline_set_observer (CriaPipeline *pipeline, const CriaPipelineObserver *observer);
/* Appends a stage; `where` prefixes errors ("stage 2" or "stages[1]"). */
CriaStage *cria_pipeline_add_stage (CriaPipeline *pipeline, const char *provider, const char *where, GError **error);
/* Checks kinds and order, and required properties. */
gboolean cria_pipeline_validate (CriaPipeline *pipeline, GError **error);
