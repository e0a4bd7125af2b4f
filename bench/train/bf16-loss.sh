#!/bin/sh
# The quickstart's LoRA run in f32 and with --base-dtype bf16 (bf16 base
# weights, AMX or AVX512-BF16 products): the largest relative difference of the
# step losses and of their means over 20 steps, the last losses and the loss
# tokens/s of each run. Issue 17 asks the 20-step means within 1%; the last
# line says whether they are.
#
# Then the same run in PyTorch (bench/train/bf16_loss_torch.py, when
# TORCH_PYTHON, default /usr/bin/python3, has torch; NO_TORCH=1 skips
# it), in f32 and with cria's bf16 arithmetic emulated (bf16 weights,
# activations and dY rounded to bf16 for the frozen products), and torch's
# own gap between the two: a gap of the same size there means bf16 base
# weights move this run's curve that much whoever computes them, and
# cria's gap is inherent to bf16, not a defect.
#
# A third cria run, f32 with the learning rate changed by one part in 10^7
# (about one rounding of an f32), gives the run's own floor: how far the
# 20-step means move when any one number of the run changes in its last
# bit. At the quickstart's lr 1.2e-2 the run is chaotic and that floor is
# several percent, above bf16's gap; at a smaller LR (the fifth argument,
# e.g. 3e-3) it falls under 1% and so does bf16's.
#
#   bench/train/bf16-loss.sh [CRIA] [MODEL_DIR] [STEPS] [THREADS] [LR]
#
# Defaults: the build tree's cria, the demo model of share/default-model, 200
# steps, every core, the quickstart's lr 1.2e-2. The data is the quickstart's (share/quickstart), built
# in a temporary directory.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
cria=${1:-$here/cria}
model=${2:-$here/share/default-model/model}
steps=${3:-200}
threads=${4:-$(nproc 2>/dev/null || echo 2)}
lr=${5:-1.2e-2}
nudged=$(python3 -c "import sys; print(repr(float(sys.argv[1]) * (1 + 1e-7)))" "$lr")
# the run happens in a temporary directory: relative paths from here
case $cria in /*) ;; *) cria=$PWD/$cria ;; esac
case $model in /*) ;; *) model=$PWD/$model ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/share/quickstart/support-desk.jsonl" "$here/share/quickstart/plans.json" \
  "$here/share/quickstart/pipeline.json" "$here/share/quickstart/support-format.json" "$work"
cd "$work"
"$cria" data "template location=plans.json ! jsonl location=plans.jsonl" >/dev/null 2>&1
"$cria" data -f pipeline.json >/dev/null 2>&1
for arm in "f32 $lr" "bf16 $lr" "f32 $nudged nudged"; do
  set -- $arm
  "$cria" train --model "$model" --data train.jsonl --format support-format.json \
    --adapter "lora r=16 alpha=32 target-modules=all-linear" --max-steps "$steps" --lr "$2" --batch-size 8 \
    --warmup-steps 5 --schedule cosine --threads "$threads" --seed 1 --progress never --base-dtype "$1" \
    --out "run-$1${3:+-$3}" >/dev/null
done
: >torch.jsonl
torch_python=${TORCH_PYTHON:-/usr/bin/python3}
if [ -z "${NO_TORCH:-}" ] && "$torch_python" -c 'import torch' 2>/dev/null; then
  "$torch_python" "$here/bench/train/bf16_loss_torch.py" "$cria" "$model" train.jsonl support-format.json "$steps" "" "$lr" >torch.jsonl
fi
python3 - run-f32/train-log.jsonl run-bf16/train-log.jsonl torch.jsonl run-f32-nudged/train-log.jsonl <<'EOF'
import json, sys
runs = []
for path in sys.argv[1:3] + sys.argv[4:5]:
    with open(path) as f:
        runs.append([json.loads(l) for l in f if '"loss"' in l and '"step"' in l])
f32, bf16, nudged = runs
worst = max(abs(b["loss"] - a["loss"]) / a["loss"] for a, b in zip(f32, bf16))
# Step losses follow the batches, and two runs drift apart step by step
# (as runs at different thread counts do); the curve is their mean over
# windows of 20 steps.
def means(r):
    return [sum(s["loss"] for s in r[i:i + 20]) / len(r[i:i + 20]) for i in range(0, len(r), 20)]
def gap(other):
    return max(abs(b - a) / a for a, b in zip(means(f32), means(other)))
curve = gap(bf16)
floor = gap(nudged)
def tps(r):
    return sum(s["loss_tokens"] for s in r[1:]) / max(r[-1]["elapsed_s"] - r[0]["elapsed_s"], 1e-9)
print(json.dumps({"steps": len(f32), "max_rel_loss_diff": round(worst, 5), "max_rel_diff_20_step_means": round(curve, 5), "last_loss_f32": f32[-1]["loss"],
                  "last_loss_bf16": bf16[-1]["loss"], "f32_loss_tokens_per_s": round(tps(f32), 1),
                  "bf16_loss_tokens_per_s": round(tps(bf16), 1)}))
with open(sys.argv[3]) as f:
    torch_runs = [json.loads(l) for l in f if l.strip()]
gaps = {}
for r in torch_runs:
    gaps.update(r.get("torch_max_rel_diff_20_step_means", {}))
    if r.get("arm"):
        print(json.dumps({"torch_" + r["arm"] + "_means_20": r["means_20"]}))
print(json.dumps({"cria_f32_means_20": [round(m, 5) for m in means(f32)],
                  "cria_bf16_means_20": [round(m, 5) for m in means(bf16)]}))
verdict = "within 1%" if curve <= 0.01 else "NOT within 1%"
print("20-step means, f32 with the lr changed by 1e-7 vs f32 (the run's own floor): %.2f%%" % (100 * floor))
if "bf16" in gaps:
    print("20-step means, bf16 vs f32: cria %.2f%% (%s); PyTorch with the same bf16 arithmetic %.2f%%, "
          "bf16 weights alone %.2f%%, without rounding dY %.2f%%" % (100 * curve, verdict, 100 * gaps["bf16"],
                                                                    100 * gaps["bf16-w"], 100 * gaps["bf16-fwd"]))
else:
    print("20-step means, bf16 vs f32: cria %.2f%% (%s); no PyTorch comparison (python3 without torch)"
          % (100 * curve, verdict))
EOF
