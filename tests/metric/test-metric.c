/* test-metric: the metric providers against independent references, and
 * `cria metric` on good and bad files.
 *
 * Goldens live in tests/metric beside the scripts that wrote them: BLEU from
 * nltk 3.8 (make-bleu-golden.py), ROUGE and distinct-n from an independent
 * Python implementation of the published definitions (rouge-reference.py),
 * SQuAD EM/F1 from the official v2.0 rules (squad-reference.py) on the shared
 * dev set. Scores must agree within 1e-9. */
#include "cria-test.h"

#include <math.h>
#include <string.h>

#define TOLERANCE 1e-9

static CriaRegistry *registry;

typedef struct {
  char *hyp;
  GPtrArray *refs; /* char* */
} Pair;

static void
pair_free (gpointer data)
{
  Pair *p = data;
  g_free (p->hyp);
  g_ptr_array_unref (p->refs);
  g_free (p);
}

static char *
golden_path (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "metric", name, NULL);
}

/* The pairs of bleu-SET.jsonl (make-pairs.py). */
static GPtrArray *
load_pairs (const char *set)
{
  g_autofree char *file = g_strdup_printf ("bleu-%s.jsonl", set);
  g_autofree char *path = golden_path (file);
  g_autofree char *text = cria_test_read_file (path);
  g_assert (text);
  GPtrArray *pairs = g_ptr_array_new_with_free_func (pair_free);
  g_auto (GStrv) lines = cria_test_lines (text);
  for (char **l = lines; *l && **l; l++) {
    g_autoptr (JsonNode) node = json_from_string (*l, NULL);
    g_assert (node);
    JsonObject *o = json_node_get_object (node);
    Pair *p = g_new0 (Pair, 1);
    p->hyp = g_strdup (json_object_get_string_member (o, "hyp"));
    p->refs = g_ptr_array_new_with_free_func (g_free);
    JsonArray *refs = json_object_get_array_member (o, "refs");
    for (guint i = 0; i < json_array_get_length (refs); i++)
      g_ptr_array_add (p->refs, g_strdup (json_array_get_string_element (refs, i)));
    g_ptr_array_add (pairs, p);
  }
  return pairs;
}

static GStrv
golden_lines (const char *name)
{
  g_autofree char *path = golden_path (name);
  g_autofree char *text = cria_test_read_file (path);
  g_assert (text);
  return cria_test_lines (text);
}

/* A metric with properties given as "key", "value", ..., NULL. */
static CriaMetric *
new_metric (const char *name, ...)
{
  const CriaProvider *p = cria_registry_lookup (registry, CRIA_KIND_METRIC, name);
  g_assert (p);
  g_autoptr (CriaProps) props = cria_provider_new_props (p);
  va_list ap;
  va_start (ap, name);
  const char *key;
  while ((key = va_arg (ap, const char *))) {
    const char *value = va_arg (ap, const char *);
    g_assert (cria_props_set (props, key, value, NULL));
  }
  va_end (ap);
  CriaMetric *m = cria_metric_new (p, props, NULL);
  g_assert (m);
  return m;
}

static gboolean
add_pair (CriaMetric *m, const Pair *pair, CriaScores *seg, GError **error)
{
  return cria_metric_add (m, pair->hyp, (const char *const *) pair->refs->pdata, pair->refs->len, seg, error);
}

static double max_diff;
static guint n_compared;

static void
expect_close (double got, const char *expected, const char *what)
{
  double want = g_ascii_strtod (expected, NULL);
  double d = fabs (got - want);
  n_compared++;
  if (d > max_diff)
    max_diff = d;
  if (!(d <= TOLERANCE))
    printf ("\n  %s: cria %.17g, reference %s", what, got, expected);
  CU_ASSERT_TRUE (d <= TOLERANCE);
}

static double
score_of (const CriaScores *s, const char *name)
{
  double v = NAN;
  CU_ASSERT_TRUE (cria_scores_lookup (s, name, &v));
  return v;
}

/* ---- BLEU against nltk ---- */

static void
check_corpus (GPtrArray *pairs, guint start, guint end, const char *const *props, const char *expected,
              const char *what)
{
  CriaMetric *m = new_metric ("bleu", props[0], props[1], props[2], props[3], props[4], props[5], props[6], props[7],
                              NULL);
  for (guint i = start; i < end; i++)
    g_assert (add_pair (m, g_ptr_array_index (pairs, i), NULL, NULL));
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaScores) s = cria_metric_finish (m, &error);
  if (!strcmp (expected, "error")) {
    CU_ASSERT_PTR_NULL (s);
  } else if (s) {
    expect_close (score_of (s, "bleu"), expected, what);
  } else {
    CU_FAIL (error->message);
  }
  cria_metric_free (m);
}

static void
test_bleu_nltk (void)
{
  g_autoptr (GPtrArray) en = load_pairs ("en");
  g_autoptr (GPtrArray) zh = load_pairs ("zh");
  g_auto (GStrv) lines = golden_lines ("bleu-golden.txt");
  GPtrArray *pairs = NULL;
  char cfg[8][64] = { "" };
  const char *props[8];
  guint n_sentence = 0, n_corpus = 0;
  max_diff = 0;
  for (char **l = lines; *l && **l; l++) {
    g_auto (GStrv) f = g_strsplit (*l, " ", -1);
    if (f[0][0] == 'C') {
      pairs = !strcmp (f[2], "en") ? en : zh;
      const char *names[4] = { "tokenize", "weights", "smoothing", "auto-reweigh" };
      for (guint k = 0; k < 4; k++) {
        g_strlcpy (cfg[2 * k], names[k], sizeof cfg[0]);
        g_strlcpy (cfg[2 * k + 1], f[3 + k], sizeof cfg[0]);
        props[2 * k] = cfg[2 * k];
        props[2 * k + 1] = cfg[2 * k + 1];
      }
    } else if (f[0][0] == 'S') {
      /* One metric per sentence: sentence_bleu is corpus_bleu of one pair. */
      guint i = (guint) atoi (f[2]);
      CriaMetric *m = new_metric ("bleu", props[0], props[1], props[2], props[3], props[4], props[5], props[6],
                                  props[7], NULL);
      g_autoptr (CriaScores) seg = cria_scores_new ();
      g_autoptr (GError) error = NULL;
      gboolean ok = add_pair (m, g_ptr_array_index (pairs, i), seg, &error);
      g_autofree char *what = g_strdup_printf ("sentence config %s pair %u", f[1], i);
      if (!strcmp (f[3], "error")) {
        CU_ASSERT_FALSE (ok);
      } else if (ok) {
        expect_close (score_of (seg, "bleu"), f[3], what);
      } else {
        CU_FAIL (error->message);
      }
      cria_metric_free (m);
      n_sentence++;
    } else if (f[0][0] == 'K') {
      g_autofree char *what = g_strdup_printf ("corpus config %s [%s, %s)", f[1], f[2], f[3]);
      check_corpus (pairs, (guint) atoi (f[2]), (guint) atoi (f[3]), props, f[4], what);
      n_corpus++;
    }
  }
  printf ("\n  %u sentence and %u corpus BLEU scores equal nltk's; largest difference %.3g ", n_sentence, n_corpus,
          max_diff);
  CU_ASSERT_TRUE (n_sentence >= 1000);
}

/* ---- ROUGE and distinct-n against the Python reference ---- */

/* Runs a metric over every pair, keeping each segment's scores. */
static CriaScores *
run_all (CriaMetric *m, GPtrArray *pairs, GPtrArray *segs)
{
  g_ptr_array_set_size (segs, 0);
  for (guint i = 0; i < pairs->len; i++) {
    CriaScores *s = cria_scores_new ();
    g_assert (add_pair (m, g_ptr_array_index (pairs, i), s, NULL));
    g_ptr_array_add (segs, s);
  }
  CriaScores *corpus = cria_metric_finish (m, NULL);
  cria_metric_free (m);
  g_assert (corpus);
  return corpus;
}

static void
expect_prf (const CriaScores *s, const char *type, char **values, const char *what)
{
  for (guint k = 0; k < 3; k++) {
    g_autofree char *name = g_strdup_printf ("%s_%c", type, "prf"[k]);
    g_autofree char *full = g_strdup_printf ("%s %s", what, name);
    expect_close (score_of (s, name), values[k], full);
  }
}

static void
test_rouge_reference (void)
{
  g_autoptr (GPtrArray) en = load_pairs ("en");
  g_autoptr (GPtrArray) zh = load_pairs ("zh");
  g_auto (GStrv) lines = golden_lines ("rouge-golden.txt");
  g_autoptr (GPtrArray) segs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_scores_free);
  g_autoptr (CriaScores) corpus = NULL;
  max_diff = 0;
  n_compared = 0;
  for (char **l = lines; *l && **l; l++) {
    g_auto (GStrv) f = g_strsplit (*l, " ", -1);
    g_autofree char *what = g_strdup_printf ("config %s %s", f[1], f[2]);
    if (f[0][0] == 'C') {
      g_clear_pointer (&corpus, cria_scores_free);
      CriaMetric *m = new_metric ("rouge", "max-n", f[3], "lowercase", f[4], "tokenize", f[5], "strip-punctuation",
                                  f[6], NULL);
      corpus = run_all (m, !strcmp (f[2], "en") ? en : zh, segs);
    } else if (f[0][0] == 'R') {
      expect_prf (g_ptr_array_index (segs, atoi (f[2])), f[3], f + 4, what);
    } else if (f[0][0] == 'M') {
      expect_prf (corpus, f[2], f + 3, what);
    }
  }
  printf ("\n  %u ROUGE scores equal the reference; largest difference %.3g ", n_compared, max_diff);
  CU_ASSERT_TRUE (n_compared >= 10000);
}

static void
test_distinct_reference (void)
{
  g_auto (GStrv) lines = golden_lines ("rouge-golden.txt");
  g_autoptr (GPtrArray) segs = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_scores_free);
  max_diff = 0;
  n_compared = 0;
  const char *sets[] = { "en", "zh" };
  for (guint k = 0; k < 2; k++) {
    g_autoptr (GPtrArray) pairs = load_pairs (sets[k]);
    g_autoptr (CriaScores) corpus = run_all (new_metric ("distinct", "max-n", "3", NULL), pairs, segs);
    for (char **l = lines; *l && **l; l++) {
      g_auto (GStrv) f = g_strsplit (*l, " ", -1);
      if ((f[0][0] != 'D' && f[0][0] != 'E') || strcmp (f[1], sets[k]))
        continue;
      g_autofree char *name = g_strdup_printf ("distinct_%s", f[2]);
      if (f[0][0] == 'D')
        expect_close (score_of (g_ptr_array_index (segs, atoi (f[3])), name), f[4], name);
      else
        expect_close (score_of (corpus, name), f[3], name);
    }
  }
  printf ("\n  %u distinct-n scores equal the reference ", n_compared);
  CU_ASSERT_TRUE (n_compared >= 3000);
}

/* ---- SQuAD against the official rules, on the shared dev sets ---- */

typedef void (*QuestionFunc) (JsonObject *qa, guint index, gpointer data);

static void
each_question (const char *relative, QuestionFunc func, gpointer data)
{
  g_autofree char *path = cria_test_shared (relative);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert (json_parser_load_from_file (parser, path, NULL));
  JsonArray *articles = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "data");
  guint index = 0;
  for (guint a = 0; a < json_array_get_length (articles); a++) {
    JsonArray *paras = json_object_get_array_member (json_array_get_object_element (articles, a), "paragraphs");
    for (guint p = 0; p < json_array_get_length (paras); p++) {
      JsonArray *qas = json_object_get_array_member (json_array_get_object_element (paras, p), "qas");
      for (guint q = 0; q < json_array_get_length (qas); q++)
        func (json_array_get_object_element (qas, q), index++, data);
    }
  }
}

static GPtrArray *
gold_answers (JsonObject *qa)
{
  GPtrArray *golds = g_ptr_array_new ();
  JsonArray *answers = json_object_get_array_member (qa, "answers");
  for (guint i = 0; i < json_array_get_length (answers); i++)
    g_ptr_array_add (golds,
                     (gpointer) json_object_get_string_member (json_array_get_object_element (answers, i), "text"));
  return golds;
}

static char *
first_word (const char *s)
{
  return g_strndup (s, strcspn (s, " "));
}

/* The predictions of squad-reference.py, by question index mod 5. */
static char *
crafted_prediction (JsonObject *qa, guint index)
{
  g_autoptr (GPtrArray) golds = gold_answers (qa);
  guint v = index % 5;
  if (!golds->len) {
    if (v == 3)
      return first_word (json_object_get_string_member (qa, "question"));
    return g_strdup ((const char *[]){ "", "", "the", NULL, "an." }[v]);
  }
  const char *first = g_ptr_array_index (golds, 0), *last = g_ptr_array_index (golds, golds->len - 1);
  g_autofree char *upper = g_ascii_strup (first, -1);
  g_autofree char *word = first_word (first);
  switch (v) {
    case 0:
      return g_strdup (first);
    case 1:
      return g_strdup ("");
    case 2:
      return g_strdup_printf ("The %s!", upper);
    case 3:
      return g_strdup_printf ("%s zzz", word);
    default:
      return g_strdup_printf ("%s %s", last, first);
  }
}

typedef struct {
  CriaMetric *metric;
  GHashTable *golden; /* id -> "exact f1" */
  int mode;           /* 0: crafted, 1: first gold answer, 2: empty */
} SquadRun;

static void
score_question (JsonObject *qa, guint index, gpointer data)
{
  SquadRun *run = data;
  g_autoptr (GPtrArray) golds = gold_answers (qa);
  g_autofree char *pred = run->mode == 0                 ? crafted_prediction (qa, index)
                          : run->mode == 1 && golds->len ? g_strdup (g_ptr_array_index (golds, 0))
                                                         : g_strdup ("");
  g_autoptr (CriaScores) seg = cria_scores_new ();
  g_assert (cria_metric_add (run->metric, pred, (const char *const *) golds->pdata, golds->len, seg, NULL));
  if (!run->golden)
    return;
  const char *id = json_object_get_string_member (qa, "id");
  const char *line = g_hash_table_lookup (run->golden, id);
  CU_ASSERT_PTR_NOT_NULL_FATAL (line);
  g_auto (GStrv) f = g_strsplit (line, " ", -1);
  expect_close (score_of (seg, "exact"), f[0], id);
  expect_close (score_of (seg, "f1"), f[1], id);
}

static void
test_squad_v2_official (void)
{
  g_auto (GStrv) lines = golden_lines ("squad-golden.txt");
  g_autoptr (GHashTable) golden = g_hash_table_new (g_str_hash, g_str_equal);
  char **total = NULL;
  for (char **l = lines; *l && **l; l++) {
    char *sp = strchr (*l, ' ');
    *sp = '\0';
    if (!strcmp (*l, "T"))
      total = g_strsplit (sp + 1, " ", -1);
    else
      g_hash_table_insert (golden, *l, sp + 1);
  }
  g_assert (total);
  max_diff = 0;
  n_compared = 0;
  SquadRun run = { new_metric ("squad", NULL), golden, 0 };
  each_question ("data/squad_v2.0/dev-v2.0.reconstructed.json", score_question, &run);
  g_autoptr (CriaScores) s = cria_metric_finish (run.metric, NULL);
  const char *names[] = { "exact", "f1", "has_ans_exact", "has_ans_f1", "no_ans_exact", "no_ans_f1" };
  for (guint k = 0; k < G_N_ELEMENTS (names); k++)
    expect_close (score_of (s, names[k]), total[k], names[k]);
  CU_ASSERT_EQUAL (score_of (s, "total"), 11873);
  CU_ASSERT_EQUAL (score_of (s, "no_ans_total"), 5945);
  printf ("\n  %u SQuAD v2.0 scores equal the official rules ", n_compared);
  g_strfreev (total);
  cria_metric_free (run.metric);
}

/* Scores known without any script: the first gold answer scores 100, an
 * empty answer scores the unanswerable share. */
static void
test_squad_known (void)
{
  struct {
    const char *file;
    int mode;
    double exact;
  } cases[] = {
    { "data/squad_v1.1/dev-v1.1.reconstructed.json", 1, 100 },
    { "data/squad_v1.1/dev-v1.1.reconstructed.json", 2, 0 },
    { "data/squad_v2.0/dev-v2.0.reconstructed.json", 1, 100 },
    { "data/squad_v2.0/dev-v2.0.reconstructed.json", 2, 100.0 * 5945 / 11873 },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    SquadRun run = { new_metric ("squad", NULL), NULL, cases[c].mode };
    each_question (cases[c].file, score_question, &run);
    g_autoptr (CriaScores) s = cria_metric_finish (run.metric, NULL);
    CU_ASSERT_DOUBLE_EQUAL (score_of (s, "exact"), cases[c].exact, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL (score_of (s, "f1"), cases[c].exact, 1e-9);
    cria_metric_free (run.metric);
  }
}

static void
test_squad_rules (void)
{
  CriaMetric *m = new_metric ("squad", NULL);
  g_autoptr (CriaScores) seg = cria_scores_new ();
  const char *golds[] = { "The Eiffel Tower", "Eiffel tower in Paris", "" };
  /* Articles, case and punctuation do not count; the best gold answer does. */
  g_assert (cria_metric_add (m, "eiffel, tower!", golds, 3, seg, NULL));
  CU_ASSERT_EQUAL (score_of (seg, "exact"), 1);
  g_assert (cria_metric_add (m, "tower in Paris, France", golds, 3, seg, NULL));
  CU_ASSERT_EQUAL (score_of (seg, "exact"), 0);
  /* best: "eiffel tower in paris" vs "tower in paris france": 3 common, P=3/4, R=3/4 */
  CU_ASSERT_DOUBLE_EQUAL (score_of (seg, "f1"), 0.75, 1e-12);
  /* "a"/"an"/"the" only as whole words: "theater" stays. */
  const char *g2[] = { "theater" };
  g_assert (cria_metric_add (m, "the theater", g2, 1, seg, NULL));
  CU_ASSERT_EQUAL (score_of (seg, "exact"), 1);
  const char *none[] = { "", "  the  " };
  g_assert (cria_metric_add (m, "An.", none, 2, seg, NULL));
  CU_ASSERT_EQUAL (score_of (seg, "exact"), 1);
  g_assert (cria_metric_add (m, "nothing", none, 2, seg, NULL));
  CU_ASSERT_EQUAL (score_of (seg, "f1"), 0);
  g_autoptr (CriaScores) s = cria_metric_finish (m, NULL);
  CU_ASSERT_EQUAL (score_of (s, "has_ans_total"), 3);
  CU_ASSERT_EQUAL (score_of (s, "no_ans_total"), 2);
  CU_ASSERT_DOUBLE_EQUAL (score_of (s, "no_ans_exact"), 50, 1e-12);
  cria_metric_free (m);
}

/* ---- cria metric ---- */

/* The golden score of `kind` lines of the configuration described by `desc`. */
static char *
bleu_golden (const char *desc, const char *rest)
{
  g_auto (GStrv) lines = golden_lines ("bleu-golden.txt");
  g_autofree char *id = NULL;
  for (char **l = lines; *l; l++) {
    if (g_str_has_prefix (*l, "C ") && g_str_has_suffix (*l, desc)) {
      id = g_strndup (*l + 2, strcspn (*l + 2, " "));
    } else if (id) {
      g_autofree char *prefix = g_strdup_printf ("%s %s %s ", rest[0] == 'S' ? "S" : "K", id, rest + 2);
      if (g_str_has_prefix (*l, prefix))
        return g_strdup (*l + strlen (prefix));
    }
  }
  g_assert_not_reached ();
}

/* Writes the pairs as cria metric's files: hyp.txt and ref1..3.txt. */
static void
write_pair_files (const char *dir, GPtrArray *pairs)
{
  GString *files[4];
  for (guint k = 0; k < 4; k++)
    files[k] = g_string_new (NULL);
  for (guint i = 0; i < pairs->len; i++) {
    const Pair *p = g_ptr_array_index (pairs, i);
    g_string_append_printf (files[0], "%s\n", p->hyp);
    for (guint k = 1; k < 4; k++)
      g_string_append_printf (files[k], "%s\n", k <= p->refs->len ? (char *) g_ptr_array_index (p->refs, k - 1) : "");
  }
  for (guint k = 0; k < 4; k++) {
    g_autofree char *name = k ? g_strdup_printf ("ref%u.txt", k) : g_strdup ("hyp.txt");
    g_autofree char *path = g_build_filename (dir, name, NULL);
    cria_test_write_file (path, files[k]->str);
    g_string_free (files[k], TRUE);
  }
}

static int
metric_cli (const char *dir, const char *const *args, char **out, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (argv, g_strdup ("metric"));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, g_str_has_prefix (*a, "@") ? g_build_filename (dir, *a + 1, NULL) : g_strdup (*a));
  g_ptr_array_add (argv, NULL);
  return cria_test_run_cria ((const char *const *) argv->pdata, NULL, out, err);
}

static void
check_cli_bleu (const char *dir, const char *set, const char *desc, const char *const *extra)
{
  g_autoptr (GPtrArray) pairs = load_pairs (set);
  write_pair_files (dir, pairs);
  const char *base[] = { "bleu",      "--hyp", "@hyp.txt",  "--ref",  "@ref1.txt",  "--ref",
                         "@ref2.txt", "--ref", "@ref3.txt", "--json", "--segments", "@seg.jsonl" };
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  for (guint i = 0; i < G_N_ELEMENTS (base); i++)
    g_ptr_array_add (args, (gpointer) base[i]);
  for (const char *const *e = extra; *e; e++)
    g_ptr_array_add (args, (gpointer) *e);
  g_ptr_array_add (args, NULL);
  g_autofree char *out = NULL, *err = NULL;
  CU_ASSERT_EQUAL_FATAL (metric_cli (dir, (const char *const *) args->pdata, &out, &err), 0);
  g_autoptr (JsonNode) node = json_from_string (out, NULL);
  CU_ASSERT_TRUE_FATAL (node && JSON_NODE_HOLDS_OBJECT (node));
  JsonObject *o = json_node_get_object (node);
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "segments"), (gint64) pairs->len);
  double bleu = json_object_get_double_member (json_object_get_object_member (o, "scores"), "bleu");
  g_autofree char *range = g_strdup_printf ("K 0 %u", pairs->len);
  g_autofree char *want = bleu_golden (desc, range);
  expect_close (bleu, want, "cria metric corpus bleu");

  g_autofree char *seg_path = g_build_filename (dir, "seg.jsonl", NULL);
  g_autofree char *segs = cria_test_read_file (seg_path);
  g_auto (GStrv) lines = g_strsplit (segs, "\n", -1);
  CU_ASSERT_EQUAL (g_strv_length (lines), pairs->len + 1);
  for (guint i = 0; i < pairs->len && lines[i]; i += 37) {
    g_autoptr (JsonNode) s = json_from_string (lines[i], NULL);
    g_autofree char *which = g_strdup_printf ("S %u", i);
    g_autofree char *expected = bleu_golden (desc, which);
    expect_close (json_object_get_double_member (json_node_get_object (s), "bleu"), expected, "cria metric segment");
  }
}

static void
test_cli_bleu (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  check_cli_bleu (dir, "en", "en word 0.25,0.25,0.25,0.25 method0 false", (const char *[]){ NULL });
  check_cli_bleu (dir, "zh", "zh char 0.25,0.25,0.25,0.25 method3 false",
                  (const char *[]){ "-p", "tokenize=char", "-p", "smoothing=method3", NULL });
  cria_test_rmtree (dir);
}

static void
expect_failure (const char *dir, const char *const *args, int status, const char *message)
{
  g_autofree char *err = NULL;
  int rc = metric_cli (dir, args, NULL, &err);
  CU_ASSERT_EQUAL (rc, status);
  if (!strstr (err, message))
    printf ("\n  expected '%s' in: %s", message, err);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, message));
  CU_ASSERT_PTR_NULL (strchr (err, '\n') == err + strlen (err) - 1 ? NULL : err);
}

static void
test_cli_bad_input (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  const char *files[][2] = {
    { "h.txt", "a b c\nd e f\n" },      { "r.txt", "a b c\nd e\n" }, { "short.txt", "a b c\n" },
    { "bad.txt", "a b\n\xff\xfe x\n" }, { "nul.txt", "a\nb\0c\n" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *path = g_build_filename (dir, files[i][0], NULL);
    g_assert (g_file_set_contents (path, files[i][1], i == 4 ? 6 : -1, NULL));
  }
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@short.txt", NULL }, 1,
                  "short.txt has 1 lines but");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@short.txt", "--ref", "@r.txt", NULL }, 1,
                  "short.txt has 1 lines but");
  expect_failure (dir, (const char *[]){ "rouge", "--hyp", "@h.txt", "--ref", "@bad.txt", NULL }, 1,
                  "bad.txt:2: invalid UTF-8");
  expect_failure (dir, (const char *[]){ "rouge", "--hyp", "@nul.txt", "--ref", "@r.txt", NULL }, 1,
                  "nul.txt:2: invalid UTF-8");
  expect_failure (dir, (const char *[]){ "squad", "--hyp", "@h.txt", "--ref", "@missing.txt", NULL }, 1,
                  "missing.txt: No such file");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@h.txt", NULL }, 2, "bleu needs --ref FILE");
  expect_failure (dir, (const char *[]){ "bleu", "--ref", "@r.txt", NULL }, 2, "--hyp FILE is required");
  expect_failure (dir,
                  (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@r.txt", "-p", "smoothing=method9", NULL }, 2,
                  "bleu: ");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@r.txt", "-p", "colour=red", NULL }, 2,
                  "colour");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@r.txt", "-p", "weights=0.5,x", NULL }, 2,
                  "weight 2 ('x')");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@r.txt", "-p", "novalue", NULL }, 2,
                  "KEY=VALUE");
  expect_failure (dir, (const char *[]){ "bleu", "--hyp", "-", "--ref", "-", NULL }, 2,
                  "only one of the files can be -");
  expect_failure (dir, (const char *[]){ "meteor", "--hyp", "@h.txt", "--ref", "@r.txt", NULL }, 1, "meteor");
  /* method6 needs a trigram match: the segment that has none is named. */
  expect_failure (dir,
                  (const char *[]){ "bleu", "--hyp", "@h.txt", "--ref", "@r.txt", "-p", "smoothing=method6",
                                    "--segments", "@seg.jsonl", NULL },
                  1, "h.txt:2: bleu: smoothing method6");
  g_autofree char *seg = g_build_filename (dir, "seg.jsonl", NULL);
  CU_ASSERT_FALSE (g_file_test (seg, G_FILE_TEST_EXISTS));
  /* A sentence too long for an LCS table is refused, not a swap storm. */
  g_autoptr (GString) long_line = g_string_new (NULL);
  for (guint i = 0; i < 6000; i++)
    g_string_append_printf (long_line, "w%u ", i % 50);
  g_string_append_c (long_line, '\n');
  g_autofree char *long_path = g_build_filename (dir, "long.txt", NULL);
  cria_test_write_file (long_path, long_line->str);
  expect_failure (dir, (const char *[]){ "rouge", "--hyp", "@long.txt", "--ref", "@long.txt", NULL }, 1,
                  "long.txt:1: rouge: sentences of 6000 and 6000 tokens are too long");
  cria_test_rmtree (dir);
}

static void
test_cli_text_and_distinct (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *h = g_build_filename (dir, "h.txt", NULL);
  g_autofree char *r2 = g_build_filename (dir, "r2.txt", NULL);
  cria_test_write_file (h, "the cat sat\nthe the the\n");
  cria_test_write_file (r2, "\nthe cat\n");
  g_autofree char *out = NULL;
  CU_ASSERT_EQUAL (metric_cli (dir, (const char *[]){ "distinct", "--hyp", "@h.txt", NULL }, &out, NULL), 0);
  /* unigrams: the, cat, sat / 6; bigrams: 3 distinct of 4 */
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "distinct_1       0.500000\n"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "distinct_2       0.750000\n"));
  g_clear_pointer (&out, g_free);
  /* An empty line in a later --ref file gives that segment no reference. */
  CU_ASSERT_EQUAL (
      metric_cli (dir, (const char *[]){ "squad", "--hyp", "@h.txt", "--ref", "@h.txt", "--ref", "@r2.txt", NULL },
                  &out, NULL),
      0);
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "exact            50.000000\n"));
  CU_ASSERT_PTR_NOT_NULL (strstr (out, "has_ans_total    2.000000\n"));
  cria_test_rmtree (dir);
}

/* ---- the SDK side ---- */

static void
test_scores_and_misuse (void)
{
  g_autoptr (CriaScores) s = cria_scores_new ();
  cria_scores_set (s, "b", 1);
  cria_scores_set (s, "a", 2);
  cria_scores_set (s, "b", 3);
  CU_ASSERT_EQUAL (cria_scores_get_n (s), 2);
  CU_ASSERT_STRING_EQUAL (cria_scores_get_name (s, 0), "b");
  CU_ASSERT_EQUAL (cria_scores_get_value (s, 0), 3);
  CU_ASSERT_FALSE (cria_scores_lookup (s, "c", NULL));

  CriaMetric *m = new_metric ("bleu", NULL);
  g_autoptr (GError) error = NULL;
  const char *refs[] = { "ok", "\xc3\x28" };
  CU_ASSERT_FALSE (cria_metric_add (m, "ok", refs, 2, NULL, &error));
  CU_ASSERT_TRUE (g_error_matches (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING));
  g_clear_error (&error);
  CU_ASSERT_FALSE (cria_metric_add (m, "ok", refs, 0, NULL, &error));
  CU_ASSERT_TRUE (g_error_matches (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD));
  g_clear_error (&error);
  CU_ASSERT_FALSE (cria_metric_add_loss (m, 1.0, 3, NULL, &error));
  CU_ASSERT_TRUE (g_error_matches (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED));
  g_clear_error (&error);
  /* No segments: every score is 0, not NaN. */
  g_autoptr (CriaScores) empty = cria_metric_finish (m, NULL);
  CU_ASSERT_EQUAL (score_of (empty, "bleu"), 0);
  CU_ASSERT_FALSE (cria_metric_add (m, "ok", refs, 1, NULL, &error));
  cria_metric_free (m);

  const CriaProvider *head = cria_registry_lookup_stage (registry, "head");
  g_autoptr (CriaProps) props = cria_provider_new_props (head);
  g_clear_error (&error);
  CU_ASSERT_PTR_NULL (cria_metric_new (head, props, &error));
  CU_ASSERT_PTR_NOT_NULL (error);
}

static void
register_suites (void)
{
  registry = cria_test_registry ();
  static const CriaTestCase parity[] = {
    { "bleu equals nltk 3.8", test_bleu_nltk },
    { "rouge equals the reference", test_rouge_reference },
    { "distinct-n equals the reference", test_distinct_reference },
    { "squad v2.0 equals the official rules", test_squad_v2_official },
    { "squad known scores on the dev sets", test_squad_known },
    { "squad normalization rules", test_squad_rules },
    { NULL },
  };
  static const CriaTestCase cli[] = {
    { "cria metric bleu equals nltk", test_cli_bleu },
    { "bad files and options", test_cli_bad_input },
    { "distinct and missing references", test_cli_text_and_distinct },
    { "scores and misuse of the API", test_scores_and_misuse },
    { NULL },
  };
  cria_test_add_suite ("metric-parity", parity);
  cria_test_add_suite ("metric-cli", cli);
}

CRIA_TEST_MAIN (register_suites)
