#!/usr/bin/python3
"""The PyTorch peer of bench/model/bench-model.sh: prefill and greedy decode
with a KV cache for GPT-2 and LLaMA/Qwen2 directories, written on top of the
reference in tests/reference/hf_models.py (same weights, float32).

  torch_lm.py DIR THREADS PROMPT_TOKENS NEW_TOKENS
prints one JSON line: prefill_tokens_per_second, decode_tokens_per_second.
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import hf_models as H  # noqa: E402


class Lm:
    def __init__(self, d):
        self.cfg, self.w = H.load_dir(d)
        self.gpt2 = self.cfg["architectures"][0] == "GPT2LMHeadModel"
        c = self.cfg
        if self.gpt2:
            self.p = "transformer." if "transformer.wte.weight" in self.w else ""
            self.L, self.nh = c["n_layer"], c["n_head"]
            self.d = c["n_embd"]
            self.nkv, self.hd = self.nh, self.d // self.nh
        else:
            self.L, self.nh, self.d = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"]
            self.nkv = c.get("num_key_value_heads") or self.nh
            self.hd = c.get("head_dim") or self.d // self.nh
            self.inv, _ = H.rope_inv_freq(c, self.hd, 0)
            # nn.Linear layout, transposed once so that the loop does x @ W
            for k in list(self.w):
                if k.endswith("proj.weight"):
                    self.w[k] = self.w[k].t().contiguous()
        self.head = self.w.get("lm_head.weight", self.w.get("model.embed_tokens.weight", self.w.get(
            getattr(self, "p", "") + "wte.weight"))).t().contiguous()

    def attend(self, q, k, v, cache, l):
        if cache[l] is not None:
            k = torch.cat((cache[l][0], k), dim=1)
            v = torch.cat((cache[l][1], v), dim=1)
        cache[l] = (k, v)
        T, S = q.shape[1], k.shape[1]
        rep = self.nh // self.nkv
        kk = k.repeat_interleave(rep, dim=0) if rep > 1 else k
        vv = v.repeat_interleave(rep, dim=0) if rep > 1 else v
        att = (q @ kk.transpose(-1, -2)) / math.sqrt(self.hd)
        if T > 1:
            att = att + torch.full((T, S), float("-inf")).triu(S - T + 1)
        return att.softmax(-1) @ vv

    def forward(self, ids, pos0, cache):
        w, T = self.w, len(ids)
        if self.gpt2:
            p, eps = self.p, self.cfg.get("layer_norm_epsilon", 1e-5)
            x = w[p + "wte.weight"][ids] + w[p + "wpe.weight"][pos0:pos0 + T]
            for l in range(self.L):
                q_ = f"{p}h.{l}."
                h = F.layer_norm(x, (self.d,), w[q_ + "ln_1.weight"], w[q_ + "ln_1.bias"], eps)
                qkv = h @ w[q_ + "attn.c_attn.weight"] + w[q_ + "attn.c_attn.bias"]
                q, k, v = (t.reshape(T, self.nh, self.hd).transpose(0, 1) for t in qkv.split(self.d, dim=-1))
                o = self.attend(q, k, v, cache, l).transpose(0, 1).reshape(T, self.d)
                x = x + o @ w[q_ + "attn.c_proj.weight"] + w[q_ + "attn.c_proj.bias"]
                h = F.layer_norm(x, (self.d,), w[q_ + "ln_2.weight"], w[q_ + "ln_2.bias"], eps)
                h = H.gelu_new(h @ w[q_ + "mlp.c_fc.weight"] + w[q_ + "mlp.c_fc.bias"])
                x = x + h @ w[q_ + "mlp.c_proj.weight"] + w[q_ + "mlp.c_proj.bias"]
            x = F.layer_norm(x[-1:], (self.d,), w[p + "ln_f.weight"], w[p + "ln_f.bias"], eps)
            return x @ self.head
        eps = self.cfg.get("rms_norm_eps", 1e-6)
        freqs = torch.outer(torch.arange(pos0, pos0 + T, dtype=torch.float32), self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = w["model.embed_tokens.weight"][ids]

        def lin(h, name):
            y = h @ w[name + ".weight"]
            return y + w[name + ".bias"] if name + ".bias" in w else y

        for l in range(self.L):
            p = f"model.layers.{l}."
            h = H.rms_norm(x, w[p + "input_layernorm.weight"], eps)
            q = lin(h, p + "self_attn.q_proj").reshape(T, self.nh, self.hd).transpose(0, 1)
            k = lin(h, p + "self_attn.k_proj").reshape(T, self.nkv, self.hd).transpose(0, 1)
            v = lin(h, p + "self_attn.v_proj").reshape(T, self.nkv, self.hd).transpose(0, 1)
            q = q * cos + H.rotate_half(q) * sin
            k = k * cos + H.rotate_half(k) * sin
            o = self.attend(q, k, v, cache, l).transpose(0, 1).reshape(T, self.nh * self.hd)
            x = x + lin(o, p + "self_attn.o_proj")
            h = H.rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
            x = x + lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = H.rms_norm(x[-1:], w["model.norm.weight"], eps)
        return x @ self.head


def main():
    d, threads, n_prompt, n_new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    lm = Lm(d)
    ids = [(i * 7919) % 5000 + 100 for i in range(n_prompt)]
    with torch.no_grad():
        cache = [None] * lm.L
        t0 = time.perf_counter()
        logits = lm.forward(ids, 0, cache)
        t1 = time.perf_counter()
        nxt = int(logits[-1].argmax())
        out = [nxt]
        for i in range(n_new - 1):
            logits = lm.forward([nxt], n_prompt + i, cache)
            nxt = int(logits[-1].argmax())
            out.append(nxt)
        t2 = time.perf_counter()
    print(json.dumps({"prefill_tokens_per_second": n_prompt / (t1 - t0),
                      "decode_tokens_per_second": (n_new - 1) / (t2 - t1), "ids": out}))


if __name__ == "__main__":
    main()
