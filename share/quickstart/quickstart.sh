#!/bin/sh
# The quickstart the README's first command ends with (make quickstart):
# build a small support-desk dataset with a record pipeline, fine-tune cria's
# default demo model on it with LoRA, and show what it learned.
#
#   quickstart.sh CRIA SHARE_DIR [OUT_DIR] [THREADS] [EPOCHS]
#
# Everything lands in OUT_DIR (default cria-quickstart): the inputs copied
# beside their outputs, the dataset, the adapter with its loss curve, and the
# before/after evaluation. EPOCHS (default 8) is for smoke tests (.ci/deb runs
# one): fewer epochs run every step the same way, but the adapter learns less.
set -eu
cria=$1
share=$2
out=${3:-cria-quickstart}
threads=${4:-$(nproc 2>/dev/null || echo 2)}
epochs=${5:-8}
model=$share/default-model/model
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$out"
rm -rf adapter eval
cp "$share/quickstart/support-desk.jsonl" "$share/quickstart/plans.json" "$share/quickstart/pipeline.json" \
  "$share/quickstart/support-format.json" .

# A short prompt format of its own (a format file, cria-record(5)): the demo
# model is small, and Alpaca's preamble would be most of what it reads.
ask() {
  "$cria" generate --model "$model" --prompt-format support-format.json --threads "$threads" --max-new-tokens 40 "$@" \
    "How much does the Pro plan cost?" "团队版有多少存储空间？"
}

echo "== 1. The dataset: hand-written records + templated facts, varied, deduplicated, split"
"$cria" data "template location=plans.json ! jsonl location=plans.jsonl"
echo
echo "pipeline.json, written as a string (cria data --print):"
"$cria" data --print -f pipeline.json
"$cria" data -f pipeline.json
echo "$(wc -l < train.jsonl) records to train on in train.jsonl, $(wc -l < eval.jsonl) held out in eval.jsonl"
echo
echo "== 2. cria's demo model before fine-tuning ($model)"
ask
echo
echo "== 3. LoRA fine-tuning on train.jsonl"
"$cria" train --model "$model" --data train.jsonl --format support-format.json \
  --adapter "lora r=16 alpha=32 target-modules=all-linear" --epochs "$epochs" --lr 1.2e-2 --batch-size 8 \
  --warmup-steps 5 --schedule cosine --threads "$threads" --seed 1 --out adapter
echo
echo "== 4. Before and after, on the held-out records (eval.jsonl)"
"$cria" eval --model "$model" --adapter adapter --compare --data eval.jsonl --prompt-format support-format.json \
  --metrics rouge,perplexity --max-new-tokens 48 --threads "$threads" --out eval
echo
echo "== 5. The same questions, now with the adapter"
ask --adapter adapter
echo
echo "Done. In $out:"
echo "  train.jsonl, eval.jsonl    the dataset (from support-desk.jsonl, plans.json and pipeline.json)"
echo "  adapter/                   the LoRA adapter (PEFT format), loss.png, train-log.jsonl, report.json"
echo "  eval/                      predictions.jsonl, summary.json and summary.txt of the comparison"
