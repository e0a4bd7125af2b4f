/* test-torchfile: pytorch_model.bin through the restricted unpickler. The
 * archives were written by torch.save (tests/reference/make_torch_fixtures.py);
 * the expected values are the same tensors written by that script as
 * safetensors, so both readers are checked against torch's own bytes. */
#include <string.h>

#include "cria-test.h"
#include "modelfiles-test.h"

static char *
fixture (const char *name)
{
  return g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "fixtures", "torch", name, NULL);
}

static void
test_every_layout (void)
{
  g_autofree char *bin = fixture ("misc.bin");
  g_autofree char *ref = fixture ("misc.safetensors");
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaTorchFile) tf = cria_torch_file_open (bin, &e);
  if (!tf)
    printf ("\n  %s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (tf);
  g_autoptr (CriaSafetensors) st = cria_safetensors_open (ref, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (st);
  CU_ASSERT_EQUAL (cria_torch_file_get_n_weights (tf), cria_safetensors_get_n_weights (st));
  /* State dict order is kept. */
  CU_ASSERT_STRING_EQUAL (cria_torch_file_get_weight (tf, 0)->name, "f32");
  for (guint i = 0; i < cria_torch_file_get_n_weights (tf); i++) {
    const CriaWeight *w = cria_torch_file_get_weight (tf, i);
    const CriaWeight *r = cria_safetensors_lookup (st, w->name);
    CU_ASSERT_PTR_NOT_NULL_FATAL (r);
    CU_ASSERT_EQUAL (w->dtype, r->dtype);
    CU_ASSERT_EQUAL (w->n_dims, r->n_dims);
    CU_ASSERT_EQUAL (memcmp (w->shape, r->shape, sizeof w->shape[0] * w->n_dims), 0);
    CU_ASSERT_EQUAL (w->n_bytes, r->n_bytes);
    if (w->n_bytes != r->n_bytes || memcmp (w->data, r->data, w->n_bytes) != 0) {
      printf ("\n  %s differs\n", w->name);
      CU_FAIL ("tensor data");
    }
  }
}

static void
test_model_dir (void)
{
  g_autofree char *dir = fixture ("tiny-gpt2-bin");
  g_autofree char *ref = g_build_filename (cria_test_env ("CRIA_SRCDIR"), "tests", "models", "tiny-gpt2", NULL);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaHfModel) m = cria_hf_model_open (dir, &e);
  if (!m)
    printf ("\n  %s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (m);
  CU_ASSERT_STRING_EQUAL (cria_hf_model_get_weights_file (m), "pytorch_model.bin");
  g_autoptr (CriaHfModel) r = cria_hf_model_open (ref, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (r);
  for (guint i = 0; i < cria_hf_model_get_n_weights (r); i++) {
    const CriaWeight *x = cria_hf_model_get_weight (r, i), *y = cria_hf_model_lookup (m, x->name);
    CU_ASSERT_PTR_NOT_NULL_FATAL (y);
    CU_ASSERT_EQUAL (x->n_bytes, y->n_bytes);
    CU_ASSERT_EQUAL (memcmp (x->data, y->data, x->n_bytes), 0);
  }
  /* The attention-mask buffers are read (bool as u8) but are not parameters the check wants. */
  const CriaWeight *mask = cria_hf_model_lookup (m, "transformer.h.0.attn.bias");
  CU_ASSERT_PTR_NOT_NULL_FATAL (mask);
  CU_ASSERT_EQUAL (mask->dtype, CRIA_DTYPE_U8);
  CU_ASSERT_EQUAL (mask->n_dims, 4);
}

static void
expect_refused (const char *name, const char *needle)
{
  g_autofree char *path = fixture (name);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaTorchFile) tf = cria_torch_file_open (path, &e);
  CU_ASSERT_PTR_NULL (tf);
  assert_message (e, needle);
  CU_ASSERT_TRUE (g_str_has_prefix (e->message, path));
}

static void
test_hostile (void)
{
  expect_refused ("evil-os-system.bin", "global 'os.system' is not allowed");
  expect_refused ("evil-builtins-eval.bin", "global 'builtins.eval' is not allowed");
  expect_refused ("evil-inst.bin", "opcode 0x69 ('i') is not allowed");
  expect_refused ("evil-reduce-dict.bin", "REDUCE of something other than an allowed global");
  expect_refused ("evil-out-of-bounds.bin", "tensor 'w': offset, shape and strides reach past its storage");
  expect_refused ("missing-storage.bin", "storage data/0 is not in the archive");
  expect_refused ("truncated.bin", "truncated");
  expect_refused ("not-a-dict.bin", "not a dict of tensors");
  expect_refused ("not-a-zip.bin", "not a readable torch zip archive");
}

/* Pickles given directly to the unpickler. */
static void
expect_pickle_error (const char *pickle, gsize len, const char *needle)
{
  g_autoptr (GError) e = NULL;
  GArray *r = cria_torch_unpickle ((const guint8 *) pickle, len, "p.bin", &e);
  CU_ASSERT_PTR_NULL (r);
  if (r)
    g_array_unref (r);
  assert_message (e, needle);
}

static void
test_pickle_opcodes (void)
{
  expect_pickle_error ("", 0, "no STOP");
  expect_pickle_error ("\x80\x09.", 3, "protocol 9");
  expect_pickle_error ("R.", 2, "stack is empty");
  expect_pickle_error ("h\x05.", 3, "memo 5 was never stored");
  expect_pickle_error ("}K\x01s.", 5, "stack is empty");
  expect_pickle_error ("(K\x01.", 4, "leaves 2 values");
  expect_pickle_error ("X\xff\xff\xff\x7f", 5, "truncated");
  expect_pickle_error ("}X\x01\0\0\0aK\x01s.", 11, "entry 0 of the state dict is not a name and a tensor");
  expect_pickle_error ("cposix\nsystem\n.", 15, "global 'posix.system'");
  expect_pickle_error ("ctorch\nload\n.", 12, "global 'torch.load'");
  expect_pickle_error ("S'x'\n.", 6, "opcode 0x53 ('S')");
  expect_pickle_error ("\x81.", 2, "opcode 0x81");
  expect_pickle_error ("\x8c\x04"
                       "a\nbc"
                       "\x8c\x01"
                       "d\x93.",
                       11, "global 'a\\x0abc.d' is not allowed");
  /* A persistent id that is not a storage. */
  expect_pickle_error ("X\x01\0\0\0a\x85Q.", 9, "persistent id");
  /* Nesting cannot exhaust the stack when freed. */
  GString *deep = g_string_new (NULL);
  g_string_append_c (deep, ')');
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '\x85');
  g_string_append_c (deep, '.');
  expect_pickle_error (deep->str, deep->len, "nested deeper");
  g_string_free (deep, TRUE);
  /* An empty state dict is fine. */
  g_autoptr (GError) e = NULL;
  g_autoptr (GArray) ok = cria_torch_unpickle ((const guint8 *) "\x80\x02}q\x00.", 6, "p.bin", &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL (ok);
  CU_ASSERT_EQUAL (ok->len, 0);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "every dtype and layout", test_every_layout },
    { "pytorch_model.bin directory", test_model_dir },
    { "hostile archives", test_hostile },
    { "opcodes", test_pickle_opcodes },
    { NULL },
  };
  cria_test_add_suite ("torchfile", cases);
}

CRIA_TEST_MAIN (register_suites)
