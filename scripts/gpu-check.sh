#!/usr/bin/env bash
# The checks of the CUDA backend that need an NVIDIA GPU, in one run of a few
# minutes, on a machine that may have no network and none of the build's
# Debian packages (docs/cuda.md):
#
#   scripts/gpu-check.sh --prepare   on a build machine: builds the programs
#                                    the checks run (Release, AIR_CUDA=ON, in
#                                    build-gpu-tree/) and packs them with the
#                                    shared libraries they need into
#                                    build-gpu/bundle.tar.xz (about 8 MB)
#   scripts/gpu-check.sh             on the GPU machine, from the repository
#                                    root with build-gpu/ there (or it builds
#                                    the programs itself if it can); writes
#                                    its log and bench tables to $OUT (or
#                                    /tmp/gpu-check)
#
# What runs: the GPU's identity, the plugin probe, every CUDA op against the
# CPU reference (test_cuda_gpu_ops), the forward pass against the CPU and
# transformers (test_cuda_gpu_greedy), then `airllm bench` on a generated
# 1.5 GB Llama-shaped model (tools/bench/make_bench_model.py) at compression
# none and 4bit, each streamed with --vram below the model's size (tokens/s
# against the host-to-device copy floor) and all resident (tokens/s against
# the device memory floor), next to the CPU. GPU_CHECK_BIG_LAYERS=N adds the
# 70B-shaped model of docs/benchmarks.md with N layers (a Q4_0 GGUF; 459 MiB
# per layer at 4bit; N = 26 is its 13.7 GB headline) streamed with --vram 4G.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TREE=$ROOT/build-gpu-tree
BUNDLE=$ROOT/build-gpu/bundle.tar.xz
TARGETS="airllm_cli airllm_cuda test_cuda_gpu_ops test_cuda_gpu_greedy test_cuda_load test_cuda_plan"

nvcc_path() {
  command -v nvcc 2>/dev/null && return
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    [ -x "$d/nvcc" ] && { echo "$d/nvcc"; return; }
  done
  return 1
}

build() {
  local nvcc
  nvcc=$(nvcc_path) || { echo "gpu-check: no nvcc found: install the CUDA toolkit"; return 1; }
  cmake -S "$ROOT" -B "$TREE" -DCMAKE_BUILD_TYPE=Release -DAIR_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" ${GPU_CHECK_ARCH:+-DCMAKE_CUDA_ARCHITECTURES=$GPU_CHECK_ARCH} \
    >/dev/null || return 1
  # shellcheck disable=SC2086
  cmake --build "$TREE" -j"$(nproc)" --target $TARGETS >/dev/null || return 1
  # the programs, by themselves: bin/airllm, bin/libairllm_cuda.so, bin/tests/
  rm -rf "$BIN" && mkdir -p "$BIN/tests" "$BIN/lib"
  cp "$TREE/airllm" "$TREE/libairllm_cuda.so" "$BIN/"
  cp "$TREE"/tests/test_cuda_* "$BIN/tests/"
  strip "$BIN/airllm" "$BIN"/tests/test_cuda_* 2>/dev/null
  return 0
}

if [ "${1:-}" = "--prepare" ]; then
  BIN=$TREE/bin
  build || exit 1
  # the shared libraries of the programs, but the C runtime's own
  for f in "$BIN/airllm" "$BIN/libairllm_cuda.so" "$BIN"/tests/test_cuda_*; do
    ldd "$f" | awk '/=> \// {print $3}' | while read -r lib; do
      case "$(basename "$lib")" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        *) cp -L -n "$lib" "$BIN/lib/" ;;
      esac
    done
  done
  mkdir -p "$(dirname "$BUNDLE")"
  tar -C "$BIN" -cJf "$BUNDLE" . || exit 1
  du -sh "$BUNDLE"
  echo "gpu-check: $BUNDLE is ready: copy build-gpu/ to the GPU machine and run scripts/gpu-check.sh"
  exit 0
fi

OUTDIR=${OUT:-/tmp/gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
exec > >(tee "$LOG") 2>&1
T0=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - T0 ))s] $*"; }
fails=0
fail() { echo "FAILED: $*"; fails=$((fails + 1)); }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current \
  --format=csv 2>&1 | head -3
nproc; free -g | head -2

BIN=/tmp/gpu-check-bin
if [ -f "$BUNDLE" ]; then
  step "the programs from $BUNDLE"
  rm -rf "$BIN" && mkdir -p "$BIN" && tar -C "$BIN" -xJf "$BUNDLE" || exit 1
else
  step "build (no build-gpu/bundle.tar.xz)"
  GPU_CHECK_ARCH=${GPU_CHECK_ARCH:-native} build || { echo "gpu-check: cannot build here; run scripts/gpu-check.sh --prepare on a build machine and bring build-gpu/"; exit 1; }
fi
BUILD=$BIN
# the bundled libraries for our programs only (not for python3 below)
LIBS="$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run() { LD_LIBRARY_PATH="$LIBS" "$@"; }
export AIRLLM_CUDA_PLUGIN="$BUILD/libairllm_cuda.so"
export AIR_TEST_DATA="$ROOT/tests/fixtures" AIR_TEST_TMP=/tmp/gpu-check-tmp \
  AIR_SOURCE_DIR="$ROOT" AIR_BINARY_DIR="$BUILD"
mkdir -p "$AIR_TEST_TMP"
run "$BUILD/airllm" --version

step "plugin probe and device selection (test_cuda_load, test_cuda_plan)"
run timeout 120 "$BUILD/tests/test_cuda_load" 2>&1 | tail -20
rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || fail "test_cuda_load (exit $rc)"
run timeout 60 "$BUILD/tests/test_cuda_plan" 2>&1 | tail -2
rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || fail "test_cuda_plan (exit $rc)"

step "every CUDA op against the CPU reference (test_cuda_gpu_ops)"
run timeout 240 "$BUILD/tests/test_cuda_gpu_ops" 2>&1 | tail -40
rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || fail "test_cuda_gpu_ops (exit $rc)"

step "forward pass against the CPU and transformers (test_cuda_gpu_greedy)"
run timeout 300 "$BUILD/tests/test_cuda_gpu_greedy" 2>&1 | tail -60
rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || fail "test_cuda_gpu_greedy (exit $rc)"

# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------
BM=/tmp/gpu-check-bench-model
CACHE=/tmp/gpu-check-cache
bench() { # label, then airllm bench arguments
  local label=$1; shift
  echo; echo "-- $label: airllm bench $*"
  run timeout 240 "$BUILD/airllm" bench "$@" --cache-dir "$CACHE" -q 2>&1 | tee "$OUTDIR/bench-$label.md"
  [ "${PIPESTATUS[0]}" = 0 ] || fail "bench $label"
}
step "bench model (1.5 GB, Llama-shaped, bf16)"
if [ ! -f "$BM/config.json" ]; then
  python3 tools/bench/make_bench_model.py "$BM" --no-verify --size "${GPU_CHECK_BENCH_SIZE:-1.5G}" \
    >/dev/null || fail "make_bench_model"
fi
du -sh "$BM"

step "bench: compression none"
# --max-seq-len 512 keeps the KV cache small, so --vram goes to weights
bench none-streamed "$BM" -c none --device cuda --vram 600M --max-seq-len 512 -p 64 -g 32
bench none-resident "$BM" -c none --device cuda --max-seq-len 512 -p 64 -g 32
bench none-cpu "$BM" -c none --device cpu --max-seq-len 512 -p 16 -g 4

step "bench: 4bit"
bench 4bit-streamed "$BM" -c 4bit --device cuda --vram 300M --max-seq-len 512 -p 64 -g 32
bench 4bit-resident "$BM" -c 4bit --device cuda --max-seq-len 512 -p 64 -g 32
bench 4bit-cpu "$BM" -c 4bit --device cpu --max-seq-len 512 -p 16 -g 4

if [ "${GPU_CHECK_BIG_LAYERS:-0}" -gt 0 ]; then
  # the headline model of docs/benchmarks.md (26 layers: a 13.7 GB Q4_0 GGUF, 12.2 GiB at 4bit)
  step "bench: 70B-shaped model, ${GPU_CHECK_BIG_LAYERS} layers, 4bit, --vram 4G"
  BIG=/tmp/gpu-check-big-model
  [ -f "$BIG/model-Q4_0.gguf" ] || python3 tools/bench/make_bench_model.py "$BIG" --gguf-q4-0 \
    --hidden 8192 --ff 28672 --heads 64 --kv-heads 8 --vocab 128256 --ctx 8192 \
    --layers "$GPU_CHECK_BIG_LAYERS" >/dev/null || fail "make_bench_model (big)"
  bench big-streamed "$BIG/model-Q4_0.gguf" -c 4bit --device cuda --vram 4G --max-seq-len 512 -p 16 -g 8
fi

step "done: $fails failure(s); log in $LOG"
exit $(( fails > 0 ))
