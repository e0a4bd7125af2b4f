/* cria-pipeline-parse.c: the gst-launch-style and JSON forms of a pipeline. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-json.h>
#include "cria-pipeline-private.h"

/* Splits a description into words; "!" outside quotes is a word of its own.
 * Quotes ("..." or '...') group; inside "...", a backslash escapes. */
static GPtrArray *
tokenize (const char *text, GError **error)
{
  g_autoptr (GPtrArray) words = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) word = NULL;
  const char *p = text;
  while (*p) {
    if (g_ascii_isspace (*p) || *p == '!') {
      if (word)
        g_ptr_array_add (words, g_string_free (g_steal_pointer (&word), FALSE));
      if (*p == '!')
        g_ptr_array_add (words, g_strdup ("!"));
      p++;
      continue;
    }
    if (!word)
      word = g_string_new (NULL);
    if (*p == '"' || *p == '\'') {
      char q = *p++;
      const char *start = p - 1;
      while (*p && *p != q) {
        if (q == '"' && *p == '\\' && p[1])
          p++;
        g_string_append_c (word, *p++);
      }
      if (!*p) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "pipeline: unterminated quote starting at column %ld", (long) (start - text) + 1);
        return NULL;
      }
      p++;
      continue;
    }
    g_string_append_c (word, *p++);
  }
  if (word)
    g_ptr_array_add (words, g_string_free (g_steal_pointer (&word), FALSE));
  return g_steal_pointer (&words);
}

CriaPipeline *
cria_pipeline_parse (CriaRegistry *registry, const char *description, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (description != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autoptr (GPtrArray) words = tokenize (description, error);
  if (!words)
    return NULL;
  g_autoptr (CriaPipeline) pipeline = cria_pipeline_new_empty (registry);
  CriaStage *stage = NULL;
  gboolean expect_provider = TRUE;
  for (guint i = 0; i < words->len; i++) {
    const char *w = g_ptr_array_index (words, i);
    g_autofree char *where = g_strdup_printf ("pipeline stage %u", pipeline->stages->len + (expect_provider ? 1 : 0));
    if (strcmp (w, "!") == 0) {
      if (expect_provider) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: '!' where a provider name was expected",
                     where);
        return NULL;
      }
      expect_provider = TRUE;
      continue;
    }
    if (expect_provider) {
      if (strchr (w, '=')) {
        g_autofree char *shown = cria_error_quote (w, -1, 60);
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: expected a provider name before '%s'", where,
                     shown);
        return NULL;
      }
      stage = cria_pipeline_add_stage (pipeline, w, where, error);
      if (!stage)
        return NULL;
      expect_provider = FALSE;
      continue;
    }
    const char *eq = strchr (w, '=');
    if (!eq || eq == w) {
      g_autofree char *shown = cria_error_quote (w, -1, 60);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s (%s): '%s' is not name=value (stages are separated by '!')", where,
                   cria_provider_get_name (stage->provider), shown);
      return NULL;
    }
    g_autofree char *name = g_strndup (w, eq - w);
    g_autoptr (GError) perr = NULL;
    if (!cria_props_set_given (stage->props, name, eq + 1, &perr)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s (%s): %s", where,
                   cria_provider_get_name (stage->provider), perr->message);
      return NULL;
    }
  }
  if (expect_provider && pipeline->stages->len > 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "pipeline: it ends with '!'");
    return NULL;
  }
  if (!cria_pipeline_validate (pipeline, error))
    return NULL;
  return g_steal_pointer (&pipeline);
}

CriaPipeline *
cria_pipeline_parse_json (CriaRegistry *registry, const char *json, gssize len, const char *filename, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (json != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *label = cria_error_quote (filename ? filename : "pipeline", -1, -1);
  g_autoptr (GError) jerr = NULL;
  g_autoptr (JsonNode) root = cria_json_parse (json, len, filename ? filename : "pipeline", 1, &jerr);
  if (!root) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", jerr->message);
    return NULL;
  }
  JsonObject *obj = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *stages_node = obj ? json_object_get_member (obj, "stages") : NULL;
  if (!stages_node || !JSON_NODE_HOLDS_ARRAY (stages_node)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: stages: expected an array of stages", label);
    return NULL;
  }
  g_autoptr (CriaPipeline) pipeline = cria_pipeline_new_empty (registry);
  if (obj) {
    g_autoptr (GList) members = json_object_get_members (obj);
    for (GList *l = members; l; l = l->next) {
      const char *m = l->data;
      JsonNode *v = json_object_get_member (obj, m);
      if (!strcmp (m, "stages") || !strcmp (m, "description"))
        continue;
      if (!strcmp (m, "on-error") && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING &&
          (!strcmp (json_node_get_string (v), "skip") || !strcmp (json_node_get_string (v), "stop"))) {
        pipeline->on_error = !strcmp (json_node_get_string (v), "skip") ? CRIA_ON_ERROR_SKIP : CRIA_ON_ERROR_STOP;
        continue;
      }
      if (!strcmp (m, "seed") && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_INT64 &&
          json_node_get_int (v) >= 0) {
        pipeline->seed = (guint64) json_node_get_int (v);
        continue;
      }
      g_autofree char *shown = cria_error_quote (m, -1, 60);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: %s: unknown member or bad value (known: stages, description, on-error, seed)", label, shown);
      return NULL;
    }
  }
  JsonArray *stages = json_node_get_array (stages_node);
  for (guint i = 0; i < json_array_get_length (stages); i++) {
    g_autofree char *where = g_strdup_printf ("%s: stages[%u]", label, i);
    JsonNode *sn = json_array_get_element (stages, i);
    JsonObject *so = JSON_NODE_HOLDS_OBJECT (sn) ? json_node_get_object (sn) : NULL;
    JsonNode *pn = so ? json_object_get_member (so, "provider") : NULL;
    if (!pn || !JSON_NODE_HOLDS_VALUE (pn) || json_node_get_value_type (pn) != G_TYPE_STRING) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s.provider: expected a provider name", where);
      return NULL;
    }
    CriaStage *stage = cria_pipeline_add_stage (pipeline, json_node_get_string (pn), where, error);
    if (!stage)
      return NULL;
    g_autoptr (GList) members = json_object_get_members (so);
    for (GList *l = members; l; l = l->next) {
      if (strcmp (l->data, "provider") && strcmp (l->data, "properties")) {
        g_autofree char *shown = cria_error_quote (l->data, -1, 60);
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s.%s: unknown member (known: provider, properties)", where,
                     shown);
        return NULL;
      }
    }
    JsonNode *props = json_object_get_member (so, "properties");
    if (!props)
      continue;
    if (!JSON_NODE_HOLDS_OBJECT (props)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s.properties: expected an object", where);
      return NULL;
    }
    JsonObject *po = json_node_get_object (props);
    g_autoptr (GList) names = json_object_get_members (po);
    for (GList *l = names; l; l = l->next) {
      g_autoptr (GError) perr = NULL;
      if (!cria_props_set_json (stage->props, l->data, json_object_get_member (po, l->data), &perr)) {
        g_autofree char *shown = cria_error_quote (l->data, -1, 60);
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s.properties.%s: %s", where, shown,
                     perr->message);
        return NULL;
      }
    }
  }
  if (!cria_pipeline_validate (pipeline, error)) {
    g_prefix_error (error, "%s: ", label);
    return NULL;
  }
  return g_steal_pointer (&pipeline);
}

CriaPipeline *
cria_pipeline_load_file (CriaRegistry *registry, const char *path, GError **error)
{
  g_return_val_if_fail (registry != NULL, NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!cria_file_get_contents (path, CRIA_JSON_MAX_FILE_BYTES, &text, &len, error))
    return NULL;
  return cria_pipeline_parse_json (registry, text, (gssize) len, path, error);
}

static gboolean
needs_quotes (const char *s)
{
  if (!*s)
    return TRUE;
  for (const char *p = s; *p; p++)
    if (g_ascii_isspace (*p) || *p == '!' || *p == '"' || *p == '\'' || *p == '\\')
      return TRUE;
  return FALSE;
}

char *
cria_pipeline_to_string (CriaPipeline *pipeline)
{
  g_return_val_if_fail (pipeline != NULL, NULL);
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < pipeline->stages->len; i++) {
    CriaStage *st = g_ptr_array_index (pipeline->stages, i);
    if (i)
      g_string_append (s, " ! ");
    g_string_append (s, cria_provider_get_name (st->provider));
    const CriaPropSpec *specs = cria_props_get_specs (st->props);
    for (const CriaPropSpec *sp = specs; sp && sp->name; sp++) {
      const char *v = cria_props_get_text (st->props, sp->name);
      if (!v || (sp->default_value && (!strcmp (v, sp->default_value) ||
                                       (sp->type == CRIA_PROP_DOUBLE &&
                                        g_ascii_strtod (v, NULL) == g_ascii_strtod (sp->default_value, NULL)))))
        continue;
      if (needs_quotes (v)) {
        g_string_append_printf (s, " %s=\"", sp->name);
        for (const char *p = v; *p; p++) {
          if (*p == '"' || *p == '\\')
            g_string_append_c (s, '\\');
          g_string_append_c (s, *p);
        }
        g_string_append_c (s, '"');
      } else {
        g_string_append_printf (s, " %s=%s", sp->name, v);
      }
    }
  }
  return g_string_free (s, FALSE);
}

gboolean
cria_registry_parse_spec (CriaRegistry *registry, CriaKind kind, const char *spec, const CriaProvider **provider,
                          CriaProps **props, GError **error)
{
  g_return_val_if_fail (registry != NULL, FALSE);
  g_return_val_if_fail (provider != NULL, FALSE);
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (spec != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GPtrArray) words = tokenize (spec, error);
  if (!words)
    return FALSE;
  if (words->len == 0 || strchr (g_ptr_array_index (words, 0), '=')) {
    g_autofree char *shown = cria_error_quote (spec, -1, 80);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "'%s': expected a %s name first", shown,
                 cria_kind_name (kind));
    return FALSE;
  }
  const char *name = g_ptr_array_index (words, 0);
  const CriaProvider *p = cria_registry_require (registry, kind, name, error);
  if (!p)
    return FALSE;
  g_autoptr (CriaProps) values = cria_provider_new_props (p);
  for (guint i = 1; i < words->len; i++) {
    const char *w = g_ptr_array_index (words, i);
    const char *eq = strchr (w, '=');
    if (!eq || eq == w || !strcmp (w, "!")) {
      g_autofree char *shown = cria_error_quote (w, -1, 60);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s %s: '%s' is not name=value",
                   cria_kind_name (kind), name, shown);
      return FALSE;
    }
    g_autofree char *key = g_strndup (w, eq - w);
    if (!cria_props_set_given (values, key, eq + 1, error)) {
      g_prefix_error (error, "%s %s: ", cria_kind_name (kind), name);
      return FALSE;
    }
  }
  if (!cria_props_check_required (values, error)) {
    g_prefix_error (error, "%s %s: ", cria_kind_name (kind), name);
    return FALSE;
  }
  *provider = p;
  *props = g_steal_pointer (&values);
  return TRUE;
}
