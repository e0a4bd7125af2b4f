#!/usr/bin/python3
"""nf4_reference.py: an independent NF4 (QLoRA) quantizer written from the
published algorithm (Dettmers et al. 2023) and bitsandbytes' description of
it: blocks of 64 scaled by their absmax, the 16 NormalFloat values chosen by
the midpoints between them (ties down), two codes per byte with the first in
the high nibble; double quantization of the absmax (minus their mean) in
blocks of 256 with the signed dynamic 8-bit map of create_dynamic_map and
dQuantize's binary search. Every step is numpy float32 arithmetic.

Writes tests/compute/nf4-golden.safetensors: the fixture inputs, the packed
codes, absmax codes, nested absmax, offset and dequantized values; and
tests/compute/nf4-checkpoint.safetensors: two of them as a bitsandbytes / PEFT
state dict stores a Linear4bit weight (with and without double
quantization, the quant_state packed as JSON bytes). Run from the source tree:
    /usr/bin/python3 tests/compute/nf4_reference.py
"""
import json
import os
import sys

import numpy as np

f32 = np.float32

# The NormalFloat4 values of the paper, as bitsandbytes' nf4 lookup table.
NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=f32)
# The split points of bitsandbytes' dQuantizeNF4 decision tree, in order.
TREE = [-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
        -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
        0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
        0.5016634166240692, 0.6427869200706482, 0.8614784181118011]
THRESHOLDS = np.array(TREE, dtype=f32)
# They are the midpoints of consecutive values.
assert (THRESHOLDS == ((NF4[:-1].astype(np.float64) + NF4[1:]) / 2).astype(f32)).all()


def linspace_f32(start, end, steps):
    """torch.linspace's scalar definition in float32."""
    start, end = f32(start), f32(end)
    step = f32((end - start) / f32(steps - 1))
    half = steps // 2
    return np.array([start + step * f32(i) if i < half else end - step * f32(steps - i - 1)
                     for i in range(steps)], dtype=f32)


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        bounds = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = (bounds[:-1] + bounds[1:]) / f32(2)
        scale = f32(10.0 ** (i - 6))
        data += list(scale * means)
        data += list(-scale * means)
    data += [f32(0), f32(1)]
    assert len(data) == 256
    return np.array(sorted(data), dtype=f32)


DYNAMIC = dynamic_map()


def torch_dynamic_map_differences():
    """How many entries torch.linspace (vectorized, processor-dependent) changes."""
    try:
        import torch
    except ImportError:
        return None
    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (i - 6)) * means).tolist() + ((-(10 ** (i - 6))) * means).tolist()
    data = sorted(data + [0, 1.0])
    return int((torch.tensor(data, dtype=torch.float32).numpy() != DYNAMIC).sum())


def dquantize(code, x):
    """bitsandbytes' dQuantize<0>: binary search, then nearest by midpoint."""
    x = f32(x)
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f32(-1), f32(1)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        return upper_pivot if x > (upper + val) * f32(0.5) else pivot
    return lower_pivot if x < (lower + val) * f32(0.5) else pivot


def quantize(x):
    """x: float32 values (already widened). Returns the bitsandbytes parts."""
    n = x.size
    n_blocks = (n + 63) // 64
    padded = np.zeros(n_blocks * 64, dtype=f32)
    padded[:n] = x
    blocks = padded.reshape(n_blocks, 64)
    absmax = np.zeros(n_blocks, dtype=f32)
    for b in range(n_blocks):
        valid = blocks[b, :min(64, n - b * 64)]
        absmax[b] = np.max(np.abs(valid))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (f32(1) / absmax).astype(f32)
        scaled = (blocks * inv[:, None]).astype(f32).reshape(-1)
    # a NaN (0 * inf of a zero block) is above no threshold: code 0
    codes = (scaled[:, None] > THRESHOLDS[None, :]).sum(axis=1).astype(np.uint8)
    codes = codes[:n + (n & 1)]
    packed = (codes[0::2] << 4) | codes[1::2]
    offset = f32(np.sum(absmax.astype(np.float64)) / n_blocks)
    centred = (absmax - offset).astype(f32)
    n_nested = (n_blocks + 255) // 256
    nested = np.zeros(n_nested, dtype=f32)
    qabs = np.zeros(n_blocks, dtype=np.uint8)
    for nb in range(n_nested):
        part = centred[nb * 256:(nb + 1) * 256]
        nested[nb] = np.max(np.abs(part))
        with np.errstate(divide="ignore"):
            inv2 = f32(1) / nested[nb]
        with np.errstate(invalid="ignore"):
            for j, v in enumerate(part):
                qabs[nb * 256 + j] = dquantize(DYNAMIC, f32(v * inv2))
    return packed.astype(np.uint8), qabs, nested, offset


def dequantize(n, packed, qabs, nested, offset):
    block_absmax = (DYNAMIC[qabs] * nested[np.arange(qabs.size) // 256]).astype(f32) + offset
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2] = packed >> 4
    codes[1::2] = packed & 15
    codes = codes[:n]
    return (NF4[codes] * block_absmax[np.arange(n) // 64]).astype(f32)


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even."""
    u = x.astype(f32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def fixtures():
    rng = np.random.default_rng(20231)
    out = []
    # normal weights, as a linear layer's
    out.append(("normal", "F32", rng.normal(0, 0.02, (40, 64)).astype(f32)))
    # heavy-tailed (Student t, 2 degrees of freedom): outliers set the absmax
    out.append(("heavy", "F32", (rng.standard_t(2, (48, 64)) * 0.01).astype(f32)))
    # zeros: whole zero blocks and scattered zeros, stored as bf16
    z = rng.normal(0, 1, (16, 64)).astype(f32)
    z[3] = 0
    z[7, ::3] = 0
    z[10] = 0
    z[10, 17] = -2.5
    out.append(("zeros", "BF16", z))
    # blocks of equal values, stored as f16
    e = rng.normal(0, 0.5, (8, 64)).astype(f32)
    e[2] = 0.5
    e[5] = -0.25
    out.append(("equal", "F16", e))
    # a size that is not a multiple of 64, and odd
    out.append(("odd", "F32", rng.normal(0, 1, (7, 37)).astype(f32)))
    # a single block: the absmax equals its mean, the nested scale is 0
    out.append(("single", "F32", rng.uniform(-3, 3, (1, 50)).astype(f32)))
    # more than 256 blocks: two nested blocks, the last partial
    out.append(("nested", "BF16", rng.normal(0, 0.05, (130, 128)).astype(f32)))
    return out


TORCH_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "U8": "uint8"}


def write_golden(path, tensors, metadata):
    """Through the suite's independent safetensors writer (tests/reference)."""
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    from make_test_models import write_safetensors
    out = {}
    for name, dtype, shape, raw in tensors:
        out[name] = torch.frombuffer(bytearray(raw), dtype=getattr(torch, TORCH_DTYPES[dtype])).reshape(list(shape))
    write_safetensors(path, out, metadata)


def dequantize_plain(n, packed, absmax):
    """Without double quantization: the f32 absmax of each block as it is."""
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2] = packed >> 4
    codes[1::2] = packed & 15
    return (NF4[codes[:n]] * absmax[np.arange(n) // 64]).astype(f32)


def block_absmax(x):
    n_blocks = (x.size + 63) // 64
    return np.array([np.max(np.abs(x[b * 64:(b + 1) * 64])) for b in range(n_blocks)], dtype=f32)


def checkpoint_tensors(name, x, dtype, nested):
    """A Linear4bit weight as bitsandbytes saves it in a state dict (QuantState.as_dict(packed=True))."""
    flat = x.reshape(-1)
    packed, qabs, nested_absmax, offset = quantize(flat)
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": dtype, "shape": list(x.shape)}
    out = [(name, "U8", [packed.size, 1], packed.tobytes())]
    if nested:
        state.update(nested_blocksize=256, nested_dtype="float32", nested_offset=float(offset))
        out += [(name + ".absmax", "U8", [qabs.size], qabs.tobytes()),
                (name + ".nested_absmax", "F32", [nested_absmax.size], nested_absmax.tobytes()),
                (name + ".nested_quant_map", "F32", [256], DYNAMIC.tobytes())]
    else:
        absmax = block_absmax(flat)
        out.append((name + ".absmax", "F32", [absmax.size], absmax.tobytes()))
    out.append((name + ".quant_map", "F32", [16], NF4.tobytes()))
    raw = json.dumps(state).encode()
    out.append((name + ".quant_state.bitsandbytes__nf4", "U8", [len(raw)], raw))
    return out


def main():
    tensors = [("quant_map", "F32", [16], NF4.tobytes()), ("nested_quant_map", "F32", [256], DYNAMIC.tobytes())]
    for name, dtype, x in fixtures():
        if dtype == "BF16":
            bits = to_bf16_bits(x)
            raw = bits.tobytes()
            x = (bits.astype(np.uint32) << 16).view(f32).reshape(x.shape)
        elif dtype == "F16":
            h = x.astype(np.float16)
            raw = h.tobytes()
            x = h.astype(f32)
        else:
            raw = x.tobytes()
        flat = x.reshape(-1)
        packed, qabs, nested, offset = quantize(flat)
        deq = dequantize(flat.size, packed, qabs, nested, offset)
        tensors += [
            (name + ".input", dtype, x.shape, raw),
            (name + ".weight", "U8", [packed.size, 1], packed.tobytes()),
            (name + ".weight.absmax", "U8", [qabs.size], qabs.tobytes()),
            (name + ".weight.nested_absmax", "F32", [nested.size], nested.tobytes()),
            (name + ".weight.nested_offset", "F32", [1], np.array([offset], dtype=f32).tobytes()),
            (name + ".dequantized", "F32", x.shape, deq.tobytes()),
        ]
        err = np.max(np.abs(deq - flat))
        print(f"{name}: {flat.size} values, {qabs.size} blocks, max |error| {err:.3g}")
        if name == "odd":
            plain = dequantize_plain(flat.size, packed, block_absmax(flat))
            tensors.append((name + ".dequantized_plain", "F32", x.shape, plain.tobytes()))
            checkpoint = checkpoint_tensors("model.layers.0.self_attn.q_proj.weight", x, "float32", False)
        if name == "nested":
            checkpoint += checkpoint_tensors("model.layers.0.mlp.down_proj.weight", x, "bfloat16", True)
    here = os.path.dirname(os.path.abspath(__file__))
    write_golden(os.path.join(here, "nf4-checkpoint.safetensors"), checkpoint, {"format": "pt"})
    out = os.path.join(here, "nf4-golden.safetensors")
    write_golden(out, tensors, {"producer": "tests/compute/nf4_reference.py"})
    print("wrote", out)
    diff = torch_dynamic_map_differences()
    if diff is not None:
        print(f"dynamic map: {diff} of 256 entries differ by an ulp or two from torch.linspace on this machine")


if __name__ == "__main__":
    main()
