/* common.c: field lists, record texts and seeds shared by the curating transforms. */
#include "config.h"

#include <string.h>

#include "curate.h"

char **
curate_fields (const CriaProps *props)
{
  char **fields = g_strsplit (cria_props_get_string (props, "fields"), ",", -1);
  for (guint i = 0; fields[i]; i++)
    g_strstrip (fields[i]);
  return fields;
}

char *
curate_record_text (const CriaRecord *r, char *const *fields)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; fields[i]; i++) {
    if (!strcmp (fields[i], "messages")) {
      for (guint m = 0; r->messages && m < r->messages->len; m++) {
        CriaMessage *msg = g_ptr_array_index (r->messages, m);
        g_string_append_printf (s, "%s\n", msg->content);
      }
      continue;
    }
    const char *v = cria_record_get_field (r, fields[i]);
    /* A separator that text rarely holds keeps field boundaries apart. */
    g_string_append_printf (s, "%s\x1f", v ? v : "");
  }
  return g_string_free (s, FALSE);
}

void
curate_map_fields (CriaRecord *r, char *const *fields, char *(*func) (const char *, gpointer), gpointer data)
{
  for (guint i = 0; fields[i]; i++) {
    if (!strcmp (fields[i], "messages")) {
      for (guint m = 0; r->messages && m < r->messages->len; m++) {
        CriaMessage *msg = g_ptr_array_index (r->messages, m);
        char *v = func (msg->content, data);
        g_free (msg->content);
        msg->content = v;
      }
      continue;
    }
    const char *v = cria_record_get_field (r, fields[i]);
    if (v) {
      g_autofree char *nv = func (v, data);
      cria_record_set_field (r, fields[i], nv);
    }
  }
}

guint64
curate_seed (const CriaProps *props, CriaContext *ctx)
{
  return cria_props_is_set (props, "seed") ? (guint64) cria_props_get_int (props, "seed") : cria_context_get_seed (ctx);
}

char *
curate_record_name (const CriaRecord *r, guint64 position)
{
  JsonNode *id = json_object_get_member (r->meta, "id");
  if (id && JSON_NODE_HOLDS_VALUE (id))
    return json_to_string (id, FALSE);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, position);
}
