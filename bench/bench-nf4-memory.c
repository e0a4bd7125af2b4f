/* bench-nf4-memory: what QLoRA's NF4 saves on a checkpoint's linear layers.
 *
 *   tests/modelfiles/make-bench-models.sh bench-models && bench/bench-nf4-memory bench-models/qwen2.5-0.5b
 *
 * Quantizes every 2-D weight of the decoder layers (the projections QLoRA
 * keeps in 4 bits) and prints their bytes in f32, bf16 and NF4 with double
 * quantization (codes, 8-bit absmax codes, nested f32 scales and offset;
 * the two shared maps once), the NF4 bits per weight, the round-trip error
 * and the quantization throughput, as JSON lines. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cria/cria.h>

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: bench-nf4-memory CHECKPOINT_DIR\n");
    return 2;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaHfModel) model = cria_hf_model_open (argv[1], &error);
  if (!model) {
    fprintf (stderr, "bench-nf4-memory: %s\n", error->message);
    return 1;
  }
  guint64 n_params = 0, n_tensors = 0, nf4_bytes = 16 * 4 + 256 * 4;
  double max_rel = 0, secs = 0;
  for (guint i = 0; i < cria_hf_model_get_n_weights (model); i++) {
    const CriaWeight *w = cria_hf_model_get_weight (model, i);
    if (w->n_dims != 2 || !strstr (w->name, "layers."))
      continue;
    gint64 shape[] = { w->shape[0], w->shape[1] };
    g_autoptr (CriaTensor) src = cria_tensor_new_borrowed (w->dtype, 2, shape, (void *) w->data, NULL, NULL);
    gint64 t0 = g_get_monotonic_time ();
    g_autoptr (CriaTensor) q = cria_nf4_quantize (src, w->name, &error);
    secs += (double) (g_get_monotonic_time () - t0) / 1e6;
    if (!q) {
      fprintf (stderr, "bench-nf4-memory: %s\n", error->message);
      return 1;
    }
    n_params += (guint64) w->n_elements;
    n_tensors++;
    nf4_bytes += cria_tensor_nbytes (q) + (guint64) q->nf4->n_blocks + (guint64) q->nf4->n_nested * 4 + 4;
    /* the round trip, relative to each block's scale of the weight */
    if (n_tensors == 1) {
      g_autoptr (CriaTensor) x = cria_tensor_to_f32 (src), y = cria_tensor_to_f32 (q);
      const float *a = x->data, *b = y->data;
      double amax = 0, err = 0;
      for (gint64 e = 0; e < w->n_elements; e++) {
        amax = MAX (amax, fabs (a[e]));
        err = MAX (err, fabs ((double) a[e] - b[e]));
      }
      max_rel = err / amax;
    }
  }
  if (n_tensors == 0) {
    fprintf (stderr, "bench-nf4-memory: %s has no 2-D weights under layers.\n", argv[1]);
    return 1;
  }
  printf (
      "{\"checkpoint\": \"%s\", \"linear_tensors\": %" G_GUINT64_FORMAT ", \"linear_params\": %" G_GUINT64_FORMAT
      ", \"f32_bytes\": %" G_GUINT64_FORMAT ", \"bf16_bytes\": %" G_GUINT64_FORMAT ", \"nf4_bytes\": %" G_GUINT64_FORMAT
      ", \"nf4_bits_per_weight\": %.4f, \"nf4_vs_bf16\": %.4f, \"first_tensor_max_error_over_absmax\": %.4f"
      ", \"quantize_mparams_per_s\": %.1f}\n",
      argv[1], n_tensors, n_params, n_params * 4, n_params * 2, nf4_bytes, 8.0 * (double) nf4_bytes / (double) n_params,
      (double) nf4_bytes / (double) (n_params * 2), max_rel, (double) n_params / secs / 1e6);
  return 0;
}
