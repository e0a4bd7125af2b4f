#!/bin/sh
# Peak resident memory and tokens/s of cria train on one model at batch 1 x
# 512 tokens: LoRA on the checkpoint as stored (f32 for make-bench-models.sh's),
# LoRA on a bf16 copy of it, QLoRA (base linear weights NF4), and QLoRA
# with --recompute (activation recomputation per block).
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
import json, os, shutil, struct, sys
import torch
# safetensors by hand (8-byte header size, JSON header, data): f32 -> bf16.
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for f in os.listdir(src):
    path = os.path.join(src, f)
    if not f.endswith(".safetensors"):
        shutil.copy(path, dst)
        continue
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out_head, chunks, off = {}, [], 0
    for k, v in head.items():
        if k == "__metadata__":
            out_head[k] = v
            continue
        b, e = v["data_offsets"]
        data = body[b:e]
        if v["dtype"] == "F32":
            data = torch.frombuffer(bytearray(data), dtype=torch.float32).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
            v = dict(v, dtype="BF16")
        out_head[k] = dict(v, data_offsets=[off, off + len(data)])
        chunks.append(data)
        off += len(data)
    h = json.dumps(out_head).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(dst, f), "wb") as o:
        o.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
PY
# One long record: 512 tokens of prompt and response.
/usr/bin/python3 -c '
import json
words = " ".join("word%d" % i for i in range(300))
print(json.dumps({"instruction": words[:400], "output": words[400:1400]}))' > "$TMP/data.jsonl"
run () {
  name=$1 model=$2 adapter=$3
  shift 3
  /usr/bin/time -v "$CRIA" train --model "$model" --data "$TMP/data.jsonl" --max-length 512 --batch-size 1 \
    --max-steps "$STEPS" --adapter "$adapter" --out "$TMP/$name" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" || {
    grep -v "^	" "$TMP/$name.err" | tail -2; return; }
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/$name.err")
  tps=$(grep -o '"tokens_per_second" *: *[0-9.]*' "$TMP/$name/report.json" | tail -1 | sed "s/.*: *//")
  mem=$(grep 'memory:' "$TMP/$name.err" | sed 's/.*memory: //')
  printf '%-22s peak RSS %6d MiB  tokens/s %s\n  %s\n' "$name" $((rss / 1024)) "${tps:-?}" "$mem"
}
run lora-f32 "$MODEL" "lora r=16 target-modules=all-linear"
run lora-bf16 "$TMP/bf16" "lora r=16 target-modules=all-linear"
run qlora "$MODEL" "qlora r=16 target-modules=all-linear"
run qlora+recompute "$MODEL" "qlora r=16 target-modules=all-linear" --recompute
