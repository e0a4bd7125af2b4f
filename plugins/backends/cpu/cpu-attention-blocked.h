/* cpu-attention-blocked.h: the blocked (flash-style) attention kernels, the
 * body of one instruction set (cpu-attention.c compiles it through
 * cpu-each-isa.h); exp is cpu-vexp.h's.
 *
 * Every product is a small matrix product of packed, zero-padded blocks in
 * per-thread scratch: rows (queries of all the heads sharing a KV head, so a
 * packed key block serves them all) times BK keys, the head dimension padded
 * to Dp, a multiple of 2W. Forward keeps a running max and sum per row
 * (online softmax) and never more than R x BK scores. Backward recomputes the
 * scores: a pass over query blocks finds each row's logsumexp and
 * delta = dO.O and accumulates dq; a pass over key blocks accumulates dk and
 * dv, so every task owns the rows it writes and the sums run in a fixed
 * order whatever the thread count. */

#define ATTN_CAT2(a, b) a##_##b
#define ATTN_CAT(a, b) ATTN_CAT2 (a, b)
#define FN(name) ATTN_CAT (name, SFX)

#include "cpu-vexp.h"

/* C[i][0:2W] (+)= sum_k A[i*rsa + k*csa] B[k*ldb + 0:2W] for i < mr <= 4;
 * rows past mr repeat the last one (no branches) and are not stored. */
static void
FN (tile) (gint64 K, const float *A, gint64 rsa, gint64 csa, const float *B, gint64 ldb, float *C, gint64 ldc, int mr,
           gboolean accumulate)
{
  const float *a0 = A, *a1 = A + MIN (1, mr - 1) * rsa, *a2 = A + MIN (2, mr - 1) * rsa,
              *a3 = A + MIN (3, mr - 1) * rsa;
  V c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 }, c20 = { 0 }, c21 = { 0 }, c30 = { 0 }, c31 = { 0 };
  for (gint64 k = 0; k < K; k++) {
    V b0 = *(const V *) (B + k * ldb), b1 = *(const V *) (B + k * ldb + W);
    gint64 o = k * csa;
    float x0 = a0[o], x1 = a1[o], x2 = a2[o], x3 = a3[o];
    c00 += x0 * b0;
    c01 += x0 * b1;
    c10 += x1 * b0;
    c11 += x1 * b1;
    c20 += x2 * b0;
    c21 += x2 * b1;
    c30 += x3 * b0;
    c31 += x3 * b1;
  }
  V rows[4][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 }, { c30, c31 } };
  for (int i = 0; i < mr; i++) {
    V *o0 = (V *) (C + i * ldc), *o1 = (V *) (C + i * ldc + W);
    if (accumulate) {
      *o0 += rows[i][0];
      *o1 += rows[i][1];
    } else {
      *o0 = rows[i][0];
      *o1 = rows[i][1];
    }
  }
}

/* C[M][N] (+)= A B with A(i,k) = A[i*rsa + k*csa], B row-major with row
 * stride ldb; N is a multiple of 2W. */
static void
FN (mm) (gint64 M, gint64 N, gint64 K, const float *A, gint64 rsa, gint64 csa, const float *B, gint64 ldb, float *C,
         gint64 ldc, gboolean accumulate)
{
  for (gint64 n0 = 0; n0 < N; n0 += 2 * W)
    for (gint64 i = 0; i < M; i += 4)
      FN (tile) (K, A + i * rsa, rsa, csa, B + n0, ldb, C + i * ldc + n0, ldc, (int) MIN (4, M - i), accumulate);
}

/* The scores of one row over keys j0 .. j0 + BK - 1 (raw dot products in s)
 * become scale * s where the key is visible to the row and -inf elsewhere;
 * FALSE when no key is. */
static gboolean
FN (mask_row) (const Attn *a, const AttnBlock *kb, const AttnRow *row, float *s)
{
  gint64 c_lo = MAX (row->lo - kb->j0, 0), c_hi = MIN (row->pos - kb->j0, kb->bk - 1);
  gboolean same = !a->seg || (kb->seg_const && kb->seg0 == row->seg);
  if (c_lo > c_hi || (a->seg && kb->seg_const && !same)) {
    for (int c = 0; c < BK; c += W)
      *(V *) (s + c) = VM (splat) (-INFINITY);
    return FALSE;
  }
  if (same && c_lo == 0 && c_hi == BK - 1) { /* the whole block: most blocks of a long sequence */
    V sc = VM (splat) (a->scale);
    for (int c = 0; c < BK; c += W)
      *(V *) (s + c) *= sc;
    return TRUE;
  }
  gboolean any = same;
  for (gint64 c = 0; c < BK; c++) {
    gboolean ok = c >= c_lo && c <= c_hi && (same || kb->seg[c] == row->seg);
    s[c] = ok ? s[c] * a->scale : -INFINITY;
    any |= ok;
  }
  return any;
}

static float
FN (max_row) (const float *s)
{
  V mv = *(const V *) s;
  for (int c = W; c < BK; c += W) {
    V x = *(const V *) (s + c);
    VI gt = x > mv;
    mv = (V) (((VI) x & gt) | ((VI) mv & ~gt));
  }
  float mx = mv[0];
  for (int j = 1; j < W; j++)
    mx = MAX (mx, mv[j]);
  return mx;
}

/* Sum of exp(s - m) over the row, writing the exponentials in place. */
static float
FN (exp_row) (float *s, float m)
{
  V sum = { 0 }, mv = VM (splat) (m);
  for (int c = 0; c < BK; c += W) {
    V p = VM (exp) (*(V *) (s + c) - mv);
    *(V *) (s + c) = p;
    sum += p;
  }
  float t = 0;
  for (int j = 0; j < W; j++)
    t += sum[j];
  return t;
}

/* Kt[d][c] = k_(j0+c)[d] (the keys transposed, for q.k), Kp[c][d] = k_(j0+c)[d]
 * (rows padded to Dp), zero past the block and the head; either may be NULL. */
static void
FN (pack_keys) (const Attn *a, const float *k, gint64 b, gint64 kvh, const AttnBlock *kb, float *Kt, float *Kp)
{
  if (Kt)
    memset (Kt, 0, (gsize) (a->D * BK) * sizeof (float));
  if (Kp)
    memset (Kp, 0, (gsize) (BK * a->Dp) * sizeof (float));
  for (gint64 c = 0; c < kb->bk; c++) {
    const float *src = k + ((b * a->Tk + kb->j0 + c) * a->Hkv + kvh) * a->D;
    if (Kt)
      for (gint64 d = 0; d < a->D; d++)
        Kt[d * BK + c] = src[d];
    if (Kp)
      memcpy (Kp + c * a->Dp, src, (gsize) a->D * sizeof (float));
  }
}

/* Rows r of a task: head kvh * group + r / nq, query q0 + r % nq; X[r] is a
 * copy of src's row (q or dO) padded to Dp. */
static void
FN (pack_rows) (const Attn *a, const float *src, gint64 b, gint64 kvh, gint64 q0, gint64 nq, float *X)
{
  gint64 R = a->group * nq;
  memset (X, 0, (gsize) (R * a->Dp) * sizeof (float));
  for (gint64 r = 0; r < R; r++) {
    gint64 h = kvh * a->group + r / nq, i = q0 + r % nq;
    memcpy (X + r * a->Dp, src + ((b * a->Tq + i) * a->Hq + h) * a->D, (gsize) a->D * sizeof (float));
  }
}

/* Backward for one row of a key block: s (raw scores) becomes
 * P = exp(scale s - lse), dp (dO.v) becomes dS = scale P (dp - delta). */
static void
FN (grad_scores) (const Attn *a, const AttnBlock *kb, const AttnRow *row, float lse, float delta, float *s, float *dp)
{
  FN (mask_row) (a, kb, row, s);
  V lv = VM (splat) (lse), dv = VM (splat) (delta), sc = VM (splat) (a->scale);
  for (int c = 0; c < BK; c += W) {
    V p = VM (exp) (*(V *) (s + c) - lv);
    *(V *) (s + c) = p;
    *(V *) (dp + c) = p * (*(V *) (dp + c) - dv) * sc;
  }
}

/* One task: rows of query block qb of every head of KV head kvh in batch b.
 * Forward writes out; backward (dq != NULL) writes lse, delta and adds to dq. */
static void
FN (rows_task) (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Attn *a = data;
  gint64 Dp = a->Dp, group = a->group;
  for (gint64 t = begin; t < end; t++) {
    /* the last query blocks, which see the most keys, first */
    gint64 qb = a->n_qblocks - 1 - t / (a->B * a->Hkv), b = t % (a->B * a->Hkv) / a->Hkv, kvh = t % a->Hkv;
    gint64 q0 = qb * a->BQ, nq = MIN (a->BQ, a->Tq - q0), R = group * nq;
    gboolean backward = a->dout != NULL;
    AttnScratch sc;
    attn_scratch (a, thread, &sc);
    float *Q = sc.Q, *Acc = sc.Acc, *dO = sc.dO, *S = sc.S, *dP = sc.dP, *Kt = sc.Kt, *Vt = sc.Vt, *Kp = sc.Kp;
    float *m = sc.m, *l = sc.l, *delta = sc.delta;
    AttnRow *rows = sc.rows;
    FN (pack_rows) (a, a->q, b, kvh, q0, nq, Q);
    memset (Acc, 0, (gsize) (R * Dp) * sizeof (float));
    gint64 j_lo = G_MAXINT64, j_hi = 0;
    for (gint64 r = 0; r < R; r++) {
      attn_row (a, b, q0 + r % nq, &rows[r]);
      j_lo = MIN (j_lo, rows[r].lo);
      j_hi = MAX (j_hi, rows[r].pos);
      m[r] = -INFINITY;
      l[r] = 0;
    }
    j_lo = j_lo / BK * BK;
    /* forward, or the first sweep of backward: the running max and sum */
    for (gint64 j0 = j_lo; j0 <= j_hi; j0 += BK) {
      AttnBlock kb;
      attn_block (a, b, j0, &kb);
      FN (pack_keys) (a, a->k, b, kvh, &kb, Kt, NULL);
      FN (mm) (R, BK, a->D, Q, Dp, 1, Kt, BK, S, BK, FALSE);
      gboolean any = FALSE;
      for (gint64 r = 0; r < R; r++) {
        float *s = S + r * BK;
        if (!FN (mask_row) (a, &kb, &rows[r], s)) {
          memset (s, 0, BK * sizeof (float)); /* P = 0, not exp(-inf - -inf) */
          continue;
        }
        float mx = FN (max_row) (s);
        float m_new = MAX (m[r], mx), alpha = expf (m[r] - m_new);
        l[r] = l[r] * alpha + FN (exp_row) (s, m_new);
        m[r] = m_new;
        if (!backward && alpha != 1.0f) {
          V av = VM (splat) (alpha);
          for (gint64 d = 0; d < Dp; d += W)
            *(V *) (Acc + r * Dp + d) *= av;
        }
        any = TRUE;
      }
      if (backward || !any)
        continue;
      FN (pack_keys) (a, a->v, b, kvh, &kb, NULL, Kp);
      FN (mm) (R, Dp, BK, S, BK, 1, Kp, Dp, Acc, Dp, TRUE);
    }
    if (!backward) {
      for (gint64 r = 0; r < R; r++) {
        gint64 h = kvh * group + r / nq, i = q0 + r % nq;
        float *o = a->out + ((b * a->Tq + i) * a->Hq + h) * a->D, inv = 1.0f / l[r];
        for (gint64 d = 0; d < a->D; d++)
          o[d] = Acc[r * Dp + d] * inv;
      }
      continue;
    }
    /* backward: dS = P (dP - delta) with dP = dO v, dq += scale dS k */
    FN (pack_rows) (a, a->dout, b, kvh, q0, nq, dO);
    for (gint64 r = 0; r < R; r++) {
      gint64 h = kvh * group + r / nq, i = q0 + r % nq, o = ((b * a->Tq + i) * a->Hq + h) * a->D;
      float dd = 0;
      for (gint64 d = 0; d < a->D; d++)
        dd += a->dout[o + d] * a->out[o + d];
      m[r] += logf (l[r]); /* the logsumexp */
      delta[r] = dd;
      a->lse[(b * a->Hq + h) * a->Tq + i] = m[r];
      a->delta[(b * a->Hq + h) * a->Tq + i] = dd;
    }
    if (!a->dq)
      continue;
    for (gint64 j0 = j_lo; j0 <= j_hi; j0 += BK) {
      AttnBlock kb;
      attn_block (a, b, j0, &kb);
      FN (pack_keys) (a, a->k, b, kvh, &kb, Kt, Kp);
      FN (pack_keys) (a, a->v, b, kvh, &kb, Vt, NULL);
      FN (mm) (R, BK, a->D, Q, Dp, 1, Kt, BK, S, BK, FALSE);
      FN (mm) (R, BK, a->D, dO, Dp, 1, Vt, BK, dP, BK, FALSE);
      for (gint64 r = 0; r < R; r++)
        FN (grad_scores) (a, &kb, &rows[r], m[r], delta[r], S + r * BK, dP + r * BK);
      FN (mm) (R, Dp, BK, dP, BK, 1, Kp, Dp, Acc, Dp, TRUE);
    }
    for (gint64 r = 0; r < R; r++) {
      gint64 h = kvh * group + r / nq, i = q0 + r % nq;
      float *dq = a->dq + ((b * a->Tq + i) * a->Hq + h) * a->D;
      for (gint64 d = 0; d < a->D; d++)
        dq[d] += Acc[r * Dp + d];
    }
  }
}

/* One task: key block kb of KV head kvh in batch b, against every query that
 * sees it: dv += P^T dO, dk += dS^T q. */
static void
FN (keys_task) (gpointer data, gint64 begin, gint64 end, int thread)
{
  const Attn *a = data;
  gint64 Dp = a->Dp, group = a->group;
  for (gint64 t = begin; t < end; t++) {
    /* the first key blocks, which the most queries see, first */
    gint64 j0 = t / (a->B * a->Hkv) * BK, b = t % (a->B * a->Hkv) / a->Hkv, kvh = t % a->Hkv;
    AttnScratch sc;
    attn_scratch (a, thread, &sc);
    float *Q = sc.Q, *dK = sc.Acc, *dO = sc.dO, *S = sc.S, *dP = sc.dP, *Kt = sc.Kt, *Vt = sc.Vt, *dV = sc.Kp;
    AttnRow *rows = sc.rows;
    AttnBlock kb;
    attn_block (a, b, j0, &kb);
    FN (pack_keys) (a, a->k, b, kvh, &kb, Kt, NULL);
    FN (pack_keys) (a, a->v, b, kvh, &kb, Vt, NULL);
    memset (dK, 0, (gsize) (BK * Dp) * sizeof (float));
    memset (dV, 0, (gsize) (BK * Dp) * sizeof (float));
    /* queries that may see the block: positions j0 .. j0 + bk - 1 + window - 1 */
    gint64 off = a->Tk - a->Tq, i_lo = MAX (0, j0 - off), i_hi = a->Tq - 1;
    if (a->window > 0)
      i_hi = MIN (i_hi, j0 + kb.bk - 1 + a->window - 1 - off);
    for (gint64 q0 = i_lo; q0 <= i_hi; q0 += a->BQ) {
      gint64 nq = MIN (a->BQ, i_hi + 1 - q0), R = group * nq;
      FN (pack_rows) (a, a->q, b, kvh, q0, nq, Q);
      FN (pack_rows) (a, a->dout, b, kvh, q0, nq, dO);
      FN (mm) (R, BK, a->D, Q, Dp, 1, Kt, BK, S, BK, FALSE);
      FN (mm) (R, BK, a->D, dO, Dp, 1, Vt, BK, dP, BK, FALSE);
      for (gint64 r = 0; r < R; r++) {
        gint64 h = kvh * group + r / nq, i = q0 + r % nq, o = (b * a->Hq + h) * a->Tq + i;
        attn_row (a, b, i, &rows[r]);
        FN (grad_scores) (a, &kb, &rows[r], a->lse[o], a->delta[o], S + r * BK, dP + r * BK);
      }
      if (a->dv)
        FN (mm) (BK, Dp, R, S, 1, BK, dO, Dp, dV, Dp, TRUE);
      if (a->dk)
        FN (mm) (BK, Dp, R, dP, 1, BK, Q, Dp, dK, Dp, TRUE);
    }
    for (gint64 c = 0; c < kb.bk; c++) {
      gint64 o = ((b * a->Tk + j0 + c) * a->Hkv + kvh) * a->D;
      for (gint64 d = 0; d < a->D && a->dk; d++)
        a->dk[o + d] += dK[c * Dp + d];
      for (gint64 d = 0; d < a->D && a->dv; d++)
        a->dv[o + d] += dV[c * Dp + d];
    }
  }
}

#undef FN
