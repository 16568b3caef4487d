"""Every numeric argument of get_llm_response and Model is checked in Python,
type and range, before the library is called: a bad one raises TypeError or
ValueError naming it (a huge int used to reach C as a double converted to an
int out of range, and came back as an empty answer). The valid edges run."""

import json

import pytest

import airllm_c

# (keyword, value, exception, text the message must hold)
BAD = [
    ("max_tokens", 10 ** 20, ValueError, "max_tokens must be an int from 0 to 2147483647"),
    ("max_tokens", 2 ** 31, ValueError, "max_tokens must be an int from 0 to 2147483647"),
    ("max_tokens", -1, ValueError, "max_tokens must be an int from 0 to 2147483647"),
    ("max_tokens", 2.0, TypeError, "max_tokens must be an int"),
    ("max_tokens", "8", TypeError, "max_tokens must be an int"),
    ("max_tokens", True, TypeError, "max_tokens must be an int"),
    ("temperature", -1, ValueError, "temperature must be a number >= 0"),
    ("temperature", float("nan"), ValueError, "temperature must be a finite number"),
    ("temperature", float("inf"), ValueError, "temperature must be a finite number"),
    ("temperature", 1e300, ValueError, "temperature must be a number >= 0"),
    ("temperature", 10 ** 400, ValueError, "temperature must be a finite number"),
    ("temperature", "hot", TypeError, "temperature must be a number"),
    ("top_p", 2, ValueError, "top_p must be a number from 0 to 1"),
    ("top_p", -0.1, ValueError, "top_p must be a number from 0 to 1"),
    ("min_p", 2, ValueError, "min_p must be a number from 0 to 1"),
    ("min_p", float("nan"), ValueError, "min_p must be a finite number"),
    ("top_k", -5, ValueError, "top_k must be an int from 0 to 2147483647"),
    ("top_k", 2 ** 40, ValueError, "top_k must be an int from 0 to 2147483647"),
    ("top_k", 4.5, TypeError, "top_k must be an int"),
    ("repeat_penalty", 0, ValueError, "repeat_penalty must be a number > 0"),
    ("repeat_penalty", -1.5, ValueError, "repeat_penalty must be a number > 0"),
    ("seed", -1, ValueError, "seed must be an int from 0 to 9007199254740992"),
    ("seed", 2 ** 64, ValueError, "seed must be an int from 0 to 9007199254740992"),
    ("max_seq_len", -1, ValueError, "max_seq_len must be an int from 0 to 16777216"),
    ("max_seq_len", 2 ** 31, ValueError, "max_seq_len must be an int from 0 to 16777216"),
    ("ram_budget", -1, ValueError, "ram_budget must be an int from 0 to 9007199254740992"),
    ("ram_budget", 10 ** 30, ValueError, "ram_budget must be an int from 0 to 9007199254740992"),
    ("n_threads", -1, ValueError, "n_threads must be an int from 0 to 2147483647"),
    ("n_threads", 10 ** 12, ValueError, "n_threads must be an int from 0 to 2147483647"),
    ("n_threads", 1.0, TypeError, "n_threads must be an int"),
]


@pytest.mark.parametrize("key,value,exc,text", BAD, ids=[f"{k}={v!r}" for k, v, _, _ in BAD])
def test_bad_argument_raises(ask, key, value, exc, text):
    with pytest.raises(exc) as ei:
        ask("Hello", **{key: value})
    assert text in str(ei.value)


@pytest.mark.parametrize("key,value,exc,text",
                         [b for b in BAD if b[0] in airllm_c._api.MODEL_OPTIONS],
                         ids=[f"{k}={v!r}" for k, v, _, _ in BAD
                              if k in airllm_c._api.MODEL_OPTIONS])
def test_bad_model_option_raises_in_model(tiny_chat, key, value, exc, text):
    with pytest.raises(exc) as ei:
        airllm_c.Model(tiny_chat, **{key: value})
    assert text in str(ei.value)


def test_json_needs_two_tokens(ask):
    for n in (0, 1):
        with pytest.raises(ValueError, match="max_tokens must be 2 or more with format='json'"):
            ask("Hello", format="json", max_tokens=n)
    r = ask("Hello", format="json", max_tokens=2)
    assert isinstance(json.loads(r["response"]), dict)


GOOD = [
    dict(max_tokens=0),
    dict(max_tokens=2 ** 31 - 1, max_seq_len=40),
    dict(temperature=0.0001, top_p=0),
    dict(temperature=0.7, top_p=1, min_p=0, top_k=0),
    dict(temperature=0.7, min_p=1, top_k=2 ** 31 - 1),
    dict(seed=2 ** 53, repeat_penalty=1e-3),
    dict(n_threads=10 ** 6),
    dict(ram_budget=2 ** 53),
]


@pytest.mark.parametrize("kw", GOOD, ids=[repr(k) for k in GOOD])
def test_valid_edges_run(ask, kw):
    # model options apply when the model is opened: a fresh open, and none
    # left in the cache for the tests that follow
    fresh = any(k in airllm_c._api.MODEL_OPTIONS for k in kw)
    if fresh:
        airllm_c.clear_model_cache()
    try:
        r = ask("Hello", **kw)
    finally:
        if fresh:
            airllm_c.clear_model_cache()
    if kw.get("max_tokens") == 0:
        assert r["response"] == "" and r["usage"]["completion_tokens"] == 0
    else:
        assert r["usage"]["completion_tokens"] > 0
