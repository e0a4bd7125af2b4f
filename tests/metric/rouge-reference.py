#!/usr/bin/python3
"""An independent ROUGE and distinct-n, written from the published
definitions, and the golden file of tests/metric/test-metric.c.

Usage: python3 rouge-reference.py DIR   (reads bleu-en.jsonl, bleu-zh.jsonl)

ROUGE (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"):
  ROUGE-N   clipped n-gram overlap / hypothesis n-grams (P), / reference n-grams (R)
  ROUGE-L   LCS(X, Y) / |Y| (P), / |X| (R), section 3.1
  ROUGE-Lsum  summary level, section 3.2: for each reference sentence r_i the
            union of the LCS matches with every hypothesis sentence; a union
            token counts while it is left in both texts' token counts.
  F = 2PR / (P + R); several references: the one with the best F per type;
  corpus scores: means over segments.
distinct-n (Li et al. 2016): distinct n-grams / n-grams.
Tokens ("mixed"): East Asian wide/fullwidth characters alone, other text
split at whitespace; sentences end after a token ending in . ! ? 。 ！ ？;
then, with strip, Unicode punctuation (categories P*) is removed from tokens
and tokens left empty are dropped.

Lines:
  C id set max_n lowercase tokenize strip
  R id index type p r f        one segment (best reference)
  M id type p r f              corpus means
  D set n index value          distinct-n of one hypothesis (mixed, as is)
  E set n value                distinct-n of all hypotheses
"""
import json
import sys
import unicodedata
from collections import Counter

CONFIGS = [
    ("en", 2, True, "mixed", True),
    ("zh", 2, True, "mixed", True),
    ("en", 3, False, "word", False),
    ("zh", 1, False, "char", True),
]


def tokens(text, mode, lower):
    out, cur = [], ""
    for c in text:
        if c.isspace():
            if cur:
                out.append(cur)
            cur = ""
        elif mode == "char" or (mode == "mixed" and unicodedata.east_asian_width(c) in "WF"):
            if cur:
                out.append(cur)
            out.append(c)
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return [t.lower() for t in out] if lower else out


def ngrams(toks, n):
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def prf(hits, n_hyp, n_ref):
    p = hits / max(n_hyp, 1)
    r = hits / max(n_ref, 1)
    return (p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)


def lcs_table(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t


def lcs_positions(a, b):
    """Positions in a of one LCS with b, walking back (ties: up in a first)."""
    t = lcs_table(a, b)
    i, j, pos = len(a), len(b), set()
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            pos.add(i - 1)
            i, j = i - 1, j - 1
        elif t[i - 1][j] >= t[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return pos


def split_sentences(toks):
    sents, cur = [], []
    for t in toks:
        cur.append(t)
        if t.endswith((".", "!", "?", "。", "！", "？")):
            sents.append(cur)
            cur = []
    if cur or not sents:
        sents.append(cur)
    return sents


def strip_sentences(sents, strip):
    if not strip:
        return sents
    out = [["".join(c for c in t if not unicodedata.category(c).startswith("P")) for t in s] for s in sents]
    return [[t for t in s if t] for s in out]


def rouge_lsum(hyp_sents, ref_sents):
    hyp = [t for s in hyp_sents for t in s]
    ref = [t for s in ref_sents for t in s]
    hyp_left, ref_left = Counter(hyp), Counter(ref)
    hits = 0
    for r in ref_sents:
        union = set()
        for h in hyp_sents:
            union |= lcs_positions(r, h)
        for i in sorted(union):
            if hyp_left[r[i]] > 0 and ref_left[r[i]] > 0:
                hits += 1
                hyp_left[r[i]] -= 1
                ref_left[r[i]] -= 1
    return prf(hits, len(hyp), len(ref))


def rouge_all(hyp_sents, ref_sents, max_n):
    hyp = [t for s in hyp_sents for t in s]
    ref = [t for s in ref_sents for t in s]
    out = {}
    for n in range(1, max_n + 1):
        h, r = ngrams(hyp, n), ngrams(ref, n)
        out[f"rouge{n}"] = prf(sum((h & r).values()), sum(h.values()), sum(r.values()))
    out["rougeL"] = prf(lcs_table(hyp, ref)[len(hyp)][len(ref)], len(hyp), len(ref))
    out["rougeLsum"] = rouge_lsum(hyp_sents, ref_sents)
    return out


def main():
    d = sys.argv[1]
    sets = {n: [json.loads(l) for l in open(f"{d}/bleu-{n}.jsonl", encoding="utf-8")] for n in ("en", "zh")}
    out = open(f"{d}/rouge-golden.txt", "w")
    for cid, (name, max_n, lower, mode, strip) in enumerate(CONFIGS):
        out.write(f"C {cid} {name} {max_n} {str(lower).lower()} {mode} {str(strip).lower()}\n")
        sums = {}
        for i, pair in enumerate(sets[name]):
            sents = lambda text: strip_sentences(split_sentences(tokens(text, mode, lower)), strip)
            hyp = sents(pair["hyp"])
            per_ref = [rouge_all(hyp, sents(r), max_n) for r in pair["refs"]]
            for typ in per_ref[0]:
                best = max((s[typ] for s in per_ref), key=lambda v: v[2])
                out.write(f"R {cid} {i} {typ} {best[0]!r} {best[1]!r} {best[2]!r}\n")
                sums.setdefault(typ, []).append(best)
        for typ, vals in sums.items():
            means = [sum(v[k] for v in vals) / len(vals) for k in range(3)]
            out.write(f"M {cid} {typ} {means[0]!r} {means[1]!r} {means[2]!r}\n")
    for name, pairs in sets.items():
        hyps = [tokens(p["hyp"], "mixed", False) for p in pairs]
        for n in (1, 2, 3):
            seen, total = set(), 0
            for i, h in enumerate(hyps):
                g = ngrams(h, n)
                k = sum(g.values())
                total += k
                seen |= set(g)
                out.write(f"D {name} {n} {i} {len(g) / k if k else 0.0!r}\n")
            out.write(f"E {name} {n} {len(seen) / total if total else 0.0!r}\n")


main()
