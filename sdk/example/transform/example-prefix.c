/* example-prefix: an out-of-tree cria plugin, built against the installed SDK.
 *
 *   cria data 'file location=in.jsonl ! example-prefix text="Q: " ! jsonl location=out.jsonl'
 *
 * It puts a fixed text in front of one field of every record. Build it with
 * the Makefile beside it (pkg-config cria-1.0) and put the .so in a directory
 * on CRIA_PLUGIN_PATH, or install it into `pkg-config --variable=pluginsdir cria-1.0`. */
#include <cria/cria.h>

static const CriaPropSpec prefix_props[] = {
  { .name = "text", .type = CRIA_PROP_STRING, .default_value = "", .blurb = "the text to put in front" },
  { .name = "field",
    .type = CRIA_PROP_ENUM,
    .default_value = "instruction",
    .choices = "instruction|input|output",
    .blurb = "the field to change" },
  CRIA_PROP_END
};

typedef struct {
  char *text;
  char *field;
} Prefix;

static gpointer
prefix_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Prefix *self = g_new0 (Prefix, 1);
  self->text = g_strdup (cria_props_get_string (props, "text"));
  self->field = g_strdup (cria_props_get_string (props, "field"));
  return self;
}

static void
prefix_destroy (gpointer data)
{
  Prefix *self = data;
  g_free (self->text);
  g_free (self->field);
  g_free (self);
}

static gboolean
prefix_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Prefix *self = data;
  const char *old = cria_record_get_field (record, self->field);
  g_autofree char *value = g_strconcat (self->text, old ? old : "", NULL);
  cria_record_set_field (record, self->field, value);
  return cria_emit (out, record, error);
}

static const CriaStageVTable prefix_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = prefix_create,
  .destroy = prefix_destroy,
  .push = prefix_push,
};

static const CriaProviderInfo prefix_info = {
  .name = "example-prefix",
  .description = "Puts a fixed text in front of a field (an SDK example)",
  .example = "file location=in.jsonl ! example-prefix text=\"Q: \" ! jsonl location=out.jsonl",
  .props = prefix_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  cria_plugin_add_transform (plugin, &prefix_info, &prefix_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (example, "An example plugin built out of tree", plugin_init, "1.0", "MIT", "cria SDK example");
