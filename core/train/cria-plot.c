/* cria-plot.c: loss curves drawn with cairo: cria's plot module, cria-plot.so
 * (cria-plot-module.h); libcria's cria_plot_png_panels loads it. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cairo.h>
#include <gmodule.h>

#include <cria/cria-error.h>
#include <cria/cria-output.h>
#include <cria/cria-plot.h>

#include "cria-plot-module.h"

/* Round numbers for ticks: 1, 2 or 5 times a power of ten. */
static double
nice_step (double range, int ticks)
{
  double raw = range / MAX (ticks, 1);
  double mag = pow (10, floor (log10 (raw)));
  double f = raw / mag;
  return mag * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

static cairo_status_t
write_out (void *closure, const unsigned char *data, unsigned int len)
{
  return cria_output_write (closure, data, len, NULL) ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static void
text_at (cairo_t *cr, double x, double y, const char *text, double align_x, double align_y)
{
  cairo_text_extents_t ext;
  cairo_text_extents (cr, text, &ext);
  cairo_move_to (cr, x - ext.width * align_x - ext.x_bearing, y + ext.height * align_y);
  cairo_show_text (cr, text);
}

/* The ranges of a panel's finite points, widened so that nothing lies on
 * the frame: ticks at round numbers, a margin on every side. */
typedef struct {
  double x0, x1, y0, y1, ystep;
} Range;

static void
range_of (const CriaPlotSeries *series, guint n_series, Range *r)
{
  double x0 = G_MAXDOUBLE, x1 = -G_MAXDOUBLE, y0 = G_MAXDOUBLE, y1 = -G_MAXDOUBLE;
  for (guint s = 0; s < n_series; s++)
    for (guint i = 0; i < series[s].n_points; i++) {
      const CriaPlotPoint *p = &series[s].points[i];
      if (!isfinite (p->step) || !isfinite (p->value))
        continue;
      x0 = MIN (x0, p->step), x1 = MAX (x1, p->step);
      y0 = MIN (y0, p->value), y1 = MAX (y1, p->value);
    }
  if (x0 > x1) { /* nothing to draw: still a valid, empty chart */
    x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  }
  if (x1 - x0 < 1e-12)
    x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12 * MAX (1, fabs (y0)))
    y0 -= MAX (0.5 * fabs (y0), 1e-12), y1 += MAX (0.5 * fabs (y1), 1e-12);
  double xpad = (x1 - x0) * 0.03, ypad = (y1 - y0) * 0.06;
  r->x0 = x0 - xpad, r->x1 = x1 + xpad;
  r->ystep = nice_step (y1 - y0 + 2 * ypad, 5);
  r->y0 = floor ((y0 - ypad) / r->ystep) * r->ystep, r->y1 = ceil ((y1 + ypad) / r->ystep) * r->ystep;
}

/* One panel: grid, ticks, frame, axis label, then the series clipped to
 * the frame, with a legend at its top right. */
static void
draw_panel (cairo_t *cr, double left, double top, double right, double bottom, const CriaPlotSeries *series,
            guint n_series, guint color0, const Range *r, double x0, double x1, const char *y_label)
{
  static const double colors[5][3] = {
    { 0.12, 0.47, 0.71 }, { 0.85, 0.37, 0.01 }, { 0.17, 0.63, 0.17 }, { 0.58, 0.40, 0.74 }, { 0.55, 0.34, 0.29 }
  };
  double xstep = nice_step (x1 - x0, 6);
#define PX(x) (left + ((x) -x0) / (x1 - x0) * (right - left))
#define PY(y) (bottom - ((y) -r->y0) / (r->y1 - r->y0) * (bottom - top))
  cairo_set_font_size (cr, 12);
  cairo_set_line_width (cr, 1);
  char buf[64];
  for (double y = r->y0; y <= r->y1 + r->ystep * 1e-6; y += r->ystep) {
    cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
    cairo_move_to (cr, left, round (PY (y)) + 0.5);
    cairo_line_to (cr, right, round (PY (y)) + 0.5);
    cairo_stroke (cr);
    cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
    g_snprintf (buf, sizeof buf, "%.3g", fabs (y) < r->ystep * 1e-6 ? 0.0 : y);
    text_at (cr, left - 6, PY (y), buf, 1.0, 0.5);
  }
  for (double x = ceil (x0 / xstep) * xstep; x <= x1 + xstep * 1e-6; x += xstep) {
    cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
    cairo_move_to (cr, round (PX (x)) + 0.5, top);
    cairo_line_to (cr, round (PX (x)) + 0.5, bottom);
    cairo_stroke (cr);
    cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
    g_snprintf (buf, sizeof buf, "%g", x);
    text_at (cr, PX (x), bottom + 16, buf, 0.5, 0.0);
  }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_rectangle (cr, left + 0.5, top + 0.5, right - left, bottom - top);
  cairo_stroke (cr);
  if (y_label) {
    cairo_save (cr);
    cairo_translate (cr, 14, (top + bottom) / 2);
    cairo_rotate (cr, -G_PI / 2);
    text_at (cr, 0, 0, y_label, 0.5, 0.5);
    cairo_restore (cr);
  }
  cairo_save (cr);
  cairo_rectangle (cr, left + 1, top + 1, right - left - 1, bottom - top - 1);
  cairo_clip (cr);
  cairo_set_line_width (cr, 2);
  for (guint s = 0; s < n_series; s++) {
    const double *rgb = colors[(color0 + s) % G_N_ELEMENTS (colors)];
    cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
    gboolean drawing = FALSE;
    for (guint i = 0; i < series[s].n_points; i++) {
      const CriaPlotPoint *p = &series[s].points[i];
      if (!isfinite (p->step) || !isfinite (p->value)) {
        drawing = FALSE;
        continue;
      }
      if (drawing)
        cairo_line_to (cr, PX (p->step), PY (p->value));
      else
        cairo_move_to (cr, PX (p->step), PY (p->value));
      drawing = TRUE;
      if (series[s].n_points == 1 || (s > 0 && series[s].n_points < 40)) {
        cairo_stroke (cr);
        cairo_arc (cr, PX (p->step), PY (p->value), 3, 0, 2 * G_PI);
        cairo_fill (cr);
        cairo_move_to (cr, PX (p->step), PY (p->value));
      }
    }
    cairo_stroke (cr);
    double ly = top + 14 + 18 * s;
    cairo_set_source_rgb (cr, 1, 1, 1);
    cairo_rectangle (cr, right - 156, ly - 9, 150, 18);
    cairo_fill (cr);
    cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
    cairo_move_to (cr, right - 150, ly);
    cairo_line_to (cr, right - 125, ly);
    cairo_stroke (cr);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    text_at (cr, right - 118, ly, series[s].label ? series[s].label : "", 0.0, 0.35);
  }
  cairo_restore (cr);
#undef PX
#undef PY
}

static gboolean
plot_png_panels (const char *path, const CriaPlotOptions *options, const CriaPlotSeries *series, guint n_series,
                 int width, int height, GError **error)
{
  Range upper, lower = { 0 };
  range_of (series, n_series, &upper);
  gboolean two = options->lower && options->n_lower > 0;
  double x0 = upper.x0, x1 = upper.x1;
  if (two) {
    range_of (options->lower, options->n_lower, &lower);
    x0 = MIN (x0, lower.x0), x1 = MAX (x1, lower.x1);
  }

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  double left = 80, right = width - 20, top = 40, bottom = height - 50;
  /* The lower panel takes a quarter of the height, below the upper's ticks. */
  double split = two ? top + (bottom - top) * 0.70 : bottom;
  draw_panel (cr, left, top, right, split, series, n_series, 0, &upper, x0, x1, options->y_label);
  if (two)
    draw_panel (cr, left, split + 30, right, bottom, options->lower, options->n_lower, n_series, &lower, x0, x1,
                options->lower_label);
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_set_font_size (cr, 12);
  text_at (cr, (left + right) / 2, height - 12, options->x_label ? options->x_label : "step", 0.5, 0.0);
  cairo_set_font_size (cr, 15);
  text_at (cr, (left + right) / 2, 16, options->title ? options->title : "", 0.5, 0.5);
  cairo_destroy (cr);
  cairo_surface_flush (surface);

  CriaOutput *out = cria_output_open (path, error);
  if (!out) {
    cairo_surface_destroy (surface);
    return FALSE;
  }
  cairo_status_t st = cairo_surface_write_to_png_stream (surface, write_out, out);
  cairo_surface_destroy (surface);
  if (st != CAIRO_STATUS_SUCCESS) {
    cria_output_abort (out);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot write the PNG: %s", path, cairo_status_to_string (st));
    return FALSE;
  }
  return cria_output_commit (out, error);
}

G_MODULE_EXPORT const CriaPlotModule cria_module_plot = { .size = sizeof (CriaPlotModule),
                                                          .png_panels = plot_png_panels };
