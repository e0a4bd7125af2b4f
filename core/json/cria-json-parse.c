/* cria-json-parse.c: a strict RFC 8259 reader that builds json-glib nodes.
 *
 *   cria data 'file location=train.jsonl ! jsonl location=copy.jsonl'
 *
 * reads every line through here. Positions are not tracked while parsing:
 * an error counts lines and columns from the origin once, so the hot path
 * only moves a pointer. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-json.h>

#include "cria-json-private.h"

static gboolean G_GNUC_PRINTF (4, 5) fail (Parser *ps, const char *at, CriaRecordError code, const char *format, ...)
{
  if (at >= ps->end) {
    ps->incomplete = TRUE;
    at = ps->end;
  }
  guint64 line = ps->line;
  const char *bol = ps->origin;
  for (const char *q = ps->origin; q < at; q++)
    if (*q == '\n') {
      line++;
      bol = q + 1;
    }
  va_list ap;
  va_start (ap, format);
  g_autofree char *why = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (ps->error, CRIA_RECORD_ERROR, code, "%s:%" G_GUINT64_FORMAT ":%ld: %s", ps->file, line,
               (long) (at - bol) + 1, why);
  return FALSE;
}

/* Length of the UTF-8 sequence at p (p[0] >= 0x80), or 0 when it is not one. */
static inline int
utf8_length (const guchar *p, const guchar *end)
{
  guchar c = p[0];
  if (c >= 0xC2 && c <= 0xDF)
    return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
      return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
      return 0; /* overlong, or a surrogate */
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
      return 0; /* overlong, or past U+10FFFF */
    return 4;
  }
  return 0;
}

/* "unexpected X" where X is the character at `at`, quoted for the message. */
gboolean
cj_unexpected (Parser *ps, const char *at, const char *wanted)
{
  if (at >= ps->end)
    return fail (ps, at, CRIA_RECORD_ERROR_SYNTAX, "%s before the end of the text", wanted);
  guchar c = (guchar) *at;
  if (c >= 0x20 && c < 0x7f)
    return fail (ps, at, CRIA_RECORD_ERROR_SYNTAX, "%s, not '%c'", wanted, c);
  if (c >= 0x80 && !utf8_length ((const guchar *) at, (const guchar *) ps->end))
    return fail (ps, at, CRIA_RECORD_ERROR_ENCODING, "invalid UTF-8");
  return fail (ps, at, CRIA_RECORD_ERROR_SYNTAX, "%s, not byte 0x%02x", wanted, c);
}

static int
hex4 (const char *p)
{
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int d = g_ascii_xdigit_value (p[i]);
    if (d < 0)
      return -1;
    v = v << 4 | d;
  }
  return v;
}

static void
append_utf8 (GString *s, gunichar c)
{
  char tmp[4];
  g_string_append_len (s, tmp, g_unichar_to_utf8 (c, tmp));
}

/* Reads the \u escape at p (p[0] == 'u'), pairing surrogates. */
static gboolean
read_unicode_escape (Parser *ps, const char **pp)
{
  const char *p = *pp, *at = p - 1;
  if (ps->end - p < 5 || hex4 (p + 1) < 0) {
    if (ps->end - p < 5)
      return fail (ps, ps->end, CRIA_RECORD_ERROR_SYNTAX, "a \\u escape needs four hex digits");
    return fail (ps, at, CRIA_RECORD_ERROR_SYNTAX, "a \\u escape needs four hex digits");
  }
  gunichar c = (gunichar) hex4 (p + 1);
  p += 5;
  if (c >= 0xD800 && c <= 0xDBFF && ps->end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
    int lo = hex4 (p + 2);
    if (lo >= 0xDC00 && lo <= 0xDFFF) {
      c = 0x10000 + ((c - 0xD800) << 10) + (gunichar) (lo - 0xDC00);
      p += 6;
    }
  }
  if (c >= 0xD800 && c <= 0xDFFF) {
    if (ps->end - p < 6 && c <= 0xDBFF)
      ps->incomplete = TRUE; /* the low half may follow in more text */
    /* The message keeps the form cria has always given (no column). */
    guint64 line = ps->line;
    for (const char *q = ps->origin; q < at; q++)
      line += *q == '\n';
    g_set_error (ps->error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_ENCODING,
                 "%s:%" G_GUINT64_FORMAT ": a \\u escape is a lone surrogate, which is not a character", ps->file,
                 line);
    return FALSE;
  }
  if (c == 0)
    return fail (ps, at, CRIA_RECORD_ERROR_ENCODING, "\\u0000 (NUL) cannot be held in a string");
  append_utf8 (ps->buf, c);
  *pp = p;
  return TRUE;
}

/* Bytes that end a plain run inside a string: '"', '\\', controls, non-ASCII. */
static const guchar stop[256] = {
  [0 ... 0x1f] = 1,
  ['"'] = 1,
  ['\\'] = 1,
  [0x80 ... 0xff] = 1,
};

/* Named where the string opens, which says more than the end of the text. */
static gboolean
never_closes (Parser *ps, const char *open)
{
  ps->incomplete = TRUE;
  return fail (ps, open, CRIA_RECORD_ERROR_SYNTAX, "a string never closes");
}

/* Reads the string at ps->p (just after its opening quote) into ps->buf. */
gboolean
cj_read_string (Parser *ps)
{
  const char *p = ps->p, *end = ps->end, *open = ps->p - 1;
  GString *buf = ps->buf;
  g_string_truncate (buf, 0);
  for (;;) {
    const char *run = p;
    /* Eight bytes at a time while none of them needs a look. */
    while (end - p >= 8 && cria_json_plain8 (p))
      p += 8;
    while (p < end && !stop[(guchar) *p])
      p++;
    cria_json_buf_append (buf, run, (gsize) (p - run));
    if (p >= end)
      return never_closes (ps, open);
    guchar c = (guchar) *p;
    if (c == '"') {
      ps->p = p + 1;
      return TRUE;
    }
    if (c >= 0x80) {
      int n = utf8_length ((const guchar *) p, (const guchar *) end);
      if (!n) {
        /* A sequence cut by the end of the text may be whole in more of it. */
        if (end - p < 4)
          ps->incomplete = TRUE;
        return fail (ps, p, CRIA_RECORD_ERROR_ENCODING, "invalid UTF-8");
      }
      g_string_append_len (buf, p, n);
      p += n;
      continue;
    }
    if (c < 0x20)
      return fail (ps, p, CRIA_RECORD_ERROR_SYNTAX, "a control character (0x%02x) must be escaped inside a string", c);
    /* A backslash. */
    if (end - p < 2)
      return never_closes (ps, open);
    const char *at = p;
    p++;
    switch (*p) {
      case '"':
        g_string_append_c (buf, '"');
        break;
      case '\\':
        g_string_append_c (buf, '\\');
        break;
      case '/':
        g_string_append_c (buf, '/');
        break;
      case 'b':
        g_string_append_c (buf, '\b');
        break;
      case 'f':
        g_string_append_c (buf, '\f');
        break;
      case 'n':
        g_string_append_c (buf, '\n');
        break;
      case 'r':
        g_string_append_c (buf, '\r');
        break;
      case 't':
        g_string_append_c (buf, '\t');
        break;
      case 'u':
        if (!read_unicode_escape (ps, &p))
          return FALSE;
        continue;
      default:
        return fail (ps, at, CRIA_RECORD_ERROR_SYNTAX, "unknown escape in a string");
    }
    p++;
  }
}

int
cj_scan_number (Parser *ps, gint64 *i, double *d)
{
  const char *start = ps->p, *p = start, *end = ps->end;
  gboolean neg = p < end && *p == '-', integral = TRUE;
  if (neg)
    p++;
  if (p >= end || !g_ascii_isdigit (*p)) {
    cj_unexpected (ps, p, "a number needs a digit");
    return 0;
  }
  guint64 mag = 0;
  gboolean overflow = FALSE;
  if (*p == '0') {
    p++;
    if (p < end && g_ascii_isdigit (*p)) {
      fail (ps, start, CRIA_RECORD_ERROR_SYNTAX, "a number cannot start with a leading zero");
      return 0;
    }
  } else {
    for (; p < end && g_ascii_isdigit (*p); p++) {
      guint digit = (guint) (*p - '0');
      if (mag > (G_MAXUINT64 - digit) / 10)
        overflow = TRUE;
      else
        mag = mag * 10 + digit;
    }
  }
  if (p < end && *p == '.') {
    integral = FALSE;
    p++;
    if (p >= end || !g_ascii_isdigit (*p)) {
      cj_unexpected (ps, p, "a digit must follow a decimal point");
      return 0;
    }
    while (p < end && g_ascii_isdigit (*p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    integral = FALSE;
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (p >= end || !g_ascii_isdigit (*p)) {
      cj_unexpected (ps, p, "an exponent needs a digit");
      return 0;
    }
    while (p < end && g_ascii_isdigit (*p))
      p++;
  }
  /* A number that reaches the end of the text may go on in more of it. */
  if (p >= end)
    ps->incomplete = TRUE;
  ps->p = p;
  if (integral && !overflow && mag <= (guint64) G_MAXINT64 + neg) {
    *i = neg ? (gint64) (0 - mag) : (gint64) mag;
    return 1;
  }
  g_autofree char *text = g_strndup (start, p - start);
  *d = g_ascii_strtod (text, NULL);
  if (!isfinite (*d)) {
    fail (ps, start, CRIA_RECORD_ERROR_SYNTAX, "the number %s is out of range", text);
    return 0;
  }
  return 2;
}

gboolean
cj_enter (Parser *ps)
{
  if (++ps->depth > CRIA_JSON_MAX_DEPTH)
    return fail (ps, ps->p, CRIA_RECORD_ERROR_SYNTAX, "nested deeper than %d levels", CRIA_JSON_MAX_DEPTH);
  ps->p++;
  cj_skip_blanks (ps);
  return TRUE;
}

/* A member's name and the ':' after it. ps->buf is reused for the value, so
 * the name is copied: to `small` (64 bytes) when it fits, else to *big. */
static const char *
read_member_name (Parser *ps, char *small, char **big)
{
  if (ps->p >= ps->end || *ps->p != '"') {
    cj_unexpected (ps, ps->p, "expected a member name in double quotes");
    return NULL;
  }
  ps->p++;
  if (!cj_read_string (ps))
    return NULL;
  const char *name = ps->buf->len < 64 ? memcpy (small, ps->buf->str, ps->buf->len + 1)
                                       : (*big = g_strndup (ps->buf->str, ps->buf->len));
  cj_skip_blanks (ps);
  if (ps->p >= ps->end || *ps->p != ':') {
    cj_unexpected (ps, ps->p, "expected ':' after a member name");
    return NULL;
  }
  ps->p++;
  return name;
}

gboolean
cj_read_container (Parser *ps, CjEach each, gpointer data)
{
  gboolean object = *ps->p == '{';
  char close = object ? '}' : ']';
  if (!cj_enter (ps))
    return FALSE;
  if (ps->p < ps->end && *ps->p == close)
    goto done;
  for (;;) {
    char small[64];
    g_autofree char *big = NULL;
    const char *name = object ? read_member_name (ps, small, &big) : NULL;
    if (object && !name)
      return FALSE;
    if (!each (ps, name, data))
      return FALSE;
    cj_skip_blanks (ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      cj_skip_blanks (ps);
      continue;
    }
    if (ps->p < ps->end && *ps->p == close)
      break;
    return cj_unexpected (ps, ps->p,
                          object ? "expected ',' or '}' after an object member"
                                 : "expected ',' or ']' after an array element");
  }
done:
  ps->p++;
  ps->depth--;
  return TRUE;
}

gboolean
cj_match_literal (Parser *ps, const char *word, gsize len)
{
  const char *p = ps->p;
  gsize have = (gsize) (ps->end - p);
  if (have < len || memcmp (p, word, len)) {
    if (have < len && !memcmp (p, word, have))
      return fail (ps, ps->end, CRIA_RECORD_ERROR_SYNTAX, "expected '%s'", word);
    return cj_unexpected (ps, p, "expected a value");
  }
  ps->p += len;
  return TRUE;
}

static JsonNode *read_value (Parser *ps);

static gboolean
add_member (Parser *ps, const char *name, gpointer object)
{
  JsonNode *v = read_value (ps);
  if (v)
    json_object_set_member (object, name, v);
  return v != NULL;
}

static gboolean
add_element (Parser *ps, const char *name, gpointer array)
{
  JsonNode *v = read_value (ps);
  if (v)
    json_array_add_element (array, v);
  return v != NULL;
}

static JsonNode *
read_value (Parser *ps)
{
  cj_skip_blanks (ps);
  if (ps->p >= ps->end) {
    cj_unexpected (ps, ps->p, "expected a value");
    return NULL;
  }
  switch (*ps->p) {
    case '{': {
      g_autoptr (JsonObject) o = json_object_new ();
      return cj_read_container (ps, add_member, o) ? json_node_init_object (json_node_alloc (), o) : NULL;
    }
    case '[': {
      g_autoptr (JsonArray) a = json_array_new ();
      return cj_read_container (ps, add_element, a) ? json_node_init_array (json_node_alloc (), a) : NULL;
    }
    case '"':
      ps->p++;
      if (!cj_read_string (ps))
        return NULL;
      return json_node_init_string (json_node_alloc (), ps->buf->str);
    case 't':
    case 'f': {
      gboolean truth = *ps->p == 't';
      if (!cj_match_literal (ps, truth ? "true" : "false", truth ? 4 : 5))
        return NULL;
      return json_node_init_boolean (json_node_alloc (), truth);
    }
    case 'n':
      return cj_match_literal (ps, "null", 4) ? json_node_init_null (json_node_alloc ()) : NULL;
    default: {
      gint64 i;
      double d;
      int kind = 0;
      if (*ps->p == '-' || g_ascii_isdigit (*ps->p))
        kind = cj_scan_number (ps, &i, &d);
      else
        cj_unexpected (ps, ps->p, "expected a value");
      return kind == 1 ? json_node_init_int (json_node_alloc (), i)
             : kind    ? json_node_init_double (json_node_alloc (), d)
                       : NULL;
    }
  }
}

CriaJsonStatus
cria_json_parse_prefix (const char *origin, const char *text, gsize len, gboolean final, const char *file, guint64 line,
                        JsonNode **node, gsize *consumed, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, CRIA_JSON_ERROR);
  g_return_val_if_fail (node != NULL, CRIA_JSON_ERROR);
  g_return_val_if_fail (consumed != NULL, CRIA_JSON_ERROR);
  g_return_val_if_fail (error == NULL || *error == NULL, CRIA_JSON_ERROR);
  g_autoptr (GString) buf = g_string_sized_new (256);
  GError *err = NULL;
  Parser ps = { origin, text, text + len, file, line, buf, &err, 0, FALSE };
  *node = read_value (&ps);
  if (ps.incomplete && !final) {
    /* A number at the very end may go on in more text, as may a failure there. */
    g_clear_error (&err);
    g_clear_pointer (node, json_node_unref);
    return CRIA_JSON_INCOMPLETE;
  }
  if (*node) {
    *consumed = (gsize) (ps.p - text);
    return CRIA_JSON_OK;
  }
  g_propagate_error (error, err);
  return CRIA_JSON_ERROR;
}

gboolean
cj_text_begins (Parser *ps)
{
  cj_skip_blanks (ps);
  if (ps->p < ps->end)
    return TRUE;
  g_set_error (ps->error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_SYNTAX, "%s:%" G_GUINT64_FORMAT ":1: empty JSON text",
               ps->file, ps->line);
  return FALSE;
}

gboolean
cj_text_ends (Parser *ps)
{
  cj_skip_blanks (ps);
  return ps->p >= ps->end || cj_unexpected (ps, ps->p, "expected the end of the text after the JSON value");
}

JsonNode *
cria_json_parse (const char *text, gssize len, const char *file, guint64 line, GError **error)
{
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  g_autoptr (GString) buf = g_string_sized_new (256);
  Parser ps = { text, text, text + n, file, line, buf, error, 0, FALSE };
  if (!cj_text_begins (&ps))
    return NULL;
  g_autoptr (JsonNode) root = read_value (&ps);
  if (!root || !cj_text_ends (&ps))
    return NULL;
  return g_steal_pointer (&root);
}

static char **
text_slot (CriaRecord *r, const char *name)
{
  switch (name[0]) {
    case 'i':
      return !strcmp (name, "instruction") ? &r->instruction : !strcmp (name, "input") ? &r->input : NULL;
    case 'o':
      return !strcmp (name, "output") ? &r->output : NULL;
    case 's':
      return !strcmp (name, "system") ? &r->system : NULL;
    case 'c':
      return !strcmp (name, "chosen") ? &r->chosen : NULL;
    case 'r':
      return !strcmp (name, "rejected") ? &r->rejected : NULL;
    default:
      return NULL;
  }
}

/* One member of the record's object; FALSE sends the line down the general way. */
static gboolean
read_record_member (Parser *ps, const char *const *divert, CriaRecord *r)
{
  char small[64];
  g_autofree char *big = NULL;
  const char *name = read_member_name (ps, small, &big);
  if (!name)
    return FALSE;
  for (guint i = 0; divert && divert[i]; i++)
    if (name[0] == divert[i][0] && !strcmp (name, divert[i]))
      return FALSE;
  cj_skip_blanks (ps);
  char **slot = text_slot (r, name);
  /* A repeated member keeps its first place and its last value in a json-glib
   * object; the general way reproduces that. */
  if (slot && *slot)
    return FALSE;
  if (slot && ps->p < ps->end && *ps->p == '"') {
    ps->p++;
    if (!cj_read_string (ps))
      return FALSE;
    *slot = g_strndup (ps->buf->str, ps->buf->len);
    return TRUE;
  }
  gboolean messages = !slot && name[0] == 'm' && !strcmp (name, "messages");
  if (messages && r->messages)
    return FALSE;
  g_autoptr (JsonNode) v = read_value (ps);
  if (!v)
    return FALSE;
  if (slot)
    return JSON_NODE_HOLDS_NULL (v); /* null leaves a field absent; anything else is refused */
  if (messages && !JSON_NODE_HOLDS_NULL (v))
    return !json_object_has_member (r->meta, name) && cria_record_set_member (r, name, v, NULL);
  /* A member already there leaves the size as it was: the line is given up anyway. */
  guint size = json_object_get_size (r->meta);
  json_object_set_member (r->meta, name, g_steal_pointer (&v));
  return json_object_get_size (r->meta) > size;
}

gboolean
cria_json_parse_record (const char *text, gsize len, const char *const *divert, GString *scratch, CriaRecord **record)
{
  Parser ps = { text, text, text + len, "", 0, scratch, NULL, 0, FALSE };
  *record = NULL;
  cj_skip_blanks (&ps);
  if (ps.p >= ps.end || *ps.p != '{' || !cj_enter (&ps))
    return FALSE;
  g_autoptr (CriaRecord) r = cria_record_new ();
  if (ps.p < ps.end && *ps.p == '}')
    ps.p++;
  else
    for (;;) {
      if (!read_record_member (&ps, divert, r))
        return FALSE;
      cj_skip_blanks (&ps);
      if (ps.p < ps.end && *ps.p == ',') {
        ps.p++;
        cj_skip_blanks (&ps);
        continue;
      }
      if (ps.p >= ps.end || *ps.p != '}')
        return FALSE;
      ps.p++;
      break;
    }
  cj_skip_blanks (&ps);
  if (ps.p < ps.end)
    return FALSE;
  /* A preference pair may name its prompt `prompt`: the general way maps it. */
  if (r->chosen || r->rejected)
    return FALSE;
  *record = g_steal_pointer (&r);
  return TRUE;
}
