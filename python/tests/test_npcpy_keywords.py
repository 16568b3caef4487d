"""airllm_c.get_llm_response where npcpy 2.1.25 (npcpy/llm_funcs.py
get_llm_response and npcpy/gen/response.py, its litellm and airllm paths)
defines the behaviour: a prompt given with messages that end in a user turn
replaces that turn's content; context is appended to the prompt; npcpy's own
keywords include_usage, think, n_samples, auto_process_tool_calls, images and
api_url are accepted, honoured where they mean something for a local
text-only model, and refused with a message where they cannot be met."""

import json
import os

import pytest

from conftest import REPO

import airllm_c


def test_prompt_replaces_the_content_of_a_last_user_turn(ask, golden):
    conv = golden["conversations"][0]
    prompt = conv["messages"][-1]["content"]
    msgs = [{"role": "user", "content": "an earlier draft", "name": "kept"}]
    r = ask(prompt, messages=msgs, max_tokens=24)
    assert r["response"] == conv["greedy_text"]
    assert r["messages"][:-1] == [{"role": "user", "content": prompt, "name": "kept"}]
    assert r["usage"]["prompt_tokens"] == len(conv["prompt_ids"])
    assert msgs == [{"role": "user", "content": "an earlier draft", "name": "kept"}]  # untouched
    # content as parts: the first text part takes the prompt (npcpy's litellm path)
    parts = [{"role": "user", "content": [{"type": "text", "text": "old"},
                                          {"type": "text", "text": "!"}]}]
    r = ask("new", messages=parts, max_tokens=1)
    assert r["messages"][0]["content"] == [{"type": "text", "text": "new"},
                                           {"type": "text", "text": "!"}]
    assert parts[0]["content"][0]["text"] == "old"
    # after another role, the prompt is a new user turn
    r = ask("new", messages=[{"role": "user", "content": "a"},
                             {"role": "assistant", "content": "b"}], max_tokens=1)
    assert [m["role"] for m in r["messages"]] == ["user", "assistant", "user", "assistant"]
    assert r["messages"][2]["content"] == "new"
    # an empty prompt adds nothing (npcpy tests `if prompt:`)
    r = ask("", messages=[{"role": "user", "content": "a"}], max_tokens=1)
    assert r["messages"][0]["content"] == "a" and len(r["messages"]) == 2


def test_streaming_sends_the_same_conversation(ask, golden):
    conv = golden["conversations"][0]
    s = ask(conv["messages"][-1]["content"], messages=[{"role": "user", "content": "x"}],
            max_tokens=24, stream=True)
    assert "".join(s) == conv["greedy_text"]
    assert s.result["messages"][0]["content"] == conv["messages"][-1]["content"]


def test_context_is_appended_to_the_prompt(ask):
    r = ask("Question", context="some facts", max_tokens=1)
    assert r["messages"][0]["content"] == "Question\n\n\nUser Provided Context: some facts"
    r = ask(None, context={"k": 1}, max_tokens=1)
    assert r["messages"][0]["content"] == "User Provided Context: {'k': 1}"


def test_include_usage(ask):
    r = ask("Hi", include_usage=True, max_tokens=3)
    u = r["usage"]
    assert u["input_tokens"] == u["prompt_tokens"] > 0
    assert u["output_tokens"] == u["completion_tokens"] > 0
    # a stream ends with npcpy's usage item
    items = list(ask("Hi", include_usage=True, max_tokens=3, stream=True))
    assert items[-1] == {"type": "usage", "input_tokens": u["prompt_tokens"],
                         "output_tokens": u["completion_tokens"]}
    assert all(isinstance(p, str) for p in items[:-1])
    assert all(isinstance(p, str) for p in ask("Hi", max_tokens=3, stream=True))
    with pytest.raises(TypeError, match="include_usage"):
        ask("Hi", include_usage="yes")


def test_n_samples_returns_every_run(ask):
    r = ask("Hi", n_samples=3, temperature=1.0, seed=5, max_tokens=6)
    assert [run["sample_index"] for run in r["runs"]] == [0, 1, 2]
    assert r["response"] == r["runs"][0]["response"]
    assert r["messages"] == r["runs"][0]["raw"]["messages"]
    for i, run in enumerate(r["runs"]):
        assert run["combo"] == {}
        assert run["response"] == ask("Hi", temperature=1.0, seed=5 + i, max_tokens=6)["response"]
    assert len({run["response"] for run in r["runs"]}) > 1
    assert ask("Hi", n_samples=1, max_tokens=2).keys() == ask("Hi", max_tokens=2).keys()
    assert "runs" not in ask("Hi", n_samples=None, max_tokens=2)
    with pytest.raises(ValueError, match="stream=False"):
        ask("Hi", n_samples=2, stream=True)
    with pytest.raises(ValueError, match="n_samples"):
        ask("Hi", n_samples=-1)


def test_auto_process_tool_calls_api_url_images(ask):
    assert ask("Hi", auto_process_tool_calls=True, max_tokens=1)["tool_calls"] == []
    assert ask("Hi", api_url="http://127.0.0.1:9", api_key="k", max_tokens=1)["response"] \
        is not None
    assert ask("Hi", images=[], max_tokens=1)["response"] is not None
    with pytest.raises(ValueError, match="images: airllm_c runs text-only"):
        ask("Hi", images=["cat.png"])
    # tools are honoured (test_tools.py); a malformed tool is refused by name
    with pytest.raises(airllm_c.AirLLMError, match=r"tools\[0\]"):
        ask("Hi", tools=[{"type": "function"}], auto_process_tool_calls=True)
    with pytest.raises(ValueError, match="tool_map: airllm_c returns tool calls"):
        ask("Hi", tool_map={"f": print})
    with pytest.raises(TypeError, match="auto_process_tool_calls"):
        ask("Hi", auto_process_tool_calls="yes")


@pytest.fixture(scope="module")
def thinking_model(tiny_chat, tmp_path_factory):
    """tiny_chat with Qwen3's chat template, which reads enable_thinking."""
    d = tmp_path_factory.mktemp("tiny-chat-qwen3-template")
    for f in os.listdir(tiny_chat):
        if f != "tokenizer_config.json":
            os.symlink(os.path.join(tiny_chat, f), d / f)
    with open(os.path.join(tiny_chat, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    with open(os.path.join(REPO, "tests", "fixtures", "chat", "templates", "qwen3.jinja"),
              encoding="utf-8") as f:
        cfg["chat_template"] = f.read()
    with open(d / "tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return str(d)


def test_think_sets_enable_thinking(ask, thinking_model):
    m = airllm_c.Model(thinking_model, compression=None)
    msgs = [{"role": "user", "content": "Hi"}]
    plain = m.apply_chat_template(msgs)
    off = m.apply_chat_template(msgs, enable_thinking=False)
    assert off == plain + "<think>\n\n</think>\n\n"
    for think, text in ((None, plain), (True, plain), (False, off), ("high", plain)):
        r = ask("Hi", model=thinking_model, think=think, max_tokens=1)
        assert r["usage"]["prompt_tokens"] == len(m.tokenize(text, add_special=False)), think
    # Model's methods take it too
    assert m.response("Hi", think=False, max_tokens=1, temperature=0)["usage"][
        "prompt_tokens"] == len(m.tokenize(off, add_special=False))
    with pytest.raises(ValueError, match="think"):
        ask("Hi", think="maybe")
    with pytest.raises(ValueError, match="apply_chat_template"):
        m.generate_ids([1, 2], think=False)


def test_other_names_still_raise_type_error(ask):
    with pytest.raises(TypeError, match="no_such_option"):
        ask("Hi", no_such_option=1)
