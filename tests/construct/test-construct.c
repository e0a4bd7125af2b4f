/* test-construct: the evolinstruct, fill and synth stages end to end against
 * the scripted server (script.h): every elimination rule counted, failed
 * evolutions back in the pool, slots from records, lists and the model,
 * facts through templates; reruns from the cache byte-identical; bad input
 * files and an unreachable endpoint fail with one clear line; and the hybrid
 * example pipeline of share/ runs. */
#include <string.h>

#include <glib/gstdio.h>

#include "script.h"

/* ---- evolinstruct ------------------------------------------------------------- */

static void
test_evolinstruct (void)
{
  script_reset ();
  script_answer ("evolve", "Name a color.", "#Rewritten Prompt#: Name a color that feels warm.");
  script_answer ("evolve", "Say hello to the team.", "Say hello to the team.");
  script_answer ("evolve", "Explain gravity.", "Explain gravity to a child using a falling apple.");
  script_answer ("answer", "Explain gravity to a child using a falling apple.", "Sorry, I cannot help with that.");
  script_answer ("evolve", "List three prime numbers.", "List three prime numbers greater than fifty.");
  script_answer ("answer", "List three prime numbers greater than fifty.", "the, of and .");
  script_answer ("evolve", "Tell a joke.", "   ");
  g_autofree char *prompts = in_tmp ("evolve-prompts");
  g_mkdir (prompts, 0755);
  const char *kinds[] = { "constraints", "breadth" };
  for (guint i = 0; i < 2; i++) {
    g_autofree char *name = g_strdup_printf ("evolve-%s.txt", kinds[i]);
    g_autofree char *path = g_build_filename (prompts, name, NULL);
    g_autofree char *text = g_strdup_printf ("EVOLVE %s\n{instruction}\n", kinds[i]);
    cria_test_write_file (path, text);
  }
  g_autofree char *in = in_tmp ("evolve-in.jsonl"), *out = in_tmp ("evolve-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"Write a poem about rain.\", \"output\": \"Rain.\", \"id\": \"p1\"}\n"
                            "{\"instruction\": \"Name a color.\", \"output\": \"Red.\"}\n"
                            "{\"instruction\": \"Say hello to the team.\", \"output\": \"Hello!\"}\n"
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                            "{\"instruction\": \"Explain gravity.\", \"output\": \"Mass attracts mass.\"}\n"
                            "{\"instruction\": \"List three prime numbers.\", \"output\": \"2, 3, 5\"}\n"
                            "{\"instruction\": \"Tell a joke.\", \"output\": \"Knock knock.\"}\n");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("evolve-cache");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! evolinstruct rounds=2 batch=4 kinds=constraints,breadth prompts=%s cache=%s %s ! "
      "jsonl location=%s",
      in, prompts, cache, gen, out);
  g_autoptr (JsonNode) summary = run_ok (desc);
  /* Each failing item fails in both rounds: the original goes back and is tried again. */
  expect_reasons (summary, 1,
                  (const char *[]){ "prompt-leak", "2", "no-information-gain", "2", "apology", "2",
                                    "punctuation-and-stop-words", "2", "empty", "2", NULL });
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 9); /* 7 passed on, 2 evolutions of the poem */
  guint evolved = 0;
  const char *round1 = NULL;
  for (guint i = 0; i < recs->len; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    if (g_strcmp0 (cria_record_get_field (r, "source"), "evolinstruct"))
      continue;
    evolved++;
    gint64 round = json_object_get_int_member (r->meta, "round");
    CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "parent"), "p1");
    CU_ASSERT_TRUE (g_str_has_prefix (r->instruction, "Write a poem about rain. Use at most"));
    CU_ASSERT_TRUE (g_str_has_prefix (r->output, "Answer: "));
    if (round == 1)
      round1 = r->instruction;
    else
      CU_ASSERT_TRUE (round1 && g_str_has_prefix (r->instruction, round1)); /* evolved from round 1's */
  }
  CU_ASSERT_EQUAL (evolved, 2);
  /* "Name a color." was evolved from the original in both rounds. */
  guint tries = 0;
  for (guint i = 0; i < seen->len; i++)
    tries += g_str_has_suffix (g_ptr_array_index (seen, i), "\nName a color.");
  CU_ASSERT_EQUAL (tries, 2);
  expect_same_rerun (desc, out);
}

static void
test_evolinstruct_chinese (void)
{
  script_reset ();
  g_autofree char *in = in_tmp ("evolve-zh.jsonl"), *out = in_tmp ("evolve-zh-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"写一首关于秋天的诗。\", \"output\": \"秋风起。\"}\n");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("evolve-zh-cache");
  g_autofree char *desc = g_strdup_printf (
      "file location=%s ! evolinstruct rounds=1 kinds=deepen cache=%s %s ! jsonl location=%s", in, cache, gen, out);
  g_autoptr (JsonNode) summary = run_ok (desc);
  /* The shipped Chinese prompt went out; the script echoed it whole, which leaks it. */
  CU_ASSERT_PTR_NOT_NULL (strstr (g_ptr_array_index (seen, 0), "给定提示：\n写一首关于秋天的诗。"));
  CU_ASSERT_EQUAL (reason (summary, 1, "prompt-leak"), 1);
}

/* ---- fill and synth ------------------------------------------------------------- */

static void
test_fill (void)
{
  script_reset ();
  script_answer ("slot", "nothing", "   ");
  g_autofree char *in = in_tmp ("fill.jsonl"), *slots = in_tmp ("slots.json"), *out = in_tmp ("fill-out.jsonl");
  cria_test_write_file (in, "{\"instruction\": \"Write a travel tip for {city} in {season}.\", \"id\": \"t1\"}\n"
                            "{\"instruction\": \"Summarize this.\", \"input\": \"{text}\", \"text\": \"Cats nap.\"}\n"
                            "{\"instruction\": \"Say {nothing}.\"}\n"
                            "{\"instruction\": \"Translate to French: hello\", \"output\": \"bonjour\"}\n");
  cria_test_write_file (slots, "{\"city\": [\"Lima\", \"Oslo\"]}");
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("fill-cache");
  g_autofree char *desc = g_strdup_printf ("file location=%s ! fill slots=%s n=2 cache=%s %s ! jsonl location=%s", in,
                                           slots, cache, gen, out);
  g_autoptr (GError) e = NULL;
  g_autoptr (JsonNode) summary = run_ok (desc);
  /* The slot the generator left empty fails its record (counted), not the run. */
  CU_ASSERT_EQUAL (reason (summary, 1, "missing-field"), 1);
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 6);
  for (guint i = 0; i < 2; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    JsonObject *s = json_object_get_object_member (r->meta, "slots");
    const char *city = json_object_get_string_member (s, "city");
    CU_ASSERT_TRUE (!strcmp (city, "Lima") || !strcmp (city, "Oslo"));
    /* The generator's value, without its quotes and full stop. */
    CU_ASSERT_STRING_EQUAL (json_object_get_string_member (s, "season"), "winter");
    g_autofree char *want = g_strdup_printf ("Write a travel tip for %s in winter.", city);
    CU_ASSERT_STRING_EQUAL (r->instruction, want);
    g_autofree char *answer = g_strdup_printf ("Answer: %s", want);
    CU_ASSERT_STRING_EQUAL (r->output, answer);
  }
  CriaRecord *own = g_ptr_array_index (recs, 2);
  CU_ASSERT_STRING_EQUAL (own->input, "Cats nap.");
  CU_ASSERT_STRING_EQUAL (own->output, "Answer: Summarize this.\n\nCats nap.");
  CriaRecord *kept = g_ptr_array_index (recs, 4);
  CU_ASSERT_STRING_EQUAL (kept->output, "bonjour"); /* answer=missing: not asked */
  expect_same_rerun (desc, out);
  /* Without a generator, an unknown slot is a clear record error. */
  g_autofree char *d2 = g_strdup_printf ("file location=%s ! fill answer=never ! jsonl location=%s", in, out);
  g_autoptr (CriaPipeline) p = cria_pipeline_parse (reg, d2, &e);
  CU_ASSERT_FALSE (cria_pipeline_run (p, &e));
  CU_ASSERT_PTR_NOT_NULL (e && strstr (e->message, "record t1: slot 'city' has no value"));
}

static void
test_synth (void)
{
  script_reset ();
  g_autofree char *facts = in_tmp ("facts.csv"), *tmpl = in_tmp ("synth.json"), *out = in_tmp ("synth.jsonl");
  cria_test_write_file (facts, "country,capital,population\nFrance,Paris,68 million\nPeru,Lima,\nAtlantis,,\n");
  cria_test_write_file (
      tmpl, "{\"templates\": [{\"name\": \"capital\", \"instruction\": \"What is the capital of {country}?\", "
            "\"output\": \"The capital of {country} is {capital}.\"}, {\"name\": \"people\", \"instruction\": "
            "\"How many people live in {country}?\", \"output\": \"{country} has about {population} people.\"}]}");
  g_autofree char *desc = g_strdup_printf ("synth facts=%s templates=%s ! jsonl location=%s", facts, tmpl, out);
  g_autoptr (JsonNode) summary = run_ok (desc);
  CU_ASSERT_EQUAL (reason (summary, 0, "no-template"), 1);
  g_autoptr (GPtrArray) recs = read_records (out);
  CU_ASSERT_EQUAL_FATAL (recs->len, 3);
  const char *outputs[] = { "The capital of France is Paris.", "France has about 68 million people.",
                            "The capital of Peru is Lima." };
  for (guint i = 0; i < 3; i++)
    CU_ASSERT_STRING_EQUAL (((CriaRecord *) g_ptr_array_index (recs, i))->output, outputs[i]);
  CU_ASSERT_EQUAL (requests (), 0);
  /* Verbalized: the generator sees the question, the facts used and the draft. */
  g_autofree char *gen = gen_spec ();
  g_autofree char *cache = in_tmp ("synth-cache");
  g_autofree char *d2 = g_strdup_printf ("synth facts=%s templates=%s cache=%s %s ! jsonl location=%s", facts, tmpl,
                                         cache, gen, out);
  g_autoptr (JsonNode) s2 = run_ok (d2);
  g_autoptr (GPtrArray) v = read_records (out);
  CU_ASSERT_EQUAL_FATAL (v->len, 3);
  CriaRecord *r = g_ptr_array_index (v, 0);
  CU_ASSERT_STRING_EQUAL (cria_record_get_field (r, "draft"), "The capital of France is Paris.");
  CU_ASSERT_PTR_NOT_NULL (strstr (r->output, "country: France\ncapital: Paris"));
  CU_ASSERT_PTR_NOT_NULL (strstr (r->output, "What is the capital of France?"));
  CU_ASSERT_EQUAL (requests (), 3);
  expect_same_rerun (d2, out);
}

/* ---- bad input ------------------------------------------------------------------ */

static void
test_bad_input (void)
{
  g_autofree char *gen = gen_spec ();
  g_autofree char *out = in_tmp ("bad.jsonl");
  struct {
    const char *name, *contents, *fragment;
  } seeds[] = {
    { "s1.jsonl",
      "{\"instruction\": \"a b c\", \"instances\": [{\"input\": \"\", \"output\": \"x\"}]}\n{\"name\": 1}\n",
      "s1.jsonl:2: missing field 'instruction'" },
    { "s2.jsonl", "{\"instruction\": \"a b c\", \"instances\": {}}\n", "s2.jsonl:1: field 'instances'" },
    { "s3.jsonl", "{\"instruction\": \"a\", \"instances\": [{\"input\": \"\"}]}\n", "s3.jsonl:1: instances[0]" },
    { "s4.jsonl", "{\"instruction\": \"a\", \"instances\": [{\"output\": \"y\"}], \"is_classification\": \"yes\"}\n",
      "s4.jsonl:1: field 'is_classification'" },
    { "s5.jsonl", "", "s5.jsonl: no seed tasks" },
    { "s6.jsonl", "{\"instruction\": \"a\",\n", "s6.jsonl:1" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (seeds); i++) {
    g_autofree char *path = in_tmp (seeds[i].name);
    cria_test_write_file (path, seeds[i].contents);
    g_autofree char *desc = g_strdup_printf ("selfinstruct seeds=%s %s ! jsonl location=%s", path, gen, out);
    expect_error (desc, seeds[i].fragment);
  }
  g_autofree char *fix = fixture ("seeds-en.jsonl");
  g_autofree char *d1 = g_strdup_printf ("selfinstruct seeds=%s generator=\"nope x=1\" ! jsonl location=%s", fix, out);
  expect_error (d1, "generator: no generator named 'nope'");
  g_autofree char *d2 = g_strdup_printf ("selfinstruct seeds=/nonexistent/seeds.jsonl %s ! jsonl location=%s", gen,
                                         out);
  expect_error (d2, "/nonexistent/seeds.jsonl");
  g_autofree char *d3 = g_strdup_printf ("selfinstruct seeds=%s prompts=/nonexistent %s ! jsonl location=%s", fix, gen,
                                         out);
  expect_error (d3, "prompts: /nonexistent is not a directory");
  /* A prompt file of one's own that names a value cria does not have. */
  g_autofree char *dir = in_tmp ("bad-prompts");
  g_mkdir (dir, 0755);
  g_autofree char *pf = g_build_filename (dir, "selfinstruct-generate.txt", NULL);
  cria_test_write_file (pf, "{examples}\n{nope}\n");
  g_autofree char *cache = in_tmp ("bad-cache");
  g_autofree char *d4 = g_strdup_printf ("selfinstruct seeds=%s prompts=%s cache=%s %s ! jsonl location=%s", fix, dir,
                                         cache, gen, out);
  expect_error (d4, "selfinstruct-generate.txt: template needs field 'nope'");
  g_autofree char *d5 = g_strdup_printf ("file location=%s ! evolinstruct kinds=deepen,sideways %s ! jsonl location=%s",
                                         fix, gen, out);
  expect_error (d5, "kinds: 'sideways' is not one of");
  g_autofree char *slots = in_tmp ("bad-slots.json");
  cria_test_write_file (slots, "{\"city\": [\"Lima\", 3]}");
  g_autofree char *d6 = g_strdup_printf ("file location=%s ! fill slots=%s %s ! jsonl location=%s", fix, slots, gen,
                                         out);
  expect_error (d6, "bad-slots.json: slot 'city': expected a non-empty array of strings");
  g_autofree char *d7 = g_strdup_printf ("file location=%s ! fill ! jsonl location=%s", fix, out);
  expect_error (d7, "answering needs a generator");
  g_autofree char *d9 = g_strdup_printf ("file location=%s ! fill fields=instruction,title %s ! jsonl location=%s", fix,
                                         gen, out);
  expect_error (d9, "fields: 'title' is not one of");
  g_autofree char *tmpl = in_tmp ("bad-templates.json"), *facts = in_tmp ("facts.jsonl");
  cria_test_write_file (tmpl, "{\"templates\": [{\"name\": \"x\", \"output\": \"{a}\"}]}");
  cria_test_write_file (facts, "{\"a\": \"1\"}\n{\"a\": \n");
  g_autofree char *d8 = g_strdup_printf ("synth facts=%s templates=%s ! jsonl location=%s", facts, tmpl, out);
  expect_error (d8, "bad-templates.json: templates[0]: field 'instruction': missing");
  cria_test_write_file (tmpl, "{\"templates\": [{\"instruction\": \"Say {a}.\", \"output\": \"{a}\"}]}");
  expect_error (d8, "facts.jsonl:2");
}

/* Through the command: an endpoint nobody listens on fails the run with one
 * line on stderr and exit status 1. */
static void
test_command_line (void)
{
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_socket_bind (sock, any, TRUE, NULL);
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (sock, NULL);
  guint16 port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);
  g_autofree char *seeds = fixture ("seeds-en.jsonl"), *out = in_tmp ("cli.jsonl"), *cache = in_tmp ("cli-cache");
  g_autofree char *desc = g_strdup_printf (
      "selfinstruct seeds=%s cache=%s generator=\"openai base-url=http://127.0.0.1:%u/v1 model=m retries=0\" ! "
      "jsonl location=%s",
      seeds, cache, port, out);
  const char *args[] = { "data", desc, NULL };
  g_autofree char *err = NULL;
  int status = cria_test_run_cria (args, NULL, NULL, &err);
  CU_ASSERT_EQUAL (status, 1);
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "selfinstruct: 4 of 4 requests failed"));
  CU_ASSERT_PTR_NOT_NULL (strstr (err, "cannot reach it"));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (err), "\n", -1);
  CU_ASSERT_EQUAL (g_strv_length (lines), 1);
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* ---- the hybrid example of share/ ------------------------------------------------- */

static void
test_hybrid_example (void)
{
  script_reset ();
  script_answer ("slot", "concept", "photosynthesis");
  script_answer ("slot", "dish", "risotto");
  script_answer ("slot", "exam", "chemistry");
  g_autofree char *path = g_build_filename (cria_test_env ("CRIA_DATA_DIR"), "construct", "hybrid.json", NULL);
  g_autofree char *json = cria_test_read_file (path);
  CU_ASSERT_PTR_NOT_NULL_FATAL (json);
  /* Pointed at the scripted server, with a cache and an output of the test's own. */
  g_autofree char *url = g_strdup_printf ("%s/v1", base);
  g_autofree char *cache = in_tmp ("hybrid-cache"), *out = in_tmp ("hybrid.jsonl");
  g_autofree char *gen = g_strdup_printf ("%s model=t concurrency=1 retries=0 backoff=0\", \"cache\": \"%s", url,
                                          cache);
  g_auto (GStrv) parts = g_strsplit (json, "http://127.0.0.1:8080/v1 model=demo", -1);
  g_autofree char *j1 = g_strjoinv (gen, parts);
  g_auto (GStrv) parts2 = g_strsplit (j1, "\"hybrid.jsonl\"", -1);
  g_autofree char *quoted = g_strdup_printf ("\"%s\"", out);
  g_autofree char *j2 = g_strjoinv (quoted, parts2);
  g_autoptr (GError) e = NULL;
  g_autoptr (CriaPipeline) p = cria_pipeline_parse_json (reg, j2, -1, path, &e);
  if (e)
    printf ("\n%s\n", e->message);
  CU_ASSERT_PTR_NOT_NULL_FATAL (p);
  CU_ASSERT_TRUE_FATAL (cria_pipeline_run (p, &e));
  g_autoptr (GPtrArray) recs = read_records (out);
  /* 6 + 2 templated records answered, each evolved once; dedup keeps them apart. */
  CU_ASSERT_EQUAL (recs->len, 16);
  guint evolved = 0;
  for (guint i = 0; i < recs->len; i++) {
    CriaRecord *r = g_ptr_array_index (recs, i);
    CU_ASSERT_PTR_NULL (strchr (r->instruction, '{'));
    CU_ASSERT_PTR_NOT_NULL (r->output);
    evolved += !g_strcmp0 (cria_record_get_field (r, "source"), "evolinstruct");
  }
  CU_ASSERT_EQUAL (evolved, 8);
}

static void
register_suites (void)
{
  static const CriaTestCase cases[] = {
    { "evolinstruct: every elimination rule, failures stay in the pool", test_evolinstruct },
    { "evolinstruct: Chinese prompts", test_evolinstruct_chinese },
    { "fill: slots from lists, records and the generator", test_fill },
    { "synth: facts through templates, verbalized", test_synth },
    { "bad seeds, prompts, slots, templates and facts", test_bad_input },
    { "the command line: endpoint unreachable", test_command_line },
    { "the hybrid example pipeline", test_hybrid_example },
    { NULL },
  };
  script_add_suite ("construct", cases);
}

CRIA_TEST_MAIN (register_suites)
