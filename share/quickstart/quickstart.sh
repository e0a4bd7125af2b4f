#!/bin/sh
# The quickstart the README's first command ends with (make quickstart).
# Usage: quickstart.sh CRIA DATA_DIR [OUT_DIR]
# Today it proves the plugins load and a record pipeline runs end to end; the
# quickstart issue grows it into dataset -> LoRA fine-tuning -> before/after eval.
set -eu
cria=$1
share=$2
out=${3:-cria-quickstart}
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "== cria $("$cria" --version | cut -d' ' -f2-): the plugins it found"
"$cria" inspect
echo
echo "== building the support-desk dataset with a record pipeline (JSON form, cria-pipeline(5))"
cd "$share/quickstart"
# The pipeline file names its files relative to the directory it runs in.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|\"location\": \"dataset.jsonl\"|\"location\": \"$out/dataset.jsonl\"|" pipeline.json > "$tmp/pipeline.json"
"$cria" data -f "$tmp/pipeline.json"
echo
echo "== the same pipeline written as a string, for comparison"
"$cria" data --print -f "$tmp/pipeline.json"
echo
echo "== the first records of $out/dataset.jsonl"
head -n 3 "$out/dataset.jsonl"
echo
echo "Done: the dataset is in $out/dataset.jsonl"
