"""A hub model end to end: the local hub server (tests/hubserver/server.py)
serves tiny_chat as the repo "test-org/tiny-chat"; get_llm_response and the
`airllm` command download it into a huggingface_hub-layout cache, split it and
answer, with the same greedy text transformers produced."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

import airllm_c

SERVER = os.path.join(REPO, "tests", "hubserver", "server.py")
CLI = os.path.join(REPO, "build", "airllm")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_chat):
    root = tmp_path_factory.mktemp("hubroot")
    repo = root / "test-org" / "tiny-chat"
    shutil.copytree(tiny_chat, repo)
    (repo / "golden.json").unlink()
    proc = subprocess.Popen([sys.executable, SERVER, "--root", str(root), "--port", "0",
                             "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    hub_cache = tmp_path_factory.mktemp("hub-cache")
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(hub_cache)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("HF_HUB_OFFLINE", None)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.stdin.close()
    proc.terminate()
    proc.wait(timeout=10)


def test_hub_model_answers_like_transformers(hub, golden, tmp_path):
    conv = golden["conversations"][0]
    r = airllm_c.get_llm_response(conv["messages"][-1]["content"], model="test-org/tiny-chat",
                                  provider="airllm", compression=None, temperature=0,
                                  max_tokens=24, cache_dir=str(tmp_path / "stores"))
    assert r["response"] == conv["greedy_text"]
    snap = os.path.join(hub["HF_HUB_CACHE"], "models--test-org--tiny-chat", "snapshots")
    (commit,) = os.listdir(snap)
    files = sorted(os.listdir(os.path.join(snap, commit)))
    assert "tokenizer.json" in files and "model.safetensors.index.json" in files
    assert os.path.islink(os.path.join(snap, commit, "config.json"))


@pytest.mark.skipif(not os.access(CLI, os.X_OK), reason="build/airllm is not built")
def test_cli_pull_list_run_rm(hub, golden, tmp_path):
    stores = str(tmp_path / "cli-stores")
    env = dict(os.environ, **hub)
    pull = subprocess.run([CLI, "pull", "test-org/tiny-chat", "-c", "none", "--cache-dir", stores],
                          env=env, capture_output=True, text=True, timeout=300)
    assert pull.returncode == 0, pull.stderr
    assert "qwen2" in pull.stdout
    ls = subprocess.run([CLI, "list", "--cache-dir", stores], env=env, capture_output=True,
                        text=True, timeout=60)
    assert "test-org/tiny-chat" in ls.stdout and "none" in ls.stdout
    conv = golden["conversations"][0]
    run = subprocess.run([CLI, "run", "test-org/tiny-chat", conv["messages"][-1]["content"],
                          "-c", "none", "--cache-dir", stores, "--temperature", "0", "-n", "24",
                          "-q"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == conv["greedy_text"] + "\n"
    rm = subprocess.run([CLI, "rm", "test-org/tiny-chat", "--cache-dir", stores], env=env,
                        capture_output=True, text=True, timeout=60)
    assert rm.returncode == 0, rm.stderr
    ls = subprocess.run([CLI, "list", "--cache-dir", stores], env=env, capture_output=True,
                        text=True, timeout=60)
    assert "test-org/tiny-chat" not in ls.stdout


def test_cli_errors(hub, tmp_path):
    if not os.access(CLI, os.X_OK):
        pytest.skip("build/airllm is not built")
    env = dict(os.environ, **hub)
    r = subprocess.run([CLI, "run", "test-org/no-such-model", "hi", "--cache-dir", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "not found" in r.stderr.lower()
    r = subprocess.run([CLI, "frobnicate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    r = subprocess.run([CLI, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Examples:" in r.stdout
