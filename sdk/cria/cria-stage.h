/* cria-stage.h: sources, transforms and sinks of a record pipeline.
 *
 * A pipeline is source ! transform ... ! sink. The source is pulled; every
 * record it yields is pushed down the chain, and each stage emits zero or more
 * records to the next. At the end every stage is finished in order, so stages
 * that hold records (dedup, shuffle) emit them then, and sinks commit their
 * output (written under a temporary name, renamed when complete). */
#pragma once

#include <cria/cria-record.h>
#include <cria/cria-props.h>
#include <cria/cria-registry.h>

G_BEGIN_DECLS

typedef struct _CriaContext CriaContext;
typedef struct _CriaEmitter CriaEmitter;

typedef enum {
  CRIA_FLOW_OK,    /* a record was produced */
  CRIA_FLOW_EOS,   /* no more records */
  CRIA_FLOW_ERROR, /* *error is set */
} CriaFlow;

struct _CriaStageVTable {
  gsize size; /* CRIA_VTABLE_INIT (CriaStageVTable) */
  /* Creates an instance from validated properties. */
  gpointer (*create) (const CriaProps *props, CriaContext *ctx, GError **error);
  void (*destroy) (gpointer self);

  /* Sources: the next record, transfer full. An error in CRIA_RECORD_ERROR
   * concerns one record only: the pipeline may call next() again to go on. */
  CriaFlow (*next) (gpointer self, CriaRecord **record, GError **error);

  /* Transforms and sinks: consumes one record (transfer full); transforms pass
   * records on with cria_emit() or drop them with cria_emit_skip(). */
  gboolean (*push) (gpointer self, CriaRecord *record, CriaEmitter *out, GError **error);

  /* End of stream (may be NULL): emit held records; sinks commit their files. */
  gboolean (*finish) (gpointer self, CriaEmitter *out, GError **error);

  /* The run failed or was interrupted (may be NULL): sinks remove temporary files. */
  void (*abort) (gpointer self);
};

/* Passes a record (transfer full) to the next stage. */
gboolean cria_emit (CriaEmitter *out, CriaRecord *record, GError **error);
/* Counts a dropped record under a short reason ("duplicate", "too-long"). */
void cria_emit_skip (CriaEmitter *out, const char *reason);

/* What every stage instance can ask of the run it belongs to. */
CriaRegistry *cria_context_get_registry (CriaContext *ctx);
/* The pipeline's seed (property seed= of stages defaults to it). */
guint64 cria_context_get_seed (CriaContext *ctx);
/* Prints one warning line on stderr prefixed with the stage's name. */
void cria_context_warn (CriaContext *ctx, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* Counts a record a source dropped on purpose (an unanswerable question in
 * skip mode) under a short reason, as cria_emit_skip() does for transforms. */
void cria_context_skip (CriaContext *ctx, const char *reason);
/* The stage's name as written in the pipeline. */
const char *cria_context_get_stage_name (CriaContext *ctx);

G_END_DECLS
