#!/usr/bin/python3
"""The peer of cria's training bench: LoRA (or full fine-tuning) steps of a
GPT-2 or Qwen2 shaped model in plain PyTorch, on the CPU, with the same
shapes as cria's run: forward, summed cross-entropy over every position,
backward, AdamW. Prints one JSON line: tokens/s over the timed steps and
the peak resident memory of this process.

  torch_train.py MODELDIR BATCH SEQ STEPS (lora TARGETS R | full) THREADS
"""
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import hf_models  # noqa: E402

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(d) + causal mask) v over [B, H, T, D] (Debian's
    torch predates F.scaled_dot_product_attention)."""
    T = q.shape[-2]
    mask = torch.full((T, T), float("-inf")).triu(1)
    return ((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + mask).softmax(-1) @ v


def gpt2_batched(cfg, w, ids, proj):
    p = "transformer."
    d, nh = cfg["n_embd"], cfg["n_head"]
    B, T = ids.shape
    x = w[p + "wte.weight"][ids] + w[p + "wpe.weight"][:T]
    for layer in range(cfg["n_layer"]):
        q = f"{p}h.{layer}."
        h = F.layer_norm(x, (d,), w[q + "ln_1.weight"], w[q + "ln_1.bias"], 1e-5)
        qkv = proj(h, q + "attn.c_attn")
        qh, kh, vh = (t.reshape(B, T, nh, d // nh).transpose(1, 2) for t in qkv.split(d, dim=-1))
        o = causal_attention(qh, kh, vh).transpose(1, 2).reshape(B, T, d)
        x = x + proj(o, q + "attn.c_proj")
        h = F.layer_norm(x, (d,), w[q + "ln_2.weight"], w[q + "ln_2.bias"], 1e-5)
        h = hf_models.gelu_new(proj(h, q + "mlp.c_fc"))
        x = x + proj(h, q + "mlp.c_proj")
    x = F.layer_norm(x, (d,), w[p + "ln_f.weight"], w[p + "ln_f.bias"], 1e-5)
    return x @ w.get("lm_head.weight", w[p + "wte.weight"]).T


def qwen_batched(cfg, w, ids, proj):
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // nh
    B, T = ids.shape
    inv, _ = hf_models.rope_inv_freq(cfg, hd, T)
    emb = torch.cat([torch.outer(torch.arange(T, dtype=torch.float32), inv)] * 2, dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = w["model.embed_tokens.weight"][ids]

    lin = proj
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = hf_models.rms_norm(x, w[p + "input_layernorm.weight"], cfg["rms_norm_eps"])
        q = lin(h, p + "self_attn.q_proj").reshape(B, T, nh, hd).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj").reshape(B, T, nkv, hd).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").reshape(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + hf_models.rotate_half(q) * sin
        k = k * cos + hf_models.rotate_half(k) * sin
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        o = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, d)
        x = x + lin(o, p + "self_attn.o_proj")
        h = hf_models.rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg["rms_norm_eps"])
        x = x + lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = hf_models.rms_norm(x, w["model.norm.weight"], cfg["rms_norm_eps"])
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def main():
    d, B, T, steps, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(int(sys.argv[-1]))
    torch.manual_seed(0)
    cfg, w = hf_models.load_dir(d)
    gpt2 = cfg["architectures"][0] == "GPT2LMHeadModel"
    fwd = gpt2_batched if gpt2 else qwen_batched
    lora = {}
    if mode == "full":
        trainable = [v.requires_grad_(True) for v in w.values()]
    else:
        targets, r = sys.argv[6].split(","), int(sys.argv[7])
        for k, v in w.items():
            mod = k[: -len(".weight")]
            if v.dim() == 2 and k.endswith(".weight") and any(mod.endswith("." + t) for t in targets):
                conv = gpt2 and k.endswith(CONV1D)
                n_out, n_in = (v.shape[1], v.shape[0]) if conv else v.shape
                lora[mod] = ((torch.randn(r, n_in) * 0.01).requires_grad_(True),
                             torch.zeros(n_out, r).requires_grad_(True))
        trainable = [t for ab in lora.values() for t in ab]
    scale = 16.0 / int(sys.argv[7]) if mode != "full" else 1.0

    def proj(h, name):
        # Conv1D stores [in, out]; nn.Linear [out, in]. LoRA as PEFT runs it:
        # the base projection plus s (x A^T) B^T on the activations.
        wt = w[name + ".weight"]
        y = h @ wt if gpt2 else h @ wt.T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        if name in lora:
            a, b = lora[name]
            y = y + scale * ((h @ a.T) @ b.T)
        return y
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(0, cfg["vocab_size"], (B, T))
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        logits = fwd(cfg, w, ids, proj)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step > 0:  # the first step warms up allocators and threads
            times.append(time.perf_counter() - t0)
    tps = B * T * len(times) / sum(times)
    print(json.dumps({"tokens_per_s": tps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "blas": blas_library()}))


def blas_library():
    """The BLAS this process loaded: Debian's torch calls whatever
    libblas.so.3 points to, and the reference BLAS makes it 10-20x slower."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower()}
    if any("openblas" in lib for lib in libs):
        return "openblas"
    if any("mkl" in lib for lib in libs):
        return "mkl"
    if any("blis" in lib for lib in libs):
        return "blis"
    return "reference" if libs else "none"


if __name__ == "__main__":
    main()
