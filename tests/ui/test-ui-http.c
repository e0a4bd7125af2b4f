/* test-ui-http: the endpoints of `cria ui` over HTTP, without a browser:
 * the page's files, the API key, pipelines previewed and written with
 * their counts and skipped records, paths kept inside the working
 * directory, a LoRA run started, followed as server-sent events, stopped
 * with a checkpoint and resumed, an evaluation's comparison, and a chat
 * answer streamed by serve's code path. Loopback-only without a key. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ui-test.h"

static UiTest t;
#define KEY "sesame"

static void
post (const char *path, const char *body, UiReply *r)
{
  ui_request (&t, "POST", path, body, KEY, r);
}

static void
test_page_and_key (void)
{
  UiReply r;
  /* The page is public: it holds no data. */
  ui_request (&t, "GET", "/data?pipeline=x", NULL, NULL, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "<canvas id=\"chart\""));
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/ui/ui.js", NULL, NULL, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/ui/../cria-ui.h", NULL, NULL, &r);
  CU_ASSERT_EQUAL (r.status, 404);
  ui_reply_clear (&r);
  /* The API is not, nor the model's routes. */
  ui_request (&t, "GET", "/api/info", NULL, NULL, &r);
  CU_ASSERT_EQUAL (r.status, 401);
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/api/info", NULL, "wrong", &r);
  CU_ASSERT_EQUAL (r.status, 401);
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/v1/models", NULL, NULL, &r);
  CU_ASSERT_EQUAL (r.status, 401);
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/api/info", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  g_autofree char *real = realpath (t.dir, NULL);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "root", ""), real);
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/api/nothing", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 404);
  ui_reply_clear (&r);
}

/* Away from loopback a key is required: one line, before listening. */
static void
test_host_needs_key (void)
{
  const char *args[] = { "ui", "--host", "0.0.0.0", "--port", "0", t.dir, NULL };
  g_autofree char *err = NULL;
  CU_ASSERT_EQUAL (cria_test_run_cria (args, NULL, NULL, &err), 2);
  CU_ASSERT_PTR_NOT_NULL (err && strstr (err, "--api-key"));
  CU_ASSERT_EQUAL (err ? strchr (err, '\n') - err + 1 : 0, (long) strlen (err ? err : ""));
}

static JsonObject *
stage (JsonObject *o, guint i)
{
  JsonArray *stages = json_object_get_array_member (o, "stages");
  CU_ASSERT_FATAL (stages && json_array_get_length (stages) > i);
  return json_array_get_object_element (stages, i);
}

static void
test_data (void)
{
  g_autofree char *recs = g_build_filename (t.dir, "recs.jsonl", NULL);
  cria_test_write_file (recs, "{\"instruction\":\"one\",\"output\":\"1\"}\n"
                              "{\"instruction\":\"two\",\"output\":\"2\"}\n"
                              "{\"instruction\":\"one\",\"output\":\"1\"}\n"
                              "{\"instruction\": broken\n"
                              "{\"instruction\":\"three\",\"output\":\"3\"}\n");
  g_autofree char *out = g_build_filename (t.dir, "out.jsonl", NULL);
  const char *pipeline = "{\"pipeline\":\"file location=recs.jsonl ! dedup ! jsonl location=out.jsonl\",\"n\":2}";
  UiReply r;
  post ("/api/data", pipeline, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  JsonObject *o = ui_reply_object (&r);
  CU_ASSERT_TRUE (cria_json_get_boolean (o, "preview", FALSE));
  CU_ASSERT_FALSE (cria_json_get_boolean (o, "written", TRUE));
  /* The user's stages only, the sink left out of a preview. */
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (o, "stages")), 2);
  CU_ASSERT_EQUAL (cria_json_get_int (stage (o, 0), "in", -1), 5);
  CU_ASSERT_EQUAL (cria_json_get_int (stage (o, 0), "skipped", -1), 1);
  CU_ASSERT_EQUAL (cria_json_get_int (stage (o, 1), "in", -1), 4);
  CU_ASSERT_EQUAL (cria_json_get_int (stage (o, 1), "out", -1), 3);
  CU_ASSERT_EQUAL (cria_json_get_int (json_object_get_object_member (stage (o, 1), "reasons"), "duplicate", 0), 1);
  CU_ASSERT_EQUAL (json_array_get_length (json_object_get_array_member (o, "records")), 2);
  JsonArray *skipped = json_object_get_array_member (o, "skipped");
  CU_ASSERT_EQUAL_FATAL (json_array_get_length (skipped), 2);
  /* The bad line, named by its file and line; the duplicate, itself; in
   * the order they were met. */
  JsonObject *dup = json_array_get_object_element (skipped, 0);
  CU_ASSERT_EQUAL (cria_json_get_int (dup, "stage", -1), 1);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (dup, "reason", ""), "duplicate");
  JsonObject *rec = json_object_get_object_member (dup, "record");
  CU_ASSERT_STRING_EQUAL (rec ? cria_json_get_string (rec, "instruction", "") : "", "one");
  JsonObject *bad = json_array_get_object_element (skipped, 1);
  CU_ASSERT_EQUAL (cria_json_get_int (bad, "stage", -1), 0);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (bad, "message", ""), "recs.jsonl:4:17: expected a value, not 'b'");
  CU_ASSERT_FALSE (json_object_has_member (bad, "record"));
  CU_ASSERT_FALSE (g_file_test (out, G_FILE_TEST_EXISTS));
  ui_reply_clear (&r);

  /* Written whole, as cria data writes it. */
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! dedup ! jsonl location=out.jsonl\",\"write\":true}",
        &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_TRUE (cria_json_get_boolean (ui_reply_object (&r), "written", FALSE));
  CU_ASSERT_EQUAL (cria_json_get_int (stage (ui_reply_object (&r), 2), "out", -1), 3);
  ui_reply_clear (&r);
  g_autofree char *written = cria_test_read_file (out);
  CU_ASSERT_PTR_NOT_NULL_FATAL (written);
  CU_ASSERT_PTR_NOT_NULL (strstr (written, "three"));

  /* A pipeline without a sink is previewed; a bad one is a 400 saying why. */
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  ui_reply_clear (&r);
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! nosuchstage\"}", &r);
  CU_ASSERT_EQUAL (r.status, 400);
  CU_ASSERT_PTR_NOT_NULL (strstr (cria_json_get_string (ui_reply_object (&r), "error", ""), "nosuchstage"));
  ui_reply_clear (&r);
}

static const char *
rendered (JsonObject *o, guint i, const char *field)
{
  JsonArray *list = json_object_get_array_member (o, "rendered");
  if (!list || json_array_get_length (list) <= i)
    return NULL;
  return cria_json_get_string (json_array_get_object_element (list, i), field, NULL);
}

/* Records shown as the model reads them: through a prompt format cria
 * ships, or through a model directory's chat template. */
static void
test_data_format (void)
{
  UiReply r;
  ui_request (&t, "GET", "/api/formats", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "{\"name\":\"chatml\","));
  ui_reply_clear (&r);

  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=2\",\"format\":\"alpaca\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  JsonObject *o = ui_reply_object (&r);
  CU_ASSERT_STRING_EQUAL (rendered (o, 1, "prompt") ? rendered (o, 1, "prompt") : "",
                          "Below is an instruction that describes a task. Write a response that appropriately "
                          "completes the request.\n\n### Instruction:\ntwo\n\n### Response:\n");
  CU_ASSERT_STRING_EQUAL (rendered (o, 1, "response") ? rendered (o, 1, "response") : "", "2");
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (json_object_get_object_member (o, "format"), "used", ""),
                          "the prompt format alpaca");
  ui_reply_clear (&r);

  /* A model directory: its tokenizer_config.json's chat template. */
  g_autofree char *tmpl = g_build_filename (t.dir, "tmpl", NULL);
  g_mkdir_with_parents (tmpl, 0755);
  g_autofree char *config = g_build_filename (tmpl, "tokenizer_config.json", NULL);
  cria_test_write_file (config, "{\"chat_template\": \"{% for m in messages %}<{{ m.role }}>{{ m.content }}\\n{% "
                                "endfor %}{% if add_generation_prompt %}<assistant>{% endif %}\"}");
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\",\"format\":\"tmpl\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  o = ui_reply_object (&r);
  CU_ASSERT_STRING_EQUAL (rendered (o, 0, "prompt") ? rendered (o, 0, "prompt") : "", "<user>one\n<assistant>");
  CU_ASSERT_STRING_EQUAL (rendered (o, 0, "response") ? rendered (o, 0, "response") : "", "1\n");
  CU_ASSERT_PTR_NOT_NULL (
      strstr (cria_json_get_string (json_object_get_object_member (o, "format"), "used", ""), "tokenizer_config.json"));
  ui_reply_clear (&r);

  /* A model without a template: each record says why. */
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\",\"format\":\"model\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (rendered (ui_reply_object (&r), 0, "error") &&
                          strstr (rendered (ui_reply_object (&r), 0, "error"), "no chat template"));
  ui_reply_clear (&r);
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\",\"format\":\"nosuch\"}", &r);
  CU_ASSERT_EQUAL (r.status, 400);
  CU_ASSERT_PTR_NOT_NULL (strstr (cria_json_get_string (ui_reply_object (&r), "error", ""), "format: "));
  ui_reply_clear (&r);
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\",\"format\":\"../tmpl\"}", &r);
  CU_ASSERT_EQUAL (r.status, 403);
  ui_reply_clear (&r);
}

/* A dedup stage's clusters: which records were dropped as duplicates of
 * which kept one, from its report; a preview writes no report of the
 * user's, a written run does. */
static void
test_data_dedup (void)
{
  g_autofree char *report = g_build_filename (t.dir, "clusters.jsonl", NULL);
  UiReply r;
  post ("/api/data",
        "{\"pipeline\":\"file location=recs.jsonl ! dedup report=clusters.jsonl ! jsonl location=o.jsonl\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_FALSE (g_file_test (report, G_FILE_TEST_EXISTS));
  JsonArray *dedup = json_object_get_array_member (ui_reply_object (&r), "dedup");
  CU_ASSERT_EQUAL_FATAL (dedup ? json_array_get_length (dedup) : 0, 1);
  JsonObject *d = json_array_get_object_element (dedup, 0);
  CU_ASSERT_EQUAL (cria_json_get_int (d, "stage", -1), 1);
  CU_ASSERT_EQUAL (cria_json_get_int (d, "n_clusters", -1), 1);
  JsonArray *clusters = json_object_get_array_member (d, "clusters");
  CU_ASSERT_EQUAL_FATAL (clusters ? json_array_get_length (clusters) : 0, 1);
  JsonObject *c = json_array_get_object_element (clusters, 0);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (c, "kind", ""), "exact");
  CU_ASSERT_EQUAL (cria_json_get_int (c, "n_duplicates", -1), 1);
  /* Records are named by their position among those dedup took: the bad
   * line 4 never reached it. */
  JsonObject *kept = json_object_get_object_member (c, "kept");
  CU_ASSERT_EQUAL (cria_json_get_int (kept, "name", -1), 1);
  JsonObject *rec = json_object_get_object_member (kept, "record");
  CU_ASSERT_STRING_EQUAL (rec ? cria_json_get_string (rec, "instruction", "") : "", "one");
  JsonArray *dups = json_object_get_array_member (c, "duplicates");
  CU_ASSERT_EQUAL_FATAL (dups ? json_array_get_length (dups) : 0, 1);
  JsonObject *dup = json_array_get_object_element (dups, 0);
  CU_ASSERT_EQUAL (cria_json_get_int (dup, "name", -1), 3);
  rec = json_object_get_object_member (dup, "record");
  CU_ASSERT_STRING_EQUAL (rec ? cria_json_get_string (rec, "output", "") : "", "1");
  ui_reply_clear (&r);

  post ("/api/data",
        "{\"pipeline\":\"file location=recs.jsonl ! dedup report=clusters.jsonl ! jsonl location=o.jsonl\","
        "\"write\":true}",
        &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_TRUE (g_file_test (report, G_FILE_TEST_EXISTS));
  dedup = json_object_get_array_member (ui_reply_object (&r), "dedup");
  CU_ASSERT_EQUAL (dedup ? cria_json_get_int (json_array_get_object_element (dedup, 0), "n_clusters", -1) : -1, 1);
  ui_reply_clear (&r);
  /* No dedup stage, no clusters. */
  post ("/api/data", "{\"pipeline\":\"file location=recs.jsonl ! head n=1\"}", &r);
  CU_ASSERT_FALSE (json_object_has_member (ui_reply_object (&r), "dedup"));
  ui_reply_clear (&r);
}

/* Every path a request names stays inside the working directory. */
static void
test_confinement (void)
{
  g_autofree char *link = g_build_filename (t.dir, "escape", NULL);
  CU_ASSERT_EQUAL (symlink ("/etc", link), 0);
  static const char *const pipelines[] = {
    "{\"pipeline\":\"file location=../recs.jsonl ! jsonl location=o.jsonl\"}",
    "{\"pipeline\":\"file location=/etc/passwd ! jsonl location=o.jsonl\"}",
    "{\"pipeline\":\"file location=escape/passwd ! jsonl location=o.jsonl\"}",
    "{\"pipeline\":\"file location=recs.jsonl ! jsonl location=/tmp/cria-ui-out.jsonl\"}",
    "{\"pipeline\":\"file location=recs.jsonl ! jsonl location=sub/../../o.jsonl\",\"write\":true}",
  };
  for (guint i = 0; i < G_N_ELEMENTS (pipelines); i++) {
    UiReply r;
    post ("/api/data", pipelines[i], &r);
    CU_ASSERT_EQUAL (r.status, 403);
    CU_ASSERT_PTR_NOT_NULL (strstr (cria_json_get_string (ui_reply_object (&r), "error", ""), "outside the working"));
    ui_reply_clear (&r);
  }
  CU_ASSERT_FALSE (g_file_test ("/tmp/cria-ui-out.jsonl", G_FILE_TEST_EXISTS));
  static const char *const gets[] = { "/api/eval?dir=..", "/api/eval?dir=/etc", "/api/train/log?run=escape",
                                      "/api/train/file?run=/&name=report.json" };
  for (guint i = 0; i < G_N_ELEMENTS (gets); i++) {
    UiReply r;
    ui_request (&t, "GET", gets[i], NULL, KEY, &r);
    CU_ASSERT_EQUAL (r.status, 403);
    ui_reply_clear (&r);
  }
  static const char *const posts[][2] = {
    { "/api/train/start", "{\"options\":{\"model\":\"model\",\"data\":\"train.jsonl\",\"out\":\"/tmp/cria-ui-run\"}}" },
    { "/api/train/start", "{\"options\":{\"model\":\"../model\",\"data\":\"train.jsonl\",\"out\":\"r\"}}" },
    { "/api/chat/open", "{\"model\":\"/etc\"}" },
    { "/api/chat/open", "{\"model\":\"model\",\"adapter\":\"escape\"}" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (posts); i++) {
    UiReply r;
    post (posts[i][0], posts[i][1], &r);
    CU_ASSERT_EQUAL (r.status, 403);
    ui_reply_clear (&r);
  }
  /* Not an option of cria train. */
  UiReply r;
  post ("/api/train/start", "{\"options\":{\"out\":\"r\",\"rm-rf\":\"1\"}}", &r);
  CU_ASSERT_EQUAL (r.status, 400);
  ui_reply_clear (&r);
}

static gboolean
exited (const char *text)
{
  return strstr (text, "\"state\":\"exited\"") != NULL;
}

static guint
count (const char *text, const char *what)
{
  guint n = 0;
  for (const char *p = strstr (text, what); p; p = strstr (p + 1, what))
    n++;
  return n;
}

static void
start_run (const char *out, const char *steps, const char *extra)
{
  g_autofree char *body = g_strdup_printf (
      "{\"options\":{\"model\":\"model\",\"data\":\"train.jsonl\",\"out\":\"%s\",\"adapter\":\"lora r=2 "
      "target-modules=c_attn\",\"max-steps\":\"%s\",\"max-length\":\"64\",\"batch-size\":\"2\",\"threads\":\"1\","
      "\"lr\":\"1e-2\",\"format\":\"short.json\"%s}}",
      out, steps, extra);
  UiReply r;
  post ("/api/train/start", body, &r);
  if (r.status != 200)
    printf ("\n%s\n", r.body);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  ui_reply_clear (&r);
}

static void
test_train (void)
{
  start_run ("run1", "10", "");
  g_autofree char *text = ui_read_events (&t, "/api/train/log?run=run1", exited, 120);
  CU_ASSERT_TRUE (exited (text));
  if (!strstr (text, "\"exit_status\":0")) {
    UiReply s;
    ui_request (&t, "GET", "/api/train/status?run=run1", NULL, KEY, &s);
    printf ("\n%s\n%s\n", text, s.body);
    ui_reply_clear (&s);
  }
  CU_ASSERT_PTR_NOT_NULL (strstr (text, "\"exit_status\":0"));
  CU_ASSERT_EQUAL (count (text, "data: {\"step\":"), 10);
  CU_ASSERT_PTR_NOT_NULL (strstr (text, "data: {\"step\":10,"));
  UiReply r;
  ui_request (&t, "GET", "/api/train/file?run=run1&name=loss.png", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_TRUE (g_str_has_prefix (r.body, "\x89PNG"));
  ui_reply_clear (&r);
  /* The form's options are cria train's. */
  ui_request (&t, "GET", "/api/train/options", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "\"name\":\"max-steps\""));
  ui_reply_clear (&r);
}

static gboolean
resumed (const char *text)
{
  return strstr (text, "\"event\":\"resume\"") != NULL;
}

static gboolean
has_checkpoint (const char *text)
{
  return strstr (text, "\"checkpoint\":") != NULL;
}

/* Stop is Ctrl-C: a checkpoint, exit 130; resume goes on from it. */
static void
test_stop_resume (void)
{
  start_run ("run2", "100000", ",\"save-every\":\"1\"");
  g_autofree char *first = ui_read_events (&t, "/api/train/log?run=run2", has_checkpoint, 120);
  CU_ASSERT_TRUE_FATAL (has_checkpoint (first));
  UiReply r;
  post ("/api/train/stop", "{\"run\":\"run2\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  ui_reply_clear (&r);
  g_autofree char *stopped = ui_read_events (&t, "/api/train/log?run=run2", exited, 120);
  CU_ASSERT_PTR_NOT_NULL (strstr (stopped, "\"exit_status\":130"));
  post ("/api/train/resume", "{\"run\":\"run2\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (cria_json_get_string (ui_reply_object (&r), "checkpoint", ""), "checkpoint-"));
  ui_reply_clear (&r);
  /* A second start of a run going on is refused. */
  post ("/api/train/resume", "{\"run\":\"run2\"}", &r);
  CU_ASSERT_EQUAL (r.status, 409);
  ui_reply_clear (&r);
  /* The resumed run writes its log as it goes: its first step is seen. */
  g_autofree char *going = ui_read_events (&t, "/api/train/log?run=run2", resumed, 120);
  CU_ASSERT_TRUE (resumed (going));
  post ("/api/train/stop", "{\"run\":\"run2\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  ui_reply_clear (&r);
  g_autofree char *again = ui_read_events (&t, "/api/train/log?run=run2", exited, 120);
  CU_ASSERT_PTR_NOT_NULL (strstr (again, "\"exit_status\":130"));
}

static gboolean
running_with_checkpoint (const char *text)
{
  return strstr (text, "\"checkpoint\":") && strstr (text, "\"state\":\"running\"");
}

/* A run started elsewhere (here by the test, as at a terminal) is stopped
 * through the process id in its train.pid, with Ctrl-C's checkpoint, and
 * resumed from the page. */
static void
test_stop_attached (void)
{
  g_autofree char *model = g_build_filename (t.dir, "model", NULL);
  g_autofree char *data = g_build_filename (t.dir, "train.jsonl", NULL);
  g_autofree char *format = g_build_filename (t.dir, "short.json", NULL);
  g_autofree char *out = g_build_filename (t.dir, "run3", NULL);
  const char *argv[] = { cria_test_env ("CRIA_BIN"),
                         "train",
                         "--model",
                         model,
                         "--data",
                         data,
                         "--format",
                         format,
                         "--out",
                         out,
                         "--adapter",
                         "lora r=2 target-modules=c_attn",
                         "--max-steps",
                         "100000",
                         "--save-every",
                         "1",
                         "--max-length",
                         "64",
                         "--batch-size",
                         "2",
                         "--threads",
                         "1",
                         "--progress",
                         "never",
                         NULL };
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, cria_test_die_with_parent, NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  g_autofree char *first = ui_read_events (&t, "/api/train/log?run=run3", running_with_checkpoint, 120);
  CU_ASSERT_TRUE_FATAL (running_with_checkpoint (first));
  UiReply r;
  ui_request (&t, "GET", "/api/train/status?run=run3", NULL, KEY, &r);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "state", ""), "running");
  CU_ASSERT_EQUAL (cria_json_get_int (ui_reply_object (&r), "pid", 0), atoi (g_subprocess_get_identifier (proc)));
  ui_reply_clear (&r);
  /* Another run of the directory is refused while it goes on. */
  post ("/api/train/resume", "{\"run\":\"run3\"}", &r);
  CU_ASSERT_EQUAL (r.status, 409);
  ui_reply_clear (&r);
  post ("/api/train/stop", "{\"run\":\"run3\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_EQUAL (cria_json_get_int (ui_reply_object (&r), "pid", 0), atoi (g_subprocess_get_identifier (proc)));
  ui_reply_clear (&r);
  g_subprocess_wait (proc, NULL, NULL);
  CU_ASSERT_TRUE (g_subprocess_get_if_exited (proc));
  CU_ASSERT_EQUAL (g_subprocess_get_exit_status (proc), 130);
  g_autofree char *pid_file = g_build_filename (out, "train.pid", NULL);
  CU_ASSERT_FALSE (g_file_test (pid_file, G_FILE_TEST_EXISTS));
  post ("/api/train/stop", "{\"run\":\"run3\"}", &r);
  CU_ASSERT_EQUAL (r.status, 409);
  ui_reply_clear (&r);
  /* Resumed by the page, which then owns the run. */
  post ("/api/train/resume", "{\"run\":\"run3\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (cria_json_get_string (ui_reply_object (&r), "checkpoint", ""), "run3/checkpoints/"));
  ui_reply_clear (&r);
  /* Stopped at once: a stop before the child is cria train waits for it
   * (between fork and exec the signal would be lost). */
  post ("/api/train/stop", "{\"run\":\"run3\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_FALSE (json_object_has_member (ui_reply_object (&r), "pid"));
  ui_reply_clear (&r);
  g_autofree char *again = ui_read_events (&t, "/api/train/log?run=run3", exited, 120);
  if (!strstr (again, "\"exit_status\":130")) {
    ui_request (&t, "GET", "/api/train/status?run=run3", NULL, KEY, &r);
    printf ("\n%s\n%s\n", again, r.body);
    ui_reply_clear (&r);
  }
  CU_ASSERT_PTR_NOT_NULL (strstr (again, "\"exit_status\":130"));
}

static void
test_eval (void)
{
  ui_test_eval (&t, "run1");
  UiReply r;
  ui_request (&t, "GET", "/api/eval?dir=eval", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  JsonObject *o = ui_reply_object (&r);
  CU_ASSERT_EQUAL (cria_json_get_int (o, "n_predictions", 0), 3);
  JsonObject *summary = json_object_get_object_member (o, "summary");
  CU_ASSERT_PTR_NOT_NULL (summary && json_object_get_object_member (summary, "base"));
  JsonArray *preds = json_object_get_array_member (o, "predictions");
  CU_ASSERT_EQUAL_FATAL (preds ? json_array_get_length (preds) : 0, 3);
  CU_ASSERT_TRUE (json_object_has_member (json_array_get_object_element (preds, 0), "prediction_base"));
  ui_reply_clear (&r);
  ui_request (&t, "GET", "/api/eval?dir=nothing", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 404);
  ui_reply_clear (&r);
}

static gpointer
open_slow (gpointer data)
{
  UiReply *r = data;
  ui_request (&t, "POST", "/api/chat/open", "{\"model\":\"slow\"}", KEY, r);
  return NULL;
}

/* A model loads in a thread: while it does, other requests and event
 * streams are answered. The load is held back without sleeping: one of the
 * model's files is a FIFO, which the loader reads once, when the test
 * writes it. */
static void
test_chat_load (void)
{
  g_autofree char *slow = g_build_filename (t.dir, "slow", NULL);
  g_mkdir_with_parents (slow, 0755);
  static const char *const files[] = { "config.json", "model.safetensors", "tokenizer.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *from = g_build_filename (t.model, files[i], NULL);
    g_autofree char *to = g_build_filename (slow, files[i], NULL);
    CU_ASSERT_EQUAL (symlink (from, to), 0);
  }
  g_autofree char *fifo = g_build_filename (slow, "generation_config.json", NULL);
  CU_ASSERT_EQUAL_FATAL (mkfifo (fifo, 0600), 0);
  UiReply opened;
  GThread *th = g_thread_new ("open", open_slow, &opened);
  /* Opening the FIFO waits for the loader to open it. */
  int fd = open (fifo, O_WRONLY);
  CU_ASSERT_FATAL (fd >= 0);
  /* First the stream, whose reads time out: a blocked server fails here. */
  g_autofree char *events = ui_read_events (&t, "/api/train/log?run=run1", exited, 30);
  CU_ASSERT_TRUE (exited (events));
  UiReply r;
  ui_request (&t, "GET", "/api/info", NULL, KEY, &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "loading", ""), "slow");
  ui_reply_clear (&r);
  /* A second load meanwhile is refused. */
  post ("/api/chat/open", "{\"model\":\"model\"}", &r);
  CU_ASSERT_EQUAL (r.status, 409);
  ui_reply_clear (&r);
  g_autofree char *config = g_build_filename (t.model, "generation_config.json", NULL);
  g_autofree char *text = cria_test_read_file (config);
  CU_ASSERT_EQUAL (write (fd, text, strlen (text)), (gssize) strlen (text));
  close (fd);
  g_thread_join (th);
  CU_ASSERT_EQUAL (opened.status, 200);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&opened), "model", ""), "slow");
  ui_reply_clear (&opened);
  ui_request (&t, "GET", "/api/info", NULL, KEY, &r);
  CU_ASSERT_FALSE (json_object_has_member (ui_reply_object (&r), "loading"));
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "model", ""), "slow");
  ui_reply_clear (&r);
}

static void
test_chat (void)
{
  UiReply r;
  post ("/api/chat/open", "{\"model\":\"model\",\"adapter\":\"run1\"}", &r);
  if (r.status != 200)
    printf ("\n%s\n", r.body);
  CU_ASSERT_EQUAL_FATAL (r.status, 200);
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "model", ""), "model+run1");
  /* With an adapter, the base model beside it. */
  CU_ASSERT_STRING_EQUAL (cria_json_get_string (ui_reply_object (&r), "base", ""), "model");
  ui_reply_clear (&r);
  post ("/v1/chat/completions",
        "{\"model\":\"model+run1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"3 + 4\"}]}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "\"role\":\"assistant\""));
  CU_ASSERT_TRUE (count (r.body, "\"content\":") >= 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "data: [DONE]"));
  ui_reply_clear (&r);
  /* The same message to the base model: streamed the same way, under its
   * own name; whole without "stream". */
  post ("/api/chat/base", "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"3 + 4\"}]}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "\"model\":\"model\""));
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "\"role\":\"assistant\""));
  CU_ASSERT_TRUE (count (r.body, "\"content\":") >= 2);
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "\"finish_reason\":\""));
  CU_ASSERT_PTR_NOT_NULL (strstr (r.body, "data: [DONE]"));
  ui_reply_clear (&r);
  post ("/api/chat/base", "{\"messages\":[{\"role\":\"user\",\"content\":\"3 + 4\"}]}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  JsonArray *choices = cria_json_get_array (ui_reply_object (&r), "choices");
  CU_ASSERT_EQUAL (choices ? json_array_get_length (choices) : 0, 1);
  ui_reply_clear (&r);
  post ("/api/chat/base", "{\"messages\":[]}", &r);
  CU_ASSERT_EQUAL (r.status, 400);
  ui_reply_clear (&r);
  /* Without an adapter there is no base model beside. */
  post ("/api/chat/open", "{\"model\":\"model\"}", &r);
  CU_ASSERT_EQUAL (r.status, 200);
  CU_ASSERT_FALSE (json_object_has_member (ui_reply_object (&r), "base"));
  ui_reply_clear (&r);
  post ("/api/chat/base", "{\"messages\":[{\"role\":\"user\",\"content\":\"3 + 4\"}]}", &r);
  CU_ASSERT_EQUAL (r.status, 503);
  ui_reply_clear (&r);
}

static void
setup (void)
{
  ui_test_setup (&t);
  ui_test_start (&t, KEY);
}

static void
teardown (void)
{
  CU_ASSERT_EQUAL (ui_test_stop (&t), 0);
  ui_test_teardown (&t);
}

static const CriaTestCase cases[] = {
  { "setup", setup },
  { "page and key", test_page_and_key },
  { "host needs a key", test_host_needs_key },
  { "data", test_data },
  { "data rendered", test_data_format },
  { "dedup clusters", test_data_dedup },
  { "confinement", test_confinement },
  { "train", test_train },
  { "stop and resume", test_stop_resume },
  { "stop a run started elsewhere", test_stop_attached },
  { "eval", test_eval },
  { "model load in a thread", test_chat_load },
  { "chat", test_chat },
  { "teardown", teardown },
  { NULL, NULL },
};

static void
register_suites (void)
{
  cria_test_add_suite ("ui-http", cases);
}

CRIA_TEST_MAIN (register_suites)
