#!/usr/bin/python3
"""adalora_train_reference.py: AdaLoRA fine-tuning of tests/models/tiny-llama
and tiny-gpt2 step by step in PyTorch, as PEFT trains it, for
test-adalora-train.c.

Written from PEFT's AdaLoRA (SVDLinear, AdaLoraModel, RankAllocator) for its
semantics only:
  - each targeted layer returns W x + b + (x @ (A * E).T @ B.T) * alpha / (ranknum + 1e-5)
    with A [r, in] (lora_A), E [r, 1] (lora_E), B [out, r] (lora_B), ranknum = init_r;
  - the loss is the mean cross-entropy plus
    orth_reg_weight * mean over lora_A, lora_B of ||A A^T - I||_F, ||B^T B - I||_F;
  - per step: backward, clip the gradient norm, AdamW step, then
    update_and_allocate(global_step): while global_step < total_step - tfinal the
    sensitivity |p * grad| is smoothed (exp_avg_ipt, beta1) and its uncertainty
    (exp_avg_unc, beta2) in that order, then E is masked to the cubic budget when
    the schedule says so; at total_step - tfinal E is masked to the final budget
    and the scores reset; after it E is masked with the rank pattern.
The models are tests/reference/hf_models.py's LlamaForCausalLM and
GPT2LMHeadModel (whose Conv1D weights are [in, out]: the adapter's A and B are
[r, in] and [out, r] all the same, as PEFT makes them).

cria draws the initial A and B (normal, std 0.02) from GLib's GRand seeded with
the run's seed as the array {seed & 0xffffffff, seed >> 32}: a Mersenne
Twister with MT's init_by_array, whose doubles are two 32-bit draws
((a 2^-32 + b) 2^-32), turned into normals by Box-Muller on two doubles. The
reference rebuilds those inputs with CPython's own MT19937 (random.setstate),
then trains with torch.optim.AdamW.

The text is trained on whole (cria's text format: its bytes, then the
model's EOS), one example per step. Writes
tests/train/adalora-train-golden-MODEL.json; run from anywhere:
    /usr/bin/python3 tests/train/adalora_train_reference.py
"""
import json
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import adalora_reference  # noqa: E402
import hf_models  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."
SEED = 42
STEPS = 16
LR, WEIGHT_DECAY, MAX_GRAD_NORM = 2e-2, 0.01, 1.0
ADA = dict(init_r=4, target_r=2, tinit=2, tfinal=4, deltaT=2, beta1=0.85, beta2=0.85, orth_reg_weight=0.5,
           alpha=8.0, total_step=STEPS)
# per model: the adapted layers, and every linear layer of a block in the
# order of the modules (LlamaDecoderLayer's, GPT2Block's), which is also the
# order of cria's parameter table and of PEFT's named_parameters
MODELS = {
    "tiny-llama": {"targets": ("q_proj", "v_proj", "down_proj"), "prefix": "model.layers.%d.",
                   "linears": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")},
    "tiny-gpt2": {"targets": ("c_attn", "mlp.c_proj"), "prefix": "transformer.h.%d.",
                  "linears": ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")},
}


def options(targets):
    """The command line test-adalora-train.c runs, besides --model/--data/--out."""
    return ["--format", "text", "--max-length", "64", "--batch-size", "1", "--max-steps", str(STEPS), "--lr", str(LR),
            "--weight-decay", str(WEIGHT_DECAY), "--max-grad-norm", str(MAX_GRAD_NORM), "--schedule", "linear",
            "--seed", str(SEED), "--threads", "1", "--save-every", "1", "--adapter",
            "adalora init-r=%d target-r=%d tinit=%d tfinal=%d deltaT=%d beta1=%g beta2=%g orth-reg-weight=%g "
            "alpha=%g target-modules=%s" % (ADA["init_r"], ADA["target_r"], ADA["tinit"], ADA["tfinal"],
                                             ADA["deltaT"], ADA["beta1"], ADA["beta2"], ADA["orth_reg_weight"],
                                             ADA["alpha"], ",".join(targets))]


class GRand:
    """GLib's g_rand_new_with_seed_array and g_rand_double on CPython's MT19937."""

    def __init__(self, key):
        n = 624
        mt = [0] * n
        mt[0] = 19650218
        for i in range(1, n):
            mt[i] = (1812433253 * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i) & 0xFFFFFFFF
        i, j = 1, 0
        for _ in range(max(n, len(key))):
            mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525)) + key[j] + j) & 0xFFFFFFFF
            i, j = i + 1, j + 1
            if i >= n:
                mt[0], i = mt[n - 1], 1
            if j >= len(key):
                j = 0
        for _ in range(n - 1):
            mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941)) - i) & 0xFFFFFFFF
            i += 1
            if i >= n:
                mt[0], i = mt[n - 1], 1
        mt[0] = 0x80000000
        self.r = random.Random()
        self.r.setstate((3, tuple(mt) + (n,), None))

    def double(self):
        while True:
            v = self.r.getrandbits(32) * 2.0 ** -32
            v = (v + self.r.getrandbits(32)) * 2.0 ** -32
            if v < 1.0:
                return v

    def gaussian(self):
        u1, u2 = max(self.double(), 1e-300), self.double()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def normal(self, shape, std):
        n = shape[0] * shape[1]
        vals = [float(torch.tensor(std, dtype=torch.float32) * torch.tensor(self.gaussian(), dtype=torch.float32))
                for _ in range(n)]
        return torch.tensor(vals, dtype=torch.float32).reshape(shape)


def make_adapter(cfg, w, spec):
    """A and B drawn from GRand layer by layer in the modules' order."""
    rand = GRand([SEED & 0xFFFFFFFF, SEED >> 32])
    gpt2 = cfg["architectures"][0] == "GPT2LMHeadModel"
    n_layers = cfg["n_layer" if gpt2 else "num_hidden_layers"]
    mods = {}
    for mod in ((spec["prefix"] % l) + lin for l in range(n_layers) for lin in spec["linears"]):
        if not mod.endswith(spec["targets"]):
            continue
        in_f, out_f = w[mod + ".weight"].shape if gpt2 else reversed(w[mod + ".weight"].shape)
        r = ADA["init_r"]
        a = rand.normal((r, in_f), 0.02)
        b = rand.normal((out_f, r), 0.02)
        mods[mod] = {"lora_A": a.requires_grad_(True), "lora_E": torch.zeros(r, 1, requires_grad=True),
                     "lora_B": b.requires_grad_(True)}
    return mods


def svd_linear(mods):
    scaling = ADA["alpha"] / (ADA["init_r"] + 1e-5)

    def hook(name, x, y):
        m = mods.get(name)
        if m is None:
            return y
        return y + (x @ (m["lora_A"] * m["lora_E"]).T @ m["lora_B"].T) * scaling
    return hook


def orth_reg(mods):
    total, count = 0, 0
    for m in mods.values():
        for key in ("lora_A", "lora_B"):
            p = m[key]
            cov = p @ p.T if key == "lora_A" else p.T @ p
            total = total + torch.norm(cov - torch.eye(*cov.size()), p="fro")
            count += 1
    return ADA["orth_reg_weight"] * total / count


class RankAllocator:
    def __init__(self, mods):
        self.init_bgt = sum(m["lora_E"].shape[0] for m in mods.values())
        self.target_bgt = ADA["target_r"] * len(mods)
        self.reset_ipt()

    def reset_ipt(self):
        self.avg, self.unc = {}, {}

    def budget_schedule(self, step):
        return adalora_reference.budget_schedule(step, self.init_bgt, self.target_bgt, ADA["tinit"], ADA["tfinal"],
                                                 ADA["total_step"], ADA["deltaT"])

    def update_ipt(self, mods):
        with torch.no_grad():
            for mod, m in mods.items():
                for key, p in m.items():
                    k = (mod, key)
                    if k not in self.avg:
                        self.avg[k], self.unc[k] = torch.zeros_like(p), torch.zeros_like(p)
                    ipt = (p * p.grad).abs()
                    self.avg[k] = ADA["beta1"] * self.avg[k] + (1 - ADA["beta1"]) * ipt
                    self.unc[k] = ADA["beta2"] * self.unc[k] + (1 - ADA["beta2"]) * (ipt - self.avg[k]).abs()

    def mask_to_budget(self, mods, budget):
        triplet = {}
        for mod in mods:
            score = {key: self.avg[(mod, key)] * self.unc[(mod, key)] for key in ("lora_A", "lora_E", "lora_B")}
            a = torch.mean(score["lora_A"], dim=1, keepdim=True)
            b = torch.mean(score["lora_B"], dim=0, keepdim=False).view(-1, 1)
            triplet[mod] = score["lora_E"].view(-1) + torch.cat([a, b], dim=1).sum(dim=1)
        scores = torch.cat(list(triplet.values()))
        k = self.init_bgt - budget
        threshold = torch.kthvalue(scores, k=k)[0].item()
        # how far the nearest score lies from the threshold, relative: a
        # margin at rounding level would make the comparison with cria fragile
        others = scores[scores != threshold]
        margin = float((others - threshold).abs().min() / abs(threshold)) if len(others) else math.inf
        pattern = {}
        with torch.no_grad():
            for mod, m in mods.items():
                drop = triplet[mod].view(-1, 1) <= threshold
                m["lora_E"].masked_fill_(drop, 0.0)
                pattern[mod] = (~drop).view(-1).tolist()
        return pattern, threshold, margin

    def mask_using_rank_pattern(self, mods, pattern):
        with torch.no_grad():
            for mod, m in mods.items():
                m["lora_E"].masked_fill_(~torch.tensor(pattern[mod]).view(-1, 1), 0.0)


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def train(name, spec):
    cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", name))
    fwd = hf_models.gpt2_forward if cfg["architectures"][0] == "GPT2LMHeadModel" else hf_models.llama_forward
    ids = list(TEXT.encode()) + [cfg["eos_token_id"]]
    labels = torch.tensor(ids[1:])
    mods = make_adapter(cfg, w, spec)
    params = [p for m in mods.values() for p in m.values()]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY)
    alloc = RankAllocator(mods)
    final = ADA["total_step"] - ADA["tfinal"]
    pattern, steps, min_margin = None, [], math.inf
    with torch.no_grad():
        base_ce = float(F.cross_entropy(fwd(cfg, w, ids)[:-1], labels))
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = LR * (STEPS - step) / STEPS  # linear schedule, no warmup
        logits = fwd(cfg, w, ids, svd_linear(mods))[:-1]
        ce = F.cross_entropy(logits, labels)
        reg = orth_reg(mods)
        loss = ce + reg
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        opt.step()
        record = {"step": step + 1, "loss": float(loss), "ce": float(ce), "reg": float(reg)}
        # AdaLoraModel.update_and_allocate(step)
        budget, mask_ind = alloc.budget_schedule(step)
        if step < final:
            alloc.update_ipt(mods)
            if mask_ind:
                pattern, record["threshold"], margin = alloc.mask_to_budget(mods, budget)
                min_margin = min(min_margin, margin)
                record["kept"] = [pattern[mod] for mod in mods]
        elif step == final:
            pattern, record["threshold"], margin = alloc.mask_to_budget(mods, budget)
            min_margin = min(min_margin, margin)
            record["kept"] = [pattern[mod] for mod in mods]
            alloc.reset_ipt()
        else:
            alloc.mask_using_rank_pattern(mods, pattern)
        record["budget"] = budget
        record["E"] = [floats(m["lora_E"]) for m in mods.values()]
        steps.append(record)
    golden = {
        "producer": "tests/train/adalora_train_reference.py",
        "model": name,
        "text": TEXT,
        "options": options(spec["targets"]),
        "base_ce": base_ce,
        "min_margin": min_margin,
        "modules": list(mods),
        "steps": steps,
        "rank_pattern": [pattern[mod] for mod in mods],
        "final": [{key: floats(m[key]) for key in ("lora_A", "lora_E", "lora_B")} for m in mods.values()],
    }
    out = os.path.join(HERE, "adalora-train-golden-%s.json" % name)
    with open(out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("%s: loss %.6f -> %.6f (base ce %.6f), ranks kept %s, min margin %.3g; wrote %s" % (
        name, steps[0]["loss"], steps[-1]["loss"], base_ce, [sum(p) for p in golden["rank_pattern"]], min_margin,
        out))


def main():
    for name, spec in MODELS.items():
        train(name, spec)


if __name__ == "__main__":
    main()
