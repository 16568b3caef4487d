"""The `airllm` command against the local hub server (tests/hubserver/server.py)
when things go wrong or the model is laid out the transformers 5.x way:

- a repo whose chat template is only in chat_template.jinja (tokenizer saved by
  transformers 5.x) downloads that file and answers with transformers' greedy text;
- a repo without any chat template answers, and the CLI says so in one line;
- a stalling server: retries are reported on stderr although it is not a
  terminal, and the download completes once the server recovers;
- a password in HF_ENDPOINT never reaches stderr.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from conftest import REPO

SERVER = os.path.join(REPO, "tests", "hubserver", "server.py")
CLI = os.path.join(REPO, "build", "airllm")
V5_TOKENIZER = os.path.join(REPO, "tests", "fixtures", "chat", "folders", "v5_jinja")
NO_TEMPLATE_LINE = "has no chat template"

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason="build/airllm is not built")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_chat):
    root = tmp_path_factory.mktemp("hubroot")
    # tiny_chat with its tokenizer re-saved by transformers 5.x
    v5 = root / "test-org" / "tiny-chat-v5"
    shutil.copytree(tiny_chat, v5)
    (v5 / "golden.json").unlink()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(os.path.join(V5_TOKENIZER, name), v5 / name)
    # tiny_chat without any chat template
    bare = root / "test-org" / "tiny-chat-bare"
    shutil.copytree(tiny_chat, bare)
    (bare / "golden.json").unlink()
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    del cfg["chat_template"]
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, SERVER, "--root", str(root), "--port", "0",
                             "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    yield f"127.0.0.1:{port}"
    proc.stdin.close()
    proc.terminate()
    proc.wait(timeout=10)


def control(host, path):
    with urllib.request.urlopen(f"http://{host}{path}", timeout=30) as r:
        return json.loads(r.read())


def cli(host, tmp_path, *args, endpoint=None, extra_env=None, timeout=300):
    env = dict(os.environ, HF_ENDPOINT=endpoint or f"http://{host}",
               HF_HUB_CACHE=str(tmp_path / "hub-cache"))
    env.pop("HF_HUB_OFFLINE", None)
    env.update(extra_env or {})
    return subprocess.run([CLI, *args, "-c", "none", "--cache-dir", str(tmp_path / "stores")],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_chat_template_jinja_is_downloaded_and_used(hub, golden, tmp_path):
    conv = golden["conversations"][0]
    r = cli(hub, tmp_path, "run", "test-org/tiny-chat-v5", conv["messages"][-1]["content"],
            "--temperature", "0", "-n", "24")
    assert r.returncode == 0, r.stderr
    assert r.stdout == conv["greedy_text"] + "\n"
    assert NO_TEMPLATE_LINE not in r.stderr
    snaps = tmp_path / "hub-cache" / "models--test-org--tiny-chat-v5" / "snapshots"
    (commit,) = os.listdir(snaps)
    assert (snaps / commit / "chat_template.jinja").is_file()


def test_cli_says_when_the_fallback_is_used(hub, tmp_path):
    r = cli(hub, tmp_path, "run", "test-org/tiny-chat-bare", "Hi", "--temperature", "0", "-n", "4")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if NO_TEMPLATE_LINE in ln]
    assert len(lines) == 1, r.stderr
    assert "role: content" in lines[0]


def test_stall_retries_are_reported_without_a_terminal(hub, tmp_path):
    control(hub, "/_test/reset")
    control(hub, "/_test/inject?mode=stall&match=model-00001&count=2&method=GET")
    r = cli(hub, tmp_path, "pull", "test-org/tiny-chat-v5",
            extra_env={"AIR_HUB_LOW_SPEED_LIMIT": "1000", "AIR_HUB_LOW_SPEED_TIME": "1",
                       "AIR_HUB_TIMEOUT": "120"})
    assert r.returncode == 0, r.stderr
    retries = [ln for ln in r.stderr.splitlines() if "retrying" in ln]
    assert len(retries) == 2, r.stderr
    assert all("model-00001-of-00002.safetensors" in ln and "resuming at" in ln for ln in retries)
    # each retry asked only for the bytes not yet kept
    log = control(hub, "/_test/log")
    gets = [e for e in log if e["method"] == "GET" and "model-00001" in e["path"]]
    assert len(gets) == 3 and gets[0]["range"] is None
    assert all(e["range"] and e["range"].startswith("bytes=") for e in gets[1:])


def test_password_in_endpoint_is_not_shown(hub, tmp_path):
    r = cli(hub, tmp_path, "run", "test-org/no-such-model", "hi",
            endpoint=f"http://user:secret@{hub}")
    assert r.returncode == 1
    assert "not found" in r.stderr.lower()
    assert "secret" not in r.stderr
    assert "***@" in r.stderr
