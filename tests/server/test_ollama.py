"""`airllm serve` through the real `ollama` client: chat streamed and not,
generate, format json, options, tags, show, version."""

import json

import pytest

from conftest import MODEL_ID

ollama = pytest.importorskip("ollama")


def client(server):
    return ollama.Client(host=server.url, timeout=60)


def test_chat_plain_and_streamed_agree(server):
    c = client(server)
    msgs = [{"role": "user", "content": "Hello, who are you?"}]
    opts = {"temperature": 0, "num_predict": 24}
    r = c.chat(model=MODEL_ID, messages=msgs, options=opts, stream=False)
    assert r.message.role == "assistant" and r.done
    assert r.done_reason in ("stop", "length")
    assert r.prompt_eval_count > 0 and r.eval_count > 0
    assert r.total_duration > 0 and r.eval_duration > 0 and r.prompt_eval_duration > 0
    parts = list(c.chat(model=MODEL_ID, messages=msgs, options=opts, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content for p in parts) == r.message.content
    assert parts[-1].eval_count == r.eval_count
    # the same text as the OpenAI route (both are the library's greedy answer)
    import urllib.request
    body = json.dumps({"model": MODEL_ID, "messages": msgs, "max_tokens": 24, "temperature": 0})
    req = urllib.request.Request(server.url + "/v1/chat/completions", body.encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as h:
        assert json.loads(h.read())["choices"][0]["message"]["content"] == r.message.content


def test_generate_and_options(server):
    c = client(server)
    r = c.generate(model=MODEL_ID, prompt="Why is the sky blue?", system="Be brief.",
                   options={"temperature": 0, "num_predict": 5, "seed": 3, "top_k": 10,
                            "top_p": 0.9, "num_ctx": 32768})
    assert r.done and r.eval_count <= 5 and r.done_reason == "length"
    s = list(c.generate(model=MODEL_ID, prompt="Why is the sky blue?", system="Be brief.",
                        options={"temperature": 0, "num_predict": 5}, stream=True))
    assert "".join(p.response for p in s) == r.response
    t = r.response
    if len(t) > 3:
        cut = c.generate(model=MODEL_ID, prompt="Why is the sky blue?", system="Be brief.",
                         options={"temperature": 0, "num_predict": 5, "stop": [t[2:4]]})
        assert cut.response == t[:2] and cut.done_reason == "stop"


def test_format_json(server):
    c = client(server)
    r = c.chat(model=MODEL_ID, format="json", options={"temperature": 0.7, "num_predict": 48},
               messages=[{"role": "user", "content": "Describe a dog as JSON"}])
    assert isinstance(json.loads(r.message.content), dict)


def test_tags_show_version(server):
    c = client(server)
    names = [m.model for m in c.list().models]
    assert names == [MODEL_ID]
    info = c.show(MODEL_ID)
    assert info.details.family == "qwen2"
    assert info.modelinfo["general.architecture"] == "qwen2"
    import urllib.request
    with urllib.request.urlopen(server.url + "/api/version", timeout=10) as h:
        assert "version" in json.loads(h.read())


def test_unknown_model(server):
    c = client(server)
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404


def test_num_ctx_is_the_request_context(server):
    """options.num_ctx bounds this request's prompt and answer: a prompt
    longer than it is refused, and the answer stops when the context is
    full; the tokens before that equal an unbounded run's."""
    c = client(server)
    for text in ("Why is the sky blue? Explain in detail.", "Hello", "Count to ten.",
                 "Write a poem about the sea.", "List five colors."):
        msgs = [{"role": "user", "content": text}]
        full = c.chat(model=MODEL_ID, messages=msgs,
                      options={"temperature": 0, "num_predict": 40})
        if full.eval_count > 6:
            break
    assert full.eval_count > 6, "no prompt gave a long enough answer"
    n_prompt = full.prompt_eval_count
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model=MODEL_ID, messages=msgs, options={"num_ctx": n_prompt - 1})
    assert e.value.status_code == 400 and "context" in str(e.value)
    cut = c.chat(model=MODEL_ID, messages=msgs,
                 options={"temperature": 0, "num_predict": 40, "num_ctx": n_prompt + 4})
    assert cut.done_reason == "length" and 1 <= cut.eval_count <= 5
    assert full.message.content.startswith(cut.message.content)
