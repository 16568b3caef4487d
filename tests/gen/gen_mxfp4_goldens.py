#!/usr/bin/env python3
"""Golden data for MXFP4 expert weights (gpt-oss).

Writes tests/fixtures/quant/mxfp4.safetensors with:

  blocks  U8 (2, 48, 3, 16)   two experts, 48 output rows, 3 groups of 32 inputs
  scales  U8 (2, 48, 3)       E8M0 exponents, spread around 127 (incl. 0 and 254)
  ref     BF16 (2, 96, 48)    transformers' convert_moe_packed_tensors(blocks,
                              scales): (experts, inputs, outputs)

Needs torch, transformers and safetensors.
    python3 tests/gen/gen_mxfp4_goldens.py
"""

import os

import torch
from safetensors.torch import save_file
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant", "mxfp4.safetensors")


def main():
    g = torch.Generator().manual_seed(4)
    blocks = torch.randint(0, 256, (2, 48, 3, 16), generator=g, dtype=torch.uint8)
    scales = torch.randint(100, 150, (2, 48, 3), generator=g, dtype=torch.uint8)
    scales[0, 0, 0], scales[0, 0, 1] = 0, 254  # the smallest and largest finite exponents
    ref = convert_moe_packed_tensors(blocks.clone(), scales.clone(), dtype=torch.bfloat16)
    assert ref.shape == (2, 96, 48)
    save_file({"blocks": blocks, "scales": scales, "ref": ref.contiguous()}, OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
