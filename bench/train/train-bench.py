#!/usr/bin/python3
"""cria's training steps against PyTorch on the same shapes, in the same run.

  bench/train/train-bench.py MODELS [THREADS] [STEPS] [--cases LIST] [--bf16]
                             [--scaling [--scaling-threads 1,2]] [--repeat N] [--no-peer]

MODELS holds gpt2-124m and qwen2.5-0.5b as tests/modelfiles/make-bench-models.sh
makes them. Three cases (--cases picks some: gpt2-lora, qwen-lora, gpt2-full),
each timed over STEPS steps (default 3) after one warm-up step: LoRA r=8 on
GPT-2's attention projections (batch 4 x 128), LoRA r=8 on Qwen2.5-0.5B's
q_proj and v_proj (batch 1 x 256), and full fine-tuning of GPT-2 (batch 4 x
64). cria runs `cria train` on records long enough to fill every row
(train-on-inputs, truncated to the length); its tokens/s is taken from the
log's elapsed times after the first step. PyTorch runs
bench/train/torch_train.py with the same batch, length, targets and rank.
Prints tokens/s of each, the ratio, cria's share of the FMA peak and the peak
resident memory of each process. The ratio is printed only when the peer's
PyTorch runs an optimized BLAS (OpenBLAS: apt-get install libopenblas-dev);
against the reference BLAS it would be inflated 10-20x. CRIA_BACKEND (say
'cpu fuse=false') passes a backend description to cria train.

Share of the peak: the FLOPs of a step over its time, against the f32 FMA
peak that bench/bench-matmul measures at the same thread count (build it
first: make bench/bench-matmul; without it no share is printed). A token
costs 4 P FLOPs with LoRA (the forward product and dX = dY W through every
frozen weight) and 6 P in full fine-tuning (dW too), P being the matrix
weights of the blocks plus the lm head, and 12 L T d for attention (QK^T and
PV forward, twice that backward, T the length, d the width, L the layers).
The LoRA branch and the element-wise ops are not counted.

--bf16 adds a row under each LoRA case: cria with --base-dtype bf16 (bf16
base weights, activations rounded to bf16 for the products with them,
AMX tiles or AVX512-BF16 vdpbf16ps where the processor has them, f32 sums) against cria f32
of the same run, with the speed-up (issue 17 aims at 1.6x) and the share of
the f32 FMA peak (vdpbf16ps does twice the products of an FMA, so the bf16
peak is twice that).

--scaling runs cria alone on each chosen case at each of --scaling-threads
(default 1,2; also bf16 with --bf16) and prints the speed-up over the first,
and what Amdahl's law makes of it at 16 threads: with speed-up S at 2
threads the part that runs in parallel is p = 2 (1 - 1/S), and 16 threads
would give 1 / ((1 - p) + p / 16). That is an upper bound, for a step whose
serial part stays serial and whose parallel part keeps scaling: see "A
16-core machine" below for what holds it back. --repeat N runs every cria
arm and the peer N times, alternating, and keeps each one's best (a
shared machine's noise only slows runs down, the peer's more than cria's).

A shared machine. PyTorch's OpenMP threads wait for each other at every
op, so any other load on the cores slows the peer far more than cria: on a
2-core Xeon with a build running beside it, GPT-2 LoRA's peer ran at 102 to
190 tok/s, and at 218-219 under a real-time policy. Where the machine is not
quiet, run the whole bench as `chrt -f 10 bench/train/train-bench.py ...`
(both arms then run first, and the ratio is against the peer at its best).

A virtual machine. Its cores may share physical cores with other guests: on
a 2-core Xeon guest the 2-thread FMA peak measured 230 to 470 GFLOP/s from
one minute to the next, the low figure that of one thread. The peak is
measured (best of five) before the cases and again after them; where the
second is more than 15% below the first, the bench says so, since the
cases' shares of the peak (taken against the first) are then understated;
where the first is more than 15% below the second, they are overstated.

A 16-core machine. What to expect follows from two measurements, not from
the core count alone. (1) The sgemm's per-core rate: bench/bench-matmul
--threads 1 and --threads 2 at 512,2304,768 should differ by the thread
count on an idle machine, since nothing in a product is shared between
threads: each task packs its own 32-column panels of the
weight (32 KiB each, up to 8 of them in L2) and walks a block of rows past
them, and a product is cut into at least 2 tasks a thread, 4 when a task
holds one panel (cpu-gemm.c splits the rows when there are fewer panels;
with more it groups them, so that A is read once per group). At 16
threads the narrow products (N = 768 in GPT-2, 896 in Qwen2.5-0.5B: 24 and
28 panels) are cut into about 3 row blocks, so each of their weight panels
is read 3 times instead of once: a GPT-2 LoRA step then reads about 2 GB of
f32 weights (1 GB in bf16), forward and dX (one product for the whole
batch each), against about 1 GB unsplit; at the step times 16 cores would
reach (tenths of a second) that is within a desktop's memory bandwidth.
(2) The rest of the step: norms, element-wise ops,
attention by (sequence, head) pairs (GPT-2 at batch 4: 48 a layer, so 3 a
thread at 16), the cross-entropy by row chunks, AdamW once a step, and the
pool's hand-off per op, whose share grows with threads. --scaling measures
both together as the 1 -> 2 thread speed-up S and prints Amdahl's
projection 1 / ((1 - p) + p / 16) with p = 2 (1 - 1/S): the expectation to
hold a 16-core run against. It is an upper bound (the hand-offs cost more
with more threads, and 16 cores share one memory); a run far below it points
at memory bandwidth or at an op that runs on one thread. The figures of a
run belong in its note, with the load average.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CRIA = os.environ.get("CRIA", os.path.join(ROOT, "cria"))
BENCH_MATMUL = os.path.join(ROOT, "bench", "bench-matmul")
BACKEND = os.environ.get("CRIA_BACKEND")

# key, name, model, batch, length, cria adapter, torch arguments
CASES = [
    ("gpt2-lora", "gpt2-124m LoRA r=8 attn, 4x128", "gpt2-124m", 4, 128,
     "lora r=8 alpha=16 target-modules=attn.c_attn,attn.c_proj", ["lora", "attn.c_attn,attn.c_proj", "8"]),
    ("qwen-lora", "qwen2.5-0.5b LoRA r=8 q,v, 1x256", "qwen2.5-0.5b", 1, 256,
     "lora r=8 alpha=16 target-modules=q_proj,v_proj", ["lora", "q_proj,v_proj", "8"]),
    ("gpt2-full", "gpt2-124m full, 4x64", "gpt2-124m", 4, 64, "full", ["full"]),
]


def cria_run(model, batch, seq, adapter, steps, threads, work, base_dtype="f32"):
    data = os.path.join(work, "data.jsonl")
    if not os.path.exists(data):
        with open(data, "w") as f:
            text = " ".join("the quick brown fox %d jumps over the lazy dog." % i for i in range(200))
            for i in range(batch * (steps + 1)):
                f.write(json.dumps({"instruction": "Repeat.", "input": "", "output": "%d %s" % (i, text)}) + "\n")
    out = tempfile.mkdtemp(prefix="run-", dir=work)
    proc = subprocess.Popen([CRIA, "train", "--model", model, "--data", data, "--out", out, "--adapter", adapter,
                             "--batch-size", str(batch), "--max-length", str(seq), "--on-long", "truncate",
                             "--train-on-inputs", "--max-steps", str(steps + 1), "--threads", str(threads),
                             "--progress", "never", "--save-dtype", "bf16", "--base-dtype", base_dtype]
                            + (["--backend", BACKEND] if BACKEND else []) + ["--overwrite"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit("cria train failed on %s (--base-dtype %s, %d threads):\n%s" % (model, base_dtype, threads,
                                                                                 err.decode(errors="replace")))
    with open(os.path.join(out, "train-log.jsonl")) as f:
        steps_log = [json.loads(line) for line in f if '"loss"' in line]
    span = steps_log[-1]["elapsed_s"] - steps_log[0]["elapsed_s"]
    return batch * seq * (len(steps_log) - 1) / span, usage.ru_maxrss / 1024


def torch_run(model_dir, batch, seq, steps, torch_args, threads, peer):
    """The peer's tokens/s and MB on the case; peer["blas"] is the BLAS it ran."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "torch_train.py"), model_dir, str(batch), str(seq),
                        str(steps)] + torch_args + [str(threads)], check=True, capture_output=True, text=True)
    t = json.loads(r.stdout.strip().splitlines()[-1])
    peer["blas"] = t.get("blas")
    return t["tokens_per_s"], t["peak_rss_mb"]


def best_of(repeat, arms):
    """Runs each arm (a function returning (tokens/s, MB)) `repeat` times,
    alternating A B A B, and keeps each arm's fastest run."""
    best = [None] * len(arms)
    for _ in range(repeat):
        for i, arm in enumerate(arms):
            r = arm()
            if best[i] is None or r[0] > best[i][0]:
                best[i] = r
    return best


def tensor_shapes(model_dir):
    """Name -> shape from the safetensors header (the data is not read)."""
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def flops_per_token(model_dir, seq, full):
    """FLOPs of a training step per token (see the module's docstring)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    d = cfg.get("hidden_size", cfg.get("n_embd"))
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    vocab = cfg["vocab_size"]
    shapes = tensor_shapes(model_dir)
    emb = ("wte.", "wpe.", "embed_tokens.")
    p = sum(s[0] * s[1] for k, s in shapes.items() if len(s) == 2 and k.endswith(".weight")
            and not any(e in k for e in emb) and "lm_head" not in k)
    p += vocab * d  # the lm head, tied or not
    return (6 if full else 4) * p + 12 * layers * seq * d


def fma_peak(threads):
    """bench/bench-matmul's f32 FMA peak in GFLOP/s at `threads`, or None."""
    if not os.access(BENCH_MATMUL, os.X_OK):
        return None
    r = subprocess.run([BENCH_MATMUL, "--threads", str(threads), "64,64,64"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if "fma_peak_gflops" in line:
            return json.loads(line)["fma_peak_gflops"]
    return None


def share(tps, flops, peak):
    return "%5.0f%%" % (100 * tps * flops / 1e9 / peak) if peak else "   n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models")
    ap.add_argument("threads", nargs="?", type=int, default=os.cpu_count())
    ap.add_argument("steps", nargs="?", type=int, default=3)
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES),
                    help="comma-separated: " + ", ".join(c[0] for c in CASES))
    ap.add_argument("--bf16", action="store_true", help="bf16 base-weight rows for the LoRA cases")
    ap.add_argument("--scaling", action="store_true", help="cria at each of --scaling-threads, with the speed-up")
    ap.add_argument("--scaling-threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each arm (cria and the peer), alternating; the best is kept")
    ap.add_argument("--no-peer", action="store_true", help="cria only (no PyTorch, no ratio)")
    args = ap.parse_args()
    keys = args.cases.split(",")
    unknown = [k for k in keys if k not in [c[0] for c in CASES]]
    if unknown:
        sys.exit("train-bench.py: unknown case %s (known: %s)" % (",".join(unknown), ", ".join(c[0] for c in CASES)))
    cases = [c for c in CASES if c[0] in keys]
    peak = fma_peak(args.threads)
    # scaling needs the cores idle: a load of 1 on 2 cores leaves 2 threads one core
    print("threads %d, %d timed steps; f32 FMA peak %s; load average %.2f" % (
        args.threads, args.steps, "%.1f GFLOP/s (bench/bench-matmul)" % peak if peak else
        "unknown (make bench/bench-matmul)", os.getloadavg()[0]))
    print("%-36s %12s %12s %7s %6s %10s %10s" % ("case", "cria tok/s", "torch tok/s", "ratio", "peak", "cria MB",
                                                "torch MB"))
    scaling = []
    for key, name, model, batch, seq, adapter, torch_args in cases:
        d = os.path.join(args.models, model)
        if not os.path.isdir(d):
            print("%-36s skipped: %s is missing (tests/modelfiles/make-bench-models.sh)" % (name, d))
            continue
        full = adapter == "full"
        flops = flops_per_token(d, seq, full)
        bf16 = args.bf16 and not full
        with tempfile.TemporaryDirectory() as work:
            arms = [lambda: cria_run(d, batch, seq, adapter, args.steps, args.threads, work)]
            if bf16:
                arms.append(lambda: cria_run(d, batch, seq, adapter, args.steps, args.threads, work, "bf16"))
            peer = {}
            if not args.no_peer:
                arms.append(lambda: torch_run(d, batch, seq, args.steps, torch_args, args.threads, peer))
            res = best_of(args.repeat, arms)
            (ctps, crss) = res[0]
            if args.no_peer:
                print("%-36s %12.1f %12s %7s %s %10.0f %10s" % (name, ctps, "-", "-", share(ctps, flops, peak), crss,
                                                              "-"), flush=True)
            else:
                ttps, trss = res[-1]
                fast_blas = peer["blas"] in ("openblas", "mkl", "blis")
                ratio = "%6.2fx" % (ctps / ttps) if fast_blas else "    n/a"
                print("%-36s %12.1f %12.1f %s %s %10.0f %10.0f" % (name, ctps, ttps, ratio, share(ctps, flops, peak),
                                                                  crss, trss), flush=True)
                if not fast_blas:
                    print("  no ratio: PyTorch runs the %s BLAS (apt-get install libopenblas-dev)" % peer["blas"],
                          flush=True)
            if bf16:
                btps, brss = res[1]
                print("%-36s %12.1f %12s %6.2fx %s %10.0f" % ("  bf16 base weights, vs cria f32", btps,
                                                              "%.1f" % ctps, btps / ctps, share(btps, flops, peak),
                                                              brss), flush=True)
            if args.scaling:
                threads = [int(x) for x in args.scaling_threads.split(",")]
                for dtype in ["f32"] + (["bf16"] if bf16 else []):
                    runs = best_of(args.repeat, [
                        (lambda n=n: cria_run(d, batch, seq, adapter, args.steps, n, work, dtype)) for n in threads])
                    scaling.append((name + ("" if dtype == "f32" else " [bf16]"), threads, [r[0] for r in runs]))
    if peak:
        end = fma_peak(args.threads)
        note = ""
        if end < 0.85 * peak:
            note = "; below the start's: the host took cores during the run, the shares are understated"
        elif peak < 0.85 * end:
            note = "; above the start's: the host held cores when the peak was taken, the shares are overstated"
        print("f32 FMA peak at the end %.1f GFLOP/s%s" % (end, note))
    if scaling:
        threads = scaling[0][1]
        print()
        print("load average %.2f at the end" % os.getloadavg()[0])
        print("%-36s %s %s %9s" % ("cria, threads", " ".join("%10d" % n for n in threads),
                                   " ".join("%7s" % ("x%d" % n) for n in threads[1:]), "16 (Amdahl)"))
        for name, threads, tps in scaling:
            ups = [x / tps[0] for x in tps[1:]]
            amdahl = ""
            if len(threads) > 1 and threads[0] == 1 and threads[1] == 2:
                p = min(1.0, max(0.0, 2 * (1 - 1 / ups[0])))
                amdahl = "%8.1fx" % (1 / ((1 - p) + p / 16))
            print("%-36s %s %s %9s" % (name, " ".join("%10.1f" % x for x in tps), " ".join("%6.2fx" % u for u in ups),
                                       amdahl), flush=True)


if __name__ == "__main__":
    main()
