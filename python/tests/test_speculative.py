"""Speculative decoding through get_llm_response and Model: draft_model=,
speculative=, draft_max= give the same reply as plain decoding, and usage
reports sweeps, tokens per sweep and the acceptance rate."""

import os

import pytest

import airllm_c


def test_draft_and_lookup_give_the_plain_reply(ask, golden, tiny_chat):
    for conv in golden["conversations"]:
        plain = ask(messages=conv["messages"], max_tokens=24, speculative=False)
        assert plain["usage"]["tokens_per_sweep"] in (0, 1)
        assert plain["usage"]["acceptance_rate"] == 0
        for opts in ({"speculative": True, "draft_max": 8},
                     {"draft_model": tiny_chat, "draft_compression": "8bit"},
                     {"draft_model": tiny_chat, "speculative": True, "draft_max": 32}):
            r = ask(messages=conv["messages"], max_tokens=24, **opts)
            assert r["response"] == plain["response"], (conv["name"], opts)
            assert r["finish_reason"] == plain["finish_reason"]
            u = r["usage"]
            assert u["completion_tokens"] == plain["usage"]["completion_tokens"]
            assert isinstance(u["sweeps"], int) and u["sweeps"] >= 1
            assert u["tokens_per_sweep"] >= 1
            assert 0 <= u["acceptance_rate"] <= 1


def test_a_good_draft_gives_several_tokens_per_sweep(ask, tiny_chat):
    r = ask("Hello, who are you?", max_tokens=24, draft_model=tiny_chat,
            draft_compression="8bit", draft_max=4)
    u = r["usage"]
    assert u["accepted"] > 0 and u["tokens_per_sweep"] > 1.5, u


def test_sampled_reply_is_the_plain_one_with_the_same_seed(ask, tiny_chat):
    kw = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=5, max_tokens=24)
    plain = ask("Hello, who are you?", speculative=False, **kw)
    r = ask("Hello, who are you?", draft_model=tiny_chat, draft_compression="8bit", **kw)
    assert r["response"] == plain["response"]


def test_model_object_takes_the_options(tiny_chat, cache_dir):
    m = airllm_c.Model(tiny_chat, compression=None, cache_dir=cache_dir)
    a = m.generate("Hello, who are you?", max_tokens=12, temperature=0, speculative=False)
    b = m.generate("Hello, who are you?", max_tokens=12, temperature=0, draft_model=tiny_chat,
                   draft_compression="8bit")
    assert a == b


def test_bad_options_are_refused(ask, tiny_chat):
    with pytest.raises(TypeError):
        ask("hi", speculative="yes")
    with pytest.raises(ValueError):
        ask("hi", draft_max=65)
    gguf = os.path.join(os.path.dirname(os.path.dirname(tiny_chat)), "gguf", "tiny_llama.gguf")
    with pytest.raises(airllm_c.AirLLMError, match="vocabulary"):
        ask("hi", draft_model=gguf, draft_compression="8bit")
