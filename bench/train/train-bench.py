#!/usr/bin/python3
"""cria's training steps against PyTorch on the same shapes, in the same run.

  bench/train/train-bench.py MODELS [THREADS] [STEPS]

MODELS holds gpt2-124m and qwen2.5-0.5b as tests/modelfiles/make-bench-models.sh
makes them. Three cases, each timed over STEPS steps after one warm-up step:
LoRA r=8 on GPT-2's attention projections (batch 4 x 128), LoRA r=8 on
Qwen2.5-0.5B's q_proj and v_proj (batch 1 x 256), and full fine-tuning of
GPT-2 (batch 4 x 64). cria runs `cria train` on records long enough to fill
every row (train-on-inputs, truncated to the length); its tokens/s is taken from
the log's elapsed times after the first step. PyTorch runs
bench/train/torch_train.py with the same batch, length, targets and rank.
Prints tokens/s of each, the ratio and the peak resident memory of each
process. The ratio is printed only when the peer's PyTorch runs an optimized
BLAS (OpenBLAS: apt-get install libopenblas-dev); against the reference BLAS
it would be inflated 10-20x. CRIA_BACKEND (say 'cpu fuse=false') passes a
backend description to cria train.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CRIA = os.environ.get("CRIA", os.path.join(ROOT, "cria"))
BACKEND = os.environ.get("CRIA_BACKEND")

CASES = [
    ("gpt2-124m LoRA r=8 attn, 4x128", "gpt2-124m", 4, 128, "lora r=8 alpha=16 target-modules=attn.c_attn,attn.c_proj",
     ["lora", "attn.c_attn,attn.c_proj", "8"]),
    ("qwen2.5-0.5b LoRA r=8 q,v, 1x256", "qwen2.5-0.5b", 1, 256, "lora r=8 alpha=16 target-modules=q_proj,v_proj",
     ["lora", "q_proj,v_proj", "8"]),
    ("gpt2-124m full, 4x64", "gpt2-124m", 4, 64, "full", ["full"]),
]


def cria_run(model, batch, seq, adapter, steps, threads, work):
    data = os.path.join(work, "data.jsonl")
    with open(data, "w") as f:
        text = " ".join("the quick brown fox %d jumps over the lazy dog." % i for i in range(200))
        for i in range(batch * (steps + 1)):
            f.write(json.dumps({"instruction": "Repeat.", "input": "", "output": "%d %s" % (i, text)}) + "\n")
    out = os.path.join(work, "run")
    proc = subprocess.Popen([CRIA, "train", "--model", model, "--data", data, "--out", out, "--adapter", adapter,
                    "--batch-size", str(batch), "--max-length", str(seq), "--on-long", "truncate", "--train-on-inputs",
                    "--max-steps", str(steps + 1), "--threads", str(threads), "--progress", "never",
                    "--save-dtype", "bf16"] + (["--backend", BACKEND] if BACKEND else []), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit("cria train failed on %s" % model)
    with open(os.path.join(out, "train-log.jsonl")) as f:
        steps_log = [json.loads(line) for line in f if '"loss"' in line]
    span = steps_log[-1]["elapsed_s"] - steps_log[0]["elapsed_s"]
    return batch * seq * (len(steps_log) - 1) / span, usage.ru_maxrss / 1024


def main():
    models = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print("%-36s %12s %12s %7s %10s %10s" % ("case", "cria tok/s", "torch tok/s", "ratio", "cria MB", "torch MB"))
    for name, model, batch, seq, adapter, torch_args in CASES:
        d = os.path.join(models, model)
        if not os.path.isdir(d):
            print("%-36s skipped: %s is missing (tests/modelfiles/make-bench-models.sh)" % (name, d))
            continue
        with tempfile.TemporaryDirectory() as work:
            ctps, crss = cria_run(d, batch, seq, adapter, steps, threads, work)
        r = subprocess.run([sys.executable, os.path.join(HERE, "torch_train.py"), d, str(batch), str(seq), str(steps)]
                           + torch_args + [str(threads)], check=True, capture_output=True, text=True)
        t = json.loads(r.stdout.strip().splitlines()[-1])
        fast_blas = t.get("blas") in ("openblas", "mkl", "blis")
        ratio = "%6.2fx" % (ctps / t["tokens_per_s"]) if fast_blas else "    n/a"
        print("%-36s %12.1f %12.1f %s %10.0f %10.0f" % (name, ctps, t["tokens_per_s"], ratio, crss, t["peak_rss_mb"]),
              flush=True)
        if not fast_blas:
            print("  no ratio: PyTorch runs the %s BLAS (apt-get install libopenblas-dev)" % t.get("blas"), flush=True)


if __name__ == "__main__":
    main()
