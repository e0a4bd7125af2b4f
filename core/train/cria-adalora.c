/* cria-adalora.c: AdaLoRA's importance scores, budget schedule, global
 * masking and orthogonal regularizer (the rules are in cria-adalora.h).
 *
 *   per training step of the adalora adapter:
 *     loss += cria_adalora_orth_reg (mods, n, 0.5, dP, dQ);   (forward)
 *     backward; optimizer step; cria_adalora_step (alloc, step, &budget);
 *
 * The element updates are single f32 operations in PEFT's order (torch runs
 * them in f32), so scores agree with PEFT to rounding of the means; the
 * regularizer is accumulated in double. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cria/cria-adalora.h>
#include <cria/cria-error.h>

/* EMA state of one module's P, E, Q, and its triplet scores and kept ranks. */
typedef struct {
  CriaAdaloraModule m;
  float *avg[3], *unc[3]; /* P, E, Q */
  float *score;
  gboolean *kept;
  gint64 n_kept;
} Module;

struct _CriaAdalora {
  CriaAdaloraConfig config;
  Module *modules;
  guint n_modules;
  gint64 init_budget, target_budget;
  float threshold;
  gboolean masked_once;
};

static gint64
part_size (const CriaAdaloraModule *m, int part)
{
  return part == 0 ? m->out * m->r : part == 1 ? m->r : m->r * m->in;
}

static gboolean
check_config (const CriaAdaloraConfig *c, GError **error)
{
  const char *bad = NULL;
  if (!(c->beta1 > 0 && c->beta1 < 1) || !(c->beta2 > 0 && c->beta2 < 1))
    bad = "beta1 and beta2 must be in (0, 1)";
  else if (c->delta_t < 1)
    bad = "deltaT must be at least 1";
  else if (c->tinit < 0 || c->tfinal < 0 || c->total_step <= c->tinit + c->tfinal)
    bad = "total_step must exceed tinit + tfinal (and both be >= 0)";
  else if (c->target_r < 0)
    bad = "target_r must be >= 0";
  if (bad)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "adalora: %s", bad);
  return bad == NULL;
}

CriaAdalora *
cria_adalora_new (const CriaAdaloraConfig *config, const CriaAdaloraModule *modules, guint n_modules, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (modules != NULL || n_modules == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!check_config (config, error))
    return NULL;
  if (n_modules == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "adalora: no module to adapt");
    return NULL;
  }
  gint64 init = 0;
  for (guint i = 0; i < n_modules; i++) {
    const CriaAdaloraModule *m = &modules[i];
    if (m->r < 1 || m->out < 1 || m->in < 1 || !m->P || !m->E || !m->Q || !m->dP || !m->dE || !m->dQ) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "adalora: module %s: needs out, in, r >= 1 and P, E, Q with their gradients",
                   m->name ? m->name : "(unnamed)");
      return NULL;
    }
    init += m->r;
  }
  gint64 target = (gint64) config->target_r * n_modules;
  if (target > init) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "adalora: the target budget %" G_GINT64_FORMAT " exceeds the initial %" G_GINT64_FORMAT, target, init);
    return NULL;
  }
  CriaAdalora *a = g_new0 (CriaAdalora, 1);
  a->config = *config;
  a->n_modules = n_modules;
  a->init_budget = init;
  a->target_budget = target;
  a->threshold = NAN;
  a->modules = g_new0 (Module, n_modules);
  for (guint i = 0; i < n_modules; i++) {
    Module *mod = &a->modules[i];
    mod->m = modules[i];
    for (int p = 0; p < 3; p++) {
      mod->avg[p] = g_new0 (float, part_size (&mod->m, p));
      mod->unc[p] = g_new0 (float, part_size (&mod->m, p));
    }
    mod->score = g_new0 (float, mod->m.r);
    mod->kept = g_new (gboolean, mod->m.r);
    for (gint64 j = 0; j < mod->m.r; j++)
      mod->kept[j] = TRUE;
    mod->n_kept = mod->m.r;
  }
  return a;
}

void
cria_adalora_free (CriaAdalora *a)
{
  if (!a)
    return;
  for (guint i = 0; i < a->n_modules; i++) {
    for (int p = 0; p < 3; p++) {
      g_free (a->modules[i].avg[p]);
      g_free (a->modules[i].unc[p]);
    }
    g_free (a->modules[i].score);
    g_free (a->modules[i].kept);
  }
  g_free (a->modules);
  g_free (a);
}

gint64
cria_adalora_budget (const CriaAdalora *a, int step, gboolean *mask)
{
  g_return_val_if_fail (a != NULL, 0);
  const CriaAdaloraConfig *c = &a->config;
  gboolean m;
  gint64 budget;
  if (step <= c->tinit) {
    budget = a->init_budget;
    m = FALSE;
  } else if (step > c->total_step - c->tfinal) {
    budget = a->target_budget;
    m = TRUE;
  } else {
    double coeff = 1.0 - (double) (step - c->tinit) / (double) (c->total_step - c->tfinal - c->tinit);
    budget = (gint64) ((double) (a->init_budget - a->target_budget) * pow (coeff, 3.0) + (double) a->target_budget);
    m = step % c->delta_t == 0;
  }
  if (mask)
    *mask = m;
  return budget;
}

/* Ibar = b1 Ibar + (1 - b1) I;  U = b2 U + (1 - b2) |I - Ibar|, in f32 */
static void
update_scores (const CriaAdalora *a)
{
  float b1 = (float) a->config.beta1, c1 = (float) (1.0 - a->config.beta1);
  float b2 = (float) a->config.beta2, c2 = (float) (1.0 - a->config.beta2);
  for (guint i = 0; i < a->n_modules; i++) {
    Module *mod = &a->modules[i];
    const float *w[3] = { mod->m.P, mod->m.E, mod->m.Q }, *g[3] = { mod->m.dP, mod->m.dE, mod->m.dQ };
    for (int p = 0; p < 3; p++)
      for (gint64 e = 0; e < part_size (&mod->m, p); e++) {
        float ipt = fabsf (w[p][e] * g[p][e]);
        float avg = b1 * mod->avg[p][e] + c1 * ipt;
        mod->avg[p][e] = avg;
        mod->unc[p][e] = b2 * mod->unc[p][e] + c2 * fabsf (ipt - avg);
      }
  }
}

/* S_i = s(E_i) + (mean_j s(Q_ij) + mean_j s(P_ji)) */
static void
triplet_scores (Module *mod)
{
  const CriaAdaloraModule *m = &mod->m;
  for (gint64 i = 0; i < m->r; i++) {
    double q = 0, p = 0;
    for (gint64 j = 0; j < m->in; j++)
      q += mod->avg[2][i * m->in + j] * mod->unc[2][i * m->in + j];
    for (gint64 j = 0; j < m->out; j++)
      p += mod->avg[0][j * m->r + i] * mod->unc[0][j * m->r + i];
    float vec = (float) (q / (double) m->in) + (float) (p / (double) m->out);
    mod->score[i] = mod->avg[1][i] * mod->unc[1][i] + vec;
  }
}

static int
float_cmp (const void *pa, const void *pb)
{
  float x = *(const float *) pa, y = *(const float *) pb;
  return (x > y) - (x < y);
}

static void
apply_pattern (Module *mod)
{
  for (gint64 i = 0; i < mod->m.r; i++)
    if (!mod->kept[i])
      mod->m.E[i] = 0.0f;
}

static void
mask_to_budget (CriaAdalora *a, gint64 budget)
{
  gint64 k = a->init_budget - budget;
  g_autofree float *all = g_new (float, a->init_budget);
  gint64 n = 0;
  for (guint i = 0; i < a->n_modules; i++) {
    triplet_scores (&a->modules[i]);
    memcpy (all + n, a->modules[i].score, (gsize) a->modules[i].m.r * sizeof (float));
    n += a->modules[i].m.r;
  }
  qsort (all, (gsize) n, sizeof (float), float_cmp);
  a->threshold = k >= 1 ? all[k - 1] : -INFINITY;
  a->masked_once = TRUE;
  for (guint i = 0; i < a->n_modules; i++) {
    Module *mod = &a->modules[i];
    mod->n_kept = 0;
    for (gint64 j = 0; j < mod->m.r; j++) {
      mod->kept[j] = !(mod->score[j] <= a->threshold);
      mod->n_kept += mod->kept[j];
    }
    apply_pattern (mod);
  }
}

gboolean
cria_adalora_step (CriaAdalora *a, int step, gint64 *budget)
{
  g_return_val_if_fail (a != NULL, FALSE);
  int final = a->config.total_step - a->config.tfinal;
  gboolean mask = FALSE;
  gint64 b = cria_adalora_budget (a, step, &mask);
  if (budget)
    *budget = b;
  if (step > final) {
    for (guint i = 0; i < a->n_modules; i++)
      apply_pattern (&a->modules[i]);
    return FALSE;
  }
  if (step < final)
    update_scores (a);
  if (mask || step == final)
    mask_to_budget (a, b);
  if (step == final)
    for (guint i = 0; i < a->n_modules; i++)
      for (int p = 0; p < 3; p++) {
        gsize bytes = (gsize) part_size (&a->modules[i].m, p) * sizeof (float);
        memset (a->modules[i].avg[p], 0, bytes);
        memset (a->modules[i].unc[p], 0, bytes);
      }
  return mask || step == final;
}

const float *
cria_adalora_scores (const CriaAdalora *a, guint module)
{
  g_return_val_if_fail (a != NULL, NULL);
  return a->masked_once && module < a->n_modules ? a->modules[module].score : NULL;
}

float
cria_adalora_threshold (const CriaAdalora *a)
{
  g_return_val_if_fail (a != NULL, 0.0f);
  return a->threshold;
}

const gboolean *
cria_adalora_rank_pattern (const CriaAdalora *a, guint module, gint64 *n_kept)
{
  g_return_val_if_fail (a != NULL, NULL);
  g_return_val_if_fail (module < a->n_modules, NULL);
  if (n_kept)
    *n_kept = a->modules[module].n_kept;
  return a->modules[module].kept;
}

float *
cria_adalora_importance (CriaAdalora *a, guint module, int part, gboolean uncertainty, gsize *n)
{
  g_return_val_if_fail (a != NULL, NULL);
  g_return_val_if_fail (n != NULL, NULL);
  g_return_val_if_fail (module < a->n_modules && part >= 0 && part < 3, NULL);
  Module *mod = &a->modules[module];
  *n = (gsize) part_size (&mod->m, part);
  return uncertainty ? mod->unc[part] : mod->avg[part];
}

void
cria_adalora_set_rank_pattern (CriaAdalora *a, guint module, const gboolean *kept)
{
  g_return_if_fail (a != NULL);
  g_return_if_fail (kept != NULL);
  g_return_if_fail (module < a->n_modules);
  Module *mod = &a->modules[module];
  mod->n_kept = 0;
  for (gint64 j = 0; j < mod->m.r; j++) {
    mod->kept[j] = kept[j] != FALSE;
    mod->n_kept += mod->kept[j];
  }
}

/* C = X X^T - I for X [r, n] with rows of stride n (Q), or X^T X - I for
 * X [n, r] (P); returns ||C||_F and fills C [r, r]. */
static double
gram_minus_identity (const float *X, gint64 r, gint64 n, gboolean rows, double *C)
{
  double norm = 0;
  for (gint64 i = 0; i < r; i++)
    for (gint64 j = 0; j < r; j++) {
      double s = 0;
      for (gint64 k = 0; k < n; k++)
        s += rows ? (double) X[i * n + k] * X[j * n + k] : (double) X[k * r + i] * X[k * r + j];
      C[i * r + j] = s - (i == j);
      norm += C[i * r + j] * C[i * r + j];
    }
  return sqrt (norm);
}

double
cria_adalora_orth_reg (const CriaAdaloraModule *modules, guint n_modules, double weight, float **dP, float **dQ)
{
  g_return_val_if_fail (modules != NULL || n_modules == 0, 0.0);
  if (n_modules == 0)
    return 0;
  /* PEFT divides by the number of lora_A and lora_B params: two per module */
  double coeff = weight / (2.0 * n_modules), total = 0;
  for (guint m = 0; m < n_modules; m++) {
    const CriaAdaloraModule *mod = &modules[m];
    gint64 r = mod->r;
    g_autofree double *C = g_new (double, r *r);
    /* d||Q Q^T - I|| / dQ = 2 C Q / ||C||;  d||P^T P - I|| / dP = 2 P C / ||C|| */
    double nq = gram_minus_identity (mod->Q, r, mod->in, TRUE, C);
    total += nq;
    if (dQ && nq > 0)
      for (gint64 i = 0; i < r; i++)
        for (gint64 k = 0; k < mod->in; k++) {
          double s = 0;
          for (gint64 j = 0; j < r; j++)
            s += C[i * r + j] * mod->Q[j * mod->in + k];
          dQ[m][i * mod->in + k] += (float) (coeff * 2.0 * s / nq);
        }
    double np = gram_minus_identity (mod->P, r, mod->out, FALSE, C);
    total += np;
    if (dP && np > 0)
      for (gint64 k = 0; k < mod->out; k++)
        for (gint64 i = 0; i < r; i++) {
          double s = 0;
          for (gint64 j = 0; j < r; j++)
            s += mod->P[k * r + j] * C[j * r + i];
          dP[m][k * r + i] += (float) (coeff * 2.0 * s / np);
        }
  }
  return coeff * total;
}
