#!/usr/bin/env bash
# Reproduces the engine figures of docs/benchmarks.md: a 1.5 GB random-weight
# Llama model in Hugging Face format, split to the layer store for each
# compression, then `airllm bench` fully streamed (--ram 0) and fully
# resident (--ram 64G), prefetch on and off.
#
# Usage: tools/bench/run_engine_bench.sh [WORKDIR]     (default /tmp/airllm-bench)
# Needs: a build in build/ (cmake --build build --target airllm_cli), python3
# with numpy and safetensors (for the model generator).
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-/tmp/airllm-bench}"
model="$work/model-1.5G"
cache="$work/stores"
mkdir -p "$work"
[ -f "$model/config.json" ] || python3 tools/bench/make_bench_model.py "$model" --no-verify
for c in none 8bit 4bit; do
  build/airllm pull "$model" -c "$c" --cache-dir "$cache" -q
done
echo "## $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for c in none 8bit 4bit; do
  echo; echo "### compression $c, streamed (--ram 0)"
  build/airllm bench "$model" -c "$c" --cache-dir "$cache" --ram 0 -p 64 -g 8 -q
done
echo; echo "### compression none, streamed, prefetch off"
build/airllm bench "$model" -c none --cache-dir "$cache" --ram 0 --no-prefetch -p 64 -g 8 -q
for c in 8bit 4bit; do
  echo; echo "### compression $c, resident (--ram 64G)"
  build/airllm bench "$model" -c "$c" --cache-dir "$cache" --ram 64G -p 64 -g 16 -q
done
