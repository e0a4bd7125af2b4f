#!/usr/bin/python3
"""Writes bleu-golden.txt: nltk's BLEU of the pairs in bleu-en.jsonl and
bleu-zh.jsonl (make-pairs.py), the reference of tests/metric/test-metric.c.

Usage: /usr/bin/python3 make-bleu-golden.py DIR   (Debian python3-nltk 3.8)

Lines:
  C id set tokenize weights smoothing auto_reweigh   a configuration
  S id index score                                    sentence_bleu of one pair
  K id start end score                                corpus_bleu of pairs [start, end)
A score is Python's repr() of the float, or "error" when nltk raises.
Tokens: tokenize=word is str.split(); tokenize=char every character that
is not str.isspace().
"""
import json
import sys
import warnings

import nltk
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

assert nltk.__version__.startswith("3.8"), nltk.__version__
warnings.simplefilter("ignore")

TOKENIZE = {"word": str.split, "char": lambda s: [c for c in s if not c.isspace()]}
CONFIGS = [("en", "word", w, m, r) for w in ["0.25,0.25,0.25,0.25"] for m in range(8) for r in [False]]
CONFIGS += [("en", "word", "0.5,0.5", m, False) for m in (0, 1, 3)]
CONFIGS += [("en", "word", "0.25,0.25,0.25,0.25", m, True) for m in (0, 4)]
CONFIGS += [("en", "word", "0.1,0.2,0.3,0.2,0.1,0.1", m, False) for m in (2, 5, 6)]
CONFIGS += [("zh", "char", "0.25,0.25,0.25,0.25", m, False) for m in range(8)]
CONFIGS += [("zh", "char", "1", m, False) for m in (0, 3)]
CORPUS_CHUNK = 50


def score(fn):
    try:
        return repr(float(fn()))
    except (AssertionError, IndexError, ZeroDivisionError, ValueError):
        return "error"


def main():
    d = sys.argv[1]
    sets = {name: [json.loads(l) for l in open(f"{d}/bleu-{name}.jsonl", encoding="utf-8")] for name in ("en", "zh")}
    out = open(f"{d}/bleu-golden.txt", "w")
    for cid, (name, tok, weights, method, reweigh) in enumerate(CONFIGS):
        out.write(f"C {cid} {name} {tok} {weights} method{method} {str(reweigh).lower()}\n")
        split = TOKENIZE[tok]
        w = tuple(float(x) for x in weights.split(","))
        sf = getattr(SmoothingFunction(), f"method{method}")
        pairs = sets[name]
        hyps = [split(p["hyp"]) for p in pairs]
        refs = [[split(r) for r in p["refs"]] for p in pairs]
        for i in range(len(pairs)):
            s = score(lambda: sentence_bleu(refs[i], hyps[i], w, sf, reweigh))
            out.write(f"S {cid} {i} {s}\n")
        bounds = [(a, min(a + CORPUS_CHUNK, len(pairs))) for a in range(0, len(pairs), CORPUS_CHUNK)]
        for a, b in bounds + [(0, len(pairs))]:
            s = score(lambda: corpus_bleu(refs[a:b], hyps[a:b], w, sf, reweigh))
            out.write(f"K {cid} {a} {b} {s}\n")


main()
