"""Every hyper-parameter read from config.json and generation_config.json is
checked (range, integrality, agreement with the others) before anything is
split: a nonsense value is an AIR_ERR_FORMAT error naming the file, the key and
the value, where it used to run and print garbage ("!!!!") or be accepted in
silence.

Each case is the committed tiny model tests/fixtures/models/broken/control
(Llama, hidden 64, 4 heads of 16, 2 KV heads, vocab 64, llama3 RoPE scaling)
copied to a temporary folder with one value changed.
"""

import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO

import airllm_c

CONTROL = os.path.join(REPO, "tests", "fixtures", "models", "broken", "control")
CLI = os.environ.get("AIRLLM_CLI") or os.path.join(REPO, "build", "airllm")

DROP = object()

# (file, key path, new value, text the error must hold after the file name)
CASES = [
    ("config.json", "rope_theta", -1.0, '"rope_theta" is -1; it must be a finite number > 0'),
    ("config.json", "rope_theta", 0, '"rope_theta" is 0'),
    ("config.json", "rope_theta", 1e39, '"rope_theta" is 1e+39; it must be a finite number'),
    ("config.json", "rms_norm_eps", -1e-5, '"rms_norm_eps" is -1e-05; it must be a number > 0'),
    ("config.json", "rms_norm_eps", 0, '"rms_norm_eps" is 0'),
    ("config.json", "rms_norm_eps", 2.0, '"rms_norm_eps" is 2'),
    ("config.json", "rms_norm_eps", "1e-5", '"rms_norm_eps" must be a number'),
    ("config.json", "rope_scaling.factor", 0, '"rope_scaling.factor" is 0; it must be a finite '
     'number >= 1'),
    ("config.json", "rope_scaling.factor", 0.5, '"rope_scaling.factor" is 0.5'),
    ("config.json", "rope_scaling.low_freq_factor", 0, '"rope_scaling.low_freq_factor" is 0'),
    ("config.json", "rope_scaling.high_freq_factor", 0.5,
     '"rope_scaling.high_freq_factor" is 0.5; it must be a finite number above '
     '"rope_scaling.low_freq_factor" (1)'),
    ("config.json", "rope_scaling.original_max_position_embeddings", 0,
     '"rope_scaling.original_max_position_embeddings" is 0'),
    ("config.json", "head_dim", 0, '"head_dim" is 0; it must be an integer from 2 to 4096'),
    ("config.json", "head_dim", 15, '"head_dim" is 15; it must be even'),
    ("config.json", "head_dim", -16, '"head_dim" is -16; it must be an integer'),
    ("config.json", "max_position_embeddings", 0, '"max_position_embeddings" is 0; it must be '
     'an integer from 1 to'),
    ("config.json", "eos_token_id", 1e12, '"eos_token_id" is 1000000000000; it must be a token id'),
    ("config.json", "eos_token_id", [2, 64], '"eos_token_id" is 64; it must be an integer from 0 '
     'to 63'),
    ("config.json", "eos_token_id", -1, '"eos_token_id" is -1'),
    ("config.json", "eos_token_id", 2.5, '"eos_token_id" is 2.5'),
    ("config.json", "bos_token_id", 99, '"bos_token_id" is 99; it must be an integer from 0 to 63'),
    ("config.json", "num_key_value_heads", 3, '"num_attention_heads" (4) is not a multiple of '
     '"num_key_value_heads" (3)'),
    ("config.json", "num_key_value_heads", 8, '"num_key_value_heads" is 8; it must be an integer '
     'from 1 to 4'),
    ("config.json", "num_attention_heads", 0, '"num_attention_heads" is 0'),
    ("config.json", "vocab_size", 0, '"vocab_size" is 0'),
    ("config.json", "hidden_size", 1e9, '"hidden_size" is 1000000000'),
    ("config.json", "num_hidden_layers", 100000, '"num_hidden_layers" is 100000'),
    ("config.json", "intermediate_size", 1.5, '"intermediate_size" is 1.5'),
    ("config.json", "sliding_window", -1, '"sliding_window" is -1'),
    ("generation_config.json", "eos_token_id", 1e12, '"eos_token_id" is 1000000000000'),
    ("generation_config.json", "eos_token_id", [2, 70], '"eos_token_id" is 70'),
    ("generation_config.json", "bos_token_id", 64, '"bos_token_id" is 64'),
]


def _set(obj, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        obj = obj[k]
    if value is DROP:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value


def _variant(tmp_path, fname, key, value):
    d = tmp_path / "model"
    shutil.copytree(CONTROL, d)
    with open(d / fname) as f:
        cfg = json.load(f)
    _set(cfg, key, value)
    with open(d / fname, "w") as f:
        json.dump(cfg, f)
    return str(d)


def _open_error(model, tmp_path):
    with pytest.raises(airllm_c.AirLLMError) as ei:
        airllm_c.get_llm_response("hi", model=model, compression=None,
                                  cache_dir=str(tmp_path / "cache"))
    return ei.value


@pytest.mark.parametrize("fname,key,value,text", CASES,
                         ids=[f"{f}:{k}={v!r}" for f, k, v, _ in CASES])
def test_bad_value_is_refused(lib, tmp_path, fname, key, value, text):
    model = _variant(tmp_path, fname, key, value)
    e = _open_error(model, tmp_path)
    assert e.status_name == "AIR_ERR_FORMAT", str(e)
    assert os.path.join(model, fname) + ": " + text in e.detail, e.detail
    # refused before anything was split
    assert not os.path.exists(tmp_path / "cache") or not any(
        f.endswith(".bin") for _, _, fs in os.walk(tmp_path / "cache") for f in fs)


def test_control_opens(lib, tmp_path):
    """The unchanged model gets past the checks (it has no tokenizer, so text
    generation then stops with that error)."""
    e = _open_error(_variant(tmp_path, "config.json", "rope_theta", 10000.0), tmp_path)
    assert e.status_name == "AIR_ERR_UNSUPPORTED" and "tokenizer" in e.detail, str(e)


@pytest.mark.parametrize("fname", ["config.json", "generation_config.json"])
def test_top_level_must_be_an_object(lib, tmp_path, fname):
    d = tmp_path / "model"
    shutil.copytree(CONTROL, d)
    with open(d / fname) as f:
        cfg = json.load(f)
    with open(d / fname, "w") as f:
        json.dump([cfg], f)
    e = _open_error(str(d), tmp_path)
    assert e.status_name == "AIR_ERR_FORMAT", str(e)
    assert f"{d / fname} must hold a JSON object" in e.detail
    assert "top level is an array" in e.detail
    assert "architectures" not in e.detail


@pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"{CLI} is not built")
def test_cli_reports_the_key(tmp_path):
    model = _variant(tmp_path, "config.json", "rope_theta", -1.0)
    r = subprocess.run([CLI, "pull", model, "-c", "none", "--cache-dir", str(tmp_path / "c"),
                        "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "config.json: \"rope_theta\" is -1; it must be a finite number > 0" in r.stderr
