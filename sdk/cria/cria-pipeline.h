/* cria-pipeline.h: parsing and running record pipelines. See cria-pipeline(5). */
#pragma once

#include <cria/cria-registry.h>
#include <cria/cria-stage.h>

G_BEGIN_DECLS

typedef struct _CriaPipeline CriaPipeline;

typedef enum {
  CRIA_ON_ERROR_STOP, /* the first bad record stops the run */
  CRIA_ON_ERROR_SKIP, /* bad records are skipped and counted */
} CriaOnError;

/* gst-launch syntax: `file location=a.jsonl ! head n=10 ! jsonl location=b.jsonl` */
CriaPipeline *cria_pipeline_parse (CriaRegistry *registry, const char *description, GError **error);
/* The same written as JSON (cria-pipeline(5)): {"stages": [{"provider": "file",
 * "properties": {"location": "a.jsonl"}}, ...]}; `filename` names errors. */
CriaPipeline *cria_pipeline_parse_json (CriaRegistry *registry, const char *json, gssize len, const char *filename,
                                        GError **error);
CriaPipeline *cria_pipeline_load_file (CriaRegistry *registry, const char *path, GError **error);
void cria_pipeline_free (CriaPipeline *pipeline);

void cria_pipeline_set_on_error (CriaPipeline *pipeline, CriaOnError mode);
void cria_pipeline_set_seed (CriaPipeline *pipeline, guint64 seed);
/* Called about every 100 ms with the number of records read from the source. */
void cria_pipeline_set_progress (CriaPipeline *pipeline, void (*func) (guint64 n_read, gpointer data), gpointer data);

/* Runs to the end. On failure every sink's temporary output is removed. */
gboolean cria_pipeline_run (CriaPipeline *pipeline, GError **error);
/* Asks a running pipeline to stop (async-signal-safe); run() fails with CRIA_ERROR_CANCELLED. */
void cria_pipeline_cancel (CriaPipeline *pipeline);

guint cria_pipeline_get_n_stages (CriaPipeline *pipeline);
/* The summary after a run: per stage {name, provider, in, out, skipped, reasons{}}. */
JsonNode *cria_pipeline_get_summary (CriaPipeline *pipeline);
/* The same as aligned text lines. */
char *cria_pipeline_format_summary (CriaPipeline *pipeline);
/* The pipeline in canonical gst-launch form. */
char *cria_pipeline_to_string (CriaPipeline *pipeline);

/* Every record of `source` (CriaRecord*, transfer full): a data file in any
 * format the `file` source reads, or a pipeline description whose last stage
 * is not a sink ("squad location=dev.json ! dedup"). */
GPtrArray *cria_pipeline_collect (CriaRegistry *registry, const char *source, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaPipeline, cria_pipeline_free)

G_END_DECLS
