#!/usr/bin/env bash
# Builds the kernel sources (src/kernels, src/quant, src/util/error.c) and the
# kernel and quant tests for AArch64 with a cross compiler, statically, and runs
# them under qemu user-mode emulation, so the NEON kernels are checked on an
# x86 machine. Installs the cross compiler and qemu with apt-get if missing.
#
#     scripts/test-neon.sh            # build into build-neon/ and run
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user >/dev/null
fi

out=build-neon
mkdir -p "$out"
cc=aarch64-linux-gnu-gcc
cflags=(-std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror
        -Iinclude -Isrc -Itests/unit)
srcs=(src/kernels/*.c src/quant/*.c src/util/error.c)
objs=()
for f in "${srcs[@]}"; do
  case "$f" in *_avx2.c|*_avx512.c) continue ;; esac
  o="$out/$(basename "${f%.c}").o"
  "$cc" "${cflags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done

status=0
for t in tests/unit/test_kernels*.c tests/unit/test_quant*.c; do
  [ -e "$t" ] || continue
  name=$(basename "${t%.c}")
  "$cc" "${cflags[@]}" -static "$t" "${objs[@]}" -o "$out/$name" -lm -lpthread
  echo "== $name (aarch64, qemu)"
  if ! AIR_TEST_DATA="$PWD/tests/fixtures" AIR_TEST_TMP="$PWD/$out/tmp" AIR_TEST_EMULATED=1 \
       qemu-aarch64 "$out/$name"; then
    status=1
  fi
done
exit $status
