"""airllm.c and huggingface_hub share one cache, both ways.

Runs the local fake Hub (tests/hubserver/server.py), then
  - downloads with huggingface_hub.snapshot_download and checks that airllm.c
    finds the snapshot offline (and, online, downloads nothing more);
  - downloads with airllm.c and checks that huggingface_hub finds the files
    with HF_HUB_OFFLINE=1 / local_files_only=True, and downloads nothing more.

airllm.c is driven through the helper mode of the unit test binary:
    test_hub snapshot <org/name>    (prints the snapshot folder)
found through $AIR_TEST_HUB_BIN, else build/tests/test_hub, else the first
build*/tests/test_hub of the source tree. Skipped when huggingface_hub is not installed or the binary is
not built. Run:
    cmake --build build --target test_hub
    python3 -m pytest -q tests/python/test_hub_cache_compat.py
"""

import glob
import hashlib
import json
import os
import random
import subprocess
import sys
import urllib.request

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(SRC, "tests", "hubserver", "server.py")
REPO = "tiny/compat"


def find_binary():
    b = os.environ.get("AIR_TEST_HUB_BIN")
    if b:
        return b
    found = [os.path.join(SRC, "build", "tests", "test_hub")]
    found += sorted(glob.glob(os.path.join(SRC, "build*", "tests", "test_hub")))
    return next((f for f in found if os.access(f, os.X_OK)), None)


BIN = find_binary()
if not BIN or not os.access(BIN, os.X_OK):
    pytest.skip("test_hub binary not built (set AIR_TEST_HUB_BIN)", allow_module_level=True)


def write(root, rel, data):
    path = os.path.join(root, REPO, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("repos"))
    rnd = random.Random(1234)
    write(root, "config.json", json.dumps({"model_type": "llama", "hidden_size": 8}))
    write(root, "tokenizer.json", json.dumps({"model": {"type": "BPE"}}))
    write(root, "generation_config.json", json.dumps({"eos_token_id": 2}))
    write(root, "README.md", "# compat\n")
    write(root, "model.safetensors.index.json", json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    write(root, "model-00001-of-00002.safetensors", rnd.randbytes(70000))
    write(root, "model-00002-of-00002.safetensors", rnd.randbytes(50000))
    proc = subprocess.Popen([sys.executable, SERVER, "--root", root, "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield {"endpoint": f"http://127.0.0.1:{port}", "root": root}
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)


def control(hub, path):
    with urllib.request.urlopen(hub["endpoint"] + path) as r:
        return json.loads(r.read())


def file_gets(hub):
    """File bodies served since the last reset (resolve GETs and CDN GETs)."""
    return [e for e in control(hub, "/_test/log")
            if e["method"] == "GET" and ("/resolve/" in e["path"] or e["port"] == "cdn")]


def air_snapshot(hub, cache, offline):
    env = dict(os.environ, HF_HUB_CACHE=cache, HF_ENDPOINT=hub["endpoint"],
               HF_HOME=os.path.join(cache, "home"))
    env.pop("HF_TOKEN", None)
    env["HF_HUB_OFFLINE"] = "1" if offline else "0"
    r = subprocess.run([BIN, "snapshot", REPO], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_python_download_then_airllm_offline(hub, tmp_path):
    cache = str(tmp_path / "cache")
    py_dir = huggingface_hub.snapshot_download(REPO, cache_dir=cache, endpoint=hub["endpoint"])
    air_dir = air_snapshot(hub, cache, offline=True)
    assert os.path.realpath(air_dir) == os.path.realpath(py_dir)
    for name in ("config.json", "model-00001-of-00002.safetensors"):
        with open(os.path.join(air_dir, name), "rb") as a, \
                open(os.path.join(hub["root"], REPO, name), "rb") as b:
            assert a.read() == b.read()
    # online, airllm.c finds everything in place and fetches no file body
    control(hub, "/_test/reset")
    assert air_snapshot(hub, cache, offline=False) == air_dir
    assert file_gets(hub) == []


def test_airllm_download_then_python_offline(hub, tmp_path):
    cache = str(tmp_path / "cache")
    air_dir = air_snapshot(hub, cache, offline=False)
    commit = os.path.basename(air_dir)
    storage = os.path.join(cache, "models--tiny--compat")
    with open(os.path.join(storage, "refs", "main")) as f:
        assert f.read() == commit
    shard = os.path.join(air_dir, "model-00001-of-00002.safetensors")
    with open(os.path.join(hub["root"], REPO, "model-00001-of-00002.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert os.readlink(shard) == f"../../blobs/{sha}"

    # a separate interpreter with HF_HUB_OFFLINE=1 (read at import time)
    code = (
        "import sys, huggingface_hub as h\n"
        f"p = h.hf_hub_download({REPO!r}, 'model-00001-of-00002.safetensors', cache_dir={cache!r})\n"
        f"d = h.snapshot_download({REPO!r}, cache_dir={cache!r})\n"
        "print(p); print(d)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=os.path.join(cache, "home"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    p, d = r.stdout.split()
    assert p == shard
    assert os.path.realpath(d) == os.path.realpath(air_dir)

    # in this interpreter, local_files_only=True finds them too
    assert huggingface_hub.hf_hub_download(REPO, "config.json", cache_dir=cache,
                                           local_files_only=True) == \
        os.path.join(air_dir, "config.json")
    # online with the same patterns, huggingface_hub downloads no file again
    control(hub, "/_test/reset")
    d = huggingface_hub.snapshot_download(REPO, cache_dir=cache, endpoint=hub["endpoint"],
                                          allow_patterns=["*.json", "*.safetensors"])
    assert os.path.realpath(d) == os.path.realpath(air_dir)
    assert file_gets(hub) == []
