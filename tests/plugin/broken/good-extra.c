/* good-extra: a valid plugin loaded beside the broken ones, with providers of
 * two kinds: a transform and a metric sharing one name (different namespaces). */
#include "broken.h"

static const CriaPropSpec props[] = { { "level", CRIA_PROP_INT, "3", 1, 9, NULL, "how strongly" },
                                      { "mode", CRIA_PROP_ENUM, "fast", 0, 0, "fast|exact", "the mode" },
                                      CRIA_PROP_END };

static const CriaProviderInfo transform_info = {
  .kind = CRIA_KIND_TRANSFORM,
  .name = "extra",
  .description = "passes records on",
  .props = props,
  .vtable = &broken_vtable,
};

static const int metric_vtable_placeholder = 1;

static const CriaProviderInfo metric_info = {
  .kind = CRIA_KIND_METRIC,
  .name = "extra",
  .description = "a metric of the same name",
  .vtable = &metric_vtable_placeholder,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_provider (plugin, &transform_info);
  cria_plugin_add_provider (plugin, &metric_info);
  return TRUE;
}

CRIA_PLUGIN_DEFINE ("good-extra", "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
