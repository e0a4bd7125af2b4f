/* test-plot: the loss-curve PNG is a real picture of the data. */
#include <math.h>

#include <cairo.h>
#include <cria/cria-plot.h>

#include "cria-test.h"

/* Mean row of the pixels close to a colour, in the left or right third. */
static double
mean_row (cairo_surface_t *s, double r, double g, double b, gboolean left, guint *count)
{
  int w = cairo_image_surface_get_width (s), h = cairo_image_surface_get_height (s);
  int stride = cairo_image_surface_get_stride (s);
  const unsigned char *data = cairo_image_surface_get_data (s);
  double sum = 0;
  *count = 0;
  for (int y = 0; y < h; y++)
    for (int x = left ? 0 : 2 * w / 3; x < (left ? w / 3 : w); x++) {
      guint32 px = *(const guint32 *) (data + y * stride + x * 4);
      double pr = ((px >> 16) & 0xff) / 255.0, pg = ((px >> 8) & 0xff) / 255.0, pb = (px & 0xff) / 255.0;
      if (fabs (pr - r) < 0.08 && fabs (pg - g) < 0.08 && fabs (pb - b) < 0.08) {
        sum += y;
        (*count)++;
      }
    }
  return *count ? sum / *count : -1;
}

static void
test_curve (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "loss.png", NULL);
  CriaPlotPoint train[200], eval[5];
  for (int i = 0; i < 200; i++)
    train[i] = (CriaPlotPoint){ i + 1, 4.0 * exp (-i / 50.0) + 0.5 + 0.05 * sin (i) };
  train[100].value = NAN; /* a skipped step leaves a gap, not a crash */
  for (int i = 0; i < 5; i++)
    eval[i] = (CriaPlotPoint){ 40 * (i + 1), 4.2 * exp (-40.0 * (i + 1) / 60.0) + 0.6 };
  CriaPlotSeries series[2] = { { "train loss", train, 200 }, { "eval loss", eval, 5 } };
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE_FATAL (cria_plot_png (path, "cria train: loss", series, 2, 640, 400, &e));
  cairo_surface_t *s = cairo_image_surface_create_from_png (path);
  CU_ASSERT_EQUAL_FATAL (cairo_surface_status (s), CAIRO_STATUS_SUCCESS);
  CU_ASSERT_EQUAL (cairo_image_surface_get_width (s), 640);
  CU_ASSERT_EQUAL (cairo_image_surface_get_height (s), 400);
  cairo_surface_flush (s);
  guint nl, nr, ne;
  double left = mean_row (s, 0.12, 0.47, 0.71, TRUE, &nl);
  double right = mean_row (s, 0.12, 0.47, 0.71, FALSE, &nr);
  mean_row (s, 0.85, 0.37, 0.01, FALSE, &ne);
  /* A falling loss is drawn high on the left and low on the right. */
  CU_ASSERT (nl > 50 && nr > 50);
  CU_ASSERT (left < right - 50);
  CU_ASSERT (ne > 10);
  cairo_surface_destroy (s);
  cria_test_rmtree (dir);
}

static void
test_edge_cases (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "empty.png", NULL);
  CriaPlotSeries empty = { "train loss", NULL, 0 };
  g_autoptr (GError) e = NULL;
  CU_ASSERT_TRUE (cria_plot_png (path, "no steps yet", &empty, 1, 320, 200, &e));
  CriaPlotPoint flat[3] = { { 1, 2.0 }, { 2, 2.0 }, { 3, 2.0 } };
  CriaPlotSeries one = { "train loss", flat, 3 };
  CU_ASSERT_TRUE (cria_plot_png (path, "flat", &one, 1, 320, 200, &e));
  cairo_surface_t *s = cairo_image_surface_create_from_png (path);
  CU_ASSERT_EQUAL (cairo_surface_status (s), CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy (s);
  CU_ASSERT_FALSE (cria_plot_png ("/nonexistent/dir/loss.png", "x", &one, 1, 320, 200, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "/nonexistent/dir/loss.png"));
  cria_test_rmtree (dir);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "a falling loss is drawn falling", test_curve },
    { "empty and flat series, unwritable paths", test_edge_cases },
    { NULL },
  };
  cria_test_add_suite ("plot", cases);
}

CRIA_TEST_MAIN (register_suites)
