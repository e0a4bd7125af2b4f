#!/bin/sh
# Dataset construction speed: cria against an equivalent python3 script, in
# the same run on the same input. Prints seconds and the ratio python/cria.
#   bench/data/bench-data.sh [CRIA] [SHARED] [COPIES]
# CRIA defaults to ./cria of the build tree, SHARED to ../shared, COPIES (how
# many times the SQuAD records are repeated to make the large JSONL) to 20.
# A libtool wrapper is run through the binary it wraps: its shell costs about
# 0.1 s of CPU per run, which an installed cria does not pay.
# The last line is the floor that no reader/writer goes under here: the CPU
# time of cat copying the large file (the kernel's read and write).
set -e
here=$(cd "$(dirname "$0")" && pwd)
cria=${1:-./cria}
shared=${2:-$here/../../../shared}
copies=${3:-20}
squad=$shared/data/squad_v2.0/dev-v2.0.reconstructed.json
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if head -n 3 "$cria" 2>/dev/null | grep -q 'temporary wrapper script'; then
  build=$(cd "$(dirname "$cria")" && pwd)
  cria=$build/.libs/$(basename "$cria")
  export LD_LIBRARY_PATH="$build/core/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

ratio () { echo "$1 $2" | awk '{ printf "%.2f", $2 / $1 }'; }

# User+system CPU seconds of a command, so a busy machine skews both sides alike.
cpu () {
  /usr/bin/env time -f '%U %S' -o "$tmp/time" "$@" >/dev/null
  awk '{ printf "%.3f", $1 + $2 }' "$tmp/time"
}

t_cria=$(cpu "$cria" data -q "squad location=$squad ! jsonl location=$tmp/cria.jsonl")
t_py=$(cpu "$py" "$here/squad_ref.py" "$squad" "$tmp/py.jsonl")
same=$(cmp -s "$tmp/cria.jsonl" "$tmp/py.jsonl" && echo identical || echo DIFFERENT)
printf 'squad v2.0 -> jsonl   cria %6ss  python3 %6ss  ratio %sx  (outputs %s)\n' "$t_cria" "$t_py" "$(ratio "$t_cria" "$t_py")" "$same"

i=0
while [ $i -lt "$copies" ]; do cat "$tmp/cria.jsonl"; i=$((i + 1)); done > "$tmp/big.jsonl"
size=$(du -m "$tmp/big.jsonl" | cut -f1)
t_cria=$(cpu "$cria" data -q "file location=$tmp/big.jsonl ! jsonl location=$tmp/big-cria.jsonl")
t_py=$(cpu "$py" "$here/roundtrip_ref.py" "$tmp/big.jsonl" "$tmp/big-py.jsonl")
same=$(cmp -s "$tmp/big-cria.jsonl" "$tmp/big-py.jsonl" && echo identical || echo DIFFERENT)
printf 'jsonl round trip %sMB cria %6ss  python3 %6ss  ratio %sx  (outputs %s)\n' "$size" "$t_cria" "$t_py" "$(ratio "$t_cria" "$t_py")" "$same"
t_cat=$(cpu sh -c 'cat "$1" > "$2"' sh "$tmp/big.jsonl" "$tmp/big-cat.jsonl")
printf 'floor: cat %sMB      %6ss  (python3 / cat: %sx at most for any reader/writer)\n' "$size" "$t_cat" "$(ratio "$t_cat" "$t_py")"
