"""get_llm_response and Model on the tiny_chat model (real tokenizer and
chat template, random weights): result shape, goldens, streaming."""

import collections.abc
import json
import threading

import pytest

import airllm_c


def test_result_shape(ask):
    r = ask("Hello, who are you?")
    assert set(r) >= {"response", "messages", "raw_response", "tool_calls", "tool_results",
                      "usage"}
    assert isinstance(r["response"], str) and r["response"]
    assert r["raw_response"] == r["response"]
    assert r["tool_calls"] == [] and r["tool_results"] == []
    assert r["messages"] == [
        {"role": "user", "content": "Hello, who are you?"},
        {"role": "assistant", "content": r["response"]},
    ]
    u = r["usage"]
    for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert isinstance(u[k], int), k
    assert u["prompt_tokens"] > 0 and 0 < u["completion_tokens"] <= 16
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert r["finish_reason"] in ("stop", "length")


def test_messages_are_appended_and_not_mutated(ask):
    msgs = [
        {"role": "system", "content": "You are a helpful assistant.", "name": "sys"},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
    ]
    before = json.dumps(msgs)
    r = ask("Who are you?", messages=msgs, max_tokens=4)
    assert json.dumps(msgs) == before
    assert r["messages"][:3] == msgs  # the caller's dicts, extra keys included
    assert r["messages"][3] == {"role": "user", "content": "Who are you?"}
    assert r["messages"][4] == {"role": "assistant", "content": r["response"]}
    assert len(r["messages"]) == 5


def test_prompt_equal_to_last_user_turn_is_not_repeated(ask):
    msgs = [{"role": "user", "content": "Hello"}]
    r = ask("Hello", messages=msgs, max_tokens=4)
    assert [m["role"] for m in r["messages"]] == ["user", "assistant"]


def test_greedy_matches_golden(ask, golden):
    for conv in golden["conversations"]:
        r = ask(messages=conv["messages"], max_tokens=golden["max_new_tokens"])
        assert r["response"] == conv["greedy_text"], conv["name"]
        n_new = len(conv["greedy_ids"]) - (1 if conv["stopped_on_eos"] else 0)
        assert r["usage"]["completion_tokens"] in (n_new, len(conv["greedy_ids"])), conv["name"]


def test_greedy_is_deterministic(ask):
    assert ask("Tell me a story.")["response"] == ask("Tell me a story.")["response"]


def test_sampling_options_are_accepted(ask):
    r = ask("Hello", temperature=0.8, top_p=0.9, top_k=40, seed=123, max_tokens=8)
    again = ask("Hello", temperature=0.8, top_p=0.9, top_k=40, seed=123, max_tokens=8)
    assert r["response"] == again["response"]  # same seed, same text


def test_stop_string(ask, golden):
    conv = golden["conversations"][0]
    text = conv["greedy_text"]
    if len(text) < 4:
        pytest.skip("greedy text too short to cut")
    stop = text[2:4]
    r = ask(messages=conv["messages"], max_tokens=golden["max_new_tokens"], stop=[stop])
    assert r["response"] == text[: text.index(stop)]
    assert r["finish_reason"] == "stop"


def test_stream_concatenates_to_response(ask):
    full = ask("Hello, who are you?", max_tokens=20)
    s = ask("Hello, who are you?", max_tokens=20, stream=True)
    assert isinstance(s, collections.abc.Generator)
    pieces = list(s)
    assert pieces and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == full["response"]
    assert s.result["response"] == full["response"]
    assert s.result["usage"]["completion_tokens"] == full["usage"]["completion_tokens"]


def test_stream_return_value_is_the_result(ask):
    def consume():
        return (yield from ask("Hello", max_tokens=6, stream=True))

    g = consume()
    pieces = []
    try:
        while True:
            pieces.append(next(g))
    except StopIteration as e:
        result = e.value
    assert result["response"] == "".join(pieces)
    assert result["messages"][-1] == {"role": "assistant", "content": result["response"]}


def _workers():
    return [t for t in threading.enumerate() if t.name == "airllm_c-generate"]


def test_closing_a_stream_stops_generation(ask, tiny_chat):
    # temperature 0 on a random model rarely stops by itself before the
    # context fills; the cap is far above what the first pieces need
    s = ask("Tell me everything.", max_tokens=400, stream=True)
    first = next(s)
    assert isinstance(first, str)
    s.close()
    assert not _workers()  # the worker was joined
    r = s.result
    assert r is not None and r["finish_reason"] in ("callback", "stop")
    assert r["usage"]["completion_tokens"] < 400
    with pytest.raises(StopIteration):
        next(s)
    # the model is free again
    assert ask("Hello", max_tokens=2)["response"]


def test_stream_in_with_block_and_garbage_collection(ask):
    with ask("Hello", max_tokens=200, stream=True) as s:
        next(s)
    assert not _workers()
    s2 = ask("Hello", max_tokens=200, stream=True)
    next(s2)
    del s2
    assert not _workers()


def test_error_in_consumer_stops_the_stream(ask):
    with pytest.raises(ZeroDivisionError):
        for _ in ask("Hello", max_tokens=200, stream=True):
            1 / 0
    assert not _workers()


def test_concurrent_calls(ask):
    out = [None] * 3
    def work(i):
        out[i] = ask("Hello, who are you?", max_tokens=6)["response"]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] and out.count(out[0]) == 3


@pytest.mark.parametrize("seed", range(8))
def test_format_json_parses(ask, seed):
    # constrained decoding: even a random-weight model sampling at temperature 1
    # produces a JSON object every time
    r = ask("List three colours as JSON.", format="json", max_tokens=64, temperature=1.0,
            seed=seed + 1)
    assert isinstance(json.loads(r["response"]), dict)


def test_format_json_adds_instruction(ask):
    plain = ask("Hello", max_tokens=2)
    constrained = ask("Hello", max_tokens=2, format="json")
    assert constrained["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]


def test_model_object(tiny_chat, cache_dir, ask):
    m = airllm_c.Model(tiny_chat, compression=None, cache_dir=cache_dir)
    assert m.generate("Hello, who are you?", temperature=0, max_tokens=8) == \
        ask("Hello, who are you?", max_tokens=8)["response"]
    msgs = [{"role": "user", "content": "Hello"}]
    text = m.chat(msgs, temperature=0, max_tokens=8)
    assert "".join(m.chat_stream(msgs, temperature=0, max_tokens=8)) == text
    assert "".join(m.generate_stream("Hello", temperature=0, max_tokens=8)) == text
    with_system = m.generate("Hello", system="You answer in JSON only.", temperature=0,
                             max_tokens=8)
    assert isinstance(with_system, str)
    r = m.response("Hello", temperature=0, max_tokens=8)
    assert r["response"] == text


def test_model_object_rejects_misplaced_options(tiny_chat):
    with pytest.raises(TypeError, match="chat\\(\\) or generate\\(\\)"):
        airllm_c.Model(tiny_chat, max_tokens=3)
    m = airllm_c.Model(tiny_chat, compression=None)
    with pytest.raises(TypeError, match="Model\\(\\)"):
        m.generate("Hello", compression="8bit")


def test_raw_completion_of_the_rendered_prompt_matches_golden(ask, golden):
    # raw=True: the text goes to the tokenizer as it is (this tokenizer adds no
    # BOS), so the chat template's own rendering gives transformers' ids and
    # greedy continuation
    for conv in golden["conversations"]:
        r = ask(conv["prompt_text"], raw=True, max_tokens=golden["max_new_tokens"])
        assert r["usage"]["prompt_tokens"] == len(conv["prompt_ids"]), conv["name"]
        assert r["response"] == conv["greedy_text"], conv["name"]


def test_raw_takes_no_messages(ask):
    with pytest.raises(ValueError, match="raw"):
        ask("Hello", raw=True, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(TypeError, match="raw"):
        ask("Hello", raw="yes")


def test_raw_differs_from_chat(ask):
    # without the template the model sees other ids
    chat, raw = ask("Hello", max_tokens=4), ask("Hello", raw=True, max_tokens=4)
    assert raw["usage"]["prompt_tokens"] < chat["usage"]["prompt_tokens"]
