/* cria-plot.h: the loss curve a training run leaves behind, as a PNG. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  double step;
  double value;
} CriaPlotPoint;

typedef struct {
  const char *label; /* in the legend: "train loss" */
  const CriaPlotPoint *points;
  guint n_points;
} CriaPlotSeries;

/* Draws the series (1 to 4) against the step on linear axes with ticks, a
 * legend and a title, and writes a PNG of width x height atomically. Series
 * may be empty; non-finite values are left out of the line. */
gboolean cria_plot_png (const char *path, const char *title, const CriaPlotSeries *series, guint n_series, int width,
                        int height, GError **error);

G_END_DECLS
