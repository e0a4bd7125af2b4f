#!/bin/sh
# Logit and greedy parity on the real shapes (Qwen2.5-0.5B and GPT-2 124M,
# two layers each, seed 7), against the PyTorch goldens in tests/golden made
# by tests/reference/make_test_models.py. Too large for make check (about
# 1 GB of checkpoints written), so it lives here.
#
#   tests/modelfiles/make-bench-models.sh MODELS && bench/model/check-real-shapes.sh MODELS
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$here/../..
models=${1:-bench-models}
cria=${CRIA:-$top/cria}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in qwen2.5-0.5b-2l gpt2-124m-2l; do
  golden=$top/tests/golden/$n-seed7.safetensors
  ids=$("$py" -c "import sys; sys.path.insert(0, '$top/tests/reference'); import hf_models as h; print(','.join(map(str, h.read_safetensors('$golden')['input_ids'].tolist())))")
  "$cria" logits --model "$models/$n" --ids "$ids" --out "$tmp/$n.safetensors"
  "$cria" generate --json --model "$models/$n" --ids "$ids" -n 4 > "$tmp/$n.json"
  "$py" - "$golden" "$tmp/$n.safetensors" "$tmp/$n.json" "$n" <<'PY'
import json, sys
import torch
sys.path.insert(0, sys.argv[0] and __import__("os").path.join(__import__("os").path.dirname(sys.argv[1]), "..", "reference"))
import hf_models as h
g, a = h.read_safetensors(sys.argv[1]), h.read_safetensors(sys.argv[2])
ids = json.load(open(sys.argv[3]))["ids"]
L, head = a["logits"], g["logits_head"]
rel = float((L[:, :head.shape[1]] - head).abs().max() / head.abs().max())
lse = float((torch.logsumexp(L, -1) - g["logsumexp"]).abs().max())
same = bool((L.argmax(-1) == g["argmax"]).all())
greedy = ids == g["greedy_ids"].tolist()
print("%-16s logits %.2g relative, log-sum-exp %.2g, argmax %s, greedy %s" % (
    sys.argv[4], rel, lse, "equal" if same else "DIFFERENT", "equal" if greedy else "DIFFERENT"))
sys.exit(0 if rel <= 1e-4 and same and greedy else 1)
PY
done
