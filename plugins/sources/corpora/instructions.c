/* instructions.c: instruction corpora: Dolly, and any data file through mapper.
 *
 *   cria data 'dolly location=databricks-dolly-15k.jsonl mode=reverse ! jsonl location=dolly-rev.jsonl'
 *   cria data 'mapper location=medical.json instruction={Question} output={Response} reasoning=Complex_CoT ! alpaca location=med.json'
 *
 * mapper builds each record from `{field}` templates over the row's members,
 * for domain data such as {symptoms, diagnosis} or {Question, Complex_CoT,
 * Response}; a reasoning field can be placed before the answer in the output
 * (between <think> tags) or kept as metadata. */
#include "config.h"

#include <string.h>

#include "corpora.h"

/* ---- dolly -------------------------------------------------------------------- */

static const CriaPropSpec dolly_props[] = {
  CONV_LOCATION_PROP ("Dolly rows ({instruction, context, response, category})"),
  CONV_FORMAT_PROP,
  { "mode", CRIA_PROP_ENUM, "forward", 0, 0, "forward|reverse",
    "forward: the instruction asks for the response; reverse: the response is given and the record asks for the "
    "instruction that produced it" },
  { "reverse-instruction", CRIA_PROP_STRING, "Write the instruction that the following response answers.", 0, 0, NULL,
    "the instruction of reverse-mode records" },
  CRIA_PROP_END
};

static CriaRecord *
dolly_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  g_autofree char *instruction = cria_rows_require_text (row, "instruction", where, error);
  if (!instruction)
    return NULL;
  g_autofree char *response = cria_rows_require_text (row, "response", where, error);
  if (!response)
    return NULL;
  g_autofree char *context = NULL, *category = NULL;
  if (!cria_rows_get_text (row, "context", where, &context, error) ||
      !cria_rows_get_text (row, "category", where, &category, error))
    return NULL;
  g_autoptr (CriaRecord) r = cria_record_new ();
  if (!strcmp (cria_props_get_string (self->props, "mode"), "reverse")) {
    r->instruction = g_strdup (cria_props_get_string (self->props, "reverse-instruction"));
    r->input = context && *context ? g_strdup_printf ("%s\n\nContext:\n%s", response, context)
                                   : g_steal_pointer (&response);
    r->output = g_steal_pointer (&instruction);
  } else {
    r->instruction = g_steal_pointer (&instruction);
    r->input = g_strdup (context ? context : "");
    r->output = g_steal_pointer (&response);
  }
  json_object_set_string_member (r->meta, "source", "dolly");
  if (category)
    json_object_set_string_member (r->meta, "category", category);
  return g_steal_pointer (&r);
}

static gpointer
dolly_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_rows (props, ctx, dolly_row, error);
}

/* ---- mapper ------------------------------------------------------------------- */

static const CriaPropSpec mapper_props[] = {
  CONV_LOCATION_PROP ("a JSON lines, JSON array or CSV file with named fields"),
  CONV_FORMAT_PROP,
  { "instruction", CRIA_PROP_STRING, NULL, 0, 0, NULL, "template of the instruction, e.g. {Question}",
    CRIA_PROP_FLAG_REQUIRED },
  { "input", CRIA_PROP_STRING, NULL, 0, 0, NULL, "template of the input (none when unset)" },
  { "output", CRIA_PROP_STRING, NULL, 0, 0, NULL, "template of the output, e.g. {Response}", CRIA_PROP_FLAG_REQUIRED },
  { "system", CRIA_PROP_STRING, NULL, 0, 0, NULL, "template of the system prompt (none when unset)" },
  { "reasoning", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "a field holding the reasoning behind the output, e.g. Complex_CoT" },
  { "reasoning-place", CRIA_PROP_ENUM, "output", 0, 0, "output|meta",
    "output: <think>reasoning</think> then the output; meta: kept in the record's reasoning metadata" },
  { "keep", CRIA_PROP_STRING, NULL, 0, 0, NULL, "comma-separated fields copied into the record's metadata" },
  { "source-name", CRIA_PROP_STRING, "mapper", 0, 0, NULL, "the record's source metadata" },
  CRIA_PROP_END
};

static gboolean
render_into (Conv *self, const char *prop, JsonObject *row, const char *where, char **slot, GError **error)
{
  const char *tmpl = conv_prop (self, prop);
  if (!tmpl)
    return TRUE;
  *slot = conv_render_row (tmpl, row, where, error);
  return *slot != NULL;
}

static CriaRecord *
mapper_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  g_autoptr (CriaRecord) r = cria_record_new ();
  if (!render_into (self, "instruction", row, where, &r->instruction, error) ||
      !render_into (self, "input", row, where, &r->input, error) ||
      !render_into (self, "output", row, where, &r->output, error) ||
      !render_into (self, "system", row, where, &r->system, error))
    return NULL;
  const char *reasoning = conv_prop (self, "reasoning");
  if (reasoning) {
    g_autofree char *why = cria_rows_require_text (row, reasoning, where, error);
    if (!why)
      return NULL;
    if (!strcmp (cria_props_get_string (self->props, "reasoning-place"), "output")) {
      char *joined = g_strdup_printf ("<think>\n%s\n</think>\n\n%s", why, r->output);
      g_free (r->output);
      r->output = joined;
    } else {
      json_object_set_string_member (r->meta, "reasoning", why);
    }
  }
  json_object_set_string_member (r->meta, "source", cria_props_get_string (self->props, "source-name"));
  const char *keep = conv_prop (self, "keep");
  g_auto (GStrv) names = keep ? g_strsplit (keep, ",", -1) : NULL;
  for (guint i = 0; names && names[i]; i++) {
    JsonNode *n = json_object_get_member (row, g_strstrip (names[i]));
    if (n)
      json_object_set_member (r->meta, names[i], json_node_copy (n));
  }
  return g_steal_pointer (&r);
}

static gpointer
mapper_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_rows (props, ctx, mapper_row, error);
}

static SOURCE_VTABLE (dolly);
static SOURCE_VTABLE (mapper);

static const CriaProviderInfo dolly_info = {
  .name = "dolly",
  .description = "Converts Dolly records (context becomes input; reverse mode asks for the instruction)",
  .example = "dolly location=databricks-dolly-15k.jsonl ! alpaca location=dolly.json",
  .props = dolly_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo mapper_info = {
  .name = "mapper",
  .description = "Maps any JSON/JSONL/CSV rows into records through {field} templates",
  .example = "mapper location=med.json instruction={Question} output={Response} reasoning=Complex_CoT ! alpaca "
             "location=med-sft.json",
  .props = mapper_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_instruction_register (CriaPlugin *plugin);

void
cria_instruction_register (CriaPlugin *plugin)
{
  cria_plugin_add_source (plugin, &dolly_info, &dolly_vtable);
  cria_plugin_add_source (plugin, &mapper_info, &mapper_vtable);
}
