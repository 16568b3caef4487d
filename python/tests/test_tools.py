"""Tool calling through get_llm_response: forced calls (tool_choice
"required" or a function's name) are constrained by the tools' parameter
schemas, so every call parses and its arguments validate (checked with the
jsonschema package) on the random-weight tiny_chat model and on the default
model; conversations carrying tool calls and tool results render; bad
tool_choice values are clear errors.
"""

import json
import os

import pytest

import airllm_c

jsonschema = pytest.importorskip("jsonschema")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(os.environ.get("AIRLLM_MODELS_DIR", os.path.join(REPO, "models")),
                             "SmolLM2-135M-Instruct.Q4_1.gguf")

WEATHER = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a time zone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                   "required": ["tz"]}}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Adds numbers",
    "parameters": {"type": "object", "properties": {
        "numbers": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
        "round": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}},
        "required": ["numbers"], "additionalProperties": False}}}
TOOLS = [WEATHER, TIME, ADD]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def _bare(tool):
    """The tool without descriptions: tiny_chat's context is 512 tokens of a
    512-token vocabulary, too short for the full tool list."""
    fn = {k: v for k, v in tool["function"].items() if k != "description"}
    fn["parameters"] = json.loads(json.dumps(fn["parameters"]).replace(
        ', "description": "The city, e.g. Paris"', ""))
    return {"type": "function", "function": fn}


TINY_TOOLS = [_bare(t) for t in TOOLS]


def check_call(r, want_name=None):
    assert r["finish_reason"] == "tool_calls", r
    assert r["response"] == ""
    calls = r["tool_calls"]
    assert len(calls) == 1, r
    call = calls[0]
    assert call["type"] == "function" and isinstance(call["id"], str) and call["id"]
    name = call["function"]["name"]
    assert name in PARAMS
    if want_name:
        assert name == want_name
    args = json.loads(call["function"]["arguments"])
    jsonschema.validate(args, PARAMS[name])
    assert r["messages"][-1]["tool_calls"] == calls
    return name


def run_forced(model, cache_dir, n, tools=TOOLS, **kw):
    names = set()
    for k in range(n):
        choice = "required" if k % 3 else tools[k % len(tools)]["function"]["name"]
        want = None if choice == "required" else choice
        r = airllm_c.get_llm_response(["What is the weather in Paris?", "What time is it in Lima?",
                                       "Add 2 and 3."][k % 3], model=model, tools=tools,
                                      tool_choice=choice, seed=k, max_tokens=96,
                                      cache_dir=cache_dir, **kw)
        names.add(check_call(r, want))
    return names


def test_forced_calls_validate_on_tiny_chat(tiny_chat, cache_dir):
    # the process cache is keyed "model:compression", not by context length: an
    # earlier test may hold tiny_chat at 8bit with the default 512 positions
    airllm_c.clear_model_cache()
    names = run_forced(tiny_chat, cache_dir, 30, tools=TINY_TOOLS, compression="8bit",
                       max_seq_len=2048, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    assert names == set(PARAMS)  # "required" reaches every tool


def test_forced_calls_validate_on_default_model(lib, cache_dir):
    if not os.path.isfile(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is missing (scripts/fetch-default-model.sh fetches it)")
    run_forced(DEFAULT_MODEL, cache_dir, 30)


def test_named_choice_in_openai_form(ask):
    r = ask("Time?", tools=TINY_TOOLS[1:2], max_tokens=48,
            tool_choice={"type": "function", "function": {"name": "get_time"}})
    check_call(r, "get_time")


def test_conversation_with_tool_calls_renders(ask):
    msgs = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call1abcd", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call1abcd", "name": "get_current_weather",
         "content": "snow, -3"},
    ]
    r = ask(messages=msgs, tools=TINY_TOOLS[:1], max_tokens=8)
    assert isinstance(r["response"], str) and isinstance(r["tool_calls"], list)
    assert r["messages"][:3] == msgs
    r = ask(messages=msgs, tools=TINY_TOOLS[:1], tool_choice="none", max_tokens=8)
    assert r["tool_calls"] == []


@pytest.mark.parametrize("kw, match", [
    ({"tools": TINY_TOOLS, "tool_choice": "no_such_tool"}, "no_such_tool"),
    ({"tool_choice": "required"}, "needs tools"),
    ({"tools": TINY_TOOLS, "tool_choice": "required", "format": "json"}, "cannot be combined"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string", "pattern": "a"}}}}}],
      "tool_choice": "f"}, '"pattern"'),
])
def test_bad_tool_requests(ask, kw, match):
    with pytest.raises(airllm_c.AirLLMError, match=match):
        ask("x", **kw)
