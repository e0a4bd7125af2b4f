#!/bin/sh
# batch-bench.sh: what continuous batching buys `cria serve`. One server
# (--batch 16) on the Qwen2.5-0.5B shape (random bf16 weights, the Qwen2.5
# tokenizer) answers greedy chat requests in two arms, interleaved in the
# same run: 16 concurrent clients (decoded as one batch), and requests one
# after another (a batch of one). Prints the generated tokens/s of each,
# their ratio, cria's achieved share of the machine's FMA peak (matmul FLOPs
# only) and the load average at the time. It does so for two servers in
# turn: the cpu backend as it is (f32 activations) and with bf16-dot=true
# (activations rounded to bf16 for the products with the bf16 weights:
# AMX tiles or AVX512-BF16 dot products where the processor has them); in each mode a
# batched answer is the one the request gets alone.
#
#   sh bench/serve/batch-bench.sh [MODEL_DIR] [ROUNDS]
#
# Without MODEL_DIR it writes bench-models/qwen2.5-0.5b-bench with `cria
# model init` (about 1 GB). CRIA_BENCH_TOKENS (default 64) sizes each answer;
# CRIA_BENCH_SEQ (default 4) is how many requests the one-at-a-time arm runs
# per round (its rate does not depend on it). CRIA_BENCH_BACKENDS replaces
# the two servers' backends: a list separated by ';' (e.g. "cpu spin-us=50").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$here/../..
cria=${CRIA:-$top/cria}
shared=${CRIA_SHARED:-$top/../shared}
model=${1:-bench-models/qwen2.5-0.5b-bench}
rounds=${2:-2}
N=${CRIA_BENCH_TOKENS:-64}
K=16
S=${CRIA_BENCH_SEQ:-4}
py=${PYTHON:-/usr/bin/python3}
if [ ! -f "$model/config.json" ]; then
  "$cria" model init --dtype bf16 --seed 7 "$top/tests/models/configs/qwen2.5-0.5b.json" "$model"
  cp "$shared/tokenizers/qwen2.5/"* "$model/"
fi
peak=$(CRIA_PLUGIN_PATH=${CRIA_PLUGIN_PATH:-$top/plugins/.libs} "$top/bench/bench-matmul" |
       "$py" -c "import json,sys; print(json.loads(sys.stdin.readline())['fma_peak_gflops'])")
out=$(mktemp)
log=$(mktemp)
PID=
trap 'kill "$PID" 2>/dev/null || true; rm -f "$out" "$log" "$log".*' EXIT
now () { date +%s.%N; }
ask () { # I: one chat request; prints its completion_tokens
  curl -s -d "{\"messages\": [{\"role\": \"user\", \"content\": \"Write story number $1 about a cat.\"}], \
\"max_tokens\": $N, \"temperature\": 0}" "$URL/chat/completions" |
    grep -o '"completion_tokens" *: *[0-9]*' | sed 's/.*: *//'
}
backends=${CRIA_BENCH_BACKENDS:-cpu;cpu bf16-dot=true}
while [ -n "$backends" ]; do
backend=${backends%%;*}
case $backends in *";"*) backends=${backends#*;} ;; *) backends= ;; esac
: >"$out"
: >"$log"
"$cria" serve --model "$model" --port 0 --batch $K --max-concurrent $K --backend "$backend" >"$out" &
PID=$!
while ! grep -q listening "$out"; do sleep 0.2; done
URL=$(sed -n 's/.*listening on //p' "$out")
ask 0 >/dev/null # warm up: pages of the weights, the chat template
r=0
while [ "$r" -lt "$rounds" ]; do
  t0=$(now)
  i=0
  pids=""
  while [ "$i" -lt $K ]; do ask "$i" >"$log.$i" & pids="$pids $!"; i=$((i + 1)); done
  for p in $pids; do wait "$p"; done
  t1=$(now)
  echo "batched $(cat "$log".* | awk '{ t += $1 } END { print t + 0 }') $t0 $t1" >>"$log"
  rm -f "$log".*
  t0=$(now)
  toks=0
  i=0
  while [ "$i" -lt "$S" ]; do toks=$((toks + $(ask "$i"))); i=$((i + 1)); done
  t1=$(now)
  echo "alone $toks $t0 $t1" >>"$log"
  r=$((r + 1))
done
kill "$PID"
wait "$PID" 2>/dev/null || true
echo "--backend '$backend':"
"$py" - "$log" "$model" "$peak" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1])]
c = json.load(open(sys.argv[2] + "/config.json"))
D, L, I, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
hd = D // c["num_attention_heads"]
kv = c["num_key_value_heads"] * hd
flops = 2 * L * (2 * D * D + 2 * D * kv + 3 * D * I) + 2 * V * D  # matmul FLOPs per decoded token
peak = float(sys.argv[3])
rate = {}
for arm in ("batched", "alone"):
    toks = sum(int(r[1]) for r in rows if r[0] == arm)
    secs = sum(float(r[3]) - float(r[2]) for r in rows if r[0] == arm)
    rate[arm] = toks / secs
    print("%-8s %6d tokens in %7.2f s: %7.2f tokens/s, %4.1f%% of the FMA peak (%.0f GFLOP/s)"
          % (arm, toks, secs, rate[arm], 100 * rate[arm] * flops / 1e9 / peak, peak))
print("ratio batched (16 concurrent) / one at a time: %.2fx" % (rate["batched"] / rate["alone"]))
print("load average during the run: %s" % sys.argv[4])
PY
done
