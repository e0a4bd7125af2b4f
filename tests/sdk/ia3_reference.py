#!/usr/bin/python3
"""A PEFT-format IA3 adapter for tests/models/tiny-llama and the logits of
the adapted model, from PyTorch over the reference LLaMA of
tests/reference/hf_models.py (written from the published architecture;
neither transformers nor peft is used).

    /usr/bin/python3 tests/sdk/ia3_reference.py

writes tests/sdk/ia3-tiny-llama/ (adapter_config.json and
adapter_model.safetensors with PEFT's keys and shapes: ia3_l [out, 1] on
k_proj and v_proj, [1, in] on down_proj, the feed-forward module) and
tests/sdk/ia3-tiny-llama-logits.safetensors (input_ids I64 [n], logits F32
[n, vocab], the layout of `cria logits`). The vectors are 1 + 0.5 N(0, 1),
far from the identity, so a wrong placement (output instead of input, or
the wrong layer) changes the logits. IA3 is applied as PEFT's forward does:
y * l for attention layers, (x * l) W^T + b for feed-forward ones.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import hf_models  # noqa: E402
from make_test_models import write_safetensors  # noqa: E402

TARGETS = ("k_proj", "v_proj", "down_proj")
FEEDFORWARD = ("down_proj",)
IDS = [1, 17, 200, 45, 3, 99, 128, 7, 255, 0, 64]


def main():
    cfg, w = hf_models.load_dir(os.path.join(HERE, "..", "models", "tiny-llama"))
    gen = torch.Generator().manual_seed(20261206)
    vectors = {}
    for k in sorted(w):
        mod = k[: -len(".weight")]
        if not k.endswith(".weight") or not mod.rsplit(".", 1)[-1] in TARGETS:
            continue
        n_out, n_in = w[k].shape
        ff = mod.rsplit(".", 1)[-1] in FEEDFORWARD
        shape = (1, n_in) if ff else (n_out, 1)
        vectors[mod] = 1 + 0.5 * torch.randn(shape, generator=gen)

    def adapter(name, h, y):
        if name not in vectors:
            return y
        l = vectors[name].flatten()
        if name.rsplit(".", 1)[-1] in FEEDFORWARD:
            y = (h * l) @ w[name + ".weight"].T
            return y + w[name + ".bias"] if name + ".bias" in w else y
        return y * l

    with torch.no_grad():
        logits = hf_models.llama_forward(cfg, w, IDS, adapter=adapter)

    out_dir = os.path.join(HERE, "ia3-tiny-llama")
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "auto_mapping": None,
        "base_model_name_or_path": "tests/models/tiny-llama",
        "fan_in_fan_out": False,
        "feedforward_modules": list(FEEDFORWARD),
        "inference_mode": True,
        "init_ia3_weights": True,
        "modules_to_save": None,
        "peft_type": "IA3",
        "revision": None,
        "target_modules": list(TARGETS),
        "task_type": "CAUSAL_LM",
    }
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"),
                      {"base_model.model." + m + ".ia3_l": v.contiguous() for m, v in vectors.items()})
    write_safetensors(os.path.join(HERE, "ia3-tiny-llama-logits.safetensors"),
                      {"input_ids": torch.tensor(IDS, dtype=torch.int64), "logits": logits.contiguous()})


if __name__ == "__main__":
    main()
