/* script.c: the scripted model behind the construct tests (script.h). */
#include <string.h>

#include "script.h"

CriaRegistry *reg;
char *base;

/* ---- the script ------------------------------------------------------------ */

GMutex lock;
static GPtrArray *lists;    /* answers to "continue the list" requests, in order */
static GPtrArray *finishes; /* their finish reasons (NULL: stop) */
static guint list_next;
static GHashTable *answers; /* "kind:key" -> answer */
static int n_requests;
int down_after = -1; /* answer this many requests, then 503 */
GPtrArray *seen;     /* every request's text */

void
script_reset (void)
{
  g_mutex_lock (&lock);
  g_clear_pointer (&lists, g_ptr_array_unref);
  g_clear_pointer (&finishes, g_ptr_array_unref);
  g_clear_pointer (&answers, g_hash_table_unref);
  g_clear_pointer (&seen, g_ptr_array_unref);
  lists = g_ptr_array_new_with_free_func (g_free);
  finishes = g_ptr_array_new_with_free_func (g_free);
  answers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  seen = g_ptr_array_new_with_free_func (g_free);
  list_next = 0;
  n_requests = 0;
  down_after = -1;
  g_mutex_unlock (&lock);
}

void
script_list (const char *text, const char *finish)
{
  g_ptr_array_add (lists, g_strdup (text));
  g_ptr_array_add (finishes, g_strdup (finish));
}

void
script_answer (const char *kind, const char *key, const char *text)
{
  g_hash_table_insert (answers, g_strconcat (kind, ":", key, NULL), g_strdup (text));
}

static const char *
lookup (const char *kind, const char *key)
{
  g_autofree char *k = g_strconcat (kind, ":", key, NULL);
  return g_hash_table_lookup (answers, k);
}

static gboolean
is_number_line (const char *line)
{
  const char *p = line;
  while (g_ascii_isdigit (*p))
    p++;
  return p > line && !strcmp (p, ".");
}

/* Picks the answer from what the prompt asks, by the layout of cria's prompt files. */
static char *
script (const char *said, const char **finish)
{
  const char *nl = strrchr (said, '\n');
  const char *last = nl ? nl + 1 : said;
  *finish = NULL;
  if (is_number_line (last)) {
    if (list_next >= lists->len)
      return g_strdup ("");
    *finish = g_ptr_array_index (finishes, list_next);
    return g_strdup (g_ptr_array_index (lists, list_next++));
  }
  if (g_str_has_prefix (last, "Is the answer one of") || g_str_has_prefix (last, "答案是否取自")) {
    g_autofree char *head = g_strndup (said, (gsize) (nl - said));
    const char *task = strrchr (head, '\n') + 1;
    task += g_str_has_prefix (task, "Task: ") ? strlen ("Task: ") : strlen ("任务：");
    const char *a = lookup ("classify", task);
    return g_strdup (a ? a : g_str_has_prefix (last, "Is") ? "No" : "否");
  }
  if (g_str_has_prefix (last, "Task: ") || g_str_has_prefix (last, "任务：")) {
    const char *task = last + (g_str_has_prefix (last, "Task: ") ? strlen ("Task: ") : strlen ("任务："));
    const char *a = lookup ("instance", task);
    if (a)
      return g_strdup (a);
    if (strstr (said, "Class label:"))
      return g_strdup ("Class label: positive\nInput: A fine day at the beach.\n\nTask: more");
    return g_strdup (*last == 'T' ? "Input: <noinput>\nOutput: A careful answer." : "输入：无\n输出：一个认真的回答。");
  }
  const char *given = strstr (said, "\nGiven prompt:\n");
  if (g_str_has_prefix (said, "EVOLVE ") || given) {
    const char *instr = given ? given + strlen ("\nGiven prompt:\n") : strchr (said, '\n') + 1;
    const char *a = lookup ("evolve", instr);
    return a ? g_strdup (a) : g_strdup_printf ("%s Use at most %d words.", instr, 10 + n_requests);
  }
  const char *slot = strstr (said, "placeholder named \"");
  if (slot) {
    slot += strlen ("placeholder named \"");
    g_autofree char *name = g_strndup (slot, strcspn (slot, "\""));
    const char *a = lookup ("slot", name);
    return g_strdup (a ? a : "\"winter\".");
  }
  const char *a = lookup ("answer", said);
  return a ? g_strdup (a) : g_strconcat ("Answer: ", said, NULL);
}

static void
handle (SoupServerMessage *msg, const char *path, gpointer data)
{
  g_mutex_lock (&lock);
  if (down_after >= 0 && n_requests >= down_after) {
    g_mutex_unlock (&lock);
    cria_fake_openai_respond (msg, 503, "{\"error\": {\"message\": \"down for maintenance\"}}");
    return;
  }
  n_requests++;
  g_autofree char *said = cria_fake_openai_said (msg, TRUE);
  g_ptr_array_add (seen, g_strdup (said));
  const char *finish = NULL;
  g_autofree char *text = script (said, &finish);
  g_autofree char *fin = g_strdup (finish);
  g_mutex_unlock (&lock);
  cria_fake_openai_answer (msg, TRUE, text, fin);
}

int
requests (void)
{
  g_mutex_lock (&lock);
  int n = n_requests;
  g_mutex_unlock (&lock);
  return n;
}

/* ---- running pipelines ------------------------------------------------------ */

char *tmp;

static int
script_setup (void)
{
  reg = cria_test_registry ();
  base = cria_fake_openai_start (handle, NULL);
  tmp = cria_test_tmpdir ();
  script_reset ();
  return 0;
}

static int
script_teardown (void)
{
  cria_test_rmtree (tmp);
  cria_registry_free (reg);
  return 0;
}

char *
gen_spec (void)
{
  return g_strdup_printf ("generator=\"openai base-url=%s/v1 model=t concurrency=1 retries=0 backoff=0\"", base);
}

char *
fixture (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "construct", name, NULL);
}

char *
in_tmp (const char *name)
{
  return g_build_filename (tmp, name, NULL);
}

/* Runs a pipeline (on-error=skip, seed 1); returns its summary or NULL with *error. */
JsonNode *
run (const char *description, GError **error)
{
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, description, error);
  if (!p)
    return NULL;
  cria_pipeline_set_on_error (p, CRIA_ON_ERROR_SKIP);
  cria_pipeline_set_seed (p, 1);
  if (!cria_pipeline_run (p, error))
    return NULL;
  return cria_pipeline_get_summary (p);
}

static JsonObject *
stage_of (JsonNode *summary, guint stage)
{
  JsonArray *stages = json_object_get_array_member (json_node_get_object (summary), "stages");
  return json_array_get_object_element (stages, stage);
}

gint64
reason (JsonNode *summary, guint stage, const char *name)
{
  JsonObject *st = stage_of (summary, stage);
  return json_object_get_int_member_with_default (json_object_get_object_member (st, "reasons"), name, 0);
}

gint64
stage_count (JsonNode *summary, guint stage, const char *what)
{
  return json_object_get_int_member (stage_of (summary, stage), what);
}

GPtrArray *
read_records (const char *path)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  g_autofree char *text = cria_test_read_file (path);
  g_auto (GStrv) lines = g_strsplit (text ? text : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!**l)
      continue;
    g_autoptr (JsonNode) n = json_from_string (*l, NULL);
    g_ptr_array_add (out, cria_record_from_json (json_node_get_object (n), NULL));
  }
  return out;
}

void
expect_reasons (JsonNode *summary, guint stage, const char *const *pairs)
{
  for (const char *const *p = pairs; *p; p += 2) {
    gint64 want = g_ascii_strtoll (p[1], NULL, 10), got = reason (summary, stage, p[0]);
    if (got != want)
      printf ("\nreason %s: %" G_GINT64_FORMAT ", want %" G_GINT64_FORMAT "\n", p[0], got, want);
    CU_ASSERT_EQUAL (got, want);
  }
}

/* Runs the pipeline again into another file: answered from the cache alone,
 * it must write the same bytes. */
void
expect_same_rerun (const char *desc, const char *out)
{
  g_autofree char *again = g_strconcat (out, ".again", NULL);
  g_autofree char *from = g_strconcat ("location=", out, NULL), *to = g_strconcat ("location=", again, NULL);
  g_auto (GStrv) parts = g_strsplit (desc, from, -1);
  g_autofree char *desc2 = g_strjoinv (to, parts);
  int before = requests ();
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run (desc2, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  CU_ASSERT_EQUAL (requests (), before);
  g_autofree char *a = cria_test_read_file (out), *b = cria_test_read_file (again);
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_STRING_EQUAL (a, b);
}

void
expect_error (const char *desc, const char *fragment)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, desc, &e);
  gboolean ran = p && cria_pipeline_run (p, &e);
  CU_ASSERT_FALSE (ran);
  if (!e || !strstr (e->message, fragment))
    printf ("\n'%s':\n  '%s' lacks '%s'\n", desc, e ? e->message : "(ran)", fragment);
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, fragment));
  CU_ASSERT_PTR_NULL (e ? strchr (e->message, '\n') : NULL);
}

JsonNode *
run_ok (const char *description)
{
  g_autoptr (GError) e = NULL;
  JsonNode *summary = run (description, &e);
  if (!summary)
    printf ("\n%s\n", e ? e->message : "(no error)");
  CU_ASSERT_PTR_NOT_NULL_FATAL (summary);
  return summary;
}

void
script_add_suite (const char *name, const CriaTestCase *cases)
{
  CU_pSuite suite = CU_add_suite (name, script_setup, script_teardown);
  for (const CriaTestCase *c = cases; c->name; c++)
    CU_add_test (suite, c->name, c->func);
}
