/* cria-json-doc.c: whole JSON documents read into one block (cria-json-doc.h).
 *
 *   cria data 'squad location=dev-v2.0.json ! jsonl location=squad.jsonl'
 *
 * reads its input through here. While reading, strings and container
 * slots are offsets into growing arrays; once the text is read they become
 * pointers, so lookups need no document. A container's slots are its
 * elements (value pointers) or its members (name, value pointer pairs),
 * gathered on a stack while it is read and copied out when it closes. */
#include "config.h"

#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-json-doc.h>
#include <cria/cria-json.h>

#include "cria-json-private.h"

struct _CriaJsonValue {
  CriaJsonType type;
  guint32 n; /* elements, members, or a string's bytes */
  union {
    gint64 i;
    double d;
    gboolean b;
    const char *s;
    gpointer *slots;
    guintptr offset; /* of the text or of the slots, while reading */
  } u;
};

struct _CriaJsonDoc {
  char *text;
  CriaJsonValue *values;
  gpointer *slots;
  const CriaJsonValue *root;
};

typedef struct {
  GString *text;  /* every string, each ending with its NUL */
  GArray *values; /* CriaJsonValue */
  GArray *slots;  /* guintptr */
  GArray *stack;  /* guintptr: the slots of the containers being read */
} Builder;

static guintptr
keep_string (Builder *b, const char *s, gsize len)
{
  guintptr at = b->text->len;
  g_string_append_len (b->text, s, (gssize) len + 1);
  return at;
}

static gboolean read_value (Parser *ps, Builder *b);

/* Index of the value just read: the last one. */
static guintptr
last_value (Builder *b)
{
  return b->values->len - 1;
}

static gboolean
add_slot (Parser *ps, const char *name, gpointer data)
{
  Builder *b = data;
  guintptr key = name ? keep_string (b, name, strlen (name)) : 0;
  if (!read_value (ps, b))
    return FALSE;
  guintptr value = last_value (b);
  if (name)
    g_array_append_val (b->stack, key);
  g_array_append_val (b->stack, value);
  return TRUE;
}

static gboolean
read_value (Parser *ps, Builder *b)
{
  CriaJsonValue v = { CRIA_JSON_NULL, 0, { 0 } };
  cj_skip_blanks (ps);
  if (ps->p >= ps->end)
    return cj_unexpected (ps, ps->p, "expected a value");
  switch (*ps->p) {
    case '{':
    case '[': {
      v.type = *ps->p == '{' ? CRIA_JSON_OBJECT : CRIA_JSON_ARRAY;
      guint base = b->stack->len;
      if (!cj_read_container (ps, add_slot, b))
        return FALSE;
      guint n = b->stack->len - base;
      v.n = v.type == CRIA_JSON_OBJECT ? n / 2 : n;
      v.u.offset = b->slots->len;
      g_array_append_vals (b->slots, &g_array_index (b->stack, guintptr, base), n);
      g_array_set_size (b->stack, base);
      break;
    }
    case '"':
      ps->p++;
      if (!cj_read_string (ps))
        return FALSE;
      v.type = CRIA_JSON_STRING;
      v.n = (guint32) ps->buf->len;
      v.u.offset = keep_string (b, ps->buf->str, ps->buf->len);
      break;
    case 't':
    case 'f':
      v.type = CRIA_JSON_BOOLEAN;
      v.u.b = *ps->p == 't';
      if (!cj_match_literal (ps, v.u.b ? "true" : "false", v.u.b ? 4 : 5))
        return FALSE;
      break;
    case 'n':
      if (!cj_match_literal (ps, "null", 4))
        return FALSE;
      break;
    default:
      if (*ps->p != '-' && !g_ascii_isdigit (*ps->p))
        return cj_unexpected (ps, ps->p, "expected a value");
      switch (cj_scan_number (ps, &v.u.i, &v.u.d)) {
        case 1:
          v.type = CRIA_JSON_INT;
          break;
        case 2:
          v.type = CRIA_JSON_DOUBLE;
          break;
        default:
          return FALSE;
      }
  }
  g_array_append_val (b->values, v);
  return TRUE;
}

/* Offsets become pointers, now that the arrays have stopped moving. */
static void
settle (CriaJsonDoc *doc, guint n_values)
{
  for (guint k = 0; k < n_values; k++) {
    CriaJsonValue *v = &doc->values[k];
    if (v->type == CRIA_JSON_STRING) {
      v->u.s = doc->text + v->u.offset;
    } else if (v->type == CRIA_JSON_ARRAY || v->type == CRIA_JSON_OBJECT) {
      gpointer *slots = doc->slots + v->u.offset;
      guint per = v->type == CRIA_JSON_OBJECT ? 2 : 1;
      for (guint j = 0; j < v->n * per; j++) {
        guintptr at = (guintptr) slots[j];
        slots[j] = per == 2 && j % 2 == 0 ? (gpointer) (doc->text + at) : (gpointer) &doc->values[at];
      }
      v->u.slots = slots;
    }
  }
}

CriaJsonDoc *
cria_json_doc_parse (const char *text, gssize len, const char *file, guint64 line, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  g_autoptr (GString) buf = g_string_sized_new (256);
  Parser ps = { text, text, text + n, file, line, buf, error, 0, FALSE };
  /* Sized for a document of natural-language text: a value every ~25 bytes. */
  Builder b = {
    g_string_sized_new (n + 1),
    g_array_sized_new (FALSE, FALSE, sizeof (CriaJsonValue), (guint) MIN (n / 25 + 16, G_MAXUINT / 2)),
    g_array_sized_new (FALSE, FALSE, sizeof (guintptr), (guint) MIN (n / 25 + 16, G_MAXUINT / 2)),
    g_array_sized_new (FALSE, FALSE, sizeof (guintptr), 256),
  };
  G_STATIC_ASSERT (sizeof (guintptr) == sizeof (gpointer));
  gboolean ok = cj_text_begins (&ps) && read_value (&ps, &b) && cj_text_ends (&ps);
  g_array_unref (b.stack);
  if (!ok) {
    g_string_free (b.text, TRUE);
    g_array_unref (b.values);
    g_array_unref (b.slots);
    return NULL;
  }
  CriaJsonDoc *doc = g_new0 (CriaJsonDoc, 1);
  guint n_values = b.values->len;
  doc->text = g_string_free (b.text, FALSE);
  doc->values = (CriaJsonValue *) (gpointer) g_array_free (b.values, FALSE);
  doc->slots = (gpointer *) (gpointer) g_array_free (b.slots, FALSE);
  settle (doc, n_values);
  doc->root = &doc->values[n_values - 1];
  return doc;
}

gpointer
cj_load_file (const char *path, gsize max_bytes, CjParseFunc parse, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!cria_file_get_contents (path, max_bytes, &text, &len, error))
    return NULL;
  const char *body = text;
  if (len >= 3 && !memcmp (body, "\xEF\xBB\xBF", 3)) {
    body += 3;
    len -= 3;
  }
  g_autoptr (GError) jerr = NULL;
  gpointer root = parse (body, (gssize) len, path, 1, &jerr);
  /* A broken document cannot be resumed record by record. */
  if (!root)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s", jerr->message);
  return root;
}

static gpointer
parse_doc (const char *text, gssize len, const char *file, guint64 line, GError **error)
{
  return cria_json_doc_parse (text, len, file, line, error);
}

CriaJsonDoc *
cria_json_doc_load_file (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return cj_load_file (path, CRIA_INPUT_MAX_FILE_BYTES, parse_doc, error);
}

void
cria_json_doc_free (CriaJsonDoc *doc)
{
  if (!doc)
    return;
  g_free (doc->text);
  g_free (doc->values);
  g_free (doc->slots);
  g_free (doc);
}

const CriaJsonValue *
cria_json_doc_get_root (const CriaJsonDoc *doc)
{
  g_return_val_if_fail (doc != NULL, NULL);
  return doc->root;
}

CriaJsonType
cria_json_value_type (const CriaJsonValue *v)
{
  return v ? v->type : CRIA_JSON_NULL;
}

const CriaJsonValue *
cria_json_value_member (const CriaJsonValue *v, const char *name)
{
  g_return_val_if_fail (name != NULL, NULL);
  if (!v || v->type != CRIA_JSON_OBJECT)
    return NULL;
  for (guint k = v->n; k-- > 0;)
    if (!strcmp (v->u.slots[2 * k], name))
      return v->u.slots[2 * k + 1];
  return NULL;
}

guint
cria_json_value_length (const CriaJsonValue *v)
{
  return v && (v->type == CRIA_JSON_ARRAY || v->type == CRIA_JSON_OBJECT) ? v->n : 0;
}

const CriaJsonValue *
cria_json_value_element (const CriaJsonValue *v, guint index)
{
  if (index >= cria_json_value_length (v))
    return NULL;
  return v->type == CRIA_JSON_OBJECT ? v->u.slots[2 * index + 1] : v->u.slots[index];
}

const char *
cria_json_value_name (const CriaJsonValue *v, guint index)
{
  return index < cria_json_value_length (v) && v->type == CRIA_JSON_OBJECT ? v->u.slots[2 * index] : NULL;
}

gint64
cria_json_value_int (const CriaJsonValue *v)
{
  return cria_json_value_type (v) == CRIA_JSON_INT ? v->u.i : 0;
}

double
cria_json_value_double (const CriaJsonValue *v)
{
  switch (cria_json_value_type (v)) {
    case CRIA_JSON_INT:
      return (double) v->u.i;
    case CRIA_JSON_DOUBLE:
      return v->u.d;
    default:
      return 0;
  }
}

const char *
cria_json_value_string (const CriaJsonValue *v)
{
  return v && v->type == CRIA_JSON_STRING ? v->u.s : NULL;
}

const char *
cria_json_value_string_member (const CriaJsonValue *v, const char *name)
{
  g_return_val_if_fail (name != NULL, NULL);
  return cria_json_value_string (cria_json_value_member (v, name));
}

gboolean
cria_json_value_truth (const CriaJsonValue *v, gboolean fallback)
{
  switch (cria_json_value_type (v)) {
    case CRIA_JSON_BOOLEAN:
      return v->u.b;
    case CRIA_JSON_INT:
      return v->u.i != 0;
    case CRIA_JSON_DOUBLE:
      return v->u.d != 0;
    case CRIA_JSON_STRING:
      return FALSE;
    default:
      return fallback;
  }
}
