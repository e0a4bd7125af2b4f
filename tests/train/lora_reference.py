#!/usr/bin/python3
"""Golden gradients of LoRA and of full fine-tuning on a small hand-built
network, from PyTorch autograd.

Run with Debian's python3-torch:
    /usr/bin/python3 tests/train/lora_reference.py > tests/train/lora-golden.json

The network is what cria's test builds from core ops: a tied embedding E,
y1 = gelu_tanh(x W0^T + b0 + s x A0^T B0^T), y2 = y1 W1^T + s y1 A1^T B1^T,
and the summed cross-entropy of y2 E^T over labels that are not -100. The
LoRA case differentiates A0, B0, A1, B1 and b0 (bias=lora_only); the full
case every weight (E, W0, b0, W1) with no adapter. PEFT's scaling is
alpha / r (alpha / sqrt(r) with rsLoRA, the second LoRA case).
"""
import json
import math

import torch

torch.manual_seed(20261123)
V, D, R, B, T = 11, 8, 4, 2, 5
ALPHA = 8.0


def rand(*shape, scale=0.5):
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1) * scale


E, W0, b0, W1 = rand(V, D), rand(D, D), rand(D), rand(D, D)
A0, B0, A1, B1 = rand(R, D), rand(D, R), rand(R, D), rand(D, R)
ids = torch.randint(0, V, (B, T))
labels = torch.randint(0, V, (B, T))
labels[0, :2] = -100  # a masked prompt
labels[1, 0] = -100


def f32(t):
    return t.to(torch.float32).detach().requires_grad_(True)


def forward(p, lora, scale):
    x = p["E"][ids]
    h = x @ p["W0"].T + p["b0"]
    if lora:
        h = h + scale * (x @ p["A0"].T @ p["B0"].T)
    h = torch.nn.functional.gelu(h, approximate="tanh")
    y = h @ p["W1"].T
    if lora:
        y = y + scale * (h @ p["A1"].T @ p["B1"].T)
    logits = (y @ p["E"].T).reshape(B * T, V)
    return torch.nn.functional.cross_entropy(logits, labels.reshape(-1), ignore_index=-100, reduction="sum")


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


out = {"V": V, "D": D, "r": R, "B": B, "T": T, "alpha": ALPHA,
       "ids": ids.reshape(-1).tolist(), "labels": labels.reshape(-1).tolist()}
base = {"E": E, "W0": W0, "b0": b0, "W1": W1, "A0": A0, "B0": B0, "A1": A1, "B1": B1}
for k, v in base.items():
    out[k] = flat(v.to(torch.float32))

for case, rslora in (("lora", False), ("rslora", True)):
    p = {k: f32(v) for k, v in base.items()}
    scale = ALPHA / math.sqrt(R) if rslora else ALPHA / R
    loss = forward(p, True, scale)
    loss.backward()
    out[case] = {"loss": float(loss), **{"grad_" + k: flat(p[k].grad) for k in ("A0", "B0", "A1", "B1", "b0")}}

p = {k: f32(v) for k, v in base.items()}
loss = forward(p, False, 0.0)
loss.backward()
out["full"] = {"loss": float(loss), **{"grad_" + k: flat(p[k].grad) for k in ("E", "W0", "b0", "W1")}}

print(json.dumps(out))
