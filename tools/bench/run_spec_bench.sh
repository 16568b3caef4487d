#!/usr/bin/env bash
# Reproduces the speculative decoding figures of docs/benchmarks.md, each
# `airllm bench` running plain and speculative greedy decoding of the same
# prompt in the same process:
#   1. the default model (SmolLM2-135M) at compression none, fully streamed
#      (--ram 0), with its own 4bit copy as the resident draft (three
#      prompts), then its 8bit copy;
#   2. the same with n-gram lookup on a "rewrite this paragraph with one
#      change" prompt;
#   3. the same model fully resident (--ram 64G): the automatic budget must
#      not be slower than plain decoding;
#   4. the 1.5 GB random bench model streamed with a small random draft of the
#      same vocabulary (its acceptance means nothing), and the time of one
#      pass against the rows it carries.
#
# Usage: tools/bench/run_spec_bench.sh [WORKDIR]     (default /tmp/airllm-spec-bench)
# Needs: a build in build/, the default model (scripts/fetch-default-model.sh),
# python3 with numpy (for the bench model generator).
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-/tmp/airllm-spec-bench}"
cache="$work/stores"
mkdir -p "$work"
smol="$(scripts/fetch-default-model.sh)"
g="${SPEC_BENCH_TOKENS:-64}"
story="Write a short story about a robot who learns to paint."
sky="Explain why the sky is blue in three sentences."
market="Describe a busy market in a small town."
rewrite="Rewrite the following paragraph, changing only the color of the car from red to blue, \
and keep every other word exactly as it is: The old red car stood at the end of the road, \
covered in dust and leaves. Every morning the neighbours walked past it on their way to the \
station, and every evening they walked past it again on their way home. Nobody knew who owned \
it, and nobody remembered when it had arrived. Children made up stories about it, and the \
postman swore that once, late at night, he had heard its engine running."
echo "## $(date -u +%Y-%m-%d) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

echo; echo "### 1. SmolLM2-135M, compression none, streamed (--ram 0), draft: its 4bit copy"
build/airllm bench "$smol" -c none --ram 0 --cache-dir "$cache" -q -p 64 -g "$g" \
  --draft "$smol" --draft-compression 4bit --no-lookup --prompt "$story" --rows
for p in "$sky" "$market"; do
  build/airllm bench "$smol" -c none --ram 0 --cache-dir "$cache" -q -p 16 -g "$g" \
    --draft "$smol" --draft-compression 4bit --no-lookup --prompt "$p"
done
echo; echo "### 1b. the same with its 8bit copy as the draft"
for p in "$story" "$sky" "$market"; do
  build/airllm bench "$smol" -c none --ram 0 --cache-dir "$cache" -q -p 16 -g "$g" \
    --draft "$smol" --draft-compression 8bit --no-lookup --prompt "$p"
done

echo; echo "### 2. SmolLM2-135M, compression none, streamed (--ram 0), lookup, rewrite prompt"
build/airllm bench "$smol" -c none --ram 0 --cache-dir "$cache" -q -p 16 -g "$g" \
  --lookup --prompt "$rewrite"

echo; echo "### 3. SmolLM2-135M, compression none, resident (--ram 64G), draft + lookup, automatic"
build/airllm bench "$smol" -c none --ram 64G --cache-dir "$cache" -q -p 16 -g "$g" \
  --draft "$smol" --lookup --prompt "$story"

model="$work/model-1.5G"
draft="$work/draft-random"
[ -f "$model/config.json" ] || python3 tools/bench/make_bench_model.py "$model" --no-verify
[ -f "$draft/config.json" ] || python3 tools/bench/make_bench_model.py "$draft" --hidden 256 \
  --layers 2 --heads 4 --kv-heads 2 --ff 704 --vocab 32000 --seed 7 --no-verify
echo; echo "### 4. 1.5 GB bench model, compression none, streamed, random draft (same vocabulary)"
build/airllm bench "$model" -c none --ram 0 --cache-dir "$cache" -q -p 64 -g 16 \
  --draft "$draft" --draft-compression none --no-lookup --rows
