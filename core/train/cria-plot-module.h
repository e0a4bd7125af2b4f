/* cria-plot-module.h: the loss-curve drawing, in cria's plot module
 * (cria-plot.so) because it links cairo and what cairo brings (fontconfig,
 * freetype, X11 libraries): a run loads it only when it draws. */
#pragma once

#include <cria/cria-plot.h>

G_BEGIN_DECLS

typedef struct {
  gsize size; /* sizeof (CriaPlotModule) of the module's build */
  /* cria_plot_png_panels, once its arguments are checked */
  gboolean (*png_panels) (const char *path, const CriaPlotOptions *options, const CriaPlotSeries *series,
                          guint n_series, int width, int height, GError **error);
} CriaPlotModule;

G_END_DECLS
