#!/usr/bin/python3
"""Writes the hypothesis/reference pairs of the metric parity tests.

Usage: make-pairs.py SHARED_DIR OUT_DIR

References are sentences from the LLaMA-Factory Alpaca demo outputs (English
and Chinese) in ../shared/data; hypotheses and extra references are
deterministic perturbations of them (dropped, swapped, replaced, repeated
words or characters), plus a few edge cases (empty, identical, one token).
Writes bleu-en.jsonl and bleu-zh.jsonl: {"hyp": str, "refs": [str, ...]}.
"""
import json
import random
import re
import sys

N_PAIRS = 600


def sentences_en(records):
    out = []
    for r in records:
        for s in re.split(r"(?<=[.!?])\s+", r["output"].replace("\n", " ")):
            words = s.split()
            if 4 <= len(words) <= 40:
                out.append(" ".join(words))
    return out


def sentences_zh(records):
    out = []
    for r in records:
        for s in re.split(r"(?<=[。！？])", r["output"].replace("\n", "")):
            s = s.strip()
            if 5 <= len(s) <= 60:
                out.append(s)
    return out


def perturb(units, rng, vocab):
    units = list(units)
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(6)
        if not units:
            break
        i = rng.randrange(len(units))
        if op == 0 and len(units) > 1:
            del units[i]
        elif op == 1 and i + 1 < len(units):
            units[i], units[i + 1] = units[i + 1], units[i]
        elif op == 2:
            units[i] = rng.choice(vocab)
        elif op == 3:
            units.insert(i, units[i])
        elif op == 4:
            units = units[: max(1, len(units) - rng.randint(1, 3))]
        else:
            units.insert(i, rng.choice(vocab))
    return units


def make(sents, split, join, rng):
    vocab = sorted({u for s in sents for u in split(s)})
    pairs = []
    for k in range(N_PAIRS):
        ref = sents[rng.randrange(len(sents))]
        if k % 7 == 3:  # two sentences, for ROUGE-Lsum
            ref = join([ref, sents[rng.randrange(len(sents))]], True)
        units = split(ref)
        refs = [ref]
        for _ in range(rng.randint(0, 2)):
            refs.append(join(perturb(units, rng, vocab)))
        hyp = join(perturb(units, rng, vocab))
        if k % 5 == 2:  # an unrelated sentence: few matches, smoothing matters
            hyp = join(perturb(split(sents[rng.randrange(len(sents))]), rng, vocab))
        if k == 0:
            hyp = ""
        elif k == 1:
            hyp = ref
        elif k == 2:
            hyp = units[0]
        elif k == 4:
            hyp = join(units[:3])
        if k in (5, 6):  # whitespace beyond ASCII: every kind str.split() knows
            spaces = ["\u3000", "\xa0", "\t", "\x1c", "\u2009", "\u2028", "\x85", "  "]
            hyp = "".join(c if not c.isspace() else spaces[i % len(spaces)] for i, c in enumerate(hyp))
            hyp = spaces[k] + hyp + spaces[k + 1]
        pairs.append({"hyp": hyp, "refs": refs})
    return pairs


def main():
    shared, out = sys.argv[1], sys.argv[2]
    base = shared + "/data/llamafactory_alpaca_demo/"
    en = sentences_en(json.load(open(base + "alpaca_en_demo.json")))
    zh = sentences_zh(json.load(open(base + "alpaca_zh_demo.json")))
    sets = {
        "en": make(en, str.split, lambda u, s=False: " ".join(u), random.Random(7)),
        "zh": make(zh, list, lambda u, s=False: "".join(u), random.Random(8)),
    }
    for name, pairs in sets.items():
        with open(f"{out}/bleu-{name}.jsonl", "w", encoding="utf-8") as f:
            for p in pairs:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")


main()
