"""Tool calls and JSON Schema output through `airllm serve`, received by the
real clients: the `openai` client gets message.tool_calls (a forced call,
tool_choice naming a function or "required") plain and streamed as
delta.tool_calls chunks; response_format json_schema and Ollama's format
schema give output that the jsonschema package validates; the `ollama`
client's types parse message.tool_calls; npcpy's get_llm_response through
its llamacpp-server provider returns the calls. Forced calls are constrained
by the tool's parameter schema, so they parse and validate even on the
random-weight tiny_chat model."""

import json

import pytest

from conftest import MODEL_ID, default_model, start

jsonschema = pytest.importorskip("jsonschema")

TIME = {"type": "function", "function": {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                   "required": ["tz"]}}}
ADD = {"type": "function", "function": {
    "name": "add",
    "parameters": {"type": "object", "properties": {
        "numbers": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3}},
        "required": ["numbers"], "additionalProperties": False}}}
TOOLS = [TIME, ADD]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2}},
    "required": ["name", "age"], "additionalProperties": False}
MSGS = [{"role": "user", "content": "Add 2 and 3."}]


def named(name):
    return {"type": "function", "function": {"name": name}}


def openai_client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)


def check_args(name, arguments):
    assert name in PARAMS
    jsonschema.validate(json.loads(arguments), PARAMS[name])


def test_openai_forced_call_plain(server):
    c = openai_client(server)
    for k, choice in enumerate([named("add"), named("get_time"), "required"]):
        r = c.chat.completions.create(model=MODEL_ID, messages=MSGS, tools=TOOLS,
                                      tool_choice=choice, max_tokens=64, seed=k)
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls", r
        assert ch.message.content is None
        calls = ch.message.tool_calls
        assert len(calls) == 1
        assert calls[0].type == "function" and calls[0].id
        if choice != "required":
            assert calls[0].function.name == choice["function"]["name"]
        check_args(calls[0].function.name, calls[0].function.arguments)


def test_openai_forced_call_streamed(server):
    c = openai_client(server)
    for k, choice in enumerate([named("add"), "required"]):
        kw = dict(model=MODEL_ID, messages=MSGS, tools=TOOLS, tool_choice=choice, max_tokens=64,
                  seed=k, temperature=0)
        calls, finish, text = {}, None, ""
        for chunk in c.chat.completions.create(stream=True, **kw):
            d = chunk.choices[0].delta
            text += d.content or ""
            for tc in d.tool_calls or []:
                e = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                e["id"] += tc.id or ""
                e["name"] += tc.function.name or ""
                e["arguments"] += tc.function.arguments or ""
                assert tc.type in (None, "function")
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls" and text == ""
        assert list(calls) == [0]
        check_args(calls[0]["name"], calls[0]["arguments"])
        # the same call as the plain answer (greedy), up to its id
        plain = c.chat.completions.create(**kw).choices[0].message.tool_calls[0]
        assert (plain.function.name, plain.function.arguments) == \
            (calls[0]["name"], calls[0]["arguments"])


def test_openai_conversation_with_tool_results(server):
    """Assistant tool_calls, a tool answer with tool_call_id and name, then a
    new forced call: the input shapes the client sends back are accepted."""
    c = openai_client(server)
    tools = [TIME]  # one tool: the conversation fits tiny_chat's 512-token context
    first = c.chat.completions.create(model=MODEL_ID, messages=MSGS, tools=tools,
                                      tool_choice=named("get_time"), max_tokens=40)
    call = first.choices[0].message.tool_calls[0]
    back = first.choices[0].message.model_dump(exclude_none=True)
    back["content"] = ""  # tiny_chat's template adds content to a string (null fails there,
    #                       as it does in transformers)
    msgs = MSGS + [back,
                   {"role": "tool", "tool_call_id": call.id, "name": "get_time",
                    "content": "12:00"},
                   {"role": "user", "content": "And in Lima?"}]
    assert msgs[1]["tool_calls"][0]["id"] == call.id
    r = c.chat.completions.create(model=MODEL_ID, messages=msgs, tools=tools,
                                  tool_choice="required", max_tokens=40)
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    check_args("get_time", r.choices[0].message.tool_calls[0].function.arguments)
    # tool_choice "none": no tools for the model, a plain text answer
    r = c.chat.completions.create(model=MODEL_ID, messages=msgs, tools=tools,
                                  tool_choice="none", max_tokens=8)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.choices[0].message.tool_calls is None
    assert isinstance(r.choices[0].message.content, str)


def test_openai_bad_tools_are_400(server):
    openai = pytest.importorskip("openai")
    c = openai_client(server)
    with pytest.raises(openai.BadRequestError, match="nope"):
        c.chat.completions.create(model=MODEL_ID, messages=MSGS, tools=TOOLS,
                                  tool_choice=named("nope"), max_tokens=8)
    with pytest.raises(openai.BadRequestError, match="tools"):
        c.chat.completions.create(model=MODEL_ID, messages=MSGS, tools={"x": 1}, max_tokens=8)
    with pytest.raises(openai.BadRequestError, match="patternProperties"):
        c.chat.completions.create(
            model=MODEL_ID, messages=MSGS, max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "object", "patternProperties": {}}}})
    with pytest.raises(openai.BadRequestError, match="schema"):
        c.chat.completions.create(model=MODEL_ID, messages=MSGS, max_tokens=8,
                                  response_format={"type": "json_schema", "json_schema": {}})


def test_openai_json_schema_validates(server):
    c = openai_client(server)
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    for seed in range(6):
        r = c.chat.completions.create(model=MODEL_ID, messages=[
            {"role": "user", "content": "A person as JSON."}], response_format=fmt,
            max_tokens=120, temperature=1.0, seed=seed)
        # the random-weight model may use the whole budget: the grammar then
        # closes the object with the last token ("length")
        assert r.choices[0].finish_reason in ("stop", "length"), r
        jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
    # the default token limit (256)
    r = c.chat.completions.create(model=MODEL_ID, messages=[
        {"role": "user", "content": "JSON"}], response_format=fmt, seed=3)
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
    # streamed: the pieces join into a valid object too
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "JSON"}], response_format=fmt,
        max_tokens=120, seed=7, stream=True))
    jsonschema.validate(json.loads(text), SCHEMA)


def ollama_chat(server, stream, **extra):
    """The ollama client's own request and response types; Ollama's API has
    no tool_choice, so it is added to the body the client builds (the server
    takes it as an extension)."""
    ollama = pytest.importorskip("ollama")
    from ollama._types import ChatRequest, ChatResponse
    c = ollama.Client(host=server.url, timeout=60)
    body = ChatRequest(model=MODEL_ID, messages=MSGS, tools=TOOLS, stream=stream,
                       options={"num_predict": 64, "temperature": 0}).model_dump(exclude_none=True)
    body.update(extra)
    return c._request(ChatResponse, "POST", "/api/chat", json=body, stream=stream), body


def test_ollama_tool_calls(server):
    r, sent = ollama_chat(server, False, tool_choice="add")
    assert r.done and r.message.content == ""
    calls = r.message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "add"
    # against the parameters as the client sent them (its Tool type keeps
    # type, items, enum and description of each property)
    jsonschema.validate(dict(calls[0].function.arguments),
                        sent["tools"][1]["function"]["parameters"])
    assert all(isinstance(x, int) for x in calls[0].function.arguments["numbers"])
    parts = list(ollama_chat(server, True, tool_choice="add")[0])
    got = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert parts[-1].done and len(got) == 1
    assert got[0].function.name == "add"
    assert dict(got[0].function.arguments) == dict(calls[0].function.arguments)
    # a conversation carrying Ollama-shaped calls (arguments as an object) is accepted
    ollama = pytest.importorskip("ollama")
    c = ollama.Client(host=server.url, timeout=60)
    msgs = MSGS + [r.message, {"role": "tool", "content": "5", "tool_name": "add"}]
    again = c.chat(model=MODEL_ID, messages=msgs, tools=TOOLS, options={"num_predict": 8})
    assert again.done


def test_ollama_format_schema_validates(server):
    ollama = pytest.importorskip("ollama")
    c = ollama.Client(host=server.url, timeout=60)
    for seed in range(4):
        r = c.chat(model=MODEL_ID, messages=[{"role": "user", "content": "A person."}],
                   format=SCHEMA, options={"num_predict": 120, "temperature": 1.0, "seed": seed})
        jsonschema.validate(json.loads(r.message.content), SCHEMA)
    r = c.generate(model=MODEL_ID, prompt="A person.", format=SCHEMA,
                   options={"num_predict": 120, "seed": 1})
    jsonschema.validate(json.loads(r.response), SCHEMA)


def test_npcpy_llamacpp_server_tool_calls(server):
    """npcpy's llamacpp-server provider (its default URL is port 8080, which
    test_npcpy.py covers; api_url points it at this server)."""
    npcpy_llm = pytest.importorskip("npcpy.llm_funcs")
    r = npcpy_llm.get_llm_response("Add 2 and 3.", model=MODEL_ID, provider="llamacpp-server",
                                   api_url=server.url + "/v1", tools=[ADD],
                                   tool_choice=named("add"), max_tokens=64)
    calls = r["tool_calls"]
    assert len(calls) == 1, r
    call = calls[0]
    # npcpy hands back litellm's tool call objects (OpenAI shape)
    assert call.type == "function" and call.id
    assert call.function.name == "add"
    check_args("add", call.function.arguments)
    assert not r["response"]


def test_default_model_forced_call_and_schema(tmp_path_factory):
    """The default model (SmolLM2-135M): a forced call and a schema answer."""
    s = start(tmp_path_factory, model=default_model())
    try:
        c = openai_client(s)
        model = c.models.list().data[0].id
        weather = {"type": "function", "function": {
            "name": "get_current_weather", "description": "Get the current weather in a city",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location"]}}}
        r = c.chat.completions.create(model=model, messages=[
            {"role": "user", "content": "What is the weather in Paris?"}], tools=[weather],
            tool_choice="required", max_tokens=64, temperature=0)
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_current_weather"
        jsonschema.validate(json.loads(call.function.arguments),
                            weather["function"]["parameters"])
        r = c.chat.completions.create(model=model, messages=[
            {"role": "user", "content": "Describe a person as JSON."}], max_tokens=120,
            temperature=0, response_format={"type": "json_schema", "json_schema": {
                "name": "person", "schema": SCHEMA}})
        jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
        # Ollama's format schema with the default token limit (256: a budget
        # past the grammar's byte costs, which once let any token through)
        ollama = pytest.importorskip("ollama")
        r = ollama.Client(host=s.url, timeout=120).chat(
            model=model, messages=[{"role": "user", "content": "Describe a person"}],
            format=SCHEMA, options={"temperature": 0})
        jsonschema.validate(json.loads(r.message.content), SCHEMA)
    finally:
        assert s.stop() == 0
