/* cria-cli-model.h: options and opening shared by the verbs that run a model. */
#pragma once

#include "cria-cli.h"

typedef struct {
  /* options */
  char *dir, *dtype, *backend_spec, *adapter_dir;
  char *name; /* --model as given (dir is then a hub id's snapshot) */
  int threads;
  /* opened */
  CriaRegistry *registry;
  CriaBackend *backend;
  CriaModel *model;
  CriaTokenizer *tokenizer;
  CriaLm *lm;
  CriaAdapter *adapter; /* with --adapter: also installed on lm */
  /* Where the chat template comes from: the adapter's directory when it ships
   * one (LLaMA-Factory saves the tokenizer with its template beside the
   * adapter), else the model's. */
  const char *chat_dir;
} CriaCliModel;

void cria_cli_model_init (CriaCliModel *m);
/* --model, --dtype, --backend, --threads */
GOptionGroup *cria_cli_model_options (CriaCliModel *m);
gboolean cria_cli_model_open (CriaCliModel *m, gboolean need_tokenizer, GError **error);
void cria_cli_model_clear (CriaCliModel *m);

/* "1,2,3" or "1 2 3" */
GArray *cria_cli_parse_ids (const char *text, GError **error);
/* A CriaTextFunc that prints each piece on stdout as it comes. */
gboolean cria_cli_print_piece (const char *piece, gpointer user_data);
GArray *cria_cli_encode (CriaCliModel *m, const char *text, gboolean add_special, GError **error);

/* Decoding options shared by generate, chat, eval and serve. */
typedef struct {
  int max_new_tokens;
  double temperature, top_p, repetition_penalty;
  int top_k;
  gint64 seed;
  char **stop;
  char *prompt_format;
} CriaCliSampling;

void cria_cli_sampling_init (CriaCliSampling *o);
GOptionGroup *cria_cli_sampling_options (CriaCliSampling *o);
/* Fills `s` (initialized by the caller) from the options and the model's eos tokens. */
gboolean cria_cli_sampling_apply (const CriaCliSampling *o, CriaModel *model, CriaSampling *s, GError **error);
void cria_cli_sampling_clear (CriaCliSampling *o);

/* Without --prompt-format, the format recorded in the --adapter directory
 * (or in the model directory, after a full fine-tune) by cria train; then
 * checks the choice: a format that exists, a .jinja template that
 * compiles. */
gboolean cria_cli_sampling_resolve_format (CriaCliSampling *o, const CriaCliModel *m, GError **error);

/* The prompt text for a record: a plain prompt (an instruction) as it is,
 * unless --prompt-format is given; a conversation through --prompt-format,
 * or, without it or with "auto", the model's chat template (see
 * cria_chat_prompt_for_model; a model with neither a template nor a
 * family format gets a lone user message as it is, as cria serve does).
 * *add_special (may be NULL) says whether
 * the tokenizer's special tokens (BOS) go around it: not when a chat
 * template wrote the text (it writes the BOS it wants, as transformers'
 * apply_chat_template), else yes, as cria train and cria serve do. */
char *cria_cli_render_prompt (const CriaCliSampling *o, const char *model_dir, const CriaRecord *record,
                              gboolean *add_special, GError **error);
