#!/usr/bin/python3
"""The quickstart's LoRA run in PyTorch, in f32 and with bf16 base weights
as cria's --base-dtype bf16 computes them, to tell what bf16 does to the
loss curve by itself from what cria's kernels do. bench/train/bf16-loss.sh
runs it beside cria's two runs and prints both gaps.

  bf16_loss_torch.py CRIA MODEL_DIR TRAIN_JSONL FORMAT_JSON STEPS [ARMS [LR]]

ARMS is a comma-separated list (empty: every arm); LR defaults to 1.2e-2.

The run follows bf16-loss.sh's: LoRA r=16 alpha=32 on every linear layer of
the blocks, AdamW (lr 1.2e-2, betas 0.9/0.999, eps 1e-8, no weight decay),
5 warm-up steps then cosine, gradient norm clipped to 1, batches of 8
records shuffled each epoch, the mean cross-entropy over the answer's
tokens and EOS. Tokens come from `cria tokenize` line by line, joined by
"\\n" (the model's byte-level pre-tokenizer splits every newline off, so the
ids are those of the whole text). The batches and the initial A are drawn by
torch, not cria's GRand, so a step's loss is not cria's; the gaps between
arms of the same script are what is compared. Arms:

  f32        the model as stored;
  bf16-w     every base weight rounded to bf16 (nearest even), f32 otherwise;
  bf16       as cria with --base-dtype bf16 (and bf16-dot): bf16 weights, and
             for each product with a frozen weight (the linear layers and the
             tied lm head) the activation rounded to bf16 forward and the
             output's gradient rounded to bf16 for dX = dY W backward; the
             LoRA branch, attention, norms and sums in f32.
  bf16-fwd   as bf16, without rounding dY (the gradient through W in f32).

Prints one JSON line per arm with its 20-step mean losses, then one with the
largest relative difference of each bf16 arm's 20-step means from f32's.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import hf_models  # noqa: E402

R, ALPHA, LR, BATCH, WARMUP, CLIP, SEED = 16, 32.0, 1.2e-2, 8, 5, 1.0, 1
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")


def rbf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


class Bf16Product(torch.autograd.Function):
    """x W^T with x rounded to bf16 (W already bf16 values); backward
    dx = round(dy) W when round_dy, else dy W."""

    @staticmethod
    def forward(ctx, x, w, round_dy):
        ctx.save_for_backward(w)
        ctx.round_dy = round_dy
        return rbf16(x) @ w.T

    @staticmethod
    def backward(ctx, dy):
        (w,) = ctx.saved_tensors
        return (rbf16(dy) if ctx.round_dy else dy) @ w, None, None


def tokenize(cria, model, lines):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("".join(line + "\n" for line in lines))
        path = f.name
    try:
        out = subprocess.run([cria, "tokenize", "-t", model, "-j", "1", path], check=True, capture_output=True,
                             text=True).stdout
    finally:
        os.unlink(path)
    return [json.loads(line) for line in out.splitlines()]


def examples(cria, model, data, fmt):
    with open(fmt) as f:
        fmt = json.load(f)
    with open(data) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    texts = []
    for r in recs:
        prompt = (fmt["prompt"] if r.get("input") else fmt["prompt_no_input"]).format(**{"input": "", **r})
        texts.append((prompt, fmt["response"].format(**r)))
    lines = sorted({line for p, a in texts for line in (p + "\n" + a).split("\n")})
    ids = dict(zip(lines, tokenize(cria, model, lines)))

    def enc(text):
        out = []
        for i, line in enumerate(text.split("\n")):
            if i:
                out.append(NEWLINE)
            out += ids[line]
        return out
    seqs = []
    for p, a in texts:
        pi, ai = enc(p), enc(a) + [EOS]
        seqs.append((pi + ai, len(pi)))
    return seqs


NEWLINE = EOS = None


def run(cfg, w0, seqs, steps, arm):
    torch.manual_seed(SEED)
    w = {k: (rbf16(v) if arm != "f32" else v.clone()) for k, v in w0.items()}
    lora = {}
    for l in range(cfg["num_hidden_layers"]):
        for lin in LINEARS:
            name = "model.layers.%d.%s" % (l, lin)
            out_f, in_f = w[name + ".weight"].shape
            lora[name] = ((torch.randn(R, in_f) * 0.02).requires_grad_(True), torch.zeros(out_f, R).requires_grad_(True))
    params = [t for ab in lora.values() for t in ab]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / WARMUP if s < WARMUP else 0.5 * (1 + math.cos(math.pi * (s - WARMUP) / (steps - WARMUP))))
    emulate = arm in ("bf16", "bf16-fwd")
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]

    def adapter(name, h, y):
        if emulate:  # recompute the frozen product as cria's bf16-dot does
            y = Bf16Product.apply(h, w[name + ".weight"], arm == "bf16")
            if name + ".bias" in w:
                y = y + w[name + ".bias"]
        a, b = lora[name]
        return y + (ALPHA / R) * ((h @ a.T) @ b.T)

    gen = torch.Generator().manual_seed(SEED)
    order, losses = [], []
    for step in range(steps):
        if len(order) < BATCH:
            order += torch.randperm(len(seqs), generator=gen).tolist()
        batch, order = order[:BATCH], order[BATCH:]
        total, count = 0.0, 0
        for i in batch:
            ids, n_prompt = seqs[i]
            ids_t = torch.tensor(ids)
            # the hidden states, then the lm head (tied) as its own product
            x = hf_models.llama_forward(cfg, {**w, "lm_head.weight": torch.eye(cfg["hidden_size"])}, ids_t, adapter)
            logits = Bf16Product.apply(x, head, arm == "bf16") if emulate else x @ head.T
            tgt = ids_t[1:].clone()
            tgt[: n_prompt - 1] = -100
            total = total + F.cross_entropy(logits[:-1], tgt, ignore_index=-100, reduction="sum")
            count += int((tgt != -100).sum())
        loss = total / count
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        sched.step()
        losses.append(float(loss))
    return losses


def means(r):
    return [sum(r[i:i + 20]) / len(r[i:i + 20]) for i in range(0, len(r), 20)]


def main():
    global NEWLINE, EOS, LR
    cria, model, data, fmt, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    torch.set_num_threads(1)
    cfg, w = hf_models.load_dir(model)
    EOS = cfg.get("eos_token_id", 0)
    with open(os.path.join(model, "tokenizer.json")) as f:
        NEWLINE = json.load(f)["model"]["vocab"]["\u010a"]  # byte-level "\n"
    seqs = examples(cria, model, data, fmt)
    curves = {}
    arms = sys.argv[6].split(",") if len(sys.argv) > 6 and sys.argv[6] else ["f32", "bf16-w", "bf16", "bf16-fwd"]
    if len(sys.argv) > 7:
        LR = float(sys.argv[7])
    for arm in arms:
        curves[arm] = run(cfg, w, seqs, steps, arm)
        print(json.dumps({"arm": arm, "means_20": [round(m, 5) for m in means(curves[arm])],
                          "last_loss": curves[arm][-1]}), flush=True)
    if "f32" in curves:
        ref = means(curves["f32"])
        print(json.dumps({"torch_max_rel_diff_20_step_means": {
            arm: round(max(abs(b - a) / a for a, b in zip(ref, means(curves[arm]))), 5)
            for arm in arms if arm != "f32"}}))


if __name__ == "__main__":
    main()
