#!/bin/sh
# Reproduces cria's default demo model from nothing but Debian and npm
# packages: fetch and check the corpus, cut it into plain-text records, train
# a byte-level BPE tokenizer, initialize a small LLaMA-architecture model and
# pretrain it with `cria train --adapter full`. At a fixed thread count the
# run is bitwise reproducible (SHA256SUMS of the result in README).
#
#   share/default-model/make-default-model.sh CRIA WORKDIR [STEPS] [THREADS]
#
# The model lands in WORKDIR/pretrain (a Hugging Face directory); the training
# log, loss curve and report beside it. An interrupted run goes on with the
# same command (it resumes from the last checkpoint).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cria=${1:?usage: make-default-model.sh CRIA WORKDIR [STEPS] [THREADS]}
w=${2:?usage: make-default-model.sh CRIA WORKDIR [STEPS] [THREADS]}
steps=${3:-3000}
threads=${4:-2}
mkdir -p "$w"

# 1. The corpus, checked against the checksums recorded when it was chosen.
[ -d "$w/corpus/corpus/en" ] || bash "$here/corpus/fetch_corpus.sh" "$w/corpus"
(cd "$w/corpus/corpus" && find en zh -type f | sort | xargs sha256sum) | diff - "$here/corpus/SHA256SUMS"

# 2. Plain-text records, English and Chinese interleaved.
[ -f "$w/records.jsonl" ] || /usr/bin/python3 "$here/make_records.py" "$w/corpus/corpus" "$w/records.jsonl" 800

# 3. Tokenizer and initial weights.
# Each step is skipped when its output exists: the tokenizer takes the
# longest of the preparation.
mkdir -p "$w/init"
[ -f "$w/init/tokenizer.json" ] ||
  "$cria" tokenizer train -n 4096 -s "<|endoftext|>" -s "<|im_start|>" -s "<|im_end|>" -r -o "$w/init" "$w/records.jsonl"
[ -f "$w/init/model.safetensors" ] || "$cria" model init --seed 1 "$here/config.json" "$w/init"

# 4. Pretraining: packed rows of 256 tokens, cosine schedule.
resume=
last=$(ls -d "$w/pretrain/checkpoints/"* 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)
[ -n "$last" ] && [ ! -f "$w/pretrain/report.json" ] && resume="--resume $last"
"$cria" train --model "$w/init" --data "$w/records.jsonl" --format text --adapter full \
  --out "$w/pretrain" --max-length 256 --packing --batch-size 8 --lr 3e-3 --schedule cosine \
  --warmup-steps 100 --weight-decay 0.01 --max-grad-norm 1.0 --max-steps "$steps" --save-every 250 \
  --threads "$threads" --seed 1 --save-dtype f32 $resume
