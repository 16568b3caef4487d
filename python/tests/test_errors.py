"""Errors: from the library (AirLLMError), from argument checks, and the
hf_token never leaking into a message."""

import os
import subprocess
import sys
import traceback

import pytest

import airllm_c

FAKE_TOKEN = "hf_test_fake_token_0123456789"


def test_provider_must_be_airllm():
    with pytest.raises(ValueError, match="airllm"):
        airllm_c.get_llm_response("Hello", model="x", provider="openai")


def test_missing_model_path(lib, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(airllm_c.AirLLMError) as ei:
        airllm_c.get_llm_response("Hello", model=missing, compression=None,
                                  cache_dir=str(tmp_path / "cache"))
    e = ei.value
    assert isinstance(e, RuntimeError)
    assert e.status != 0 and e.status_name.startswith("AIR_ERR_")
    assert e.status_name in str(e)
    assert "no-such-model" in str(e) and e.detail


def test_bad_compression(tiny_chat, tmp_path):
    with pytest.raises(airllm_c.AirLLMError) as ei:
        airllm_c.get_llm_response("Hello", model=tiny_chat, compression="3bit",
                                  cache_dir=str(tmp_path))
    e = ei.value
    assert e.status_name == "AIR_ERR_INVALID_ARG"
    assert "3bit" in str(e) and "compression" in str(e)


def test_error_in_a_stream_is_raised_by_iteration(lib, tmp_path):
    s = airllm_c.get_llm_response("Hello", model=str(tmp_path / "nope"), compression=None,
                                  cache_dir=str(tmp_path), stream=True)
    with pytest.raises(airllm_c.AirLLMError, match="nope"):
        next(s)
    assert s.result is None


def _all_text(excinfo):
    e = excinfo.value
    return "\n".join([str(e), repr(e), repr(e.args), repr(vars(e)),
                      "".join(traceback.format_exception(type(e), e, e.__traceback__))])


def test_hf_token_not_in_local_errors(lib, tmp_path):
    with pytest.raises(airllm_c.AirLLMError) as ei:
        airllm_c.get_llm_response("Hello", model=str(tmp_path / "missing"), compression=None,
                                  hf_token=FAKE_TOKEN, cache_dir=str(tmp_path))
    assert FAKE_TOKEN not in _all_text(ei)


def test_hf_token_not_in_hub_errors(lib, tmp_path, monkeypatch):
    # offline: the hub lookup fails at once, without the network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN + "_env")
    for token in (FAKE_TOKEN, None):
        with pytest.raises(airllm_c.AirLLMError) as ei:
            airllm_c.get_llm_response("Hello", model="airllm-c-tests/does-not-exist",
                                      compression=None, hf_token=token,
                                      cache_dir=str(tmp_path / "cache"))
        text = _all_text(ei)
        assert FAKE_TOKEN not in text


def test_hf_token_not_in_argument_errors():
    with pytest.raises(TypeError) as ei:
        airllm_c.get_llm_response("Hello", model="x", hf_token=FAKE_TOKEN, bogus=1)
    assert FAKE_TOKEN not in _all_text(ei)


def test_hf_token_not_in_model_repr(tmp_path):
    m = airllm_c.Model(str(tmp_path), hf_token=FAKE_TOKEN, compression="8bit")
    assert FAKE_TOKEN not in repr(m)
    assert "8bit" in repr(m)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({}, ValueError, "prompt or a non-empty messages"),
    ({"prompt": "x", "format": "yaml"}, ValueError, "format"),
    ({"prompt": "x", "bogus": 1}, TypeError, "bogus"),
    ({"prompt": "x", "max_tokens": "3"}, TypeError, "max_tokens"),
    ({"prompt": "x", "max_tokens": -1}, ValueError, "max_tokens"),
    ({"prompt": "x", "temperature": float("nan")}, ValueError, "temperature"),
    ({"prompt": "x", "stop": [1]}, TypeError, "stop"),
    ({"prompt": "x", "compression": 4}, TypeError, "compression"),
    ({"messages": [{"content": "x"}]}, ValueError, "role"),
    ({"messages": "hello"}, TypeError, "messages"),
    ({"prompt": "x", "tools": "get_time"}, TypeError, "tools"),
    ({"prompt": "x", "tool_choice": 3}, TypeError, "tool_choice"),
    ({"prompt": "x", "tool_map": {"f": print}}, ValueError, "tool_map"),
    ({"prompt": "x", "format": ["json"]}, ValueError, "format"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": "x"}]}, TypeError,
     "tool_calls"),
])
def test_argument_checks(kwargs, exc, match):
    kwargs.setdefault("model", "some/model")
    with pytest.raises(exc, match=match):
        airllm_c.get_llm_response(**kwargs)


def test_model_is_required():
    with pytest.raises(TypeError, match="model"):
        airllm_c.get_llm_response("Hello")


def _run_python(code, **env):
    full = dict(os.environ)
    full.update(env)
    pkg_parent = os.path.dirname(os.path.dirname(airllm_c.__file__))
    full["PYTHONPATH"] = pkg_parent + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=60)


def test_airllm_lib_pointing_nowhere_says_how_to_build(tmp_path):
    p = _run_python(
        "import airllm_c\n"
        "try:\n"
        "    airllm_c.version()\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__); print(e)\n",
        AIRLLM_LIB=str(tmp_path / "libairllm.so"))
    assert p.returncode == 0, p.stderr
    assert "LibraryNotFoundError" in p.stdout
    assert "AIRLLM_LIB" in p.stdout and "cmake" in p.stdout


def test_airllm_lib_is_used(lib):
    path = airllm_c.library_path()
    p = _run_python("import airllm_c; print(airllm_c.library_path()); print(airllm_c.version())",
                    AIRLLM_LIB=path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [path, airllm_c.version()]
