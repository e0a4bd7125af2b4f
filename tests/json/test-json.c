/* test-json: cria's JSON reader and writer (cria-json.h), against json-glib
 * on generated documents, and against Python's repr for doubles
 * (doubles-golden.txt, written by doubles-golden.py). */
#include <string.h>

#include "cria-test.h"

#include "../../core/json/cria-json-private.h"

/* json-glib as cria used it before: its parser, refusing text that is not
 * UTF-8 and strings its \u escapes left as lone surrogates. */
static gboolean
strings_valid (JsonNode *node)
{
  if (JSON_NODE_HOLDS_OBJECT (node)) {
    JsonObjectIter it;
    const char *name;
    JsonNode *member;
    json_object_iter_init (&it, json_node_get_object (node));
    while (json_object_iter_next (&it, &name, &member))
      if (!g_utf8_validate (name, -1, NULL) || !strings_valid (member))
        return FALSE;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    for (guint i = 0; i < json_array_get_length (a); i++)
      if (!strings_valid (json_array_get_element (a, i)))
        return FALSE;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return g_utf8_validate (json_node_get_string (node), -1, NULL);
  return TRUE;
}

static JsonNode *
glib_parse (const char *text, gsize len)
{
  if (!g_utf8_validate_len (text, len, NULL))
    return NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, text, (gssize) len, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !strings_valid (root))
    return NULL;
  return json_node_copy (root);
}

/* ---- generated documents ---------------------------------------------------- */

static void
gen_blank (GRand *rng, GString *out)
{
  static const char blanks[] = " \t\n\r";
  while (g_rand_int_range (rng, 0, 4) == 0)
    g_string_append_c (out, blanks[g_rand_int_range (rng, 0, 4)]);
}

/* No U+001F: json-glib writes it raw (see test_strings_written). */
static void
gen_string (GRand *rng, GString *out)
{
  static const char *const pieces[] = {
    "a",       "Z",       " ",
    "0",       "\\n",     "\\t",
    "\\\"",    "\\\\",    "\\/",
    "\\b",     "\\f",     "\\r",
    "\\u00e9", "\\u4e2d", "\\ud83d\\ude00",
    "\\u001e", "\\u007f", "é",
    "中文",    "😀",       "\xe2\x80\xa8",
    "'",       "{",       "]",
    ":",       ",",
  };
  g_string_append_c (out, '"');
  int n = g_rand_int_range (rng, 0, 8);
  for (int i = 0; i < n; i++)
    g_string_append (out, pieces[g_rand_int_range (rng, 0, G_N_ELEMENTS (pieces))]);
  g_string_append_c (out, '"');
}

static void
gen_number (GRand *rng, GString *out)
{
  switch (g_rand_int_range (rng, 0, 5)) {
    case 0:
      g_string_append_printf (out, "%d", g_rand_int_range (rng, -1000, 1000));
      break;
    case 1: {
      gint64 v = (gint64) (((guint64) g_rand_int (rng) << 32) | g_rand_int (rng));
      g_string_append_printf (out, "%" G_GINT64_FORMAT, v);
      break;
    }
    case 2:
      g_string_append_printf (out, "%d.%d", g_rand_int_range (rng, -99, 99), g_rand_int_range (rng, 0, 99999));
      break;
    case 3:
      g_string_append_printf (out, "%d.%de%s%d", g_rand_int_range (rng, 1, 9), g_rand_int_range (rng, 0, 999),
                              g_rand_boolean (rng) ? "-" : "+", g_rand_int_range (rng, 0, 300));
      break;
    default:
      g_string_append_printf (out, "%dE%d", g_rand_int_range (rng, 0, 9), g_rand_int_range (rng, -20, 20));
  }
}

static void
gen_value (GRand *rng, GString *out, int depth)
{
  int kind = g_rand_int_range (rng, 0, depth > 3 ? 6 : 8);
  gen_blank (rng, out);
  switch (kind) {
    case 0:
      gen_string (rng, out);
      break;
    case 1:
      gen_number (rng, out);
      break;
    case 2:
      g_string_append (out, "true");
      break;
    case 3:
      g_string_append (out, "false");
      break;
    case 4:
      g_string_append (out, "null");
      break;
    case 5:
      gen_string (rng, out);
      break;
    case 6: {
      g_string_append_c (out, '[');
      int n = g_rand_int_range (rng, 0, 5);
      for (int i = 0; i < n; i++) {
        if (i)
          g_string_append_c (out, ',');
        gen_value (rng, out, depth + 1);
      }
      gen_blank (rng, out);
      g_string_append_c (out, ']');
      break;
    }
    default: {
      g_string_append_c (out, '{');
      int n = g_rand_int_range (rng, 0, 5);
      for (int i = 0; i < n; i++) {
        if (i)
          g_string_append_c (out, ',');
        gen_blank (rng, out);
        gen_string (rng, out);
        gen_blank (rng, out);
        g_string_append_c (out, ':');
        gen_value (rng, out, depth + 1);
      }
      gen_blank (rng, out);
      g_string_append_c (out, '}');
    }
  }
  gen_blank (rng, out);
}

/* One byte changed, dropped, added, or the text cut short. */
static void
mutate (GRand *rng, GString *doc)
{
  static const char bytes[] = "{}[]:,\"\\ -0.eEa\x01\xff\xc3";
  guint at = doc->len ? (guint) g_rand_int_range (rng, 0, (gint32) doc->len) : 0;
  char b = bytes[g_rand_int_range (rng, 0, sizeof bytes - 1)];
  switch (g_rand_int_range (rng, 0, 4)) {
    case 0:
      g_string_truncate (doc, at);
      break;
    case 1:
      g_string_erase (doc, at, doc->len ? 1 : 0);
      break;
    case 2:
      g_string_insert_c (doc, at, b);
      break;
    default:
      if (doc->len)
        doc->str[at] = b;
  }
}

/* A CriaJsonDoc value as a json-glib node; a repeated name keeps its first
 * place and its last value, as json_object_set_member does. */
static JsonNode *
doc_node (const CriaJsonValue *v)
{
  switch (cria_json_value_type (v)) {
    case CRIA_JSON_OBJECT: {
      JsonObject *o = json_object_new ();
      for (guint i = 0; i < cria_json_value_length (v); i++)
        json_object_set_member (o, cria_json_value_name (v, i), doc_node (cria_json_value_element (v, i)));
      JsonNode *n = json_node_init_object (json_node_alloc (), o);
      json_object_unref (o);
      return n;
    }
    case CRIA_JSON_ARRAY: {
      JsonArray *a = json_array_new ();
      for (guint i = 0; i < cria_json_value_length (v); i++)
        json_array_add_element (a, doc_node (cria_json_value_element (v, i)));
      JsonNode *n = json_node_init_array (json_node_alloc (), a);
      json_array_unref (a);
      return n;
    }
    case CRIA_JSON_STRING:
      return json_node_init_string (json_node_alloc (), cria_json_value_string (v));
    case CRIA_JSON_INT:
      return json_node_init_int (json_node_alloc (), cria_json_value_int (v));
    case CRIA_JSON_DOUBLE:
      return json_node_init_double (json_node_alloc (), cria_json_value_double (v));
    case CRIA_JSON_BOOLEAN:
      return json_node_init_boolean (json_node_alloc (), cria_json_value_truth (v, FALSE));
    default:
      return json_node_init_null (json_node_alloc ());
  }
}

/* Both trees through json-glib's generator: equal text, equal values. */
static gboolean
same_values (JsonNode *a, JsonNode *b)
{
  g_autofree char *ta = json_to_string (a, FALSE);
  g_autofree char *tb = json_to_string (b, FALSE);
  return strcmp (ta, tb) == 0;
}

static void
test_differential (void)
{
  g_autoptr (GRand) rng = g_rand_new_with_seed (3);
  guint accepted = 0, refused = 0, stricter = 0;
  for (int i = 0; i < 4000; i++) {
    g_autoptr (GString) doc = g_string_new (NULL);
    gen_value (rng, doc, 0);
    gboolean valid = i % 2 == 0;
    if (!valid)
      mutate (rng, doc);
    g_autoptr (GError) e = NULL;
    g_autoptr (JsonNode) mine = cria_json_parse (doc->str, (gssize) doc->len, "d.json", 1, &e);
    g_autoptr (JsonNode) ref = glib_parse (doc->str, doc->len);
    /* The compact reader takes the same text, reads the same values and
     * refuses the rest with the same message. */
    g_autoptr (GError) de = NULL;
    g_autoptr (CriaJsonDoc) compact = cria_json_doc_parse (doc->str, (gssize) doc->len, "d.json", 1, &de);
    CU_ASSERT_EQUAL (compact != NULL, mine != NULL);
    if (compact && mine) {
      g_autoptr (JsonNode) cn = doc_node (cria_json_doc_get_root (compact));
      if (!same_values (cn, mine))
        CU_FAIL ("CriaJsonDoc and cria_json_parse read different values");
    }
    if (!compact && !mine)
      CU_ASSERT_TRUE (de && e && !strcmp (de->message, e->message));
    if (valid && !mine)
      fprintf (stderr, "refused a valid document: %s\n  %s\n", e->message, doc->str);
    if (valid)
      CU_ASSERT_PTR_NOT_NULL (mine);
    if (mine) {
      accepted++;
      CU_ASSERT_PTR_NOT_NULL (ref);
      if (ref && !same_values (mine, ref))
        CU_FAIL ("cria and json-glib read different values");
      /* cria's writer gives json-glib's text for everything but doubles, and
       * text that reads back the same in any case. */
      g_autoptr (GString) written = g_string_new (NULL);
      cria_json_append_node (written, mine);
      g_autoptr (JsonNode) back = cria_json_parse (written->str, (gssize) written->len, "w.json", 1, NULL);
      CU_ASSERT_TRUE (back && same_values (back, mine));
      if (!strpbrk (doc->str, ".eE")) {
        g_autofree char *generated = json_to_string (mine, FALSE);
        if (strcmp (written->str, generated))
          fprintf (stderr, "cria wrote %s\njson-glib  %s\n", written->str, generated);
        CU_ASSERT_STRING_EQUAL (written->str, generated);
      }
      continue;
    }
    refused++;
    /* One line, naming the file, a line and a column. */
    CU_ASSERT_TRUE (e && e->domain == CRIA_RECORD_ERROR && !strchr (e->message, '\n') &&
                    g_str_has_prefix (e->message, "d.json:"));
    /* json-glib takes some text RFC 8259 refuses (see test_stricter). */
    if (ref)
      stricter++;
  }
  printf ("(%u accepted, %u refused, %u of them taken by json-glib) ", accepted, refused, stricter);
  CU_ASSERT_TRUE (accepted > 2000 && refused > 1000);
}

/* Record lines: known fields, messages and metadata, with nulls, values of
 * the wrong kind and repeated members among them. */
static void
gen_record (GRand *rng, GString *out)
{
  static const char *const names[] = { "instruction", "input", "output", "system", "messages", "id", "meta" };
  g_string_append_c (out, '{');
  int n = g_rand_int_range (rng, 0, 7);
  for (int i = 0; i < n; i++) {
    gen_blank (rng, out);
    const char *name = names[g_rand_int_range (rng, 0, G_N_ELEMENTS (names))];
    g_string_append_printf (out, "%s\"%s\":", i ? "," : "", name);
    gen_blank (rng, out);
    int kind = g_rand_int_range (rng, 0, 8);
    if (!strcmp (name, "messages") && kind < 5)
      g_string_append (out, kind ? "[{\"role\":\"user\",\"content\":\"hi\"}]" : "[]");
    else if (kind < 5)
      gen_string (rng, out);
    else if (kind == 5)
      g_string_append (out, "null");
    else
      gen_value (rng, out, 2);
  }
  g_string_append_c (out, '}');
}

/* The direct record reader takes a line only where json-glib's object would
 * give the same record, and takes the common ones. */
static void
test_record_lines (void)
{
  g_autoptr (GRand) rng = g_rand_new_with_seed (5);
  g_autoptr (GString) scratch = g_string_new (NULL);
  guint direct = 0, general = 0;
  for (int i = 0; i < 4000; i++) {
    g_autoptr (GString) line = g_string_new (NULL);
    gen_record (rng, line);
    if (i % 4 == 3)
      mutate (rng, line);
    g_autoptr (CriaRecord) r = NULL;
    gboolean took = cria_json_parse_record (line->str, line->len, NULL, scratch, &r);
    g_autoptr (JsonNode) node = cria_json_parse (line->str, (gssize) line->len, "r.jsonl", 1, NULL);
    g_autoptr (CriaRecord)
        ref = node && JSON_NODE_HOLDS_OBJECT (node) ? cria_record_from_json (json_node_get_object (node), NULL) : NULL;
    general += ref != NULL;
    CU_ASSERT_EQUAL (took, r != NULL);
    if (!took)
      continue;
    direct++;
    CU_ASSERT_TRUE (ref && cria_record_equal (r, ref));
    if (!ref || !cria_record_equal (r, ref)) {
      g_autofree char *mine = cria_record_to_json_line (r);
      fprintf (stderr, "%s\n  read as %s\n", line->str, mine);
    }
  }
  const char *const divert[] = { "id", NULL };
  g_autoptr (CriaRecord) r = NULL;
  CU_ASSERT_FALSE (cria_json_parse_record ("{\"id\":\"x\"}", 10, divert, scratch, &r));
  CU_ASSERT_TRUE (cria_json_parse_record ("{\"ix\":\"x\"}", 10, divert, scratch, &r));
  printf ("(%u of %u records read directly) ", direct, general);
  CU_ASSERT_TRUE (direct > general / 2);
}

/* Text json-glib takes and RFC 8259 does not. */
static void
test_stricter (void)
{
  static const char *const lax[] = {
    "[01]",  "[1.]",   "[.5]",    "[0x10]", "['a']",         "[\"a\tb\"]",   "[\"\\x\"]",
    "[] []", "/*c*/1", "[1e999]", "[-01]",  "[\"\\u0000\"]", "{\"a\":1} []",
  };
  for (guint i = 0; i < G_N_ELEMENTS (lax); i++) {
    g_autoptr (JsonNode) ref = glib_parse (lax[i], strlen (lax[i]));
    g_autoptr (GError) e = NULL;
    g_autoptr (JsonNode) mine = cria_json_parse (lax[i], -1, "lax.json", 1, &e);
    CU_ASSERT_PTR_NOT_NULL (ref);
    CU_ASSERT_PTR_NULL (mine);
    CU_ASSERT_TRUE (e && g_str_has_prefix (e->message, "lax.json:1:"));
  }
}

static gboolean
error_is (const char *text, const char *file, guint64 line, const char *expected)
{
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) n = cria_json_parse (text, -1, file, line, &e);
  g_autoptr (GError) de = NULL;
  g_autoptr (CriaJsonDoc) d = cria_json_doc_parse (text, -1, file, line, &de);
  if (!n && e && !strcmp (e->message, expected) && !d && de && !strcmp (de->message, expected))
    return TRUE;
  fprintf (stderr, "%s: got '%s', expected '%s'\n", text, e ? e->message : "(parsed)", expected);
  return FALSE;
}

static void
test_positions (void)
{
  CU_ASSERT_TRUE (error_is ("{\n  \"a\": tru\n}", "f.json", 10, "f.json:11:8: expected a value, not 't'"));
  CU_ASSERT_TRUE (error_is ("[1,\n 2\n", "f.json", 1,
                            "f.json:3:1: expected ',' or ']' after an array element before "
                            "the end of the text"));
  CU_ASSERT_TRUE (
      error_is ("[\"a\n\"]", "f.json", 1, "f.json:1:4: a control character (0x0a) must be escaped inside a string"));
  CU_ASSERT_TRUE (error_is ("[\"\xe4\xb8\"]", "f.json", 1, "f.json:1:3: invalid UTF-8"));
  CU_ASSERT_TRUE (error_is ("[\"\xed\xa0\x80\"]", "f.json", 1, "f.json:1:3: invalid UTF-8")); /* a raw surrogate */
  CU_ASSERT_TRUE (error_is ("[\"\xc0\xaf\"]", "f.json", 1, "f.json:1:3: invalid UTF-8"));     /* overlong */
  CU_ASSERT_TRUE (error_is ("\"\\ud800\\u0041\"", "f.json", 2,
                            "f.json:2: a \\u escape is a lone surrogate, which is not a character"));
  CU_ASSERT_TRUE (
      error_is ("\"\\udc00\"", "f.json", 1, "f.json:1: a \\u escape is a lone surrogate, which is not a character"));
  CU_ASSERT_TRUE (error_is ("[\"\\u12\"]", "f.json", 1, "f.json:1:3: a \\u escape needs four hex digits"));
  CU_ASSERT_TRUE (error_is ("[-]", "f.json", 1, "f.json:1:3: a number needs a digit, not ']'"));
  CU_ASSERT_TRUE (error_is ("{\"a\" 1}", "f.json", 1, "f.json:1:6: expected ':' after a member name, not '1'"));
  CU_ASSERT_TRUE (error_is ("{\"a\":1,}", "f.json", 1, "f.json:1:8: expected a member name in double quotes, not '}'"));
  CU_ASSERT_TRUE (error_is ("  ", "f.json", 4, "f.json:4:1: empty JSON text"));
  CU_ASSERT_TRUE (error_is ("[1e400]", "f.json", 1, "f.json:1:2: the number 1e400 is out of range"));
  CU_ASSERT_TRUE (error_is ("[nul]", "f.json", 1, "f.json:1:2: expected a value, not 'n'"));
}

static void
test_values (void)
{
  g_autoptr (JsonNode) n = cria_json_parse (
      "{\"i\":-9223372036854775808,\"j\":9223372036854775807,\"big\":9223372036854775808,\"d\":-0.0,"
      "\"s\":\"\\ud83d\\ude00\\/\\u00e9\",\"dup\":1,\"dup\":2}",
      -1, "v.json", 1, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (n);
  JsonObject *o = json_node_get_object (n);
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "i"), G_MININT64);
  CU_ASSERT_EQUAL (json_object_get_int_member (o, "j"), G_MAXINT64);
  CU_ASSERT_EQUAL (json_node_get_value_type (json_object_get_member (o, "big")), G_TYPE_DOUBLE);
  CU_ASSERT_STRING_EQUAL (json_object_get_string_member (o, "s"), "\xf0\x9f\x98\x80/\xc3\xa9");
  /* A repeated name keeps its first place and its last value, as in Python. */
  g_autoptr (GString) out = g_string_new (NULL);
  cria_json_append_node (out, n);
  CU_ASSERT_STRING_EQUAL (out->str,
                          "{\"i\":-9223372036854775808,\"j\":9223372036854775807,\"big\":9.223372036854776e+18,"
                          "\"d\":-0.0,\"s\":\"😀/é\",\"dup\":2}");
}

static void
test_doc_values (void)
{
  const char *text = "{\"i\":-9223372036854775808,\"big\":9223372036854775808,\"s\":\"\\u00e9\",\"t\":true,"
                     "\"z\":0,\"o\":{},\"a\":[1,null],\"dup\":1,\"dup\":2}";
  g_autoptr (CriaJsonDoc) d = cria_json_doc_parse (text, -1, "v.json", 1, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL (d);
  const CriaJsonValue *root = cria_json_doc_get_root (d);
  CU_ASSERT_EQUAL (cria_json_value_type (root), CRIA_JSON_OBJECT);
  CU_ASSERT_EQUAL (cria_json_value_length (root), 9);
  CU_ASSERT_STRING_EQUAL (cria_json_value_name (root, 8), "dup");
  CU_ASSERT_EQUAL (cria_json_value_int (cria_json_value_member (root, "i")), G_MININT64);
  CU_ASSERT_EQUAL (cria_json_value_type (cria_json_value_member (root, "big")), CRIA_JSON_DOUBLE);
  CU_ASSERT_STRING_EQUAL (cria_json_value_string_member (root, "s"), "\xc3\xa9");
  /* The last of a repeated name counts, as in a json-glib object. */
  CU_ASSERT_EQUAL (cria_json_value_int (cria_json_value_member (root, "dup")), 2);
  /* Truth as json-glib reads a boolean member. */
  CU_ASSERT_TRUE (cria_json_value_truth (cria_json_value_member (root, "t"), FALSE));
  CU_ASSERT_FALSE (cria_json_value_truth (cria_json_value_member (root, "z"), TRUE));
  CU_ASSERT_FALSE (cria_json_value_truth (cria_json_value_member (root, "s"), TRUE));
  CU_ASSERT_TRUE (cria_json_value_truth (cria_json_value_member (root, "o"), TRUE));
  CU_ASSERT_TRUE (cria_json_value_truth (cria_json_value_member (root, "absent"), TRUE));
  CU_ASSERT_TRUE (cria_json_value_truth (cria_json_value_element (cria_json_value_member (root, "a"), 1), TRUE));
  /* Asking the wrong kind of value, or past the end, answers NULL or 0. */
  const CriaJsonValue *a = cria_json_value_member (root, "a");
  CU_ASSERT_EQUAL (cria_json_value_length (a), 2);
  CU_ASSERT_PTR_NULL (cria_json_value_element (a, 2));
  CU_ASSERT_PTR_NULL (cria_json_value_name (a, 0));
  CU_ASSERT_PTR_NULL (cria_json_value_member (a, "i"));
  CU_ASSERT_PTR_NULL (cria_json_value_string (a));
  CU_ASSERT_PTR_NULL (cria_json_value_member (NULL, "i"));
  CU_ASSERT_EQUAL (cria_json_value_length (cria_json_value_member (root, "s")), 0);
  CU_ASSERT_EQUAL (cria_json_value_type (NULL), CRIA_JSON_NULL);
  CU_ASSERT_EQUAL (cria_json_value_double (cria_json_value_member (root, "z")), 0);
  /* A file: the errors of cria_json_load_file, which reads the same way. */
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "doc.json", NULL);
  g_autoptr (GError) e1 = NULL, e2 = NULL;
  CU_ASSERT_PTR_NULL (cria_json_doc_load_file (path, &e1));
  g_autoptr (JsonNode) n = cria_json_load_file (path, &e2);
  CU_ASSERT_TRUE (e1 && e2 && g_error_matches (e1, CRIA_ERROR, CRIA_ERROR_NOT_FOUND) &&
                  !strcmp (e1->message, e2->message));
  g_clear_error (&e1);
  g_clear_error (&e2);
  cria_test_write_file (path, "\xEF\xBB\xBF[1,\n2,,]");
  CU_ASSERT_PTR_NULL (cria_json_doc_load_file (path, &e1));
  CU_ASSERT_PTR_NULL (cria_json_load_file (path, &e2));
  CU_ASSERT_TRUE (e1 && e2 && g_error_matches (e1, CRIA_ERROR, CRIA_ERROR_PARSE) && !strcmp (e1->message, e2->message));
  g_autofree char *want = g_strdup_printf ("%s:2:3: expected a value, not ','", path);
  CU_ASSERT_TRUE (e1 && !strcmp (e1->message, want));
  cria_test_write_file (path, "\xEF\xBB\xBF [\"a\"] ");
  g_autoptr (CriaJsonDoc) f = cria_json_doc_load_file (path, NULL);
  CU_ASSERT_STRING_EQUAL (cria_json_value_string (cria_json_value_element (cria_json_doc_get_root (f), 0)), "a");
  cria_test_rmtree (dir);
}

static void
test_depth (void)
{
  g_autoptr (GString) ok = g_string_new (NULL);
  for (int i = 0; i < CRIA_JSON_MAX_DEPTH; i++)
    g_string_append_c (ok, '[');
  for (int i = 0; i < CRIA_JSON_MAX_DEPTH; i++)
    g_string_append_c (ok, ']');
  g_autoptr (JsonNode) n = cria_json_parse (ok->str, -1, "deep.json", 1, NULL);
  CU_ASSERT_PTR_NOT_NULL (n);
  g_autoptr (GString) deep = g_string_new (NULL);
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) m = cria_json_parse (deep->str, -1, "deep.json", 1, &e);
  CU_ASSERT_PTR_NULL (m);
  CU_ASSERT_TRUE (e && strstr (e->message, "deep.json:1:513: nested deeper than 512 levels"));
  g_autoptr (GError) de = NULL;
  g_autoptr (CriaJsonDoc) d = cria_json_doc_parse (deep->str, -1, "deep.json", 1, &de);
  CU_ASSERT_TRUE (!d && de && strstr (de->message, "deep.json:1:513: nested deeper than 512 levels"));
  g_autoptr (CriaJsonDoc) ok_doc = cria_json_doc_parse (ok->str, -1, "deep.json", 1, NULL);
  CU_ASSERT_EQUAL (cria_json_value_length (cria_json_doc_get_root (ok_doc)), 1);
}

static void
test_prefix (void)
{
  const char *text = " {\"a\":[1,2]} ,{\"b\":12";
  JsonNode *n = NULL;
  gsize used = 0;
  g_autoptr (GError) e = NULL;
  CU_ASSERT_EQUAL (cria_json_parse_prefix (text, text, strlen (text), FALSE, "p.json", 1, &n, &used, &e), CRIA_JSON_OK);
  CU_ASSERT_EQUAL (used, 12);
  g_clear_pointer (&n, json_node_unref);
  const char *rest = text + 14;
  /* Cut inside a value, or after a number that may go on: more text is needed. */
  CU_ASSERT_EQUAL (cria_json_parse_prefix (text, rest, strlen (rest), FALSE, "p.json", 1, &n, &used, &e),
                   CRIA_JSON_INCOMPLETE);
  CU_ASSERT_EQUAL (cria_json_parse_prefix ("12", "12", 2, FALSE, "p.json", 1, &n, &used, &e), CRIA_JSON_INCOMPLETE);
  CU_ASSERT_EQUAL (cria_json_parse_prefix ("12", "12", 2, TRUE, "p.json", 1, &n, &used, &e), CRIA_JSON_OK);
  g_clear_pointer (&n, json_node_unref);
  CU_ASSERT_PTR_NULL (e);
  /* At the end of the input the same text is an error, positioned in it. */
  CU_ASSERT_EQUAL (cria_json_parse_prefix (text, rest, strlen (rest), TRUE, "p.json", 1, &n, &used, &e),
                   CRIA_JSON_ERROR);
  CU_ASSERT_TRUE (e && g_str_has_prefix (e->message, "p.json:1:22: "));
  g_clear_error (&e);
  CU_ASSERT_EQUAL (cria_json_parse_prefix ("{x", "{x", 2, FALSE, "p.json", 1, &n, &used, &e), CRIA_JSON_ERROR);
}

static void
test_strings_written (void)
{
  g_autoptr (GString) all = g_string_new (NULL);
  for (int c = 1; c < 128; c++)
    if (c != 0x1f)
      g_string_append_c (all, (char) c);
  g_string_append (all, "\xc2\x80\xe2\x80\xa8\xef\xbb\xbf\xf0\x9f\x98\x80");
  g_autoptr (JsonNode) n = json_node_init_string (json_node_alloc (), all->str);
  g_autofree char *generated = json_to_string (n, FALSE);
  g_autoptr (GString) written = g_string_new (NULL);
  cria_json_append_string (written, all->str);
  CU_ASSERT_STRING_EQUAL (written->str, generated);
  /* json-glib 1.6 writes U+001F raw, which JSON forbids; Python escapes it. */
  g_string_truncate (written, 0);
  cria_json_append_string (written, "\x1f");
  CU_ASSERT_STRING_EQUAL (written->str, "\"\\u001f\"");
}

static void
test_doubles_written (void)
{
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests/json/doubles-golden.txt", NULL);
  g_autofree char *text = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (text);
  g_auto (GStrv) lines = cria_test_lines (text);
  guint n = 0;
  for (guint i = 0; lines[i] && *lines[i]; i++, n++) {
    g_auto (GStrv) f = g_strsplit (lines[i], " ", 2);
    double d = g_ascii_strtod (f[0], NULL);
    g_autoptr (GString) out = g_string_new (NULL);
    cria_json_append_double (out, d);
    if (strcmp (out->str, f[1]))
      fprintf (stderr, "%s: wrote %s, Python %s\n", f[0], out->str, f[1]);
    CU_ASSERT_STRING_EQUAL (out->str, f[1]);
  }
  CU_ASSERT_EQUAL (n, 620);
}

/* Every row of a JSON array file until the end or the first error, whose
 * message is returned. */
static char *
read_array (const char *text, guint *rows_read)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "a.json", NULL);
  cria_test_write_file (path, text);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaRows) rows = cria_rows_open (path, "json", &e);
  g_assert (rows);
  JsonObject *row = NULL;
  CriaFlow flow;
  *rows_read = 0;
  while ((flow = cria_rows_next (rows, &row, &e)) == CRIA_FLOW_OK) {
    json_object_unref (row);
    ++*rows_read;
  }
  cria_test_rmtree (dir);
  if (flow == CRIA_FLOW_EOS)
    return NULL;
  /* The path varies; the message from its base name on does not. */
  const char *at = strstr (e->message, "a.json");
  return g_strdup (at ? at : e->message);
}

static void
test_array_stream (void)
{
  guint n;
  g_autofree char *a = read_array ("[{\"a\":1},\n{\"a\":2}\n,\n{\"b\":\"x\"}]\n", &n);
  CU_ASSERT_PTR_NULL (a);
  CU_ASSERT_EQUAL (n, 3);
  g_autofree char *b = read_array ("[{\"a\":1},\n{\"a\":2},\n]", &n);
  CU_ASSERT_STRING_EQUAL (b, "a.json:3: a ',' before the array's ']' leaves a record out");
  g_autofree char *c = read_array ("[{\"a\":1}\n {\"a\":2}]", &n);
  CU_ASSERT_STRING_EQUAL (c, "a.json:2: expected ',' or ']' after a record");
  g_autofree char *d = read_array ("[{\"a\":1}] {}", &n);
  CU_ASSERT_STRING_EQUAL (d, "a.json:1: text after the end of the JSON array");
  g_autofree char *e = read_array ("[{\"a\":1},\n  {\"a\": tru}]", &n);
  CU_ASSERT_STRING_EQUAL (e, "a.json:2:9: expected a value, not 't'");
  g_autofree char *f = read_array ("{\"a\":1}", &n);
  CU_ASSERT_STRING_EQUAL (f, "a.json:1: expected a JSON array of records");
  g_autofree char *g = read_array ("[{\"a\":1},\n{\"a\":\"", &n);
  CU_ASSERT_STRING_EQUAL (g, "a.json:2:6: a string never closes");
  /* Records longer than the window, and a file longer than what is kept of it:
   * positions stay right after the window moves. */
  g_autoptr (GString) big = g_string_new ("[\n");
  for (int i = 0; i < 40; i++) {
    g_string_append (big, "{\"text\": \"");
    for (int j = 0; j < 100000; j++)
      g_string_append_c (big, (char) ('a' + (i + j) % 26));
    g_string_append (big, "\"},\n");
  }
  g_string_append (big, "{\"last\": nope}\n]");
  g_autofree char *h = read_array (big->str, &n);
  CU_ASSERT_EQUAL (n, 40);
  CU_ASSERT_STRING_EQUAL (h, "a.json:42:10: expected a value, not 'n'");
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "same as json-glib on generated documents", test_differential },
    { "stricter than json-glib", test_stricter },
    { "errors name line and column", test_positions },
    { "values", test_values },
    { "compact documents (CriaJsonDoc)", test_doc_values },
    { "nesting depth", test_depth },
    { "values cut out of a stream", test_prefix },
    { "JSON array files stream", test_array_stream },
    { "strings written as json-glib does", test_strings_written },
    { "doubles written as Python's repr", test_doubles_written },
    { "record lines read directly as through json-glib", test_record_lines },
    { NULL },
  };
  cria_test_add_suite ("json", cases);
}

CRIA_TEST_MAIN (register_suites)
