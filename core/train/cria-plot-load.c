/* cria-plot-load.c: cria_plot_png and cria_plot_png_panels, drawn by
 * cria's plot module on first use (cria-plot-module.h). */
#include "config.h"

#include <cria/cria-plot.h>

#include "../plugin/cria-module-private.h"
#include "cria-plot-module.h"

gboolean
cria_plot_png_panels (const char *path, const CriaPlotOptions *options, const CriaPlotSeries *series, guint n_series,
                      int width, int height, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (options != NULL, FALSE);
  g_return_val_if_fail (series != NULL, FALSE);
  g_return_val_if_fail (n_series >= 1 && n_series <= 4, FALSE);
  g_return_val_if_fail (options->n_lower <= 1 || options->lower != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const CriaPlotModule *plot = cria_module_load ("plot", sizeof (CriaPlotModule), "drawing loss curves", error);
  return plot && plot->png_panels (path, options, series, n_series, width, height, error);
}

gboolean
cria_plot_png (const char *path, const char *title, const CriaPlotSeries *series, guint n_series, int width, int height,
               GError **error)
{
  CriaPlotOptions options = { .title = title };
  return cria_plot_png_panels (path, &options, series, n_series, width, height, error);
}
