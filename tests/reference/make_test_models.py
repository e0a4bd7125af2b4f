#!/usr/bin/python3
"""Makes the small random checkpoints in tests/models/ (exact Hugging Face
layout: config.json, generation_config.json, model.safetensors with the
names and shapes transformers uses) and their golden outputs in
tests/golden/NAME.safetensors, computed by hf_models.py:

  input_ids  I64 [T]      the fixed prompt
  logits     F32 [T, V]   logits of every position (float32 reference)
  greedy_ids I64 [8]      greedy continuation of the prompt (no sampling)

Checked-in results; rerun only to change them (deterministic, seed 1234):
  /usr/bin/python3 tests/reference/make_test_models.py
The Qwen3 checkpoints (seed 4242; they also get a byte-level tokenizer.json
and tokenizer_config.json, so that the cria verbs run on them as they are):
  /usr/bin/python3 tests/reference/make_test_models.py qwen3
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
GOLDEN = os.path.join(HERE, "..", "golden")
NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64",
         torch.int32: "I32", torch.uint8: "U8"}
PROMPT = [1, 17, 200, 5, 42, 99, 3, 250, 7, 64, 128, 9]


def write_safetensors(path, tensors, metadata=None):
    """Independent writer: tensors in the given order, header padded to 8."""
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rnd(*shape, std=1.0):
    return torch.randn(*shape) * std


def gpt2_weights(c):
    d, v, p, inner = c["n_embd"], c["vocab_size"], c["n_positions"], 4 * c["n_embd"]
    w = {"transformer.wte.weight": rnd(v, d, std=0.5), "transformer.wpe.weight": rnd(p, d, std=0.2)}
    for l in range(c["n_layer"]):
        q = f"transformer.h.{l}."
        w[q + "ln_1.weight"] = 1 + rnd(d, std=0.1)
        w[q + "ln_1.bias"] = rnd(d, std=0.1)
        w[q + "attn.c_attn.weight"] = rnd(d, 3 * d, std=d ** -0.5)
        w[q + "attn.c_attn.bias"] = rnd(3 * d, std=0.1)
        w[q + "attn.c_proj.weight"] = rnd(d, d, std=d ** -0.5)
        w[q + "attn.c_proj.bias"] = rnd(d, std=0.1)
        w[q + "ln_2.weight"] = 1 + rnd(d, std=0.1)
        w[q + "ln_2.bias"] = rnd(d, std=0.1)
        w[q + "mlp.c_fc.weight"] = rnd(d, inner, std=d ** -0.5)
        w[q + "mlp.c_fc.bias"] = rnd(inner, std=0.1)
        w[q + "mlp.c_proj.weight"] = rnd(inner, d, std=inner ** -0.5)
        w[q + "mlp.c_proj.bias"] = rnd(d, std=0.1)
    w["transformer.ln_f.weight"] = 1 + rnd(d, std=0.1)
    w["transformer.ln_f.bias"] = rnd(d, std=0.1)
    return w


def llama_weights(c, qkv_bias=False):
    d, v, i = c["hidden_size"], c["vocab_size"], c["intermediate_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or d // nh
    w = {"model.embed_tokens.weight": rnd(v, d, std=0.5)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + rnd(d, std=0.1)
        for n, rows in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
            w[p + f"self_attn.{n}_proj.weight"] = rnd(rows, d, std=d ** -0.5)
            if qkv_bias:
                w[p + f"self_attn.{n}_proj.bias"] = rnd(rows, std=0.1)
        w[p + "self_attn.o_proj.weight"] = rnd(d, nh * hd, std=(nh * hd) ** -0.5)
        w[p + "post_attention_layernorm.weight"] = 1 + rnd(d, std=0.1)
        w[p + "mlp.gate_proj.weight"] = rnd(i, d, std=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = rnd(i, d, std=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = rnd(d, i, std=i ** -0.5)
    w["model.norm.weight"] = 1 + rnd(d, std=0.1)
    if not c.get("tie_word_embeddings"):
        w["lm_head.weight"] = rnd(v, d, std=d ** -0.5)
    return w


GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
        "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 64, "n_ctx": 64, "n_inner": None,
        "vocab_size": 256, "layer_norm_epsilon": 1e-5, "bos_token_id": 0, "eos_token_id": 0,
        "torch_dtype": "float32", "tie_word_embeddings": True}
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
         "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "vocab_size": 256, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 16},
         "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
         "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
QWEN2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
         "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "vocab_size": 256, "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
         "rope_scaling": None, "hidden_act": "silu", "use_sliding_window": False, "sliding_window": 128,
         "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "float32"}
MISTRAL = dict(LLAMA, architectures=["MistralForCausalLM"], model_type="mistral", rope_theta=10000.0,
               rope_scaling=None, sliding_window=4)


def qwen3_weights(c):
    """LLaMA's tensors plus q_norm and k_norm ([head_dim]) in every layer."""
    w = llama_weights(c, qkv_bias=c.get("attention_bias", False))
    hd = c["head_dim"]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}.self_attn."
        w[p + "q_norm.weight"] = 1 + rnd(hd, std=0.2)
        w[p + "k_norm.weight"] = 1 + rnd(hd, std=0.2)
    return w


# As transformers 4.51 writes Qwen3Config (Qwen3-0.6B's keys), at a tiny
# size; head_dim 16 is not hidden_size / heads (8), as in the real models.
QWEN3 = {"architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
         "bos_token_id": 1, "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 32,
         "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
         "max_window_layers": 2, "model_type": "qwen3", "num_attention_heads": 4, "num_hidden_layers": 2,
         "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000.0,
         "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "float32",
         "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False, "vocab_size": 256}
# Tied embeddings, and a sliding window of 4 on layer 1 as newer transformers
# write it (layer_types).
QWEN3_TIED = dict(sorted(dict(QWEN3, tie_word_embeddings=True, use_sliding_window=True, sliding_window=4,
                              max_window_layers=1, layer_types=["full_attention", "sliding_attention"]).items()))


def byte_tokenizer():
    """A byte-level BPE tokenizer.json without merges: id b is byte b, spelt
    with GPT-2's byte-to-unicode table."""
    cp, n = [], 0
    for b in range(256):
        printable = ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        cp.append(b if printable else 256 + n)
        n += 0 if printable else 1
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "vocab": {chr(cp[b]): b for b in range(256)}, "merges": []}}


def save_tokenizer(name):
    d = os.path.join(MODELS, name)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 128, "bos_token": None,
                   "eos_token": None, "clean_up_tokenization_spaces": False}, f, indent=2)
        f.write("\n")


def save_model(name, cfg, w, dtype=torch.float32, tensor_order=None):
    d = os.path.join(MODELS, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": False}
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    names = tensor_order or sorted(w)  # save_pretrained writes names sorted
    write_safetensors(os.path.join(d, "model.safetensors"), {n: w[n].to(dtype) for n in names}, {"format": "pt"})
    # The golden comes from reading the directory back, as any reader would.
    cfg2, w2 = hf_models.load_dir(d)
    logits = hf_models.forward(cfg2, w2, PROMPT)
    greedy = hf_models.greedy(cfg2, w2, PROMPT, 8)
    os.makedirs(GOLDEN, exist_ok=True)
    write_safetensors(os.path.join(GOLDEN, name + ".safetensors"),
                      {"input_ids": torch.tensor(PROMPT, dtype=torch.int64), "logits": logits.float(),
                       "greedy_ids": torch.tensor(greedy, dtype=torch.int64)},
                      {"reference": "tests/reference/hf_models.py", "model": "tests/models/" + name})
    print(name, "greedy", greedy)


def main_qwen3():
    torch.manual_seed(4242)
    w = qwen3_weights(QWEN3)
    save_model("tiny-qwen3", QWEN3, w)
    save_tokenizer("tiny-qwen3")
    tied = {k: v for k, v in qwen3_weights(QWEN3_TIED).items()}
    save_model("tiny-qwen3-tied", QWEN3_TIED, tied)
    save_tokenizer("tiny-qwen3-tied")


def main():
    if sys.argv[1:] == ["qwen3"]:
        return main_qwen3()
    torch.manual_seed(1234)
    save_model("tiny-gpt2", GPT2, gpt2_weights(GPT2))
    lw = llama_weights(LLAMA)
    save_model("tiny-llama", LLAMA, lw)
    for kind, extra in (("linear", {"factor": 2.0}), ("dynamic", {"factor": 2.0}),
                        ("yarn", {"factor": 4.0, "original_max_position_embeddings": 16})):
        cfg = dict(LLAMA, rope_scaling=dict({"rope_type": kind}, **extra))
        if kind == "dynamic":
            cfg["max_position_embeddings"] = 8  # the prompt (12) is longer: the base grows
        save_model("tiny-llama-" + kind, cfg, lw)
    qw = llama_weights(QWEN2, qkv_bias=True)
    save_model("tiny-qwen2", QWEN2, qw)
    save_model("tiny-qwen2-bf16", dict(QWEN2, torch_dtype="bfloat16"), qw, torch.bfloat16)
    save_model("tiny-mistral", MISTRAL, llama_weights(MISTRAL))


if __name__ == "__main__":
    main()
