/* perplexity.c: perplexity of a model on the responses of a dataset,
 * exp(total negative log-likelihood / total response tokens) — the mean is
 * over tokens, not over examples, as language-model evaluations report it.
 * cria eval runs the model and feeds each example's summed loss.
 *
 *   cria eval --model DIR --data test.jsonl --metrics perplexity
 */
#include "config.h"

#include <math.h>

#include "text.h"

typedef struct {
  double nll;
  guint64 tokens;
} Perplexity;

static const CriaPropSpec perplexity_props[] = { CRIA_PROP_END };

static gpointer
perplexity_create (const CriaProps *props, GError **error)
{
  return g_new0 (Perplexity, 1);
}

static gboolean
perplexity_add_loss (gpointer data, double nll_sum, guint64 n_tokens, CriaScores *segment, GError **error)
{
  Perplexity *self = data;
  if (!isfinite (nll_sum) || nll_sum < 0) {
    g_set_error (error, CRIA_RECORD_ERROR, CRIA_RECORD_ERROR_INVALID_FIELD, "the model's loss is %g", nll_sum);
    return FALSE;
  }
  self->nll += nll_sum;
  self->tokens += n_tokens;
  if (segment && n_tokens) {
    cria_scores_set (segment, "perplexity", exp (nll_sum / (double) n_tokens));
    cria_scores_set (segment, "tokens", (double) n_tokens);
  }
  return TRUE;
}

static gboolean
perplexity_finish (gpointer data, CriaScores *corpus, GError **error)
{
  Perplexity *self = data;
  if (!self->tokens) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "no response tokens were scored");
    return FALSE;
  }
  cria_scores_set (corpus, "perplexity", exp (self->nll / (double) self->tokens));
  cria_scores_set (corpus, "nll_per_token", self->nll / (double) self->tokens);
  cria_scores_set (corpus, "tokens", (double) self->tokens);
  return TRUE;
}

static const CriaMetricVTable perplexity_vtable = {
  CRIA_VTABLE_INIT (CriaMetricVTable), .flags = CRIA_METRIC_FLAG_NEEDS_MODEL,
  .create = perplexity_create,         .destroy = g_free,
  .add_loss = perplexity_add_loss,     .finish = perplexity_finish,
};

static const CriaProviderInfo cria_perplexity_info = {
  .name = "perplexity",
  .description = "Perplexity of the model on the response tokens (cria eval runs the model)",
  .example = "cria eval --model DIR --data test.jsonl --metrics perplexity",
  .props = perplexity_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_perplexity_register (CriaPlugin *plugin);

void
cria_perplexity_register (CriaPlugin *plugin)
{
  cria_plugin_add_metric (plugin, &cria_perplexity_info, &perplexity_vtable);
}
