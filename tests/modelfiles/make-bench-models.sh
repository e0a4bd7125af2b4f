#!/bin/sh
# Makes the random-weight checkpoints the benches run, in the Hugging Face
# layout with the matching tokenizer from ../shared/tokenizers:
#   OUT/gpt2-124m        GPT-2 124M shape, f32
#   OUT/qwen2.5-0.5b     Qwen2.5-0.5B shape (24 layers), bf16
#   OUT/qwen2.5-0.5b-2l  the same with two layers, f32 (tests/golden/qwen2.5-0.5b-2l-seed7 holds its reference)
#   OUT/gpt2-124m-2l     GPT-2 124M with two layers, f32 (tests/golden/gpt2-124m-2l-seed7)
# Not part of make check (about 2.5 GB written).
#   tests/modelfiles/make-bench-models.sh [OUT] [BUILDDIR] [SHARED]
set -eu
out=${1:-bench-models}
build=${2:-.}
src=$(cd "$(dirname "$0")/../.." && pwd)
shared=${3:-$src/../shared}
tool="$build/tests/modelfiles/cria-random-model"
# the tensor lists are the model plugins'
CRIA_PLUGIN_PATH="$build/plugins/.libs${CRIA_PLUGIN_PATH:+:$CRIA_PLUGIN_PATH}"; export CRIA_PLUGIN_PATH
[ -x "$tool" ] || { echo "$tool is missing: make check (or make tests/modelfiles/cria-random-model) first" >&2; exit 2; }
configs="$src/tests/models/configs"
"$tool" "$configs/gpt2-124m.json" "$out/gpt2-124m" 7 f32
"$tool" "$configs/gpt2-124m-2l.json" "$out/gpt2-124m-2l" 7 f32
"$tool" "$configs/qwen2.5-0.5b.json" "$out/qwen2.5-0.5b" 7 bf16
"$tool" "$configs/qwen2.5-0.5b-2l.json" "$out/qwen2.5-0.5b-2l" 7 f32
for m in gpt2-124m gpt2-124m-2l; do
  cp "$shared/tokenizers/gpt2-hf/"* "$out/$m/" 2>/dev/null || echo "no GPT-2 tokenizer in $shared" >&2
done
for m in qwen2.5-0.5b qwen2.5-0.5b-2l; do
  cp "$shared/tokenizers/qwen2.5/"* "$out/$m/" 2>/dev/null || echo "no Qwen2.5 tokenizer in $shared" >&2
done
for m in gpt2-124m gpt2-124m-2l qwen2.5-0.5b qwen2.5-0.5b-2l; do
  "$build/cria" model info "$out/$m" | sed -n '1,4p'
done
