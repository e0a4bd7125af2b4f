/* common.c: the converter skeleton and helpers shared by every corpus. */
#include "config.h"

#include <string.h>

#include "corpora.h"

static Conv *
conv_alloc (const CriaProps *props, CriaContext *ctx)
{
  Conv *self = g_new0 (Conv, 1);
  self->props = props;
  self->ctx = ctx;
  g_queue_init (&self->pending);
  return self;
}

void
conv_destroy (gpointer data)
{
  Conv *self = data;
  cria_rows_free (self->rows);
  if (self->document)
    json_node_unref (self->document);
  cria_json_doc_free (self->doc);
  g_queue_clear_full (&self->pending, (GDestroyNotify) cria_record_free);
  if (self->data_free)
    self->data_free (self->data);
  g_free (self);
}

static gboolean
has_prop (const CriaProps *props, const char *name)
{
  for (const CriaPropSpec *s = cria_props_get_specs (props); s->name; s++)
    if (!strcmp (s->name, name))
      return TRUE;
  return FALSE;
}

static CriaFlow
fill_row (Conv *self, GError **error)
{
  g_autoptr (JsonObject) row = NULL;
  CriaFlow flow = cria_rows_next (self->rows, &row, error);
  if (flow != CRIA_FLOW_OK)
    return flow;
  GError *rerr = NULL;
  CriaRecord *r = self->row (self, row, cria_rows_where (self->rows), &rerr);
  if (rerr) {
    g_propagate_error (error, rerr);
    return CRIA_FLOW_ERROR;
  }
  if (r)
    g_queue_push_tail (&self->pending, r);
  return CRIA_FLOW_OK;
}

Conv *
conv_new_rows (const CriaProps *props, CriaContext *ctx, ConvRow row, GError **error)
{
  const char *format = has_prop (props, "format") ? cria_props_get_string (props, "format") : "auto";
  CriaRows *rows = cria_rows_open (cria_props_get_string (props, "location"), format, error);
  if (!rows)
    return NULL;
  Conv *self = conv_alloc (props, ctx);
  self->rows = rows;
  self->row = row;
  self->fill = fill_row;
  return self;
}

/* Takes `document` or `doc`, whichever is not NULL; NULL when both are. */
static Conv *
conv_over (const CriaProps *props, CriaContext *ctx, ConvFill fill, JsonNode *document, CriaJsonDoc *doc)
{
  if (!document && !doc)
    return NULL;
  Conv *self = conv_alloc (props, ctx);
  self->document = document;
  self->doc = doc;
  self->fill = fill;
  return self;
}

Conv *
conv_new_document (const CriaProps *props, CriaContext *ctx, ConvFill fill, GError **error)
{
  return conv_over (props, ctx, fill, cria_json_load_file (cria_props_get_string (props, "location"), error), NULL);
}

Conv *
conv_new_doc (const CriaProps *props, CriaContext *ctx, ConvFill fill, GError **error)
{
  return conv_over (props, ctx, fill, NULL, cria_json_doc_load_file (cria_props_get_string (props, "location"), error));
}

CriaFlow
conv_next (gpointer data, CriaRecord **record, GError **error)
{
  Conv *self = data;
  while (g_queue_is_empty (&self->pending)) {
    CriaFlow flow = self->fill (self, error);
    if (flow != CRIA_FLOW_OK)
      return flow;
  }
  *record = g_queue_pop_head (&self->pending);
  return CRIA_FLOW_OK;
}

typedef struct {
  JsonObject *row;
  GPtrArray *owned;
  const char *where;
  GError *error;
} RowLookup;

static const char *
row_lookup (const char *name, gpointer data)
{
  RowLookup *l = data;
  JsonNode *n = json_object_get_member (l->row, name);
  if (n && JSON_NODE_HOLDS_ARRAY (n))
    n = json_array_get_length (json_node_get_array (n)) ? json_array_get_element (json_node_get_array (n), 0) : NULL;
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return NULL;
  g_autoptr (JsonObject) one = json_object_new ();
  json_object_set_member (one, name, json_node_copy (n));
  char *v = NULL;
  if (!l->error && cria_rows_get_text (one, name, l->where, &v, &l->error) && v)
    g_ptr_array_add (l->owned, v);
  return v;
}

char *
conv_render_row (const char *tmpl, JsonObject *row, const char *where, GError **error)
{
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  RowLookup l = { row, owned, where, NULL };
  GError *terr = NULL;
  char *text = cria_template_render (tmpl, row_lookup, &l, &terr);
  if (l.error) {
    g_free (text);
    g_clear_error (&terr);
    g_propagate_error (error, l.error);
    return NULL;
  }
  if (!text)
    g_propagate_prefixed_error (error, terr, "%s: ", where);
  return text;
}

const char *
conv_prop (Conv *self, const char *name)
{
  const char *v = cria_props_get_string (self->props, name);
  return v && *v ? v : NULL;
}

void
conv_set_strings (CriaRecord *r, const char *member, GPtrArray *strings)
{
  JsonArray *a = json_array_new ();
  for (guint i = 0; i < strings->len; i++)
    json_array_add_string_element (a, g_ptr_array_index (strings, i));
  json_object_set_array_member (r->meta, member, a);
}
