#!/bin/sh
# test_install.sh BUILD_DIR SOURCE_DIR - installs the build into a temporary
# prefix with `cmake --install`, checks what it put there (the airllm command,
# libairllm shared and static, airllm.h, airllm.pc), then builds
# tests/install/hello_airllm.c against it with pkg-config, linked to the shared
# library and to the static one, and runs both on tests/fixtures/models/tiny_chat.
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/airllm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name airllm.pc)
[ -n "$pc" ] || { echo "FAIL: no airllm.pc under $prefix"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir airllm)
includedir=$(pkg-config --variable=includedir airllm)
for f in "$prefix/bin/airllm" "$includedir/airllm.h" "$libdir/libairllm.a" "$libdir/libairllm.so"; do
  [ -e "$f" ] || { echo "FAIL: $f was not installed"; exit 1; }
done
version=$("$prefix/bin/airllm" --version | head -n 1)
[ "$version" = "airllm $(pkg-config --modversion airllm)" ] ||
  { echo "FAIL: airllm --version says '$version', airllm.pc $(pkg-config --modversion airllm)"; exit 1; }

# shared: as pkg-config says, with an rpath to the prefix
# shellcheck disable=SC2046
"$cc" "$src/tests/install/hello_airllm.c" $(pkg-config --cflags --libs airllm) \
  -Wl,-rpath,"$libdir" -o "$tmp/hello-shared"
readelf -d "$tmp/hello-shared" | grep -q 'NEEDED.*libairllm\.so' ||
  { echo "FAIL: hello-shared does not load libairllm.so"; exit 1; }
# static: the archive, then what it needs (pkg-config --static)
# shellcheck disable=SC2046
"$cc" "$src/tests/install/hello_airllm.c" $(pkg-config --cflags airllm) \
  -Wl,--as-needed -Wl,-Bstatic -lairllm -Wl,-Bdynamic $(pkg-config --static --libs airllm) \
  -o "$tmp/hello-static"
if readelf -d "$tmp/hello-static" | grep -q 'NEEDED.*libairllm'; then
  echo "FAIL: hello-static still loads libairllm.so"; exit 1
fi

for kind in shared static; do
  out=$("$tmp/hello-$kind" "$src/tests/fixtures/models/tiny_chat" "$tmp/cache-$kind")
  echo "$kind: $out" | tr '\n' ' '; echo
  case "$out" in
    "$version"*"same text both ways") ;;
    *) echo "FAIL: hello-$kind"; exit 1 ;;
  esac
done
echo "install test passed"
