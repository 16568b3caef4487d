"""npcpy 2.1.25's get_llm_response against `airllm serve` through its
llamacpp-server (default URL, port 8080), openai-like (api_url) and ollama
(OLLAMA_HOST) providers."""

import os

import pytest

from conftest import MODEL_ID, port_free, start

npcpy_llm = pytest.importorskip("npcpy.llm_funcs")


def ask(**kw):
    r = npcpy_llm.get_llm_response("Hello, who are you?", model=MODEL_ID,
                                        temperature=0, max_tokens=12, **kw)
    assert isinstance(r, dict)
    assert isinstance(r.get("response"), str) and r["response"], r
    return r["response"]


def reference(server):
    import json
    import urllib.request
    body = json.dumps({"model": MODEL_ID, "max_tokens": 12, "temperature": 0,
                       "messages": [{"role": "user", "content": "Hello, who are you?"}]})
    req = urllib.request.Request(server.url + "/v1/chat/completions", body.encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as h:
        return json.loads(h.read())["choices"][0]["message"]["content"]


def test_openai_like_with_api_url(server):
    assert ask(provider="openai-like", api_url=server.url + "/v1", api_key="x") == reference(server)


def test_ollama_provider_with_ollama_host(server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    assert ask(provider="ollama")


def test_llamacpp_server_default_url(tmp_path_factory):
    if not port_free(8080):
        pytest.skip("port 8080 is taken: npcpy's llamacpp-server provider needs it")
    s = start(tmp_path_factory, port=8080)
    try:
        assert s.port == 8080
        assert ask(provider="llamacpp-server") == reference(s)
    finally:
        assert s.stop() == 0
