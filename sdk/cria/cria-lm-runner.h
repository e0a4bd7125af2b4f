/* cria-lm-runner.h: generator requests (CriaGenRequest, chat or completion)
 * answered by cria's own runtime on a model directory.
 *
 * What `cria serve` and the local generator share, so that the same request
 * gives the same text through either: the prompt a conversation becomes, how
 * the request's fields override the decoding defaults, BOS, the context
 * limit and the finish reason. */
#pragma once

#include <gio/gio.h>
#include <cria/cria-adapter.h>
#include <cria/cria-generator.h>
#include <cria/cria-lm.h>
#include <cria/cria-prompt-format.h>

G_BEGIN_DECLS

/* Everything a model directory needs to run, opened together. */
typedef struct {
  CriaBackend *backend;
  CriaModel *model;
  CriaTokenizer *tokenizer; /* NULL when not asked for */
  CriaLm *lm;
  CriaAdapter *adapter; /* NULL unless cria_lm_stack_add_adapter */
} CriaLmStack;

/* `backend_spec` NULL means "cpu"; `threads` 0 leaves the backend's default. */
gboolean cria_lm_stack_open (CriaLmStack *stack, CriaRegistry *registry, const char *dir, CriaModelDType dtype,
                             const char *backend_spec, int threads, gboolean need_tokenizer, GError **error);
void cria_lm_stack_clear (CriaLmStack *stack);
/* Loads a PEFT adapter directory onto the stack's model (--adapter DIR):
 * every graph the CriaLm builds from then on runs through it. A tokenizer
 * saved in the directory (with the tokens the adapter added) becomes the
 * stack's, replacing the base's. */
gboolean cria_lm_stack_add_adapter (CriaLmStack *stack, CriaRegistry *registry, const char *dir, GError **error);

/* The text the model reads for a request: a completion's prompt as it is; a
 * conversation (system, then messages) through the prompt format. Without a
 * format only a conversation of one user message can be rendered (its text,
 * as `cria generate` reads it). The one place that switches to the model's
 * chat template once cria has one. */
char *cria_lm_render_request (const CriaPromptFormat *format, const CriaGenRequest *request, GError **error);

typedef struct _CriaLmRunner CriaLmRunner;

/* Borrows `lm` and `tokenizer`; takes a copy of `defaults` (the settings of
 * whatever a request leaves out, and the stop tokens). `format` may be NULL
 * and is borrowed. With `add_special` the tokenizer's special tokens (BOS)
 * frame the prompt, as Hugging Face's tokenizers do by default. */
CriaLmRunner *cria_lm_runner_new (CriaLm *lm, CriaTokenizer *tokenizer, const CriaPromptFormat *format,
                                  const CriaSampling *defaults, gboolean add_special);
void cria_lm_runner_free (CriaLmRunner *runner);
/* Conversations are rendered as cria_chat_prompt_for_model renders them for
 * `model_dir`: its own chat template unless `format` (NULL or "auto": none)
 * names a prompt format or a .jinja file. The format given to
 * cria_lm_runner_new is then not used. A prompt from a chat template is
 * encoded as it is (the template writes the BOS it wants, as
 * transformers' apply_chat_template); one from a prompt format gets the
 * tokenizer's special tokens when the runner adds them (as cria train
 * encodes it). A model with neither still answers a lone user message,
 * as its plain text. */
void cria_lm_runner_set_chat (CriaLmRunner *runner, const char *model_dir, const char *format);
/* With `max_batch` > 1, requests running at once on several threads are
 * decoded together, up to max_batch sequences per step (CriaLmBatcher),
 * each with the text it gets alone; 1 (the default): one at a time. */
void cria_lm_runner_set_batch (CriaLmRunner *runner, guint max_batch);
guint cria_lm_runner_get_batch (CriaLmRunner *runner);
CriaTokenizer *cria_lm_runner_get_tokenizer (CriaLmRunner *runner);
/* The prompt text of a request and whether the tokenizer's special tokens
 * are added to it. */
char *cria_lm_runner_render (CriaLmRunner *runner, const CriaGenRequest *request, gboolean *add_special,
                             GError **error);

/* What a request of the OpenAI API adds to a CriaGenRequest. */
typedef struct {
  double presence_penalty, frequency_penalty;
  CriaLogitsFunc on_logits; /* see CriaSampling */
  CriaTokenFunc on_token;
  gpointer hook_data;
} CriaLmRunnerHooks;

/* Runs one request: one at a time (a CriaLm is not shared between
 * threads), or, after cria_lm_runner_set_batch, from several threads at
 * once, its hooks then called from whichever of them decodes the batch.
 * `on_text` (may be NULL) receives the text as it comes; the cancellable is
 * checked between tokens. A request the model cannot take (an empty or too
 * long prompt, a conversation without a format) fails with
 * CRIA_ERROR_INVALID_ARGUMENT. */
gboolean cria_lm_runner_generate (CriaLmRunner *runner, const CriaGenRequest *request, CriaTextFunc on_text,
                                  gpointer user_data, GCancellable *cancellable, CriaGenResult *result, GError **error);

/* The same with `hooks` (may be NULL). */
gboolean cria_lm_runner_generate_full (CriaLmRunner *runner, const CriaGenRequest *request,
                                       const CriaLmRunnerHooks *hooks, CriaTextFunc on_text, gpointer user_data,
                                       GCancellable *cancellable, CriaGenResult *result, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaLmRunner, cria_lm_runner_free)

G_END_DECLS
