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

/* A picture of one or two panels over the same steps. */
typedef struct {
  const char *title;
  const char *x_label; /* NULL: "step" */
  const char *y_label; /* the upper panel's: "loss"; NULL: none */
  /* A lower panel (1 to 4 series; NULL: none), e.g. the learning rate. */
  const CriaPlotSeries *lower;
  guint n_lower;
  const char *lower_label;
} CriaPlotOptions;

/* As cria_plot_png, with axis labels and an optional lower panel sharing
 * the step axis. Points are drawn inside their panel's frame, never on it. */
gboolean cria_plot_png_panels (const char *path, const CriaPlotOptions *options, const CriaPlotSeries *series,
                               guint n_series, int width, int height, GError **error);

G_END_DECLS
