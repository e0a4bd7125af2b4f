/* clean: tidies the text of each record, field by field.
 *
 *   cria data 'file location=scraped.jsonl ! clean html=true ! jsonl location=clean.jsonl'
 *
 * In this order: HTML tags dropped and the common entities decoded, Unicode
 * NFC, control characters dropped (newlines and tabs stay), runs of spaces
 * collapsed to one and of blank lines to one, both ends trimmed. Streams. */
#include "config.h"

#include <string.h>

#include "curate.h"

static const CriaPropSpec clean_props[] = {
  FIELDS_PROP ("instruction,input,output,system,messages"),
  { "html", CRIA_PROP_BOOL, "true", 0, 0, NULL, "drop HTML tags and decode &amp; &lt; &gt; &quot; &#39; &nbsp;" },
  { "nfc", CRIA_PROP_BOOL, "true", 0, 0, NULL, "normalize to Unicode NFC" },
  { "control", CRIA_PROP_BOOL, "true", 0, 0, NULL, "drop control characters other than newline and tab" },
  { "whitespace", CRIA_PROP_BOOL, "true", 0, 0, NULL, "collapse runs of spaces and of blank lines, trim both ends" },
  CRIA_PROP_END
};

typedef struct {
  char **fields;
  gboolean html, nfc, control, whitespace;
  GRegex *tags;
} Clean;

static char *
decode_entities (const char *s)
{
  static const char *const ent[][2] = {
    { "&lt;", "<" },   { "&gt;", ">" },   { "&quot;", "\"" }, { "&#39;", "'" },
    { "&apos;", "'" }, { "&nbsp;", " " }, { "&amp;", "&" },
  };
  char *out = g_strdup (s);
  for (guint i = 0; i < G_N_ELEMENTS (ent); i++) {
    if (!strstr (out, ent[i][0]))
      continue;
    g_auto (GStrv) parts = g_strsplit (out, ent[i][0], -1);
    g_free (out);
    out = g_strjoinv (ent[i][1], parts);
  }
  return out;
}

static char *
collapse (const char *s)
{
  GString *out = g_string_new (NULL);
  guint spaces = 0, newlines = 0;
  for (const char *p = s; *p; p++) {
    if (*p == ' ' || *p == '\t' || *p == '\r') {
      spaces++;
      continue;
    }
    if (*p == '\n') {
      newlines++;
      spaces = 0;
      continue;
    }
    if (out->len && newlines)
      g_string_append (out, newlines > 1 ? "\n\n" : "\n");
    else if (out->len && spaces)
      g_string_append_c (out, ' ');
    spaces = newlines = 0;
    g_string_append_c (out, *p);
  }
  return g_string_free (out, FALSE);
}

static char *
clean_text (const char *text, gpointer data)
{
  Clean *self = data;
  char *s = g_strdup (text);
  if (self->html) {
    char *t = g_regex_replace_literal (self->tags, s, -1, 0, "", 0, NULL);
    g_free (s);
    s = decode_entities (t);
    g_free (t);
  }
  if (self->nfc) {
    char *t = g_utf8_normalize (s, -1, G_NORMALIZE_DEFAULT_COMPOSE);
    if (t) {
      g_free (s);
      s = t;
    }
  }
  if (self->control) {
    GString *out = g_string_sized_new (strlen (s));
    for (const char *p = s; *p; p = g_utf8_next_char (p)) {
      gunichar c = g_utf8_get_char (p);
      if (c == '\n' || c == '\t' || g_unichar_type (c) != G_UNICODE_CONTROL)
        g_string_append_unichar (out, c);
    }
    g_free (s);
    s = g_string_free (out, FALSE);
  }
  if (self->whitespace) {
    char *t = collapse (s);
    g_free (s);
    s = t;
  }
  return s;
}

static gpointer
clean_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Clean *self = g_new0 (Clean, 1);
  self->fields = curate_fields (props);
  self->html = cria_props_get_bool (props, "html");
  self->nfc = cria_props_get_bool (props, "nfc");
  self->control = cria_props_get_bool (props, "control");
  self->whitespace = cria_props_get_bool (props, "whitespace");
  self->tags = g_regex_new ("</?[A-Za-z][^<>]*>|<!--.*?-->", G_REGEX_DOTALL, 0, NULL);
  return self;
}

static void
clean_destroy (gpointer data)
{
  Clean *self = data;
  g_strfreev (self->fields);
  g_regex_unref (self->tags);
  g_free (self);
}

static gboolean
clean_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Clean *self = data;
  curate_map_fields (record, self->fields, clean_text, self);
  return cria_emit (out, record, error);
}

static const CriaStageVTable clean_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = clean_create,
  .destroy = clean_destroy,
  .push = clean_push,
};

static const CriaProviderInfo cria_clean_info = {
  .name = "clean",
  .description = "Strips HTML, normalizes to NFC, drops control characters and collapses whitespace",
  .example = "file location=scraped.jsonl ! clean ! jsonl location=clean.jsonl",
  .props = clean_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_clean_register (CriaPlugin *plugin);

void
cria_clean_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_clean_info, &clean_vtable);
}
