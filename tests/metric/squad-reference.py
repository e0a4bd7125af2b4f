#!/usr/bin/python3
"""SQuAD v2.0 EM/F1 under the rules of the official evaluation script
(evaluate-v2.0.py: normalize_answer, compute_exact, compute_f1, the maximum
over gold answers, [''] as the gold of unanswerable questions), written from
those rules, and the golden file of tests/metric/test-metric.c.

Usage: python3 squad-reference.py SHARED_DIR OUT_DIR

Predictions are crafted per question, in file order, by the index i mod 5
(first = the first gold answer's text, last = the last one's; a question
without gold answers uses the words given):
  0: first                       unanswerable: ""
  1: ""                          unanswerable: ""
  2: "The " + ASCII-upper(first) + "!"      unanswerable: "the"
  3: first word of first + " zzz"           unanswerable: first word of the question
  4: last + " " + first                     unanswerable: "an."
tests/metric/test-metric.c builds the same predictions. Lines: "id exact f1", then
"T exact f1 has_ans_exact has_ans_f1 no_ans_exact no_ans_f1" (percentages).
"""
import collections
import json
import re
import string
import sys


def normalize_answer(s):
    def remove_articles(text):
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def remove_punc(text):
        return "".join(ch for ch in text if ch not in set(string.punctuation))

    return " ".join(remove_articles(remove_punc(s.lower())).split())


def get_tokens(s):
    return normalize_answer(s).split() if s else []


def compute_exact(gold, pred):
    return int(normalize_answer(gold) == normalize_answer(pred))


def compute_f1(gold, pred):
    g, p = get_tokens(gold), get_tokens(pred)
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if not g or not p:
        return int(g == p)
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def ascii_upper(s):
    return "".join(c.upper() if c.isascii() else c for c in s)


def predict(i, qa):
    texts = [a["text"] for a in qa["answers"]]
    v = i % 5
    if not texts:
        return ["", "", "the", qa["question"].split(" ")[0], "an."][v]
    first, last = texts[0], texts[-1]
    return [first, "", "The " + ascii_upper(first) + "!", first.split(" ")[0] + " zzz", last + " " + first][v]


def main():
    shared, out_dir = sys.argv[1], sys.argv[2]
    data = json.load(open(shared + "/data/squad_v2.0/dev-v2.0.reconstructed.json", encoding="utf-8"))["data"]
    out = open(out_dir + "/squad-golden.txt", "w")
    i = 0
    sums = {True: [0, 0, 0], False: [0, 0, 0]}
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                pred = predict(i, qa)
                gold = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
                em = max(compute_exact(a, pred) for a in gold)
                f1 = max(compute_f1(a, pred) for a in gold)
                out.write(f"{qa['id']} {em} {float(f1)!r}\n")
                s = sums[gold != [""]]
                s[0] += em
                s[1] += f1
                s[2] += 1
                i += 1
    n = sums[True][2] + sums[False][2]
    tot = [100 * (sums[True][k] + sums[False][k]) / n for k in (0, 1)]
    has = [100 * sums[True][k] / sums[True][2] for k in (0, 1)]
    no = [100 * sums[False][k] / sums[False][2] for k in (0, 1)]
    out.write("T " + " ".join(repr(x) for x in tot + has + no) + "\n")


main()
