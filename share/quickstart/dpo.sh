#!/bin/sh
# Preference tuning on the quickstart's support desk (make quickstart-dpo):
# pairs built from the plan facts of plans.json (chosen: the reference
# answer; rejected: another plan's answer to the same question), DPO with a
# LoRA on the demo model, and the held-out pairs (the other phrasing of each
# question) scored before and after.
#
#   dpo.sh CRIA SHARE_DIR [OUT_DIR] [THREADS]
set -eu
cria=$1
share=$2
out=${3:-cria-quickstart-dpo}
threads=${4:-$(nproc 2>/dev/null || echo 2)}
model=$share/default-model/model
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$out"
rm -rf adapter eval
cp "$share/quickstart/plan-pairs-train.jsonl" "$share/quickstart/plan-pairs-heldout.jsonl" \
  "$share/quickstart/support-format.json" .

echo "== 1. DPO with LoRA on $(wc -l < plan-pairs-train.jsonl) pairs (held out: $(wc -l < plan-pairs-heldout.jsonl))"
"$cria" train --model "$model" --data plan-pairs-train.jsonl --eval-data plan-pairs-heldout.jsonl \
  --format support-format.json --objective dpo --beta 0.1 \
  --adapter "lora r=16 alpha=32 target-modules=all-linear" --epochs 6 --lr 1e-2 --batch-size 4 \
  --threads "$threads" --seed 1 --out adapter
echo
echo "== 2. The held-out pairs, base vs adapted: how often the chosen answer is the more likely one"
"$cria" eval --model "$model" --adapter adapter --compare --data plan-pairs-heldout.jsonl \
  --prompt-format support-format.json --threads "$threads" --out eval
echo
echo "Done. In $out: adapter/ (train-log.jsonl with rewards/*, loss.png), eval/summary.txt"
