/* fill: fills the {slots} of template records, from lists or by a
 * generator, then has the generator answer them.
 *
 *   cria data 'file location=templates.jsonl ! fill slots=slots.json n=3 generator="openai model=m" ! jsonl location=filled.jsonl'
 *
 * Each record's instruction, input and system (fields=) are templates: a
 * `{name}` is replaced by the record's own metadata string of that name, else
 * by a value drawn (seeded) from the list of that name in the slots file
 * ({"city": ["Paris", "Lima"], ...}), else by a value the generator writes
 * for it (prompt fill-slot). A slot takes one value per record, wherever it
 * appears. The generator then writes the output (prompt fill-answer) of
 * records that have none (answer=missing), of all (always) or of none
 * (never). n draws are made of each record. Streams. */
#include "config.h"

#include <string.h>

#include "construct.h"

static const CriaPropSpec fill_props[] = {
  CONSTRUCT_GENERATOR_PROP (CRIA_PROP_FLAG_NONE, "writes slot values without a list and the answers"),
  { "slots", CRIA_PROP_STRING, NULL, 0, 0, NULL, "a JSON file of slot value lists: {\"slot\": [\"value\", ...], ...}" },
  { "fields", CRIA_PROP_STRING, "instruction,input,system", 0, 0, NULL,
    "comma-separated fields that are templates (of instruction, input, output, system)" },
  { "answer", CRIA_PROP_ENUM, "missing", 0, 0, "missing|always|never",
    "which records the generator answers: those without an output, all, or none" },
  { "n", CRIA_PROP_INT, "1", 1, 10000, NULL, "records made from each template, each with its own draw of slot values" },
  { "lang", CRIA_PROP_ENUM, "auto", 0, 0, "auto|en|zh",
    "language of the prompts; auto: zh for templates that hold Han characters" },
  CONSTRUCT_COMMON_PROPS,
  CRIA_PROP_END
};

typedef struct {
  Construct c;
  JsonObject *slots; /* may be NULL */
  char **fields;
  char *answer;
  char *lang;
  guint n;
  guint64 position;
} Fill;

static void
fill_destroy (gpointer data)
{
  Fill *self = data;
  construct_clear (&self->c);
  if (self->slots)
    json_object_unref (self->slots);
  g_strfreev (self->fields);
  g_free (self->answer);
  g_free (self->lang);
  g_free (self);
}

static gboolean
load_slots (Fill *self, const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected an object of slot value lists", path);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (root);
  g_autoptr (GList) names = json_object_get_members (o);
  for (GList *l = names; l; l = l->next) {
    JsonNode *v = json_object_get_member (o, l->data);
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (v) ? json_node_get_array (v) : NULL;
    gboolean good = a && json_array_get_length (a);
    for (guint i = 0; good && i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      good = JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING;
    }
    if (!good) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: slot '%s': expected a non-empty array of strings", path,
                   (char *) l->data);
      return FALSE;
    }
  }
  self->slots = json_object_ref (o);
  return TRUE;
}

static gpointer
fill_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Fill *self = g_new0 (Fill, 1);
  self->fields = g_strsplit (cria_props_get_string (props, "fields"), ",", -1);
  for (char **f = self->fields; *f; f++) {
    static const char *const known[] = { "instruction", "input", "output", "system", NULL };
    if (!g_strv_contains (known, g_strstrip (*f))) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "fields: '%s' is not one of instruction, input, output, system", *f);
      fill_destroy (self);
      return NULL;
    }
  }
  self->answer = g_strdup (cria_props_get_string (props, "answer"));
  self->lang = g_strdup (cria_props_get_string (props, "lang"));
  self->n = (guint) cria_props_get_int (props, "n");
  const char *slots = cria_props_get_string (props, "slots");
  if (!construct_init (&self->c, props, ctx, error) || (slots && !load_slots (self, slots, error))) {
    fill_destroy (self);
    return NULL;
  }
  if (!self->c.gen && strcmp (self->answer, "never")) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "answering needs a generator: give generator= or answer=never");
    fill_destroy (self);
    return NULL;
  }
  return self;
}

typedef struct {
  Fill *self;
  const CriaRecord *record;
  const char *tmpl; /* the whole template, for the slot prompt */
  ConstructLang lang;
  CriaRng rng;
  guint64 salt;
  GHashTable *values; /* slot -> value, this draw */
  GError *error;
} Draw;

/* Drops a final full stop and quotes around the value, which models add. */
static void
tidy_value (char *value)
{
  for (int pass = 0; pass < 2; pass++) {
    gsize len = strlen (value);
    if (g_str_has_suffix (value, "."))
      value[len - 1] = '\0';
    else if (g_str_has_suffix (value, "。"))
      value[len - 3] = '\0';
    len = strlen (value);
    if (len >= 2 && strchr ("\"'", value[0]) && value[len - 1] == value[0]) {
      memmove (value, value + 1, len - 2);
      value[len - 2] = '\0';
    }
  }
}

/* A slot's value: the record's own, the list's, or the generator's. */
static const char *
draw_lookup (const char *name, gpointer data)
{
  Draw *d = data;
  const char *v = g_hash_table_lookup (d->values, name);
  if (v || d->error)
    return v;
  JsonNode *own = json_object_get_member (d->record->meta, name);
  JsonArray *list = d->self->slots && json_object_has_member (d->self->slots, name)
                        ? json_object_get_array_member (d->self->slots, name)
                        : NULL;
  char *value = NULL;
  if (own && JSON_NODE_HOLDS_VALUE (own) && json_node_get_value_type (own) == G_TYPE_STRING) {
    value = g_strdup (json_node_get_string (own));
  } else if (list) {
    value = g_strdup (
        json_array_get_string_element (list, (guint) cria_rng_below (&d->rng, json_array_get_length (list))));
  } else if (d->self->c.gen) {
    char *prompt = construct_render (&d->self->c, d->lang, "fill-slot", &d->error, "slot", name, "template", d->tmpl,
                                     NULL);
    if (!prompt)
      return NULL;
    guint64 salt = d->salt + g_hash_table_size (d->values);
    CriaGenResult *res = construct_ask (&d->self->c, &prompt, 1, &salt, NULL, &d->error);
    g_free (prompt);
    if (!res)
      return NULL;
    /* The first line is the value. */
    g_auto (GStrv) lines = g_strsplit (g_strstrip (res[0].text), "\n", 2);
    value = g_strstrip (g_strdup (lines[0] ? lines[0] : ""));
    construct_results_free (res, 1);
    tidy_value (value);
    if (!*value) {
      g_free (value);
      g_set_error (&d->error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                   "the generator wrote no value for slot '%s'", name);
      return NULL;
    }
  } else {
    g_set_error (&d->error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                 "slot '%s' has no value: not in the record, not in slots=, and no generator", name);
    return NULL;
  }
  g_hash_table_insert (d->values, g_strdup (name), value);
  return value;
}

static CriaRecord *
fill_one (Fill *self, const CriaRecord *record, guint draw, GError **error)
{
  g_autoptr (GString) all = g_string_new (NULL);
  for (char **f = self->fields; *f; f++) {
    const char *t = cria_record_get_field (record, *f);
    if (t)
      g_string_append_printf (all, "%s%s", all->len ? "\n" : "", t);
  }
  g_autoptr (GHashTable) values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  Draw d = { self, record, all->str, construct_lang_of (self->lang, all->str) };
  d.values = values;
  construct_rng_for (&self->c, &d.rng, all->str, draw);
  d.salt = cria_rng_next (&d.rng);
  g_autoptr (CriaRecord) r = cria_record_copy (record);
  for (char **f = self->fields; *f; f++) {
    const char *t = cria_record_get_field (record, *f);
    if (!t)
      continue;
    g_autoptr (GError) terr = NULL;
    g_autofree char *text = cria_template_render (t, draw_lookup, &d, &terr);
    if (!text) {
      g_propagate_error (error, d.error ? d.error : g_steal_pointer (&terr));
      return NULL;
    }
    cria_record_set_field (r, *f, text);
  }
  if (g_hash_table_size (values)) {
    JsonObject *o = json_object_new ();
    g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (values), (GCompareFunc) strcmp);
    for (GList *l = keys; l; l = l->next)
      json_object_set_string_member (o, l->data, g_hash_table_lookup (values, l->data));
    json_object_set_object_member (r->meta, "slots", o);
  }
  if (!strcmp (self->answer, "always") || (!strcmp (self->answer, "missing") && !r->output)) {
    g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
    const CriaMessage *user = NULL;
    for (guint i = 0; i < turns->len; i++) {
      const CriaMessage *m = g_ptr_array_index (turns, i);
      if (!strcmp (m->role, "user"))
        user = m;
    }
    g_autofree char *prompt = construct_render (&self->c, d.lang, "fill-answer", error, "request",
                                                user ? user->content : "", NULL);
    guint64 salt = d.salt + 1000;
    CriaGenResult *res = prompt ? construct_ask (&self->c, &prompt, 1, &salt, NULL, error) : NULL;
    if (!res)
      return NULL;
    g_free (r->output);
    r->output = g_strdup (g_strstrip (res[0].text));
    construct_results_free (res, 1);
  }
  return g_steal_pointer (&r);
}

static gboolean
fill_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Fill *self = data;
  g_autoptr (CriaRecord) owned = record;
  self->position++;
  for (guint i = 0; i < self->n; i++) {
    CriaRecord *r = fill_one (self, record, i, error);
    if (!r) {
      g_autofree char *name = g_strdup (cria_record_get_field (record, "id"));
      if (!name)
        name = g_strdup_printf ("%" G_GUINT64_FORMAT, self->position);
      g_prefix_error (error, "record %s: ", name);
      return FALSE;
    }
    if (r->output && !*r->output) {
      cria_record_free (r);
      cria_emit_skip (out, "empty-answer");
      continue;
    }
    if (!cria_emit (out, r, error))
      return FALSE;
  }
  return TRUE;
}

static const CriaStageVTable fill_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = fill_create,
  .destroy = fill_destroy,
  .push = fill_push,
};

static const CriaProviderInfo cria_fill_info = {
  .name = "fill",
  .description = "Fills the {slots} of template records from lists or a generator, then has the generator answer",
  .example =
      "file location=templates.jsonl ! fill slots=slots.json generator=\"openai model=m\" ! jsonl location=out.jsonl",
  .props = fill_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_fill_register (CriaPlugin *plugin);

void
cria_fill_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_fill_info, &fill_vtable);
}
