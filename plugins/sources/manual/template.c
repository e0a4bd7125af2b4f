/* template: builds records by hand from a spec of tasks x instruction
 * templates x slot values, expanded deterministically.
 *
 *   cria data 'template location=templates/starter.en.json ! variants n=2 ! jsonl location=manual.jsonl'
 *
 * The spec (cria-record(5), TEMPLATE SPECS): {"tasks": [{"name", "templates":
 * [...], "slots": {"slot": [values...]}, "input", "output", "system"}]}. Each
 * task yields every template with every combination of its slot values, in
 * the order written (the last slot varies fastest). input/output/system are
 * templates over the same slots; without an output the record's output is
 * left absent for a generator to fill. A slot value may be an object whose
 * members `{slot.member}` names. Streams: one record in memory. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>

static const CriaPropSpec template_props[] = {
  { "location", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "the spec file (a name under share/ such as templates/starter.zh.json is found there)", CRIA_PROP_FLAG_REQUIRED },
  { "task", CRIA_PROP_STRING, NULL, 0, 0, NULL, "only expand the tasks with these comma-separated names" },
  CRIA_PROP_END
};

typedef struct {
  char *path;
  JsonNode *spec;
  JsonArray *tasks;
  char **only;
  guint task, tmpl;
  guint *odometer; /* the current value index of each slot */
  guint n_slots;
  gboolean started;
} Template;

static void
template_destroy (gpointer data)
{
  Template *self = data;
  if (self->spec)
    json_node_unref (self->spec);
  g_strfreev (self->only);
  g_free (self->odometer);
  g_free (self->path);
  g_free (self);
}

static gboolean
bad_spec (GError **error, const char *path, guint task, const char *what)
{
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tasks[%u]: %s", path, task, what);
  return FALSE;
}

/* Every task must be well-formed before the first record goes out. */
static gboolean
check_spec (Template *self, GError **error)
{
  JsonObject *root = JSON_NODE_HOLDS_OBJECT (self->spec) ? json_node_get_object (self->spec) : NULL;
  JsonNode *tn = root ? json_object_get_member (root, "tasks") : NULL;
  if (!tn || !JSON_NODE_HOLDS_ARRAY (tn)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected an object with a 'tasks' array", self->path);
    return FALSE;
  }
  self->tasks = json_node_get_array (tn);
  for (guint i = 0; i < json_array_get_length (self->tasks); i++) {
    JsonNode *n = json_array_get_element (self->tasks, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
    if (!t || !json_object_get_string_member_with_default (t, "name", NULL))
      return bad_spec (error, self->path, i, "missing field 'name'");
    JsonNode *tm = json_object_get_member (t, "templates");
    if (!tm || !JSON_NODE_HOLDS_ARRAY (tm) || !json_array_get_length (json_node_get_array (tm)))
      return bad_spec (error, self->path, i, "field 'templates': expected a non-empty array of strings");
    JsonNode *sl = json_object_get_member (t, "slots");
    if (sl && !JSON_NODE_HOLDS_OBJECT (sl))
      return bad_spec (error, self->path, i, "field 'slots': expected an object of value arrays");
    g_autoptr (GList) names = sl ? json_object_get_members (json_node_get_object (sl)) : NULL;
    for (GList *l = names; l; l = l->next) {
      JsonNode *v = json_object_get_member (json_node_get_object (sl), l->data);
      if (!JSON_NODE_HOLDS_ARRAY (v) || !json_array_get_length (json_node_get_array (v))) {
        g_autofree char *what = g_strdup_printf ("slot '%s': expected a non-empty array of values", (char *) l->data);
        return bad_spec (error, self->path, i, what);
      }
    }
  }
  return TRUE;
}

static gpointer
template_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Template *self = g_new0 (Template, 1);
  self->path = cria_find_data_file (cria_props_get_string (props, "location"));
  const char *only = cria_props_get_string (props, "task");
  self->only = only ? g_strsplit (only, ",", -1) : NULL;
  self->spec = cria_json_load_file (self->path, error);
  if (!self->spec || !check_spec (self, error)) {
    template_destroy (self);
    return NULL;
  }
  return self;
}

static JsonObject *
current_task (Template *self)
{
  return json_array_get_object_element (self->tasks, self->task);
}

static JsonObject *
task_slots (JsonObject *t)
{
  return json_object_has_member (t, "slots") ? json_object_get_object_member (t, "slots") : NULL;
}

typedef struct {
  JsonObject *slots;
  guint *odometer;
  GPtrArray *owned;
} SlotLookup;

/* `{slot}` is the slot's current value; `{slot.field}` a member of it when
 * the value is an object, so that facts which belong together (a plan, its
 * price, its quota) vary together instead of in every combination. */
static const char *
slot_lookup (const char *name, gpointer data)
{
  SlotLookup *l = data;
  g_autoptr (GList) names = l->slots ? json_object_get_members (l->slots) : NULL;
  const char *dot = strchr (name, '.');
  g_autofree char *slot = dot ? g_strndup (name, (gsize) (dot - name)) : g_strdup (name);
  guint i = 0;
  for (GList *n = names; n; n = n->next, i++) {
    if (strcmp (n->data, slot))
      continue;
    JsonNode *v = json_array_get_element (json_object_get_array_member (l->slots, slot), l->odometer[i]);
    if (dot) {
      JsonObject *o = JSON_NODE_HOLDS_OBJECT (v) ? json_node_get_object (v) : NULL;
      v = o ? json_object_get_member (o, dot + 1) : NULL;
      if (!v)
        return NULL;
    }
    char *text = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                     ? g_strdup (json_node_get_string (v))
                     : json_to_string (v, FALSE);
    g_ptr_array_add (l->owned, text);
    return text;
  }
  return NULL;
}

/* Moves to the next combination; FALSE when the task is exhausted. */
static gboolean
advance (Template *self)
{
  JsonObject *t = current_task (self);
  JsonObject *slots = task_slots (t);
  g_autoptr (GList) names = slots ? json_object_get_members (slots) : NULL;
  for (gint i = (gint) self->n_slots - 1; i >= 0; i--) {
    JsonArray *vals = json_object_get_array_member (slots, g_list_nth_data (names, i));
    if (++self->odometer[i] < json_array_get_length (vals))
      return TRUE;
    self->odometer[i] = 0;
  }
  return ++self->tmpl < json_array_get_length (json_object_get_array_member (t, "templates"));
}

static gboolean
task_wanted (Template *self, JsonObject *t)
{
  return !self->only || g_strv_contains ((const char *const *) self->only, json_object_get_string_member (t, "name"));
}

static void
enter_task (Template *self)
{
  JsonObject *slots = task_slots (current_task (self));
  self->n_slots = slots ? json_object_get_size (slots) : 0;
  g_free (self->odometer);
  self->odometer = g_new0 (guint, self->n_slots + 1);
  self->tmpl = 0;
}

static char *
render_member (JsonObject *t, const char *member, SlotLookup *l, const char *path, guint task, GError **error)
{
  const char *tmpl = json_object_get_string_member_with_default (t, member, NULL);
  if (!tmpl)
    return NULL;
  char *text = cria_template_render (tmpl, slot_lookup, l, error);
  if (!text)
    g_prefix_error (error, "%s: tasks[%u].%s: ", path, task, member);
  return text;
}

static CriaFlow
template_next (gpointer data, CriaRecord **record, GError **error)
{
  Template *self = data;
  if (!self->started) {
    self->started = TRUE;
    self->task = 0;
    if (json_array_get_length (self->tasks))
      enter_task (self);
  } else if (self->task < json_array_get_length (self->tasks) && !advance (self)) {
    self->task++;
    if (self->task < json_array_get_length (self->tasks))
      enter_task (self);
  }
  while (self->task < json_array_get_length (self->tasks) && !task_wanted (self, current_task (self))) {
    self->task++;
    if (self->task < json_array_get_length (self->tasks))
      enter_task (self);
  }
  if (self->task >= json_array_get_length (self->tasks))
    return CRIA_FLOW_EOS;
  JsonObject *t = current_task (self);
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  SlotLookup l = { task_slots (t), self->odometer, owned };
  g_autoptr (CriaRecord) r = cria_record_new ();
  const char *tmpl = json_array_get_string_element (json_object_get_array_member (t, "templates"), self->tmpl);
  GError *e = NULL;
  r->instruction = tmpl ? cria_template_render (tmpl, slot_lookup, &l, &e) : NULL;
  if (!r->instruction) {
    if (e)
      g_propagate_prefixed_error (error, e, "%s: tasks[%u].templates[%u]: ", self->path, self->task, self->tmpl);
    else
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s: tasks[%u].templates[%u]: expected a string", self->path, self->task, self->tmpl);
    return CRIA_FLOW_ERROR;
  }
  static const char *const members[] = { "input", "output", "system" };
  char **slots[] = { &r->input, &r->output, &r->system };
  for (guint i = 0; i < G_N_ELEMENTS (members); i++) {
    *slots[i] = render_member (t, members[i], &l, self->path, self->task, &e);
    if (e) {
      g_propagate_error (error, e);
      return CRIA_FLOW_ERROR;
    }
  }
  json_object_set_string_member (r->meta, "source", "template");
  json_object_set_string_member (r->meta, "task", json_object_get_string_member (t, "name"));
  *record = g_steal_pointer (&r);
  return CRIA_FLOW_OK;
}

static const CriaStageVTable template_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = template_create,
  .destroy = template_destroy,
  .next = template_next,
};

static const CriaProviderInfo template_info = {
  .name = "template",
  .description = "Expands a spec of tasks x instruction templates x slot values into records",
  .example = "template location=templates/starter.en.json ! jsonl location=manual.jsonl",
  .props = template_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_source (plugin, &template_info, &template_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (manual, "Manual dataset construction from template specs", plugin_init, PACKAGE_VERSION,
                    "LGPL-2.1-or-later", "cria");
