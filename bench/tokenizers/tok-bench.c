/* tok-bench.c: encode throughput of a cria tokenizer on a corpus, one
 * document per line: single-threaded, then on all processors.
 *
 *   bench/tokenizers/cria-tok-bench ../shared/tokenizers/qwen2.5 corpus.txt
 *
 * Prints "cria-1 MBPS TOKENS" and "cria-N MBPS TOKENS" lines; tokenize.sh
 * compares them with @huggingface/tokenizers on the same corpus. */
#include "config.h"

#include <stdio.h>

#include <cria/cria.h>

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: %s TOKENIZER CORPUS [THREADS]\n", argv[0]);
    return 2;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) reg = cria_registry_new ();
  const char *plugins = g_getenv ("CRIA_BENCH_PLUGINS");
  if (plugins)
    cria_registry_add_path (reg, plugins);
  cria_registry_add_default_paths (reg);
  cria_registry_scan (reg);
  g_autoptr (CriaTokenizer) tok = cria_tokenizer_load (reg, argv[1], &error);
  if (!tok) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents (argv[2], &text, &len, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  guint n = g_strv_length (lines);
  guint threads = argc > 3 ? (guint) atoi (argv[3]) : g_get_num_processors ();
  double mb = (double) len / 1e6;

  gint64 t0 = g_get_monotonic_time ();
  guint64 tokens = 0;
  for (guint i = 0; i < n; i++) {
    g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, lines[i], -1, CRIA_ENCODE_DEFAULT, NULL);
    tokens += enc->ids->len;
  }
  double s1 = (double) (g_get_monotonic_time () - t0) / 1e6;
  printf ("cria-1 %.2f %" G_GUINT64_FORMAT "\n", mb / s1, tokens);

  t0 = g_get_monotonic_time ();
  g_autoptr (GPtrArray)
      encs = cria_tokenizer_encode_batch (tok, (const char *const *) lines, n, CRIA_ENCODE_DEFAULT, threads, NULL);
  double sn = (double) (g_get_monotonic_time () - t0) / 1e6;
  guint64 tokens_n = 0;
  for (guint i = 0; i < encs->len; i++)
    tokens_n += ((CriaEncoding *) encs->pdata[i])->ids->len;
  printf ("cria-%u %.2f %" G_GUINT64_FORMAT "\n", threads, mb / sn, tokens_n);
  return 0;
}
