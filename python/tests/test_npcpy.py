"""npcpy 2.1.25's own get_llm_response(provider="airllm"), unchanged, through
the `airllm` compatibility package (python/compat) on airllm.c: its answers
equal airllm_c's greedy answers to the same conversation (and, on tiny_chat,
the text transformers generated), and airllm_c builds the conversation as
npcpy does (a prompt replaces the content of a last user turn).

npcpy runs in a child process, as a user runs it: once with `import torch`
failing (a machine without torch) and, when torch is installed, once with it.
scripts/test.sh installs npcpy 2.1.25 and sets AIRLLM_REQUIRE_NPCPY=1, so
there a missing npcpy fails these tests instead of skipping them.
"""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import DEFAULT_MODEL
from test_compat_airllm import pythonpath

import airllm_c

NPCPY_VERSION = "2.1.25"
MARK = "@@npcpy-results@@"


def _npcpy_problem():
    if importlib.util.find_spec("npcpy") is None:
        return f"npcpy is not installed (pip install npcpy=={NPCPY_VERSION})"
    have = importlib.metadata.version("npcpy")
    if have != NPCPY_VERSION:
        return f"npcpy {have} is installed; these tests measure npcpy {NPCPY_VERSION}"
    return None


@pytest.fixture(scope="module")
def npcpy():
    problem = _npcpy_problem()
    if problem:
        if os.environ.get("AIRLLM_REQUIRE_NPCPY") == "1":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


CHILD = r"""
import json, sys
spec = json.loads(sys.argv[1])
if spec["block_torch"]:
    sys.modules["torch"] = None  # `import torch` raises ImportError from here on
from npcpy.llm_funcs import get_llm_response
out = []
for kw in spec["calls"]:
    r = get_llm_response(**kw)
    out.append({"response": r.get("response"), "messages": r.get("messages"),
                "error": r.get("error")})
import airllm
out.append({"airllm": airllm.__file__, "torch_blocked": sys.modules.get("torch", 0) is None})
print("@@npcpy-results@@" + json.dumps(out))
"""


def npcpy_calls(calls, tmp_path, cache_dir, block_torch):
    """Runs npcpy's get_llm_response for each kwargs dict in a child process
    (layer stores in cache_dir, shared with this process)."""
    env = dict(os.environ, PYTHONPATH=pythonpath(), AIRLLM_CACHE=cache_dir,
               LITELLM_LOCAL_MODEL_COST_MAP="True", HF_HUB_OFFLINE="1")
    env.pop("HF_TOKEN", None)
    p = subprocess.run([sys.executable, "-c", CHILD,
                        json.dumps({"block_torch": block_torch, "calls": calls})],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)][-1]
    *results, info = json.loads(line[len(MARK):])
    # npcpy used this adapter, with torch blocked when asked
    assert info["airllm"].startswith(os.path.dirname(os.path.dirname(
        sys.modules["airllm"].__file__))), info
    assert info["torch_blocked"] == block_torch
    for r in results:
        assert r["error"] is None, r["error"]
    return results


def torch_modes():
    modes = [pytest.param(True, id="without-torch")]
    if importlib.util.find_spec("torch") is not None:
        modes.append(pytest.param(False, id="with-torch"))
    return modes


@pytest.mark.parametrize("block_torch", torch_modes())
def test_npcpy_airllm_provider_on_tiny_chat(npcpy, tiny_chat, golden, cache_dir, tmp_path,
                                            block_torch):
    convs = golden["conversations"]
    n = golden["max_new_tokens"]
    calls = []
    # a prompt alone: npcpy adds its system prompt "You are a helpful
    # assistant.", which is also what tiny_chat's template puts there by default
    calls.append(dict(prompt=convs[0]["messages"][-1]["content"], model=tiny_chat,
                      provider="airllm", max_tokens=n, compression=None))
    # messages ending in a user turn, and a prompt: the prompt replaces that turn
    multi = [dict(m) for m in convs[1]["messages"]]
    prompt = multi[-1]["content"]
    multi[-1]["content"] = "a user turn the prompt replaces"
    calls.append(dict(prompt=prompt, messages=multi, model=tiny_chat, provider="airllm",
                      max_tokens=n, compression=None))
    calls.append(dict(prompt=convs[2]["messages"][-1]["content"], model=tiny_chat,
                      provider="airllm", max_tokens=n, compression=None))
    got = npcpy_calls(calls, tmp_path, cache_dir, block_torch)

    for conv, r in zip(convs, got):
        # npcpy strips the text; transformers' greedy text is the reference
        assert r["response"] == conv["greedy_text"].strip()
    assert got[1]["messages"][:-1] == convs[1]["messages"]

    # airllm_c, given what npcpy was given, answers the same and builds the
    # same conversation
    for call, r in zip(calls, got):
        kw = {k: v for k, v in call.items() if k not in ("provider", "max_tokens")}
        kw.setdefault("messages", [{"role": "system", "content": "You are a helpful assistant."}])
        mine = airllm_c.get_llm_response(**kw, max_tokens=n, temperature=0, cache_dir=cache_dir)
        assert mine["response"].strip() == r["response"]
        assert mine["messages"][:-1] == r["messages"][:-1]


def test_npcpy_airllm_provider_on_the_default_model(npcpy, cache_dir, tmp_path):
    """The default model (SmolLM2-135M-Instruct, a GGUF file, fetched by
    scripts/fetch-default-model.sh)."""
    if not os.path.isfile(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is missing (scripts/fetch-default-model.sh)")
    prompts = ["What is the capital of France?", "Write one short sentence about the sea."]
    calls = [dict(prompt=p, model=DEFAULT_MODEL, provider="airllm", max_tokens=24,
                  compression="8bit") for p in prompts]
    got = npcpy_calls(calls, tmp_path, cache_dir, True)
    for p, r in zip(prompts, got):
        mine = airllm_c.get_llm_response(
            p, model=DEFAULT_MODEL, compression="8bit", max_tokens=24, temperature=0,
            messages=[{"role": "system", "content": "You are a helpful assistant."}],
            cache_dir=cache_dir)
        assert r["response"], r
        assert r["response"] == mine["response"].strip()
