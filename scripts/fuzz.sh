#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) for a while each, starting
# from its committed seed corpus (tests/fuzz/corpus/<target>/, read only: new
# inputs go to build-fuzz/corpus/<target>/). Builds with clang, AddressSanitizer
# and UBSan into build-fuzz/. Crashes are saved as build-fuzz/crash-<target>-*;
# add such a file to the target's seed corpus once fixed, so the replay test
# (run by ctest in every build) keeps it fixed.
#
#     scripts/fuzz.sh              # 1 minute per target
#     scripts/fuzz.sh 10           # 10 minutes per target
#     scripts/fuzz.sh 5 fuzz_gguf  # 5 minutes, one target
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-1}"
case "$minutes" in ''|*[!0-9]*|0) echo "fuzz.sh: minutes must be a whole number >= 1" >&2; exit 2 ;; esac
shift || true
scripts/deps.sh
if ! command -v clang >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq clang >/dev/null
fi
CC=clang cmake -S . -B build-fuzz -DAIR_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "${f%.c}")"); done
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/%/_fuzzer}" >/dev/null
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  echo "== $t: $minutes min"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "build-fuzz/tests/${t}_fuzzer" -max_total_time=$((minutes * 60)) -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$t-" \
       "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)"; then
    :
  fi
  if ls "build-fuzz/crash-$t-"* >/dev/null 2>&1; then
    echo "   crash inputs: $(ls "build-fuzz/crash-$t-"*)"
    status=1
  fi
done
exit $status
