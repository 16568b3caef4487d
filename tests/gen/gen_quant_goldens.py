#!/usr/bin/env python3
"""Writes tests/fixtures/quant/goldens.bin: NF4 and Q8 quantization goldens
from bitsandbytes (CPU), read by tests/unit/test_quant.c.

Regenerate (needs torch and bitsandbytes >= 0.45, which quantize on the CPU):

    pip install torch bitsandbytes numpy
    python3 tests/gen/gen_quant_goldens.py

NF4: bitsandbytes.functional.quantize_4bit(x, blocksize=64, quant_type="nf4")
     (fp32 absmax, no double quantization) and dequantize_4bit. The codes are
     stored unpacked, one byte per element in element order (bitsandbytes packs
     element 2i in the high nibble); the dequantized values are bitsandbytes'
     fp32 output, which airllm.c must reproduce bit for bit.
Q8:  bitsandbytes' int8 absmax quantization (int8_vectorwise_quant) applied to
     each block of 32 elements (the tensor viewed as (n / 32, 32)): codes equal
     round(x * (127 / absmax)), where torch evaluates 127 / absmax in fp32 as
     reciprocal(absmax) * 127. The fp16 scale is numpy's float16(absmax / 127);
     the dequantized value is float32(scale) * code. All-zero blocks (for which
     bitsandbytes divides by zero) are given code 0, the format's definition.

File layout (little endian):
    char magic[8] = "AIRQGLD1"; u32 rows; u32 n;
    f32 x[rows * n]                       input
    f32 nf4_absmax[rows * n / 64]
    u8  nf4_code[rows * n]                element order
    f32 nf4_deq[rows * n]
    u16 q8_scale_f16[rows * n / 32]
    i8  q8_code[rows * n]
    f32 q8_deq[rows * n]
"""
import os
import struct

import numpy as np
import torch
import bitsandbytes  # noqa: F401  (registers torch.ops.bitsandbytes)
import bitsandbytes.functional as F

ROWS, N = 16, 512
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "quant", "goldens.bin")

NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
     -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
     0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)


def make_input(rng):
    x = np.zeros((ROWS, N), dtype=np.float32)
    x[0] = rng.normal(0, 0.02, N)
    x[1] = rng.uniform(-3, 3, N)
    x[2] = rng.standard_t(2, N) * 0.05                      # heavy tails
    # exact code values times a power-of-two absmax, with the absmax present
    k = rng.integers(0, 16, N)
    x[3] = NF4[k] * 0.5
    x[3, ::64] = 0.5
    # exact fp32 midpoints between code values (absmax 1): ties go to the lower code
    mids = ((NF4[:-1] + NF4[1:]) / np.float32(2)).astype(np.float32)
    x[4] = mids[rng.integers(0, 15, N)]
    x[4, ::64] = -1.0
    x[5] = rng.normal(0, 1, N)
    x[5, 64:128] = 0.0                                     # an all-zero block
    x[5, 128:192] = 1e-30 * rng.normal(0, 1, 64)           # tiny values
    x[6] = rng.normal(0, 1, N) * 1e4                       # large values
    x[7] = -np.abs(rng.normal(0, 1, N))                    # absmax from a negative value
    for r in range(8, ROWS):                               # per-block scales, bf16-like values
        scales = 10.0 ** rng.uniform(-4, 1, N // 32)
        v = rng.normal(0, 1, N) * np.repeat(scales, 32)
        v = torch.tensor(v, dtype=torch.float32).to(torch.bfloat16).float().numpy()
        x[r] = v
    return x.astype(np.float32)


def nf4_goldens(x):
    t = torch.from_numpy(x.copy())
    packed, state = F.quantize_4bit(t, blocksize=64, quant_type="nf4", compress_statistics=False)
    deq = F.dequantize_4bit(packed, state).float().numpy().reshape(-1)
    p = packed.reshape(-1).numpy()
    codes = np.empty(p.size * 2, dtype=np.uint8)
    codes[0::2] = p >> 4
    codes[1::2] = p & 15
    absmax = state.absmax.float().numpy()
    # sanity: dequantization is code value times absmax in fp32
    assert np.array_equal(deq, NF4[codes] * np.repeat(absmax, 64))
    return absmax.astype(np.float32), codes, deq.astype(np.float32)


def q8_goldens(x):
    blocks = torch.from_numpy(x.reshape(-1, 32).copy())
    amax = blocks.abs().max(dim=1).values.numpy()
    codes, stats, _ = torch.ops.bitsandbytes.int8_vectorwise_quant(blocks.clone(), 0.0)
    codes = codes.numpy().astype(np.int8)
    codes[amax == 0] = 0
    assert np.array_equal(stats.numpy(), amax)
    scale = np.minimum(amax / np.float32(127), np.float32(65504)).astype(np.float16)
    deq = (scale.astype(np.float32)[:, None] * codes.astype(np.float32)).reshape(-1)
    return scale.view(np.uint16), codes.reshape(-1), deq.astype(np.float32)


def main():
    rng = np.random.default_rng(20240611)
    x = make_input(rng)
    na, nc, nd = nf4_goldens(x)
    qs, qc, qd = q8_goldens(x)
    with open(OUT, "wb") as f:
        f.write(b"AIRQGLD1" + struct.pack("<II", ROWS, N))
        for a in (x.reshape(-1), na, nc, nd, qs, qc, qd):
            f.write(np.ascontiguousarray(a).tobytes())
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
