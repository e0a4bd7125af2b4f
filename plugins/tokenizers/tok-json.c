/* tok-json.c: reading a Hugging Face tokenizer.json into the engine.
 *
 *   cria tokenize --tokenizer qwen2.5/tokenizer.json input.txt
 *
 * Every component is read or refused by name: an unknown normalizer,
 * pre-tokenizer, model, post-processor or decoder is an error naming its JSON
 * path, never silently skipped. */
#include "config.h"

#include <string.h>

#include "tok.h"

typedef struct {
  const char *file;
  GError **error;
  /* Ids are below the number of tokens (the vocabulary's entries and the
   * added tokens): a dense vocabulary never needs more, and one stray large
   * id would otherwise size the id tables. */
  gint64 n_tokens;
} Ctx;

static gboolean G_GNUC_PRINTF (3, 4) fail (Ctx *c, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (c->error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: %s: %s", c->file, path, msg);
  return FALSE;
}

static gboolean G_GNUC_PRINTF (3, 4) unsupported (Ctx *c, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (c->error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "%s: %s: %s", c->file, path, msg);
  return FALSE;
}

/* A member that may be absent or null. */
static JsonNode *
member (JsonObject *o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  return n && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

static gboolean
is_type (JsonNode *n, GType t)
{
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == t;
}

/* The member `key` when it is present and of type t; NULL when absent (the
 * caller's default applies) or of another type (then *ok is FALSE). */
static JsonNode *
typed (Ctx *c, JsonObject *o, const char *path, const char *key, GType t, const char *what, gboolean *ok)
{
  JsonNode *n = member (o, key);
  if (n && !is_type (n, t)) {
    *ok = fail (c, path, "\"%s\" must be %s", key, what);
    return NULL;
  }
  return n;
}

static const char *
get_str (Ctx *c, JsonObject *o, const char *path, const char *key, const char *dflt, gboolean *ok)
{
  JsonNode *n = typed (c, o, path, key, G_TYPE_STRING, "a string", ok);
  return n ? json_node_get_string (n) : dflt;
}

static gboolean
get_bool (Ctx *c, JsonObject *o, const char *path, const char *key, gboolean dflt, gboolean *ok)
{
  JsonNode *n = typed (c, o, path, key, G_TYPE_BOOLEAN, "true or false", ok);
  return n ? json_node_get_boolean (n) : dflt;
}

static gint64
get_int (Ctx *c, JsonObject *o, const char *path, const char *key, gint64 dflt, gboolean *ok)
{
  JsonNode *n = typed (c, o, path, key, G_TYPE_INT64, "an integer", ok);
  return n ? json_node_get_int (n) : dflt;
}

/* The "type" of a component object, or NULL after an error. */
static const char *
component (Ctx *c, JsonNode *n, const char *path, JsonObject **obj)
{
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    fail (c, path, "expected an object");
    return NULL;
  }
  *obj = json_node_get_object (n);
  gboolean ok = TRUE;
  const char *type = get_str (c, *obj, path, "type", NULL, &ok);
  if (ok && !type)
    fail (c, path, "\"type\" is missing");
  return type;
}

/* {"String": s} or {"Regex": r} as a compiled regex. */
static GRegex *
pattern (Ctx *c, JsonObject *o, const char *path, char **literal)
{
  g_autofree char *p = g_strdup_printf ("%s.pattern", path);
  JsonNode *n = member (o, "pattern");
  if (!n || !JSON_NODE_HOLDS_OBJECT (n)) {
    fail (c, p, "expected {\"String\": ...} or {\"Regex\": ...}");
    return NULL;
  }
  JsonObject *po = json_node_get_object (n);
  gboolean ok = TRUE;
  const char *s = get_str (c, po, p, "String", NULL, &ok);
  const char *r = get_str (c, po, p, "Regex", NULL, &ok);
  if (!ok)
    return NULL;
  if (!s && !r) {
    fail (c, p, "expected {\"String\": ...} or {\"Regex\": ...}");
    return NULL;
  }
  g_autofree char *escaped = s ? g_regex_escape_string (s, -1) : NULL;
  if (literal)
    *literal = s ? g_strdup (s) : NULL;
  g_autoptr (GError) rerr = NULL;
  GRegex *re = g_regex_new (s ? escaped : r, G_REGEX_OPTIMIZE, 0, &rerr);
  if (!re)
    fail (c, p, "bad regular expression: %s", rerr->message);
  return re;
}

typedef gboolean (*LoadFunc) (Ctx *c, Tok *tok, JsonNode *n, const char *path);

/* A Sequence component: each element of the array `key`, loaded in order. */
static gboolean
load_sequence (Ctx *c, Tok *tok, JsonObject *o, const char *path, const char *key, LoadFunc load)
{
  JsonNode *list = member (o, key);
  if (!list || !JSON_NODE_HOLDS_ARRAY (list))
    return fail (c, path, "\"%s\" must be an array", key);
  JsonArray *a = json_node_get_array (list);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    g_autofree char *p = g_strdup_printf ("%s.%s[%u]", path, key, i);
    if (!load (c, tok, json_array_get_element (a, i), p))
      return FALSE;
  }
  return TRUE;
}

static gboolean
load_normalizer (Ctx *c, Tok *tok, JsonNode *n, const char *path)
{
  JsonObject *o;
  const char *type = component (c, n, path, &o);
  gboolean ok = TRUE;
  if (!type)
    return FALSE;
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (c, tok, o, path, "normalizers", load_normalizer);
  TokNorm nm = { 0 };
  static const struct {
    const char *name;
    TokNormKind kind;
  } simple[] = {
    { "NFC", NORM_NFC },
    { "NFD", NORM_NFD },
    { "NFKC", NORM_NFKC },
    { "NFKD", NORM_NFKD },
    { "Lowercase", NORM_LOWERCASE },
    { "StripAccents", NORM_STRIP_ACCENTS },
  };
  gboolean found = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (simple) && !found; i++)
    if (strcmp (type, simple[i].name) == 0) {
      nm.kind = simple[i].kind;
      found = TRUE;
    }
  if (found) {
  } else if (strcmp (type, "Prepend") == 0) {
    nm.kind = NORM_PREPEND;
    nm.str = g_strdup (get_str (c, o, path, "prepend", "", &ok));
  } else if (strcmp (type, "Replace") == 0) {
    nm.kind = NORM_REPLACE;
    nm.str = g_strdup (get_str (c, o, path, "content", "", &ok));
    if (!(nm.regex = pattern (c, o, path, NULL)))
      ok = FALSE;
  } else if (strcmp (type, "Strip") == 0) {
    nm.kind = NORM_STRIP;
    nm.a = get_bool (c, o, path, "strip_left", TRUE, &ok);
    nm.b = get_bool (c, o, path, "strip_right", TRUE, &ok);
  } else if (strcmp (type, "BertNormalizer") == 0) {
    nm.kind = NORM_BERT;
    nm.a = get_bool (c, o, path, "clean_text", TRUE, &ok);
    nm.b = get_bool (c, o, path, "handle_chinese_chars", TRUE, &ok);
    nm.d = get_bool (c, o, path, "lowercase", TRUE, &ok);
    /* strip_accents null follows lowercase, as in BERT. */
    nm.c = get_bool (c, o, path, "strip_accents", nm.d, &ok);
  } else
    return unsupported (c, path, "normalizer \"%s\" is not supported", type);
  g_array_append_val (tok->norms, nm);
  return ok;
}

static gboolean
split_behavior (Ctx *c, JsonObject *o, const char *path, TokSplitBehavior *how)
{
  gboolean ok = TRUE;
  const char *b = get_str (c, o, path, "behavior", "Isolated", &ok);
  static const char *const names[] = { "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext" };
  for (guint i = 0; ok && i < G_N_ELEMENTS (names); i++)
    if (strcmp (b, names[i]) == 0) {
      *how = (TokSplitBehavior) i;
      return TRUE;
    }
  return ok ? unsupported (c, path, "split behavior \"%s\" is not supported", b) : FALSE;
}

static gboolean
load_pretok (Ctx *c, Tok *tok, JsonNode *n, const char *path)
{
  JsonObject *o;
  const char *type = component (c, n, path, &o);
  gboolean ok = TRUE;
  if (!type)
    return FALSE;
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (c, tok, o, path, "pretokenizers", load_pretok);
  TokPre p = { 0 };
  if (strcmp (type, "Split") == 0) {
    p.kind = PRE_SPLIT;
    if (get_bool (c, o, path, "invert", FALSE, &ok))
      return ok ? unsupported (c, path, "Split with \"invert\": true is not supported") : FALSE;
    if (!split_behavior (c, o, path, &p.behavior) || !(p.regex = pattern (c, o, path, NULL)))
      return FALSE;
  } else if (strcmp (type, "ByteLevel") == 0) {
    p.kind = PRE_BYTELEVEL;
    p.add_prefix_space = get_bool (c, o, path, "add_prefix_space", TRUE, &ok);
    if (get_bool (c, o, path, "use_regex", TRUE, &ok))
      p.regex = g_regex_new (TOK_GPT2_REGEX, G_REGEX_OPTIMIZE, 0, NULL);
    tok->byte_level = TRUE;
  } else if (strcmp (type, "Metaspace") == 0) {
    p.kind = PRE_METASPACE;
    p.replacement = g_strdup (get_str (c, o, path, "replacement", "\xE2\x96\x81", &ok));
    const char *scheme = get_str (c, o, path, "prepend_scheme", NULL, &ok);
    p.add_prefix_space = scheme ? strcmp (scheme, "never") != 0 : get_bool (c, o, path, "add_prefix_space", TRUE, &ok);
    p.first_only = scheme && strcmp (scheme, "first") == 0;
    p.split = get_bool (c, o, path, "split", TRUE, &ok);
  } else if (strcmp (type, "BertPreTokenizer") == 0)
    p.kind = PRE_BERT;
  else if (strcmp (type, "WhitespaceSplit") == 0)
    p.kind = PRE_WHITESPACE_SPLIT;
  else if (strcmp (type, "Digits") == 0) {
    p.kind = PRE_DIGITS;
    p.split = get_bool (c, o, path, "individual_digits", FALSE, &ok);
  } else
    return unsupported (c, path, "pre-tokenizer \"%s\" is not supported", type);
  g_array_append_val (tok->pres, p);
  return ok;
}

static gboolean
load_decoder (Ctx *c, Tok *tok, JsonNode *n, const char *path)
{
  JsonObject *o;
  const char *type = component (c, n, path, &o);
  gboolean ok = TRUE;
  if (!type)
    return FALSE;
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (c, tok, o, path, "decoders", load_decoder);
  TokDec d = { 0 };
  if (strcmp (type, "ByteLevel") == 0)
    d.kind = DEC_BYTELEVEL;
  else if (strcmp (type, "ByteFallback") == 0)
    d.kind = DEC_BYTEFALLBACK;
  else if (strcmp (type, "Fuse") == 0)
    d.kind = DEC_FUSE;
  else if (strcmp (type, "Replace") == 0) {
    d.kind = DEC_REPLACE;
    JsonNode *pn = member (o, "pattern");
    JsonObject *po = pn && JSON_NODE_HOLDS_OBJECT (pn) ? json_node_get_object (pn) : NULL;
    g_autofree char *pp = g_strdup_printf ("%s.pattern", path);
    const char *s = po ? get_str (c, po, pp, "String", NULL, &ok) : NULL;
    if (!s)
      return ok ? unsupported (c, pp, "only {\"String\": ...} patterns are supported in the Replace decoder") : FALSE;
    d.pattern = g_strdup (s);
    d.content = g_strdup (get_str (c, o, path, "content", "", &ok));
  } else if (strcmp (type, "Strip") == 0) {
    d.kind = DEC_STRIP;
    d.content = g_strdup (get_str (c, o, path, "content", " ", &ok));
    d.start = (int) get_int (c, o, path, "start", 0, &ok);
    d.stop = (int) get_int (c, o, path, "stop", 0, &ok);
  } else if (strcmp (type, "WordPiece") == 0) {
    d.kind = DEC_WORDPIECE;
    d.content = g_strdup (get_str (c, o, path, "prefix", "##", &ok));
    d.cleanup = get_bool (c, o, path, "cleanup", TRUE, &ok);
  } else if (strcmp (type, "Metaspace") == 0) {
    d.kind = DEC_METASPACE;
    d.content = g_strdup (get_str (c, o, path, "replacement", "\xE2\x96\x81", &ok));
    const char *scheme = get_str (c, o, path, "prepend_scheme", NULL, &ok);
    d.cleanup = scheme ? strcmp (scheme, "never") != 0 : get_bool (c, o, path, "add_prefix_space", TRUE, &ok);
  } else
    return unsupported (c, path, "decoder \"%s\" is not supported", type);
  g_array_append_val (tok->decs, d);
  return ok;
}

/* The merges as ["a b", ...] (older files) or [["a", "b"], ...]. */
static gboolean
load_merges (Ctx *c, Tok *tok, JsonArray *a)
{
  guint n = json_array_get_length (a);
  tok_merges_init (&tok->merges, n);
  g_autoptr (GString) joined = g_string_new (NULL);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    const char *l = NULL, *r = NULL;
    g_autofree char *copy = NULL;
    if (is_type (e, G_TYPE_STRING)) {
      copy = g_strdup (json_node_get_string (e));
      char *sp = strchr (copy, ' ');
      if (sp) {
        *sp = '\0';
        l = copy;
        r = sp + 1;
      }
    } else if (JSON_NODE_HOLDS_ARRAY (e) && json_array_get_length (json_node_get_array (e)) == 2) {
      JsonArray *pair = json_node_get_array (e);
      if (is_type (json_array_get_element (pair, 0), G_TYPE_STRING) &&
          is_type (json_array_get_element (pair, 1), G_TYPE_STRING)) {
        l = json_array_get_string_element (pair, 0);
        r = json_array_get_string_element (pair, 1);
      }
    }
    g_autofree char *path = g_strdup_printf ("$.model.merges[%u]", i);
    if (!l)
      return fail (c, path, "expected \"left right\" or [\"left\", \"right\"]");
    gint32 li = tok_lookup (tok, l, -1), ri = tok_lookup (tok, r, -1);
    g_string_assign (joined, l);
    g_string_append (joined, r);
    gint32 mi = tok_lookup (tok, joined->str, -1);
    if (li < 0 || ri < 0 || mi < 0)
      return fail (c, path, "the merge \"%s %s\" uses a token that is not in the vocabulary", l, r);
    tok_merges_add (&tok->merges, li, ri, i, mi);
  }
  return TRUE;
}

static gboolean
load_model (Ctx *c, Tok *tok, JsonNode *n)
{
  JsonObject *o;
  const char *type = component (c, n, "$.model", &o);
  gboolean ok = TRUE;
  if (!type)
    return FALSE;
  if (strcmp (type, "BPE") == 0)
    tok->model = MODEL_BPE;
  else if (strcmp (type, "WordPiece") == 0)
    tok->model = MODEL_WORDPIECE;
  else
    return unsupported (c, "$.model", "model \"%s\" is not supported", type);
  JsonNode *vn = member (o, "vocab");
  if (!vn || !JSON_NODE_HOLDS_OBJECT (vn))
    return fail (c, "$.model.vocab", "expected an object of token: id");
  JsonObjectIter it;
  const char *key;
  JsonNode *val;
  json_object_iter_init (&it, json_node_get_object (vn));
  while (json_object_iter_next (&it, &key, &val)) {
    if (!is_type (val, G_TYPE_INT64) || json_node_get_int (val) < 0) {
      g_autofree char *p = g_strdup_printf ("$.model.vocab[\"%s\"]", key);
      return fail (c, p, "expected a non-negative id");
    }
    if (json_node_get_int (val) >= c->n_tokens) {
      g_autofree char *p = g_strdup_printf ("$.model.vocab[\"%s\"]", key);
      return fail (c, p, "id %" G_GINT64_FORMAT " is not below %" G_GINT64_FORMAT ", the number of tokens",
                   json_node_get_int (val), c->n_tokens);
    }
    gint32 id = (gint32) json_node_get_int (val);
    /* Two tokens under one id: encoding gives an id that decodes to the other. */
    if ((guint) id < tok->n_ids && tok->tokens[id]) {
      g_autofree char *p = g_strdup_printf ("$.model.vocab[\"%s\"]", key);
      g_autofree char *other = cria_error_quote (tok->tokens[id], -1, 40);
      return fail (c, p, "id %d is also the id of \"%s\"", id, other);
    }
    tok_set_token (tok, id, key);
  }
  const char *unk = get_str (c, o, "$.model", "unk_token", NULL, &ok);
  if (unk && (tok->unk_id = tok_lookup (tok, unk, -1)) < 0)
    return fail (c, "$.model.unk_token", "\"%s\" is not in the vocabulary", unk);
  if (tok->model == MODEL_WORDPIECE) {
    tok->wp_prefix = g_strdup (get_str (c, o, "$.model", "continuing_subword_prefix", "##", &ok));
    gint64 max_chars = get_int (c, o, "$.model", "max_input_chars_per_word", 100, &ok);
    if (ok && (max_chars < 0 || max_chars > G_MAXUINT32))
      return fail (c, "$.model.max_input_chars_per_word", "expected a count from 0 to %u, not %" G_GINT64_FORMAT,
                   G_MAXUINT32, max_chars);
    tok->wp_max_chars = (guint) max_chars;
    if (ok && tok->unk_id < 0)
      return fail (c, "$.model.unk_token", "WordPiece needs an unk_token");
    return ok;
  }
  JsonNode *dn = member (o, "dropout");
  if (dn && !(JSON_NODE_HOLDS_VALUE (dn) && json_node_get_double (dn) == 0.0))
    return unsupported (c, "$.model.dropout", "BPE dropout is not supported");
  const char *csp = get_str (c, o, "$.model", "continuing_subword_prefix", "", &ok);
  const char *eow = get_str (c, o, "$.model", "end_of_word_suffix", "", &ok);
  if (ok && (*csp || *eow))
    return unsupported (c, "$.model", "BPE with a continuing_subword_prefix or end_of_word_suffix is not supported");
  tok->byte_fallback = get_bool (c, o, "$.model", "byte_fallback", FALSE, &ok);
  tok->fuse_unk = get_bool (c, o, "$.model", "fuse_unk", FALSE, &ok);
  tok->ignore_merges = get_bool (c, o, "$.model", "ignore_merges", FALSE, &ok);
  JsonNode *mn = member (o, "merges");
  if (!mn || !JSON_NODE_HOLDS_ARRAY (mn))
    return fail (c, "$.model.merges", "expected an array");
  return ok && load_merges (c, tok, json_node_get_array (mn));
}

static gboolean
load_added (Ctx *c, Tok *tok, JsonNode *n)
{
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return fail (c, "$.added_tokens", "expected an array");
  JsonArray *a = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    g_autofree char *path = g_strdup_printf ("$.added_tokens[%u]", i);
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      return fail (c, path, "expected an object");
    JsonObject *o = json_node_get_object (e);
    gboolean ok = TRUE;
    TokAdded t = { 0 };
    t.content = (char *) get_str (c, o, path, "content", NULL, &ok);
    gint64 id = get_int (c, o, path, "id", -1, &ok);
    t.special = get_bool (c, o, path, "special", FALSE, &ok);
    t.normalized = get_bool (c, o, path, "normalized", !t.special, &ok);
    t.lstrip = get_bool (c, o, path, "lstrip", FALSE, &ok);
    t.rstrip = get_bool (c, o, path, "rstrip", FALSE, &ok);
    t.single_word = get_bool (c, o, path, "single_word", FALSE, &ok);
    if (!ok)
      return FALSE;
    if (!t.content || !*t.content)
      return fail (c, path, "\"content\" is missing or empty");
    if (id < 0)
      return fail (c, path, "\"id\" is missing or negative");
    if (id >= c->n_tokens)
      return fail (c, path, "id %" G_GINT64_FORMAT " is not below %" G_GINT64_FORMAT ", the number of tokens", id,
                   c->n_tokens);
    t.id = (gint32) id;
    tok_add_added (tok, &t);
  }
  return TRUE;
}

/* The ids of a SpecialToken item of a template, or of a [token, id] pair. */
static gboolean
template_ids (Ctx *c, Tok *tok, JsonObject *specials, JsonNode *item, const char *path, GArray *out, gboolean *is_seq)
{
  JsonObject *io = JSON_NODE_HOLDS_OBJECT (item) ? json_node_get_object (item) : NULL;
  *is_seq = io && json_object_has_member (io, "Sequence");
  if (*is_seq)
    return TRUE;
  JsonNode *st = io ? member (io, "SpecialToken") : NULL;
  if (!st || !JSON_NODE_HOLDS_OBJECT (st))
    return fail (c, path, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
  gboolean ok = TRUE;
  const char *name = get_str (c, json_node_get_object (st), path, "id", NULL, &ok);
  if (!ok)
    return FALSE;
  JsonNode *sp = name && specials ? member (specials, name) : NULL;
  JsonNode *ids = sp && JSON_NODE_HOLDS_OBJECT (sp) ? member (json_node_get_object (sp), "ids") : NULL;
  if (!ids || !JSON_NODE_HOLDS_ARRAY (ids))
    return fail (c, path, "special token \"%s\" is not in \"special_tokens\"", name ? name : "");
  JsonArray *a = json_node_get_array (ids);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    gint64 id = is_type (e, G_TYPE_INT64) ? json_node_get_int (e) : -1;
    if (id < 0 || (guint64) id >= tok->n_ids)
      return fail (c, path, "special token \"%s\" has an id outside the vocabulary", name);
    gint32 id32 = (gint32) id;
    g_array_append_val (out, id32);
  }
  return TRUE;
}

static gboolean
pair_id (Ctx *c, Tok *tok, JsonObject *o, const char *path, const char *key, GArray *out)
{
  JsonNode *n = member (o, key);
  JsonArray *a = n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  if (!a || json_array_get_length (a) != 2 || !is_type (json_array_get_element (a, 1), G_TYPE_INT64))
    return fail (c, path, "\"%s\" must be [token, id]", key);
  gint32 id = (gint32) json_array_get_int_element (a, 1);
  if (id < 0 || (guint) id >= tok->n_ids)
    return fail (c, path, "\"%s\" has an id outside the vocabulary", key);
  g_array_append_val (out, id);
  return TRUE;
}

static gboolean
load_post (Ctx *c, Tok *tok, JsonNode *n, const char *path)
{
  JsonObject *o;
  const char *type = component (c, n, path, &o);
  if (!type)
    return FALSE;
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (c, tok, o, path, "processors", load_post);
  if (strcmp (type, "ByteLevel") == 0)
    return TRUE; /* it only trims offsets */
  if (strcmp (type, "BertProcessing") == 0 || strcmp (type, "RobertaProcessing") == 0)
    return pair_id (c, tok, o, path, "cls", tok->prefix_ids) && pair_id (c, tok, o, path, "sep", tok->suffix_ids);
  if (strcmp (type, "TemplateProcessing") != 0)
    return unsupported (c, path, "post-processor \"%s\" is not supported", type);
  JsonNode *single = member (o, "single");
  JsonNode *sp = member (o, "special_tokens");
  if (!single || !JSON_NODE_HOLDS_ARRAY (single))
    return fail (c, path, "\"single\" must be an array");
  JsonObject *specials = sp && JSON_NODE_HOLDS_OBJECT (sp) ? json_node_get_object (sp) : NULL;
  JsonArray *a = json_node_get_array (single);
  gboolean seen_seq = FALSE;
  for (guint i = 0; i < json_array_get_length (a); i++) {
    g_autofree char *p = g_strdup_printf ("%s.single[%u]", path, i);
    gboolean is_seq;
    if (!template_ids (c, tok, specials, json_array_get_element (a, i), p, seen_seq ? tok->suffix_ids : tok->prefix_ids,
                       &is_seq))
      return FALSE;
    seen_seq |= is_seq;
  }
  return TRUE;
}

Tok *
tok_load_json (JsonNode *root, const char *file, GError **error)
{
  Ctx c = { file, error, 0 };
  JsonObject *o = json_node_get_object (root);
  JsonNode *vocab = member (o, "model") && JSON_NODE_HOLDS_OBJECT (member (o, "model"))
                        ? member (json_node_get_object (member (o, "model")), "vocab")
                        : NULL;
  JsonNode *added = member (o, "added_tokens");
  c.n_tokens = (vocab && JSON_NODE_HOLDS_OBJECT (vocab) ? json_object_get_size (json_node_get_object (vocab)) : 0) +
               (added && JSON_NODE_HOLDS_ARRAY (added) ? json_array_get_length (json_node_get_array (added)) : 0);
  g_autoptr (GError) dummy = NULL;
  Tok *tok = tok_new ();
  JsonNode *n;
  gboolean ok = TRUE;
  if (!(n = member (o, "model"))) {
    fail (&c, "$.model", "is missing");
    goto bad;
  }
  ok = load_model (&c, tok, n) && load_added (&c, tok, member (o, "added_tokens"));
  if (ok && (n = member (o, "normalizer")))
    ok = load_normalizer (&c, tok, n, "$.normalizer");
  if (ok && (n = member (o, "pre_tokenizer")))
    ok = load_pretok (&c, tok, n, "$.pre_tokenizer");
  if (ok && (n = member (o, "post_processor")))
    ok = load_post (&c, tok, n, "$.post_processor");
  if (ok && (n = member (o, "decoder")))
    ok = load_decoder (&c, tok, n, "$.decoder");
  if (!ok)
    goto bad;
  if (tok->model == MODEL_BPE && tok->byte_level && tok->byte_fallback) {
    unsupported (&c, "$.model.byte_fallback", "byte fallback with a ByteLevel pre-tokenizer is not supported");
    goto bad;
  }
  GError *ferr = NULL;
  if (!tok_finish (tok, &ferr)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: $.model.vocab: %s", file, ferr->message);
    g_error_free (ferr);
    goto bad;
  }
  return tok;
bad:
  tok_free (tok);
  return NULL;
}
