/* good-extra: a valid plugin loaded beside the broken ones, with providers of
 * two kinds: a transform and a metric sharing one name (different namespaces). */
#include "broken.h"

static const CriaPropSpec props[] = { { "level", CRIA_PROP_INT, "3", 1, 9, NULL, "how strongly" },
                                      { "mode", CRIA_PROP_ENUM, "fast", 0, 0, "fast|exact", "the mode" },
                                      CRIA_PROP_END };

static const CriaProviderInfo transform_info = {
  .name = "extra",
  .description = "passes records on",
  .props = props,
  .rank = CRIA_RANK_PRIMARY,
};

/* Never created: the tests only look it up. */
static const CriaMetricVTable metric_vtable = { CRIA_VTABLE_INIT (CriaMetricVTable) };

static const CriaProviderInfo metric_info = {
  .name = "extra",
  .description = "a metric of the same name",
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &transform_info, &broken_vtable);
  cria_plugin_add_metric (plugin, &metric_info, &metric_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (good_extra, "test plugin", plugin_init, "1.0", "LGPL-2.1-or-later", "cria tests");
