#!/usr/bin/python3
"""A tiny random OLMo 2 checkpoint (Olmo2ForCausalLM) in Hugging Face's
layout, for the out-of-tree model example (sdk/example/model), and its
logits and greedy continuation from a forward pass in plain PyTorch written
from the published architecture (transformers is not used):

  - no norm before attention or the feed-forward block: an RMSNorm after
    each, inside the residual (post_attention_layernorm,
    post_feedforward_layernorm);
  - q_norm and k_norm: RMSNorm over the whole q and k projections (all heads
    at once, weights of num_heads * head_dim and num_kv_heads * head_dim),
    before the split into heads and the rotation;
  - head_dim = hidden_size / num_attention_heads; SwiGLU; untied head.

    /usr/bin/python3 tests/sdk/olmo2_reference.py

writes tests/sdk/tiny-olmo2/ (config.json, generation_config.json,
model.safetensors, a byte-level tokenizer) and
tests/sdk/tiny-olmo2-logits.safetensors (input_ids I64 [n], logits F32
[n, vocab], greedy_ids I64 [8]). Norm weights are drawn around 1, so a norm
applied in the wrong place changes the logits. Deterministic (seed 2026).
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import hf_models  # noqa: E402
from make_test_models import byte_tokenizer, write_safetensors  # noqa: E402

CONFIG = {"architectures": ["Olmo2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
          "bos_token_id": None, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 32,
          "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
          "model_type": "olmo2", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
          "pad_token_id": 1, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000.0,
          "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.51.0",
          "use_cache": True, "vocab_size": 256}
IDS = [65, 17, 200, 45, 3, 99, 128, 7, 255, 0, 64, 33]


def weights(c, gen):
    d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, ff, v = d // nh, c["intermediate_size"], c["vocab_size"]

    def rnd(*shape, std=0.3):
        return torch.randn(*shape, generator=gen) * std

    def norm(n):
        return 1 + 0.2 * torch.randn(n, generator=gen)
    w = {"model.embed_tokens.weight": rnd(v, d, std=1.0), "model.norm.weight": norm(d),
         "lm_head.weight": rnd(v, d)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "self_attn.q_proj.weight"] = rnd(nh * hd, d)
        w[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, d)
        w[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, d)
        w[p + "self_attn.o_proj.weight"] = rnd(d, nh * hd)
        w[p + "self_attn.q_norm.weight"] = norm(nh * hd)
        w[p + "self_attn.k_norm.weight"] = norm(nkv * hd)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = rnd(ff, d)
        w[p + "mlp.up_proj.weight"] = rnd(ff, d)
        w[p + "mlp.down_proj.weight"] = rnd(d, ff)
        w[p + "post_feedforward_layernorm.weight"] = norm(d)
    return w


def rms_norm(x, wt, eps):
    return wt * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def forward(c, w, ids):
    d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps, T = d // nh, c["rms_norm_eps"], len(ids)
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv).float()
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        q = rms_norm(x @ w[p + "self_attn.q_proj.weight"].T, w[p + "self_attn.q_norm.weight"], eps)
        k = rms_norm(x @ w[p + "self_attn.k_proj.weight"].T, w[p + "self_attn.k_norm.weight"], eps)
        v = x @ w[p + "self_attn.v_proj.weight"].T
        q = q.reshape(T, nh, hd).transpose(0, 1)
        k = k.reshape(T, nkv, hd).transpose(0, 1)
        v = v.reshape(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        o = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, nh * hd)
        x = x + rms_norm(o @ w[p + "self_attn.o_proj.weight"].T, w[p + "post_attention_layernorm.weight"], eps)
        h = F.silu(x @ w[p + "mlp.gate_proj.weight"].T) * (x @ w[p + "mlp.up_proj.weight"].T)
        x = x + rms_norm(h @ w[p + "mlp.down_proj.weight"].T, w[p + "post_feedforward_layernorm.weight"], eps)
    x = rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T


def main():
    gen = torch.Generator().manual_seed(2026)
    d = os.path.join(HERE, "tiny-olmo2")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": CONFIG["eos_token_id"], "pad_token_id": 1, "do_sample": False}, f, indent=2)
        f.write("\n")
    w = weights(CONFIG, gen)
    write_safetensors(os.path.join(d, "model.safetensors"), {n: w[n].contiguous() for n in sorted(w)},
                      {"format": "pt"})
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 128, "bos_token": None,
                   "eos_token": None, "clean_up_tokenization_spaces": False}, f, indent=2)
        f.write("\n")
    # The golden comes from reading the directory back, as any reader would.
    cfg, w2 = hf_models.load_dir(d)
    with torch.no_grad():
        logits = forward(cfg, w2, IDS)
        ids, greedy = list(IDS), []
        for _ in range(8):
            nxt = int(forward(cfg, w2, ids)[-1].argmax())
            ids.append(nxt)
            greedy.append(nxt)
    write_safetensors(os.path.join(HERE, "tiny-olmo2-logits.safetensors"),
                      {"input_ids": torch.tensor(IDS, dtype=torch.int64), "logits": logits.contiguous(),
                       "greedy_ids": torch.tensor(greedy, dtype=torch.int64)},
                      {"reference": "tests/sdk/olmo2_reference.py", "model": "tests/sdk/tiny-olmo2"})
    print("greedy", greedy)


if __name__ == "__main__":
    main()
