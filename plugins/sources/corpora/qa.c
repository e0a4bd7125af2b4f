/* qa.c: question-answering corpora: SQuAD v1.1/v2.0, NQ-open, CoQA.
 *
 *   cria data 'squad location=dev-v2.0.json unanswerable=skip ! alpaca location=squad.json'
 *   cria data 'nq location=NQ-open.dev.jsonl ! jsonl location=nq.jsonl'
 *   cria data 'coqa location=coqa-dev-v1.0.json mode=turns ! jsonl location=coqa.jsonl'
 *
 * Every record keeps all reference answers in its `answers` metadata, so the
 * squad metric can score against the full set. */
#include "config.h"

#include <string.h>

#include "corpora.h"

/* ---- squad ------------------------------------------------------------------ */

static const CriaPropSpec squad_props[] = {
  CONV_LOCATION_PROP ("a SQuAD v1.1 or v2.0 JSON file ({data: [{title, paragraphs: [{context, qas}]}]})"),
  { "context", CRIA_PROP_ENUM, "input", 0, 0, "input|inline",
    "input: the paragraph is the record's input; inline: it is written into the instruction" },
  { "instruction", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "instruction template over {question}, {context}, {title} (default {question}; inline: {context} and {question} on "
    "separate paragraphs)" },
  { "unanswerable", CRIA_PROP_ENUM, "refuse", 0, 0, "refuse|skip",
    "v2.0 questions without an answer: answered with the refusal, or skipped (counted)" },
  { "refusal", CRIA_PROP_STRING, "The context does not contain the answer to this question.", 0, 0, NULL,
    "the output of an unanswerable question" },
  CRIA_PROP_END
};

typedef struct {
  const char *question, *context, *title;
} SquadLookup;

static const char *
squad_lookup (const char *name, gpointer data)
{
  SquadLookup *l = data;
  return !strcmp (name, "question")  ? l->question
         : !strcmp (name, "context") ? l->context
         : !strcmp (name, "title")   ? l->title
                                     : NULL;
}

static CriaRecord *
squad_question (Conv *self, const CriaJsonValue *qa, const char *context, const char *title, const char *where,
                GError **error)
{
  const char *question = cria_json_value_string_member (qa, "question");
  const char *id = cria_json_value_string_member (qa, "id");
  const CriaJsonValue *answers = cria_json_value_member (qa, "answers");
  if (cria_json_value_type (answers) != CRIA_JSON_ARRAY)
    answers = NULL;
  if (!question || !id || !answers) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field '%s'", where,
                 !question ? "question"
                 : !id     ? "id"
                           : "answers");
    return NULL;
  }
  guint n_answers = cria_json_value_length (answers);
  g_autoptr (GPtrArray) texts = g_ptr_array_sized_new (n_answers);
  for (guint i = 0; i < n_answers; i++) {
    const char *t = cria_json_value_string_member (cria_json_value_element (answers, i), "text");
    if (!t) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s: field 'answers[%u].text': expected a string", where, i);
      return NULL;
    }
    g_ptr_array_add (texts, (gpointer) t);
  }
  gboolean impossible = cria_json_value_truth (cria_json_value_member (qa, "is_impossible"), FALSE) || texts->len == 0;
  if (impossible && !strcmp (cria_props_get_string (self->props, "unanswerable"), "skip")) {
    cria_context_skip (self->ctx, "unanswerable");
    return NULL;
  }
  gboolean inline_ctx = !strcmp (cria_props_get_string (self->props, "context"), "inline");
  const char *tmpl = conv_prop (self, "instruction");
  if (!tmpl)
    tmpl = inline_ctx ? "{context}\n\n{question}" : "{question}";
  SquadLookup l = { question, context, title };
  g_autoptr (CriaRecord) r = cria_record_new ();
  r->instruction = cria_template_render (tmpl, squad_lookup, &l, error);
  if (!r->instruction)
    return NULL;
  if (!inline_ctx)
    r->input = g_strdup (context);
  r->output = g_strdup (impossible ? cria_props_get_string (self->props, "refusal") : g_ptr_array_index (texts, 0));
  json_object_set_string_member (r->meta, "source", "squad");
  json_object_set_string_member (r->meta, "id", id);
  if (title)
    json_object_set_string_member (r->meta, "title", title);
  conv_set_strings (r, "answers", texts);
  json_object_set_boolean_member (r->meta, "unanswerable", impossible);
  return g_steal_pointer (&r);
}

/* One paragraph per fill: units count paragraphs across articles. */
typedef struct {
  guint article, paragraph;
} SquadPos;

static CriaFlow
squad_fill (Conv *self, GError **error)
{
  SquadPos *pos = self->data;
  const CriaJsonValue *data = cria_json_value_member (cria_json_doc_get_root (self->doc), "data");
  const char *path = cria_props_get_string (self->props, "location");
  if (cria_json_value_type (data) != CRIA_JSON_ARRAY) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not SQuAD: expected an object with a 'data' array", path);
    return CRIA_FLOW_ERROR;
  }
  for (;;) {
    if (pos->article >= cria_json_value_length (data))
      return CRIA_FLOW_EOS;
    const CriaJsonValue *article = cria_json_value_element (data, pos->article);
    const CriaJsonValue *paras = cria_json_value_member (article, "paragraphs");
    if (cria_json_value_type (paras) != CRIA_JSON_ARRAY)
      paras = NULL;
    if (!paras || pos->paragraph >= cria_json_value_length (paras)) {
      pos->article++;
      pos->paragraph = 0;
      if (!paras) {
        g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                     "%s: data[%u]: missing field 'paragraphs'", path, pos->article - 1);
        return CRIA_FLOW_ERROR;
      }
      continue;
    }
    guint pi = pos->paragraph++;
    g_autofree char *where = g_strdup_printf ("%s: data[%u].paragraphs[%u]", path, pos->article, pi);
    const CriaJsonValue *para = cria_json_value_element (paras, pi);
    const char *context = cria_json_value_string_member (para, "context");
    const CriaJsonValue *qas = cria_json_value_member (para, "qas");
    if (cria_json_value_type (qas) != CRIA_JSON_ARRAY)
      qas = NULL;
    if (!context || !qas) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: missing field '%s'", where,
                   !context ? "context" : "qas");
      return CRIA_FLOW_ERROR;
    }
    const char *title = cria_json_value_string_member (article, "title");
    GError *first = NULL;
    for (guint q = 0; q < cria_json_value_length (qas); q++) {
      g_autofree char *qwhere = g_strdup_printf ("%s.qas[%u]", where, q);
      const CriaJsonValue *qa = cria_json_value_element (qas, q);
      GError *qerr = NULL;
      CriaRecord *r = cria_json_value_type (qa) == CRIA_JSON_OBJECT
                          ? squad_question (self, qa, context, title, qwhere, &qerr)
                          : NULL;
      /* The paragraph's good questions are queued; the first bad one is reported. */
      if (qerr && !first)
        first = qerr;
      else if (qerr)
        g_error_free (qerr);
      if (r)
        g_queue_push_tail (&self->pending, r);
    }
    if (first) {
      g_propagate_error (error, first);
      return CRIA_FLOW_ERROR;
    }
    return CRIA_FLOW_OK;
  }
}

static gpointer
squad_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Conv *self = conv_new_doc (props, ctx, squad_fill, error);
  if (self) {
    self->data = g_new0 (SquadPos, 1);
    self->data_free = g_free;
  }
  return self;
}

/* ---- nq ---------------------------------------------------------------------- */

static const CriaPropSpec nq_props[] = { CONV_LOCATION_PROP ("NQ-open JSON lines ({question, answer: [...]})"),
                                         CONV_FORMAT_PROP,
                                         { "instruction", CRIA_PROP_STRING, "{question}", 0, 0, NULL,
                                           "instruction template over the row's members" },
                                         CRIA_PROP_END };

static CriaRecord *
nq_row (Conv *self, JsonObject *row, const char *where, GError **error)
{
  g_autofree char *question = cria_rows_require_text (row, "question", where, error);
  if (!question)
    return NULL;
  JsonNode *an = json_object_get_member (row, "answer");
  if (!an || !JSON_NODE_HOLDS_ARRAY (an) || json_array_get_length (json_node_get_array (an)) == 0) {
    g_set_error (error, CRIA_RECORD_ERROR, an ? CRIA_RECORD_ERROR_INVALID_FIELD : CRIA_RECORD_ERROR_MISSING_FIELD,
                 "%s: field 'answer': %s", where, an ? "expected a non-empty array of strings" : "missing");
    return NULL;
  }
  JsonArray *a = json_node_get_array (an);
  g_autoptr (GPtrArray) answers = g_ptr_array_new ();
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD,
                   "%s: field 'answer[%u]': expected a string", where, i);
      return NULL;
    }
    g_ptr_array_add (answers, (gpointer) json_node_get_string (e));
  }
  g_autoptr (CriaRecord) r = cria_record_new ();
  r->instruction = conv_render_row (cria_props_get_string (self->props, "instruction"), row, where, error);
  if (!r->instruction)
    return NULL;
  r->output = g_strdup (g_ptr_array_index (answers, 0));
  json_object_set_string_member (r->meta, "source", "nq");
  conv_set_strings (r, "answers", answers);
  return g_steal_pointer (&r);
}

static gpointer
nq_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_rows (props, ctx, nq_row, error);
}

/* ---- coqa -------------------------------------------------------------------- */

static const CriaPropSpec coqa_props[] = {
  CONV_LOCATION_PROP ("a CoQA JSON file ({data: [{id, story, questions, answers, additional_answers}]})"),
  { "mode", CRIA_PROP_ENUM, "turns", 0, 0, "turns|messages",
    "turns: one record per question, its instruction holding the dialogue so far; messages: one multi-turn record per "
    "story" },
  { "unknown", CRIA_PROP_ENUM, "keep", 0, 0, "keep|skip|refuse",
    "questions answered 'unknown': kept as they are, skipped (turns mode), or answered with the refusal" },
  { "refusal", CRIA_PROP_STRING, "The story does not say.", 0, 0, NULL,
    "the answer given to 'unknown' questions when unknown=refuse" },
  CRIA_PROP_END
};

static const char *
coqa_text (JsonArray *a, guint i, const char *member)
{
  JsonObject *o = a && i < json_array_get_length (a) ? json_array_get_object_element (a, i) : NULL;
  return o ? json_object_get_string_member_with_default (o, member, NULL) : NULL;
}

static CriaFlow
coqa_fill (Conv *self, GError **error)
{
  JsonObject *root = JSON_NODE_HOLDS_OBJECT (self->document) ? json_node_get_object (self->document) : NULL;
  const char *path = cria_props_get_string (self->props, "location");
  if (!root || !json_object_has_member (root, "data") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (root, "data"))) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not CoQA: expected an object with a 'data' array", path);
    return CRIA_FLOW_ERROR;
  }
  JsonArray *data = json_object_get_array_member (root, "data");
  if (self->unit >= json_array_get_length (data))
    return CRIA_FLOW_EOS;
  guint si = self->unit++;
  JsonObject *story = json_array_get_object_element (data, si);
  const char *text = story ? json_object_get_string_member_with_default (story, "story", NULL) : NULL;
  JsonArray *qs = story && json_object_has_member (story, "questions")
                      ? json_object_get_array_member (story, "questions")
                      : NULL;
  JsonArray *as = story && json_object_has_member (story, "answers") ? json_object_get_array_member (story, "answers")
                                                                     : NULL;
  if (!text || !qs || !as || json_array_get_length (qs) != json_array_get_length (as)) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD, "%s: data[%u]: %s", path, si,
                 !text ? "missing field 'story'"
                 : !qs ? "missing field 'questions'"
                 : !as ? "missing field 'answers'"
                       : "'questions' and 'answers' differ in length");
    return CRIA_FLOW_ERROR;
  }
  const char *id = json_object_get_string_member_with_default (story, "id", NULL);
  JsonObject *extra = json_object_has_member (story, "additional_answers")
                          ? json_object_get_object_member (story, "additional_answers")
                          : NULL;
  const char *unknown = cria_props_get_string (self->props, "unknown");
  gboolean per_turn = !strcmp (cria_props_get_string (self->props, "mode"), "turns");
  g_autoptr (GString) history = g_string_new (NULL);
  g_autoptr (CriaRecord) dialogue = cria_record_new ();
  for (guint i = 0; i < json_array_get_length (qs); i++) {
    const char *q = coqa_text (qs, i, "input_text"), *a = coqa_text (as, i, "input_text");
    if (!q || !a) {
      g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_MISSING_FIELD,
                   "%s: data[%u].%s[%u]: missing field 'input_text'", path, si, !q ? "questions" : "answers", i);
      return CRIA_FLOW_ERROR;
    }
    gboolean is_unknown = !g_ascii_strcasecmp (a, "unknown");
    const char *answer = is_unknown && !strcmp (unknown, "refuse") ? cria_props_get_string (self->props, "refusal") : a;
    if (per_turn && !(is_unknown && !strcmp (unknown, "skip"))) {
      CriaRecord *r = cria_record_new ();
      r->instruction = history->len ? g_strdup_printf ("%s\n\n%s", history->str, q) : g_strdup (q);
      r->input = g_strdup (text);
      r->output = g_strdup (answer);
      json_object_set_string_member (r->meta, "source", "coqa");
      if (id)
        json_object_set_string_member (r->meta, "id", id);
      json_object_set_int_member (r->meta, "turn", i + 1);
      g_autoptr (GPtrArray) refs = g_ptr_array_new ();
      g_ptr_array_add (refs, (gpointer) a);
      g_autoptr (GList) keys = extra ? json_object_get_members (extra) : NULL;
      for (GList *k = keys; k; k = k->next) {
        JsonNode *en = json_object_get_member (extra, k->data);
        const char *t = JSON_NODE_HOLDS_ARRAY (en) ? coqa_text (json_node_get_array (en), i, "input_text") : NULL;
        if (t)
          g_ptr_array_add (refs, (gpointer) t);
      }
      conv_set_strings (r, "answers", refs);
      json_object_set_boolean_member (r->meta, "unknown", is_unknown);
      g_queue_push_tail (&self->pending, r);
    } else if (per_turn) {
      cria_context_skip (self->ctx, "unknown");
    }
    g_string_append_printf (history, "%sQ: %s\nA: %s", history->len ? "\n" : "", q, answer);
    cria_record_add_message (dialogue, "user", q);
    cria_record_add_message (dialogue, "assistant", answer);
  }
  if (!per_turn) {
    /* The story is the system message, so the chat is about it. */
    g_autoptr (CriaRecord) chat = cria_record_new ();
    cria_record_add_message (chat, "system", text);
    for (guint i = 0; dialogue->messages && i < dialogue->messages->len; i++) {
      CriaMessage *m = g_ptr_array_index (dialogue->messages, i);
      cria_record_add_message (chat, m->role, m->content);
    }
    json_object_set_string_member (chat->meta, "source", "coqa");
    if (id)
      json_object_set_string_member (chat->meta, "id", id);
    g_queue_push_tail (&self->pending, g_steal_pointer (&chat));
  }
  return CRIA_FLOW_OK;
}

static gpointer
coqa_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  return conv_new_document (props, ctx, coqa_fill, error);
}

static SOURCE_VTABLE (squad);
static SOURCE_VTABLE (nq);
static SOURCE_VTABLE (coqa);

static const CriaProviderInfo squad_info = {
  .name = "squad",
  .description = "Converts SQuAD v1.1/v2.0 questions into records with every reference answer",
  .example = "squad location=dev-v2.0.json unanswerable=skip ! alpaca location=squad.json",
  .props = squad_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo nq_info = {
  .name = "nq",
  .description = "Converts NQ-open questions (question, answer[]) into records",
  .example = "nq location=NQ-open.dev.jsonl ! jsonl location=nq.jsonl",
  .props = nq_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo coqa_info = {
  .name = "coqa",
  .description = "Converts CoQA stories into per-turn records or one conversation per story",
  .example = "coqa location=coqa-dev-v1.0.json mode=messages ! sharegpt location=coqa.json",
  .props = coqa_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_qa_register (CriaPlugin *plugin);

void
cria_qa_register (CriaPlugin *plugin)
{
  cria_plugin_add_source (plugin, &squad_info, &squad_vtable);
  cria_plugin_add_source (plugin, &nq_info, &nq_vtable);
  cria_plugin_add_source (plugin, &coqa_info, &coqa_vtable);
}
