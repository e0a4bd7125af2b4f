#!/usr/bin/python3
"""cria's cuda backend against PyTorch + transformers + peft on one GPU, in
the same run (issue 16's speed bench; tests/cuda/device-check.sh runs it).

  bench/cuda/cuda-bench.py [STEPS]      (default: 2 timed steps after a warm-up)

Two cases, on random weights that `cria model init --dtype f32` writes from
tests/models/configs (with tests/models/tiny-qwen3's byte tokenizer: the
token values do not change the cost of a step):
  LoRA r=16 (alpha 32) on every linear layer of the Qwen2.5-0.5B shape,
    batch 8 x 1024;
  full fine-tuning of the GPT-2 124M shape, batch 16 x 1024.
cria runs `cria train --backend cuda` through bench/train/train-bench.py's
cria_run (every row filled to the length, tokens/s from train-log.jsonl after
the first step). The peer runs bench/cuda/peft_train.py twice: bf16 mixed
precision with SDPA attention (what the issue compares against) and f32 with
SDPA, TF32 off: cria's cuda backend computes in f32 only today (bf16 weights
are declined), so the f32 row is the like-for-like one.
Peak GPU memory: for every process, the most nvidia-smi reports for it while
it runs (--query-compute-apps, or the growth of the GPU's memory.used where
that lists no process, as in some containers): this counts the CUDA context
and what allocators hold. For the peer also torch.cuda.max_memory_allocated.
Ratios are cria / peer. Exits 2 with one line where no GPU is. CRIA names the
cria binary (default: ./cria of the source tree); PYTHON the interpreter
with torch, transformers and peft (default: this one).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
PYTHON = os.environ.get("PYTHON", sys.executable)

# cria's side is the CPU bench's: one way to drive `cria train`
_spec = importlib.util.spec_from_file_location("train_bench", os.path.join(ROOT, "bench", "train", "train-bench.py"))
train_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_bench)
train_bench.BACKEND = "cuda"
CRIA = train_bench.CRIA

QWEN_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
CASES = [
    ("qwen2.5-0.5b LoRA r=16 all linear, 8x1024", "qwen2.5-0.5b", 8, 1024,
     "lora r=16 alpha=32 target-modules=" + QWEN_LINEAR, ["lora", "16"]),
    ("gpt2-124m full, 16x1024", "gpt2-124m", 16, 1024, "full", ["full"]),
]


def smi(*query):
    r = subprocess.run(["nvidia-smi"] + list(query) + ["--format=csv,noheader,nounits"], capture_output=True,
                       text=True, timeout=30)
    return [line.split(",") for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []


class PeakGpuMemory:
    """The most GPU memory (MiB) other processes hold while the block runs,
    polled from nvidia-smi: per process where it lists them, else the growth
    of the GPU's memory.used over its value before the block."""

    def __init__(self):
        self.apps = 0
        self.growth = 0
        self.stop = threading.Event()

    def used(self):
        return sum(int(row[0]) for row in smi("--query-gpu=memory.used") if row[0].strip().isdigit())

    def poll(self):
        while True:
            try:
                rows = smi("--query-compute-apps=pid,used_memory")
                apps = sum(int(r[1]) for r in rows
                           if len(r) == 2 and r[1].strip().isdigit() and r[0].strip() != str(os.getpid()))
                self.apps = max(self.apps, apps)
                self.growth = max(self.growth, self.used() - self.base)
            except (OSError, subprocess.SubprocessError):
                pass  # a slow or failed query loses one sample, not the rest
            if self.stop.wait(0.2):
                return

    def __enter__(self):
        self.base = self.used()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def mib(self):
        return self.apps or self.growth


def gpu_name():
    if not shutil.which("nvidia-smi"):
        return None
    rows = smi("--query-gpu=name,memory.total")
    return "%s (%s MiB)" % (rows[0][0].strip(), rows[0][1].strip()) if rows else None


def make_model(name, work):
    d = os.path.join(work, name)
    subprocess.run([CRIA, "model", "init", "--dtype", "f32", "--seed", "7",
                    os.path.join(ROOT, "tests", "models", "configs", name + ".json"), d], check=True,
                   stdout=subprocess.DEVNULL)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "tests", "models", "tiny-qwen3", f), d)
    return d


def peer_run(d, batch, seq, steps, args, dtype):
    with PeakGpuMemory() as mem:
        r = subprocess.run([PYTHON, os.path.join(HERE, "peft_train.py"), d, str(batch), str(seq), str(steps)] + args
                           + [dtype], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["smi_mib"] = mem.mib()
    return out, None


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    gpu = gpu_name()
    if gpu is None:
        print("cuda-bench: no GPU: nvidia-smi is missing or lists none (this bench needs one NVIDIA GPU)",
              file=sys.stderr)
        sys.exit(2)
    print("GPU: %s; %d timed steps after one warm-up; cria: cuda backend, f32 only (bf16 weights are declined)"
          % (gpu, steps))
    print("%-42s %-26s %10s %8s %11s %11s %8s" % ("case", "run", "tok/s", "cria/x", "peak MiB", "alloc MiB",
                                                  "cria/x"))
    summary = []
    versions = None
    failed = False
    for name, model, batch, seq, adapter, peer_args in CASES:
        with tempfile.TemporaryDirectory() as work:
            try:
                d = make_model(model, work)
            except subprocess.CalledProcessError as e:
                failed = True
                print("%-42s FAILED: cria model init exited %d" % (name, e.returncode), flush=True)
                continue
            with PeakGpuMemory() as mem:
                try:
                    ctps, _ = train_bench.cria_run(d, batch, seq, adapter, steps, os.cpu_count(), work)
                except SystemExit as e:  # cria_run's way to say that cria train failed
                    ctps, failed = None, True
                    print("%-42s %-26s FAILED: %s" % (name, "cria f32 (cuda)", e), flush=True)
            cmib = mem.mib()
            if ctps is not None:
                print("%-42s %-26s %10.0f %8s %11d %11s %8s" % (name, "cria f32 (cuda)", ctps, "", cmib, "-", ""),
                      flush=True)
            for dtype, label in (("bf16", "peer bf16 autocast, SDPA"), ("f32", "peer f32, SDPA, no TF32")):
                t, err = peer_run(d, batch, seq, steps, peer_args, dtype)
                if t is None:
                    failed = True
                    print("%-42s %-26s FAILED: %s" % (name, label, err), flush=True)
                    continue
                versions = t["versions"]
                speed = "%7.2fx" % (ctps / t["tokens_per_s"]) if ctps else "-"
                memory = "%7.2fx" % (cmib / t["smi_mib"]) if ctps and cmib and t["smi_mib"] else "-"
                print("%-42s %-26s %10.0f %8s %11d %11.0f %8s" % (name, label, t["tokens_per_s"], speed,
                                                                    t["smi_mib"], t["peak_mib"], memory), flush=True)
                summary.append("%s: cria/peer-%s %s tok/s, %s memory" % (model, dtype, speed.strip(),
                                                                        memory.strip()))
    if versions:
        print("peer: " + versions)
    print("summary: " + "; ".join(summary))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
