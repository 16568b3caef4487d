"""device= and vram_budget=: the CPU, auto, and cuda, which on a machine
without a GPU (or without the CUDA plugin) is an error that says what is
missing and what to do, and on a machine with one gives the CPU's greedy
reply."""

import pytest

import airllm_c


def test_cpu_and_auto_agree(ask):
    cpu = ask("Say hello", device="cpu")
    auto = ask("Say hello", device="auto")
    assert cpu["response"] == auto["response"]


def test_cuda_is_the_gpu_or_a_clear_error(ask):
    cpu = ask("Say hello", device="cpu")
    try:
        gpu = ask("Say hello", device="cuda", vram_budget=1 << 30)
    except airllm_c.AirLLMError as e:
        assert e.status_name == "AIR_ERR_UNSUPPORTED"
        msg = str(e)
        assert "device cuda" in msg and "--device cpu" in msg
        assert any(w in msg for w in ("plugin", "driver", "no GPU")), msg
        return
    assert gpu["response"] == cpu["response"]


def test_unknown_device_is_refused_before_the_library():
    with pytest.raises(ValueError, match="device must be"):
        airllm_c.get_llm_response("Hello", model="x", device="tpu")
