#!/bin/sh
# QLoRA's NF4 base weights: memory and matmul speed against f32 and bf16.
#
#   make bench/bench-matmul bench/bench-nf4-memory
#   bench/nf4.sh [CHECKPOINT_DIR] [THREADS]
#
# CHECKPOINT_DIR is a Qwen2.5-0.5B-shaped checkpoint from
# tests/modelfiles/make-bench-models.sh (its qwen2.5-0.5b); without one only
# the speed is measured. The peer of an NF4 matmul is cria's own matmul on the
# same weight in f32 and bf16 (torch has no NF4 kernel on the CPU), at a
# Qwen2.5-0.5B MLP with 512 tokens: up/gate (x [512,896], w [4864,896]) and
# down (x [512,4864], w [896,4864]), and one token of each (decoding).
set -e
dir=${1:-}
threads=${2:-0}
here=$(dirname "$0")
export CRIA_PLUGIN_PATH=${CRIA_PLUGIN_PATH:-$here/../plugins/.libs}
if [ -n "$dir" ]; then
  "$here/bench-nf4-memory" "$dir" | /usr/bin/python3 -c '
import json, sys
m = json.loads(sys.stdin.read())
mib = lambda b: b / 2**20
print("%s: %d linear weights, %.1f M parameters" % (m["checkpoint"], m["linear_tensors"], m["linear_params"] / 1e6))
print("  f32 %.1f MiB, bf16 %.1f MiB, nf4 %.1f MiB (%.3f bits per weight, %.3f of bf16)" % (
    mib(m["f32_bytes"]), mib(m["bf16_bytes"]), mib(m["nf4_bytes"]), m["nf4_bits_per_weight"], m["nf4_vs_bf16"]))
print("  quantized at %.0f M parameters/s" % m["quantize_mparams_per_s"])'
fi
"$here/bench-matmul" --threads "$threads" 512,4864,896 512,896,4864 1,4864,896 1,896,4864 | /usr/bin/python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
print(lines[0]["backend"])
print("%-14s %9s %9s %9s %10s %10s" % ("M,N,K", "f32", "bf16", "nf4", "nf4/f32", "nf4/bf16"))
for r in lines[1:]:
    print("%-14s %9.1f %9.1f %9.1f %10.2f %10.2f" % (r["shape"], r["f32_gflops"], r["bf16_gflops"], r["nf4_gflops"],
          r["nf4_gflops"] / r["f32_gflops"], r["nf4_gflops"] / r["bf16_gflops"]))
print("(GFLOP/s, median of the repetitions)")'
