#!/usr/bin/env bash
# Sets everything up (Debian packages, build, the default model) and asks the
# model a question, streaming the answer.
#   scripts/run.sh "Give me three tips for learning to program."   [airllm run options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target airllm_cli >/dev/null
model="$(scripts/fetch-default-model.sh)"
if [ $# -eq 0 ]; then
  set -- "Give me three tips for learning to program."
fi
exec build/airllm run "$model" "$@"
