#!/usr/bin/python3
"""Reference forward passes of GPT2LMHeadModel, LlamaForCausalLM,
Qwen2ForCausalLM, MistralForCausalLM and Qwen3ForCausalLM in plain PyTorch, written from the
published architectures (transformers is not used), reading a Hugging Face
model directory. cria's model plugins are checked against the logits this
computes; it is itself checked against llama2.c's greedy output of
stories260K (check_reference.py).

Everything runs in float32; bf16/f16 weights are upcast on load, which is
what cria's CPU backend does (bf16 storage, f32 accumulation).

  python3 tests/reference/hf_models.py DIR 1 2 3     # prints greedy ids
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
          "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8}


def read_safetensors(path):
    """A minimal independent reader of the format (header, then raw data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = bytearray(blob[8 + n:])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        t = torch.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]) if e > b else \
            torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def load_dir(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    single = os.path.join(d, "model.safetensors")
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(single):
        w = read_safetensors(single)
    elif os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        w = {}
        for s in shards:
            w.update(read_safetensors(os.path.join(d, s)))
    else:
        w = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu")
    return cfg, {k: v.float() for k, v in w.items()}


# ---- GPT-2 ------------------------------------------------------------------

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_forward(cfg, w, ids, adapter=None):
    """`adapter` as in llama_forward, called with the Conv1D layers' names."""
    p = "transformer." if "transformer.wte.weight" in w else ""

    def conv(h, name):
        # Conv1D: y = x @ W + b with W stored [in, out].
        y = h @ w[name + ".weight"] + w[name + ".bias"]
        return adapter(name, h, y) if adapter else y

    d, nh = cfg["n_embd"], cfg["n_head"]
    hd = d // nh
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    x = w[p + "wte.weight"][ids] + w[p + "wpe.weight"][:T]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["n_layer"]):
        q = f"{p}h.{l}."
        h = F.layer_norm(x, (d,), w[q + "ln_1.weight"], w[q + "ln_1.bias"], eps)
        qkv = conv(h, q + "attn.c_attn")
        qh, kh, vh = (t.reshape(T, nh, hd).transpose(0, 1) for t in qkv.split(d, dim=-1))
        att = (qh @ kh.transpose(-1, -2)) / math.sqrt(hd) + mask
        o = (att.softmax(-1) @ vh).transpose(0, 1).reshape(T, d)
        x = x + conv(o, q + "attn.c_proj")
        h = F.layer_norm(x, (d,), w[q + "ln_2.weight"], w[q + "ln_2.bias"], eps)
        h = gelu_new(conv(h, q + "mlp.c_fc"))
        x = x + conv(h, q + "mlp.c_proj")
    x = F.layer_norm(x, (d,), w[p + "ln_f.weight"], w[p + "ln_f.bias"], eps)
    head = w.get("lm_head.weight", w[p + "wte.weight"])
    return x @ head.T


# ---- LLaMA / Qwen2 / Mistral / Qwen3 ------------------------------------------

def rope_inv_freq(cfg, head_dim, seq_len):
    """inv_freq and the attention (cos/sin) scale for every rope_scaling type."""
    theta = cfg.get("rope_theta", 10000.0)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    dim = head_dim
    ar = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    if kind == "dynamic":
        maxp = rs.get("original_max_position_embeddings") or cfg.get("max_position_embeddings", 2048)
        if seq_len > maxp:
            f = rs["factor"]
            theta = theta * ((f * seq_len / maxp) - (f - 1)) ** (dim / (dim - 2))
    inv = 1.0 / (theta ** ar)
    scale = 1.0
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "llama3":
        f, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * inv / f + smooth * inv
        inv = torch.where(wavelen < old / hi, inv, torch.where(wavelen > old / lo, inv / f, mid))
    elif kind == "yarn":
        f = rs["factor"]
        bf, bs = rs.get("beta_fast", 32), rs.get("beta_slow", 1)
        maxp = rs.get("original_max_position_embeddings") or cfg.get("max_position_embeddings", 2048)
        scale = rs.get("attention_factor") or (0.1 * math.log(f) + 1.0 if f > 1 else 1.0)

        def corr(rot):
            return (dim * math.log(maxp / (rot * 2 * math.pi))) / (2 * math.log(theta))
        low, high = max(math.floor(corr(bf)), 0), min(math.ceil(corr(bs)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        extra = 1 - ramp
        inv = (inv / f) * (1 - extra) + inv * extra
    return inv.float(), scale


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rms_norm(x, wt, eps):
    return wt * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama_forward(cfg, w, ids, adapter=None):
    """`adapter(name, h, y)`, when given, returns what the linear layer
    `name` outputs for input h instead of its plain output y."""
    arch = cfg["architectures"][0]
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or d // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    inv, scale = rope_inv_freq(cfg, hd, T)
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * scale, emb.sin() * scale
    causal = torch.full((T, T), float("-inf")).triu(1)
    window = cfg.get("sliding_window") if (arch == "MistralForCausalLM" or cfg.get("use_sliding_window")) else None
    pos = torch.arange(T)

    def mask_of(layer):
        w = window
        if arch == "Qwen3ForCausalLM" and w:
            # Qwen3Config: layer_types if given, else sliding from max_window_layers on
            types = cfg.get("layer_types")
            if types:
                w = w if types[layer] == "sliding_attention" else None
            elif layer < cfg.get("max_window_layers", 28):
                w = None
        if not w:
            return causal
        return causal.masked_fill(pos[:, None] - pos[None, :] >= w, float("-inf"))
    act = {"silu": F.silu, "gelu": F.gelu, "gelu_pytorch_tanh": lambda t: F.gelu(t, approximate="tanh")}[
        cfg.get("hidden_act", "silu")]
    x = w["model.embed_tokens.weight"][ids]

    def lin(h, name):
        y = h @ w[name + ".weight"].T
        y = y + w[name + ".bias"] if name + ".bias" in w else y
        return adapter(name, h, y) if adapter else y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").reshape(T, nh, hd)
        k = lin(h, p + "self_attn.k_proj").reshape(T, nkv, hd)
        if arch == "Qwen3ForCausalLM":
            # Qwen3: RMSNorm over each head's head_dim features, before RoPE
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = q.transpose(0, 1), k.transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj").reshape(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask_of(l)
        o = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, nh * hd)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + lin(act(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T


def forward(cfg, w, ids):
    """Logits [len(ids), vocab] in float32."""
    with torch.no_grad():
        if cfg["architectures"][0] == "GPT2LMHeadModel":
            return gpt2_forward(cfg, w, ids)
        return llama_forward(cfg, w, ids)


def greedy(cfg, w, ids, n):
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(forward(cfg, w, ids)[-1].argmax())
        ids.append(nxt)
        out.append(nxt)
    return out


if __name__ == "__main__":
    cfg, w = load_dir(sys.argv[1])
    print(" ".join(map(str, greedy(cfg, w, [int(a) for a in sys.argv[2:]] or [cfg.get("bos_token_id", 0)], 8))))
