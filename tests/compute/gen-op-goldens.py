#!/usr/bin/python3
"""Writes tests/compute/op-goldens.json: forward results of cria's ops computed
by PyTorch (Debian's python3-torch) in float64 from float32 inputs, written
from the published definitions (Hugging Face's LlamaRMSNorm, rotate_half RoPE,
repeat_kv GQA, GPT-2's tanh GELU), plus PyTorch's own bf16/f16 rounding.
test-ops reads the file; the test suite does not need Python.

    /usr/bin/python3 tests/compute/gen-op-goldens.py > tests/compute/op-goldens.json
"""
import json
import struct
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)


def r(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def t(x):
    return {"shape": list(x.shape), "data": [float(v) for v in x.detach().double().flatten().tolist()]}


def ti(x):
    return {"shape": list(x.shape), "data": [int(v) for v in x.flatten().tolist()]}


cases = {}

x, w, b = r(2, 3, 8), r(8), r(8)
cases["layernorm"] = {"x": t(x), "w": t(w), "b": t(b), "eps": 1e-5,
                      "out": t(F.layer_norm(x.double(), (8,), w.double(), b.double(), 1e-5))}

x, w = r(3, 8), r(8)
xd = x.double()
cases["rmsnorm"] = {"x": t(x), "w": t(w), "eps": 1e-6,
                    "out": t(xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double())}

# RoPE as in transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb
B, T, Hh, D = 1, 4, 2, 8
x = r(B, T, Hh, D)
pos = torch.tensor([[3, 4, 5, 1000]], dtype=torch.int64)
inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
freqs = pos[..., None].float() * inv_freq[None, None, :]  # f32, as HF computes them
emb = torch.cat((freqs, freqs), dim=-1).double()
cos, sin = emb.cos()[:, :, None, :], emb.sin()[:, :, None, :]


def rotate_half(v):
    return torch.cat((-v[..., D // 2:], v[..., :D // 2]), dim=-1)


xd = x.double()
cases["rope"] = {"x": t(x), "positions": ti(pos), "inv_freq": t(inv_freq),
                 "out": t(xd * cos + rotate_half(xd) * sin)}

# causal attention, GQA (4 query heads, 2 KV heads), packed segments
B, T, Hq, Hkv, D = 2, 5, 4, 2, 8
q, k, v = r(B, T, Hq, D), r(B, T, Hkv, D), r(B, T, Hkv, D)
seg = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.int64)
scale = D ** -0.5
qd = q.double().transpose(1, 2)
kd = k.double().transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
vd = v.double().transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
causal = torch.ones(T, T, dtype=torch.bool).tril()
same = seg[:, :, None] == seg[:, None, :]
mask = (causal[None] & same)[:, None]
s = (qd @ kd.transpose(-1, -2)) * scale
s = s.masked_fill(~mask, float("-inf"))
o = (s.softmax(-1) @ vd).transpose(1, 2)
cases["attention"] = {"q": t(q), "k": t(k), "v": t(v), "segments": ti(seg), "scale": scale, "out": t(o)}

x = r(4, 6) * 3
cases["gelu"] = {"x": t(x), "out": t(F.gelu(x.double(), approximate="tanh"))}
cases["silu"] = {"x": t(x), "out": t(F.silu(x.double()))}
cases["softmax"] = {"x": t(x), "out": t(x.double().softmax(-1))}

N, Dm, V = 6, 16, 50
h, w = r(N, Dm), r(V, Dm)
labels = torch.tensor([3, -100, 49, 0, 17, -100], dtype=torch.int64)
logits = h.double() @ w.double().T
loss = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
lse = torch.logsumexp(logits, -1) * (labels != -100)
cases["lm_head_ce"] = {"h": t(h), "w": t(w), "labels": ti(labels),
                       "out": t(torch.cat([loss.reshape(1), torch.tensor([4.0], dtype=torch.float64), lse]))}


def bits16(x, dtype):
    return x.to(dtype).view(torch.int16).to(torch.int32) & 0xFFFF


# bf16 and f16 weights, f32 activations and accumulation
x = r(3, 40)
for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
    w = r(20, 40)
    wq = w.to(dt)
    cases["matmul_" + name] = {"x": t(x), "w_bits": ti(bits16(w, dt)),
                               "out": t(x.double() @ wq.double().T)}

# rounding of f32 to bf16 and f16: ties, subnormals, overflow
vals = [0.0, -0.0, 1.0, -2.5, 3.14159265, 65504.0, 65519.0, 65520.0, 1e-8, 6e-8, 3e-5, 6.1e-5, 1e30, -1e-40]
for base in (1.0, 1.5, -3.0, 1000.0):
    u = struct.unpack("<I", struct.pack("<f", base))[0]
    for off in (0x8000, 0x18000, 0x7FFF, 0x1000, 0x3000, 0x2000):
        vals.append(struct.unpack("<f", struct.pack("<I", u + off))[0])
vt = torch.tensor(vals, dtype=torch.float32)
cases["convert"] = {"x": t(vt), "bf16": ti(bits16(vt, torch.bfloat16)), "f16": ti(bits16(vt, torch.float16))}

json.dump({"generator": "tests/compute/gen-op-goldens.py", "torch": torch.__version__, "cases": cases},
          sys.stdout, indent=None, separators=(",", ":"))
print()
