/* test-guards: libcria's public entry points reject a programming error (a
 * NULL handle, an index out of range, an *error already set) with a critical
 * in the "cria" log domain and their documented failure value, instead of
 * crashing. Criticals are counted by a handler on that domain and made
 * non-fatal for the call, so the test also runs under G_DEBUG=fatal-criticals. */
#include "cria-test.h"

typedef struct {
  guint n;
  char *last;
} Criticals;

static void
count_critical (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  Criticals *c = data;
  c->n++;
  g_free (c->last);
  c->last = g_strdup (message);
}

static Criticals criticals;
static guint handler;
static GLogLevelFlags old_fatal;

static void
watch (void)
{
  g_clear_pointer (&criticals.last, g_free);
  criticals.n = 0;
  old_fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK);
  handler = g_log_set_handler ("cria", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, count_critical, &criticals);
}

/* Stops counting; TRUE when exactly one critical named `expr`. */
static gboolean
one_critical (const char *expr)
{
  g_log_remove_handler ("cria", handler);
  g_log_set_always_fatal (old_fatal);
  gboolean ok = criticals.n == 1 && criticals.last && strstr (criticals.last, expr);
  if (!ok)
    printf ("\n%u criticals, last '%s', expected one naming '%s'\n", criticals.n, criticals.last ? criticals.last : "",
            expr);
  g_clear_pointer (&criticals.last, g_free);
  return ok;
}

static void
test_null_handles (void)
{
  watch ();
  CU_ASSERT_PTR_NULL (cria_registry_lookup (NULL, CRIA_KIND_SOURCE, "file"));
  CU_ASSERT_TRUE (one_critical ("reg != NULL"));

  watch ();
  CU_ASSERT_EQUAL (cria_props_get_int (NULL, "n"), 0);
  CU_ASSERT_TRUE (one_critical ("props != NULL"));

  watch ();
  CU_ASSERT_EQUAL (cria_tokenizer_token_to_id (NULL, "a"), -1);
  CU_ASSERT_TRUE (one_critical ("tok != NULL"));

  JsonObject *row = (JsonObject *) 0x1;
  watch ();
  CU_ASSERT_EQUAL (cria_rows_next (NULL, &row, NULL), CRIA_FLOW_ERROR);
  CU_ASSERT_TRUE (one_critical ("rows != NULL"));
  CU_ASSERT_PTR_EQUAL (row, (JsonObject *) 0x1); /* untouched */

  watch ();
  CU_ASSERT_EQUAL (cria_tensor_numel (NULL), 0);
  CU_ASSERT_TRUE (one_critical ("tensor != NULL"));

  watch ();
  CU_ASSERT_EQUAL (cria_graph_n_nodes (NULL), 0);
  CU_ASSERT_TRUE (one_critical ("g != NULL"));
}

static void
test_error_already_set (void)
{
  static const CriaPropSpec specs[] = { { "n", CRIA_PROP_INT, "3", 1, 10, NULL, "a count" }, CRIA_PROP_END };
  g_autoptr (CriaProps) p = cria_props_new (specs);
  g_autoptr (GError) e = g_error_new_literal (CRIA_ERROR, CRIA_ERROR_FAILED, "earlier");
  GError *before = e;
  watch ();
  CU_ASSERT_FALSE (cria_props_set (p, "n", "5", &e));
  CU_ASSERT_TRUE (one_critical ("*error == NULL"));
  CU_ASSERT_PTR_EQUAL (e, before);
  CU_ASSERT_EQUAL (cria_props_get_int (p, "n"), 3); /* not set */
}

static void
test_out_of_range (void)
{
  CriaOptimConfig config;
  cria_optim_config_init (&config);
  g_autoptr (CriaAdamW) opt = cria_adamw_new (&config);
  float w[2] = { 1, 2 };
  CU_ASSERT_EQUAL (cria_adamw_add (opt, "w", w, 2, TRUE), 0);
  watch ();
  CU_ASSERT_STRING_EQUAL (cria_adamw_get_name (opt, 0), "w");
  CU_ASSERT_EQUAL (criticals.n, 0);
  CU_ASSERT_PTR_NULL (cria_adamw_get_name (opt, 1));
  CU_ASSERT_TRUE (one_critical ("i < opt->params->len"));

  CriaRng rng;
  cria_rng_init (&rng, 1);
  watch ();
  CU_ASSERT_EQUAL (cria_rng_below (&rng, 0), 0); /* would divide by zero */
  CU_ASSERT_TRUE (one_critical ("n > 0"));
}

static void
test_valid_calls_are_quiet (void)
{
  /* Arguments a function takes NULL for on purpose pass without a critical. */
  watch ();
  cria_props_free (NULL);
  CU_ASSERT_EQUAL (cria_json_value_type (NULL), CRIA_JSON_NULL);
  CU_ASSERT_PTR_NULL (cria_json_value_member (NULL, "a"));
  gsize n = 7;
  CU_ASSERT_EQUAL (cria_hash64 (NULL, 0, 1), cria_hash64 (&n, 0, 1));
  g_log_remove_handler ("cria", handler);
  g_log_set_always_fatal (old_fatal);
  CU_ASSERT_EQUAL (criticals.n, 0);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "NULL handles", test_null_handles },
    { "*error already set", test_error_already_set },
    { "index out of range", test_out_of_range },
    { "NULL where documented is quiet", test_valid_calls_are_quiet },
    { NULL },
  };
  cria_test_add_suite ("guards", cases);
}

CRIA_TEST_MAIN (register_suites)
