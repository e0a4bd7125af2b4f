/* selfinstruct: a model writes new instructions from a pool of seed tasks,
 * as Self-Instruct (Wang et al., 2022) does.
 *
 *   cria data 'selfinstruct seeds=seed_tasks.jsonl count=500 generator="openai base-url=http://127.0.0.1:8080/v1 model=m" ! dedup ! jsonl location=machine.jsonl'
 *
 * Each round sends `batch` prompts; each shows `examples` instructions as a
 * numbered list, `machine-examples` of them drawn from what the model already
 * wrote (the rest from the seeds), and asks the model to go on with the list.
 * The items it writes are kept when they pass the filters of rules.c (length,
 * blocklist, a start with punctuation or, for English, a non-ASCII character)
 * and are not too close (ROUGE-L F1 > similarity) to any instruction in the
 * pool. Each kept instruction is then asked whether it is a classification
 * task, and an instance is written for it: output first (class label, then an
 * input for it) for classification, input first otherwise. Rounds go on until
 * `count` records are out, or `patience` rounds in a row gave none. Every
 * candidate that does not become a record is counted under its reason. */
#include "config.h"

#include <string.h>

#include "construct.h"

static const CriaPropSpec selfinstruct_props[] = {
  { "seeds", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "seed tasks: JSON lines or a JSON array of {instruction, instances: [{input, output}], is_classification}",
    CRIA_PROP_FLAG_REQUIRED },
  CONSTRUCT_GENERATOR_PROP (CRIA_PROP_FLAG_REQUIRED, "writes instructions, classifies them and writes instances"),
  { "count", CRIA_PROP_INT, "100", 1, 10000000, NULL, "records (new instructions with an instance) to produce" },
  { "lang", CRIA_PROP_ENUM, "auto", 0, 0, "auto|en|zh",
    "language of the prompts and filters; auto: zh when the seeds hold Han characters" },
  { "examples", CRIA_PROP_INT, "8", 1, 64, NULL, "instructions shown in each prompt" },
  { "machine-examples", CRIA_PROP_INT, "2", 0, 64, NULL,
    "how many of those are drawn from the model's own instructions, once there are some" },
  { "batch", CRIA_PROP_INT, "4", 1, 256, NULL, "prompts sent at once in each round" },
  { "min-words", CRIA_PROP_INT, "3", 0, 100000, NULL,
    "shortest instruction kept, in words (each Han character counts as one; reason too-short)" },
  { "max-words", CRIA_PROP_INT, "150", 0, 100000, NULL,
    "longest instruction kept, in words; 0: no bound (reason too-long)" },
  { "similarity", CRIA_PROP_DOUBLE, "0.7", 0, 1, NULL,
    "an instruction whose ROUGE-L F1 to one in the pool exceeds this is dropped (reason similar)" },
  { "classify", CRIA_PROP_BOOL, "true", 0, 0, NULL,
    "ask whether each instruction is a classification task (output-first instances); false: all input-first" },
  { "task-examples", CRIA_PROP_INT, "3", 1, 32, NULL,
    "seed tasks of each kind shown in the classification and instance prompts" },
  { "patience", CRIA_PROP_INT, "5", 1, 1000, NULL, "rounds in a row that give no record before it stops short" },
  CONSTRUCT_COMMON_PROPS,
  CRIA_PROP_END
};

typedef struct {
  char *instruction, *input, *output;
  gboolean classification;
} Seed;

typedef struct {
  Construct c;
  CriaContext *ctx;
  ConstructLang lang;
  GPtrArray *seeds;   /* Seed* */
  GPtrArray *machine; /* char*: instructions the model wrote and the filters kept */
  RulesPool *pool;    /* seeds and machine instructions, for the similarity filter */
  RulesInstructionFilter filter;
  double similarity;
  guint count, examples, machine_examples, batch, task_examples, patience;
  gboolean classify;
  CriaRng rng;
  GQueue ready; /* CriaRecord* */
  guint produced, idle_rounds;
  guint64 n_requests;
  gboolean gave_up;
} SelfInstruct;

static void
seed_free (Seed *s)
{
  g_free (s->instruction);
  g_free (s->input);
  g_free (s->output);
  g_free (s);
}

static void
selfinstruct_destroy (gpointer data)
{
  SelfInstruct *self = data;
  construct_clear (&self->c);
  g_clear_pointer (&self->seeds, g_ptr_array_unref);
  g_clear_pointer (&self->machine, g_ptr_array_unref);
  rules_pool_free (self->pool);
  g_strfreev (self->filter.blocklist);
  g_queue_clear_full (&self->ready, (GDestroyNotify) cria_record_free);
  g_free (self);
}

/* The first instance of a seed task (or a record's own input/output). */
static gboolean
read_instance (JsonObject *row, const char *where, Seed *s, GError **error)
{
  JsonNode *inst = json_object_get_member (row, "instances");
  if (!inst)
    return cria_rows_get_text (row, "input", where, &s->input, error) &&
           (s->output = cria_rows_require_text (row, "output", where, error));
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (inst) ? json_node_get_array (inst) : NULL;
  JsonNode *first = a && json_array_get_length (a) ? json_array_get_element (a, 0) : NULL;
  if (!first || !JSON_NODE_HOLDS_OBJECT (first)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "%s: field 'instances': expected a non-empty array of {input, output} objects", where);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (first);
  g_autofree char *at = g_strdup_printf ("%s: instances[0]", where);
  return cria_rows_get_text (o, "input", at, &s->input, error) &&
         (s->output = cria_rows_require_text (o, "output", at, error));
}

static gboolean
load_seeds (SelfInstruct *self, const char *path, GError **error)
{
  g_autoptr (CriaRows) rows = cria_rows_open (path, "auto", error);
  if (!rows)
    return FALSE;
  for (;;) {
    g_autoptr (JsonObject) row = NULL;
    CriaFlow flow = cria_rows_next (rows, &row, error);
    if (flow == CRIA_FLOW_EOS)
      break;
    if (flow == CRIA_FLOW_ERROR)
      return FALSE;
    const char *where = cria_rows_where (rows);
    Seed *s = g_new0 (Seed, 1);
    g_ptr_array_add (self->seeds, s);
    if (!(s->instruction = cria_rows_require_text (row, "instruction", where, error)) ||
        !read_instance (row, where, s, error))
      return FALSE;
    JsonNode *cls = json_object_get_member (row, "is_classification");
    if (cls && !JSON_NODE_HOLDS_NULL (cls) &&
        (!JSON_NODE_HOLDS_VALUE (cls) || json_node_get_value_type (cls) != G_TYPE_BOOLEAN)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s: field 'is_classification': expected true or false", where);
      return FALSE;
    }
    s->classification = cls && !JSON_NODE_HOLDS_NULL (cls) && json_node_get_boolean (cls);
    if (!s->input)
      s->input = g_strdup ("");
  }
  if (!self->seeds->len) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: no seed tasks", path);
    return FALSE;
  }
  return TRUE;
}

static gboolean
load_blocklist (SelfInstruct *self, GError **error)
{
  const char *text = construct_prompt (&self->c, self->lang, "blocklist", error);
  if (!text)
    return FALSE;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  GPtrArray *words = g_ptr_array_new ();
  for (char **l = lines; *l; l++) {
    g_strstrip (*l);
    if (**l && **l != '#')
      g_ptr_array_add (words, g_utf8_strdown (*l, -1));
  }
  g_ptr_array_add (words, NULL);
  self->filter.blocklist = (char **) g_ptr_array_free (words, FALSE);
  return TRUE;
}

static gpointer
selfinstruct_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  SelfInstruct *self = g_new0 (SelfInstruct, 1);
  self->ctx = ctx;
  self->seeds = g_ptr_array_new_with_free_func ((GDestroyNotify) seed_free);
  self->machine = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&self->ready);
  self->count = (guint) cria_props_get_int (props, "count");
  self->examples = (guint) cria_props_get_int (props, "examples");
  self->machine_examples = MIN ((guint) cria_props_get_int (props, "machine-examples"), self->examples);
  self->batch = (guint) cria_props_get_int (props, "batch");
  self->task_examples = (guint) cria_props_get_int (props, "task-examples");
  self->patience = (guint) cria_props_get_int (props, "patience");
  self->classify = cria_props_get_bool (props, "classify");
  self->similarity = cria_props_get_double (props, "similarity");
  self->filter.min_words = (guint) cria_props_get_int (props, "min-words");
  self->filter.max_words = (guint) cria_props_get_int (props, "max-words");
  if (!construct_init (&self->c, props, ctx, error) ||
      !load_seeds (self, cria_props_get_string (props, "seeds"), error))
    goto fail;
  GString *all = g_string_new (NULL);
  for (guint i = 0; i < self->seeds->len; i++)
    g_string_append (all, ((Seed *) g_ptr_array_index (self->seeds, i))->instruction);
  self->lang = construct_lang_of (cria_props_get_string (props, "lang"), all->str);
  g_string_free (all, TRUE);
  self->filter.ascii_start = self->lang == CONSTRUCT_EN;
  if (!load_blocklist (self, error) || !(self->pool = rules_pool_new (cria_context_get_registry (ctx), error)))
    goto fail;
  for (guint i = 0; i < self->seeds->len; i++)
    rules_pool_add (self->pool, ((Seed *) g_ptr_array_index (self->seeds, i))->instruction);
  /* Every prompt file is read now, so that a bad one fails before any request. */
  static const char *const files[] = { "selfinstruct-generate",
                                       "selfinstruct-classify",
                                       "selfinstruct-classify-example",
                                       "selfinstruct-input-first",
                                       "selfinstruct-input-first-example",
                                       "selfinstruct-output-first",
                                       "selfinstruct-output-first-example" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    if (!construct_prompt (&self->c, self->lang, files[i], error))
      goto fail;
  cria_rng_init (&self->rng, self->c.seed);
  return self;
fail:
  selfinstruct_destroy (self);
  return NULL;
}

/* k distinct indices below n, in random order (k <= n). */
static guint *
sample (CriaRng *rng, guint n, guint k)
{
  guint *idx = g_new (guint, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    idx[i] = i;
  for (guint i = 0; i < k; i++) {
    guint j = i + (guint) cria_rng_below (rng, n - i);
    guint t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/* One line, so that the numbering of the list stays readable. */
static char *
one_line (const char *text)
{
  char *s = g_strdup (text);
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return g_strstrip (s);
}

/* The prompt that asks for new instructions; *next is the number it ends on. */
static char *
generate_prompt (SelfInstruct *self, guint *next, GError **error)
{
  guint m = MIN (self->machine_examples, self->machine->len);
  guint h = MIN (self->examples - m, self->seeds->len);
  g_autoptr (GPtrArray) shown = g_ptr_array_new ();
  g_autofree guint *hi = sample (&self->rng, self->seeds->len, h);
  for (guint i = 0; i < h; i++)
    g_ptr_array_add (shown, ((Seed *) g_ptr_array_index (self->seeds, hi[i]))->instruction);
  g_autofree guint *mi = sample (&self->rng, self->machine->len, m);
  for (guint i = 0; i < m; i++)
    g_ptr_array_add (shown, g_ptr_array_index (self->machine, mi[i]));
  g_autofree guint *order = sample (&self->rng, shown->len, shown->len);
  GString *list = g_string_new (NULL);
  for (guint i = 0; i < shown->len; i++) {
    g_autofree char *line = one_line (g_ptr_array_index (shown, order[i]));
    g_string_append_printf (list, "%s%u. %s", i ? "\n" : "", i + 1, line);
  }
  *next = shown->len + 1;
  g_autofree char *examples = g_string_free (list, FALSE);
  g_autofree char *n = g_strdup_printf ("%u", *next);
  return construct_render (&self->c, self->lang, "selfinstruct-generate", error, "examples", examples, "next", n, NULL);
}

/* Why a candidate is not kept, or NULL (then it joins the pool). */
static const char *
consider (SelfInstruct *self, const char *candidate, guint accepted)
{
  const char *why = rules_check_instruction (&self->filter, candidate);
  if (why)
    return why;
  int most = -1;
  if (rules_pool_max_similarity (self->pool, candidate, &most) > self->similarity)
    return "similar";
  if (self->produced + accepted >= self->count)
    return "surplus";
  return NULL;
}

/* Seed tasks rendered through an example prompt file, joined by blank lines. */
static char *
seed_examples (SelfInstruct *self, const char *file, int want_classification, GError **error)
{
  static const char *const yes[] = { "Yes", "是" }, *const no[] = { "No", "否" }, *const none[] = { "<noinput>", "无" };
  g_autoptr (GPtrArray) pick = g_ptr_array_new ();
  /* Seeds without a task of the wanted kind show tasks of both. */
  guint n_wanted = 0;
  for (guint i = 0; i < self->seeds->len; i++)
    n_wanted += ((Seed *) g_ptr_array_index (self->seeds, i))->classification == want_classification;
  if (!n_wanted)
    want_classification = -1;
  for (int kind = 0; kind < 2; kind++) {
    if (want_classification >= 0 && kind != want_classification)
      continue;
    g_autoptr (GPtrArray) of_kind = g_ptr_array_new ();
    for (guint i = 0; i < self->seeds->len; i++) {
      Seed *s = g_ptr_array_index (self->seeds, i);
      if (s->classification == kind)
        g_ptr_array_add (of_kind, s);
    }
    guint k = MIN (self->task_examples, of_kind->len);
    g_autofree guint *idx = sample (&self->rng, of_kind->len, k);
    for (guint i = 0; i < k; i++)
      g_ptr_array_add (pick, g_ptr_array_index (of_kind, idx[i]));
  }
  g_autofree guint *order = sample (&self->rng, pick->len, pick->len);
  GString *out = g_string_new (NULL);
  for (guint i = 0; i < pick->len; i++) {
    Seed *s = g_ptr_array_index (pick, order[i]);
    g_autofree char *text = construct_render (&self->c, self->lang, file, error, "instruction", s->instruction, "input",
                                              *s->input ? s->input : none[self->lang], "output", s->output, "answer",
                                              (s->classification ? yes : no)[self->lang], NULL);
    if (!text) {
      g_string_free (out, TRUE);
      return NULL;
    }
    g_string_append_printf (out, "%s%s", i ? "\n\n" : "", text);
  }
  return g_string_free (out, FALSE);
}

/* The literal start of an example prompt file ("Task:"): where a model that
 * goes on writing examples starts the next one. */
static char *
example_marker (SelfInstruct *self, const char *file)
{
  const char *text = construct_prompt (&self->c, self->lang, file, NULL);
  const char *brace = text ? strchr (text, '{') : NULL;
  g_autofree char *head = brace ? g_strndup (text, (gsize) (brace - text)) : g_strdup ("");
  return g_strstrip (g_strdup (head));
}

/* Asks a prompt per instruction, built from a prompt file and seed examples. */
static CriaGenResult *
ask_per_instruction (SelfInstruct *self, GPtrArray *instructions, const gboolean *classification, const char *what,
                     GError **error)
{
  guint n = instructions->len;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree guint64 *salts = g_new0 (guint64, MAX (n, 1));
  g_autofree char *marker = NULL;
  for (guint i = 0; i < n; i++) {
    const char *file = what ? what : classification[i] ? "selfinstruct-output-first" : "selfinstruct-input-first";
    g_autofree char *example_file = g_strconcat (file, "-example", NULL);
    g_autofree char *examples = seed_examples (self, example_file, what ? -1 : classification[i], error);
    char *text = examples ? construct_render (&self->c, self->lang, file, error, "examples", examples, "instruction",
                                              g_ptr_array_index (instructions, i), NULL)
                          : NULL;
    if (!text)
      return NULL;
    g_ptr_array_add (texts, text);
    salts[i] = self->n_requests++;
    if (!marker)
      marker = example_marker (self, example_file);
  }
  const char *stop[] = { marker && *marker ? marker : NULL, NULL };
  return construct_ask (&self->c, (char **) texts->pdata, n, salts, stop, error);
}

static void
skip (SelfInstruct *self, const char *reason)
{
  cria_context_skip (self->ctx, reason);
}

static CriaRecord *
make_record (SelfInstruct *self, const char *instruction, char *input, char *output, gboolean classification)
{
  CriaRecord *r = cria_record_new ();
  r->instruction = g_strdup (instruction);
  r->input = input;
  r->output = output;
  json_object_set_string_member (r->meta, "source", "selfinstruct");
  g_autofree char *id = g_strdup_printf ("selfinstruct-%u", ++self->produced);
  json_object_set_string_member (r->meta, "id", id);
  json_object_set_boolean_member (r->meta, "is_classification", classification);
  return r;
}

/* Classifies the kept instructions and writes an instance for each. */
static gboolean
write_instances (SelfInstruct *self, GPtrArray *kept, GError **error)
{
  guint n = kept->len;
  g_autofree gboolean *cls = g_new0 (gboolean, MAX (n, 1));
  g_autofree gboolean *ok = g_new0 (gboolean, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    ok[i] = TRUE;
  if (self->classify && n) {
    CriaGenResult *res = ask_per_instruction (self, kept, NULL, "selfinstruct-classify", error);
    if (!res)
      return FALSE;
    for (guint i = 0; i < n; i++)
      if (!rules_parse_yes_no (res[i].text, &cls[i])) {
        ok[i] = FALSE;
        skip (self, "unparsed-classification");
      }
    construct_results_free (res, n);
  }
  CriaGenResult *res = n ? ask_per_instruction (self, kept, cls, NULL, error) : NULL;
  if (n && !res)
    return FALSE;
  for (guint i = 0; i < n; i++) {
    if (!ok[i])
      continue;
    g_autofree char *marker = example_marker (self, cls[i] ? "selfinstruct-output-first-example"
                                                           : "selfinstruct-input-first-example");
    const char *markers[] = { marker, NULL };
    g_autofree char *answer = construct_cut_at (res[i].text, markers);
    char *input = NULL, *output = NULL;
    if (!rules_parse_instance (answer, cls[i], &input, &output)) {
      skip (self, "unparsed-instance");
    } else if (*input && !strcmp (input, output)) {
      g_free (input);
      g_free (output);
      skip (self, "same-input-output");
    } else {
      g_queue_push_tail (&self->ready, make_record (self, g_ptr_array_index (kept, i), input, output, cls[i]));
    }
  }
  construct_results_free (res, n);
  return TRUE;
}

static gboolean
run_round (SelfInstruct *self, GError **error)
{
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree guint64 *salts = g_new0 (guint64, self->batch);
  g_autofree guint *next = g_new0 (guint, self->batch);
  for (guint i = 0; i < self->batch; i++) {
    char *text = generate_prompt (self, &next[i], error);
    if (!text)
      return FALSE;
    g_ptr_array_add (texts, text);
    salts[i] = self->n_requests++;
  }
  CriaGenResult *res = construct_ask (&self->c, (char **) texts->pdata, self->batch, salts, NULL, error);
  if (!res)
    return FALSE;
  g_autoptr (GPtrArray) kept = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < self->batch; i++) {
    g_autoptr (GPtrArray) items = rules_parse_numbered_list (res[i].text, next[i]);
    /* An answer cut by the token limit ends with a half-written item. */
    if (items->len && !g_strcmp0 (res[i].finish_reason, "length")) {
      g_ptr_array_remove_index (items, items->len - 1);
      skip (self, "truncated");
    }
    if (!items->len)
      skip (self, "unparsed-list");
    for (guint j = 0; j < items->len; j++) {
      const char *candidate = g_ptr_array_index (items, j);
      const char *why = consider (self, candidate, kept->len);
      if (why) {
        skip (self, why);
        continue;
      }
      rules_pool_add (self->pool, candidate);
      g_ptr_array_add (self->machine, g_strdup (candidate));
      g_ptr_array_add (kept, g_strdup (candidate));
    }
  }
  construct_results_free (res, self->batch);
  guint before = g_queue_get_length (&self->ready);
  if (!write_instances (self, kept, error))
    return FALSE;
  self->idle_rounds = g_queue_get_length (&self->ready) > before ? 0 : self->idle_rounds + 1;
  return TRUE;
}

static CriaFlow
selfinstruct_next (gpointer data, CriaRecord **record, GError **error)
{
  SelfInstruct *self = data;
  while (g_queue_is_empty (&self->ready)) {
    if (self->produced >= self->count)
      return CRIA_FLOW_EOS;
    if (self->idle_rounds >= self->patience) {
      if (!self->gave_up)
        cria_context_warn (self->ctx, "stopped with %u of %u records: %u rounds in a row gave none", self->produced,
                           self->count, self->patience);
      self->gave_up = TRUE;
      return CRIA_FLOW_EOS;
    }
    if (!run_round (self, error))
      return CRIA_FLOW_ERROR;
  }
  *record = g_queue_pop_head (&self->ready);
  return CRIA_FLOW_OK;
}

static const CriaStageVTable selfinstruct_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = selfinstruct_create,
  .destroy = selfinstruct_destroy,
  .next = selfinstruct_next,
};

static const CriaProviderInfo cria_selfinstruct_info = {
  .name = "selfinstruct",
  .description = "Self-Instruct: a generator writes new instructions and instances from seed tasks, filtered",
  .example = "selfinstruct seeds=seed_tasks.jsonl count=100 generator=\"openai model=m\" ! jsonl location=out.jsonl",
  .props = selfinstruct_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_selfinstruct_register (CriaPlugin *plugin);

void
cria_selfinstruct_register (CriaPlugin *plugin)
{
  cria_plugin_add_source (plugin, &cria_selfinstruct_info, &selfinstruct_vtable);
}
