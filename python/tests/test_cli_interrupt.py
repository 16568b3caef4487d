"""Ctrl-C (SIGINT) or SIGTERM during a split stops `airllm pull` and `airllm
run` promptly with exit code 128 + the signal and a message; the store holds
only complete unit files and no manifest, and the next pull resumes from them
and writes the same store as an uninterrupted split. Ctrl-C in Python during
get_llm_response's first-use split raises KeyboardInterrupt promptly too.

The model is written here: a random-free Llama of 24 layers (BF16, one
safetensors file, about 170 MB) whose 4-bit split takes a few seconds on one
thread, long enough to be interrupted in the middle.
"""

import json
import os
import signal
import struct
import subprocess
import threading
import time

import pytest

from conftest import REPO

import airllm_c

CLI = os.environ.get("AIRLLM_CLI") or os.path.join(REPO, "build", "airllm")

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"{CLI} is not built")

LAYERS = 24


def write_model(out, hidden=512, layers=LAYERS, ff=1536, heads=8, kv=4, vocab=8192):
    """A Hugging Face Llama folder whose weights repeat four small BF16 values."""
    os.makedirs(out)
    hd = hidden // heads
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": ff, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 256,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    tensors = [("model.embed_tokens.weight", [vocab, hidden])]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors += [(p + "input_layernorm.weight", [hidden]),
                    (p + "self_attn.q_proj.weight", [heads * hd, hidden]),
                    (p + "self_attn.k_proj.weight", [kv * hd, hidden]),
                    (p + "self_attn.v_proj.weight", [kv * hd, hidden]),
                    (p + "self_attn.o_proj.weight", [hidden, heads * hd]),
                    (p + "post_attention_layernorm.weight", [hidden]),
                    (p + "mlp.gate_proj.weight", [ff, hidden]),
                    (p + "mlp.up_proj.weight", [ff, hidden]),
                    (p + "mlp.down_proj.weight", [hidden, ff])]
    tensors += [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    header, off = {}, 0
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    pattern = struct.pack("<4H", 0x3C00, 0xBC40, 0x3C80, 0xBCC0) * 8192
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        left = off
        while left:
            k = min(left, len(pattern))
            f.write(pattern[:k])
            left -= k


def pull(model, cache, *extra):
    return subprocess.run([CLI, "pull", model, "--cache-dir", cache, "-c", "4bit", "-q", *extra],
                          capture_output=True, text=True, timeout=600)


def store_dir(cache):
    (key,) = os.listdir(cache)
    return os.path.join(cache, key, "4bit")


def unit_files(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".bin"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("interrupt") / "big-llama")
    write_model(path)
    return path


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    """The store of an uninterrupted split."""
    cache = str(tmp_path_factory.mktemp("reference-cache"))
    r = pull(model, cache, "-t", "1")
    assert r.returncode == 0, r.stderr
    return store_dir(cache)


@pytest.mark.parametrize("cmd,sig", [("pull", signal.SIGINT), ("pull", signal.SIGTERM),
                                     ("run", signal.SIGINT)],
                         ids=["pull-SIGINT", "pull-SIGTERM", "run-SIGINT"])
def test_signal_stops_split_and_pull_resumes(model, reference, tmp_path, cmd, sig):
    cache = str(tmp_path / "cache")
    args = [CLI, cmd, model, "--cache-dir", cache, "-c", "4bit", "-q", "-t", "1"]
    if cmd == "run":
        args.append("Hello")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until the split is under way: a few unit files written
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "the split ended before it could be interrupted: " + \
            proc.stderr.read()
        assert time.monotonic() < deadline, "the split did not start"
        if os.path.isdir(cache) and os.listdir(cache):
            d = store_dir(cache)
            if os.path.exists(os.path.join(d, "layer_00002.bin")):
                break
        time.sleep(0.01)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert took < 10, f"took {took:.1f} s to stop"
    assert "interrupted" in err, err
    d = store_dir(cache)
    names = os.listdir(d)
    assert "manifest.json" not in names, "an interrupted store must not look complete"
    assert not [n for n in names if n.endswith(".tmp") or ".tmp." in n], names
    kept = unit_files(d)
    assert 3 <= len(kept) < LAYERS + 2, kept
    stamps = {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in kept}

    r = pull(model, cache)
    assert r.returncode == 0, r.stderr
    # resumed: the complete units were kept, not written again
    for n, t in stamps.items():
        assert os.stat(os.path.join(d, n)).st_mtime_ns == t, f"{n} was written again"
    # the same store as an uninterrupted split, byte for byte
    assert unit_files(d) == unit_files(reference)
    for n in unit_files(d):
        with open(os.path.join(d, n), "rb") as a, open(os.path.join(reference, n), "rb") as b:
            assert a.read() == b.read(), f"{n} differs from the uninterrupted split"
    with open(os.path.join(d, "manifest.json")) as a, \
            open(os.path.join(reference, "manifest.json")) as b:
        ma, mb = json.load(a), json.load(b)
    assert ma["hparams"] == mb["hparams"] and ma["files"] == mb["files"]


def test_python_ctrl_c_stops_split(lib, model, tmp_path):
    cache = str(tmp_path / "cache")
    sent = []

    def interrupt_when_split_runs():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if os.path.isdir(cache) and os.listdir(cache) and \
                    os.path.exists(os.path.join(store_dir(cache), "layer_00002.bin")):
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    t = threading.Thread(target=interrupt_when_split_runs, daemon=True)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        airllm_c.get_llm_response("Hello", model=model, compression="4bit", cache_dir=cache,
                                  n_threads=1)
    assert sent, "the split ended before it could be interrupted"
    took = time.monotonic() - sent[0]
    assert took < 10, f"took {took:.1f} s to stop"
    # the library call has returned (the split did not go on in the background)
    assert not [r for r in list(airllm_c._api._active)]
    units = unit_files(store_dir(cache))
    time.sleep(1)
    assert unit_files(store_dir(cache)) == units, "the split went on after the interrupt"
    names = os.listdir(store_dir(cache))
    assert "manifest.json" not in names
    assert not [n for n in names if n.endswith(".tmp")], names
    assert len(units) < LAYERS + 2
