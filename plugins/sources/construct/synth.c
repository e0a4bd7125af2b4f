/* synth: records synthesized from a knowledge base of facts through
 * templates, optionally put into fluent words by a generator.
 *
 *   cria data 'synth facts=capitals.csv templates=capitals.json generator="openai model=m" ! jsonl location=qa.jsonl'
 *
 * The facts are rows of a JSON lines, JSON array or CSV file (one fact a row,
 * its fields by name). The templates file is {"templates": [{"name",
 * "instruction", "input", "output", "system"}, ...]}, each field a template
 * over the fact's fields ({country}). Every fact yields one record per
 * template whose fields it has; a fact that fits no template is counted
 * (reason no-template). With a generator, the templated output is a draft
 * that the generator rewrites (prompt synth-verbalize) given the question and
 * the facts used; the draft is kept as metadata. Streams the facts. */
#include "config.h"

#include <string.h>

#include "construct.h"

static const CriaPropSpec synth_props[] = {
  { "facts", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the knowledge base: JSON lines, a JSON array or CSV, one fact a row",
    CRIA_PROP_FLAG_REQUIRED },
  { "templates", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "a JSON file {\"templates\": [{name, instruction, input, output, system}]} over the facts' fields",
    CRIA_PROP_FLAG_REQUIRED },
  CONSTRUCT_GENERATOR_PROP (CRIA_PROP_FLAG_NONE,
                            "rewrites the templated outputs in fluent words (none: the templates are the records)"),
  { "lang", CRIA_PROP_ENUM, "auto", 0, 0, "auto|en|zh",
    "language of the verbalizing prompt; auto: zh for questions that hold Han characters" },
  CONSTRUCT_COMMON_PROPS,
  CRIA_PROP_END
};

static const char *const fields[] = { "instruction", "input", "output", "system" };

typedef struct {
  char *name;
  char *text[G_N_ELEMENTS (fields)]; /* NULL when the template has no such field */
} Template;

typedef struct {
  Construct c;
  CriaContext *ctx;
  CriaRows *rows;
  GPtrArray *templates; /* Template* */
  char *lang;
  GQueue ready; /* CriaRecord* */
} Synth;

static void
template_free (Template *t)
{
  g_free (t->name);
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    g_free (t->text[i]);
  g_free (t);
}

static void
synth_destroy (gpointer data)
{
  Synth *self = data;
  construct_clear (&self->c);
  cria_rows_free (self->rows);
  g_clear_pointer (&self->templates, g_ptr_array_unref);
  g_queue_clear_full (&self->ready, (GDestroyNotify) cria_record_free);
  g_free (self->lang);
  g_free (self);
}

static gboolean
load_templates (Synth *self, const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return FALSE;
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *tn = o ? json_object_get_member (o, "templates") : NULL;
  JsonArray *a = tn && JSON_NODE_HOLDS_ARRAY (tn) ? json_node_get_array (tn) : NULL;
  if (!a || !json_array_get_length (a)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected an object with a non-empty 'templates' array",
                 path);
    return FALSE;
  }
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *n = json_array_get_element (a, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
    g_autofree char *where = g_strdup_printf ("%s: templates[%u]", path, i);
    if (!t) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected an object", where);
      return FALSE;
    }
    Template *tp = g_new0 (Template, 1);
    g_ptr_array_add (self->templates, tp);
    if (!cria_rows_get_text (t, "name", where, &tp->name, error))
      return FALSE;
    for (guint f = 0; f < G_N_ELEMENTS (fields); f++)
      if (!cria_rows_get_text (t, fields[f], where, &tp->text[f], error))
        return FALSE;
    if (!tp->text[0] || !tp->text[2]) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field '%s': missing", where,
                   tp->text[0] ? "output" : "instruction");
      return FALSE;
    }
    if (!tp->name)
      tp->name = g_strdup_printf ("%u", i);
  }
  return TRUE;
}

static gpointer
synth_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Synth *self = g_new0 (Synth, 1);
  self->ctx = ctx;
  self->templates = g_ptr_array_new_with_free_func ((GDestroyNotify) template_free);
  self->lang = g_strdup (cria_props_get_string (props, "lang"));
  g_queue_init (&self->ready);
  if (!construct_init (&self->c, props, ctx, error) ||
      !load_templates (self, cria_props_get_string (props, "templates"), error) ||
      !(self->rows = cria_rows_open (cria_props_get_string (props, "facts"), "auto", error)) ||
      (self->c.gen && !construct_prompt (&self->c, construct_lang_of (self->lang, ""), "synth-verbalize", error))) {
    synth_destroy (self);
    return NULL;
  }
  return self;
}

typedef struct {
  JsonObject *row;
  const char *where;
  GPtrArray *used;  /* field names, "name" then value text, in order of use */
  GPtrArray *owned; /* texts handed out */
} Fact;

static const char *
fact_lookup (const char *name, gpointer data)
{
  Fact *f = data;
  char *value = NULL;
  /* A field of the wrong kind (an object), or an empty one (a CSV cell), counts as one the fact lacks. */
  if (!cria_rows_get_text (f->row, name, f->where, &value, NULL) || !value || !*value) {
    g_free (value);
    return NULL;
  }
  g_ptr_array_add (f->owned, value);
  gboolean seen = FALSE;
  for (guint i = 0; i < f->used->len; i += 2)
    seen |= !strcmp (g_ptr_array_index (f->used, i), name);
  if (!seen) {
    g_ptr_array_add (f->used, g_strdup (name));
    g_ptr_array_add (f->used, g_strdup (value));
  }
  return value;
}

/* The record of one fact through one template, or NULL when the fact lacks a field it needs. */
static CriaRecord *
apply (Synth *self, Template *t, Fact *fact)
{
  g_autoptr (CriaRecord) r = cria_record_new ();
  for (guint f = 0; f < G_N_ELEMENTS (fields); f++) {
    if (!t->text[f])
      continue;
    g_autofree char *text = cria_template_render (t->text[f], fact_lookup, fact, NULL);
    if (!text)
      return NULL;
    cria_record_set_field (r, fields[f], text);
  }
  json_object_set_string_member (r->meta, "source", "synth");
  json_object_set_string_member (r->meta, "template", t->name);
  return g_steal_pointer (&r);
}

/* "name: value" lines of the facts a record was made from. */
static char *
facts_text (GPtrArray *used)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i + 1 < used->len; i += 2)
    g_string_append_printf (s, "%s%s: %s", i ? "\n" : "", (char *) g_ptr_array_index (used, i),
                            (char *) g_ptr_array_index (used, i + 1));
  return g_string_free (s, FALSE);
}

static gboolean
verbalize (Synth *self, GPtrArray *records, GPtrArray *facts, GError **error)
{
  guint n = records->len;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree guint64 *salts = g_new0 (guint64, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    CriaRecord *r = g_ptr_array_index (records, i);
    g_autofree char *question = r->input && *r->input ? g_strconcat (r->instruction, "\n\n", r->input, NULL)
                                                      : g_strdup (r->instruction);
    char *text = construct_render (&self->c, construct_lang_of (self->lang, question), "synth-verbalize", error,
                                   "question", question, "facts", g_ptr_array_index (facts, i), "draft", r->output,
                                   NULL);
    if (!text)
      return FALSE;
    g_ptr_array_add (texts, text);
  }
  CriaGenResult *res = construct_ask (&self->c, (char **) texts->pdata, n, salts, NULL, error);
  if (!res)
    return FALSE;
  for (guint i = 0; i < n; i++) {
    CriaRecord *r = g_ptr_array_index (records, i);
    g_strstrip (res[i].text);
    if (!*res[i].text) {
      cria_context_skip (self->ctx, "empty-answer");
      continue;
    }
    json_object_set_string_member (r->meta, "draft", r->output);
    g_free (r->output);
    r->output = g_strdup (res[i].text);
    g_queue_push_tail (&self->ready, cria_record_copy (r));
  }
  construct_results_free (res, n);
  return TRUE;
}

static CriaFlow
synth_next (gpointer data, CriaRecord **record, GError **error)
{
  Synth *self = data;
  while (g_queue_is_empty (&self->ready)) {
    g_autoptr (JsonObject) row = NULL;
    CriaFlow flow = cria_rows_next (self->rows, &row, error);
    if (flow != CRIA_FLOW_OK)
      return flow;
    g_autoptr (GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
    g_autoptr (GPtrArray) facts = g_ptr_array_new_with_free_func (g_free);
    for (guint i = 0; i < self->templates->len; i++) {
      g_autoptr (GPtrArray) used = g_ptr_array_new_with_free_func (g_free);
      g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
      Fact fact = { row, cria_rows_where (self->rows), used, owned };
      CriaRecord *r = apply (self, g_ptr_array_index (self->templates, i), &fact);
      if (!r)
        continue;
      g_ptr_array_add (made, r);
      g_ptr_array_add (facts, facts_text (used));
    }
    if (!made->len)
      cria_context_skip (self->ctx, "no-template");
    if (self->c.gen && made->len) {
      if (!verbalize (self, made, facts, error))
        return CRIA_FLOW_ERROR;
      continue;
    }
    for (guint i = 0; i < made->len; i++)
      g_queue_push_tail (&self->ready, g_steal_pointer (&made->pdata[i]));
  }
  *record = g_queue_pop_head (&self->ready);
  return CRIA_FLOW_OK;
}

static const CriaStageVTable synth_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = synth_create,
  .destroy = synth_destroy,
  .next = synth_next,
};

static const CriaProviderInfo cria_synth_info = {
  .name = "synth",
  .description = "Synthesizes records from a knowledge base of facts through templates, optionally verbalized",
  .example = "synth facts=capitals.csv templates=capitals.json ! jsonl location=qa.jsonl",
  .props = synth_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_synth_register (CriaPlugin *plugin);

void
cria_synth_register (CriaPlugin *plugin)
{
  cria_plugin_add_source (plugin, &cria_synth_info, &synth_vtable);
}
