#!/usr/bin/python3
"""Makes tests/fixtures/torch/: real torch.save archives for the restricted
unpickler, the same tensors as safetensors to compare with, and hostile
archives it must refuse. Deterministic; rerun only to change them.

  /usr/bin/python3 tests/reference/make_torch_fixtures.py
"""
import io
import os
import shutil
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_test_models import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "torch")
MODELS = os.path.join(HERE, "..", "models")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(99)
    # Every dtype cria reads, a view with an offset into a shared storage, a
    # transposed (non-contiguous) view, a scalar, an empty tensor and a bool mask.
    base = torch.randn(40)
    t = torch.randn(3, 5)
    sd = {
        "f32": torch.randn(2, 3),
        "bf16": torch.randn(4).to(torch.bfloat16),
        "f16": torch.randn(2, 2).to(torch.float16),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "i32": torch.tensor([7, -8], dtype=torch.int32),
        "u8": torch.tensor([1, 2, 255], dtype=torch.uint8),
        "mask": torch.tril(torch.ones(3, 3, dtype=torch.bool)),
        "offset_a": base[4:12],
        "offset_b": base[20:36].view(4, 4),
        "transposed": t.T,
        "strided": base[::3],
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    torch.save(sd, os.path.join(OUT, "misc.bin"))
    plain = {k: (v.to(torch.uint8) if v.dtype == torch.bool else v).contiguous().clone() for k, v in sd.items()}
    write_safetensors(os.path.join(OUT, "misc.safetensors"), plain)

    # A whole model as pytorch_model.bin: tiny-gpt2 plus the attention-mask
    # buffers older GPT-2 checkpoints carry, saved the way transformers did.
    from hf_models import read_safetensors
    d = os.path.join(OUT, "tiny-gpt2-bin")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(MODELS, "tiny-gpt2", "config.json"), d)
    w = read_safetensors(os.path.join(MODELS, "tiny-gpt2", "model.safetensors"))
    for l in range(2):
        w[f"transformer.h.{l}.attn.bias"] = torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64)
    torch.save(w, os.path.join(d, "pytorch_model.bin"))

    # Hostile archives: a valid zip layout around a pickle that must be refused.
    def evil(name, pkl, extra=None):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pkl)
            z.writestr("archive/version", "3\n")
            for k, v in (extra or {}).items():
                z.writestr("archive/" + k, v)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(buf.getvalue())

    evil("evil-os-system.bin", b"\x80\x02cos\nsystem\nq\x00X\x08\x00\x00\x00echo pwn\x85R.")
    evil("evil-builtins-eval.bin", b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.")
    evil("evil-inst.bin", b"\x80\x02(X\x01\x00\x00\x00aios\nsystem\n.")
    evil("evil-reduce-dict.bin", b"\x80\x02ccollections\nOrderedDict\nq\x00)R}R.")
    # _rebuild_tensor_v2 reaching past its 4-element storage.
    rebuild = (b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
               b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
               b"K\x02K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.")
    evil("evil-out-of-bounds.bin", rebuild, {"data/0": b"\0" * 16})
    evil("missing-storage.bin", rebuild.replace(b"K\x02K\x04\x85", b"K\x00K\x04\x85"))
    evil("truncated.bin", rebuild[:60])
    evil("not-a-dict.bin", b"\x80\x02K\x05.")
    with open(os.path.join(OUT, "not-a-zip.bin"), "wb") as f:
        f.write(b"\x80\x02}q\x00.")  # a bare pickle: the pre-1.6 format


if __name__ == "__main__":
    main()
