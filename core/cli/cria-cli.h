/* cria-cli.h: what the verbs of the cria command share. */
#pragma once

#include <cria/cria.h>

/* Exit codes of every verb. */
enum { CRIA_EXIT_OK = 0, CRIA_EXIT_FAILURE = 1, CRIA_EXIT_USAGE = 2 };

typedef struct {
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} CriaVerb;

/* A registry searched along --plugin-path, then the default paths. */
CriaRegistry *cria_cli_load_registry (void);
/* Parses a verb's options, adding those every verb takes (--plugin-path);
 * on a usage error prints it and returns FALSE. */
gboolean cria_cli_parse (GOptionContext *ctx, int *argc, char ***argv);
/* Prints "cria VERB: message" on stderr. */
void cria_cli_error (const char *verb, const GError *error);
/* An error about what the user typed on the command line says "option
 * --NAME", the words typed, where a property table says "property 'NAME'"
 * (the words of pipelines): rewrites error's message so. */
void cria_cli_say_option (GError *error);
/* What --model names: an existing path stays, a hub id ("ORG/NAME") becomes
 * its snapshot in the Hugging Face cache (cria_hf_resolve_model); *path is
 * replaced. NULL stays NULL. */
gboolean cria_cli_resolve_model (char **path, GError **error);
/* Prints a JSON node on stdout, pretty. */
void cria_cli_print_json (JsonNode *node);

int cria_verb_inspect (int argc, char **argv);
int cria_verb_data (int argc, char **argv);
int cria_verb_metric (int argc, char **argv);
int cria_verb_model (int argc, char **argv);
int cria_verb_tokenize (int argc, char **argv);
int cria_verb_tokenizer (int argc, char **argv);
int cria_verb_logits (int argc, char **argv);
int cria_verb_generate (int argc, char **argv);
int cria_verb_chat (int argc, char **argv);
int cria_verb_eval (int argc, char **argv);
int cria_verb_train (int argc, char **argv);
int cria_verb_merge (int argc, char **argv);
int cria_verb_export (int argc, char **argv);
int cria_verb_serve (int argc, char **argv);
int cria_verb_pull (int argc, char **argv);
int cria_verb_ui (int argc, char **argv);
