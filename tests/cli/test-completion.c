/* test-completion: the bash completion (completion/cria) asked by bash, as
 * bash-completion would ask it, against the cria and plugins just built.
 * Skips (77) where bash or bash-completion is not installed. */
#include "config.h"

#include "cria-test.h"

#define BASH_COMPLETION "/usr/share/bash-completion/bash_completion"

/* The completions bash offers for `line` (the cursor at its end), one a line. */
static char *
complete (const char *line)
{
  static const char script[] = "source " BASH_COMPLETION " && source \"$CRIA_SRCDIR/completion/cria\" || exit 1\n"
                               "COMP_LINE=\"$CRIA_BIN $1\"; COMP_POINT=${#COMP_LINE}\n"
                               "read -r -a COMP_WORDS <<< \"$COMP_LINE\"\n"
                               "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n"
                               "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()\n"
                               "_cria && printf '%s\\n' \"${COMPREPLY[@]}\"\n";
  const char *argv[] = { "bash", "-c", script, "bash", line, NULL };
  char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  CU_ASSERT_TRUE_FATAL (
      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status, &error));
  if (!g_spawn_check_wait_status (status, NULL))
    fprintf (stderr, "completing '%s' failed: %s\n", line, err);
  CU_ASSERT_TRUE (g_spawn_check_wait_status (status, NULL));
  g_free (err);
  return out;
}

/* Whether `word` is one of the lines of `list`. */
static gboolean
has (const char *list, const char *word)
{
  g_auto (GStrv) lines = g_strsplit (list, "\n", -1);
  return g_strv_contains ((const char *const *) lines, word);
}

static void
test_verbs_and_options (void)
{
  g_autofree char *verbs = complete ("");
  CU_ASSERT_TRUE (has (verbs, "data") && has (verbs, "serve") && has (verbs, "train") && has (verbs, "inspect"));
  g_autofree char *t = complete ("tr");
  CU_ASSERT_STRING_EQUAL (t, "train\n");
  g_autofree char *opts = complete ("data --on");
  CU_ASSERT_TRUE (has (opts, "--on-error"));
  g_autofree char *serve = complete ("serve --po");
  CU_ASSERT_STRING_EQUAL (serve, "--port\n");
  g_autofree char *kinds = complete ("inspect --kind tr");
  CU_ASSERT_STRING_EQUAL (kinds, "transform\n");
}

static void
test_providers_and_properties (void)
{
  g_autofree char *names = complete ("inspect ");
  CU_ASSERT_TRUE (has (names, "head") && has (names, "jsonl") && has (names, "llama") && has (names, "bleu"));
  g_autofree char *stage = complete ("data file location=in.jsonl ! hea");
  CU_ASSERT_STRING_EQUAL (stage, "head\n");
  g_autofree char *first = complete ("data squ");
  CU_ASSERT_STRING_EQUAL (first, "squad\n");
  g_autofree char *props = complete ("data file location=in.jsonl ! head ");
  CU_ASSERT_TRUE (has (props, "n=") && has (props, "!"));
  g_autofree char *loc = complete ("data file loc");
  CU_ASSERT_STRING_EQUAL (loc, "location=\n");
}

static void
register_suites (void)
{
  g_autofree char *bash = g_find_program_in_path ("bash");
  if (!bash || !g_file_test (BASH_COMPLETION, G_FILE_TEST_EXISTS))
    exit (CRIA_TEST_SKIP);
  static const CriaTestCase cases[] = {
    { "verbs, options and kinds", test_verbs_and_options },
    { "providers and their properties in a pipeline", test_providers_and_properties },
    { NULL },
  };
  cria_test_add_suite ("completion", cases);
}

CRIA_TEST_MAIN (register_suites)
