/* cria-plugin.h: what a plugin .so exports and how it registers providers.
 *
 * A plugin exports exactly one symbol, `cria_plugin_descriptor_NAME`, through
 * CRIA_PLUGIN_DEFINE. The registry first loads a plugin file in a child
 * process (the plugin scanner), so that a plugin that crashes while it loads
 * is only reported; then it checks the ABI and fields and calls init, which
 * registers providers with the typed cria_plugin_add_KIND() calls below. A
 * plugin is all or nothing: if init fails or one of its providers is
 * rejected, none of them is kept.
 *
 * A plugin written before contract 1.0 (cria_plugin_add_provider with an
 * untyped vtable in CriaProviderInfo) converts like this:
 *   static const CriaStageVTable vt = { CRIA_VTABLE_INIT (CriaStageVTable), ... };
 *   static const CriaProviderInfo info = { .name = "x", .description = ...,
 *                                          .rank = CRIA_RANK_PRIMARY };
 *   cria_plugin_add_transform (plugin, &info, &vt);
 *   CRIA_PLUGIN_DEFINE (x, "...", plugin_init, ...);  (an identifier now) */
#pragma once

#include <glib.h>
#include <gmodule.h>
#include <cria/cria-props.h>
#include <cria/cria-version.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_KIND_SOURCE,
  CRIA_KIND_TRANSFORM,
  CRIA_KIND_SINK,
  CRIA_KIND_TOKENIZER,
  CRIA_KIND_MODEL,
  CRIA_KIND_ADAPTER,
  CRIA_KIND_METRIC,
  CRIA_KIND_BACKEND,
  CRIA_KIND_GENERATOR,
  CRIA_N_KINDS
} CriaKind;

const char *cria_kind_name (CriaKind kind);
/* Returns FALSE for an unknown name. */
gboolean cria_kind_from_name (const char *name, CriaKind *kind);
/* Sources, transforms and sinks share one namespace: a pipeline names them. */
gboolean cria_kind_is_stage (CriaKind kind);

typedef struct _CriaPlugin CriaPlugin;

/* Ranks: when several providers of one kind can handle an input (or share a
 * name), the one with the highest rank is chosen, the same way for every
 * kind; equal ranks go to the one found first in the search path. cria's own
 * providers are CRIA_RANK_PRIMARY, so a third-party plugin replaces one of
 * them only by declaring a higher rank (and a warning names both). */
enum {
  CRIA_RANK_NONE = 0, /* chosen only by its name, or when nothing else can */
  CRIA_RANK_MARGINAL = 64,
  CRIA_RANK_SECONDARY = 128,
  CRIA_RANK_PRIMARY = 256,
};

/* What `cria inspect` shows about a provider. The kind is that of the
 * cria_plugin_add_KIND() call, and the vtable its typed argument. */
typedef struct {
  const char *name;          /* lower case, digits, '-' and '_' */
  const char *description;   /* one line */
  const char *example;       /* a pipeline or command line that uses it */
  const CriaPropSpec *props; /* ends with CRIA_PROP_END; NULL for none */
  int rank;                  /* CRIA_RANK_*; see above */
} CriaProviderInfo;

typedef gboolean (*CriaPluginInitFunc) (CriaPlugin *plugin, GError **error);

typedef struct {
  guint32 abi_major;
  guint32 abi_minor;
  const char *name;
  const char *version;
  const char *license; /* SPDX identifier */
  const char *description;
  const char *origin; /* where it comes from: a URL or a vendor */
  CriaPluginInitFunc init;
} CriaPluginDescriptor;

/* The exported descriptor of the plugin file cria-NAME.so (or libNAME.so,
 * NAME.so; '-' in NAME read as '_') is cria_plugin_descriptor_NAME. The name
 * is pasted in, as GStreamer does, so that several plugins can be linked into
 * one program (cria_registry_add_static (reg, &cria_plugin_descriptor_NAME)).
 * The registry looks for that symbol only: a file exporting the plain
 * `cria_plugin_descriptor` of pre-1.0 headers is refused with a reason. */
#define CRIA_PLUGIN_DESCRIPTOR_PREFIX "cria_plugin_descriptor_"

/* Defines the plugin's descriptor with the ABI of the headers it is built
 * with; name_ is an identifier (lower case, '_'), as in the file name. */
#define CRIA_PLUGIN_DEFINE(name_, description_, init_, version_, license_, origin_)                                    \
  G_MODULE_EXPORT const CriaPluginDescriptor cria_plugin_descriptor_##name_ = {                                        \
    CRIA_ABI_MAJOR, CRIA_ABI_MINOR, #name_, version_, license_, description_, origin_, init_                           \
  }
/* Declares the descriptor of a plugin linked into the program. */
#define CRIA_PLUGIN_DECLARE(name_) extern const CriaPluginDescriptor cria_plugin_descriptor_##name_

/* Every vtable starts with its size, so that a later minor version can add
 * members at the end: the core uses a member only when the plugin's vtable is
 * long enough to hold it (CRIA_VTABLE_HAS), and a shorter vtable from an older
 * plugin is used without it. Start every vtable with CRIA_VTABLE_INIT:
 *   static const CriaStageVTable vt = { CRIA_VTABLE_INIT (CriaStageVTable), .create = ... }; */
#define CRIA_VTABLE_INIT(type_) .size = sizeof (type_)
/* TRUE when the vtable holds `member` and it is set. */
#define CRIA_VTABLE_HAS(vtable_, member_)                                                                              \
  ((vtable_)->size >= G_STRUCT_OFFSET (__typeof__ (*(vtable_)), member_) + sizeof ((vtable_)->member_) &&              \
   (vtable_)->member_ != NULL)

/* Typed registration, called from init, one call per provider. The info and
 * the vtable must outlive the plugin: pass static tables. A provider whose
 * vtable is smaller than its kind's 1.0 vtable is refused with a reason, and
 * the whole plugin with it. Sources, transforms and sinks share one
 * namespace (a pipeline names them); the other kinds have one each.
 * (The vtable types come from the kinds' headers; cria.h includes them all.) */
typedef struct _CriaStageVTable CriaStageVTable;
typedef struct _CriaTokenizerVTable CriaTokenizerVTable;
typedef struct _CriaModelVTable CriaModelVTable;
typedef struct _CriaAdapterVTable CriaAdapterVTable;
typedef struct _CriaMetricVTable CriaMetricVTable;
typedef struct _CriaBackendVTable CriaBackendVTable;
typedef struct _CriaGeneratorVTable CriaGeneratorVTable;

void cria_plugin_add_source (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaStageVTable *vtable);
void cria_plugin_add_transform (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaStageVTable *vtable);
void cria_plugin_add_sink (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaStageVTable *vtable);
void cria_plugin_add_tokenizer (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaTokenizerVTable *vtable);
void cria_plugin_add_model (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaModelVTable *vtable);
void cria_plugin_add_adapter (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaAdapterVTable *vtable);
void cria_plugin_add_metric (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaMetricVTable *vtable);
void cria_plugin_add_backend (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaBackendVTable *vtable);
void cria_plugin_add_generator (CriaPlugin *plugin, const CriaProviderInfo *info, const CriaGeneratorVTable *vtable);

const CriaPluginDescriptor *cria_plugin_get_descriptor (const CriaPlugin *plugin);
/* The file it was loaded from, or NULL for a plugin registered in-process. */
const char *cria_plugin_get_filename (const CriaPlugin *plugin);

G_END_DECLS
