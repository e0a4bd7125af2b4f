#!/usr/bin/python3
"""Golden gradients of one batch through the tiny checkpoints of tests/models,
for LoRA and for full fine-tuning, from PyTorch autograd over the reference
architectures of tests/reference/hf_models.py.

    /usr/bin/python3 tests/train/model_grads_reference.py [NAME...]

writes tests/train/grads-NAME.safetensors holding the batch (ids, labels:
I32 [2, 8]), LoRA's A [r, in] and B [out, r] of each targeted layer under
PEFT's keys, the summed cross-entropy (loss_lora, loss_full), the LoRA
gradients (grad_lora.KEY) and the full fine-tuning gradient of every weight
(grad_full.NAME, in Hugging Face's [out, in] layout: GPT-2's Conv1D
gradients are transposed back). LoRA is applied as W + s B A (W + s (B A)^T
for Conv1D), which is the same function as x W^T + s x A^T B^T without
dropout. r = 4, alpha = 8.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import hf_models  # noqa: E402
from make_test_models import write_safetensors  # noqa: E402

R, ALPHA = 4, 8.0
TARGETS = {"tiny-gpt2": ("attn.c_attn", "c_proj"), "tiny-llama": ("q_proj", "v_proj", "down_proj"),
           "tiny-qwen2": ("q_proj", "v_proj", "down_proj"), "tiny-qwen3": ("q_proj", "v_proj", "down_proj")}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def batch(gen, vocab):
    ids = torch.randint(0, vocab, (2, 8), generator=gen)
    labels = torch.randint(0, vocab, (2, 8), generator=gen)
    labels[0, :3] = -100
    labels[1, :1] = -100
    labels[1, 7] = -100
    return ids, labels


def loss_of(cfg, w, ids, labels):
    fwd = hf_models.gpt2_forward if cfg["architectures"][0] == "GPT2LMHeadModel" else hf_models.llama_forward
    total = 0.0
    for b in range(ids.shape[0]):
        logits = fwd(cfg, w, ids[b].tolist())
        total = total + F.cross_entropy(logits, labels[b], ignore_index=-100, reduction="sum")
    return total


def main():
    for name, targets in TARGETS.items():
        if sys.argv[1:] and name not in sys.argv[1:]:
            continue
        cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", name))
        gpt2 = cfg["architectures"][0] == "GPT2LMHeadModel"
        gen = torch.Generator().manual_seed(4321)
        ids, labels = batch(gen, cfg["vocab_size"])
        out = {"ids": ids.to(torch.int32), "labels": labels.to(torch.int32)}

        # LoRA on the frozen weights.
        lora, eff = {}, dict(w)
        for k, v in w.items():
            mod = k[: -len(".weight")]
            if v.dim() != 2 or not k.endswith(".weight") or not any(mod == t or mod.endswith("." + t) for t in targets):
                continue
            conv = gpt2 and k.endswith(CONV1D)
            n_out, n_in = (v.shape[1], v.shape[0]) if conv else v.shape
            a = ((torch.rand(R, n_in, generator=gen) * 2 - 1) * 0.3).requires_grad_(True)
            b = ((torch.rand(n_out, R, generator=gen) * 2 - 1) * 0.3).requires_grad_(True)
            key = "base_model.model." + mod
            lora[key + ".lora_A.weight"], lora[key + ".lora_B.weight"] = a, b
            delta = (ALPHA / R) * (b @ a)
            eff[k] = v + (delta.T if conv else delta)
        loss = loss_of(cfg, eff, ids, labels)
        loss.backward()
        out["loss_lora"] = loss.detach().reshape(1)
        for k, t in lora.items():
            out[k] = t.detach()
            out["grad_lora." + k] = t.grad
        # Full fine-tuning: every weight.
        full = {k: v.clone().requires_grad_(True) for k, v in w.items()}
        loss = loss_of(cfg, full, ids, labels)
        loss.backward()
        out["loss_full"] = loss.detach().reshape(1)
        for k, t in full.items():
            g = t.grad
            if gpt2 and k.endswith(CONV1D):
                g = g.T
            hf_name = k if not gpt2 or k.startswith("transformer.") or k.startswith("lm_head") else "transformer." + k
            out["grad_full." + hf_name] = g.contiguous()
        write_safetensors(os.path.join(HERE, "grads-" + name + ".safetensors"), out)


if __name__ == "__main__":
    main()
