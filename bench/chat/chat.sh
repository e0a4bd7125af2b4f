#!/bin/sh
# chat.sh: chat template rendering speed of cria against @huggingface/jinja
# (node), measured in the same run on the same conversations, per template.
#
#   make bench-chat          (or: bench/chat/chat.sh BUILDDIR SRCDIR [ROUNDS])
#
# Needs node and @huggingface/jinja under $NODE_PATH (default
# /work/npm-ref-chat/node_modules) and ../shared for the tokenizer configs.
# The last column says whether both rendered the same number of bytes.
set -e
build=${1:-.}
src=${2:-.}
rounds=${3:-2000}
shared=${CRIA_SHARED:-$src/../shared}
export NODE_PATH=${NODE_PATH:-/work/npm-ref-chat/node_modules}
convs=$src/tests/chat-template/conversations.json
printf '%-10s %14s %14s %8s %s\n' template cria-renders/s node-renders/s ratio bytes
for t in qwen2.5 qwen3 llama3; do
  c=$("$build/bench/chat/cria-chat-bench" "$shared/tokenizers/$t" "$convs" "$rounds")
  n=$(node "$src/bench/chat/chat-bench.mjs" "$shared/tokenizers/$t" "$convs" "$rounds")
  echo "$c $n" | awk -v t="$t" '{ printf "%-10s %14d %14d %7.2fx %s\n", t, $2, $5, $2 / $5, ($3 == $6 ? "same" : "DIFFER " $3 " " $6) }'
done
