/* cria-prompt-format.c: rendering records through the formats in share/formats. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-paths.h>
#include <cria/cria-prompt-format.h>
#include <cria/cria-rows.h>
#include <cria/cria-text.h>

struct _CriaPromptFormat {
  char *name;
  JsonObject *spec;
  gboolean chat;
};

void
cria_prompt_format_free (CriaPromptFormat *f)
{
  if (!f)
    return;
  g_free (f->name);
  if (f->spec)
    json_object_unref (f->spec);
  g_free (f);
}

static const char *
member (const CriaPromptFormat *f, const char *name)
{
  return json_object_get_string_member_with_default (f->spec, name, NULL);
}

static char *
format_path (const char *name)
{
  g_autofree char *rel = strchr (name, '/') || g_str_has_suffix (name, ".json")
                             ? g_strdup (name)
                             : g_strdup_printf ("formats/%s.json", name);
  return cria_find_data_file (rel);
}

CriaPromptFormat *
cria_prompt_format_load (const char *name, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *path = format_path (name);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "prompt format '%s': no file %s", name, path);
    return NULL;
  }
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: expected a JSON object", path);
    return NULL;
  }
  g_autoptr (CriaPromptFormat) f = g_new0 (CriaPromptFormat, 1);
  f->spec = json_object_ref (json_node_get_object (root));
  const char *kind = member (f, "kind");
  f->chat = kind && !strcmp (kind, "chat");
  static const char *const chat_needs[] = { "user", "assistant" };
  static const char *const single_needs[] = { "prompt", "prompt_no_input", "response" };
  const char *const *needs = f->chat ? chat_needs : single_needs;
  guint n = f->chat ? G_N_ELEMENTS (chat_needs) : G_N_ELEMENTS (single_needs);
  if (!kind || (strcmp (kind, "chat") && strcmp (kind, "single"))) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field 'kind': expected \"chat\" or \"single\"", path);
    return NULL;
  }
  for (guint i = 0; i < n; i++)
    if (!member (f, needs[i])) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: missing field '%s'", path, needs[i]);
      return NULL;
    }
  f->name = g_strdup (member (f, "name") ? member (f, "name") : name);
  return g_steal_pointer (&f);
}

const char *
cria_prompt_format_get_name (const CriaPromptFormat *f)
{
  g_return_val_if_fail (f != NULL, NULL);
  return f->name;
}

static const char *
content_lookup (const char *name, gpointer data)
{
  return !strcmp (name, "content") ? data : NULL;
}

static gboolean
wrap (GString *out, const char *tmpl, const char *content, GError **error)
{
  if (!tmpl)
    return TRUE;
  g_autofree char *text = cria_template_render (tmpl, content_lookup, (gpointer) content, error);
  if (!text)
    return FALSE;
  g_string_append (out, text);
  return TRUE;
}

static gboolean
render_chat (const CriaPromptFormat *f, const CriaRecord *r, GString *prompt, GString *response, GError **error)
{
  g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
  gint last = -1;
  for (guint i = 0; i < turns->len; i++)
    if (!strcmp (((CriaMessage *) g_ptr_array_index (turns, i))->role, "assistant"))
      last = (gint) i;
  const char *system = member (f, "default_system");
  guint start = 0;
  if (turns->len && !strcmp (((CriaMessage *) g_ptr_array_index (turns, 0))->role, "system")) {
    system = ((CriaMessage *) g_ptr_array_index (turns, 0))->content;
    start = 1;
  }
  const char *in_user = member (f, "system_in_first_user");
  g_autofree char *pending_system = NULL;
  if (system && in_user) {
    g_autoptr (GString) s = g_string_new (NULL);
    if (!wrap (s, in_user, system, error))
      return FALSE;
    pending_system = g_string_free (g_steal_pointer (&s), FALSE);
  } else if (system && !wrap (prompt, member (f, "system"), system, error)) {
    return FALSE;
  }
  for (guint i = start; i < turns->len; i++) {
    CriaMessage *m = g_ptr_array_index (turns, i);
    GString *to = (gint) i == last && last == (gint) turns->len - 1 ? response : prompt;
    const char *tmpl = member (f, m->role);
    if (!tmpl) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "prompt format %s has no template for role '%s'", f->name, m->role);
      return FALSE;
    }
    g_autofree char *content = pending_system && !strcmp (m->role, "user")
                                   ? g_strconcat (pending_system, m->content, NULL)
                                   : g_strdup (m->content);
    if (content && pending_system && !strcmp (m->role, "user"))
      g_clear_pointer (&pending_system, g_free);
    if (!wrap (to, tmpl, content, error))
      return FALSE;
  }
  if (!response->len)
    g_string_append (prompt, member (f, "generation") ? member (f, "generation") : "");
  return TRUE;
}

gboolean
cria_prompt_format_render (const CriaPromptFormat *f, const CriaRecord *r, char **prompt, char **response,
                           GError **error)
{
  g_return_val_if_fail (f != NULL, FALSE);
  g_return_val_if_fail (r != NULL, FALSE);
  g_return_val_if_fail (prompt != NULL, FALSE);
  g_return_val_if_fail (response != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GString) p = g_string_new (NULL), resp = g_string_new (NULL);
  if (f->chat) {
    if (!render_chat (f, r, p, resp, error))
      return FALSE;
  } else {
    g_autoptr (CriaRecord) single = NULL;
    if (r->messages) {
      /* One question (after a system message, before its answer) is what
       * a single-turn format was made for, as a chat client sends it. */
      g_autoptr (GPtrArray) turns = cria_record_get_turns (r);
      guint at = 0;
      const CriaMessage *m = turns->len ? g_ptr_array_index (turns, 0) : NULL;
      const char *system = m && !strcmp (m->role, "system") ? m->content : NULL;
      at += system != NULL;
      const CriaMessage *user = at < turns->len ? g_ptr_array_index (turns, at) : NULL;
      const CriaMessage *answer = at + 1 < turns->len ? g_ptr_array_index (turns, at + 1) : NULL;
      if (!user || strcmp (user->role, "user") || (answer && strcmp (answer->role, "assistant")) ||
          turns->len > at + 2) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                     "prompt format %s is single-turn; the record is a conversation (use a chat format)", f->name);
        return FALSE;
      }
      single = cria_record_new ();
      cria_record_set_field (single, "instruction", user->content);
      if (answer)
        cria_record_set_field (single, "output", answer->content);
      if (system)
        cria_record_set_field (single, "system", system);
      r = single;
    }
    const char *tmpl = r->input && *r->input ? member (f, "prompt") : member (f, "prompt_no_input");
    g_autofree char *text = cria_template_render_record (tmpl, r, error);
    if (!text)
      return FALSE;
    g_string_append (p, text);
    if (r->output) {
      g_autofree char *out = cria_template_render_record (member (f, "response"), r, error);
      if (!out)
        return FALSE;
      g_string_append (resp, out);
    }
  }
  *prompt = g_string_free (g_steal_pointer (&p), FALSE);
  *response = g_string_free (g_steal_pointer (&resp), FALSE);
  return TRUE;
}

gboolean
cria_prompt_format_record (const char *dir, const char *format, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (format != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (CriaPromptFormat) f = cria_prompt_format_load (format, error);
  if (!f)
    return FALSE;
  /* The name goes in, so that a copy of chatml still says "chatml". */
  JsonObject *spec = json_object_ref (f->spec);
  if (!json_object_has_member (spec, "name"))
    json_object_set_string_member (spec, "name", f->name);
  g_autoptr (JsonNode) root = json_node_init_object (json_node_alloc (), spec);
  json_object_unref (spec);
  g_autofree char *text = json_to_string (root, TRUE);
  g_autofree char *path = g_build_filename (dir, CRIA_PROMPT_FORMAT_RECORD, NULL);
  g_autoptr (GError) why = NULL;
  /* g_file_set_contents writes a temporary file and renames it. */
  if (!g_file_set_contents (path, text, -1, &why)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", path, why->message);
    return FALSE;
  }
  return TRUE;
}

char *
cria_prompt_format_recorded (const char *dir)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_autofree char *path = g_build_filename (dir, CRIA_PROMPT_FORMAT_RECORD, NULL);
  return g_file_test (path, G_FILE_TEST_IS_REGULAR) ? g_steal_pointer (&path) : NULL;
}
