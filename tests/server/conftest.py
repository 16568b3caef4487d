"""Fixtures for the `airllm serve` tests: a real server process on a free
loopback port, serving the committed tiny_chat model.

The binary is $AIRLLM_BIN, else build/airllm. Each server gets its own layer
store cache under a temporary folder.
"""

import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TINY_CHAT = os.path.join(REPO, "tests", "fixtures", "models", "tiny_chat")
MODEL_ID = "tiny_chat"


def binary():
    return os.environ.get("AIRLLM_BIN") or os.path.join(REPO, "build", "airllm")


class Server:
    """One `airllm serve` process; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, args, cache_dir, exe=None, env=None, timeout=120):
        exe = exe or binary()
        if not os.path.isfile(exe):
            pytest.skip(f"{exe} is not built")
        e = dict(os.environ)
        e.update(env or {})
        e["AIRLLM_CACHE"] = cache_dir
        self.proc = subprocess.Popen([exe, "serve", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=e)
        self.stderr = b""
        self.url = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            r, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                self.stderr += chunk
                m = re.search(rb"listening on (http://[^\s]+)", self.stderr)
                if m:
                    self.url = m.group(1).decode()
                    break
        if not self.url:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the server did not start:\n" + self.stderr.decode(errors="replace"))
        self.port = int(self.url.rsplit(":", 1)[1])

    def drain(self):
        while True:
            r, _, _ = select.select([self.proc.stderr], [], [], 0)
            if not r:
                return
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                return
            self.stderr += chunk

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out = self.proc.communicate(timeout=timeout)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate()[1]
        self.stderr += out or b""
        return self.proc.returncode


def start(tmp_path_factory, *extra, exe=None, env=None, port=0, model=None):
    cache = str(tmp_path_factory.mktemp("cache"))
    args = [model, "-q"] if model else [TINY_CHAT, "-c", "none", "-q"]
    return Server([*args, "--port", str(port), *extra], cache, exe=exe, env=env)


def default_model():
    """The real default model (SmolLM2-135M-Instruct GGUF), or a skip."""
    d = os.environ.get("AIRLLM_MODELS_DIR") or os.path.join(REPO, "models")
    p = os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.isfile(p):
        pytest.skip(f"{p} is missing: scripts/fetch-default-model.sh fetches it")
    return p


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start(tmp_path_factory, "--max-body", "64K")
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr.decode(errors="replace")


def port_free(port):
    with socket.socket() as sk:
        try:
            sk.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def get_json(url, timeout=30):
    import json
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read())
