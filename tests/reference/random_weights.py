#!/usr/bin/python3
"""Golden outputs of the real-shape random checkpoints (Qwen2.5-0.5B and
GPT-2 124M shapes, two layers) that tests/modelfiles/cria-random-model makes
at test time from a seed: too large to commit, their goldens are small.

For each config in tests/models/configs/*-2l.json this runs cria-random-model,
recomputes every tensor in numpy from the documented formula (and fails unless
cria's file matches bit for bit), runs hf_models.py on the numpy weights and
writes tests/golden/NAME-seedSEED.safetensors:

  input_ids     I64 [T]
  logits_head   F32 [T, 1024]  the first 1024 vocabulary columns
  logsumexp     F32 [T]        over the whole vocabulary
  argmax        I64 [T]
  greedy_ids    I64 [4]

  /usr/bin/python3 tests/reference/random_weights.py BUILD_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_models  # noqa: E402
from make_test_models import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 7
PROMPTS = {"qwen2.5-0.5b-2l": [151643, 9707, 11, 1879, 0, 358, 1079, 264],
           "gpt2-124m-2l": [50256, 15496, 11, 995, 0, 314, 716, 257]}
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def tensor(name, shape, seed):
    n = int(np.prod(shape))
    base = splitmix64(np.array([seed ^ fnv1a64(name)], dtype=np.uint64))[0]
    out = np.empty(n, dtype=np.float32)
    chunk = 1 << 22
    for a in range(0, n, chunk):
        with np.errstate(over="ignore"):
            idx = base + np.arange(a, min(n, a + chunk), dtype=np.uint64)
        u = (splitmix64(idx) >> np.uint64(40)).astype(np.float64) / 8388608.0 - 1.0
        if len(shape) == 2:
            v = u * np.sqrt(3.0 / shape[1])
        elif name.endswith(".weight") and ("norm" in name or ".ln_" in name):
            v = 1.0 + u * 0.1
        else:
            v = u * 0.1
        out[a:a + len(v)] = v.astype(np.float32)
    return torch.from_numpy(out.reshape(shape))


def main():
    build = sys.argv[1]
    tool = os.path.join(build, "tests", "modelfiles", "cria-random-model")
    for name, prompt in PROMPTS.items():
        cfgpath = os.path.join(HERE, "..", "models", "configs", name + ".json")
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([tool, cfgpath, d, str(SEED), "f32"], check=True)
            cfg, cria_w = hf_models.load_dir(d)
            w = {}
            for k, t in cria_w.items():
                w[k] = tensor(k, list(t.shape), SEED)
                if not torch.equal(w[k], t):
                    sys.exit(f"{name}: {k} differs between cria-random-model and numpy")
            del cria_w
        logits = hf_models.forward(cfg, w, prompt)
        greedy = hf_models.greedy(cfg, w, prompt, 4)
        write_safetensors(os.path.join(HERE, "..", "golden", f"{name}-seed{SEED}.safetensors"),
                          {"input_ids": torch.tensor(prompt, dtype=torch.int64),
                           "logits_head": logits[:, :1024].contiguous(),
                           "logsumexp": torch.logsumexp(logits, dim=-1),
                           "argmax": logits.argmax(-1).to(torch.int64),
                           "greedy_ids": torch.tensor(greedy, dtype=torch.int64)},
                          {"reference": "tests/reference/hf_models.py",
                           "model": f"cria-random-model tests/models/configs/{name}.json DIR {SEED} f32"})
        print(name, "greedy", greedy, "argmax", logits.argmax(-1).tolist())


if __name__ == "__main__":
    main()
