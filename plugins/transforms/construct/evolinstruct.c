/* evolinstruct: a model rewrites each instruction into harder or new ones
 * over several rounds, as Evol-Instruct (Xu et al., 2023) does.
 *
 *   cria data 'file location=alpaca.json ! evolinstruct rounds=4 generator="openai base-url=http://127.0.0.1:8080/v1 model=m" ! dedup ! jsonl location=evolved.jsonl'
 *
 * In each round every instruction of the pool is evolved once, by one of the
 * kinds drawn at random: in depth (add a constraint, deepen, concretize,
 * ask for more reasoning steps, complicate the input) or in breadth (a new
 * instruction of the same domain, rarer). The model then answers the evolved
 * instruction. The elimination rules of rules.c drop an evolution that gains
 * nothing over its parent, leaks the evolution prompt, or whose answer is an
 * apology or only punctuation and stop words; the parent then stays in the
 * pool and is evolved again in the next round. A record with an input is
 * evolved as its instruction and input together (a blank line between).
 * Holds `batch` records at a time, so that requests go out together. */
#include "config.h"

#include <string.h>

#include "construct.h"

static const char *const kinds[] = {
  "constraints", "deepen", "concretize", "reasoning", "complicate-input", "breadth"
};

static const CriaPropSpec evolinstruct_props[] = {
  CONSTRUCT_GENERATOR_PROP (CRIA_PROP_FLAG_REQUIRED, "evolves and answers"),
  { "rounds", CRIA_PROP_INT, "4", 1, 100, NULL, "rounds of evolution (M): each gives every instruction one try" },
  { "kinds", CRIA_PROP_STRING, "constraints,deepen,concretize,reasoning,complicate-input,breadth", 0, 0, NULL,
    "comma-separated evolutions drawn from, equally likely (in depth: constraints, deepen, concretize, reasoning, "
    "complicate-input; in breadth: breadth)" },
  { "lang", CRIA_PROP_ENUM, "auto", 0, 0, "auto|en|zh",
    "language of the prompts; auto: zh for instructions that hold Han characters" },
  { "max-similarity", CRIA_PROP_DOUBLE, "0.9", 0, 1, NULL,
    "an evolution whose ROUGE-L F1 to its parent reaches this gains nothing (reason no-information-gain)" },
  { "keep-original", CRIA_PROP_BOOL, "true", 0, 0, NULL, "pass each input record on before its evolutions" },
  { "batch", CRIA_PROP_INT, "16", 1, 4096, NULL, "records evolved together (their requests go out at once)" },
  CONSTRUCT_COMMON_PROPS,
  CRIA_PROP_END
};

typedef struct {
  CriaRecord *record; /* the input record */
  char *current;      /* the instruction the next round evolves */
  ConstructLang lang;
} Item;

typedef struct {
  Construct c;
  GPtrArray *kinds; /* const char* from kinds[] */
  char *lang;
  guint rounds, batch;
  double max_similarity;
  gboolean keep_original;
  RulesPool *scratch;
  GPtrArray *held; /* Item* */
} Evol;

static void
item_free (Item *it)
{
  cria_record_free (it->record);
  g_free (it->current);
  g_free (it);
}

static void
evol_destroy (gpointer data)
{
  Evol *self = data;
  construct_clear (&self->c);
  g_clear_pointer (&self->kinds, g_ptr_array_unref);
  g_clear_pointer (&self->held, g_ptr_array_unref);
  rules_pool_free (self->scratch);
  g_free (self->lang);
  g_free (self);
}

static char *
evolve_file (const char *kind)
{
  return g_strconcat ("evolve-", kind, NULL);
}

static gpointer
evol_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Evol *self = g_new0 (Evol, 1);
  self->kinds = g_ptr_array_new ();
  self->held = g_ptr_array_new_with_free_func ((GDestroyNotify) item_free);
  self->lang = g_strdup (cria_props_get_string (props, "lang"));
  self->rounds = (guint) cria_props_get_int (props, "rounds");
  self->batch = (guint) cria_props_get_int (props, "batch");
  self->max_similarity = cria_props_get_double (props, "max-similarity");
  self->keep_original = cria_props_get_bool (props, "keep-original");
  g_auto (GStrv) names = g_strsplit (cria_props_get_string (props, "kinds"), ",", -1);
  for (char **n = names; *n; n++) {
    g_strstrip (*n);
    guint i = 0;
    while (i < G_N_ELEMENTS (kinds) && strcmp (kinds[i], *n))
      i++;
    if (i == G_N_ELEMENTS (kinds)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "kinds: '%s' is not one of constraints, deepen, concretize, reasoning, complicate-input, breadth",
                   *n);
      evol_destroy (self);
      return NULL;
    }
    g_ptr_array_add (self->kinds, (gpointer) kinds[i]);
  }
  if (!self->kinds->len) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "kinds: none given");
    evol_destroy (self);
    return NULL;
  }
  if (!construct_init (&self->c, props, ctx, error) ||
      !(self->scratch = rules_pool_new (cria_context_get_registry (ctx), error))) {
    evol_destroy (self);
    return NULL;
  }
  /* The prompt files of the languages it may use are read now, before any request. */
  for (ConstructLang l = 0; l < CONSTRUCT_N_LANGS; l++) {
    if (strcmp (self->lang, "auto") && strcmp (self->lang, construct_lang_name (l)))
      continue;
    for (guint i = 0; i < self->kinds->len; i++) {
      g_autofree char *file = evolve_file (g_ptr_array_index (self->kinds, i));
      if (!construct_prompt (&self->c, l, file, error)) {
        evol_destroy (self);
        return NULL;
      }
    }
  }
  return self;
}

/* What gets evolved: the instruction, and the input after a blank line. */
static char *
prompt_of (const CriaRecord *r)
{
  if (r->input && *r->input)
    return g_strconcat (r->instruction, "\n\n", r->input, NULL);
  return g_strdup (r->instruction);
}

static CriaRecord *
evolved_record (Item *it, const char *instruction, const char *response, const char *kind, guint round)
{
  CriaRecord *r = cria_record_new ();
  r->instruction = g_strdup (instruction);
  r->input = g_strdup ("");
  r->output = g_strdup (response);
  if (it->record->system)
    r->system = g_strdup (it->record->system);
  json_object_set_string_member (r->meta, "source", "evolinstruct");
  json_object_set_string_member (r->meta, "evolution", kind);
  json_object_set_int_member (r->meta, "round", round);
  const char *parent = cria_record_get_field (it->record, "id");
  if (parent)
    json_object_set_string_member (r->meta, "parent", parent);
  return r;
}

/* One round over the held items: evolve, answer, eliminate, emit. */
static gboolean
evolve_round (Evol *self, guint round, CriaEmitter *out, GError **error)
{
  guint n = self->held->len;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree guint64 *salts = g_new0 (guint64, MAX (n, 1));
  g_autofree const char **kind = g_new0 (const char *, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    Item *it = g_ptr_array_index (self->held, i);
    g_autofree char *original = prompt_of (it->record);
    CriaRng rng;
    construct_rng_for (&self->c, &rng, original, round);
    kind[i] = g_ptr_array_index (self->kinds, cria_rng_below (&rng, self->kinds->len));
    g_autofree char *file = evolve_file (kind[i]);
    char *text = construct_render (&self->c, it->lang, file, error, "instruction", it->current, NULL);
    if (!text)
      return FALSE;
    g_ptr_array_add (texts, text);
    salts[i] = cria_rng_next (&rng);
  }
  CriaGenResult *evolved = construct_ask (&self->c, (char **) texts->pdata, n, salts, NULL, error);
  if (!evolved)
    return FALSE;
  /* Only evolutions with some text are answered. */
  g_autoptr (GPtrArray) questions = g_ptr_array_new ();
  g_autofree guint *asked = g_new0 (guint, MAX (n, 1));
  g_autofree guint64 *answer_salts = g_new0 (guint64, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    g_strstrip (evolved[i].text);
    asked[i] = G_MAXUINT;
    if (*evolved[i].text) {
      answer_salts[questions->len] = salts[i] + 1;
      asked[i] = questions->len;
      g_ptr_array_add (questions, evolved[i].text);
    }
  }
  CriaGenResult *answers = NULL;
  if (questions->len &&
      !(answers = construct_ask (&self->c, (char **) questions->pdata, questions->len, answer_salts, NULL, error))) {
    construct_results_free (evolved, n);
    return FALSE;
  }
  gboolean ok = TRUE;
  for (guint i = 0; i < n && ok; i++) {
    Item *it = g_ptr_array_index (self->held, i);
    const char *response = asked[i] == G_MAXUINT ? "" : answers[asked[i]].text;
    const char *why = rules_check_evolution (self->scratch, it->current, evolved[i].text, response,
                                             self->max_similarity);
    if (why) {
      cria_emit_skip (out, why);
      continue;
    }
    ok = cria_emit (out, evolved_record (it, evolved[i].text, response, kind[i], round), error);
    g_free (it->current);
    it->current = g_strdup (evolved[i].text);
  }
  construct_results_free (answers, questions->len);
  construct_results_free (evolved, n);
  return ok;
}

static gboolean
flush (Evol *self, CriaEmitter *out, GError **error)
{
  for (guint round = 1; round <= self->rounds && self->held->len; round++)
    if (!evolve_round (self, round, out, error))
      return FALSE;
  g_ptr_array_set_size (self->held, 0);
  return TRUE;
}

static gboolean
evol_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Evol *self = data;
  /* Conversations and records without an instruction have nothing to evolve. */
  if (record->messages || !record->instruction || !*record->instruction)
    return cria_emit (out, record, error);
  Item *it = g_new0 (Item, 1);
  it->current = prompt_of (record);
  it->lang = construct_lang_of (self->lang, it->current);
  it->record = record;
  if (self->keep_original && !cria_emit (out, cria_record_copy (record), error)) {
    item_free (it);
    return FALSE;
  }
  g_ptr_array_add (self->held, it);
  return self->held->len < self->batch || flush (self, out, error);
}

static gboolean
evol_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Evol *self = data;
  self->c.finishing = TRUE;
  return flush (self, out, error);
}

static const CriaStageVTable evolinstruct_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = evol_create,
  .destroy = evol_destroy,
  .push = evol_push,
  .finish = evol_finish,
};

static const CriaProviderInfo cria_evolinstruct_info = {
  .name = "evolinstruct",
  .description = "Evol-Instruct: a generator evolves instructions in depth and breadth over rounds, then answers them",
  .example = "file location=seed.jsonl ! evolinstruct rounds=2 generator=\"openai model=m\" ! jsonl location=out.jsonl",
  .props = evolinstruct_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_evolinstruct_register (CriaPlugin *plugin);

void
cria_evolinstruct_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_evolinstruct_info, &evolinstruct_vtable);
}
