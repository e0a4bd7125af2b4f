#!/bin/sh
# Whole-model inference speed: prefill and greedy decode with a KV cache on
# the GPT-2 124M and Qwen2.5-0.5B shapes (random weights), cria against a
# PyTorch implementation of the same models (bench/model/torch_lm.py) in the
# same run. Prints tokens/s of both, the ratio, and cria's achieved GFLOP/s
# as a share of the machine's measured FMA peak.
#
#   tests/modelfiles/make-bench-models.sh MODELS     # once: the checkpoints
#   make bench/bench-matmul
#   bench/model/bench-model.sh [MODELS] [THREADS] [PROMPT_TOKENS] [NEW_TOKENS]
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$here/../..
models=${1:-bench-models}
threads=${2:-$(nproc)}
n_prompt=${3:-128}
n_new=${4:-32}
py=${PYTHON:-/usr/bin/python3}
cria=${CRIA:-$top/cria}
for m in gpt2-124m qwen2.5-0.5b; do
  [ -f "$models/$m/config.json" ] || { echo "$models/$m is missing: tests/modelfiles/make-bench-models.sh $models" >&2; exit 2; }
done
ids=$("$py" -c "print(','.join(str((i * 7919) % 5000 + 100) for i in range($n_prompt)))")
peak=$(CRIA_PLUGIN_PATH=${CRIA_PLUGIN_PATH:-$top/plugins/.libs} "$top/bench/bench-matmul" --threads "$threads" |
       "$py" -c "import json,sys; print(json.loads(sys.stdin.readline())['fma_peak_gflops'])")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run () { # LABEL DIR DTYPE
  "$cria" generate --json -t "$threads" --dtype "$3" --model "$2" --ids "$ids" -n "$n_new" > "$out.c"
  echo "$1 $2 $(tr -d '\n' < "$out.c")" >> "$out"
}
for m in gpt2-124m qwen2.5-0.5b; do
  run "$m f32" "$models/$m" f32
  run "$m as-stored" "$models/$m" auto
  echo "$m torch $("$py" "$here/torch_lm.py" "$models/$m" "$threads" "$n_prompt" "$n_new")" >> "$out"
done
rm -f "$out.c"
"$py" - "$out" "$peak" "$threads" "$n_prompt" "$n_new" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
peak, threads, n_prompt, n_new = float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def flops(d):
    """matmul FLOPs per token of the layers, and of the lm head"""
    c = json.load(open(d + "/config.json"))
    if c["architectures"][0] == "GPT2LMHeadModel":
        D, L, I, V = c["n_embd"], c["n_layer"], c.get("n_inner") or 4 * c["n_embd"], c["vocab_size"]
        return 2 * L * (4 * D * D + 2 * D * I), 2 * V * D
    D, L, I, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    hd = c.get("head_dim") or D // c["num_attention_heads"]
    kv = (c.get("num_key_value_heads") or c["num_attention_heads"]) * hd
    return 2 * L * (2 * D * D + 2 * D * kv + 3 * D * I), 2 * V * D
print("%s threads, prompt %s tokens, %s new tokens; FMA peak %.1f GFLOP/s" % (threads, n_prompt, n_new, peak))
print("%-24s %12s %12s %9s %9s" % ("", "prefill t/s", "decode t/s", "prefill%", "decode%"))
rows, torch = [], {}
for l in lines:
    model, label, rest = l.split(" ", 2)
    if label == "torch":
        torch[model] = json.loads(rest)
        continue
    d, js = rest.split(" ", 1)
    rows.append((model, label, d, json.loads(js)))
for model, label, d, r in rows:
    body, head = flops(d)
    n = int(n_prompt)
    # prefill runs the lm head on the last position only; decode on every token
    pf = r["prefill_tokens_per_second"] * (body + head / n) / 1e9
    dc = r["decode_tokens_per_second"] * (body + head) / 1e9
    print("%-24s %12.1f %12.2f %8.0f%% %8.0f%%" % ("cria " + model + " " + label, r["prefill_tokens_per_second"],
          r["decode_tokens_per_second"], 100 * pf / peak, 100 * dc / peak))
for model, t in torch.items():
    print("%-24s %12.1f %12.2f" % ("torch " + model + " f32", t["prefill_tokens_per_second"], t["decode_tokens_per_second"]))
print("ratio cria/torch:")
for model, label, d, r in rows:
    t = torch[model]
    print("  %-22s prefill %6.2fx  decode %6.2fx  (greedy ids %s torch's)" % (model + " " + label,
          r["prefill_tokens_per_second"] / t["prefill_tokens_per_second"],
          r["decode_tokens_per_second"] / t["decode_tokens_per_second"],
          "equal to" if r["ids"] == t["ids"] else "DIFFERENT from"))
PY
