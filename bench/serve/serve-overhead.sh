#!/bin/sh
# serve-overhead.sh: what the HTTP server costs. The same greedy completions
# (K prompts, N tokens each) through `cria serve` (one request after another,
# over loopback with curl) and through one `cria generate` process, in the
# same run; prints both rates and their ratio (1.0: HTTP costs nothing).
#
#   sh bench/serve/serve-overhead.sh [./cria] [../shared/models/stories260K]
#
# CRIA_BENCH_PROMPTS (default 8) and CRIA_BENCH_TOKENS (default 200) size it.
set -eu
CRIA=${1:-./cria}
MODEL=${2:-../shared/models/stories260K}
K=${CRIA_BENCH_PROMPTS:-8}
N=${CRIA_BENCH_TOKENS:-200}
OUT=$(mktemp)
trap 'kill "$PID" 2>/dev/null || true; rm -f "$OUT"' EXIT
"$CRIA" serve --model "$MODEL" --port 0 --threads 1 >"$OUT" &
PID=$!
while ! grep -q listening "$OUT"; do sleep 0.1; done
URL=$(sed -n 's/.*listening on //p' "$OUT")
now () { date +%s.%N; }
prompts=""
i=0
while [ "$i" -lt "$K" ]; do prompts="$prompts Once-upon-a-time-$i"; i=$((i + 1)); done
# The tokens each side generated, from its own counts (usage / --json).
count () { grep -o '"completion_tokens" *: *[0-9]*' | awk -F: '{ t += $2 } END { print t + 0 }'; }
t0=$(now)
served=$(for p in $prompts; do
  curl -s -d "{\"prompt\": \"$p\", \"max_tokens\": $N}" "$URL/completions"
done | count)
t1=$(now)
# shellcheck disable=SC2086
generated=$("$CRIA" generate --model "$MODEL" --threads 1 --add-special --json -n "$N" $prompts | count)
t2=$(now)
awk -v k="$K" -v s="$served" -v g="$generated" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
  rs = s / (b - a); rg = g / (c - b);
  printf "serve:    %d tokens in %.2f s, %.0f tokens/s (%d requests one after another)\n", s, b - a, rs, k;
  printf "generate: %d tokens in %.2f s, %.0f tokens/s (one process, model load included)\n", g, c - b, rg;
  printf "ratio serve/generate: %.2f\n", rs / rg }'
