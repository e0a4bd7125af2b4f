#!/bin/sh
# tokenize.sh: cria's encode throughput against @huggingface/tokenizers (node),
# measured in the same run on the same multi-MB corpus, for each tokenizer.
#
#   make bench-tokenize            (or: bench/tokenizers/tokenize.sh BUILDDIR SRCDIR)
#   CRIA_BENCH_BYTES=500000 sets the corpus size (default 4 MB).
#
# Needs node and @huggingface/tokenizers under $NODE_PATH (default
# /work/npm-ref/node_modules); ../shared for the tokenizers and the data.
# The last column compares the token counts. Known: the JavaScript reference
# counts U+FEFF as \s in GPT-2's pattern, unlike Oniguruma (Rust tokenizers)
# and Python's regex (GPT-2's encoder.py), which cria follows; the corpus holds
# one " \uFEFF" and GPT-2 then differs by one token.
set -e
build=${1:-.}
src=${2:-.}
shared=${CRIA_SHARED:-$src/../shared}
export NODE_PATH=${NODE_PATH:-/work/npm-ref/node_modules}
export CRIA_BENCH_PLUGINS=$build/plugins/.libs
corpus=${TMPDIR:-/tmp}/cria-tok-bench-corpus.txt
/usr/bin/python3 "$src/bench/tokenizers/make-corpus.py" "$shared" "$corpus" ${CRIA_BENCH_BYTES:-}
echo "corpus: $(wc -c < "$corpus") bytes, $(wc -l < "$corpus") documents, $(nproc) processors"
printf '%-18s %10s %10s %10s %8s %8s %s\n' tokenizer cria-1 cria-all node ratio-1 ratio-all tokens
for t in gpt2-hf qwen2.5 llama3 llama2 bert-base-uncased; do
  c=$("$build/bench/tokenizers/cria-tok-bench" "$shared/tokenizers/$t" "$corpus")
  n=$(node "$src/bench/tokenizers/tok-bench.mjs" "$shared/tokenizers/$t" "$corpus")
  echo "$c
$n" | awk -v t="$t" '
    /^cria-1 / { c1 = $2; k1 = $3 }
    /^cria-[0-9]+ / && !/^cria-1 / { cn = $2 }
    /^node / { nd = $2; kn = $3 }
    END { printf "%-18s %10s %10s %10s %7.1fx %7.1fx %s\n", t, c1 " MB/s", cn " MB/s", nd " MB/s", c1 / nd, cn / nd, (k1 == kn ? "same" : "differ " k1 " vs " kn) }'
done
