"""Error paths with raw HTTP (curl-like, on sockets): bad JSON, unknown
model, missing API key, an oversized body, a client closing mid-stream,
the bounded queue, and SIGTERM ending the server with exit code 0."""

import json
import os
import socket
import threading
import time

import pytest

from conftest import MODEL_ID, start


def http(server_or_port, method, path, body=None, headers=None, timeout=60):
    port = server_or_port if isinstance(server_or_port, int) else server_or_port.port
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    h = {"Host": "127.0.0.1", "Content-Type": "application/json", "Connection": "close",
         "Content-Length": str(len(data))}
    h.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode() + data)
        resp = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            resp += chunk
    head, _, rest = resp.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, buf = b"", rest
        while buf:
            size_s, _, buf = buf.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            out, buf = out + buf[:size], buf[size + 2:]
        rest = out
    return status, rest


def openai_error(body):
    e = json.loads(body)["error"]
    assert isinstance(e["message"], str) and e["message"] and "type" in e
    return e["message"]


CHAT = "/v1/chat/completions"


def test_bad_json_and_bad_fields(server):
    st, body = http(server, "POST", CHAT, b"{not json")
    assert st == 400 and "JSON" in openai_error(body)
    st, body = http(server, "POST", CHAT, {"model": MODEL_ID, "messages": "hi"})
    assert st == 400 and "messages" in openai_error(body)
    st, body = http(server, "POST", CHAT, {"model": MODEL_ID, "messages": [{"content": "x"}]})
    assert st == 400
    st, body = http(server, "POST", CHAT, {"model": MODEL_ID, "temperature": "hot",
                                           "messages": [{"role": "user", "content": "x"}]})
    assert st == 400 and "temperature" in openai_error(body)
    st, body = http(server, "POST", CHAT, {"model": MODEL_ID, "n": 2,
                                           "messages": [{"role": "user", "content": "x"}]})
    assert st == 400
    st, body = http(server, "POST", "/api/chat", b"[1,2]")
    assert st == 400 and json.loads(body)["error"]  # Ollama's shape: {"error": "..."}
    st, body = http(server, "GET", CHAT)
    assert st == 405
    st, body = http(server, "GET", "/v1/nothing")
    assert st == 404


def test_unknown_model(server):
    st, body = http(server, "POST", CHAT, {"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]})
    assert st == 404 and "gpt-99" in openai_error(body)
    st, body = http(server, "POST", "/api/generate", {"model": "gpt-99", "prompt": "x"})
    assert st == 404 and "gpt-99" in json.loads(body)["error"]


def test_prompt_longer_than_the_context(server):
    st, body = http(server, "POST", CHAT, {"model": MODEL_ID, "messages": [
        {"role": "user", "content": "word " * 2000}]})
    assert st == 400 and "context" in openai_error(body)


def test_oversized_body_is_413(server):
    big = {"model": MODEL_ID, "messages": [{"role": "user", "content": "x" * 100_000}]}
    st, body = http(server, "POST", CHAT, big)
    assert st == 413 and "larger" in openai_error(body)
    st, _ = http(server, "GET", "/health")
    assert st == 200


def test_health(server):
    st, body = http(server, "GET", "/health")
    assert st == 200 and json.loads(body) == {"status": "ok"}


def stream_and_close(port, n_bytes, path=CHAT, body=None):
    """Starts a streamed request, reads n_bytes of it, closes the socket."""
    body = body or {"model": MODEL_ID, "stream": True, "max_tokens": 400, "temperature": 0,
                    "messages": [{"role": "user", "content": "Tell me everything"}]}
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
    got = b""
    while len(got) < n_bytes:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def metrics(server):
    st, body = http(server, "GET", "/metrics")
    assert st == 200
    return json.loads(body)["models"][0]


def wait_idle(server, limit=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        m = metrics(server)
        if m["active"] == 0 and m["queued"] == 0:
            return m
        time.sleep(0.05)
    raise AssertionError("the server did not become idle")


def test_api_key_required(tmp_path_factory):
    s = start(tmp_path_factory, "--api-key", "s3cret")
    try:
        msg = {"model": MODEL_ID, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
        st, body = http(s, "POST", CHAT, msg)
        assert st == 401 and "API key" in openai_error(body)
        st, body = http(s, "POST", CHAT, msg, {"Authorization": "Bearer wrong"})
        assert st == 401
        st, body = http(s, "GET", "/api/tags", None, {"Authorization": "Bearer s3cret"})
        assert st == 200
        st, body = http(s, "POST", CHAT, msg, {"Authorization": "Bearer s3cret"})
        assert st == 200
        st, _ = http(s, "GET", "/health")
        assert st == 200
    finally:
        assert s.stop() == 0


def test_non_loopback_bind_needs_a_key():
    import subprocess
    from conftest import binary, TINY_CHAT
    r = subprocess.run([binary(), "serve", TINY_CHAT, "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and b"API key" in r.stderr


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The default model (fetched by scripts/fetch-default-model.sh) with one
    place in the sweep and one in the queue: slow enough on a CPU that
    requests overlap, and long answers (tiny_chat ends its answers early)."""
    from conftest import default_model
    model = default_model()
    s = start(tmp_path_factory, "--max-batch", "1", "--max-queue", "1", "--ctx", "1024",
              model=model)
    s.model_id = os.path.basename(model)
    yield s
    assert s.stop() == 0


COUNT = [{"role": "user", "content": "Count from 1 to 500, one number per line."}]


def test_client_closing_mid_stream_is_cancelled(small):
    # the same request, not dropped, runs to its max_tokens
    st, body = http(small, "POST", CHAT, {"model": small.model_id, "max_tokens": 120,
                                          "temperature": 0, "messages": COUNT})
    assert st == 200 and json.loads(body)["usage"]["completion_tokens"] == 120
    for path, body in (
        (CHAT, {"model": small.model_id, "stream": True, "max_tokens": 120, "temperature": 0,
                "messages": COUNT}),
        ("/api/chat", {"model": small.model_id, "messages": COUNT,
                       "options": {"num_predict": 120, "temperature": 0}}),
    ):
        before = wait_idle(small)["tokens"]
        got = stream_and_close(small.port, 700, path, body)
        assert b"200 OK" in got
        after = wait_idle(small)["tokens"]
        # the sequence left the sweep long before its 120 tokens
        assert 0 < after - before < 60, (path, before, after)


def test_full_queue_answers_503(small):
    req = {"model": small.model_id, "max_tokens": 48, "temperature": 0, "messages": COUNT}
    results = []
    go = threading.Barrier(6)

    def run():
        go.wait()
        results.append(http(small, "POST", CHAT, req))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    codes = [c for c, _ in results]
    assert codes.count(200) >= 2 and 503 in codes, codes
    busy = [b for c, b in results if c == 503][0]
    assert "busy" in openai_error(busy)
    # everything that was answered is the same greedy text
    texts = {json.loads(b)["choices"][0]["message"]["content"] for c, b in results if c == 200}
    assert len(texts) == 1


def test_slow_client_never_stalls_the_sweep(small):
    """A streaming client that reads nothing (a 2 KB receive buffer) while
    300 tokens (~75 KB of events, more than the socket buffers hold) are
    generated: the request still runs to its end at the sweep's pace, and the
    whole stream is there to read afterwards."""
    before = wait_idle(small)["tokens"]
    body = json.dumps({"model": small.model_id, "stream": True, "max_tokens": 300,
                       "stream_options": {"include_usage": True},
                       "temperature": 0, "messages": [{"role": "user", "content":
                       "List the numbers from 1 to 1000 separated by commas."}]}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(("127.0.0.1", small.port))
    s.sendall((f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    time.sleep(0.5)
    after = wait_idle(small, limit=240)["tokens"]  # finished without a byte read
    assert after - before == 300, (before, after)
    s.settimeout(60)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    # every event is there: deltas (one per sweep step: a step that accepts
    # several speculated tokens sends them in one delta), the finish, [DONE]
    assert len(got) > 30000 and b"data: [DONE]" in got
    events = [json.loads(line[6:]) for line in got.split(b"\n")
              if line.startswith(b"data: {")]
    assert len(events) > 100
    # all 300 tokens were sent: the usage record counts them, and the deltas
    # carry the same text the request gives when read at once
    assert events[-1]["usage"]["completion_tokens"] == 300
    finish = [e["choices"][0]["finish_reason"] for e in events if e.get("choices")]
    assert finish[-1] == "length"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if e.get("choices"))
    req = json.loads(body)
    del req["stream"], req["stream_options"]
    code, whole = http(small, "POST", CHAT, req)
    assert code == 200
    assert text == json.loads(whole)["choices"][0]["message"]["content"]
