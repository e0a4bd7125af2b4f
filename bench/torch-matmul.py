#!/usr/bin/python3
"""The peer of bench-matmul: torch.matmul GFLOP/s at the same shapes (x @ w.T,
w in f32 and bf16; bf16 converted per call for a bf16 weight, as PyTorch's CPU
path has no mixed f32 x bf16 matmul), and the machine's sgemm peak measured
at 2048^3.

    /usr/bin/python3 bench/torch-matmul.py THREADS M,N,K ...
"""
import json
import sys
import time

import torch


def gflops(fn, flops):
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(max(0.25 / one, 5), 2000))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return flops / times[len(times) // 2] / 1e9


threads = int(sys.argv[1])
if threads > 0:
    torch.set_num_threads(threads)
a = torch.randn(2048, 2048)
print(json.dumps({"threads": torch.get_num_threads(),
                  "peak_gflops": round(gflops(lambda: a @ a, 2 * 2048 ** 3), 2)}))
for shape in sys.argv[2:]:
    M, N, K = map(int, shape.split(","))
    x, w = torch.randn(M, K), torch.randn(N, K)
    wb = w.bfloat16()
    f32 = gflops(lambda: x @ w.T, 2 * M * N * K)
    bf16 = gflops(lambda: x @ wb.float().T, 2 * M * N * K)
    print(json.dumps({"shape": shape, "f32_gflops": round(f32, 2), "bf16_gflops": round(bf16, 2)}))
    sys.stdout.flush()
