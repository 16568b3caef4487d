"""The JSON request built from Python arguments (no library needed)."""

from airllm_c import _api


def req(prompt="Hello", messages=None, model="org/name", **kw):
    model_opts, gen_opts = _api._split_kwargs(kw, "test")
    return _api._request(prompt, messages, model, model_opts, gen_opts)


def test_compression_none_is_null_and_default_is_omitted():
    assert req(compression=None)["compression"] is None
    assert "compression" not in req()
    assert req(compression="8bit")["compression"] == "8bit"
    assert repr(_api.PLATFORM_DEFAULT) == "<platform default>"


def test_forwarded_options():
    r = req(top_p=0.9, top_k=40, seed=7, stop="END", cache_dir="/tmp/c", ram_budget=0,
            n_threads=2, revision="v1", max_seq_len=128, format="json", min_p=0.05,
            repeat_penalty=1.1, delete_original=True, prefetching=False)
    assert r == {"model": "org/name", "messages": [{"role": "user", "content": "Hello"}], "top_p": 0.9, "top_k": 40, "seed": 7,
                 "stop": ["END"], "cache_dir": "/tmp/c", "ram_budget": 0, "n_threads": 2,
                 "revision": "v1", "max_seq_len": 128, "format": "json", "min_p": 0.05,
                 "repeat_penalty": 1.1, "delete_original": True, "prefetching": False}


def test_messages_content_parts():
    r = req(prompt=None, messages=[
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
    ])
    assert r["messages"] == [{"role": "user", "content": "ab"},
                             {"role": "assistant", "content": ""}]


def test_ignored_compat_options():
    assert "api_url" not in req(api_url="http://localhost", api_key="x", npc=None)


def test_device_options():
    r = req(device="cuda", vram_budget=4 << 30)
    assert r["device"] == "cuda" and r["vram_budget"] == 4 << 30
    assert "device" not in req() and "vram_budget" not in req()
    import pytest
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda'"):
        req(device="gpu")
    with pytest.raises(ValueError, match="vram_budget"):
        req(vram_budget=-1)
