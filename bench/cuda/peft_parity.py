#!/usr/bin/python3
"""cria's LoRA training against PEFT's, step by step (issue 16, "Against
the world"): the same checkpoint, the same adapter init, the same batches,
the same AdamW, schedule and clipping; per-step losses within 1e-3 relative
and the merged models' logits within 1e-3 relative.

  bench/cuda/peft_parity.py [--peer peft|torch] [--backend cuda|cpu]
                            [--shape qwen2.5-0.5b|qwen2.5-0.5b-2l|small] [--steps 20] [-v]

What runs:
  1. `cria model init --dtype f32` writes a random checkpoint of the shape
     (qwen2.5-0.5b: tests/models/configs/qwen2.5-0.5b.json; qwen2.5-0.5b-2l:
     its first 2 layers; small: the same architecture, 2 layers of width 64,
     for a CPU run), with
     tests/models/tiny-qwen3's byte-level tokenizer.
  2. This script writes the shared init: a PEFT LoRA directory
     (adapter_config.json, adapter_model.safetensors) with r=8, alpha=16 on
     every linear layer of the blocks, A uniform in +-1/sqrt(in) and B
     normal (std 0.02), both from a seeded generator, B nonzero so that the
     first loss already goes through the adapter.
  3. 40 short instruction records in a one-line prompt format (prompt
     "Q: {instruction} A:", response " {output}"); the ids come from
     `cria tokenize` (prompt with the tokenizer's special tokens, response
     alone, then EOS: how cria train builds an example), the loss mask
     learns the response and EOS only.
  4. `cria train --adapter 'lora ... init-from=INIT' --shuffle=false`
     --steps steps of batch 4 (the data's order, 10 batches an epoch),
     lr 2e-4 linear to 0, no warmup, AdamW (0.9, 0.999, 1e-8, no decay),
     clipping at 1; its losses from train-log.jsonl.
  5. The peer, from the same checkpoint and INIT, the same batches and
     hyperparameters (torch.optim.AdamW, LambdaLR, clip_grad_norm_), the
     loss the mean cross-entropy of the learned tokens of a batch:
       peft:  transformers' AutoModelForCausalLM (f32, eager attention, TF32
              off) with peft's PeftModel.from_pretrained(is_trainable=True)
              on the GPU when there is one; merged by merge_and_unload();
       torch: tests/reference/hf_models.py's forward in plain PyTorch with
              the LoRA branch y + s B A x (no transformers, no peft), on the
              CPU; merged as W + s B A.
  6. `cria merge` of cria's trained adapter, `cria logits` of the merged
     model on a probe sequence, against the peer's merged logits.
Prints one line `peft: ok: ...` or `peft: FAILED: ...` (every step with -v).
Exit status 0 when both checks pass, 1 when not, 77 with `peft: skipped:`
when --peer peft and python3 lacks transformers or peft. CRIA names the cria
binary (default: ./cria of the source tree).
"""
import argparse
import importlib.util
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True  # nothing left in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import hf_models  # noqa: E402

CRIA = os.environ.get("CRIA", os.path.join(ROOT, "cria"))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R, ALPHA = 8, 16.0
BATCH, N_RECORDS = 4, 40
LR, MAX_NORM = 2e-4, 1.0
SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 320, "max_position_embeddings": 256, "max_window_layers": 2,
         "sliding_window": 256, "bos_token_id": 300, "eos_token_id": 301}
FORMAT = {"name": "peft-parity", "description": "one-line question and answer", "kind": "single",
          "prompt": "Q: {instruction} A:", "prompt_no_input": "Q: {instruction} A:", "response": " {output}"}
TOLERANCE = 1e-3


def cria(*args):
    r = subprocess.run([CRIA] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("cria %s: %s" % (args[0], (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]))
    return r.stdout


def make_model(shape, work):
    name = "qwen2.5-0.5b" if shape == "small" else shape
    with open(os.path.join(ROOT, "tests", "models", "configs", name + ".json")) as f:
        cfg = json.load(f)
    if shape == "small":
        cfg.update(SMALL)
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump(cfg, f)
    d = os.path.join(work, "model")
    cria("model", "init", "--dtype", "f32", "--seed", "7", config, d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "tests", "models", "tiny-qwen3", f), d)
    return d


def write_safetensors(path, tensors):
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def modules_of(model_dir):
    """The adapted layers, in the checkpoint's order, with (out, in)."""
    shapes = {}
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    for k, v in header.items():
        if k.endswith(".weight") and k.split(".")[-2] in TARGETS:
            shapes[k[:-len(".weight")]] = tuple(v["shape"])
    return shapes


def write_init(model_dir, d):
    """The shared init: PEFT's directory layout, keys
    base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r]."""
    os.makedirs(d)
    g = torch.Generator().manual_seed(1234)
    init = {}
    for m, (out, inp) in sorted(modules_of(model_dir).items()):
        bound = 1.0 / math.sqrt(inp)
        init[m] = (torch.rand(R, inp, generator=g) * 2 * bound - bound, torch.randn(out, R, generator=g) * 0.02)
    write_safetensors(os.path.join(d, "adapter_model.safetensors"),
                      {"base_model.model.%s.lora_%s.weight" % (m, x): t
                       for m, (a, b) in init.items() for x, t in (("A", a), ("B", b))})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, "r": R,
              "lora_alpha": ALPHA, "lora_dropout": 0.0, "target_modules": TARGETS, "bias": "none",
              "fan_in_fan_out": False, "use_rslora": False, "init_lora_weights": True, "inference_mode": False}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return init


def make_data(model_dir, work):
    recs = []
    for i in range(N_RECORDS):
        a, b = 3 + 7 * i % 23, 2 + 5 * i % 17
        recs.append({"instruction": "Add %d and %d%s." % (a, b, " please" * (i % 3)), "input": "",
                     "output": "%d plus %d is %d%s." % (a, b, a + b, ", as counted" * (i % 4))})
    data = os.path.join(work, "data.jsonl")
    with open(data, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    fmt = os.path.join(work, "format.json")
    with open(fmt, "w") as f:
        json.dump(FORMAT, f)

    def tokenize(lines, special):
        path = os.path.join(work, "lines.txt")
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        out = cria("tokenize", "-t", model_dir, "--threads", "1", *(["--add-special"] if special else []), path)
        return [json.loads(line) for line in out.splitlines() if line.strip()]
    prompts = tokenize([FORMAT["prompt"].replace("{instruction}", r["instruction"]) for r in recs], True)
    responses = tokenize([FORMAT["response"].replace("{output}", r["output"]) for r in recs], False)
    # cria train's EOS: the tokenizer's, else config.json's eos_token_id
    # (tiny-qwen3's tokenizer declares none)
    with open(os.path.join(model_dir, "config.json")) as f:
        eos = json.load(f).get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    examples = []
    for p, r in zip(prompts, responses):
        ids = p + r + ([eos] if eos is not None else [])
        learn = [0] * len(p) + [1] * (len(ids) - len(p))
        examples.append((ids, [ids[t + 1] if learn[t + 1] else -100 for t in range(len(ids) - 1)] + [-100]))
    return data, fmt, examples


def batches(examples, steps):
    """Batch of each step: the data's order, epoch after epoch (shuffle=false)."""
    per_epoch = len(examples) // BATCH
    out = []
    for s in range(steps):
        rows = examples[(s % per_epoch) * BATCH:(s % per_epoch + 1) * BATCH]
        T = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([i + [0] * (T - len(i)) for i, _ in rows])
        labels = torch.tensor([lab + [-100] * (T - len(lab)) for _, lab in rows])
        out.append((ids, labels))
    return out


def cria_arm(args, model_dir, init_dir, data, fmt, work, probe):
    out = os.path.join(work, "cria-run")
    cria("train", "--model", model_dir, "--data", data, "--format", fmt, "--out", out, "--overwrite",
         "--adapter", "lora r=%d alpha=%g target-modules=%s init-from=%s" % (R, ALPHA, ",".join(TARGETS), init_dir),
         "--shuffle=false", "--seed", "99", "--batch-size", str(BATCH), "--max-steps", str(args.steps),
         "--lr", str(LR), "--schedule", "linear", "--warmup-steps", "0", "--weight-decay", "0",
         "--max-grad-norm", str(MAX_NORM), "--max-length", "256", "--on-long", "error", "--progress", "never",
         "--backend", args.backend)
    with open(os.path.join(out, "train-log.jsonl")) as f:
        log = [json.loads(line) for line in f if '"loss"' in line]
    losses = [(e["loss"], e.get("loss_tokens")) for e in log]
    merged = os.path.join(work, "cria-merged")
    cria("merge", "-m", model_dir, "-a", out, "-o", merged)
    logits_file = os.path.join(work, "cria-logits.safetensors")
    cria("logits", "-m", merged, "--ids", ",".join(map(str, probe)), "--backend", args.backend, "-o", logits_file)
    return losses, hf_models.read_safetensors(logits_file)["logits"]


def train_loop(params, loss_of, steps_batches):
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    n = len(steps_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (n - s) / n))
    losses = []
    for ids, labels in steps_batches:
        loss = loss_of(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append((loss.item(), int((labels != -100).sum())))
    return losses


def torch_arm(model_dir, init, steps_batches, probe):
    """tests/reference/hf_models.py's forward with the LoRA branch, on the CPU."""
    cfg, w = hf_models.load_dir(model_dir)
    lora = {m: (a.clone().requires_grad_(), b.clone().requires_grad_()) for m, (a, b) in init.items()}
    s = ALPHA / R

    def adapter(name, h, y):
        if name not in lora:
            return y
        a, b = lora[name]
        return y + ((h @ a.T) @ b.T) * s

    def loss_of(ids, labels):
        total = sum(F.cross_entropy(hf_models.llama_forward(cfg, w, row, adapter), lab, ignore_index=-100,
                                    reduction="sum") for row, lab in zip(ids, labels))
        return total / int((labels != -100).sum())
    params = [t for ab in lora.values() for t in ab]
    losses = train_loop(params, loss_of, steps_batches)
    with torch.no_grad():
        for m, (a, b) in lora.items():
            w[m + ".weight"] = w[m + ".weight"] + s * (b @ a)
        logits = hf_models.llama_forward(cfg, w, torch.tensor(probe))
    return losses, logits, "torch %s (tests/reference/hf_models.py, cpu)" % torch.__version__


def peft_arm(model_dir, init_dir, init, steps_batches, probe):
    """transformers + peft, on the GPU when PyTorch sees one."""
    import peft
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # transformers 4.56 renamed torch_dtype to dtype
    version = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    kw = {"dtype" if version >= (4, 56) else "torch_dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **kw).to(dev)
    model = PeftModel.from_pretrained(model, init_dir, is_trainable=True)
    model.eval()  # no dropout anywhere (lora_dropout is 0 too)
    # PEFT only warns about keys it did not load: check that it holds INIT
    seen = 0
    for name, p in model.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            module = name.split("base_model.model.", 1)[1].split(".lora_")[0]
            a, b = init[module]
            want = a if ".lora_A." in name else b
            if not p.requires_grad or not torch.equal(p.detach().cpu(), want):
                raise RuntimeError("peft did not load the init's %s" % name)
            seen += 1
    if seen != 2 * len(init):
        raise RuntimeError("peft holds %d LoRA tensors, the init %d" % (seen, 2 * len(init)))
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_of(ids, labels):
        logits = model(input_ids=ids.to(dev)).logits
        lab = labels.to(dev)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1), ignore_index=-100,
                               reduction="sum") / int((lab != -100).sum())
    losses = train_loop(params, loss_of, steps_batches)
    merged = model.merge_and_unload()
    with torch.no_grad():
        logits = merged(input_ids=torch.tensor([probe], device=dev)).logits[0].float().cpu()
    return losses, logits, "torch %s, transformers %s, peft %s on %s" % (
        torch.__version__, transformers.__version__, peft.__version__,
        torch.cuda.get_device_name() if dev == "cuda" else "cpu")


def main():
    ap = argparse.ArgumentParser(description="cria's LoRA training against PEFT's")
    ap.add_argument("--peer", choices=("peft", "torch"), default="peft")
    ap.add_argument("--backend", default="cuda", help="cria's --backend (default cuda)")
    ap.add_argument("--shape", choices=("qwen2.5-0.5b", "qwen2.5-0.5b-2l", "small"), default="qwen2.5-0.5b")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every step's losses")
    args = ap.parse_args()
    missing = [m for m in ("transformers", "peft") if importlib.util.find_spec(m) is None]
    if args.peer == "peft" and missing:
        print("peft: skipped: python3 (%s) has no %s" % (sys.executable, " and no ".join(missing)))
        sys.exit(77)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="peft-parity-") as work:
        try:
            model_dir = make_model(args.shape, work)
            init_dir = os.path.join(work, "init")
            init = write_init(model_dir, init_dir)
            data, fmt, examples = make_data(model_dir, work)
            steps_batches = batches(examples, args.steps)
            probe = examples[0][0] + examples[1][0]
            closs, clogits = cria_arm(args, model_dir, init_dir, data, fmt, work, probe)
            if args.peer == "peft":
                ploss, plogits, peer = peft_arm(model_dir, init_dir, init, steps_batches, probe)
            else:
                ploss, plogits, peer = torch_arm(model_dir, init, steps_batches, probe)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            print("peft: FAILED: %s" % e)
            sys.exit(1)
    problems = []
    if len(closs) != len(ploss):
        problems.append("cria logged %d steps, the peer took %d" % (len(closs), len(ploss)))
    worst, at = 0.0, 0
    for s, ((cl, cn), (pl, pn)) in enumerate(zip(closs, ploss)):
        rel = abs(cl - pl) / abs(pl)
        if args.verbose:
            print("step %2d: cria %.7f  peer %.7f  rel %.2e  (%s tokens)" % (s + 1, cl, pl, rel, pn))
        if cn is not None and cn != pn:
            problems.append("step %d: cria learned %d tokens, the peer %d" % (s + 1, cn, pn))
        if not rel <= worst:
            worst, at = rel, s + 1
    if not worst <= TOLERANCE:
        problems.append("step %d's loss differs by %.3g relative" % (at, worst))
    lrel = float((clogits - plogits).abs().max() / plogits.abs().max()) if clogits.shape == plogits.shape else \
        float("inf")
    if not lrel <= TOLERANCE:
        problems.append("merged logits %s differ by %.3g relative" % (tuple(clogits.shape), lrel))
    summary = ("%d steps of LoRA r=%d on all linear layers of the %s shape, cria --backend %s against %s: losses "
               "within %.2g relative (worst step %d), merged logits within %.2g (%d x %d); %.0f s"
               % (len(closs), R, args.shape, args.backend, peer, worst, at, lrel, *plogits.shape,
                  time.monotonic() - t0))
    print("peft: %s: %s" % ("FAILED" if problems else "ok", "; ".join(problems) + "; " + summary if problems
                             else summary))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
