/* filter: drops records by length, missing fields, blocked words or patterns, or script.
 *
 *   cria data 'file location=raw.jsonl ! filter min-chars=20 max-chars=4000 require=instruction,output blocklist=as\ an\ AI ! jsonl location=kept.jsonl'
 *
 * Lengths count Unicode characters of the named fields together. The script
 * ratio is the share of letters (not digits, spaces or punctuation) written
 * in the chosen script. Each dropped record is counted under its reason.
 * Streams. */
#include "config.h"

#include <string.h>

#include "curate.h"

static const CriaPropSpec filter_props[] = {
  FIELDS_PROP ("instruction,input,output,messages"),
  { "min-chars", CRIA_PROP_INT, "0", 0, (double) G_MAXINT64, NULL,
    "drop records whose fields hold fewer characters (reason too-short)" },
  { "max-chars", CRIA_PROP_INT, "0", 0, (double) G_MAXINT64, NULL,
    "drop records whose fields hold more characters; 0: no bound (reason too-long)" },
  { "require", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "comma-separated fields that must be present and non-empty (reason missing-field)" },
  { "blocklist", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "comma-separated words or phrases, matched case-insensitively (reason blocked)" },
  { "blocklist-file", CRIA_PROP_STRING, NULL, 0, 0, NULL, "a file of blocked words or phrases, one a line" },
  { "regex", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "drop records matching this regular expression (PCRE; reason blocked)" },
  { "script", CRIA_PROP_ENUM, "any", 0, 0, "any|han|latin|cyrillic|arabic|hangul|hiragana|katakana",
    "the script letters should be written in" },
  { "min-script-ratio", CRIA_PROP_DOUBLE, "0.5", 0, 1, NULL,
    "least share of letters in that script (reason wrong-script)" },
  CRIA_PROP_END
};

typedef struct {
  char **fields, **require;
  gint64 min_chars, max_chars;
  GPtrArray *blocked; /* case-folded phrases */
  GRegex *regex;
  GUnicodeScript script;
  gboolean any_script;
  double min_ratio;
} Filter;

static void
filter_destroy (gpointer data)
{
  Filter *self = data;
  g_strfreev (self->fields);
  g_strfreev (self->require);
  g_ptr_array_unref (self->blocked);
  if (self->regex)
    g_regex_unref (self->regex);
  g_free (self);
}

static void
add_blocked (Filter *self, const char *phrase)
{
  g_autofree char *p = g_strstrip (g_strdup (phrase));
  if (*p)
    g_ptr_array_add (self->blocked, g_utf8_casefold (p, -1));
}

static gpointer
filter_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  static const struct {
    const char *name;
    GUnicodeScript script;
  } scripts[] = {
    { "han", G_UNICODE_SCRIPT_HAN },           { "latin", G_UNICODE_SCRIPT_LATIN },
    { "cyrillic", G_UNICODE_SCRIPT_CYRILLIC }, { "arabic", G_UNICODE_SCRIPT_ARABIC },
    { "hangul", G_UNICODE_SCRIPT_HANGUL },     { "hiragana", G_UNICODE_SCRIPT_HIRAGANA },
    { "katakana", G_UNICODE_SCRIPT_KATAKANA },
  };
  Filter *self = g_new0 (Filter, 1);
  self->fields = curate_fields (props);
  self->min_chars = cria_props_get_int (props, "min-chars");
  self->max_chars = cria_props_get_int (props, "max-chars");
  const char *req = cria_props_get_string (props, "require");
  self->require = req ? g_strsplit (req, ",", -1) : NULL;
  self->blocked = g_ptr_array_new_with_free_func (g_free);
  const char *bl = cria_props_get_string (props, "blocklist");
  g_auto (GStrv) words = bl ? g_strsplit (bl, ",", -1) : NULL;
  for (guint i = 0; words && words[i]; i++)
    add_blocked (self, words[i]);
  const char *blf = cria_props_get_string (props, "blocklist-file");
  if (blf) {
    g_autoptr (CriaInput) in = cria_input_open (blf, error);
    const char *line;
    gsize len;
    GError *rerr = NULL;
    while (in && cria_input_read_line (in, &line, &len, &rerr))
      add_blocked (self, line);
    if (!in || rerr) {
      if (rerr)
        g_propagate_error (error, rerr);
      filter_destroy (self);
      return NULL;
    }
  }
  const char *re = cria_props_get_string (props, "regex");
  if (re && !(self->regex = g_regex_new (re, G_REGEX_OPTIMIZE, 0, error))) {
    g_prefix_error (error, "regex: ");
    filter_destroy (self);
    return NULL;
  }
  const char *script = cria_props_get_string (props, "script");
  self->any_script = !strcmp (script, "any");
  for (guint i = 0; i < G_N_ELEMENTS (scripts); i++)
    if (!strcmp (script, scripts[i].name))
      self->script = scripts[i].script;
  self->min_ratio = cria_props_get_double (props, "min-script-ratio");
  return self;
}

/* Why the record must go, or NULL to keep it. */
static const char *
verdict (Filter *self, const CriaRecord *r)
{
  for (guint i = 0; self->require && self->require[i]; i++) {
    const char *name = g_strstrip (self->require[i]);
    const char *v = cria_record_get_field (r, name);
    gboolean has = !strcmp (name, "messages") ? r->messages && r->messages->len : v && *v;
    if (!has)
      return "missing-field";
  }
  g_autofree char *text = curate_record_text (r, self->fields);
  glong n = g_utf8_strlen (text, -1);
  for (const char *p = text; *p; p++)
    n -= *p == '\x1f' || *p == '\n';
  if (n < self->min_chars)
    return "too-short";
  if (self->max_chars && n > self->max_chars)
    return "too-long";
  if (self->blocked->len) {
    g_autofree char *folded = g_utf8_casefold (text, -1);
    for (guint i = 0; i < self->blocked->len; i++)
      if (strstr (folded, g_ptr_array_index (self->blocked, i)))
        return "blocked";
  }
  if (self->regex && g_regex_match (self->regex, text, 0, NULL))
    return "blocked";
  if (!self->any_script) {
    guint64 letters = 0, in_script = 0;
    for (const char *p = text; *p; p = g_utf8_next_char (p)) {
      gunichar c = g_utf8_get_char (p);
      if (!g_unichar_isalpha (c))
        continue;
      letters++;
      in_script += g_unichar_get_script (c) == self->script;
    }
    if (!letters || (double) in_script / letters < self->min_ratio)
      return "wrong-script";
  }
  return NULL;
}

static gboolean
filter_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  const char *why = verdict (data, record);
  if (why) {
    cria_record_free (record);
    cria_emit_skip (out, why);
    return TRUE;
  }
  return cria_emit (out, record, error);
}

static const CriaStageVTable filter_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = filter_create,
  .destroy = filter_destroy,
  .push = filter_push,
};

static const CriaProviderInfo cria_filter_info = {
  .name = "filter",
  .description = "Drops records by length, required fields, blocklist, regex or script ratio",
  .example =
      "file location=raw.jsonl ! filter min-chars=20 require=instruction,output script=han ! jsonl location=kept.jsonl",
  .props = filter_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_filter_register (CriaPlugin *plugin);

void
cria_filter_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &cria_filter_info, &filter_vtable);
}
