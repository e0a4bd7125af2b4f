/* cria-json-write.c: JSON text straight from nodes, without json-glib's
 * generator (which walks the tree through GValues and a second buffer).
 *
 *   cria data 'file location=in.jsonl ! jsonl location=out.jsonl'
 *
 * writes every record through here. The output is what json_to_string (node,
 * FALSE) gave for strings, integers, booleans and null; doubles take the
 * shortest form that reads back the same (Python's repr), not %.17g. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria-json.h>

#include "cria-json-private.h"

/* 0: copied as is; 1: \u00xx; any other value: the letter after a backslash. */
static const char escape[256] = {
  [0 ... 7] = 1, ['\b'] = 'b',        ['\t'] = 't', ['\n'] = 'n',  [0x0b] = 1, ['\f'] = 'f',
  ['\r'] = 'r',  [0x0e ... 0x1f] = 1, ['"'] = '"',  ['\\'] = '\\', [0x7f] = 1,
};

void
cria_json_append_string (GString *out, const char *s)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (s != NULL);
  g_string_append_c (out, '"');
  const char *run = s, *p = s, *end = s + strlen (s);
  for (;;) {
    /* Eight bytes at a time while none needs a look. */
    while (end - p >= 8 && cria_json_plain8 (p))
      p += 8;
    while (p < end && !escape[(guchar) *p])
      p++;
    cria_json_buf_append (out, run, (gsize) (p - run));
    if (p == end)
      break;
    char e = escape[(guchar) *p];
    if (e == 1)
      g_string_append_printf (out, "\\u%04x", (guchar) *p);
    else {
      char pair[2] = { '\\', e };
      g_string_append_len (out, pair, 2);
    }
    run = ++p;
  }
  g_string_append_c (out, '"');
}

void
cria_json_append_double (GString *out, double d)
{
  g_return_if_fail (out != NULL);
  if (!isfinite (d)) {
    g_string_append (out, "null");
    return;
  }
  /* The fewest significant digits that read back as d. */
  char sci[40];
  for (int prec = 0; prec < 17; prec++) {
    char fmt[8];
    snprintf (fmt, sizeof fmt, "%%.%de", prec);
    g_ascii_formatd (sci, sizeof sci, fmt, d);
    if (g_ascii_strtod (sci, NULL) == d)
      break;
  }
  /* sci is [-]D[.DDD]e[+-]XX: split it into digits and a decimal exponent. */
  const char *p = sci;
  gboolean neg = *p == '-';
  if (neg)
    p++;
  char digits[24];
  int nd = 0;
  for (; *p != 'e'; p++)
    if (*p != '.')
      digits[nd++] = *p;
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  int exp10 = atoi (p + 1); /* d = D.DDD x 10^exp10 */
  int point = exp10 + 1;    /* digits before the decimal point */
  if (neg)
    g_string_append_c (out, '-');
  if (exp10 >= -4 && exp10 < 16) {
    if (point <= 0) {
      g_string_append (out, "0.");
      for (int i = 0; i < -point; i++)
        g_string_append_c (out, '0');
      g_string_append_len (out, digits, nd);
    } else if (point >= nd) {
      g_string_append_len (out, digits, nd);
      for (int i = nd; i < point; i++)
        g_string_append_c (out, '0');
      g_string_append (out, ".0");
    } else {
      g_string_append_len (out, digits, point);
      g_string_append_c (out, '.');
      g_string_append_len (out, digits + point, nd - point);
    }
    return;
  }
  g_string_append_c (out, digits[0]);
  if (nd > 1) {
    g_string_append_c (out, '.');
    g_string_append_len (out, digits + 1, nd - 1);
  }
  g_string_append_printf (out, "e%c%02d", exp10 < 0 ? '-' : '+', abs (exp10));
}

static void
append_value (GString *out, JsonNode *node)
{
  switch (json_node_get_value_type (node)) {
    case G_TYPE_STRING: {
      const char *s = json_node_get_string (node);
      if (s)
        cria_json_append_string (out, s);
      else
        g_string_append (out, "null");
      break;
    }
    case G_TYPE_INT64:
      g_string_append_printf (out, "%" G_GINT64_FORMAT, json_node_get_int (node));
      break;
    case G_TYPE_DOUBLE:
      cria_json_append_double (out, json_node_get_double (node));
      break;
    case G_TYPE_BOOLEAN:
      g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
      break;
    default:
      g_string_append (out, "null");
  }
}

void
cria_json_append_member (GString *out, gboolean *first, const char *name, JsonNode *value)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (first != NULL);
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);
  if (!*first)
    g_string_append_c (out, ',');
  *first = FALSE;
  cria_json_append_string (out, name);
  g_string_append_c (out, ':');
  cria_json_append_node (out, value);
}

void
cria_json_append_node (GString *out, JsonNode *node)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (node != NULL);
  switch (JSON_NODE_TYPE (node)) {
    case JSON_NODE_OBJECT: {
      JsonObjectIter it;
      const char *name;
      JsonNode *member;
      gboolean first = TRUE;
      g_string_append_c (out, '{');
      json_object_iter_init_ordered (&it, json_node_get_object (node));
      while (json_object_iter_next_ordered (&it, &name, &member))
        cria_json_append_member (out, &first, name, member);
      g_string_append_c (out, '}');
      break;
    }
    case JSON_NODE_ARRAY: {
      JsonArray *a = json_node_get_array (node);
      guint n = json_array_get_length (a);
      g_string_append_c (out, '[');
      for (guint i = 0; i < n; i++) {
        if (i)
          g_string_append_c (out, ',');
        cria_json_append_node (out, json_array_get_element (a, i));
      }
      g_string_append_c (out, ']');
      break;
    }
    case JSON_NODE_VALUE:
      append_value (out, node);
      break;
    case JSON_NODE_NULL:
      g_string_append (out, "null");
      break;
  }
}
