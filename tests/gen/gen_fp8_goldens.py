#!/usr/bin/env python3
"""Golden data for FP8 e4m3 block-scaled weights (DeepSeek-V3 / Kimi-K2).

Writes tests/fixtures/quant/fp8_block.safetensors with:

  codes      U8 (256,)          every e4m3 byte
  codes_f32  F32 (256,)         torch's float8_e4m3fn -> float32 of each byte
  a          F8_E4M3 (256, 384) a weight whose shape is a multiple of the block
  a_scale_inv F32 (2, 3)
  a_ref      BF16 (256, 384)    transformers' own dequantizer
                                (Fp8Dequantize._dequantize_one, bf16 output)
  b          F8_E4M3 (200, 300) a weight with partial edge blocks
  b_scale_inv F32 (2, 3)
  b_ref      BF16 (200, 300)    DeepSeek's rule: scales repeated over 128x128
                                blocks, cropped, fp32 product, rounded to bf16

Needs torch, transformers and safetensors.
    python3 tests/gen/gen_fp8_goldens.py
"""

import os

import torch
from safetensors.torch import save_file
from transformers.integrations.finegrained_fp8 import Fp8Dequantize

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant", "fp8_block.safetensors")
B = 128


def fp8_weight(g, rows, cols):
    # values spread over the whole e4m3 range, including subnormals and zeros
    x = torch.randn(rows, cols, generator=g) * torch.exp2(torch.randint(-10, 9, (rows, cols), generator=g).float())
    return x.clamp(-448, 448).to(torch.float8_e4m3fn)


def main():
    g = torch.Generator().manual_seed(8)
    codes = torch.arange(256, dtype=torch.uint8)
    codes_f32 = codes.view(torch.float8_e4m3fn).to(torch.float32)

    a = fp8_weight(g, 256, 384)
    a_s = torch.rand(2, 3, generator=g) * 1e-2 + 1e-4
    a_ref = Fp8Dequantize(None)._dequantize_one(a, a_s, output_dtype=torch.bfloat16)

    b = fp8_weight(g, 200, 300)
    b_s = torch.rand(2, 3, generator=g) * 1e-2 + 1e-4
    full = b_s.repeat_interleave(B, 0).repeat_interleave(B, 1)[:200, :300]
    b_ref = (b.to(torch.float32) * full).to(torch.bfloat16)

    save_file({"codes": codes, "codes_f32": codes_f32, "a": a, "a_scale_inv": a_s, "a_ref": a_ref,
               "b": b, "b_scale_inv": b_s, "b_ref": b_ref}, OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
