#!/usr/bin/python3
"""How far bf16 activations alone move the tiny checkpoints' logits and a
LoRA step's loss and adapter gradients from f32, in PyTorch (no cria code):
the reason for the whole-model tolerances of test-cuda-parity's bf16-act
group, which compares the cuda backend with activations=bf16 against the
cpu backend's f32.

    /usr/bin/python3 tests/cuda/bf16_act_reference.py

The emulation, at the aten level (TorchDispatchMode), is the design of
activations=bf16: in forward every f32 op output is rounded to bf16; the
operands of every product (mm, bmm, addmm), forward and backward, are
rounded to bf16 and summed in f32; gradients are not rounded. The
reference architectures are tests/reference/hf_models.py's, the inputs the
parity program's (logits of ids 1 17 200 3 5 42 7 99 11) and
tests/train/model_grads_reference.py's batch and LoRA init (r 4, alpha 8),
LoRA applied as x W^T + s (x A^T) B^T as cria does. Printed on
2026-12-07 (torch 1.13): logits up to 2.1e-2 relative (tiny-qwen3-tied;
this emulation also rounds inside the composite ops, norms and softmax,
where cria's kernels do not), adapter gradients up to 3.2e-2 (worst
tensor; 3.1e-2 in a QLoRA step, the projections through NF4 with
tests/compute/nf4_reference.py), losses within 5e-3.
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "compute"))
import hf_models  # noqa: E402
import nf4_reference  # noqa: E402

aten = torch.ops.aten
PRODUCTS = {aten.mm.default: (0, 1), aten.bmm.default: (0, 1), aten.addmm.default: (1, 2)}
R, ALPHA = 4, 8.0


def bf16(t):
    return t.bfloat16().float() if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t


class Bf16Activations(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.forward = True  # outputs are rounded in forward only

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS:
            args = tuple(bf16(a) if i in PRODUCTS[func] else a for i, a in enumerate(args))
        out = func(*args, **(kwargs or {}))
        return bf16(out) if self.forward else out


def load(name, nf4=False):
    """nf4: the layers' projections quantized to NF4 (double quantized) and
    dequantized, QLoRA's base"""
    cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", name))
    for k, v in w.items():
        if nf4 and v.dim() == 2 and ".layers." in k and k.endswith("proj.weight"):
            x = v.numpy().reshape(-1)
            w[k] = torch.from_numpy(nf4_reference.dequantize(x.size, *nf4_reference.quantize(x))).reshape(v.shape)
    return cfg, w


def rel(a, b):
    return ((b - a).abs().max() / a.abs().max()).item()


def logits(name, emulate):
    cfg, w = load(name)
    ids = [i % cfg["vocab_size"] for i in (1, 17, 200, 3, 5, 42, 7, 99, 11)]
    if not emulate:
        return hf_models.forward(cfg, w, ids)
    with Bf16Activations():
        return hf_models.forward(cfg, w, ids)


def lora_step(name, targets, emulate, nf4=False):
    cfg, w = load(name, nf4)
    gen = torch.Generator().manual_seed(4321)
    vocab = cfg["vocab_size"]
    ids = torch.randint(0, vocab, (2, 8), generator=gen)
    labels = torch.randint(0, vocab, (2, 8), generator=gen)
    labels[0, :3] = -100
    labels[1, :1] = -100
    labels[1, 7] = -100
    gpt2 = cfg["architectures"][0] == "GPT2LMHeadModel"
    lora = {}
    for k, v in w.items():
        mod = k[: -len(".weight")]
        if v.dim() != 2 or not k.endswith(".weight") or not any(mod == t or mod.endswith("." + t) for t in targets):
            continue
        n_out, n_in = (v.shape[1], v.shape[0]) if gpt2 else v.shape
        a = ((torch.rand(R, n_in, generator=gen) * 2 - 1) * 0.3).requires_grad_(True)
        b = ((torch.rand(n_out, R, generator=gen) * 2 - 1) * 0.3).requires_grad_(True)
        lora[mod] = (a, b)

    def adapter(mod, h, y):
        if mod not in lora:
            return y
        a, b = lora[mod]
        return y + (ALPHA / R) * ((h @ a.T) @ b.T)

    fwd = hf_models.gpt2_forward if gpt2 else hf_models.llama_forward
    mode = Bf16Activations() if emulate else None
    if mode:
        mode.__enter__()
    loss = sum(F.cross_entropy(fwd(cfg, w, ids[i].tolist(), adapter=adapter), labels[i], ignore_index=-100,
                               reduction="sum") for i in range(2))
    if mode:
        mode.forward = False
    loss.backward()
    if mode:
        mode.__exit__(None, None, None)
    return loss.item(), [t.grad for ab in lora.values() for t in ab]


def main():
    models = sorted(n for n in os.listdir(os.path.join(HERE, "..", "models")) if n.startswith("tiny-"))
    for name in models:
        print("%-20s logits: %.3g relative" % (name, rel(logits(name, False), logits(name, True))))
    for name, targets in (("tiny-llama", ("q_proj", "v_proj", "down_proj")), ("tiny-gpt2", ("attn.c_attn", "c_proj"))):
        la, ga = lora_step(name, targets, False)
        lb, gb = lora_step(name, targets, True)
        print("%-20s LoRA step: loss %.3g relative, adapter gradients %.3g (worst of %d)"
              % (name, abs(lb - la) / abs(la), max(rel(a, b) for a, b in zip(ga, gb)), len(ga)))
    targets = ("q_proj", "v_proj", "down_proj")
    la, ga = lora_step("tiny-llama", targets, False, True)
    lb, gb = lora_step("tiny-llama", targets, True, True)
    print("%-20s QLoRA step: loss %.3g relative, adapter gradients %.3g (worst of %d)"
          % ("tiny-llama", abs(lb - la) / abs(la), max(rel(a, b) for a, b in zip(ga, gb)), len(ga)))


if __name__ == "__main__":
    main()
