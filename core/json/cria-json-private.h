/* cria-json-private.h: what the JSON reader and writer share. */
#pragma once

#include <stdint.h>
#include <string.h>

#include <glib.h>

#include <cria/cria-record.h>

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
