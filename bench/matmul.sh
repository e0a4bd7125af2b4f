#!/bin/sh
# Matmul speed of cria's cpu backend against torch.matmul, in the same run.
#
#   make bench/bench-matmul && bench/matmul.sh [THREADS]
#
# Prints, per shape (M,N,K of x [M,K] times a weight [N,K] transposed), the
# GFLOP/s of both with an f32 and a bf16 weight, cria / torch, and cria's
# share of the machine's peak (register-only FMAs on every thread; torch's own
# sgemm at 2048^3 is printed too); last, cria's with the bf16 weight and
# bf16-dot=true (activations rounded to bf16: AMX or AVX512-BF16 products).
# BENCH_MATMUL_ARGS passes options to bench-matmul (say "--amx false").
set -e
threads=${1:-0}
here=$(dirname "$0")
shapes="128,768,768 128,3072,768 128,768,3072 512,2304,768 1,896,4864 1,4864,896 1,768,3072 2048,2048,2048"
cria_out=$(mktemp)
torch_out=$(mktemp)
trap 'rm -f "$cria_out" "$torch_out"' EXIT
CRIA_PLUGIN_PATH=${CRIA_PLUGIN_PATH:-$here/../plugins/.libs} "$here/bench-matmul" --threads "$threads" ${BENCH_MATMUL_ARGS:-} $shapes > "$cria_out"
/usr/bin/python3 "$here/torch-matmul.py" "$threads" $shapes > "$torch_out"
/usr/bin/python3 - "$cria_out" "$torch_out" <<'PY'
import json, sys
cria = [json.loads(l) for l in open(sys.argv[1])]
torch = [json.loads(l) for l in open(sys.argv[2])]
peak = cria[0]["fma_peak_gflops"] or torch[0]["peak_gflops"]
print("%s; torch %s threads" % (cria[0]["backend"], torch[0]["threads"]))
print("machine peak: %.1f GFLOP/s of register-only AVX-512 FMAs; torch sgemm at 2048^3: %.1f GFLOP/s" % (
    cria[0]["fma_peak_gflops"], torch[0]["peak_gflops"]))
print("%-16s %10s %10s %7s %7s %10s %10s %7s %10s" % ("M,N,K", "cria f32", "torch f32", "ratio", "%peak", "cria bf16", "torch bf16", "ratio", "bf16-dot"))
for c, t in zip(cria[1:], torch[1:]):
    print("%-16s %10.1f %10.1f %7.2f %6.0f%% %10.1f %10.1f %7.2f %10.1f" % (
        c["shape"], c["f32_gflops"], t["f32_gflops"], c["f32_gflops"] / t["f32_gflops"],
        100 * c["f32_gflops"] / peak, c["bf16_gflops"], t["bf16_gflops"], c["bf16_gflops"] / t["bf16_gflops"],
        c["bf16_dot_gflops"]))
PY
