#!/bin/sh
# Start-up cost of a small `cria data` run: the time of the whole process,
# the dynamic loader's share of it, and which shared objects it loads.
#   bench/startup/startup.sh [CRIA] [RUNS]
# CRIA defaults to ./cria of the build tree (a libtool wrapper is run through
# the binary it wraps, as bench/data does), RUNS to 50. The floor is the same
# loop running /bin/true: what fork and exec cost on this machine.
set -e
cria=${1:-./cria}
runs=${2:-50}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if head -n 3 "$cria" 2>/dev/null | grep -q 'temporary wrapper script'; then
  build=$(cd "$(dirname "$cria")" && pwd)
  cria=$build/.libs/$(basename "$cria")
  export LD_LIBRARY_PATH="$build/core/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export XDG_CACHE_HOME="$tmp/cache"

printf '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n' > "$tmp/in.jsonl"
set -- "$cria" data -q "file location=$tmp/in.jsonl ! head n=1 ! jsonl location=$tmp/out.jsonl"
"$@" # the first run writes the registry's index; the timed ones read it

# perf stat gives the CPU time (task-clock, steadier than the wall clock on
# a busy machine) and page faults; without perf, a timed loop gives the wall.
if perf stat -r 1 -e task-clock true >/dev/null 2>&1; then
  echo "perf stat -r $runs: cria data 'file ! head n=1 ! jsonl'"
  perf stat -r "$runs" -e task-clock,page-faults "$@" 2>&1 >/dev/null | grep -E 'task-clock|page-faults|elapsed'
  echo "perf stat -r $runs: /bin/true (the floor)"
  perf stat -r "$runs" -e task-clock,page-faults /bin/true 2>&1 >/dev/null | grep -E 'task-clock|page-faults|elapsed'
else
  wall () {
    t0=$(date +%s%N)
    i=0
    while [ $i -lt "$runs" ]; do "$@" >/dev/null; i=$((i + 1)); done
    t1=$(date +%s%N)
    echo "$t0 $t1 $runs" | awk '{ printf "%.2f", ($2 - $1) / 1e6 / $3 }'
  }
  printf "cria data 'file ! head n=1 ! jsonl'  %s ms wall per run (mean of %s)\n" "$(wall "$@")" "$runs"
  printf 'floor: /bin/true                      %s ms wall per run\n' "$(wall /bin/true)"
fi
# The loader's own figure (rdtsc cycles) for the objects linked into cria;
# the plugins dlopen()ed later are in "shared objects loaded" below.
LD_DEBUG=statistics "$@" 2>&1 | sed -n 's/^ *[0-9]*:[[:space:]]*total startup time in dynamic loader: /dynamic loader before main: /p' | head -n 1
objs=$(LD_DEBUG=files "$@" 2>&1 | sed -n 's/^ *[0-9]*:[[:space:]]*file=\([^ ]*\) .*generating link map.*/\1/p' | sort -u)
printf 'shared objects loaded: %s\n' "$(echo "$objs" | wc -l)"
echo "$objs" | tr '\n' ' ' | fold -s -w 100 | sed 's/^/  /'
echo
heavy=$(echo "$objs" | grep -E 'libsoup|libcairo|libarchive' | tr '\n' ' ' || true)
printf 'libsoup, cairo, libarchive loaded: %s\n' "${heavy:-none}"
