/* cria-eval-pref.c: `cria eval` on preference pairs — how often each model
 * gives the chosen answer the higher log-probability, and by how much; with
 * --compare, the adapted model's DPO rewards against the base as reference.
 *
 *   cria eval --model DIR --adapter run --compare --data held-out-pairs.jsonl
 *
 * A sequence's log-probability is summed over its answer's tokens and the
 * EOS after them, as `cria train --objective dpo` counts it. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cria-eval.h"

/* One side of a pair ready for model `m`: the last response token learns
 * the EOS, as in training. */
static gboolean
side_prepare (EvalOptions *o, CriaCliModel *m, CriaPromptFormat *format, const CriaRecord *one, EvalExample *ex,
              GError **error)
{
  if (!eval_prepare (o, m, format, one, 0, ex, error))
    return FALSE;
  gint32 eos = cria_tokenizer_special_id (m->tokenizer, CRIA_SPECIAL_EOS);
  const CriaHfConfig *c = cria_model_get_config (m->model);
  if (eos < 0 && c->eos_token_ids && c->eos_token_ids->len)
    eos = (gint32) g_array_index (c->eos_token_ids, gint64, 0);
  if (eos >= 0) {
    g_array_index (ex->labels, gint32, ex->ids->len - 1) = eos;
    g_array_append_val (ex->ids, eos);
    g_array_append_val (ex->labels, (gint32){ CRIA_IGNORE_INDEX });
  }
  return TRUE;
}

/* log p(answer | prompt) of one side of a pair under each arm. */
static gboolean
side_logp (EvalOptions *o, CriaCliModel *m, CriaPromptFormat *format, const CriaRecord *r, const char *answer,
           GPtrArray *arms, double *logp, GError **error)
{
  g_autoptr (CriaRecord) one = cria_record_with_answer (r, answer);
  EvalExample ex = { 0 };
  gboolean ok = side_prepare (o, m, format, one, &ex, error);
  for (guint a = 0; ok && a < arms->len; a++) {
    EvalArm *arm = g_ptr_array_index (arms, a);
    /* a base opened on its own encodes with its own tokenizer */
    EvalExample own = { 0 };
    ok = !arm->model || side_prepare (o, arm->model, format, one, &own, error);
    const EvalExample *aex = arm->model ? &own : &ex;
    double nll = 0;
    guint64 n = 0;
    ok = ok && cria_lm_nll (arm->lm, (const gint32 *) aex->ids->data, (const gint32 *) aex->labels->data, aex->ids->len,
                            &nll, &n, error);
    logp[a] = -nll;
    eval_example_clear (&own);
  }
  eval_example_clear (&ex);
  return ok;
}

gboolean
eval_preferences (EvalOptions *o, CriaCliModel *m, GPtrArray *records, GError **error)
{
  g_autoptr (CriaPromptFormat) format = NULL;
  if (!eval_resolve_format (o, m, &format, error))
    return FALSE;
  g_autoptr (GPtrArray) arms = g_ptr_array_new ();
  /* the arms without their metrics: only their runtimes are used */
  CriaCliModel *own = NULL;
  if (o->compare && !eval_open_base (m, &own, error))
    return FALSE;
  CriaLm *base = own ? own->lm : o->compare ? cria_lm_new (m->model, m->backend) : NULL;
  EvalArm b = { .label = (char *) "base", .lm = base, .model = own };
  EvalArm adapted = { .label = (char *) (m->adapter ? "adapted" : "model"), .lm = m->lm };
  if (base)
    g_ptr_array_add (arms, &b);
  g_ptr_array_add (arms, &adapted);
  guint na = arms->len, n = records->len;
  double correct[2] = { 0 }, margin[2] = { 0 }, reward_correct = 0, reward_margin = 0;
  g_autoptr (CriaOutput) out = NULL;
  gboolean ok = TRUE;
  if (o->out_dir) {
    g_autofree char *path = g_build_filename (o->out_dir, "predictions.jsonl", NULL);
    ok = g_mkdir_with_parents (o->out_dir, 0755) == 0 && (out = cria_output_open (path, error)) != NULL;
    if (!ok && error && !*error)
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create the directory", o->out_dir);
  }
  for (guint i = 0; ok && i < n; i++) {
    const CriaRecord *r = g_ptr_array_index (records, i);
    double pc[2], pr[2];
    ok = side_logp (o, m, format, r, r->chosen, arms, pc, error) &&
         side_logp (o, m, format, r, r->rejected, arms, pr, error);
    if (!ok) {
      g_prefix_error (error, "%s: record %u: ", o->data, i + 1);
      break;
    }
    g_autoptr (GString) line = g_string_new (NULL);
    g_string_append_printf (line, "{\"index\":%u", i);
    for (guint a = 0; a < na; a++) {
      const char *label = ((EvalArm *) g_ptr_array_index (arms, a))->label;
      correct[a] += pc[a] > pr[a];
      margin[a] += pc[a] - pr[a];
      g_string_append_printf (line, ",\"logps_chosen_%s\":%.9g,\"logps_rejected_%s\":%.9g", label, pc[a], label, pr[a]);
    }
    if (na == 2) {
      double d = (pc[1] - pc[0]) - (pr[1] - pr[0]);
      reward_correct += d > 0;
      reward_margin += o->beta * d;
    }
    g_string_append (line, "}\n");
    if (out)
      ok = cria_output_write (out, line->str, line->len, error);
  }
  if (base && !own)
    cria_lm_free (base);
  eval_close_base (own);
  if (!ok || (out && !cria_output_commit (g_steal_pointer (&out), error)))
    return FALSE;
  g_autoptr (GString) json = g_string_new ("{");
  g_autoptr (GString) text = g_string_new (NULL);
  g_string_append_printf (text, "%u preference pairs of %s\n%-10s %14s %14s\n", n, o->data, "model", "pref_accuracy",
                          "logp_margin");
  for (guint a = 0; a < na; a++) {
    const char *label = ((EvalArm *) g_ptr_array_index (arms, a))->label;
    g_string_append_printf (json, "%s\"%s\":{\"pref_accuracy\":%.9g,\"logp_margin\":%.9g}", a ? "," : "", label,
                            correct[a] / n, margin[a] / n);
    g_string_append_printf (text, "%-10s %14.4f %14.4f\n", label, correct[a] / n, margin[a] / n);
  }
  if (na == 2) {
    g_string_append_printf (json, ",\"rewards\":{\"beta\":%.9g,\"accuracy\":%.9g,\"margin\":%.9g}", o->beta,
                            reward_correct / n, reward_margin / n);
    g_string_append_printf (text, "DPO rewards of adapted against base (beta %g): accuracy %.4f, margin %.4f\n",
                            o->beta, reward_correct / n, reward_margin / n);
  }
  g_string_append_printf (json, ",\"pairs\":%u}", n);
  fputs (o->as_json ? json->str : text->str, stdout);
  if (o->as_json)
    fputc ('\n', stdout);
  if (o->out_dir) {
    const char *names[] = { "summary.json", "summary.txt" }, *bodies[] = { json->str, text->str };
    for (guint k = 0; k < 2; k++) {
      g_autofree char *path = g_build_filename (o->out_dir, names[k], NULL);
      g_autoptr (CriaOutput) f = cria_output_open (path, error);
      if (!f || !cria_output_printf (f, error, "%s%s", bodies[k], k ? "" : "\n") ||
          !cria_output_commit (g_steal_pointer (&f), error))
        return FALSE;
    }
  }
  return TRUE;
}
