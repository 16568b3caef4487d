"""Server life cycle: /health answers 503 while the model loads and 200
after, SIGINT ends the server with exit code 0, and the KV budget
(--kv-ram) bounds the requests' caches."""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import MODEL_ID, binary, default_model, start
from test_errors import http, openai_error


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_is_503_while_loading_then_200(tmp_path):
    model = default_model()  # its first open splits the GGUF: long enough to see
    port = free_port()
    env = dict(os.environ, AIRLLM_CACHE=str(tmp_path))
    p = subprocess.Popen([binary(), "serve", model, "--port", str(port), "-q"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    seen = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    seen.append((r.status, json.loads(r.read())))
                    break
            except urllib.error.HTTPError as e:
                seen.append((e.code, json.loads(e.read())))
                # other routes answer 503 too until the model is ready
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models")
                try:
                    urllib.request.urlopen(req, timeout=5)
                except urllib.error.HTTPError as e2:
                    assert e2.code == 503
            except (ConnectionError, urllib.error.URLError):
                pass  # not listening yet
            time.sleep(0.02)
        assert seen and seen[-1] == (200, {"status": "ok"}), seen
        assert any(code == 503 for code, _ in seen), seen
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1]
        assert p.returncode == 0, err
        assert b"listening on http://127.0.0.1:%d" % port in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_kv_budget(tmp_path_factory):
    # tiny_chat: 512 bytes of KV cache per position; 100 KiB holds one
    # request of ~150 positions at a time
    s = start(tmp_path_factory, "--kv-ram", "100K")
    try:
        msg = [{"role": "user", "content": "Hello"}]
        st, body = http(s, "POST", "/v1/chat/completions",
                        {"model": MODEL_ID, "max_tokens": 400, "messages": msg})
        assert st == 400 and "KV cache" in openai_error(body)
        codes = []

        def run():
            codes.append(http(s, "POST", "/v1/chat/completions",
                              {"model": MODEL_ID, "max_tokens": 100, "temperature": 0.9,
                               "messages": msg})[0])

        ts = [threading.Thread(target=run) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert codes == [200] * 6
        # the scheduler's own peak: what polling /metrics could miss on a fast machine
        st, body = http(s, "GET", "/metrics")
        peak = [json.loads(body)["models"][0]["kv_bytes_peak"]]
        assert 0 < peak[0] <= 100 * 1024, peak
    finally:
        assert s.stop() == 0


def test_two_models(tmp_path_factory):
    from conftest import TINY_CHAT
    small = default_model()
    s = start(tmp_path_factory, small, model=TINY_CHAT)
    try:
        st, body = http(s, "GET", "/v1/models")
        ids = [m["id"] for m in json.loads(body)["data"]]
        assert ids == [MODEL_ID, os.path.basename(small)]
        for mid in ids:
            st, body = http(s, "POST", "/v1/chat/completions", {
                "model": mid, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
            assert st == 200 and json.loads(body)["model"] == mid
        st, body = http(s, "POST", "/api/show", {"model": os.path.basename(small) + ":latest"})
        assert st == 200 and json.loads(body)["details"]["family"] == "llama"
    finally:
        assert s.stop() == 0
