#!/usr/bin/python3
"""Golden values for cria's AdamW, schedules and gradient clipping, from PyTorch.

Run with Debian's python3-torch:  /usr/bin/python3 tests/train/gen-optim-golden.py > tests/train/optim-golden.json
The schedules are written from transformers' get_{constant,linear,cosine}_schedule_with_warmup
formulas and run through torch.optim.lr_scheduler.LambdaLR, as Trainer does.
"""
import json
import math

import torch

torch.manual_seed(1234)


def constant(warmup, total):
    return lambda s: s / max(1, warmup) if s < warmup else 1.0


def linear(warmup, total):
    return lambda s: s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))


def cosine(warmup, total):
    def f(s):
        if s < warmup:
            return s / max(1, warmup)
        progress = (s - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    return f


SCHEDULES = {"constant": constant, "linear": linear, "cosine": cosine}


def case(name, schedule, lr, wd, warmup, total, steps, shapes, decay):
    params = [torch.randn(*s, dtype=torch.float32) for s in shapes]
    start = [p.clone() for p in params]
    groups = [
        {"params": [p for p, d in zip(params, decay) if d], "weight_decay": wd},
        {"params": [p for p, d in zip(params, decay) if not d], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, SCHEDULES[schedule](warmup, total))
    grads, lrs = [], []
    for _ in range(steps):
        g = [torch.randn(*s, dtype=torch.float32) for s in shapes]
        grads.append([x.flatten().tolist() for x in g])
        lrs.append(opt.param_groups[0]["lr"])
        for p, x in zip(params, g):
            p.grad = x.clone()
        opt.step()
        sched.step()
    state = [opt.state[p] for p in params]
    return {
        "name": name, "schedule": schedule, "lr": lr, "weight_decay": wd, "warmup": warmup, "total": total,
        "decay": decay, "sizes": [int(p.numel()) for p in params],
        "start": [p.flatten().tolist() for p in start], "grads": grads, "lrs": lrs,
        "final": [p.flatten().tolist() for p in params],
        "exp_avg": [s["exp_avg"].flatten().tolist() for s in state],
        "exp_avg_sq": [s["exp_avg_sq"].flatten().tolist() for s in state],
    }


def clip_case():
    g = [torch.randn(7, 5) * 3, torch.randn(11) * 3]
    params = [torch.zeros_like(x, requires_grad=True) for x in g]
    for p, x in zip(params, g):
        p.grad = x.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    return {"grads": [x.flatten().tolist() for x in g], "max_norm": 1.0, "norm": float(norm),
            "clipped": [p.grad.flatten().tolist() for p in params]}


def schedule_table():
    out = []
    for name in SCHEDULES:
        for warmup, total in ((0, 10), (3, 10), (4, 9), (10, 10)):
            f = SCHEDULES[name](warmup, total)
            out.append({"schedule": name, "warmup": warmup, "total": total,
                        "lrs": [2e-4 * f(s) for s in range(total + 2)]})
    return out


golden = {
    "adamw": [
        case("linear-warmup", "linear", 1e-3, 0.01, 2, 6, 6, [(4, 3), (5,), (2, 2, 2)], [True, False, True]),
        case("cosine", "cosine", 3e-3, 0.1, 1, 8, 8, [(16, 8), (8,)], [True, False]),
        case("constant", "constant", 5e-4, 0.0, 0, 5, 5, [(33,)], [True]),
    ],
    "clip": clip_case(),
    "schedules": schedule_table(),
}
print(json.dumps(golden))
