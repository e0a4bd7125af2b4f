/* cria-json-private.h: what the JSON reader and writer share. */
#pragma once

#include <stdint.h>
#include <string.h>

#include <glib.h>

#include <cria/cria-record.h>

/* The reader's state over one text (cria-json-parse.c). */
typedef struct {
  const char *origin, *p, *end;
  const char *file;
  guint64 line;
  GString *buf; /* decoded text of the string being read */
  GError **error;
  guint depth;
  gboolean incomplete; /* failed because the text ran out */
} Parser;

static inline void
cj_skip_blanks (Parser *ps)
{
  const char *p = ps->p, *end = ps->end;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  ps->p = p;
}

/* Shared by the readers that build json-glib nodes and CriaJsonDoc blocks;
 * each fails through ps->error with the position of the fault. */
/* Reads the string at ps->p (just after its opening quote) into ps->buf. */
gboolean cj_read_string (Parser *ps);
/* "unexpected X" where X is the character at `at`. */
gboolean cj_unexpected (Parser *ps, const char *at, const char *wanted);
/* Steps into the container at ps->p, counting the depth. */
gboolean cj_enter (Parser *ps);
/* The number at ps->p: 1 for an integer that fits 64 bits (*i), 2 for any
 * other (*d), 0 on an error. */
int cj_scan_number (Parser *ps, gint64 *i, double *d);
/* The literal `word` (true, false, null) at ps->p. */
gboolean cj_match_literal (Parser *ps, const char *word, gsize len);
/* Reads the array or object at ps->p, calling `each` at every element or
 * member (name NULL in an array) to read its value. */
typedef gboolean (*CjEach) (Parser *ps, const char *name, gpointer data);
gboolean cj_read_container (Parser *ps, CjEach each, gpointer data);
/* Around the one value of a whole text: it is not empty; nothing follows it. */
gboolean cj_text_begins (Parser *ps);
gboolean cj_text_ends (Parser *ps);
/* Reads a whole file of at most max_bytes (past a UTF-8 BOM) through `parse`;
 * a file that cannot be read or parsed is a CRIA_ERROR (NOT_FOUND, IO or
 * PARSE) with the reason's own message. */
typedef gpointer (*CjParseFunc) (const char *text, gssize len, const char *file, guint64 line, GError **error);
gpointer cj_load_file (const char *path, gsize max_bytes, CjParseFunc parse, GError **error);

/* TRUE when none of the eight bytes at p is a control character, '"', '\\',
 * DEL or a byte of 0x80 and up: a string's text that both the reader and the
 * writer copy as it is. (Bytes after a hit may read as hits too; that only
 * sends them down the byte-by-byte path.) */
static inline gboolean
cria_json_plain8 (const char *p)
{
  uint64_t x;
  memcpy (&x, p, 8);
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\'), d = x ^ (ones * 0x7f);
  uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((d - ones) & ~d) | (x - ones * 0x20) | x;
  return !(hit & highs);
}

/* g_string_append_len without the call into GLib (2.74 does not inline it)
 * while the text fits: strings are copied this way byte run by byte run. */
static inline void
cria_json_buf_append (GString *s, const char *text, gsize len)
{
  if (G_LIKELY (s->len + len < s->allocated_len)) {
    memcpy (s->str + s->len, text, len);
    s->len += len;
    s->str[s->len] = '\0';
  } else {
    g_string_append_len (s, text, (gssize) len);
  }
}

/* cria_record_from_json's step for one member (`value` borrowed). */
gboolean cria_record_set_member (CriaRecord *record, const char *name, JsonNode *value, GError **error);

/* Parses a JSON line in cria's record form (cria-record(5)) straight into a
 * record, without the JsonObject of the whole line: the text fields are
 * copied out of the text, only other members become nodes. Reports nothing:
 * on FALSE (bad JSON, a field of the wrong kind, a repeated member, a member
 * named in the NULL-terminated `divert`, which the caller reads its own way)
 * the caller parses the line the general way, which gives the error. */
gboolean cria_json_parse_record (const char *text, gsize len, const char *const *divert, GString *scratch,
                                 CriaRecord **record);
