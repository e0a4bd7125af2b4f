#!/usr/bin/env python3
"""Reference q8_0 and q4_0 blocks for tests/gguf/test-gguf.c, written from
ggml's quantize_row_q8_0_ref and quantize_row_q4_0_ref (ggml-quants.c) with
every float operation rounded to binary32 as C does it, and the scale stored
as IEEE binary16 (round to nearest even). Writes quant-golden.txt: the input
recipe is the one test-gguf.c builds (gguf_test_input), then one hex line per
type. Run: python3 ggml_quant_reference.py > quant-golden.txt"""
import math
import struct

QK = 32


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16_bytes(x):
    return struct.pack("<e", x)


def test_input():
    """8 blocks: zeros; halves (ties of the rounding); a negative extreme;
    then pseudo-random values at scales 2^-20 .. 2^6."""
    x = [0.0] * QK
    x += [f32(j - 16 + 0.5) for j in range(31)] + [127.0]
    x += [f32((j - 16) * 0.25) for j in range(QK - 1)] + [-8.0]
    state = 12345
    for b, scale in enumerate([2.0**-20, 2.0**-3, 1.0, 2.0**3, 2.0**6]):
        for j in range(QK):
            state = (state * 1103515245 + 12345) % 2**31
            n = (state >> 8) % 20001 - 10000
            x.append(f32(f32(n / 1000.0) * scale))
    return x


def roundf(v):
    return math.copysign(math.floor(abs(v) + 0.5), v)


def q8_0(x):
    out = b""
    for i in range(0, len(x), QK):
        blk = x[i:i + QK]
        amax = max(abs(v) for v in blk)
        d = f32(amax / 127.0)
        idv = f32(1.0 / d) if d else 0.0
        out += f16_bytes(d)
        out += bytes((int(roundf(f32(v * idv))) & 0xFF) for v in blk)
    return out


def q4_0(x):
    out = b""
    for i in range(0, len(x), QK):
        blk = x[i:i + QK]
        amax, mx = 0.0, 0.0
        for v in blk:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = f32(mx / -8.0)
        idv = f32(1.0 / d) if d else 0.0
        out += f16_bytes(d)
        q = []
        for j in range(QK // 2):
            lo = min(15, math.trunc(f32(f32(blk[j] * idv) + 8.5)))
            hi = min(15, math.trunc(f32(f32(blk[QK // 2 + j] * idv) + 8.5)))
            q.append(lo | hi << 4)
        out += bytes(q)
    return out


x = test_input()
print("q8_0 " + q8_0(x).hex())
print("q4_0 " + q4_0(x).hex())
