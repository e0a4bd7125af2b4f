/* cria-json-private.h: what the JSON reader and writer share. */
#pragma once

#include <stdint.h>
#include <string.h>

#include <glib.h>

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
