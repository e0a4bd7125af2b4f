#!/usr/bin/python3
"""adalora_reference.py: AdaLoRA's rank allocation written from the paper
(Zhang et al. 2023) and PEFT's documented RankAllocator / AdaLoraModel
behaviour, in torch (float32 for the scores, as PEFT runs them; float64 and
autograd for the orthogonal regularizer and its gradient).

Three modules of different shapes train for 40 steps on a fixed sequence of
parameter updates and gradients drawn from splitmix64 (the C test draws the
same numbers), and each step records the budget, whether E was masked, the
triplet scores and threshold of a masking, the kept ranks, E after the step,
and the regularizer (with its gradients at a few steps).

Writes tests/train/adalora-golden.json. Run from the source tree:
    /usr/bin/python3 tests/train/adalora_reference.py
"""
import json
import os

import numpy as np
import torch

f32 = np.float32
MASK64 = (1 << 64) - 1

CONFIG = dict(target_r=3, tinit=5, tfinal=8, delta_t=3, total_step=40, beta1=0.85, beta2=0.85,
              orth_reg_weight=0.5)
# (out, in, r, gradient scale)
MODULES = [(16, 12, 6, 1.0), (8, 20, 6, 0.5), (24, 10, 6, 2.0)]
GRAD_STEPS = [1, 20, 40]


class SplitMix64:
    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def floats(self, n, scale):
        """n values (2u - 1) * scale in float32, u a 24-bit fraction."""
        out = np.empty(n, dtype=f32)
        for i in range(n):
            u = f32(self.next() >> 40) * f32(2.0 ** -24)
            out[i] = (f32(2) * u - f32(1)) * f32(scale)
        return out


def draw(rng, out, inp, r, scale_p, scale_e, scale_q):
    """P [out, r], E [r, 1], Q [r, in], drawn in that order."""
    p = torch.from_numpy(rng.floats(out * r, scale_p).reshape(out, r))
    e = torch.from_numpy(rng.floats(r, scale_e).reshape(r, 1))
    q = torch.from_numpy(rng.floats(r * inp, scale_q).reshape(r, inp))
    return {"lora_B": p, "lora_E": e, "lora_A": q}


def budget_schedule(step, init_bgt, target_bgt, tinit, tfinal, total, delta_t):
    """RankAllocator.budget_schedule: (budget, whether to mask) at `step`."""
    if step <= tinit:
        return init_bgt, False
    if step > total - tfinal:
        return target_bgt, True
    mul_coeff = 1 - (step - tinit) / (total - tfinal - tinit)
    return int((init_bgt - target_bgt) * (mul_coeff ** 3) + target_bgt), step % delta_t == 0


class Allocator:
    """PEFT's RankAllocator: EMA sensitivity and uncertainty, cubic budget, kthvalue masking."""

    def __init__(self, params):
        self.init_bgt = sum(p["lora_A"].shape[0] for p in params)
        self.target_bgt = CONFIG["target_r"] * len(params)
        self.reset()

    def reset(self):
        self.avg, self.unc = {}, {}

    def budget(self, step):
        return budget_schedule(step, self.init_bgt, self.target_bgt, CONFIG["tinit"], CONFIG["tfinal"],
                               CONFIG["total_step"], CONFIG["delta_t"])

    def update(self, params, grads):
        b1, b2 = CONFIG["beta1"], CONFIG["beta2"]
        for m, (p, g) in enumerate(zip(params, grads)):
            for name in ("lora_A", "lora_B", "lora_E"):
                key = (m, name)
                if key not in self.avg:
                    self.avg[key] = torch.zeros_like(p[name])
                    self.unc[key] = torch.zeros_like(p[name])
                ipt = (p[name] * g[name]).abs()
                self.avg[key] = b1 * self.avg[key] + (1 - b1) * ipt
                self.unc[key] = b2 * self.unc[key] + (1 - b2) * (ipt - self.avg[key]).abs()

    def score(self, key):
        return self.avg[key] * self.unc[key]

    def mask(self, params, budget):
        triplets = []
        for m in range(len(params)):
            a = torch.mean(self.score((m, "lora_A")), dim=1, keepdim=True)
            b = torch.mean(self.score((m, "lora_B")), dim=0, keepdim=False).view(-1, 1)
            ab = torch.cat([a, b], dim=1).sum(dim=1)
            triplets.append(self.score((m, "lora_E")).view(-1) + ab.view(-1))
        threshold = torch.kthvalue(torch.cat(triplets), k=self.init_bgt - budget)[0].item()
        kept = []
        with torch.no_grad():
            for m, p in enumerate(params):
                drop = triplets[m].view(-1, 1) <= threshold
                p["lora_E"].masked_fill_(drop, 0.0)
                kept.append((~drop).view(-1).tolist())
        return triplets, threshold, kept


def orth_reg(params):
    """PEFT's regularizer in float64: the mean over lora_A and lora_B of ||cov - I||_F."""
    total, count, leaves = 0, 0, []
    for p in params:
        a = p["lora_A"].double().requires_grad_(True)
        b = p["lora_B"].double().requires_grad_(True)
        leaves.append((a, b))
        for x, cov in ((a, a @ a.T), (b, b.T @ b)):
            total = total + torch.norm(cov - torch.eye(cov.shape[0], dtype=torch.float64), p="fro")
            count += 1
    reg = CONFIG["orth_reg_weight"] * total / count
    reg.backward()
    return reg.item(), [(b.grad.reshape(-1).tolist(), a.grad.reshape(-1).tolist()) for a, b in leaves]


def floats(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def main():
    rng = SplitMix64(2023)
    params = [draw(rng, o, i, r, 0.3, 1.0, 0.3) for o, i, r, _ in MODULES]
    alloc = Allocator(params)
    final = CONFIG["total_step"] - CONFIG["tfinal"]
    rank_pattern = None
    steps = []
    for step in range(1, CONFIG["total_step"] + 1):
        # the optimizer's update, then the forward pass's regularizer
        for p, (o, i, r, _) in zip(params, MODULES):
            d = draw(rng, o, i, r, 0.01, 0.01, 0.01)
            for name in p:
                p[name] += d[name]
        reg, reg_grads = orth_reg(params)
        grads = [draw(rng, o, i, r, s, s, s) for o, i, r, s in MODULES]
        record = {"step": step, "reg": reg, "masked": False}
        budget, mask_ind = alloc.budget(step)
        record["budget"] = budget
        # AdaLoraModel.update_and_allocate
        if step < final:
            alloc.update(params, grads)
            if mask_ind:
                triplets, threshold, rank_pattern = alloc.mask(params, budget)
                record.update(masked=True, threshold=threshold, scores=[floats(t) for t in triplets])
        elif step == final:
            triplets, threshold, rank_pattern = alloc.mask(params, budget)
            record.update(masked=True, threshold=threshold, scores=[floats(t) for t in triplets])
            alloc.reset()
        else:
            with torch.no_grad():
                for p, kept in zip(params, rank_pattern):
                    p["lora_E"].masked_fill_(~torch.tensor(kept).view(-1, 1), 0.0)
        if record["masked"]:
            record["kept"] = rank_pattern
        record["E"] = [floats(p["lora_E"]) for p in params]
        if step in GRAD_STEPS:
            record["reg_dP"] = [g[0] for g in reg_grads]
            record["reg_dQ"] = [g[1] for g in reg_grads]
        steps.append(record)
    golden = {
        "producer": "tests/train/adalora_reference.py",
        "seed": 2023,
        "config": CONFIG,
        "modules": [{"out": o, "in": i, "r": r, "grad_scale": s} for o, i, r, s in MODULES],
        "steps": steps,
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adalora-golden.json")
    with open(out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    kept = [sum(k) for k in rank_pattern]
    print("final ranks", kept, "maskings", sum(s["masked"] for s in steps), "wrote", out)


if __name__ == "__main__":
    main()
