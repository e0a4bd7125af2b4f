/* test-safetensors: the strict header checks (every malformed case gets a
 * one-line error naming the file, tensor and field) and the atomic writer. */
#include <string.h>

#include "cria-test.h"

/* A file in memory: 8-byte length, the header, then `data_len` bytes. */
static GBytes *
make_file (const char *header, gsize data_len)
{
  gsize n = strlen (header);
  GByteArray *b = g_byte_array_new ();
  guint8 len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (guint8) ((guint64) n >> (8 * i));
  g_byte_array_append (b, len, 8);
  g_byte_array_append (b, (const guint8 *) header, (guint) n);
  for (gsize i = 0; i < data_len; i++) {
    guint8 v = (guint8) i;
    g_byte_array_append (b, &v, 1);
  }
  return g_byte_array_free_to_bytes (b);
}

/* Parses and expects failure with every `needles` in the message. */
static void
expect_error (const char *header, gsize data_len, int code, const char *needle)
{
  g_autoptr (GBytes) f = make_file (header, data_len);
  gsize len;
  const void *data = g_bytes_get_data (f, &len);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaSafetensors) st = cria_safetensors_parse (data, len, "bad.safetensors", &e);
  CU_ASSERT_PTR_NULL (st);
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  CU_ASSERT_EQUAL (e->code, code);
  if (!strstr (e->message, needle) || !g_str_has_prefix (e->message, "bad.safetensors: ")) {
    printf ("\n  message: %s\n  wanted:  %s\n", e->message, needle);
    CU_FAIL ("error message");
  }
  CU_ASSERT_PTR_NULL (strchr (e->message, '\n'));
}

static void
test_valid (void)
{
  const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                  "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[28,36]},"
                  "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[36,36]}}";
  g_autoptr (GBytes) f = make_file (h, 36);
  gsize len;
  const guint8 *data = g_bytes_get_data (f, &len);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaSafetensors) st = cria_safetensors_parse (data, len, "ok.safetensors", &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 4);
  CU_ASSERT_STRING_EQUAL (cria_safetensors_get_metadata (st, "format"), "pt");
  const CriaWeight *a = cria_safetensors_lookup (st, "a");
  CU_ASSERT_PTR_NOT_NULL_FATAL (a);
  CU_ASSERT_EQUAL (a->dtype, CRIA_DTYPE_F32);
  CU_ASSERT_EQUAL (a->n_dims, 2);
  CU_ASSERT_EQUAL (a->shape[1], 3);
  CU_ASSERT_EQUAL (a->n_elements, 6);
  CU_ASSERT_EQUAL (a->n_bytes, 24);
  CU_ASSERT_PTR_EQUAL (a->data, data + 8 + strlen (h));
  const CriaWeight *b = cria_safetensors_lookup (st, "b");
  CU_ASSERT_PTR_EQUAL (b->data, data + 8 + strlen (h) + 24);
  CU_ASSERT_EQUAL (cria_safetensors_lookup (st, "s")->n_dims, 0);
  CU_ASSERT_EQUAL (cria_safetensors_lookup (st, "z")->n_elements, 0);
  CU_ASSERT_PTR_NULL (cria_safetensors_lookup (st, "c"));
  /* In offset order. */
  CU_ASSERT_STRING_EQUAL (cria_safetensors_get_weight (st, 0)->name, "a");
  g_autofree char *shape = cria_weight_shape_string (a);
  CU_ASSERT_STRING_EQUAL (shape, "[2, 3]");
}

static void
test_truncated (void)
{
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (cria_safetensors_parse ("\x10\0\0", 3, "t.safetensors", &e));
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  CU_ASSERT_PTR_NOT_NULL (strstr (e->message, "truncated"));
  g_clear_error (&e);
  CU_ASSERT_PTR_NULL (cria_safetensors_parse ("", 0, "t.safetensors", &e));
  CU_ASSERT_PTR_NOT_NULL (e);
}

static void
test_header_past_eof (void)
{
  /* Claims 4096 header bytes in a short file; also a length that wraps. */
  guint8 f[16] = { 0x00, 0x10, 0, 0, 0, 0, 0, 0, '{', '}' };
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (cria_safetensors_parse (f, sizeof f, "h.safetensors", &e));
  CU_ASSERT_PTR_NOT_NULL_FATAL (e);
  CU_ASSERT_PTR_NOT_NULL (strstr (e->message, "past the end of the file"));
  g_clear_error (&e);
  memset (f, 0xff, 8);
  CU_ASSERT_PTR_NULL (cria_safetensors_parse (f, sizeof f, "h.safetensors", &e));
  CU_ASSERT_PTR_NOT_NULL (e);
}

static void
test_malformed_headers (void)
{
  expect_error ("[1,2]", 0, CRIA_ERROR_PARSE, "not a JSON object");
  expect_error ("{\"a\":", 0, CRIA_ERROR_PARSE, "not valid JSON");
  expect_error ("{\"a\":5}", 0, CRIA_ERROR_PARSE, "tensor 'a': entry is not an object");
  expect_error ("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CRIA_ERROR_PARSE, "tensor 'a': dtype");
  expect_error ("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, CRIA_ERROR_UNSUPPORTED,
                "tensor 'a': dtype: 'F64' is not supported");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, CRIA_ERROR_PARSE,
                "shape: dimension 0");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, CRIA_ERROR_PARSE,
                "shape: dimension 0");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, CRIA_ERROR_PARSE,
                "9 dimensions");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                CRIA_ERROR_PARSE, "overflows");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, CRIA_ERROR_PARSE,
                "data_offsets: missing");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, CRIA_ERROR_PARSE,
                "before begin");
  expect_error ("{\"__metadata__\":{\"k\":1}}", 0, CRIA_ERROR_PARSE, "__metadata__: 'k' is not a string");
  expect_error ("{\"__metadata__\":[]}", 0, CRIA_ERROR_PARSE, "__metadata__ is not an object");
  /* Names from the file cannot break the error onto two lines (found by fuzzing). */
  expect_error ("{\"a\\nb\":5}", 0, CRIA_ERROR_PARSE, "tensor 'a\\x0ab': entry is not an object");
}

static void
test_lying_offsets (void)
{
  /* Past the data section. */
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, CRIA_ERROR_PARSE,
                "tensor 'a': data_offsets: end 8 is past the data section (4 bytes)");
  /* Shape and size disagree. */
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, CRIA_ERROR_PARSE,
                "tensor 'a': shape [3] of F32 disagrees with data_offsets [0, 8]");
  /* Overlap. */
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, CRIA_ERROR_PARSE, "overlap 'a'");
  /* A hole, and bytes after the last tensor. */
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, CRIA_ERROR_PARSE,
                "4 bytes before it belong to no tensor");
  expect_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, CRIA_ERROR_PARSE,
                "8 bytes after the last tensor");
}

static void
test_open_file_errors (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *missing = g_build_filename (dir, "none.safetensors", NULL);
  g_autoptr (GError) e = NULL;
  CU_ASSERT_PTR_NULL (cria_safetensors_open (missing, &e));
  CU_ASSERT_EQUAL (e->code, CRIA_ERROR_IO);
  g_clear_error (&e);
  g_autofree char *empty = g_build_filename (dir, "empty.safetensors", NULL);
  cria_test_write_file (empty, "");
  CU_ASSERT_PTR_NULL (cria_safetensors_open (empty, &e));
  CU_ASSERT_PTR_NOT_NULL (e);
  cria_test_rmtree (dir);
}

static void
test_write_roundtrip (void)
{
  g_autofree char *dir = cria_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "w.safetensors", NULL);
  float f[6] = { 1, 2, 3, 4, 5, 6 };
  guint16 h[3] = { 0x3f80, 0x4000, 0xc000 };
  gint64 ids[2] = { -1, 1LL << 40 };
  CriaWeight ws[3] = {
    { .name = "half", .dtype = CRIA_DTYPE_BF16, .n_dims = 1, .shape = { 3 }, .data = h, .n_bytes = 6 },
    { .name = "mat", .dtype = CRIA_DTYPE_F32, .n_dims = 2, .shape = { 2, 3 }, .data = f, .n_bytes = 24 },
    { .name = "ids", .dtype = CRIA_DTYPE_I64, .n_dims = 1, .shape = { 2 }, .data = ids, .n_bytes = 16 },
  };
  g_autoptr (CriaSafetensorsWriter) w = cria_safetensors_writer_new ();
  cria_safetensors_writer_set_metadata (w, "format", "pt");
  g_autoptr (GError) e = NULL;
  for (int i = 0; i < 3; i++)
    CU_ASSERT_TRUE (cria_safetensors_writer_add (w, &ws[i], &e));
  CU_ASSERT_FALSE (cria_safetensors_writer_add (w, &ws[0], &e)); /* duplicate */
  g_clear_error (&e);
  CriaWeight bad = ws[1];
  bad.name = "bad";
  bad.n_bytes = 20;
  CU_ASSERT_FALSE (cria_safetensors_writer_add (w, &bad, &e));
  g_clear_error (&e);
  guint64 size = cria_safetensors_writer_get_size (w);
  CU_ASSERT_TRUE_FATAL (cria_safetensors_writer_write (w, path, &e));
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  g_autofree char *text = NULL;
  gsize len;
  g_file_get_contents (path, &text, &len, NULL);
  CU_ASSERT_EQUAL (len, size);
  CU_ASSERT_EQUAL (GUINT64_FROM_LE (*(guint64 *) text) % 8, 0);
  for (int i = 0; i < 3; i++) {
    const CriaWeight *r = cria_safetensors_lookup (st, ws[i].name);
    CU_ASSERT_PTR_NOT_NULL_FATAL (r);
    CU_ASSERT_EQUAL (r->dtype, ws[i].dtype);
    CU_ASSERT_EQUAL (r->n_bytes, ws[i].n_bytes);
    CU_ASSERT_EQUAL (memcmp (r->data, ws[i].data, r->n_bytes), 0);
    /* Widest first keeps every tensor aligned to its element size. */
    CU_ASSERT_EQUAL ((gsize) ((const char *) r->data - text) % cria_dtype_bytes (r->dtype, 1), 0);
  }
  CU_ASSERT_STRING_EQUAL (cria_safetensors_get_weight (st, 0)->name, "ids");
  CU_ASSERT_STRING_EQUAL (cria_safetensors_get_metadata (st, "format"), "pt");
  /* Nothing but the file is left behind. */
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  int n = 0;
  while (g_dir_read_name (d))
    n++;
  CU_ASSERT_EQUAL (n, 1);
  cria_test_rmtree (dir);
}

static void
test_real_file (void)
{
  /* Not cria_test_shared(): a missing ../shared skips this case, not the program. */
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_SHARED"), "models/stories260K/model.safetensors",
                                            NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return;
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (path, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_safetensors_get_n_weights (st), 47);
  const CriaWeight *w = cria_safetensors_lookup (st, "model.layers.0.self_attn.k_proj.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL (w);
  CU_ASSERT_EQUAL (w->shape[0], 32);
  CU_ASSERT_EQUAL (w->shape[1], 64);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "valid header", test_valid },
    { "truncated file", test_truncated },
    { "header length past EOF", test_header_past_eof },
    { "malformed headers", test_malformed_headers },
    { "lying offsets", test_lying_offsets },
    { "open errors", test_open_file_errors },
    { "write and read back", test_write_roundtrip },
    { "real checkpoint", test_real_file },
    { NULL },
  };
  cria_test_add_suite ("safetensors", cases);
}

CRIA_TEST_MAIN (register_suites)
