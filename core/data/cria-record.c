/* cria-record.c: records and their JSON interchange form (cria-record(5)). */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-json.h>
#include <cria/cria-record.h>

#include "../json/cria-json-private.h"

static const char *const text_fields[] = { "instruction", "input", "output", "system", "chosen", "rejected" };

CriaRecord *
cria_record_new (void)
{
  CriaRecord *r = g_new0 (CriaRecord, 1);
  r->meta = json_object_new ();
  return r;
}

void
cria_message_free (CriaMessage *m)
{
  if (!m)
    return;
  g_free (m->role);
  g_free (m->content);
  g_free (m);
}

void
cria_record_free (CriaRecord *r)
{
  if (!r)
    return;
  g_free (r->instruction);
  g_free (r->input);
  g_free (r->output);
  g_free (r->system);
  g_free (r->chosen);
  g_free (r->rejected);
  if (r->messages)
    g_ptr_array_unref (r->messages);
  json_object_unref (r->meta);
  g_free (r);
}

static char **
field_slot (CriaRecord *r, const char *field)
{
  if (!strcmp (field, "instruction"))
    return &r->instruction;
  if (!strcmp (field, "input"))
    return &r->input;
  if (!strcmp (field, "output"))
    return &r->output;
  if (!strcmp (field, "system"))
    return &r->system;
  if (!strcmp (field, "chosen"))
    return &r->chosen;
  if (!strcmp (field, "rejected"))
    return &r->rejected;
  return NULL;
}

void
cria_record_add_message (CriaRecord *r, const char *role, const char *content)
{
  g_return_if_fail (r != NULL);
  if (!r->messages)
    r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  CriaMessage *m = g_new0 (CriaMessage, 1);
  m->role = g_strdup (role);
  m->content = g_strdup (content);
  g_ptr_array_add (r->messages, m);
}

void
cria_record_set_field (CriaRecord *r, const char *field, const char *value)
{
  g_return_if_fail (r != NULL);
  g_return_if_fail (field != NULL);
  char **slot = field_slot (r, field);
  if (slot) {
    g_free (*slot);
    *slot = g_strdup (value);
  } else if (value) {
    json_object_set_string_member (r->meta, field, value);
  } else {
    json_object_remove_member (r->meta, field);
  }
}

const char *
cria_record_get_field (const CriaRecord *r, const char *field)
{
  g_return_val_if_fail (r != NULL, NULL);
  g_return_val_if_fail (field != NULL, NULL);
  char **slot = field_slot ((CriaRecord *) r, field);
  if (slot)
    return *slot;
  JsonNode *n = json_object_get_member (r->meta, field);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return json_node_get_string (n);
  return NULL;
}

/* json_node_copy() shares arrays and objects; a copied record must not. */
static JsonNode *deep_copy_node (JsonNode *n);

static JsonObject *
deep_copy_object (JsonObject *o)
{
  JsonObject *c = json_object_new ();
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init_ordered (&it, o);
  while (json_object_iter_next_ordered (&it, &name, &member))
    json_object_set_member (c, name, deep_copy_node (member));
  return c;
}

static JsonNode *
deep_copy_node (JsonNode *n)
{
  if (JSON_NODE_HOLDS_OBJECT (n)) {
    JsonNode *c = json_node_new (JSON_NODE_OBJECT);
    json_node_take_object (c, deep_copy_object (json_node_get_object (n)));
    return c;
  }
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    JsonArray *ca = json_array_sized_new (json_array_get_length (a));
    for (guint i = 0; i < json_array_get_length (a); i++)
      json_array_add_element (ca, deep_copy_node (json_array_get_element (a, i)));
    JsonNode *c = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (c, ca);
    return c;
  }
  return json_node_copy (n);
}

CriaRecord *
cria_record_copy (const CriaRecord *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  CriaRecord *c = g_new0 (CriaRecord, 1);
  c->instruction = g_strdup (r->instruction);
  c->input = g_strdup (r->input);
  c->output = g_strdup (r->output);
  c->system = g_strdup (r->system);
  c->chosen = g_strdup (r->chosen);
  c->rejected = g_strdup (r->rejected);
  /* An empty conversation differs from none: keep the array even when empty. */
  if (r->messages)
    c->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  for (guint i = 0; r->messages && i < r->messages->len; i++) {
    CriaMessage *m = g_ptr_array_index (r->messages, i);
    cria_record_add_message (c, m->role, m->content);
  }
  c->meta = deep_copy_object (r->meta);
  return c;
}

JsonObject *
cria_record_to_json (const CriaRecord *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  JsonObject *o = json_object_new ();
  for (guint i = 0; i < G_N_ELEMENTS (text_fields); i++) {
    const char *v = cria_record_get_field (r, text_fields[i]);
    if (v)
      json_object_set_string_member (o, text_fields[i], v);
  }
  if (r->messages) {
    JsonArray *a = json_array_new ();
    for (guint i = 0; i < r->messages->len; i++) {
      CriaMessage *m = g_ptr_array_index (r->messages, i);
      JsonObject *mo = json_object_new ();
      json_object_set_string_member (mo, "role", m->role);
      json_object_set_string_member (mo, "content", m->content);
      json_array_add_object_element (a, mo);
    }
    json_object_set_array_member (o, "messages", a);
  }
  g_autoptr (GList) members = json_object_get_members (r->meta);
  for (GList *l = members; l; l = l->next) {
    /* Metadata never shadows a known field on output. */
    if (json_object_has_member (o, l->data))
      continue;
    json_object_set_member (o, l->data, json_node_copy (json_object_get_member (r->meta, l->data)));
  }
  return o;
}

gboolean
cria_record_role_is_known (const char *role)
{
  /* OpenAI's roles: a misspelt one would otherwise reach a chat template
   * that has no branch for it and drops the turn. */
  static const char *const roles[] = { "system", "developer", "user", "assistant", "tool", "function" };
  for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
    if (!strcmp (role, roles[i]))
      return TRUE;
  return FALSE;
}

gboolean
cria_record_has_content (const CriaRecord *r)
{
  return r->instruction || r->input || r->output || r->messages || r->chosen || r->rejected;
}

gboolean
cria_record_is_preference (const CriaRecord *r)
{
  g_return_val_if_fail (r != NULL, FALSE);
  return r->chosen && r->rejected;
}

CriaRecord *
cria_record_with_answer (const CriaRecord *r, const char *answer)
{
  g_return_val_if_fail (r != NULL, NULL);
  g_return_val_if_fail (answer != NULL, NULL);
  CriaRecord *c = cria_record_copy (r);
  g_clear_pointer (&c->chosen, g_free);
  g_clear_pointer (&c->rejected, g_free);
  if (c->messages) {
    cria_record_add_message (c, "assistant", answer);
  } else {
    g_free (c->output);
    c->output = g_strdup (answer);
  }
  return c;
}

/* One member of a record's JSON form, `n` borrowed (metadata gets a copy). */
gboolean
cria_record_set_member (CriaRecord *r, const char *name, JsonNode *n, GError **error)
{
  char **slot = field_slot (r, name);
  /* A preference answer given as a message or a conversation waits in the
   * metadata for cria_record_take_preference. */
  if (slot && (slot == &r->chosen || slot == &r->rejected) && !JSON_NODE_HOLDS_VALUE (n) && !JSON_NODE_HOLDS_NULL (n))
    slot = NULL;
  if (slot) {
    if (JSON_NODE_HOLDS_NULL (n))
      return TRUE;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD, "field '%s': expected a string", name);
      return FALSE;
    }
    *slot = g_strdup (json_node_get_string (n));
  } else if (!strcmp (name, "messages") && !JSON_NODE_HOLDS_NULL (n)) {
    if (!JSON_NODE_HOLDS_ARRAY (n)) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD, "field 'messages': expected an array");
      return FALSE;
    }
    JsonArray *a = json_node_get_array (n);
    r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *mn = json_array_get_element (a, i);
      JsonObject *mo = JSON_NODE_HOLDS_OBJECT (mn) ? json_node_get_object (mn) : NULL;
      const char *role = mo ? cria_json_get_string (mo, "role", NULL) : NULL;
      const char *content = mo ? cria_json_get_string (mo, "content", NULL) : NULL;
      if (!role || !content) {
        const char *which = !mo ? NULL : !role ? "role" : "content";
        JsonNode *v = which ? json_object_get_member (mo, which) : NULL;
        if (which)
          g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                       "field 'messages[%u].%s': expected a string, not %s", i, which,
                       v ? cria_json_node_kind (v) : "nothing");
        else
          g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                       "field 'messages[%u]': expected an object with string 'role' and 'content'", i);
        return FALSE;
      }
      if (!cria_record_role_is_known (role)) {
        g_autofree char *shown = cria_error_quote (role, -1, 40);
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                     "field 'messages[%u].role': unknown role '%s' (system, developer, user, assistant, tool or "
                     "function)",
                     i, shown);
        return FALSE;
      }
      cria_record_add_message (r, role, content);
    }
  } else {
    json_object_set_member (r->meta, name, json_node_copy (n));
  }
  return TRUE;
}

CriaRecord *
cria_record_from_json (JsonObject *o, GError **error)
{
  g_return_val_if_fail (o != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (CriaRecord) r = cria_record_new ();
  JsonObjectIter it;
  const char *name;
  JsonNode *n;
  json_object_iter_init_ordered (&it, o);
  while (json_object_iter_next_ordered (&it, &name, &n))
    if (!cria_record_set_member (r, name, n, error))
      return NULL;
  if (!cria_record_take_preference (r, error))
    return NULL;
  return g_steal_pointer (&r);
}

/* A message of a preference layout: {role, content} (TRL, OpenAI) or
 * {from, value} (ShareGPT, LLaMA-Factory). */
static gboolean
pref_message (JsonNode *n, const char *field, guint i, char **role, const char **content, GError **error)
{
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
  const char *ro = o ? cria_json_get_string (o, "role", NULL) : NULL;
  const char *co = o ? cria_json_get_string (o, "content", NULL) : NULL;
  if (o && !ro && !co) {
    const char *from = cria_json_get_string (o, "from", NULL);
    co = cria_json_get_string (o, "value", NULL);
    ro = !from                                                                               ? NULL
         : !strcmp (from, "human") || !strcmp (from, "user")                                 ? "user"
         : !strcmp (from, "gpt") || !strcmp (from, "assistant") || !strcmp (from, "chatgpt") ? "assistant"
                                                                                             : from;
  }
  if (!ro || !co) {
    g_autofree char *where = i == G_MAXUINT ? g_strdup (field) : g_strdup_printf ("%s[%u]", field, i);
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "field '%s': expected a message ({role, content} or {from, value})", where);
    return FALSE;
  }
  if (!cria_record_role_is_known (ro)) {
    g_autofree char *shown = cria_error_quote (ro, -1, 40);
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD, "field '%s': unknown role '%s'", field,
                 shown);
    return FALSE;
  }
  *role = g_strdup (ro);
  *content = co;
  return TRUE;
}

/* One answer: its text, and the conversation before it when given as a list. */
static gboolean
pref_answer (CriaRecord *r, const char *field, char **text, GPtrArray **before, GError **error)
{
  JsonNode *n = json_object_get_member (r->meta, field);
  if (!n)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING) {
    *text = g_strdup (json_node_get_string (n));
    json_object_remove_member (r->meta, field);
    return TRUE;
  }
  gboolean list = JSON_NODE_HOLDS_ARRAY (n);
  JsonArray *a = list ? json_node_get_array (n) : NULL;
  guint len = list ? json_array_get_length (a) : 1;
  if (len == 0 || (!list && !JSON_NODE_HOLDS_OBJECT (n))) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "field '%s': expected a string, a message or a non-empty list of messages", field);
    return FALSE;
  }
  *before = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  for (guint i = 0; i < len; i++) {
    g_autofree char *role = NULL;
    const char *content = NULL;
    if (!pref_message (list ? json_array_get_element (a, i) : n, field, list ? i : G_MAXUINT, &role, &content, error))
      return FALSE;
    if (i + 1 < len) {
      CriaMessage *m = g_new0 (CriaMessage, 1);
      m->role = g_steal_pointer (&role);
      m->content = g_strdup (content);
      g_ptr_array_add (*before, m);
    } else if (strcmp (role, "assistant")) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "field '%s': the answer (its last message) is the %s's, not the assistant's", field, role);
      return FALSE;
    } else {
      *text = g_strdup (content);
    }
  }
  json_object_remove_member (r->meta, field);
  return TRUE;
}

static gboolean
same_turns (GPtrArray *a, guint n, GPtrArray *b)
{
  if (!a || !b || n != b->len || n > a->len)
    return FALSE;
  for (guint i = 0; i < n; i++) {
    CriaMessage *x = g_ptr_array_index (a, i), *y = g_ptr_array_index (b, i);
    if (strcmp (x->role, y->role) || strcmp (x->content, y->content))
      return FALSE;
  }
  return TRUE;
}

gboolean
cria_record_take_preference (CriaRecord *r, GError **error)
{
  g_return_val_if_fail (r != NULL, FALSE);
  g_autoptr (GPtrArray) before_c = NULL;
  g_autoptr (GPtrArray) before_r = NULL;
  if (!pref_answer (r, "chosen", &r->chosen, &before_c, error) ||
      !pref_answer (r, "rejected", &r->rejected, &before_r, error))
    return FALSE;
  if (!r->chosen && !r->rejected)
    return TRUE;
  if (!r->chosen || !r->rejected) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                 "field '%s': missing (a preference record has both chosen and rejected)",
                 r->chosen ? "rejected" : "chosen");
    return FALSE;
  }
  /* TRL's implicit prompt: each answer is the whole conversation, and what
   * comes before the last message is the prompt, the same in both. */
  GPtrArray *before = before_c && before_c->len ? before_c : before_r;
  if (before_c && before_r && before_c->len && before_r->len && !same_turns (before_c, before_c->len, before_r)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "field 'rejected': its conversation before the answer differs from chosen's");
    return FALSE;
  }
  JsonNode *prompt = json_object_get_member (r->meta, "prompt");
  if (prompt && JSON_NODE_HOLDS_ARRAY (prompt) && !r->messages) {
    g_autoptr (GPtrArray) turns = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
    JsonArray *a = json_node_get_array (prompt);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      CriaMessage *m = g_new0 (CriaMessage, 1);
      const char *content = NULL;
      if (!pref_message (json_array_get_element (a, i), "prompt", i, &m->role, &content, error)) {
        cria_message_free (m);
        return FALSE;
      }
      m->content = g_strdup (content);
      g_ptr_array_add (turns, m);
    }
    r->messages = g_steal_pointer (&turns);
    json_object_remove_member (r->meta, "prompt");
  } else if (prompt && JSON_NODE_HOLDS_VALUE (prompt) && json_node_get_value_type (prompt) == G_TYPE_STRING &&
             !r->instruction && !r->messages && !(before && before->len)) {
    r->instruction = g_strdup (json_node_get_string (prompt));
    json_object_remove_member (r->meta, "prompt");
  }
  if (before && before->len) {
    /* UltraFeedback's `messages` repeats the chosen conversation. */
    if (r->messages && r->messages->len == before->len + 1 && same_turns (r->messages, before->len, before))
      g_ptr_array_set_size (r->messages, before->len);
    if (!r->messages)
      r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
    if (!same_turns (r->messages, before->len, before))
      for (guint i = 0; i < before->len; i++) {
        CriaMessage *m = g_ptr_array_index (before, i);
        cria_record_add_message (r, m->role, m->content);
      }
  }
  if (r->messages && r->messages->len &&
      !strcmp (((CriaMessage *) g_ptr_array_index (r->messages, r->messages->len - 1))->role, "assistant")) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                 "field 'messages': a preference record's conversation ends before the answer, not with an "
                 "assistant turn");
    return FALSE;
  }
  return TRUE;
}

/* Writes what json_to_string (cria_record_to_json (r)) would, without
 * building that object: this runs once per record of every dataset written. */
void
cria_record_append_json_line (GString *out, const CriaRecord *r)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (r != NULL);
  /* Names written with their quotes and colon: no formatting per record. */
  static const char *const keys[] = { "\"instruction\":", "\"input\":",  "\"output\":",
                                      "\"system\":",      "\"chosen\":", "\"rejected\":" };
  const char *const values[] = { r->instruction, r->input, r->output, r->system, r->chosen, r->rejected };
  gboolean first = TRUE;
  g_string_append_c (out, '{');
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++) {
    if (!values[i])
      continue;
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    g_string_append (out, keys[i]);
    cria_json_append_string (out, values[i]);
  }
  if (r->messages) {
    g_string_append (out, first ? "\"messages\":[" : ",\"messages\":[");
    first = FALSE;
    for (guint i = 0; i < r->messages->len; i++) {
      CriaMessage *m = g_ptr_array_index (r->messages, i);
      g_string_append (out, i ? ",{\"role\":" : "{\"role\":");
      cria_json_append_string (out, m->role);
      g_string_append (out, ",\"content\":");
      cria_json_append_string (out, m->content);
      g_string_append_c (out, '}');
    }
    g_string_append_c (out, ']');
  }
  JsonObjectIter it;
  const char *name;
  JsonNode *member;
  json_object_iter_init_ordered (&it, r->meta);
  while (json_object_iter_next_ordered (&it, &name, &member)) {
    /* Metadata never shadows a known field on output. Most names start with
     * none of the letters of one, which spares the comparisons. */
    char **slot = strchr ("iosmcr", name[0]) && name[0] ? field_slot ((CriaRecord *) r, name) : NULL;
    if (!(slot && *slot) && !(r->messages && name[0] == 'm' && !strcmp (name, "messages")))
      cria_json_append_member (out, &first, name, member);
  }
  g_string_append_c (out, '}');
}

char *
cria_record_to_json_line (const CriaRecord *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  GString *out = g_string_sized_new (256);
  cria_record_append_json_line (out, r);
  return g_string_free (out, FALSE);
}

gboolean
cria_record_equal (const CriaRecord *a, const CriaRecord *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);
  g_autofree char *ta = cria_record_to_json_line (a);
  g_autofree char *tb = cria_record_to_json_line (b);
  return strcmp (ta, tb) == 0;
}

static void
add_turn (GPtrArray *turns, const char *role, const char *content)
{
  CriaMessage *m = g_new0 (CriaMessage, 1);
  m->role = g_strdup (role);
  m->content = g_strdup (content);
  g_ptr_array_add (turns, m);
}

GPtrArray *
cria_record_get_turns (const CriaRecord *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  GPtrArray *turns = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
  if (r->messages) {
    for (guint i = 0; i < r->messages->len; i++) {
      CriaMessage *m = g_ptr_array_index (r->messages, i);
      add_turn (turns, m->role, m->content);
    }
    return turns;
  }
  if (r->system && *r->system)
    add_turn (turns, "system", r->system);
  g_autofree char *user = r->input && *r->input
                              ? g_strconcat (r->instruction ? r->instruction : "", "\n\n", r->input, NULL)
                              : g_strdup (r->instruction ? r->instruction : "");
  add_turn (turns, "user", user);
  if (r->output)
    add_turn (turns, "assistant", r->output);
  return turns;
}
