#!/bin/sh
# make-model.sh: trains tests/construct-e2e/model, the model that
# test-construct-e2e serves, with cria itself.
#
#   tests/construct-e2e/make-model.sh [BUILDDIR]
#
# test-construct-e2e runs its pipelines against a scripted teacher and cuts
# each prompt to what the model sees of it; when those lessons differ from
# model/lessons.jsonl it writes them to BUILDDIR/tests/construct-e2e/
# lessons.new.jsonl and fails. This script trains on them: a Mistral-layout
# model of model-config.json (fresh weights, `cria model init`), a byte-level
# tokenizer with one end-of-text token (`cria tokenizer train` on no text),
# full fine-tuning on 1 thread (a few minutes; cria train is reproducible at a
# fixed thread count), saved in bf16 to keep the files small. Then it puts
# the model and the lessons it learned in tests/construct-e2e/model/.
set -eu
build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
cria=$build/cria
lessons=$build/tests/construct-e2e/lessons.new.jsonl
if [ ! -f "$lessons" ]; then
  echo "make-model.sh: $lessons is missing: run make check TESTS=tests/construct-e2e/test-construct-e2e first" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$cria" model init --seed 1 "$here/model-config.json" "$work/init"
"$cria" tokenizer train --vocab-size 257 --special '<|endoftext|>' --output "$work/init/" /dev/null
# The prompt as it is: cria serve reads a conversation of one user message so.
cat > "$work/raw.json" <<'JSON'
{"name": "raw", "description": "the prompt as it is", "kind": "single",
 "prompt": "{instruction}", "prompt_no_input": "{instruction}", "response": "{output}"}
JSON
"$cria" train --model "$work/init" --data "$lessons" --format "$work/raw.json" --adapter full \
  --packing --max-length 256 --batch-size 8 --lr 3e-3 --schedule cosine --warmup-steps 50 --max-steps 1500 \
  --threads 1 --seed 1 --save-dtype bf16 --progress never --out "$work/trained"

mkdir -p "$here/model"
cp "$work/trained/config.json" "$work/trained/model.safetensors" "$work/trained/tokenizer.json" "$here/model/"
cp "$lessons" "$here/model/lessons.jsonl"
rm -f "$lessons"
grep -h '"final_loss"' "$work/trained/report.json"
echo "make-model.sh: wrote $here/model; commit it"
