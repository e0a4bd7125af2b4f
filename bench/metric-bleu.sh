#!/bin/sh
# metric-bleu.sh: corpus BLEU of `cria metric bleu` against nltk 3.8's
# corpus_bleu on the same 12,000 English segments (the test pairs, 20 times),
# timed in the same run; prints both times, the ratio and both scores.
#
#   sh bench/metric-bleu.sh [BUILDDIR]     (needs /usr/bin/python3 with nltk)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$top/tests/metric/bleu-en.jsonl" "$tmp" <<'PY'
import json, sys
pairs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")] * 20
with open(sys.argv[2] + "/hyp.txt", "w") as h, open(sys.argv[2] + "/ref.txt", "w") as r:
    for p in pairs:
        h.write(p["hyp"] + "\n")
        r.write(p["refs"][0] + "\n")
PY
now () { date +%s.%N; }
t0=$(now)
cria_score=$("$build/cria" metric bleu --ref "$tmp/ref.txt" --hyp "$tmp/hyp.txt" -p smoothing=method1 | awk '$1 == "bleu" { print $2 }')
t1=$(now)
nltk_score=$(/usr/bin/python3 - "$tmp" <<'PY'
import sys
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
d = sys.argv[1]
hyps = [l.rstrip("\n").split() for l in open(d + "/hyp.txt", encoding="utf-8")]
refs = [[l.rstrip("\n").split()] for l in open(d + "/ref.txt", encoding="utf-8")]
print("%.6f" % corpus_bleu(refs, hyps, smoothing_function=SmoothingFunction().method1))
PY
)
t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v cs="$cria_score" -v ns="$nltk_score" 'BEGIN {
  printf "segments 12000  cria bleu %s in %.3f s  nltk bleu %s in %.3f s (python start and import included)  nltk/cria %.1fx\n",
    cs, b - a, ns, c - b, (c - b) / (b - a) }'
