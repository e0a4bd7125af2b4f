#!/bin/sh
# Runs each libFuzzer target for SECONDS (default 60) from the committed seeds,
# in a scratch copy of the corpus so the tree stays clean. Needs a build
# configured with --enable-fuzzing CC=clang-14. Exits non-zero on a finding;
# the crashing input is left in the scratch directory it prints.
#   tests/fuzz/run-fuzz.sh [SECONDS] [BUILDDIR]
set -eu
secs=${1:-60}
build=${2:-.}
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cria-fuzz-XXXXXX")
status=0
for t in safetensors unpickle hfconfig; do
  bin="$build/tests/fuzz/fuzz-$t"
  [ -x "$bin" ] || { echo "$bin is missing: ./configure --enable-fuzzing CC=clang-14 && make" >&2; exit 2; }
  seeds=$t
  [ "$t" = unpickle ] && seeds=pickle
  mkdir -p "$work/$t"
  cp "$src/corpus/$seeds"/* "$work/$t/"
  echo "fuzz-$t: $secs s"
  if ! (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "$OLDPWD/$bin" -max_total_time="$secs" -max_len=65536 \
          -rss_limit_mb=2048 -print_final_stats=1 "$work/$t" > "$work/$t.log" 2>&1); then
    echo "fuzz-$t found a failure: see $work/$t.log and $work/crash-*" >&2
    status=1
  fi
  grep -E "stat::number_of_executed_units|cov:" "$work/$t.log" | tail -2
done
[ $status -eq 0 ] && rm -rf "$work"
exit $status
