"""`airllm serve` through the real `openai` client: chat (plain, streamed,
JSON mode), completions, models; the answers equal the library's own
(air_chat through the airllm_c binding is not needed: the server's answer
alone vs. streamed vs. concurrent must agree, and greedy text must match the
transformers golden of tiny_chat)."""

import json
import os

import pytest

from conftest import MODEL_ID, TINY_CHAT

openai = pytest.importorskip("openai")


def client(server, **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=kw.pop("api_key", "none"),
                         max_retries=0, timeout=60, **kw)


def golden():
    with open(os.path.join(TINY_CHAT, "golden.json"), encoding="utf-8") as f:
        return json.load(f)


def test_chat_greedy_matches_transformers(server):
    c = client(server)
    for conv in golden()["conversations"]:
        r = c.chat.completions.create(model=MODEL_ID, messages=conv["messages"], max_tokens=24,
                                      temperature=0)
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].message.content == conv["greedy_text"], conv["name"]
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.object == "chat.completion" and r.model == MODEL_ID


def test_chat_stream_equals_plain_and_reports_usage(server):
    c = client(server)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    plain = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=20, temperature=0)
    chunks = list(c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=20,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)


def test_sampling_params_and_stop(server):
    c = client(server)
    msgs = [{"role": "user", "content": "Tell me a story"}]
    a = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=16, temperature=0.9,
                                  top_p=0.9, seed=42)
    b = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=16, temperature=0.9,
                                  top_p=0.9, seed=42)
    assert a.choices[0].message.content == b.choices[0].message.content  # same seed, same draws
    full = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=16, temperature=0)
    t = full.choices[0].message.content
    assert len(t) > 6
    cut = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=16, temperature=0,
                                    stop=[t[4:7]])
    assert cut.choices[0].finish_reason == "stop"
    assert t.startswith(cut.choices[0].message.content) and len(cut.choices[0].message.content) <= 4
    n = c.chat.completions.create(model=MODEL_ID, messages=msgs, max_completion_tokens=3, temperature=0)
    assert n.usage.completion_tokens <= 3


def test_tool_and_content_parts(server):
    c = client(server)
    r = c.chat.completions.create(model=MODEL_ID, max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": "Let me check."},
        {"role": "tool", "content": "4", "tool_call_id": "x"},
    ])
    assert r.choices[0].finish_reason in ("stop", "length")


def test_json_object_mode(server):
    c = client(server)
    for seed in (1, 2, 3):
        r = c.chat.completions.create(model=MODEL_ID, max_tokens=48, temperature=0.8, seed=seed,
                                      response_format={"type": "json_object"},
                                      messages=[{"role": "user", "content": "A JSON object about cats"}])
        obj = json.loads(r.choices[0].message.content)
        assert isinstance(obj, dict)
        # the complete object ends the answer: a natural stop unless it took every token
        assert r.choices[0].finish_reason == "stop" or r.usage.completion_tokens == 48


def test_models(server):
    c = client(server)
    ids = [m.id for m in c.models.list()]
    assert ids == [MODEL_ID]
    assert c.models.retrieve(MODEL_ID).id == MODEL_ID


def test_completions_raw_prompt(server):
    c = client(server)
    r = c.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.usage.completion_tokens > 0
    s = c.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=8, temperature=0,
                             stream=True)
    assert "".join(ch.choices[0].text for ch in s) == r.choices[0].text


def test_unknown_model_is_404(server):
    c = client(server)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
