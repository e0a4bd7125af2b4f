#!/bin/sh
# Peak resident memory and tokens/s of cria train on one model at batch 1 x
# 512 tokens: LoRA on the checkpoint as stored (f32 for make-bench-models.sh's),
# LoRA on a bf16 copy of it, and QLoRA (base linear weights NF4).
#
#   bench/qlora/qlora-bench.sh [MODEL_DIR] [STEPS]
#
# Not part of make check. The bf16 copy is made with python3-torch.
set -e
MODEL=${1:-/work/bench-models/qwen2.5-0.5b}
STEPS=${2:-3}
CRIA=${CRIA:-./cria}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 - "$MODEL" "$TMP/bf16" <<'PY'
import json, os, shutil, sys
from safetensors.torch import load_file, save_file
import torch
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for f in os.listdir(src):
    if not f.endswith(".safetensors"):
        shutil.copy(os.path.join(src, f), dst)
for f in os.listdir(src):
    if f.endswith(".safetensors"):
        t = load_file(os.path.join(src, f))
        save_file({k: v.to(torch.bfloat16) for k, v in t.items()}, os.path.join(dst, f), metadata={"format": "pt"})
PY
# One long record: 512 tokens of prompt and response.
/usr/bin/python3 -c '
import json
words = " ".join("word%d" % i for i in range(600))
print(json.dumps({"instruction": words[:1500], "output": words[1500:3000]}))' > "$TMP/data.jsonl"
run () {
  name=$1 model=$2 adapter=$3
  /usr/bin/time -v "$CRIA" train --model "$model" --data "$TMP/data.jsonl" --max-length 512 --batch-size 1 \
    --max-steps "$STEPS" --adapter "$adapter" --out "$TMP/$name" > "$TMP/$name.out" 2> "$TMP/$name.err" || {
    tail -3 "$TMP/$name.err"; return; }
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/$name.err")
  tps=$(grep -o '"tokens_per_second" *: *[0-9.]*' "$TMP/$name/report.json" | tail -1 | sed "s/.*: *//")
  mem=$(grep 'memory:' "$TMP/$name.err" | sed 's/.*memory: //')
  printf '%-10s peak RSS %6d MiB  tokens/s %s\n  %s\n' "$name" $((rss / 1024)) "${tps:-?}" "$mem"
}
run lora-f32 "$MODEL" "lora r=16 target-modules=all-linear"
run lora-bf16 "$TMP/bf16" "lora r=16 target-modules=all-linear"
run qlora "$MODEL" "qlora r=16 target-modules=all-linear"
