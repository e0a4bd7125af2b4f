/* variants.c: more instructions per record without a model: rule-based
 * variants, and rendering through several instruction templates.
 *
 *   cria data 'file location=seed.jsonl ! variants n=3 ! dedup ! alpaca location=out.json'
 *   cria data 'squad location=dev.json ! templates file=templates/qa.en.json mode=random ! jsonl location=out.jsonl'
 *
 * variants reads its rules from share/variants/LANG.json (cria-variants(5)
 * in cria-record(5)): paraphrase templates per task type found by keywords,
 * synonym groups, prefixes and sentence-final punctuation. Each record gives
 * n records whose instructions all differ (the first is the original unless
 * keep-original=false), drawn from a generator seeded by the pipeline seed
 * and the instruction, so the output does not depend on record order. */
#include "config.h"

#include <string.h>

#include "curate.h"

static const CriaPropSpec variants_props[] = {
  { "n", CRIA_PROP_INT, "3", 1, 100, NULL, "records (distinct instructions) per input record" },
  { "lang", CRIA_PROP_ENUM, "auto", 0, 0, "auto|en|zh",
    "rule set; auto: zh when the instruction holds Han characters, else en" },
  { "rules", CRIA_PROP_STRING, NULL, 0, 0, NULL, "a rules file to use instead of share/variants/LANG.json" },
  { "keep-original", CRIA_PROP_BOOL, "true", 0, 0, NULL, "the first of the n records keeps the original instruction" },
  SEED_PROP,
  CRIA_PROP_END
};

typedef struct {
  JsonObject *rules[2]; /* en, zh */
  int lang;             /* -1: auto */
  gint64 n;
  gboolean keep;
  guint64 seed;
} Variants;

static JsonObject *
load_rules (const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON object of rules", path);
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

static void
variants_destroy (gpointer data)
{
  Variants *self = data;
  for (guint i = 0; i < 2; i++)
    if (self->rules[i])
      json_object_unref (self->rules[i]);
  g_free (self);
}

static gpointer
variants_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  static const char *const langs[] = { "en", "zh" };
  Variants *self = g_new0 (Variants, 1);
  const char *lang = cria_props_get_string (props, "lang");
  self->lang = !strcmp (lang, "en") ? 0 : !strcmp (lang, "zh") ? 1 : -1;
  self->n = cria_props_get_int (props, "n");
  self->keep = cria_props_get_bool (props, "keep-original");
  self->seed = curate_seed (props, ctx);
  for (guint i = 0; i < 2; i++) {
    if (self->lang >= 0 && self->lang != (int) i)
      continue;
    g_autofree char *name = g_strdup_printf ("variants/%s.json", langs[i]);
    g_autofree char *path = cria_props_get_string (props, "rules") ? g_strdup (cria_props_get_string (props, "rules"))
                                                                   : cria_find_data_file (name);
    if (!(self->rules[i] = load_rules (path, error))) {
      variants_destroy (self);
      return NULL;
    }
  }
  return self;
}

static JsonArray *
rule_array (JsonObject *rules, const char *name)
{
  JsonNode *n = json_object_get_member (rules, name);
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static const char *
pick (CriaRng *rng, JsonArray *a)
{
  guint n = a ? json_array_get_length (a) : 0;
  return n ? json_array_get_string_element (a, (guint) cria_rng_below (rng, n)) : NULL;
}

/* The task the instruction is about, by the first keyword list it matches. */
static const char *
detect_task (JsonObject *rules, const char *folded)
{
  JsonNode *kn = json_object_get_member (rules, "task_keywords");
  if (!kn || !JSON_NODE_HOLDS_OBJECT (kn))
    return NULL;
  JsonObject *kw = json_node_get_object (kn);
  JsonObjectIter it;
  const char *task;
  JsonNode *words;
  json_object_iter_init_ordered (&it, kw);
  while (json_object_iter_next_ordered (&it, &task, &words)) {
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (words) ? json_node_get_array (words) : NULL;
    for (guint i = 0; a && i < json_array_get_length (a); i++)
      if (strstr (folded, json_array_get_string_element (a, i)))
        return task;
  }
  return NULL;
}

typedef struct {
  const char *instruction;
  char *lcfirst;
} VariantLookup;

static const char *
variant_lookup (const char *name, gpointer data)
{
  VariantLookup *l = data;
  return !strcmp (name, "instruction") ? l->instruction : !strcmp (name, "lcfirst") ? l->lcfirst : NULL;
}

/* Replaces one word of a synonym group found in the text by another member. */
static char *
substitute (CriaRng *rng, JsonArray *groups, const char *text, gboolean words_have_spaces)
{
  guint ng = groups ? json_array_get_length (groups) : 0;
  for (guint tries = 0; tries < ng; tries++) {
    JsonArray *g = json_array_get_array_element (groups, (guint) cria_rng_below (rng, ng));
    guint n = g ? json_array_get_length (g) : 0;
    for (guint i = 0; i < n; i++) {
      const char *w = json_array_get_string_element (g, i);
      const char *at = strstr (text, w);
      gsize wl = strlen (w);
      /* English words match whole; Chinese has no spaces to look for. */
      if (at && words_have_spaces && ((at > text && g_ascii_isalpha (at[-1])) || g_ascii_isalpha (at[wl])))
        at = NULL;
      if (!at)
        continue;
      const char *other = json_array_get_string_element (g, (i + 1 + (guint) cria_rng_below (rng, n - 1)) % n);
      return g_strdup_printf ("%.*s%s%s", (int) (at - text), text, other, at + wl);
    }
  }
  return g_strdup (text);
}

static char *
make_variant (Variants *self, JsonObject *rules, CriaRng *rng, const char *instruction, gboolean en)
{
  g_autofree char *folded = g_utf8_casefold (instruction, -1);
  const char *task = detect_task (rules, folded);
  JsonNode *pn = json_object_get_member (rules, "paraphrases");
  JsonObject *para = pn && JSON_NODE_HOLDS_OBJECT (pn) ? json_node_get_object (pn) : NULL;
  JsonArray *templates = para && task && json_object_has_member (para, task) ? json_object_get_array_member (para, task)
                                                                             : NULL;
  if (!templates && para && json_object_has_member (para, "default"))
    templates = json_object_get_array_member (para, "default");
  /* Strip the final punctuation so templates and endings can choose their own. */
  g_autofree char *body = g_strdup (instruction);
  JsonArray *ends = rule_array (rules, "endings");
  for (guint i = 0; ends && i < json_array_get_length (ends); i++) {
    const char *e = json_array_get_string_element (ends, i);
    if (*e && g_str_has_suffix (body, e)) {
      body[strlen (body) - strlen (e)] = '\0';
      break;
    }
  }
  char *text = substitute (rng, rule_array (rules, "synonyms"), body, en);
  VariantLookup l = { text, NULL };
  l.lcfirst = g_strdup (text);
  /* "Explain X" reads "Please explain X"; acronyms ("AI ...") keep their case. */
  if (en && g_ascii_isupper (text[0]) && !g_ascii_isupper (text[1]))
    l.lcfirst[0] = g_ascii_tolower (text[0]);
  const char *tmpl = pick (rng, templates);
  /* "Please {lcfirst}" on "Please explain..." would say it twice. */
  const char *slot = tmpl ? strchr (tmpl, '{') : NULL;
  if (slot && slot > tmpl && !strncmp (tmpl, text, slot - tmpl))
    tmpl = NULL;
  char *rendered = tmpl ? cria_template_render (tmpl, variant_lookup, &l, NULL) : NULL;
  if (rendered) {
    g_free (text);
    text = rendered;
  }
  g_free (l.lcfirst);
  /* A question keeps its question mark; anything else may change its ending. */
  const char *end = g_str_has_suffix (text, "?") || g_str_has_suffix (text, "？") ? NULL : pick (rng, ends);
  char *out = g_strconcat (text, end ? end : "", NULL);
  g_free (text);
  return out;
}

static gboolean
has_han (const char *s)
{
  for (const char *p = s; *p; p = g_utf8_next_char (p))
    if (g_unichar_get_script (g_utf8_get_char (p)) == G_UNICODE_SCRIPT_HAN)
      return TRUE;
  return FALSE;
}

static gboolean
variants_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Variants *self = data;
  g_autoptr (CriaRecord) r = record;
  if (!r->instruction || !*r->instruction) {
    cria_emit_skip (out, "no-instruction");
    return TRUE;
  }
  int lang = self->lang >= 0 ? self->lang : has_han (r->instruction);
  gboolean en = lang == 0;
  CriaRng rng;
  cria_rng_init (&rng, self->seed ^ cria_hash64 (r->instruction, strlen (r->instruction), 0));
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) distinct = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (distinct, r->instruction);
  if (self->keep)
    g_ptr_array_add (seen, g_strdup (r->instruction));
  for (guint tries = 0; (gint64) seen->len < self->n && tries < 64 * self->n; tries++) {
    char *v = make_variant (self, self->rules[lang], &rng, r->instruction, en);
    if (g_hash_table_contains (distinct, v)) {
      g_free (v);
      continue;
    }
    g_hash_table_add (distinct, v);
    g_ptr_array_add (seen, v);
  }
  for (guint i = 0; i < seen->len; i++) {
    CriaRecord *c = cria_record_copy (r);
    g_free (c->instruction);
    c->instruction = g_strdup (g_ptr_array_index (seen, i));
    json_object_set_int_member (c->meta, "variant", i);
    if (!cria_emit (out, c, error))
      return FALSE;
  }
  /* The rules could not make n different instructions: said, not hidden. */
  if ((gint64) seen->len < self->n)
    cria_emit_skip (out, "fewer-variants");
  return TRUE;
}

/* ---- templates --------------------------------------------------------------- */

static const CriaPropSpec templates_props[] = {
  { "file", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "a JSON array of instruction templates over {instruction}, {input}, {output} and metadata",
    CRIA_PROP_FLAG_REQUIRED },
  { "mode", CRIA_PROP_ENUM, "all", 0, 0, "all|random",
    "all: one record per template; random: one seeded choice per record" },
  SEED_PROP,
  CRIA_PROP_END
};

typedef struct {
  JsonArray *templates;
  gboolean all;
  CriaRng rng;
} Templates;

static void
templates_destroy (gpointer data)
{
  Templates *self = data;
  if (self->templates)
    json_array_unref (self->templates);
  g_free (self);
}

static gpointer
templates_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  g_autofree char *path = cria_find_data_file (cria_props_get_string (props, "file"));
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (root) ? json_node_get_array (root) : NULL;
  for (guint i = 0; a && i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
      a = NULL;
  }
  if (!a || !json_array_get_length (a)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a non-empty JSON array of template strings", path);
    return NULL;
  }
  Templates *self = g_new0 (Templates, 1);
  self->templates = json_array_ref (a);
  self->all = !strcmp (cria_props_get_string (props, "mode"), "all");
  cria_rng_init (&self->rng, curate_seed (props, ctx));
  return self;
}

static gboolean
templates_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Templates *self = data;
  g_autoptr (CriaRecord) r = record;
  guint n = json_array_get_length (self->templates);
  guint first = self->all ? 0 : (guint) cria_rng_below (&self->rng, n), last = self->all ? n : first + 1;
  for (guint i = first; i < last; i++) {
    char *text = cria_template_render_record (json_array_get_string_element (self->templates, i), r, error);
    if (!text)
      return FALSE;
    CriaRecord *c = cria_record_copy (r);
    g_free (c->instruction);
    c->instruction = text;
    json_object_set_int_member (c->meta, "template", i);
    if (!cria_emit (out, c, error))
      return FALSE;
  }
  return TRUE;
}

static const CriaStageVTable variants_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = variants_create,
  .destroy = variants_destroy,
  .push = variants_push,
};
static const CriaStageVTable templates_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = templates_create,
  .destroy = templates_destroy,
  .push = templates_push,
};

static const CriaProviderInfo variants_info = {
  .name = "variants",
  .description = "Makes n rule-based instruction variants per record (paraphrases, synonyms, prefixes, punctuation)",
  .example = "file location=seed.jsonl ! variants n=3 ! jsonl location=out.jsonl",
  .props = variants_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo templates_info = {
  .name = "templates",
  .description = "Renders each record through several instruction templates",
  .example = "file location=in.jsonl ! templates file=templates/rewrite.en.json ! jsonl location=out.jsonl",
  .props = templates_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_variants_register (CriaPlugin *plugin);

void
cria_variants_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &variants_info, &variants_vtable);
  cria_plugin_add_transform (plugin, &templates_info, &templates_vtable);
}
