#!/usr/bin/python3
"""LoRA adapters with a resized vocabulary, as LLaMA-Factory writes them
when it adds tokens (resize_vocab / new special tokens): the resized
embed_tokens and lm_head saved whole under modules_to_save, and the
tokenizer with the added tokens saved into the adapter directory. Writes,
under tests/train/resized-vocab/:

  llama/          on tests/models/tiny-llama (untied): embed_tokens and
                  lm_head, 256 -> 264 rows
  qwen3-tied/     on tests/models/tiny-qwen3-tied (tied): embed_tokens only,
                  one resized tensor serving as the head too
  qwen3-untied/   on tiny-qwen3-tied: embed_tokens and lm_head saved apart
                  (PEFT wraps the two modules in separate copies, so they
                  are trained apart and the model runs them untied), bf16
  golden.safetensors  <name>.input_ids (I64) and <name>.logits (F32
                  [n, 264]) of PROMPT through each, in plain PyTorch
                  (tests/reference/hf_models.py's forward, a LoRA hook),
                  tokenized by hand (a byte per token, the added tokens
                  whole)

No transformers, no peft: the files are written as PEFT names them
(base_model.model.<module>.weight for a modules_to_save tensor, the
".modules_to_save.default" part removed; lora_A/lora_B under
base_model.model.<module>.lora_A.weight).

  /usr/bin/python3 tests/train/resized_vocab_reference.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import hf_models  # noqa: E402
import make_test_models  # noqa: E402

OUT = os.path.join(HERE, "resized-vocab")
VOCAB = 264  # 256 + 2 added tokens, padded to a multiple of 8
ADDED = [("<|tool|>", 256, True), ("<obs>", 257, False)]
PROMPT = "hi <|tool|> 42<obs>!"
R, ALPHA = 2, 4.0
TARGETS = ["q_proj", "v_proj"]


def tokenizer_files(d):
    tok = make_test_models.byte_tokenizer()
    tok["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": s} for c, i, s in ADDED]
    cfg = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": None, "pad_token": None,
           "add_bos_token": False, "clean_up_tokenization_spaces": False,
           "added_tokens_decoder": {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                                             "single_word": False, "special": s} for c, i, s in ADDED}}
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump({"additional_special_tokens": [c for c, _, s in ADDED if s]}, f, indent=2)


def encode(text):
    """The added tokens whole, every other byte its own token (no merges)."""
    ids, i = [], 0
    while i < len(text):
        for c, tid, _ in ADDED:
            if text.startswith(c, i):
                ids.append(tid)
                i += len(c)
                break
        else:
            ids.extend(text[i].encode())
            i += 1
    return ids


def resized(gen, base, scale=0.3):
    """resize_token_embeddings keeps the old rows; training moved them a
    little and gave the new rows their own values."""
    new = torch.randn(VOCAB, base.shape[1], generator=gen) * scale
    new[:base.shape[0]] = base + 0.01 * torch.randn(base.shape, generator=gen)
    return new


def make(name, model, saved, dtype, gen):
    cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", model))
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tensors, lora = {}, {}
    for l in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            module = f"model.layers.{l}.self_attn.{t}"
            out_f, in_f = w[module + ".weight"].shape
            a = (torch.randn(R, in_f, generator=gen) * 0.3).to(dtype)
            b = (torch.randn(out_f, R, generator=gen) * 0.3).to(dtype)
            tensors[f"base_model.model.{module}.lora_A.weight"] = a
            tensors[f"base_model.model.{module}.lora_B.weight"] = b
            lora[module] = (a.float(), b.float())
    embed = w["model.embed_tokens.weight"]
    head = w.get("lm_head.weight", embed)
    new = {"model.embed_tokens": resized(gen, embed).to(dtype), "lm_head": resized(gen, head).to(dtype)}
    for module in saved:
        tensors[f"base_model.model.{module}.weight"] = new[module]
        w[module + ".weight"] = new[module].float()
    make_test_models.write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": f"tests/models/{model}",
        "r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
        "target_modules": TARGETS, "modules_to_save": [m.split(".")[-1] for m in saved],
        "use_rslora": False, "use_dora": False, "inference_mode": True, "init_lora_weights": True,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tokenizer_files(d)
    if "lm_head" not in saved and not cfg.get("tie_word_embeddings", False):
        raise SystemExit("an untied model needs its head saved too")
    if "lm_head" in saved:
        cfg = dict(cfg, tie_word_embeddings=False)
    cfg["vocab_size"] = VOCAB

    def hook(module, h, y):
        if module not in lora:
            return y
        a, b = lora[module]
        return y + (ALPHA / R) * (h @ a.T @ b.T)

    ids = encode(PROMPT)
    with torch.no_grad():
        logits = hf_models.llama_forward(cfg, w, ids, hook)
    return ids, logits


def main():
    gen = torch.Generator().manual_seed(18)
    golden = {}
    for name, model, saved, dtype in (("llama", "tiny-llama", ["model.embed_tokens", "lm_head"], torch.float32),
                                      ("qwen3-tied", "tiny-qwen3-tied", ["model.embed_tokens"], torch.float32),
                                      ("qwen3-untied", "tiny-qwen3-tied", ["model.embed_tokens", "lm_head"],
                                       torch.bfloat16)):
        ids, logits = make(name, model, saved, dtype, gen)
        golden[name + ".input_ids"] = torch.tensor(ids, dtype=torch.int64)
        golden[name + ".logits"] = logits.float()
        print(name, ids, tuple(logits.shape))
    make_test_models.write_safetensors(os.path.join(OUT, "golden.safetensors"), golden)


if __name__ == "__main__":
    main()
