/* cria-plugin.h: what a plugin .so exports and how it registers providers.
 *
 * A plugin exports exactly one symbol, `cria_plugin_descriptor`, usually through
 * CRIA_PLUGIN_DEFINE. The registry checks its ABI and fields, then calls its
 * init, which registers one or more providers. A plugin is all or nothing: if
 * init fails or one of its providers is rejected, none of them is kept. */
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

typedef struct {
  CriaKind kind;
  const char *name;
  const char *description;   /* one line */
  const char *example;       /* a pipeline or command line that uses it */
  const CriaPropSpec *props; /* ends with CRIA_PROP_END; NULL for none */
  gconstpointer vtable;      /* the kind's vtable, e.g. CriaStageVTable */
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

#define CRIA_PLUGIN_DESCRIPTOR_SYMBOL "cria_plugin_descriptor"

/* Defines the plugin's descriptor with the ABI of the headers it is built with. */
#define CRIA_PLUGIN_DEFINE(name_, description_, init_, version_, license_, origin_)                                    \
  G_MODULE_EXPORT const CriaPluginDescriptor cria_plugin_descriptor = { CRIA_ABI_MAJOR, CRIA_ABI_MINOR, name_,         \
                                                                        version_,       license_,       description_,  \
                                                                        origin_,        init_ }

/* Called from init. The info must outlive the plugin: pass a static table. */
void cria_plugin_add_provider (CriaPlugin *plugin, const CriaProviderInfo *info);

const CriaPluginDescriptor *cria_plugin_get_descriptor (const CriaPlugin *plugin);
/* The file it was loaded from, or NULL for a plugin registered in-process. */
const char *cria_plugin_get_filename (const CriaPlugin *plugin);

G_END_DECLS
