"""The `airllm` compatibility package (python/compat): the calls npcpy's
provider="airllm" makes (AutoModel.from_pretrained, the tokenizer's
apply_chat_template / __call__ / decode, generate), on tiny_chat, against the
prompt text, prompt ids and greedy ids that transformers wrote
(tests/gen/gen_tiny_chat.py); the conventions of a transformers tokenizer it
follows; what it refuses; and that it needs neither torch nor a GPU."""

import json
import os
import subprocess
import sys

import pytest

from conftest import COMPAT

import airllm_c


def _import_compat():
    """The installed adapter when it is ours, else the one in this checkout."""
    try:
        import airllm

        if getattr(airllm, "BACKEND", None) == "airllm.c":
            return airllm
    except ImportError:
        pass
    sys.path.insert(0, COMPAT)
    sys.modules.pop("airllm", None)
    import airllm

    assert airllm.BACKEND == "airllm.c", airllm.__file__
    return airllm


airllm = _import_compat()
TokenIds = airllm.TokenIds


def pythonpath():
    """PYTHONPATH for a child process that imports the same airllm and
    airllm_c as this one."""
    dirs = [os.path.dirname(os.path.dirname(m.__file__)) for m in (airllm, airllm_c)]
    return os.pathsep.join(dict.fromkeys(dirs))


@pytest.fixture(scope="module")
def model(tiny_chat, cache_dir):
    return airllm.AutoModel.from_pretrained(tiny_chat, layer_shards_saving_path=cache_dir)


def test_npcpy_calls_give_the_transformers_prompt_and_greedy_ids(model, golden):
    tok = model.tokenizer
    n_new = golden["max_new_tokens"]
    for conv in golden["conversations"]:
        # what npcpy's get_airllm_response does, step by step
        chat_text = tok.apply_chat_template(conv["messages"], tokenize=False,
                                            add_generation_prompt=True)
        assert chat_text == conv["prompt_text"]
        tokens = tok(chat_text, return_tensors="pt", truncation=True, max_length=2048)
        ids = tokens["input_ids"]
        assert ids.cuda() is ids
        assert ids.shape == (1, len(conv["prompt_ids"]))
        assert ids.tolist() == [conv["prompt_ids"]]
        gen_out = model.generate(ids.cuda(), max_new_tokens=n_new)
        assert not hasattr(gen_out, "sequences")
        # the prompt, then the greedy ids (ending with the EOS id when one stopped them)
        assert gen_out[0].tolist() == conv["prompt_ids"] + conv["greedy_ids"]
        full = tok.decode(gen_out[0], skip_special_tokens=True)
        prompt = tok.decode(ids[0], skip_special_tokens=True)
        assert full.startswith(prompt)
        assert full[len(prompt):] == conv["greedy_text"]


def test_generate_forms(model, golden):
    conv = golden["conversations"][2]
    prompt = conv["prompt_ids"]
    out = model.generate(TokenIds([prompt]), max_new_tokens=24, return_dict_in_generate=True,
                         use_cache=True)
    assert out.sequences.tolist() == [prompt + conv["greedy_ids"]]
    assert out["sequences"] is out.sequences and out[0] is out.sequences
    # a plain list, one row without the batch axis, and max_new_tokens=0
    assert model.generate([prompt], max_new_tokens=24).tolist() == out.sequences.tolist()
    assert model.generate(prompt, max_new_tokens=24).tolist() == out.sequences.tolist()
    assert model.generate([prompt], max_new_tokens=0).tolist() == [prompt]
    # without max_new_tokens, max_length (20 by default) bounds prompt + new ids
    short = prompt[:15]
    assert model.generate([short]).shape[1] <= 20
    assert model.generate([short], max_length=17).shape[1] <= 17
    assert model.generate([prompt]).tolist() == [prompt]  # already longer than 20


def test_sampling_maps_to_airllm_c(model, golden):
    """do_sample=True samples with transformers' defaults (temperature 1,
    top_p 1, top_k 50); greedy otherwise."""
    prompt = golden["conversations"][0]["prompt_ids"]
    m = airllm_c.Model(model.model_name, compression=None)
    sampled = model.generate([prompt], max_new_tokens=12, do_sample=True)[0].tolist()
    want = m.generate_ids(prompt, max_tokens=12, temperature=1.0, top_p=1.0, top_k=50,
                          min_p=0.0)["completion_ids"]
    assert sampled == prompt + want
    hot = model.generate([prompt], max_new_tokens=12, do_sample=True, temperature=0.5, top_k=5,
                         repetition_penalty=1.3)[0].tolist()
    want = m.generate_ids(prompt, max_tokens=12, temperature=0.5, top_p=1.0, top_k=5, min_p=0.0,
                          repeat_penalty=1.3)["completion_ids"]
    assert hot == prompt + want


def test_tokenizer_conventions(model, golden):
    tok = model.tokenizer
    conv = golden["conversations"][1]
    text, ids = conv["prompt_text"], conv["prompt_ids"]
    enc = tok(text)
    assert enc["input_ids"] == ids and enc.input_ids == ids
    assert enc["attention_mask"] == [1] * len(ids)
    assert "attention_mask" not in tok(text, return_attention_mask=False)
    # truncation keeps the first max_length ids (transformers' truncation_side "right")
    assert tok(text, truncation=True, max_length=10)["input_ids"] == ids[:10]
    assert tok(text, truncation=False, max_length=10)["input_ids"] == ids
    tok.truncation_side = "left"
    try:
        assert tok(text, truncation=True, max_length=10)["input_ids"] == ids[-10:]
    finally:
        tok.truncation_side = "right"
    pt = tok([text, text], return_tensors="pt")
    assert pt["input_ids"].shape == (2, len(ids)) and pt["attention_mask"].shape == (2, len(ids))
    assert tok([text, "Hi"])["input_ids"] == [ids, tok("Hi")["input_ids"]]
    assert tok.encode(text) == ids
    assert tok.encode(text, return_tensors="pt").tolist() == [ids]
    assert tok.apply_chat_template(conv["messages"], add_generation_prompt=True) == ids
    d = tok.apply_chat_template(conv["messages"], add_generation_prompt=True, return_dict=True,
                                return_tensors="pt")
    assert d["input_ids"].tolist() == [ids]
    # decoding: one sequence, or several with batch_decode; special tokens kept by default
    assert tok.decode(ids) == text
    assert tok.decode(TokenIds(ids)) == text
    assert tok.decode(ids[0]) == "<|im_start|>"
    assert tok.decode(ids[0], skip_special_tokens=True) == ""
    assert tok.batch_decode(TokenIds([ids, ids])) == [text, text]
    with pytest.raises(TypeError, match="batch_decode"):
        tok.decode(TokenIds([ids]))
    np = pytest.importorskip("numpy")
    arr = tok(text, return_tensors="np")["input_ids"]
    assert isinstance(arr, np.ndarray) and arr.tolist() == [ids]
    assert tok.decode(arr[0]) == text


def test_refusals_say_what_is_not_supported(model, tiny_chat):
    tok = model.tokenizer
    with pytest.raises(TypeError, match="unexpected keyword"):
        airllm.AutoModel.from_pretrained(tiny_chat, no_such_option=1)
    with pytest.raises(TypeError, match="from_pretrained"):
        airllm.AutoModel()
    with pytest.raises(ValueError, match="one sequence at a time"):
        model.generate([[1, 2], [3, 4]], max_new_tokens=1)
    with pytest.raises(ValueError, match="output_scores"):
        model.generate([[1, 2]], max_new_tokens=1, output_scores=True)
    with pytest.raises(ValueError, match="EOS"):
        model.generate([[1, 2]], max_new_tokens=1, eos_token_id=3)
    with pytest.raises(TypeError, match="num_beams"):
        model.generate([[1, 2]], max_new_tokens=1, num_beams=4)
    with pytest.raises(ValueError, match="padding"):
        tok(["a b c d", "a"], padding=True)
    with pytest.raises(ValueError, match="one tensor"):
        tok(["a b c d", "a"], return_tensors="pt")
    with pytest.raises(ValueError, match="return_tensors='tf'"):
        tok("a", return_tensors="tf")
    with pytest.raises(ValueError, match="chat_template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}], chat_template="{{ x }}")
    with pytest.raises(ValueError, match="text pairs"):
        tok("a", "b")
    with pytest.raises(airllm_c.AirLLMError, match="outside the model's vocabulary"):
        model.generate([[10 ** 6]], max_new_tokens=1)


def test_token_ids():
    t = TokenIds([[1, 2, 3], [4, 5, 6]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2 and t.size(1) == 3
    assert t.numel() == 6 and len(t) == 2 and t.device == "cpu"
    assert t.cuda() is t and t.cpu() is t and t.to("cuda:0") is t and t.long() is t
    assert t[0].tolist() == [1, 2, 3] and t[1][2] == 6 and t[1, 2] == 6
    assert t[0][1:].tolist() == [2, 3] and t[:1].tolist() == [[1, 2, 3]]
    assert [r.tolist() for r in t] == [[1, 2, 3], [4, 5, 6]]
    assert list(t[0]) == [1, 2, 3]
    assert t == TokenIds([[1, 2, 3], [4, 5, 6]]) and t != TokenIds([[1, 2, 3]])
    assert repr(TokenIds([7])) == "TokenIds([7])"
    with pytest.raises(ValueError, match="same length"):
        TokenIds([[1, 2], [3]])
    with pytest.raises(TypeError, match="integers"):
        TokenIds([1.5])
    with pytest.raises(TypeError, match="integers"):
        TokenIds([True])
    with pytest.raises(IndexError):
        TokenIds([1, 2])[0, 1]


def run_child(code, env_extra=None, **kw):
    env = dict(os.environ, PYTHONPATH=pythonpath())
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300, **kw)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_runs_without_torch(tiny_chat, golden, tmp_path):
    """With `import torch` failing, as on a machine without it: the adapter
    never imports torch, and the npcpy steps give the greedy ids."""
    conv = golden["conversations"][0]
    code = f"""
import sys, json
sys.modules["torch"] = None  # `import torch` raises ImportError from here on
from airllm import AutoModel
m = AutoModel.from_pretrained({tiny_chat!r})
t = m.tokenizer(m.tokenizer.apply_chat_template({conv["messages"]!r}, tokenize=False,
                add_generation_prompt=True), return_tensors="pt", truncation=True, max_length=2048)
out = m.generate(t["input_ids"].cuda(), max_new_tokens=24)
assert sys.modules["torch"] is None
print(json.dumps(out[0].tolist()))
"""
    out = run_child(code, {"AIRLLM_CACHE": str(tmp_path)})
    assert json.loads(out) == conv["prompt_ids"] + conv["greedy_ids"]


def test_without_airllm_c_the_error_says_how_to_install(tiny_chat):
    code = f"""
import sys
sys.modules["airllm_c"] = None
import airllm
try:
    airllm.AutoModel.from_pretrained({tiny_chat!r})
except RuntimeError as e:
    print(e)
"""
    out = run_child(code)
    assert "airllm_c" in out and "pip install ./python" in out
